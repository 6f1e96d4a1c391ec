"""Pure geometry on hand-made orientations: axial, sagittal, coronal, oblique."""

from __future__ import annotations

import numpy as np
import pytest

from inference.geometry import (
    AnatomicalPlane,
    Plane,
    affine_from_slice,
    angle_between_deg,
    classify_plane,
    normal_from_orientation,
    patient_to_pixel,
    patient_to_voxel,
    pixel_to_patient,
    plane_of_slice,
    project_to_slices,
    signed_distance,
    voxel_to_patient,
)

AXIAL = [1, 0, 0, 0, 1, 0]
SAGITTAL = [0, 1, 0, 0, 0, -1]
CORONAL = [1, 0, 0, 0, 0, -1]


def _tilted_axial(deg: float) -> list[float]:
    """Axial rotated about the patient's left-right axis (a disc-angled block)."""
    t = np.radians(deg)
    return [1, 0, 0, 0, float(np.cos(t)), float(-np.sin(t))]


@pytest.mark.parametrize(
    ("iop", "normal"),
    [(AXIAL, [0, 0, 1]), (SAGITTAL, [-1, 0, 0]), (CORONAL, [0, 1, 0])],
)
def test_normal_is_row_cross_column(iop: list[float], normal: list[float]) -> None:
    np.testing.assert_allclose(normal_from_orientation(iop), normal, atol=1e-12)


def test_normal_rejects_bad_orientation() -> None:
    with pytest.raises(ValueError, match="unit"):
        normal_from_orientation([2, 0, 0, 0, 1, 0])
    with pytest.raises(ValueError, match="orthogonal"):
        normal_from_orientation([1, 0, 0, 1, 0, 0])
    with pytest.raises(ValueError, match="6 values"):
        normal_from_orientation([1, 0, 0])


def test_axial_pixel_to_patient_by_hand() -> None:
    # row 2, column 3, pixel spacing (row 0.5, column 0.25)
    point = pixel_to_patient([2, 3], [10, 20, 30], AXIAL, [0.5, 0.25])
    np.testing.assert_allclose(point, [10 + 3 * 0.25, 20 + 2 * 0.5, 30])


def test_sagittal_pixel_to_patient_by_hand() -> None:
    # columns run posterior (+y), rows run inferior (-z)
    point = pixel_to_patient([4, 1], [5, -100, 80], SAGITTAL, [2.0, 1.0])
    np.testing.assert_allclose(point, [5, -100 + 1.0, 80 - 8.0])


def test_coronal_pixel_to_patient_by_hand() -> None:
    points = pixel_to_patient([[0, 0], [1, 2]], [-50, 7, 40], CORONAL, [1.5, 1.0])
    np.testing.assert_allclose(points, [[-50, 7, 40], [-48, 7, 38.5]])


@pytest.mark.parametrize("iop", [AXIAL, SAGITTAL, CORONAL, _tilted_axial(23.0)])
def test_pixel_patient_round_trip(iop: list[float]) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.uniform(0, 300, size=(20, 2))
    ipp = [-12.5, 40.0, 3.0]
    points = pixel_to_patient(pixels, ipp, iop, [0.7, 0.9])
    back = patient_to_pixel(points, ipp, iop, [0.7, 0.9])
    np.testing.assert_allclose(back[:, :2], pixels, atol=1e-9)
    np.testing.assert_allclose(back[:, 2], 0, atol=1e-9)


def test_patient_to_pixel_gives_signed_distance() -> None:
    out = patient_to_pixel([[1, 2, 7], [1, 2, -3]], [0, 0, 2], AXIAL, [1, 1])
    np.testing.assert_allclose(out, [[2, 1, 5], [2, 1, -5]])


def test_affine_columns_follow_the_convention() -> None:
    affine = affine_from_slice([1, 2, 3], SAGITTAL, [0.5, 0.8], 4.0)
    np.testing.assert_allclose(affine[:3, 0], [-4, 0, 0])  # slice step along row x column
    np.testing.assert_allclose(affine[:3, 1], [0, 0, -0.5])  # row step = column cosine x row spacing
    np.testing.assert_allclose(affine[:3, 2], [0, 0.8, 0])  # column step = row cosine x column spacing
    np.testing.assert_allclose(affine[:3, 3], [1, 2, 3])
    explicit = affine_from_slice([1, 2, 3], SAGITTAL, [0.5, 0.8], [0.1, 0.2, 3.9])
    np.testing.assert_allclose(explicit[:3, 0], [0.1, 0.2, 3.9])
    negative = affine_from_slice([1, 2, 3], SAGITTAL, [0.5, 0.8], -4.0)
    np.testing.assert_allclose(negative[:3, 0], [4, 0, 0])


