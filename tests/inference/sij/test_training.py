"""A short training run on toy cases: the loss falls, checkpoints resume, weights load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from inference.sij.network import NetworkConfig
from inference.sij.pipeline import SijPipeline
from inference.sij.toy import toy_case
from inference.sij.training import TrainConfig, round_to_stored, segmentation_loss, train_segmentation, write_model

SMALL = NetworkConfig(
    filters=(4, 8, 16),
    kernels=((1, 3, 3), (1, 3, 3), (3, 3, 3)),
    strides=((1, 1, 1), (1, 2, 2), (2, 2, 2)),
    dropout=0.0,
)


def small_config(steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_cases=2, samples_per_case=1, patch_size=(4, 32, 32), lr=1e-2,
                       checkpoint_every=5, network=SMALL, threads=1)


def test_short_run_loss_falls_and_resumes(tmp_path: Path) -> None:
    cases = [toy_case(s, shape=(6, 40, 48)).as_dict() for s in range(4)]
    ckpt = tmp_path / "run.ckpt"
    _, history = train_segmentation(cases, small_config(30), checkpoint=ckpt, progress=False)
    assert len(history) == 30
    assert np.mean(history[-5:]) < 0.8 * np.mean(history[:5])
    # a longer run resumes from the checkpoint instead of starting over
    steps_seen: list[int] = []
    _, longer = train_segmentation(cases, small_config(35), checkpoint=ckpt, resume=True, progress=False,
                                   on_step=lambda s, _: steps_seen.append(s))
    assert steps_seen == list(range(30, 35)) and longer[:30] == history


def test_written_weights_load_into_the_pipeline(tmp_path: Path) -> None:
    cfg = small_config(2)
    net, _ = train_segmentation([toy_case(0, shape=(6, 40, 48)).as_dict()], cfg, progress=False)
    path = write_model(tmp_path / "sij_test.pt", net, cfg, classifier=None, version="0.0-test", training_data="toy")
    pipe = SijPipeline.from_weights(path, device="cpu", flip_tta=False)
    assert pipe.model is not None and pipe.model.version == "0.0-test" and pipe.model.synthetic
    round_to_stored(net)  # the file holds float16
    for key, value in net.state_dict().items():
        assert torch.equal(pipe.network.state_dict()[key], value)  # type: ignore[attr-defined]


def test_init_starts_from_existing_weights(tmp_path: Path) -> None:
    cfg = small_config(1)
    net, _ = train_segmentation([toy_case(0, shape=(6, 40, 48)).as_dict()], cfg, progress=False)
    path = write_model(tmp_path / "start.pt", net, cfg, classifier=None, version="0.0-test", training_data="toy")
    zero_lr = TrainConfig(**{**small_config(1).__dict__, "lr": 0.0, "init": str(path)})
    again, _ = train_segmentation([toy_case(1, shape=(6, 40, 48)).as_dict()], zero_lr, progress=False)
    round_to_stored(net)  # the file holds float16
    for key, value in net.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_fm_weight_raises_the_loss_of_missed_fat_metaplasia() -> None:
    logits = torch.zeros(2, 6, 2, 8, 8)
    logits[:, 0] = 3.0  # background everywhere: the lesion is missed
    label = torch.zeros(2, 1, 2, 8, 8)
    label[:, :, :, 2:4, 2:4] = 1.0  # fat metaplasia
    oedema, valid = torch.zeros(2, 1, 2, 8, 8), torch.zeros(2)
    plain = segmentation_loss(logits, label, oedema, valid, ce_weights=(1, 1, 1, 1, 1))
    heavy = segmentation_loss(logits, label, oedema, valid, ce_weights=(1, 5, 1, 1, 1))
    assert float(heavy) > float(plain)


def test_workers_train_and_give_back_a_cpu_network() -> None:
    cases = [toy_case(s, shape=(6, 40, 48)).as_dict() for s in range(4)]
    cfg = TrainConfig(**{**small_config(30).__dict__, "workers": 2})
    net, history = train_segmentation(cases, cfg, progress=False)
    assert len(history) == 30 and np.mean(history[-5:]) < 0.8 * np.mean(history[:5])
    assert next(net.parameters()).device.type == "cpu"


def test_time_limit_stops_early_with_a_checkpoint_that_resumes(tmp_path: Path) -> None:
    cases = [toy_case(s, shape=(6, 40, 48)).as_dict() for s in range(2)]
    ckpt = tmp_path / "run.ckpt"
    limited = TrainConfig(**{**small_config(50).__dict__, "max_seconds": 0.0})
    _, history = train_segmentation(cases, limited, checkpoint=ckpt, progress=False)
    assert len(history) == 1 and torch.load(ckpt, weights_only=False)["step"] == 1
    _, rest = train_segmentation(cases, small_config(3), checkpoint=ckpt, resume=True, progress=False)
    assert len(rest) == 3 and rest[0] == history[0]


def test_weights_keep_shared_tensors_shared(tmp_path: Path) -> None:
    """DynUNet registers each block twice; the file must not hold two copies (GPU networks did: every
    tensor is copied to the CPU, as write_model now does on any device)."""
    net, _ = train_segmentation([toy_case(0, shape=(6, 40, 48)).as_dict()], small_config(1), progress=False)
    path = write_model(tmp_path / "w.pt", net, small_config(1), classifier=None, version="0", training_data="toy")
    state = torch.load(path, weights_only=True)
    shared = [k for k in state if k.startswith("skip_layers.")]
    assert shared, "expected DynUNet's duplicate registrations"
    ptrs = {v.untyped_storage().data_ptr() for v in state.values()}
    assert len(ptrs) < len(state)


def test_weights_are_stored_half_and_load_as_the_rounded_network(tmp_path: Path) -> None:
    """float16 on disk (the bundled file stays small); the pipeline gets float32 parameters equal
    to the network rounded by round_to_stored, on which the classifier is fitted."""
    case = toy_case(0, shape=(6, 40, 48))
    net, _ = train_segmentation([case.as_dict()], small_config(3), progress=False)
    before = [p.detach().clone() for p in net.parameters()]
    path = write_model(tmp_path / "w.pt", net, small_config(3), classifier=None, version="0", training_data="toy")
    state = torch.load(path, weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    round_to_stored(net)
    changed = sum(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert changed > 0, "rounding to float16 should change some float32 parameters"
    for a, b in zip(before, net.parameters()):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4)
    loaded = SijPipeline.from_weights(path, device="cpu")
    assert next(loaded.network.parameters()).dtype == torch.float32
    for (name, a), b in zip(net.state_dict().items(), loaded.network.state_dict().values()):
        assert torch.equal(a, b), name
    t1 = case.t1.astype(np.float32)
    direct = SijPipeline(net, inferer=loaded.inferer, device="cpu", spacing_mm=loaded.spacing_mm)
    assert torch.equal(direct.probabilities(t1, None, case.spacing), loaded.probabilities(t1, None, case.spacing))


def test_flip_tta_follows_the_card_unless_overridden(tmp_path: Path) -> None:
    import json

    from inference.modelcard import card_path

    net, _ = train_segmentation([toy_case(0, shape=(6, 40, 48)).as_dict()], small_config(1), progress=False)
    path = write_model(tmp_path / "w.pt", net, small_config(1), classifier=None, version="0", training_data="toy")
    # fitted on outputs without TTA, so the card says so and the pipeline follows it
    assert SijPipeline.from_weights(path, device="cpu").inferer.flip_tta is False
    assert SijPipeline.from_weights(path, device="cpu", flip_tta=True).inferer.flip_tta is True
    card = json.loads(card_path(path).read_text())
    del card["preprocessing"]["flip_tta"]  # cards written before the key: TTA on, as before
    card_path(path).write_text(json.dumps(card))
    assert SijPipeline.from_weights(path, device="cpu").inferer.flip_tta is True


def test_overlap_per_axis_from_the_card(tmp_path: Path) -> None:
    import json

    import pytest

    from inference.modelcard import card_path
    from inference.sij.pipeline import overlap_setting

    assert overlap_setting(0.25) == 0.25 and overlap_setting([0, 0.25, 0.25]) == (0.0, 0.25, 0.25)
    with pytest.raises(ValueError):
        overlap_setting([0.1, 0.2])
    net, _ = train_segmentation([toy_case(0, shape=(6, 40, 48)).as_dict()], small_config(1), progress=False)
    path = write_model(tmp_path / "w.pt", net, small_config(1), classifier=None, version="0", training_data="toy")
    card = json.loads(card_path(path).read_text())
    card["preprocessing"]["overlap"] = [0.0, 0.25, 0.25]
    card_path(path).write_text(json.dumps(card))
    pipe = SijPipeline.from_weights(path, device="cpu")
    assert pipe.inferer.overlap == (0.0, 0.25, 0.25)
    case = toy_case(1, shape=(6, 40, 48))
    probs = pipe.probabilities(case.t1.astype(np.float32), None, case.spacing)
    assert probs.shape[-3] == 6 and bool(torch.isfinite(probs).all())
