"""A short training run on slices drawn in memory: the loss falls, checkpoints resume, weights load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.labels import AxialLabel as L
from inference.ldh.pipeline import load_network
from inference.ldh.training import TrainConfig, save_weights, train
from inference.modelcard import WeightsError

from tests.inference.ldh.conftest import labelled_slice

#: T2-like grey values per class (background, disc, herniation, sac, facets, vertebra)
GREY = np.array([0.05, 0.7, 0.55, 0.95, 0.35, 0.35, 0.25], np.float32)


def toy_slices(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        depth = int(rng.integers(0, 14))
        left = int(rng.integers(30, 62))
        lab = labelled_slice(depth, (left, left + 6))[20:84, 10:90]
        img = GREY[lab] + rng.normal(0, 0.03, lab.shape).astype(np.float32)
        out.append({"image": torch.from_numpy(img[None]), "label": torch.from_numpy(lab[None])})
    return out


def tiny_config(**kw: object) -> TrainConfig:
    base = dict(epochs=2, steps_per_epoch=6, batch_size=4, learning_rate=1e-2, patch=(64, 64),
                seed=1, device="cpu", augment=False, channels=(8, 16, 32), num_threads=1)
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_short_training_run_loss_falls(tmp_path: Path) -> None:
    result = train(toy_slices(12, 0), tiny_config(epochs=2, steps_per_epoch=7), progress=False, checkpoint=tmp_path / "ck.pt")
    first, last = np.mean(result.step_losses[:3]), np.mean(result.step_losses[-3:])
    assert last < 0.85 * first, (first, last)
    assert len(result.epoch_losses) == 2 and (tmp_path / "ck.pt").is_file()


def test_resume_continues_from_checkpoint(tmp_path: Path) -> None:
    ck = tmp_path / "ck.pt"
    slices = toy_slices(6, 1)
    first = train(slices, tiny_config(epochs=1, steps_per_epoch=2), progress=False, checkpoint=ck)
    # asked for 2 epochs: resume must run only the second one and keep the first one's losses
    resumed = train(slices, tiny_config(epochs=2, steps_per_epoch=2), progress=False, checkpoint=ck, resume=True)
    assert len(resumed.epoch_losses) == 2 and len(resumed.step_losses) == 4
    assert resumed.step_losses[:2] == first.step_losses
    assert torch.load(ck, weights_only=False)["epoch"] == 1


def test_saved_weights_load_and_are_checked(tmp_path: Path) -> None:
    result = train(toy_slices(4, 2), tiny_config(epochs=1, steps_per_epoch=1), progress=False)
    weights = tmp_path / "ldh.pt"
    save_weights(result.network, weights, {"name": "ldh", "version": "test", "network": {"channels": [8, 16, 32]}})
    network, card = load_network(weights)
    assert card.version == "test" and card.synthetic
    x = torch.rand(1, 1, 64, 64)
    torch.testing.assert_close(network(x), result.network.eval()(x))
    weights.write_bytes(weights.read_bytes() + b"tampered")
    with pytest.raises(WeightsError, match="checksum"):
        load_network(weights)
    assert int(L.HERNIATION) == 2  # the label contract the weights were trained on
