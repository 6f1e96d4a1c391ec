"""Model weights with their cards: find, verify (sha256) and load them.

A model is a pair of files: ``<name>.pt`` (a state dict) and ``<name>.card.json``
(its model card). The bundled demo weights live in ``inference/weights/``; a site's
own weights are named in the configuration and must have a card beside them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "BUNDLED_DIR",
    "ModelCard",
    "WeightsError",
    "bundled_weights",
    "half_state_dict",
    "load_weights",
    "sha256_file",
    "write_card",
]

logger = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent / "weights"
RESEARCH_NOTICE = "research use only; trained on synthetic data"


class WeightsError(RuntimeError):
    """Weights that are missing, have no card, or fail their checksum."""


@dataclass(frozen=True)
class ModelCard:
    """What every output must say about the model that made it."""

    name: str
    version: str
    sha256: str
    path: Path
    synthetic: bool
    intended_use: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def notice(self) -> str:
        """The research-use notice outputs carry while synthetic weights are used."""
        return RESEARCH_NOTICE if self.synthetic else self.intended_use


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_path(weights: Path) -> Path:
    """The card that belongs to a ``.pt`` file."""
    return weights.with_suffix(".card.json")


def bundled_weights(name: str) -> Path:
    """Path of the bundled demo weights ``name`` (e.g. ``"ldh"``)."""
    return BUNDLED_DIR / f"{name}.pt"


def read_card(weights: Path) -> ModelCard:
    """Read and check the card of ``weights`` (without loading the tensors)."""
    cpath = card_path(weights)
    if not weights.is_file():
        raise WeightsError(f"weights file {weights} does not exist")
    if not cpath.is_file():
        raise WeightsError(f"weights {weights} have no model card ({cpath.name})")
    try:
        card = json.loads(cpath.read_text(encoding="utf-8"))
        name, version, expected = card["name"], str(card["version"]), card["sha256"]
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"model card {cpath} is unreadable or incomplete: {exc}") from exc
    actual = sha256_file(weights)
    if actual != expected:
        raise WeightsError(
            f"weights {weights} fail their checksum: sha256 {actual[:12]}..., "
            f"card says {expected[:12]}..."
        )
    return ModelCard(
        name=name,
        version=version,
        sha256=actual,
        path=weights,
        synthetic=bool(card.get("synthetic_training_data", True)),
        intended_use=str(card.get("intended_use", RESEARCH_NOTICE)),
        extra=card,
    )


def load_weights(weights: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], ModelCard]:
    """Verify ``weights`` against their card and load the state dict.

    Returns
    -------
    tuple
        ``(state_dict_or_checkpoint, card)``.

    Raises
    ------
    WeightsError
        When the file or its card is missing, or the checksum differs.
    """
    card = read_card(weights)
    try:
        state = torch.load(weights, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several unrelated types here
        raise WeightsError(f"weights {weights} cannot be loaded: {exc}") from exc
    logger.info("loaded %s %s (sha256 %s...)", card.name, card.version, card.sha256[:12])
    return state, card


def half_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict for shipping: floating tensors as float16 on the CPU (half the file; loading
    into a float32 network casts them back), other tensors copied as they are.

    Tensors registered under several names (MONAI's DynUNet keeps its blocks twice) stay one
    tensor, so the file holds them once whatever device the network was on.
    """
    copies: dict[tuple[Any, ...], torch.Tensor] = {}
    out = {}
    for key, value in state.items():
        ident = (value.device, value.data_ptr(), tuple(value.shape), value.stride())
        if ident not in copies:
            dtype = torch.float16 if value.is_floating_point() else value.dtype
            copies[ident] = value.detach().to("cpu", dtype=dtype, copy=True).contiguous()
        out[key] = copies[ident]
    return out


def write_card(weights: Path, card: dict[str, Any]) -> Path:
    """Write ``<name>.card.json`` beside ``weights`` with the file's sha256 filled in."""
    data = dict(card)
    data["sha256"] = sha256_file(weights)
    data.setdefault("synthetic_training_data", True)
    data.setdefault("intended_use", RESEARCH_NOTICE)
    path = card_path(weights)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
