"""Axial slice to disc level: hand-made geometry."""

from __future__ import annotations

import numpy as np
import pytest

from inference.levels import SliceLevel, assign_from_discs, assign_levels
from inference.levels.mapping import coordinates_agree, stack_order_levels
from tests.inference.levels.shapes import FakeVolume, axial_stack, disc

DISCS = [disc("L3/L4", 60.0, 0.0), disc("L4/L5", 25.0, 10.0), disc("L5/S1", -12.0, 30.0)]


def test_stack_parallel_to_disc_gets_its_level_and_signed_distances() -> None:
    stack = axial_stack((0.0, 0.0, 25.0), tilt_deg=10.0)
    levels = assign_from_discs(stack, DISCS)
    assert [lv.level for lv in levels] == ["L4/L5"] * 5
    assert [lv.method for lv in levels] == ["sagittal"] * 5
    np.testing.assert_allclose([lv.distance_mm for lv in levels], [-8, -4, 0, 4, 8], atol=1e-6)
    # confidence falls with the distance from the disc plane
    assert levels[2].confidence > levels[0].confidence > 0


def test_angled_stack_distance_is_measured_along_the_disc_normal() -> None:
    # L5/S1 is tilted 30 degrees; an axial stack tilted 10 degrees crosses its axis obliquely
    stack = axial_stack((0.0, 0.0, -12.0), tilt_deg=10.0, n_slices=3, slice_mm=5.0)
    levels = assign_from_discs(stack, DISCS)
    assert [lv.level for lv in levels] == ["L5/S1"] * 3
    expected = 5.0 / np.cos(np.radians(20.0))
    np.testing.assert_allclose([lv.distance_mm for lv in levels], [-expected, 0.0, expected], atol=1e-6)


def test_stack_between_discs_gets_no_level() -> None:
    stack = axial_stack((0.0, 0.0, 43.0), n_slices=3, slice_mm=2.0)  # 16-18 mm from L3/L4 and L4/L5
    levels = assign_from_discs(stack, DISCS, tolerance_mm=12.0)
    assert all(lv.level is None and lv.confidence == 0.0 for lv in levels)
    assert all(any("no disc within 12 mm" in w for w in lv.warnings) for lv in levels)
    # a wider tolerance takes them
    wide = assign_from_discs(stack, DISCS, tolerance_mm=20.0)
    assert all(lv.level in {"L3/L4", "L4/L5"} for lv in wide)


def test_slice_must_intersect_the_disc_axis_in_its_field_of_view() -> None:
    far_left = axial_stack((400.0, 0.0, 25.0), tilt_deg=10.0)
    levels = assign_from_discs(far_left, DISCS)
    assert all(lv.level is None for lv in levels)
    assert "crosses no disc" in levels[0].warnings[0]


def test_stack_order_lowest_is_l5s1_whatever_the_list_order() -> None:
    stacks = [axial_stack((0, 0, z)) for z in (25.0, -12.0, 60.0)]
    levels = stack_order_levels(stacks, "no sagittal series")
    assert [lv[0].level for lv in levels] == ["L4/L5", "L5/S1", "L3/L4"]
    for stack_levels, stack in zip(levels, stacks):
        assert len(stack_levels) == stack.array.shape[0]
        assert all(lv.method == "stack_order" and lv.distance_mm is None for lv in stack_levels)
        assert all(lv.warnings[0].startswith("inferred") for lv in stack_levels)


def test_assign_levels_without_sagittal_falls_back_to_stack_order() -> None:
    stacks = [axial_stack((0, 0, z)) for z in (-12.0, 25.0)]
    levels = assign_levels(stacks, None)
    assert [lv[0].level for lv in levels] == ["L5/S1", "L4/L5"]
    assert all(isinstance(lv, SliceLevel) and "no sagittal" in lv.warnings[0] for lv in levels[1])
    assert assign_levels([], None) == []


@pytest.mark.parametrize(("offset", "agree"), [((0.0, 0.0, 0.0), True), ((0.0, 0.0, 900.0), False)])
def test_coordinates_agree(offset: tuple[float, float, float], agree: bool) -> None:
    sag = FakeVolume(np.zeros((10, 100, 100), np.float32), np.diag([4.0, 2.0, 2.0, 1.0]), "a")
    sag.affine[:3, 3] = (-20.0, -100.0, -100.0)
    ax = axial_stack(offset)
    assert coordinates_agree(ax, sag) is agree
