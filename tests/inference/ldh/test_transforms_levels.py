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
