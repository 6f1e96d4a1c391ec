"""MSU geometry on hand-drawn label slices: every size and zone, the boundaries, both sides, tilts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from inference.labels import AxialLabel as L
from inference.msu import (
    MsuError,
    classify_size,
    classify_zone,
    intrafacet_line,
    measure_msu,
    select_max_slice,
)

# Layout of the hand-made slice (1 mm pixels, rows run anterior -> posterior,
# columns run from the patient's right to the patient's left):
#   disc rows 30-49 (posterior margin row 49), facets rows 65-75,
#   right facet cols 14-24 (medial margin col 24), left facet cols 75-85 (medial col 75);
#   the anteromedial corners (65, 24) and (65, 75) are the margins.
# So the intra-facet line is row 65, 16 mm behind the disc margin, and
# lateral position t = (col - 24) / 51 (quarters at cols 36.75, 49.5, 62.25).
MARGIN_ROW, LINE_ROW, RIGHT_COL, LEFT_COL = 49, 65, 24, 75


def base_slice(shape: tuple[int, int] = (100, 100)) -> np.ndarray:
    lab = np.zeros(shape, np.uint8)
    lab[10:30, 30:70] = L.VERTEBRA
    lab[30:50, 30:70] = L.DISC
    lab[55:75, 40:60] = L.DURAL_SAC
    lab[65:76, 14:25] = L.FACET_RIGHT
    lab[65:76, 75:86] = L.FACET_LEFT
    return lab


def with_herniation(depth: int, cols: tuple[int, int], lab: np.ndarray | None = None) -> np.ndarray:
    """Herniated material from the disc margin back ``depth`` pixels, over ``cols`` (inclusive)."""
    lab = base_slice() if lab is None else lab
    lab[MARGIN_ROW + 1 : MARGIN_ROW + 1 + depth, cols[0] : cols[1] + 1] = L.HERNIATION
    return lab


def test_intrafacet_line_uses_medial_margins() -> None:
    lab = base_slice()
    line = intrafacet_line(lab == L.FACET_LEFT, lab == L.FACET_RIGHT, (1.0, 1.0), towards=(39.5, 49.5))
    np.testing.assert_allclose(line.right, [LINE_ROW, RIGHT_COL])  # anteromedial corners
    np.testing.assert_allclose(line.left, [LINE_ROW, LEFT_COL])
    middle = intrafacet_line(lab == L.FACET_LEFT, lab == L.FACET_RIGHT, (1.0, 1.0))
    np.testing.assert_allclose(middle.right, [70.0, RIGHT_COL])  # without a target: middle of the edge
    np.testing.assert_allclose(line.quarter_points()[:, 1], [36.75, 49.5, 62.25])


def test_no_herniation_is_size_zero() -> None:
    m = measure_msu(base_slice(), (1.0, 1.0))
    assert (m.size, m.zone, m.side) == (0, None, None)
    assert m.reference_mm == pytest.approx(16.0)
    np.testing.assert_allclose(m.posterior, [1.0, 0.0], atol=1e-12)


@pytest.mark.parametrize(
    ("depth", "size"),
    [(3, 1), (8, 1), (9, 2), (15, 2), (16, 2), (17, 3), (22, 3)],
)
def test_size_boundaries(depth: int, size: int) -> None:
    # 8/16 is exactly 50 % (still size 1); 16/16 is exactly 100 % (still size 2)
    m = measure_msu(with_herniation(depth, (46, 52)), (1.0, 1.0))
    assert m.depth_mm == pytest.approx(depth)
    assert m.ratio == pytest.approx(depth / 16)
    assert m.size == size


def test_classify_size_rule() -> None:
    assert [classify_size(r) for r in (0.1, 0.5, 0.5001, 1.0, 1.0001, 2.0)] == [1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize(
    ("cols", "zone", "side"),
    [
        ((46, 52), "A", "central"),
        ((38, 42), "A", "central"),
        ((65, 71), "B", "left"),
        ((27, 33), "B", "right"),
        ((77, 80), "C", "left"),
        ((18, 21), "C", "right"),
        ((58, 68), "AB", "left"),
        ((31, 41), "AB", "right"),
    ],
)
def test_zones_both_sides(cols: tuple[int, int], zone: str, side: str) -> None:
    m = measure_msu(with_herniation(10, cols), (1.0, 1.0))
    assert (m.zone, m.side) == (zone, side)
    assert m.label == f"2-{zone}"


def test_zone_read_where_herniation_intrudes_furthest() -> None:
    # a broad bulge over A with a deeper tongue into left B: the tongue decides
    lab = with_herniation(4, (40, 70))
    lab[MARGIN_ROW + 1 : MARGIN_ROW + 12, 66:71] = L.HERNIATION
    m = measure_msu(lab, (1.0, 1.0))
    assert (m.zone, m.side, m.size) == ("B", "left", 2)
    assert m.apex_mm is not None and m.apex_mm[1] == pytest.approx(68.0)


def test_classify_zone_quarter_boundaries() -> None:
    assert classify_zone(np.array([0.25])) == ("A", "central")
    assert classify_zone(np.array([0.2499])) == ("B", "right")
    assert classify_zone(np.array([0.7501])) == ("B", "left")
    assert classify_zone(np.array([1.0])) == ("B", "left")
    assert classify_zone(np.array([1.01])) == ("C", "left")
    assert classify_zone(np.array([-0.01])) == ("C", "right")
    assert classify_zone(np.array([0.7, 0.8])) == ("AB", "left")


def test_measurements_and_bbox() -> None:
    m = measure_msu(with_herniation(6, (46, 52)), (1.0, 1.0))
    assert m.area_mm2 == pytest.approx(6 * 7)
    assert m.bbox == (50, 46, 55, 52)
    assert m.fifty_percent_mm is not None
    np.testing.assert_allclose(m.fifty_percent_mm, [57.0, 49.0])
    assert m.lateral == pytest.approx((49 - 24) / 51)


def test_anisotropic_spacing_measures_in_mm() -> None:
    # same anatomy drawn with half-size rows: rows are 0.5 mm, so twice as many rows
    lab = np.repeat(with_herniation(12, (65, 71)), 2, axis=0)
    m = measure_msu(lab, (0.5, 1.0))
    assert m.reference_mm == pytest.approx(65.0 - 49.5)  # pixel centres, in mm
    assert (m.size, m.zone, m.side) == (2, "B", "left")


def test_mirrored_image_keeps_patient_side() -> None:
    lab = with_herniation(10, (65, 71))[:, ::-1].copy()
    m = measure_msu(lab, (1.0, 1.0))
    assert (m.zone, m.side) == ("B", "left")


def test_upside_down_image_same_grade() -> None:
    lab = with_herniation(12, (27, 33))[::-1, :].copy()
    m = measure_msu(lab, (1.0, 1.0))
    assert (m.size, m.zone, m.side) == (2, "B", "right")
    assert m.depth_mm == pytest.approx(12)


@pytest.mark.parametrize("angle", [-25.0, 15.0, 30.0])
def test_rotated_slice_same_grade(angle: float) -> None:
    lab = np.zeros((140, 140), np.uint8)
    lab[20:120, 20:120] = with_herniation(6, (65, 71))
    rotated = ndimage.rotate(lab, angle, order=0, reshape=False)
    m = measure_msu(rotated, (1.0, 1.0))
    assert (m.size, m.zone, m.side) == (1, "B", "left")
    assert m.ratio == pytest.approx(6 / 16, abs=0.08)


def test_tilted_facets_line_is_oblique() -> None:
    # left facet 6 mm more posterior: the intra-facet line tilts, the posterior
    # direction stays perpendicular to it
    lab = base_slice()
    lab[lab == L.FACET_LEFT] = 0
    lab[71:82, 75:86] = L.FACET_LEFT
    lab = with_herniation(10, (46, 52), lab)
    m = measure_msu(lab, (1.0, 1.0), left_direction=(0.0, 1.0))
    assert float(np.dot(m.posterior, m.line.direction)) == pytest.approx(0.0, abs=1e-12)
    assert m.posterior[0] > 0.99  # still mostly posterior
    np.testing.assert_allclose(m.line.left, [71.0, 75.0])
    np.testing.assert_allclose(m.line.right, [65.0, 24.0])
    assert m.zone == "A"
    # without the orientation, the axis between the facet centroids gives the same grade
    guess = measure_msu(lab, (1.0, 1.0))
    assert (guess.size, guess.zone) == (m.size, m.zone)
    assert guess.ratio == pytest.approx(m.ratio, abs=0.1)


def test_migrated_fragment_measured_from_vertebral_cortex() -> None:
    lab = base_slice()
    lab[lab == L.DISC] = L.VERTEBRA  # slice through the vertebral body, no disc
    lab = with_herniation(12, (46, 52), lab)
    m = measure_msu(lab, (1.0, 1.0))
    assert m.reference == "vertebra"
    assert m.size == 2 and m.ratio == pytest.approx(12 / 16)


def test_missing_facet_raises() -> None:
    lab = base_slice()
    lab[lab == L.FACET_LEFT] = 0
    with pytest.raises(MsuError, match="left facet"):
        measure_msu(lab, (1.0, 1.0))


def test_min_area_filters_specks() -> None:
    lab = with_herniation(1, (50, 50))
    assert measure_msu(lab, (1.0, 1.0)).size == 1
    assert measure_msu(lab, (1.0, 1.0), min_herniation_mm2=2.0).size == 0


def test_select_max_slice() -> None:
    ms = [measure_msu(with_herniation(d, (46, 52)), (1.0, 1.0)) if d >= 0 else None for d in (0, 5, -1, 12, 3)]
    assert select_max_slice(ms) == 3
    wide = measure_msu(with_herniation(5, (40, 60)), (1.0, 1.0))  # larger area, smaller ratio
    assert select_max_slice([ms[3], wide]) == 1
    assert select_max_slice([measure_msu(base_slice(), (1.0, 1.0)), None]) is None


def test_lateral_disc_bulge_does_not_move_the_margin() -> None:
    # disc material lateral to the facets' medial margins reaching further back is not the margin
    lab = base_slice()
    lab[50:56, 10:20] = L.DISC
    m = measure_msu(with_herniation(6, (46, 52), lab), (1.0, 1.0))
    assert m.reference_mm == pytest.approx(16.0)


def test_agrees_with_phantom_reference_reading() -> None:
    truth = pytest.importorskip("inference.phantoms.msu_truth")
    cases = [(8, (46, 52)), (9, (65, 71)), (9, (18, 21)), (17, (65, 71)), (10, (58, 68)), (10, (31, 41)), (3, (38, 42))]
    for depth, cols in cases:
        lab = with_herniation(depth, cols)
        mine = measure_msu(lab, (0.8, 0.8))
        ref = truth.read_msu_slice(lab, (0.8, 0.8))
        assert (mine.size, mine.zone) == (ref.size, ref.zone)
        assert mine.ratio == pytest.approx(ref.ratio)
        assert (mine.side if mine.zone != "A" else None) == ref.side
