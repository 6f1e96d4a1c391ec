"""Canonical orientation, resampling, and the stack-order level fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.ldh.levels import stack_order_levels
from inference.ldh.transforms import (
    IMAGE,
    LABEL,
    NATIVE_SHAPE,
    SPACING,
    ResampleToSpacingd,
    canonical_orientation,
    inference_transforms,
    resample_back,
    train_transforms,
)

from tests.inference.ldh.conftest import labelled_slice, make_stack


@pytest.mark.parametrize(
    ("row", "col", "expected"),
    [
        ((1, 0, 0), (0, 1, 0), (False, False, False)),
        ((-1, 0, 0), (0, 1, 0), (False, False, True)),
        ((1, 0, 0), (0, -1, 0), (False, True, False)),
        ((0, 1, 0), (1, 0, 0), (True, False, False)),
        ((0, -1, 0), (-1, 0, 0), (True, True, True)),
        ((0.96, 0, 0.28), (0, 0.96, -0.28), (False, False, False)),
    ],
)
def test_canonical_orientation(row: tuple, col: tuple, expected: tuple) -> None:
    o = canonical_orientation(row, col)
    assert (o.transpose, o.flip_rows, o.flip_cols) == expected
    a = np.arange(24).reshape(2, 3, 4)
    np.testing.assert_array_equal(o.invert(o.apply(a)), a)


def test_canonical_view_puts_patient_left_on_the_right_of_the_image() -> None:
    # rows run towards the patient's left, columns posterior: transpose needed
    lab = labelled_slice()
    o = canonical_orientation((0, 1, 0), (1, 0, 0))
    stored = lab.T  # what such a scanner would store
    np.testing.assert_array_equal(o.apply(stored), lab)
    assert o.spacing((0.5, 0.8)) == (0.8, 0.5)


def test_resample_round_trip_keeps_field_of_view() -> None:
    image = torch.rand(1, 120, 90)
    out = ResampleToSpacingd([IMAGE])({IMAGE: image, SPACING: (0.5, 0.8)})
    assert tuple(out[IMAGE].shape) == (1, 60, 72)
    assert out[NATIVE_SHAPE] == (120, 90)
    assert out[SPACING] == pytest.approx((1.0, 1.0))
    back = resample_back(out[IMAGE][None], out[NATIVE_SHAPE])
    assert tuple(back.shape) == (1, 1, 120, 90)


def test_inference_transforms_normalise_to_unit_range() -> None:
    img = torch.from_numpy(labelled_slice()[None].astype(np.float32) * 123.0)
    out = inference_transforms()({IMAGE: img, SPACING: (1.0, 1.0)})
    assert float(out[IMAGE].min()) == 0.0 and float(out[IMAGE].max()) == pytest.approx(1.0)


def test_train_transforms_crop_patches_with_labels() -> None:
    lab = labelled_slice(10, (46, 52))[None]
    img = lab.astype(np.float32) / 6.0
    out = train_transforms(patch=(64, 64))({IMAGE: torch.from_numpy(img), LABEL: torch.from_numpy(lab)})
    sample = out[0] if isinstance(out, list) else out
    assert tuple(sample[IMAGE].shape) == (1, 64, 64) and tuple(sample[LABEL].shape) == (1, 64, 64)
    assert sample[LABEL].dtype == torch.long and int(sample[LABEL].max()) <= 6


def test_stack_order_levels_lowest_is_l5_s1() -> None:
    stacks = [make_stack(np.stack([labelled_slice()] * n), z) for n, z in ((2, 30.0), (3, -10.0), (1, 70.0))]
    levels = stack_order_levels(stacks)
    assert [lv[0].level for lv in levels] == ["L4/L5", "L5/S1", "L3/L4"]
    assert [len(lv) for lv in levels] == [2, 3, 1]
    assert all(x.method == "stack_order" and "inferred" in x.warnings[0] for lv in levels for x in lv)
    many = [make_stack(np.stack([labelled_slice()]), 10.0 * i) for i in range(7)]
    assert stack_order_levels(many)[6][0].level is None  # above T12/L1


def test_stack_context_stacks_neighbours_feet_to_head_and_repeats_the_ends() -> None:
    from inference.ldh.transforms import stack_context

    stack = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 2, 3), np.float32)  # slice k holds k
    alone = stack_context(stack, 0)
    assert alone.shape == (4, 1, 2, 3) and np.array_equal(alone[:, 0], stack)
    up = stack_context(stack, 1)
    assert up.shape == (4, 3, 2, 3)
    assert [list(up[k, :, 0, 0]) for k in range(4)] == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]
    # slices numbered from the head down: the channels still run feet to head (the slice in the middle)
    down = stack_context(stack, 1, towards_head=False)
    assert [list(down[k, :, 0, 0]) for k in range(4)] == [[1, 0, 0], [2, 1, 0], [3, 2, 1], [3, 3, 2]]
    two = stack_context(stack[:1], 2)
    assert two.shape == (1, 5, 2, 3) and not two.any()  # a one-slice stack repeats itself
    with pytest.raises(ValueError, match="context"):
        stack_context(stack, -1)


def test_prepared_training_slices_carry_their_neighbours_feet_to_head() -> None:
    """``prepare_slices(context=1)``: the channels run feet to head whichever way the stack is numbered."""
    from pathlib import Path

    from inference.labels import AxialLabel
    from inference.ldh.data import LabelledStudy, prepare_slices

    labels = np.stack([labelled_slice(depth) for depth in (0, 4, 8)])  # k runs caudally in make_stack
    stack = make_stack(labels, 0.0)
    study = LabelledStudy(Path("s"), [stack], [labels], None, {})
    flat = prepare_slices([study], pixdim=1.0)
    wide = prepare_slices([study], pixdim=1.0, context=1)
    assert [tuple(s["image"].shape) for s in flat] == [(1, 100, 100)] * 3
    assert [tuple(s["image"].shape) for s in wide] == [(3, 100, 100)] * 3
    for f, w in zip(flat, wide):
        assert torch.equal(f["label"], w["label"])
    # row 52, column 49 is herniation on k = 1 and k = 2 (4 and 8 rows of it) and sac-side background
    # on k = 0. k runs towards the feet here, so the middle slice's channels are (k = 2, 1, 0)
    assert labels[0][52, 49] != AxialLabel.HERNIATION == labels[1][52, 49] == labels[2][52, 49]
    middle = wide[1]["image"][:, 52, 49]
    assert middle[0] == middle[1] != middle[2], middle
    first = wide[0]["image"][:, 52, 49]  # k = 0, the top of the stack: its head-ward neighbour repeats it
    assert first[1] == first[2] != first[0], first


def test_soft_labels_keep_the_share_of_each_coarse_pixel_that_nearest_rounds_away() -> None:
    """``prepare_slices(soft=True)``: per class the share of each new pixel's area, in 1/255 steps."""
    from pathlib import Path

    from inference.labels import AxialLabel
    from inference.ldh.data import LabelledStudy, prepare_slices

    labels = np.stack([labelled_slice(depth) for depth in (3, 5)])  # 1 mm pixels
    study = LabelledStudy(Path("s"), [make_stack(labels, 0.0)], [labels], None, {})
    hard = prepare_slices([study], pixdim=2.0)
    soft = prepare_slices([study], pixdim=2.0, soft=True)
    assert [tuple(s["label"].shape) for s in soft] == [(len(AxialLabel), 50, 50)] * 2
    assert soft[0]["label"].dtype == torch.uint8
    shares = torch.stack([s["label"] for s in soft]).float()
    assert torch.allclose(shares.sum(dim=1), torch.full((2, 50, 50), 255.0), atol=len(AxialLabel))
    # each class keeps its area: 2 x 2 native pixels per new one
    for s, lab in zip(soft, labels):
        for cls in AxialLabel:
            assert float(s["label"][cls].float().sum()) / 255 * 4 == pytest.approx(float((lab == cls).sum()), rel=0.02, abs=1)
    # a herniation 3 px deep on the 1 mm grid is 1.5 px on the 2 mm one: nearest rounds it to whole
    # pixels, the shares keep the half pixel
    depth_hard = [int((s["label"][0] == AxialLabel.HERNIATION).any(dim=1).sum()) for s in hard]
    depth_soft = [float(s["label"][AxialLabel.HERNIATION].float().max(dim=1).values.sum()) / 255 for s in soft]
    assert depth_hard[0] in (1, 2) and depth_soft[0] == pytest.approx(1.5, abs=0.05)
    assert depth_soft[1] == pytest.approx(2.5, abs=0.05)
    # away from boundaries the two agree
    agree = torch.stack([(s["label"].argmax(dim=0) == h["label"][0]) for s, h in zip(soft, hard)]).float().mean()
    assert float(agree) > 0.97


