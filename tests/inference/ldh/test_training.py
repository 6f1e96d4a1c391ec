"""A short training run on slices drawn in memory: the loss falls, checkpoints resume, weights load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.labels import AxialLabel as L
from inference.ldh.data import SHARE_STEPS
from inference.ldh.pipeline import load_network
from inference.ldh.training import TrainConfig, save_weights, segmentation_loss, tip_mask, train
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


@pytest.mark.parametrize("change", [{"pixdim": 0.75}, {"patch": (32, 32)}, {"steps_per_epoch": 3}, {"soft_labels": True}])
def test_resume_refuses_a_checkpoint_written_with_other_settings(tmp_path: Path, change: dict[str, object]) -> None:
    """A checkpoint continued at another grid, patch or epoch length would silently train something else."""
    ck = tmp_path / "ck.pt"
    slices = toy_slices(6, 1)
    train(slices, tiny_config(epochs=1, steps_per_epoch=2), progress=False, checkpoint=ck)
    key = next(iter(change))
    if change.get("soft_labels"):  # the same studies, prepared as shares
        slices = as_shares(slices)
    with pytest.raises(ValueError, match=f"other settings \\({key} "):
        train(slices, tiny_config(epochs=2, **{"steps_per_epoch": 2, **change}), progress=False, checkpoint=ck, resume=True)
    assert torch.load(ck, weights_only=False)["epoch"] == 0  # the checkpoint is left as it was


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


def test_init_loads_exactly_those_tensors_and_starts_lower(tmp_path: Path) -> None:
    slices = toy_slices(12, 3)
    trained = train(slices, tiny_config(epochs=2, steps_per_epoch=10), progress=False, checkpoint=tmp_path / "ck.pt")
    weights = tmp_path / "ldh.pt"
    save_weights(trained.network, weights, {"name": "ldh", "version": "test", "network": {"channels": [8, 16, 32]}})
    # zero steps from the weights: the network holds exactly the saved tensors
    loaded = train(slices, tiny_config(epochs=0, init=str(weights)), progress=False).network
    saved = torch.load(weights, weights_only=True)
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, saved[name], rtol=0, atol=0)
    # a checkpoint works as well as a weights file
    from_ck = train(slices, tiny_config(epochs=0, init=str(tmp_path / "ck.pt")), progress=False).network
    for name, tensor in from_ck.state_dict().items():
        torch.testing.assert_close(tensor, saved[name], rtol=0, atol=0)
    # the same short run (same seed, same batches) starts much lower from the weights than from scratch
    scratch = train(slices, tiny_config(epochs=1, steps_per_epoch=2), progress=False)
    tuned = train(slices, tiny_config(epochs=1, steps_per_epoch=2, init=str(weights)), progress=False)
    assert tuned.step_losses[0] < 0.8 * scratch.step_losses[0], (tuned.step_losses, scratch.step_losses)


def test_init_with_other_channels_is_refused(tmp_path: Path) -> None:
    net = train(toy_slices(2, 4), tiny_config(epochs=0), progress=False).network
    weights = tmp_path / "ldh.pt"
    save_weights(net, weights, {"name": "ldh", "version": "test", "network": {"channels": [8, 16, 32]}})
    with pytest.raises(ValueError, match="does not fit"):
        train(toy_slices(2, 4), tiny_config(epochs=0, channels=(4, 8, 16), init=str(weights)), progress=False)


def test_tip_mask_marks_herniation_next_to_the_sac_only() -> None:
    lab = np.zeros((1, 1, 20, 20), np.int64)
    lab[0, 0, 12:18, 5:15] = L.DURAL_SAC
    lab[0, 0, 4:12, 9:11] = L.HERNIATION  # rows 4-11, touching the sac at row 12
    mask = tip_mask(torch.from_numpy(lab), reach=2)[0, 0].numpy()
    expected = np.zeros((20, 20), bool)
    expected[10:12, 9:11] = True  # herniation rows 10 and 11: within 2 px of the sac's first row
    np.testing.assert_array_equal(mask, expected)


def test_tip_weight_adds_the_tip_pixels_cross_entropy() -> None:
    lab = np.zeros((1, 1, 20, 20), np.int64)
    lab[0, 0, 12:18, 5:15] = L.DURAL_SAC
    lab[0, 0, 4:12, 9:11] = L.HERNIATION
    labels = torch.from_numpy(lab)
    pred = lab.copy()
    pred[0, 0, 10:12, 9:11] = L.DURAL_SAC  # the tip read as sac, the error the weight is for
    logits = torch.nn.functional.one_hot(torch.from_numpy(pred[:, 0]), len(L)).permute(0, 3, 1, 2).float() * 4.0
    plain = segmentation_loss(0.0)(logits, labels)
    weighted = segmentation_loss(5.0)(logits, labels)
    pixel_ce = torch.nn.functional.cross_entropy(logits, labels[:, 0], reduction="none")[0]
    expected_extra = 5.0 * float(pixel_ce[10:12, 9:11].sum()) / 400
    assert expected_extra > 0.05
    assert float(weighted - plain) == pytest.approx(expected_extra, rel=1e-5)
    # a right answer at the tip leaves almost nothing to add
    right = torch.nn.functional.one_hot(labels[:, 0], len(L)).permute(0, 3, 1, 2).float() * 4.0
    extra_right = float(segmentation_loss(5.0)(right, labels) - segmentation_loss(0.0)(right, labels))
    assert 0 < extra_right < expected_extra / 10


def soft(labels: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` labels as ``(N, C, H, W)`` shares (one-hot)."""
    return torch.nn.functional.one_hot(labels[:, 0].long(), len(L)).permute(0, 3, 1, 2).float()


