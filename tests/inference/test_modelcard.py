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