def test_train_transforms_keep_soft_labels_a_distribution_after_padding() -> None:
    from inference.labels import AxialLabel

    lab = torch.from_numpy(labelled_slice(10, (46, 52))[20:60, 30:70].astype(np.int64))  # 40 x 40: padded to 64
    assert int((lab == AxialLabel.BACKGROUND).sum()) < lab.numel() // 2
    shares = torch.nn.functional.one_hot(lab, len(AxialLabel)).permute(2, 0, 1).float()
    data = {IMAGE: lab[None].float() / 6.0, LABEL: shares}
    plain = train_transforms(patch=(64, 64), soft=True, augment=False)(data)
    target = (plain[0] if isinstance(plain, list) else plain)[LABEL]
    assert tuple(target.shape) == (len(AxialLabel), 64, 64) and target.dtype == torch.float32
    assert torch.allclose(target.sum(dim=0), torch.ones(64, 64), atol=1e-5)
    # the padded rim (12 pixels each side, no class at all before) is background; the slice kept its classes
    rim = torch.ones(64, 64, dtype=torch.bool)
    rim[12:52, 12:52] = False
    assert torch.all(target[AxialLabel.BACKGROUND][rim] == 1.0)
    assert torch.equal(target[:, 12:52, 12:52], shares)
    # augmented (rotated, scaled: shares interpolated bilinearly), still a distribution per pixel
    torch.manual_seed(0)
    augmented = train_transforms(patch=(64, 64), soft=True).set_random_state(seed=3)(data)
    target = (augmented[0] if isinstance(augmented, list) else augmented)[LABEL]
    assert torch.allclose(target.sum(dim=0), torch.ones(64, 64), atol=1e-5) and float(target.min()) >= 0.0
