"""Lumbar phantom labels follow what the pixel shows (partial volume), not the nearest voxel."""

from __future__ import annotations

import numpy as np
import pytest

from inference.phantoms.lumbar_raster import VolumeGrid
from inference.phantoms.lumbar_render import ImagePlane, sample_labels

#: tissue code -> label value: 0 background, 1 "slab", 2 "other"
TABLE = np.array([0, 1, 2], dtype=np.uint8)


def _grid(n: int = 24) -> VolumeGrid:
    return VolumeGrid(origin=np.zeros(3), spacing=1.0, shape=(n, n, n))


def _axial_plane(z: float, shape: tuple[int, int] = (40, 40), step: float = 0.5) -> ImagePlane:
    """Plane z = const; rows run along y, columns along x, pixel centres from (2, 2)."""
    return ImagePlane(
        position=np.array([2.0, 2.0, z]),
        row_dir=np.array([1.0, 0.0, 0.0]),
        col_dir=np.array([0.0, 1.0, 0.0]),
        spacing=(step, step),
        shape=shape,
    )


def test_a_slab_thinner_than_the_slice_is_not_labelled_where_the_image_averages_it_away() -> None:
    tissue = np.zeros((24, 24, 24), dtype=np.uint8)
    tissue[:, :, 10] = 1  # one voxel thick, across the slice
    plane = _axial_plane(10.0)
    # the centre plane alone (thickness 0) lies inside the slab ...
    assert (sample_labels(tissue, _grid(), plane, TABLE) == 1).all()
    # ... but a 3 mm slice averages z = 9, 10, 11: two thirds background
    assert (sample_labels(tissue, _grid(), plane, TABLE, thickness=3.0) == 0).all()
    # a slab as thick as the slice is what the pixel shows
    tissue[:, :, 9:12] = 1
    assert (sample_labels(tissue, _grid(), plane, TABLE, thickness=3.0) == 1).all()


def test_an_in_plane_boundary_sits_where_the_trilinear_share_crosses_one_half() -> None:
    tissue = np.zeros((24, 24, 24), dtype=np.uint8)
    tissue[10:, :, :] = 2  # voxels x >= 10: the boundary half-way between voxel centres 9 and 10
    labels = sample_labels(tissue, _grid(), _axial_plane(5.0), TABLE, thickness=3.0)
    x = 2.0 + 0.5 * np.arange(40)  # column centres
    expected = np.where(x > 9.5, 2, 0)
    assert (labels == expected[None, :]).all()
    # the diagonal corner of a square: nearest voxel keeps the square corner, the share rounds it
    tissue = np.zeros((24, 24, 24), dtype=np.uint8)
    tissue[10:, 10:, :] = 2
    labels = sample_labels(tissue, _grid(), _axial_plane(5.0, step=0.2, shape=(60, 60)), TABLE)
    centre = 2.0 + 0.2 * np.arange(60)
    cy, cx = np.meshgrid(centre, centre, indexing="ij")
    share = np.clip(cx - 9.0, 0, 1) * np.clip(cy - 9.0, 0, 1)
    decided = np.abs(share - 0.5) > 1e-6
    assert (labels[decided] == np.where(share > 0.5, 2, 0)[decided]).all()
    # at (9.6, 9.6) the nearest voxel is (10, 10), label 2, but its share is 0.6 * 0.6 = 0.36
    corner = np.isclose(cy, 9.6) & np.isclose(cx, 9.6)
    assert corner.sum() == 1 and labels[corner].tolist() == [0]


def test_outside_the_volume_is_background_and_weighs_as_such() -> None:
    tissue = np.full((24, 24, 24), 2, dtype=np.uint8)
    plane = _axial_plane(23.4)  # above the last voxel centre (23): part of each sample lies outside
    labels = sample_labels(tissue, _grid(), plane, TABLE, thickness=3.0)
    # sub-planes at z = 22.4, 23.4 and 24.4: shares 1, 0.6 and 0 -> 1.6 / 3 > 1/2 of tissue 2
    assert (labels == 2).all()
    labels = sample_labels(tissue, _grid(), _axial_plane(24.0), TABLE, thickness=3.0)
    # z = 23, 24 and 25: 1, 0 and 0 -> background
    assert (labels == 0).all()


@pytest.mark.parametrize("z", [5.0, 5.3, 5.5])
def test_a_uniform_volume_is_one_label_at_any_offset(z: float) -> None:
    tissue = np.full((24, 24, 24), 1, dtype=np.uint8)
    assert (sample_labels(tissue, _grid(), _axial_plane(z), TABLE, thickness=4.0) == 1).all()