def test_voxel_patient_round_trip_oblique() -> None:
    affine = affine_from_slice([3, -7, 11], _tilted_axial(31.0), [0.6, 0.6], 3.5)
    idx = np.array([[0, 0, 0], [2, 10.5, 3], [5, 0, 100]])
    np.testing.assert_allclose(patient_to_voxel(affine, voxel_to_patient(affine, idx)), idx, atol=1e-9)
    # one slice step moves 3.5 mm along the tilted normal
    step = voxel_to_patient(affine, [1, 0, 0]) - voxel_to_patient(affine, [0, 0, 0])
    np.testing.assert_allclose(np.linalg.norm(step), 3.5)
    np.testing.assert_allclose(step / 3.5, normal_from_orientation(_tilted_axial(31.0)), atol=1e-12)


def test_signed_distance_to_a_plane() -> None:
    plane = plane_of_slice([0, 0, 10], AXIAL)
    np.testing.assert_allclose(signed_distance([[0, 0, 12], [5, 5, 7]], plane), [2, -3])
    tilted = Plane(point=np.zeros(3), normal=np.array([0, 1, 1]))  # normalised on construction
    assert float(signed_distance([0, 1, 1], tilted)) == pytest.approx(np.sqrt(2))


def test_angle_between_ignores_sign() -> None:
    assert angle_between_deg([0, 0, 1], [0, 0, -1]) == pytest.approx(0.0)
    assert angle_between_deg([0, 0, 1], [0, 1, 1]) == pytest.approx(45.0)


@pytest.mark.parametrize(
    ("iop", "plane"),
    [
        (AXIAL, AnatomicalPlane.AXIAL),
        (SAGITTAL, AnatomicalPlane.SAGITTAL),
        (CORONAL, AnatomicalPlane.CORONAL),
        ([0, 1, 0, 0, 0, 1], AnatomicalPlane.SAGITTAL),  # mirrored sagittal still sagittal
    ],
)
def test_classify_cardinal_planes(iop: list[float], plane: AnatomicalPlane) -> None:
    result = classify_plane(iop, tolerance_deg=1.0)
    assert result.plane is plane
    assert result.nearest is plane
    assert result.angle_deg == pytest.approx(0.0, abs=1e-6)


def test_classify_oblique_with_tolerance() -> None:
    tilted = _tilted_axial(25.0)
    assert classify_plane(tilted).plane is AnatomicalPlane.AXIAL
    assert classify_plane(tilted).angle_deg == pytest.approx(25.0)
    strict = classify_plane(tilted, tolerance_deg=10.0)
    assert strict.plane is AnatomicalPlane.OBLIQUE
    assert strict.nearest is AnatomicalPlane.AXIAL
    # semi-coronal SIJ plane: coronal tilted 35 degrees about left-right
    t = np.radians(35.0)
    semi_coronal = [1, 0, 0, 0, float(np.sin(t)), float(-np.cos(t))]
    assert classify_plane(semi_coronal).plane is AnatomicalPlane.CORONAL
    # the body diagonal is as far as can be from every cardinal axis
    assert classify_plane([1, 1, 1]).plane is AnatomicalPlane.OBLIQUE
    assert classify_plane([1, 1, 1]).angle_deg == pytest.approx(54.7356, abs=1e-3)


def test_project_sagittal_points_onto_angled_axial_slices() -> None:
    # an axial stack tilted by 20 degrees, 5 slices 4 mm apart, 32 x 32 pixels of 1 mm
    iop = _tilted_axial(20.0)
    affine = affine_from_slice([-16, -16, 0], iop, [1.0, 1.0], 4.0)
    normal = normal_from_orientation(iop)
    # a "disc centre" 1 mm off slice 3, at row 10, column 12 of that slice
    on_slice = voxel_to_patient(affine, [3, 10, 12])
    points = np.array([on_slice + 1.0 * normal, on_slice - 30 * normal, on_slice + [0, 0, 0]])
    result = project_to_slices(points, affine, (5, 32, 32), max_distance_mm=12.0)
    assert list(result.slice_index) == [3, 0, 3]
    np.testing.assert_allclose(result.row[[0, 2]], [10, 10], atol=1e-9)
    np.testing.assert_allclose(result.column[[0, 2]], [12, 12], atol=1e-9)
    np.testing.assert_allclose(result.distance_mm[[0, 2]], [1.0, 0.0], atol=1e-9)
    assert list(result.inside) == [True, False, True]  # 30 mm below: beyond 12 mm from slice 0
    # default limit: half the spacing (2 mm); 2.5 mm beyond the last slice is out,
    # 2.5 mm above slice 3 is 1.5 mm below slice 4 and in
    last = voxel_to_patient(affine, [4, 10, 12])
    beyond = project_to_slices(last + 2.5 * normal, affine, (5, 32, 32))
    assert list(beyond.inside) == [False] and list(beyond.slice_index) == [4]
    between = project_to_slices(on_slice + 2.5 * normal, affine, (5, 32, 32))
    assert list(between.inside) == [True] and list(between.slice_index) == [4]
    np.testing.assert_allclose(between.distance_mm, [-1.5], atol=1e-9)
    # outside the pixel matrix
    outside = voxel_to_patient(affine, [2, 40, 3])
    assert list(project_to_slices(outside, affine, (5, 32, 32)).inside) == [False]
