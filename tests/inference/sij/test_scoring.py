"""Five-slice selection, score arithmetic, volumes and the ASAS flag."""

from __future__ import annotations

import numpy as np
import pytest

from inference.sij.scoring import asas_positive_mri, lesion_volumes_ml, select_sparcc_slices, sparcc_score


def test_five_slices_with_largest_joint_area() -> None:
    area = np.array([0, 1, 5, 9, 9, 8, 7, 6, 1, 0], dtype=float)
    assert select_sparcc_slices(area).tolist() == [3, 4, 5, 6, 7]  # 39 > 38
    assert select_sparcc_slices(area[::-1]).tolist() == [2, 3, 4, 5, 6]


def test_short_volume_uses_every_slice() -> None:
    assert select_sparcc_slices(np.ones(3)).tolist() == [0, 1, 2]


def test_ties_take_the_first_window() -> None:
    assert select_sparcc_slices(np.ones(8)).tolist() == [0, 1, 2, 3, 4]


def test_score_counts_quadrants_on_chosen_slices_only() -> None:
    present = np.zeros((7, 8), dtype=bool)
    present[0, :] = True  # outside the chosen window
    present[2, [0, 3, 7]] = True
    present[4, :] = True
    assert sparcc_score(present, np.arange(1, 6)) == 11
    assert sparcc_score(np.ones((5, 8), dtype=bool), np.arange(5)) == 40


def test_score_rejects_wrong_table() -> None:
    with pytest.raises(ValueError):
        sparcc_score(np.zeros((5, 6), dtype=bool), np.arange(5))


def test_volumes_per_joint() -> None:
    q = np.full((2, 3, 3), -1, dtype=np.int8)
    q[0, 0, :] = 1  # 3 left voxels
    q[1, :, 0] = 6  # 3 right voxels
    lesion = q >= 0
    lesion[1, 2, 2] = True  # one unassigned lesion voxel
    vols = lesion_volumes_ml(q, lesion, voxel_volume_mm3=500.0)
    assert vols == pytest.approx({"left": 1.5, "right": 1.5, "total": 3.5})


def test_asas_single_lesion_on_two_slices() -> None:
    m = np.zeros((4, 10, 10), dtype=bool)
    m[1, 2:5, 2:5] = True
    assert not asas_positive_mri(m)
    m[2, 3:6, 3:6] = True
    assert asas_positive_mri(m)


def test_asas_two_lesions_on_one_slice() -> None:
    m = np.zeros((3, 12, 12), dtype=bool)
    m[1, 1:3, 1:3] = True
    m[1, 8:10, 8:10] = True
    assert asas_positive_mri(m)
    assert not asas_positive_mri(m, min_voxels=5)
