from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference.modelcard import WeightsError, load_weights, write_card
from inference.runtime import select_device


def test_card_round_trip_and_checksum(tmp_path: Path) -> None:
    weights = tmp_path / "m.pt"
    torch.save({"w": torch.ones(3)}, weights)
    write_card(weights, {"name": "m", "version": "0.1"})
    state, card = load_weights(weights)
    assert torch.equal(state["w"], torch.ones(3))
    assert card.synthetic and "synthetic" in card.notice
    torch.save({"w": torch.zeros(3)}, weights)  # tampered after the card was written
    with pytest.raises(WeightsError, match="checksum"):
        load_weights(weights)


def test_weights_without_card_are_refused(tmp_path: Path) -> None:
    weights = tmp_path / "m.pt"
    torch.save({}, weights)
    with pytest.raises(WeightsError, match="no model card"):
        load_weights(weights)


def test_device_selection() -> None:
    assert select_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert select_device("auto").type == "cpu"
        with pytest.raises(RuntimeError):
            select_device("cuda:0")


def test_every_bundled_model_is_small_and_matches_its_card() -> None:
    """The repository ships demo weights only: each under 5 MiB, each verified by its card's sha256,
    each notice saying research use (levels: public SPIDER slices and phantoms, so not "synthetic")."""
    from inference.modelcard import BUNDLED_DIR, read_card

    files = sorted(BUNDLED_DIR.glob("*.pt"))
    assert {p.stem for p in files} >= {"ldh", "levels", "sij"}
    for path in files:
        assert path.stat().st_size < 5 * 1024 * 1024, f"{path.name} is {path.stat().st_size} bytes"
        card = read_card(path)  # raises on a checksum mismatch
        assert card.notice.startswith("research use only; trained on ")
        assert card.synthetic or "not a medical device" in card.notice
