"""SIJ ground-truth rules on hand-made label slices (quadrants, slice choice, ASAS, volume)."""

from __future__ import annotations

import numpy as np
import pytest

from inference.labels import SijLabel
from inference.phantoms.sij_truth import (
    QUADRANT_KEYS,
    asas_positive,
    cranial_heights,
    lesion_volume_ml,
    select_sparcc_slices,
    slice_quadrants,
)

CORONAL = np.array([1.0, 0.0, 0.0, 0.0, 0.0, -1.0])  # rows run caudally, columns to the patient's left
FM = SijLabel.FAT_METAPLASIA


def _pelvis() -> np.ndarray:
    """1 mm pixels. Right ilium cols 10-37, 2 mm gap, sacrum cols 40-79 (rows 20-80),
    2 mm gap, left ilium from col 82 on rows 40-95 but pulled away (col 95) above row 40,
    so the left joint spans rows 40-80 while the left ilium spans rows 0-95."""
    lab = np.zeros((100, 120), dtype=np.uint8)
    lab[20:81, 40:80] = SijLabel.SACRUM
    lab[10:90, 10:38] = SijLabel.ILIUM_RIGHT
    lab[40:96, 82:110] = SijLabel.ILIUM_LEFT
    lab[0:40, 95:110] = SijLabel.ILIUM_LEFT
    return lab


def _present(lab: np.ndarray, orientation: np.ndarray = CORONAL) -> dict[str, bool]:
    heights = cranial_heights(lab.shape, (1.0, 1.0), orientation)
    return slice_quadrants(lab, FM, heights, (1.0, 1.0)).present()


def _only(*keys: str) -> dict[str, bool]:
    return {k: k in keys for k in QUADRANT_KEYS}


def test_no_lesion_no_quadrant() -> None:
    assert _present(_pelvis()) == _only()


def test_sacral_and_iliac_sides_by_nearest_bone() -> None:
    lab = _pelvis()
    lab[25:29, 43:46] = FM  # sacrum, next to the right joint, high
    lab[30, 30:33] = FM  # right ilium, high
    assert _present(lab) == _only("right_sacral_upper", "right_iliac_upper")


def test_sacral_side_follows_the_nearer_ilium() -> None:
    lab = _pelvis()
    lab[75:78, 74:78] = FM  # sacrum, next to the left joint, low
    assert _present(lab) == _only("left_sacral_lower")


def test_upper_lower_split_at_the_joint_midpoint_not_the_bone_midpoint() -> None:
    # Left joint rows 40-80 -> midpoint row 60; the left ilium alone spans rows 0-95 (mid 47.5).
    lab = _pelvis()
    lab[55:58, 86:90] = FM  # rows 55-57: above the joint midpoint, below the bone midpoint
    assert _present(lab) == _only("left_iliac_upper")
    lab = _pelvis()
    lab[63:66, 86:90] = FM
    assert _present(lab) == _only("left_iliac_lower")


def test_orientation_decides_upper_not_row_index() -> None:
    lab = _pelvis()
    lab[25:29, 43:46] = FM
    flipped = lab[::-1].copy()  # rows now run cranially
    up_rows = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    assert _present(flipped, up_rows) == _present(lab) == _only("right_sacral_upper")


def test_joint_area_counts_only_the_narrow_joint() -> None:
    lab = _pelvis()
    heights = cranial_heights(lab.shape, (1.0, 1.0), CORONAL)
    area = slice_quadrants(lab, FM, heights, (1.0, 1.0)).joint_area_mm2
    # Right: sacrum cols 40-41 (3, 4 mm) and ilium cols 36-37, rows 20-80 (61 rows).
    # Left: sacrum cols 78-79 and ilium cols 82-83, rows 40-80 (41 rows).
    # Plus 2 voxels at each of the 4 joint ends: the bone corner one or two rows beyond
    # the end is within 4 mm diagonally, e.g. right ilium (19, 37) -> sacrum (20, 40): 3.2 mm.
    assert area == pytest.approx(4 * 61 + 4 * 41 + 4 * 2)
    wide = lab.copy()
    wide[:, 36:38] = 0  # widen the right gap to 6 mm: no right joint any more
    area_wide = slice_quadrants(wide, FM, heights, (1.0, 1.0)).joint_area_mm2
    assert area_wide == pytest.approx(4 * 41 + 2 * 2)


def test_cranial_heights_refuses_axial() -> None:
    with pytest.raises(ValueError):
        cranial_heights((4, 4), (1.0, 1.0), np.array([1.0, 0, 0, 0, 1.0, 0]))


def test_select_sparcc_slices() -> None:
    assert select_sparcc_slices(np.array([0, 1, 5, 5, 5, 5, 5, 1, 0])) == [2, 3, 4, 5, 6]
    assert select_sparcc_slices(np.ones(7)) == [0, 1, 2, 3, 4]
    assert select_sparcc_slices(np.array([3, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1])) == [6, 7, 8, 9, 10]
    with pytest.raises(ValueError):
        select_sparcc_slices(np.ones(4))


def test_asas_positive_rules() -> None:
    vol = np.zeros((4, 20, 20), dtype=bool)
    assert not asas_positive(vol)
    vol[1, 5:8, 5:8] = True
    assert not asas_positive(vol)  # one lesion on one slice
    two_slices = vol.copy()
    two_slices[2, 6:9, 6:9] = True
    assert asas_positive(two_slices)
    two_lesions = vol.copy()
    two_lesions[1, 14:16, 14:16] = True
    assert asas_positive(two_lesions)
    apart = vol.copy()
    apart[3, 5:8, 5:8] = True  # slices 1 and 3 are not consecutive
    assert not asas_positive(apart)


def test_lesion_volume_by_side() -> None:
    lab = _pelvis()
    lab[25:29, 43:46] = FM  # 12 voxels, right
    lab[75:78, 74:78] = FM  # 12 voxels, left
    heights = cranial_heights(lab.shape, (1.0, 1.0), CORONAL)
    analysis = slice_quadrants(lab, FM, heights, (0.5, 0.5))
    vol = lesion_volume_ml([analysis, analysis], voxel_volume_mm3=2.0)
    assert vol == pytest.approx({"left": 0.048, "right": 0.048, "total": 0.096})
