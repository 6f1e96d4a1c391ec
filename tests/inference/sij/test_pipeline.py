"""The pipeline with a stub network: preprocessing, inferer, post-processing, result object."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from inference.labels import SijLabel
from inference.sij.inferer import SijInferer
from inference.sij.network import SOFTMAX_LABELS
from inference.sij.pipeline import SijPipeline, analyse, restrict_fm_to_joint
from inference.sij.toy import toy_case


@dataclass
class FakeVolume:
    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    sop_instance_uids: list[str]
    frame_numbers: list[int | None]
    series_instance_uid: str
    study_instance_uid: str = "1.2.3"
    frame_of_reference_uid: str | None = "1.2.3.4"


def threshold_stub(t1: np.ndarray, stir: np.ndarray):
    """A 'network' that reads classes off intensities; left/right by the window's half.

    It only works with one window covering the whole (centre-padded) volume.
    """
    def norm(v: float, a: np.ndarray) -> float:
        return float((v - a.mean()) / a.std())

    def net(x: torch.Tensor) -> torch.Tensor:
        t, s = x[:, 0], x[:, 1]
        fm = t > norm(320, t1)
        bone = (t > norm(125, t1)) & ~fm
        sacrum = bone & (t > norm(225, t1))
        ilium = bone & ~sacrum
        right_half = torch.arange(t.shape[-1]) < t.shape[-1] / 2
        classes = torch.zeros_like(t, dtype=torch.long)
        classes[fm] = SOFTMAX_LABELS.index(SijLabel.FAT_METAPLASIA)
        classes[sacrum] = SOFTMAX_LABELS.index(SijLabel.SACRUM)
        classes[ilium & ~right_half] = SOFTMAX_LABELS.index(SijLabel.ILIUM_LEFT)
        classes[ilium & right_half] = SOFTMAX_LABELS.index(SijLabel.ILIUM_RIGHT)
        onehot = torch.nn.functional.one_hot(classes, len(SOFTMAX_LABELS)).permute(0, 4, 1, 2, 3).float()
        oedema = (s > norm(200, stir)).float()[:, None] * 20 - 10
        return torch.cat([onehot * 20 - 10, oedema], dim=1)

    return net


def volumes(seed: int):
    case = toy_case(seed)
    uids = list(case.sop_instance_uids)
    t1 = FakeVolume(case.t1, case.affine, case.spacing, uids, [None] * len(uids), "1.2.3.10")
    stir = FakeVolume(case.stir, case.affine, case.spacing, uids, [None] * len(uids), "1.2.3.11")
    return case, t1, stir


def test_pipeline_with_stub_reproduces_reference_analysis() -> None:
    case, t1, stir = volumes(seed=7)
    pipe = SijPipeline(
        threshold_stub(case.t1, case.stir), inferer=SijInferer(patch_size=(16, 96, 96), flip_tta=False), spacing_mm=1.5
    )
    result = pipe(t1, stir)
    assert np.array_equal(result.labels, case.t1_labels)
    assert np.array_equal(result.oedema, case.stir_labels == SijLabel.OEDEMA)
    reference = analyse(case.t1_labels, case.stir_labels == SijLabel.OEDEMA, case.affine,
                        sop_instance_uids=case.sop_instance_uids)
    assert result.sparcc_fm_score == reference.sparcc_fm_score
    assert result.fm_table_dict() == reference.fm_table_dict()
    assert result.fm_volume_ml == pytest.approx(reference.fm_volume_ml)
    assert result.sparcc_fm_score > 0 and len(result.fm_table) == 5
    assert result.oedema_assessed and result.asas_positive_mri is not None
    assert result.stir_series_instance_uid == "1.2.3.11"
    masks = {m.name: m for m in result.masks()}
    fm = masks["fat_metaplasia_left"].array | masks["fat_metaplasia_right"].array
    assert np.array_equal(fm, case.t1_labels == SijLabel.FAT_METAPLASIA)
    assert masks["sacrum"].sop_instance_uids == case.sop_instance_uids
    assert "SPARCC" in result.summary()


def test_without_stir_oedema_is_not_assessed() -> None:
    case, t1, _ = volumes(seed=3)
    pipe = SijPipeline(threshold_stub(case.t1, case.stir), inferer=SijInferer(patch_size=(16, 96, 96)))
    result = pipe(t1, None)
    assert not result.oedema_assessed and result.oedema is None and result.asas_positive_mri is None
    assert result.oedema_note == "no STIR series" and "not assessed" in result.summary()
    assert result.features["oedema_assessed"] == 0
    assert all(m.name != "oedema" for m in result.masks())


def test_stir_on_another_grid_is_not_used() -> None:
    case, t1, stir = volumes(seed=5)
    moved = stir.affine.copy()
    moved[0, 3] += 10.0  # 10 mm to the left
    shifted = FakeVolume(stir.array, moved, stir.spacing, stir.sop_instance_uids, stir.frame_numbers, "9.9")
    pipe = SijPipeline(threshold_stub(case.t1, case.stir), inferer=SijInferer(patch_size=(16, 96, 96), flip_tta=False))
    result = pipe(t1, shifted)
    assert not result.oedema_assessed and "not on the T1 grid" in result.oedema_note


def test_flip_tta_keeps_left_and_right() -> None:
    """Mirroring swaps the ilium channels back: a left-ilium answer stays left under TTA."""
    def left_everywhere(x: torch.Tensor) -> torch.Tensor:
        out = torch.full((x.shape[0], 6, *x.shape[2:]), -10.0)
        half = x.shape[-1] // 2
        out[:, SOFTMAX_LABELS.index(SijLabel.ILIUM_LEFT), ..., half:] = 10.0
        out[:, SOFTMAX_LABELS.index(SijLabel.ILIUM_RIGHT), ..., :half] = 10.0
        return out

    probs = SijInferer(patch_size=(4, 32, 32), flip_tta=True)(torch.zeros(1, 2, 4, 32, 32), left_everywhere)
    left = probs[0, SOFTMAX_LABELS.index(SijLabel.ILIUM_LEFT)]
    assert float(left[..., 20:].mean()) > 0.9 and float(left[..., :12].mean()) < 0.1


def test_ilia_take_the_side_they_lie_on() -> None:
    case = toy_case(11)
    swapped = case.t1_labels.copy()
    swapped[case.t1_labels == SijLabel.ILIUM_LEFT] = SijLabel.ILIUM_RIGHT  # network confused the sides
    swapped[case.t1_labels == SijLabel.ILIUM_RIGHT] = SijLabel.ILIUM_LEFT
    from inference.sij.pipeline import lateralise_ilia

    assert np.array_equal(lateralise_ilia(swapped, case.affine), case.t1_labels)
    mirrored = case.affine.copy()
    mirrored[:3, 2] *= -1  # columns now run towards the patient's right
    flipped = lateralise_ilia(case.t1_labels, mirrored)
    assert np.array_equal(flipped == SijLabel.ILIUM_LEFT, case.t1_labels == SijLabel.ILIUM_RIGHT)


def test_fm_far_from_the_joint_takes_its_next_class() -> None:
    labels = np.zeros((2, 40, 40), dtype=np.uint8)
    labels[:, 5:35, 5:15] = SijLabel.SACRUM
    labels[:, 5:35, 17:30] = SijLabel.ILIUM_LEFT
    fallback = labels.copy()
    labels[0, 10:13, 17:19] = SijLabel.FAT_METAPLASIA  # subchondral iliac lesion at the joint
    labels[0, 20:22, 27:29] = SijLabel.FAT_METAPLASIA  # in the ilium, 12 mm from the sacrum
    labels[0, 37:39, 37:39] = SijLabel.FAT_METAPLASIA  # in fat, far from both bones
    labels[1, 2:4, 2:4] = SijLabel.FAT_METAPLASIA
    fallback[1] = 0  # a slice without bone keeps no FM
    out = restrict_fm_to_joint(labels, fallback, (1.0, 1.0), max_mm=10.0)
    assert (out[0, 10:13, 17:19] == SijLabel.FAT_METAPLASIA).all()
    assert (out[0, 20:22, 27:29] == SijLabel.ILIUM_LEFT).all()
    assert (out[0, 37:39, 37:39] == SijLabel.BACKGROUND).all()
    assert not (out[1] == SijLabel.FAT_METAPLASIA).any()
    with_far = restrict_fm_to_joint(labels, fallback, (1.0, 1.0), max_mm=20.0)
    assert (with_far[0, 20:22, 27:29] == SijLabel.FAT_METAPLASIA).all()


def test_labels_take_the_first_of_tied_classes_as_torch_argmax_does() -> None:
    """The fast channel argmax gives torch's indices, ties to the first class included."""
    from inference.sij.pipeline import _argmax_channels

    rng = np.random.default_rng(0)
    probs = torch.as_tensor(rng.integers(0, 4, size=(5, 3, 7, 9)).astype(np.float32))  # many ties
    assert np.array_equal(_argmax_channels(probs), torch.argmax(probs, dim=0).numpy())
