"""Quadrant assignment on hand-made semi-coronal geometry."""

from __future__ import annotations

import numpy as np
import pytest

from inference.labels import SijLabel
from inference.sij.quadrants import QUADRANT_NAMES, assign_quadrants, lesion_bones, quadrant_table


def coronal_affine(inferior_rows: bool = True) -> np.ndarray:
    """Columns run towards the patient's left (+x); rows run down (-z) or up (+z)."""
    col_dir = np.array([0.0, 0.0, -1.0 if inferior_rows else 1.0])
    row_dir = np.array([1.0, 0.0, 0.0])
    normal = np.cross(row_dir, col_dir)
    affine = np.eye(4)
    affine[:3, 0] = normal * 4.0
    affine[:3, 1] = col_dir * 1.0
    affine[:3, 2] = row_dir * 1.0
    affine[:3, 3] = [-30.0, 0.0, 20.0]
    return affine


def anatomy_slice() -> np.ndarray:
    """Right ilium (low x = low column), sacrum in the middle, left ilium, 2-pixel joint spaces."""
    a = np.zeros((40, 60), dtype=np.uint8)
    a[5:36, 10:23] = SijLabel.ILIUM_RIGHT
    a[5:36, 25:36] = SijLabel.SACRUM
    a[5:36, 38:51] = SijLabel.ILIUM_LEFT
    return a


def name_of(qmap: np.ndarray, k: int, i: int, j: int) -> str:
    return QUADRANT_NAMES[int(qmap[k, i, j])]


def test_each_lesion_lands_in_its_quadrant() -> None:
    anatomy = np.stack([anatomy_slice()] * 2)
    lesion = np.zeros_like(anatomy, dtype=bool)
    lesion[0, 8:13, 38:41] = True  # left ilium, upper
    lesion[0, 25:31, 33:36] = True  # sacrum, left half, lower
    lesion[1, 28:33, 20:23] = True  # right ilium, lower
    lesion[1, 8:11, 25:28] = True  # sacrum, right half, upper
    anatomy[lesion] = SijLabel.FAT_METAPLASIA  # the network labels lesions, not the bone under them
    qmap = assign_quadrants(anatomy, lesion, coronal_affine())
    assert name_of(qmap.quadrants, 0, 10, 39) == "left_iliac_upper"
    assert name_of(qmap.quadrants, 0, 28, 34) == "left_sacral_lower"
    assert name_of(qmap.quadrants, 1, 30, 21) == "right_iliac_lower"
    assert name_of(qmap.quadrants, 1, 9, 26) == "right_sacral_upper"
    assert (qmap.quadrants[~lesion] == -1).all()
    assert (qmap.quadrants[lesion] >= 0).all()
    counts, present = quadrant_table(qmap.quadrants)
    assert present.sum() == 4
    assert counts[0, QUADRANT_NAMES.index("left_iliac_upper")] == 15
    # midpoint of the band's cranio-caudal extent: the anatomy is symmetric about row 20
    assert qmap.midpoint_z[0, 0] == pytest.approx(20.0 - 20.0)
    assert qmap.joint_area_mm2[0, 0] > 0 and qmap.joint_area_mm2[0, 1] > 0


def test_upper_lower_follow_patient_z_not_row_order() -> None:
    anatomy = anatomy_slice()[None]
    lesion = np.zeros_like(anatomy, dtype=bool)
    lesion[0, 8:12, 38:41] = True
    down = assign_quadrants(anatomy, lesion, coronal_affine(inferior_rows=True))
    up = assign_quadrants(anatomy, lesion, coronal_affine(inferior_rows=False))
    assert name_of(down.quadrants, 0, 9, 39) == "left_iliac_upper"
    assert name_of(up.quadrants, 0, 9, 39) == "left_iliac_lower"


def test_lesion_bridging_the_joint_is_split_by_nearest_bone() -> None:
    anatomy = anatomy_slice()
    lesion = np.zeros_like(anatomy, dtype=bool)
    lesion[15:18, 20:28] = True  # right ilium, joint space and sacrum in one blob
    bones = lesion_bones(anatomy, lesion, (1.0, 1.0))
    assert (bones[15:18, 20:24] == SijLabel.ILIUM_RIGHT).all()  # col 23: 1 mm to ilium, 2 mm to sacrum
    assert (bones[15:18, 24:28] == SijLabel.SACRUM).all()
    assert (bones[~lesion] == 0).all()


def test_deep_sacral_lesion_stays_sacral() -> None:
    """A lesion deeper than the joint space is wider still belongs to the bone it touches."""
    anatomy = anatomy_slice()
    lesion = np.zeros_like(anatomy, dtype=bool)
    lesion[10:20, 25:33] = True  # 8 mm deep into the sacrum from the right joint
    bones = lesion_bones(anatomy, lesion, (1.0, 1.0))
    assert (bones[lesion] == SijLabel.SACRUM).all()


def test_no_lesion_gives_empty_table() -> None:
    anatomy = np.stack([anatomy_slice()] * 3)
    qmap = assign_quadrants(anatomy, np.zeros_like(anatomy, dtype=bool), coronal_affine())
    counts, present = quadrant_table(qmap.quadrants)
    assert counts.shape == (3, 8) and not present.any()


def test_min_voxels_drops_specks() -> None:
    q = np.full((1, 4, 4), -1, dtype=np.int8)
    q[0, 0, 0] = 2
    q[0, 1, :3] = 5
    _, present = quadrant_table(q, min_voxels=2)
    assert present[0].tolist() == [False, False, False, False, False, True, False, False]


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError):
        assign_quadrants(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), dtype=bool), np.eye(4))
