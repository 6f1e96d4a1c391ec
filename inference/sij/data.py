"""Labelled SIJ studies on disk: the phantom layout, which is also the layout for a site's own data.

One study per folder::

    <study>/dicom/cor_t1/*.dcm          semi-coronal T1 (required)
    <study>/dicom/cor_stir/*.dcm        semi-coronal STIR on the same grid (optional)
    <study>/labels/cor_t1.npz           "labels" uint8 (instances, rows, cols), SijLabel values
                                        (fat metaplasia over bone), "sop_instance_uids"
    <study>/labels/cor_stir.npz         the same for STIR (oedema over bone), optional
    <study>/ground_truth.json           at least {"axspa": 0|1}; phantoms add sparcc_fm_score,
                                        sparcc_slices, fm_table, fm_volume_ml, ...

Label slices are matched to the volume's slices by SOP Instance UID, so the order of the
npz does not matter. See inference/phantoms/CONTRACT.md for the full ground-truth keys.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.errors import VolumeError
from inference.sij.errors import SijDataError
from inference.volume import Volume, load_volumes

__all__ = ["SijCase", "find_cases", "load_case", "load_labels"]

logger = logging.getLogger(__name__)

T1_KEY = "cor_t1"
STIR_KEY = "cor_stir"


@dataclass
class SijCase:
    """One labelled study loaded into memory."""

    path: Path
    t1: Volume
    stir: Volume | None
    t1_labels: np.ndarray
    stir_labels: np.ndarray | None
    truth: dict[str, Any] = field(default_factory=dict)

    @property
    def axspa(self) -> int:
        """The study's axSpA label."""
        return int(self.truth["axspa"])

    def as_dict(self) -> dict[str, Any]:
        """The dictionary :mod:`inference.sij.transforms` reads."""
        return {
            "t1": self.t1.array,
            "stir": None if self.stir is None else self.stir.array,
            "t1_labels": self.t1_labels,
            "stir_labels": self.stir_labels,
            "spacing": self.t1.spacing,
        }


def find_cases(root: Path) -> list[Path]:
    """Study folders under ``root`` (any depth) that hold a ``ground_truth.json``, sorted."""
    root = Path(root)
    if (root / "ground_truth.json").is_file():
        return [root]
    return sorted(p.parent for p in root.rglob("ground_truth.json"))


def load_labels(npz: Path, volume: Volume) -> np.ndarray:
    """Label slices of ``npz`` in the slice order of ``volume`` (matched by SOP Instance UID)."""
    try:
        with np.load(npz) as data:
            labels = np.asarray(data["labels"])
            uids = [str(u) for u in data["sop_instance_uids"]]
    except (OSError, KeyError, ValueError) as exc:
        raise SijDataError(f"label file {npz} is unreadable: {exc}") from exc
    index = {u: n for n, u in enumerate(uids)}
    try:
        order = [index[u] for u in volume.sop_instance_uids]
    except KeyError as exc:
        raise SijDataError(f"{npz} has no label slice for SOP Instance UID {exc}") from exc
    out = labels[order]
    if out.shape != volume.array.shape:
        raise SijDataError(f"{npz} labels {out.shape} do not match the volume {volume.array.shape}")
    return out


def _volume(folder: Path) -> Volume:
    try:
        volumes = load_volumes(folder)
    except VolumeError as exc:
        raise SijDataError(f"{folder}: {exc}") from exc
    if len(volumes) != 1:
        raise SijDataError(f"{folder} holds {len(volumes)} stacks; one semi-coronal stack is expected")
    return volumes[0]


def load_case(path: Path, *, with_stir: bool = True) -> SijCase:
    """Load one study folder (layout in the module docstring)."""
    path = Path(path)
    try:
        truth = json.loads((path / "ground_truth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SijDataError(f"{path}: ground_truth.json is unreadable: {exc}") from exc
    t1_dir = path / "dicom" / T1_KEY
    if not t1_dir.is_dir():
        raise SijDataError(f"{path} has no dicom/{T1_KEY} series")
    t1 = _volume(t1_dir)
    t1_labels = load_labels(path / "labels" / f"{T1_KEY}.npz", t1)
    stir = stir_labels = None
    stir_dir = path / "dicom" / STIR_KEY
    if with_stir and stir_dir.is_dir():
        stir = _volume(stir_dir)
        npz = path / "labels" / f"{STIR_KEY}.npz"
        stir_labels = load_labels(npz, stir) if npz.is_file() else None
    return SijCase(path=path, t1=t1, stir=stir, t1_labels=t1_labels, stir_labels=stir_labels, truth=truth)