def as_shares(slices: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """Prepared slices with their labels stored as shares, as ``prepare_slices(soft=True)`` stores them."""
    return [{**s, "label": (soft(s["label"][None])[0] * SHARE_STEPS).to(torch.uint8)} for s in slices]


@pytest.mark.parametrize("options", [{}, {"tip_weight": 5.0}, {"tip_weight": 5.0, "batch_dice": True}])
def test_one_hot_shares_cost_what_the_labels_cost_but_for_the_dice_denominator(options: dict[str, object]) -> None:
    """Whole pixels as shares: the same cross-entropy and tip term; the Dice squares the predictions."""
    labels = torch.from_numpy(np.stack([labelled_slice(6), labelled_slice(0)])[:, None].astype(np.int64))
    logits = torch.randn(2, len(L), 100, 100, generator=torch.Generator().manual_seed(0)) * 3
    no_dice = {**options, "dice_weight": 0.0}
    assert float(segmentation_loss(**no_dice)(logits, soft(labels))) == pytest.approx(  # type: ignore[arg-type]
        float(segmentation_loss(**no_dice)(logits, labels)), rel=1e-5)  # type: ignore[arg-type]
    right = soft(labels) * 20 - 10  # confident and right: either Dice is ~0 (pooled: no class missing)
    pooled = {**options, "batch_dice": True}
    assert float(segmentation_loss(**pooled)(right, soft(labels))) == pytest.approx(  # type: ignore[arg-type]
        float(segmentation_loss(**pooled)(right, labels)), abs=1e-4)  # type: ignore[arg-type]


@pytest.mark.parametrize("share", [0.3, 0.6])
@pytest.mark.parametrize("dice_weight", [0.0, 1.0, 100.0])
def test_a_shared_pixel_is_cheapest_at_its_shares(dice_weight: float, share: float) -> None:
    """Cross-entropy and the squared Dice on shares are both lowest where the prediction equals them.

    With the Dice's weight at 100 the Dice alone decides: the plain soft Dice would round the shared
    row to 0.05 (share 0.3) or 0.95 (share 0.6), i.e. back to whole pixels.
    """
    shares = torch.zeros(1, len(L), 8, 8)
    shares[0, L.DURAL_SAC] = 1.0
    shares[0, L.HERNIATION, :2] = 1.0  # two rows of herniation, then a row it shares with the sac
    shares[0, L.DURAL_SAC, :2] = 0.0
    shares[0, L.HERNIATION, 2], shares[0, L.DURAL_SAC, 2] = share, 1 - share
    loss = segmentation_loss(dice_weight=dice_weight, batch_dice=True)

    def cost(p_herniation: float) -> float:
        probs = shares.clone().clamp(min=1e-6)
        probs[0, L.HERNIATION, 2], probs[0, L.DURAL_SAC, 2] = p_herniation, 1 - p_herniation
        return float(loss(probs.log(), shares))

    costs = {p: cost(p) for p in (0.05, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.95)}
    assert min(costs, key=costs.get) == share, costs  # type: ignore[arg-type]


def test_a_short_run_on_soft_labels_learns(tmp_path: Path) -> None:
    slices = as_shares(toy_slices(12, 0))
    result = train(slices, tiny_config(epochs=2, steps_per_epoch=7, soft_labels=True), progress=False)
    first, last = np.mean(result.step_losses[:3]), np.mean(result.step_losses[-3:])
    assert last < 0.85 * first, (first, last)


def test_labels_and_shares_are_not_mixed_up() -> None:
    """Label values read as shares (or shares as labels) would train on nonsense without a word."""
    hard = toy_slices(2, 0)
    shares = as_shares(hard)
    with pytest.raises(ValueError, match="soft=True"):
        train(hard, tiny_config(soft_labels=True), progress=False)
    with pytest.raises(ValueError, match="need soft_labels"):
        train(shares, tiny_config(), progress=False)


def test_batch_dice_ignores_a_class_missing_from_one_patch() -> None:
    with_h = np.zeros((20, 20), np.int64)
    with_h[12:18, 5:15] = L.DURAL_SAC
    with_h[8:12, 9:11] = L.HERNIATION
    without_h = with_h.copy()
    without_h[with_h == L.HERNIATION] = 0
    labels = torch.from_numpy(np.stack([with_h, without_h])[:, None])
    logits = torch.nn.functional.one_hot(labels[:, 0], len(L)).permute(0, 3, 1, 2).float() * 8.0  # right everywhere
    per_patch = float(segmentation_loss()(logits, labels))
    pooled = float(segmentation_loss(batch_dice=True)(logits, labels))
    # A class absent from a patch costs ~1 as soon as a little probability (here 3e-4 a pixel) is left on it.
    # 6 foreground classes; disc, both facets and vertebra are absent from both patches and cost 1 either way.
    # Per patch the herniation, absent from the second patch only, costs 1 there as well (9 of 12 terms);
    # pooled over the batch it is found (4 of 6 terms)
    assert per_patch == pytest.approx(9 / 12, abs=0.02)
    assert pooled == pytest.approx(4 / 6, abs=0.02)


def test_workers_draw_different_augmented_batches_and_the_loss_falls(tmp_path: Path) -> None:
    from inference.ldh.training import _batches
    from inference.runtime import batch_stream

    slices = toy_slices(12, 3)
    cfg = tiny_config(augment=True, workers=2, epochs=2, steps_per_epoch=7)
    stream = batch_stream(_batches(slices, cfg, seed_transforms=True), np.random.default_rng(0), workers=2, seed=5)
    batches = [next(stream) for _ in range(4)]
    stream.close()
    # two workers, each seeded from (seed, worker): no two batches alike
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(batches[i][0], batches[j][0])
    result = train(slices, cfg, progress=False)
    assert np.mean(result.step_losses[-3:]) < 0.85 * np.mean(result.step_losses[:3])


def test_time_limit_stops_after_an_epoch_and_resume_finishes(tmp_path: Path) -> None:
    ck = tmp_path / "ck.pt"
    slices = toy_slices(6, 4)
    stopped = train(slices, tiny_config(epochs=3, steps_per_epoch=2, max_seconds=0.0), progress=False, checkpoint=ck)
    assert stopped.stopped_after_epoch == 1 and len(stopped.step_losses) == 2
    done = train(slices, tiny_config(epochs=3, steps_per_epoch=2), progress=False, checkpoint=ck, resume=True)
    assert done.stopped_after_epoch is None and len(done.step_losses) == 6


@pytest.mark.parametrize("pixdim", [None, 0.5])
def test_the_pipeline_works_at_the_grid_the_card_names(tmp_path: Path, pixdim: float | None) -> None:
    """Weights trained with ``--pixdim`` carry it in their card; the pipeline resamples slices to it."""
    from inference.ldh.pipeline import LdhPipeline
    from inference.ldh.transforms import IMAGE, SPACING

    result = train(toy_slices(4, 5), tiny_config(epochs=1, steps_per_epoch=1), progress=False)
    weights = tmp_path / "ldh.pt"
    card: dict[str, object] = {"name": "ldh", "version": "test", "network": {"channels": [8, 16, 32]}}
    if pixdim is not None:
        card["preprocessing"] = {"pixdim_mm": pixdim}
    save_weights(result.network, weights, card)
    pipe = LdhPipeline.from_weights(weights, device="cpu", use_level_finder=False)
    expected = 1.0 if pixdim is None else pixdim
    assert pipe.pixdim == expected
    # a 100 x 120 slice of 0.4 mm pixels (40 x 48 mm) on the network's grid
    item = pipe._transforms({IMAGE: torch.rand(1, 100, 120), SPACING: (0.4, 0.4)})
    assert tuple(item[IMAGE].shape[-2:]) == (round(40 / expected), round(48 / expected))
    with pytest.raises(ValueError, match="positive spacing"):
        LdhPipeline(result.network, pixdim=0.0)


def test_a_2d_network_widened_to_25d_starts_as_it_was() -> None:
    """``--context 1 --init <2D weights>``: the neighbours' channels start at zero weight."""
    from inference.ldh.network import build_network, widen_input

    torch.manual_seed(0)
    flat = build_network((8, 16, 32)).eval()
    wide = build_network((8, 16, 32), in_channels=3)
    wide.load_state_dict(widen_input(flat.state_dict(), wide))
    wide.eval()
    x = torch.rand(2, 1, 64, 64)
    neighbours = torch.rand(2, 2, 64, 64)  # whatever the neighbouring slices hold
    with torch.no_grad():
        torch.testing.assert_close(wide(torch.cat([neighbours[:, :1], x, neighbours[:, 1:]], 1)), flat(x))
    with pytest.raises(ValueError, match="odd"):
        build_network((8, 16, 32), in_channels=2)


def test_a_25d_run_from_2d_weights_trains_and_the_pipeline_follows_its_card(tmp_path: Path) -> None:
    """Three-channel slices (a slice and its neighbours) train from 2D weights; the card drives the pipeline."""
    from inference.ldh.pipeline import LdhPipeline
    from tests.inference.ldh.conftest import make_stack

    flat = train(toy_slices(4, 6), tiny_config(epochs=1, steps_per_epoch=1), progress=False)
    init = tmp_path / "flat.pt"
    save_weights(flat.network, init, {"name": "ldh", "version": "2d", "network": {"channels": [8, 16, 32]}})
    slices = [{"image": s["image"].repeat(3, 1, 1), "label": s["label"]} for s in toy_slices(8, 7)]
    cfg = tiny_config(epochs=1, steps_per_epoch=3, context=1, init=str(init))
    result = train(slices, cfg, progress=False, checkpoint=tmp_path / "ck.pt")
    assert all(np.isfinite(result.step_losses)) and len(result.step_losses) == 3
    weights = tmp_path / "ldh.pt"
    card: dict[str, object] = {"name": "ldh", "version": "25d", "preprocessing": {"context_slices": 1},
                               "network": {"channels": [8, 16, 32], "in_channels": 3}}
    save_weights(result.network, weights, card)
    pipe = LdhPipeline.from_weights(weights, device="cpu", use_level_finder=False)
    assert pipe.context == 1
    labels, p_hern = pipe.segment_stack(make_stack(np.stack([labelled_slice(6)] * 3), 0.0))
    assert labels.shape == p_hern.shape == (3, 100, 100)
    # a card whose input does not fit its context is refused before anything runs
    card["preprocessing"] = {"context_slices": 2}
    save_weights(result.network, weights, card)
    with pytest.raises(WeightsError, match="3 input channels"):
        load_network(weights)
    # resuming the 2.5D checkpoint as 2D would train another network
    with pytest.raises(ValueError, match="context 1 -> 0"):
        train(slices, tiny_config(epochs=2, steps_per_epoch=3), progress=False, checkpoint=tmp_path / "ck.pt", resume=True)
