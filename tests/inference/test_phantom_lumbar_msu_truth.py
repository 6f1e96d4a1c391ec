"""The MSU rule that grades the lumbar phantoms, on hand-drawn masks.

The masks are drawn in a frame of their own (mm): the disc's posterior margin
at depth -15 (so 15 mm from the intra-facet line at depth 0), the medial facet
margins at lateral +-12 (patient left positive), and then rotated into the
image by ``angle`` (tilted facets) to show the reading does not depend on the
image axes.
"""

from __future__ import annotations

import numpy as np
import pytest

from inference.labels import AxialLabel
from inference.phantoms.msu_truth import (
    MsuGeometryError,
    msu_size_from_ratio,
    read_msu_slice,
    read_msu_stack,
)

SPACING = (0.25, 0.25)
SIZE = 240  # pixels: 60 mm
DISC_TO_LINE = 15.0
HALF_LINE = 12.0


def _frame(angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Lateral (+ left) and depth (+ posterior) coordinates (mm) of every pixel centre."""
    r, c = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    y, x = r * SPACING[0] - 30.0, c * SPACING[1] - 30.0
    t = np.radians(angle_deg)
    lateral = x * np.cos(t) + y * np.sin(t)
    depth = -x * np.sin(t) + y * np.cos(t)
    return lateral, depth


def draw(herniation: tuple[float, float, float] | None, angle_deg: float = 0.0) -> np.ndarray:
    """Disc, facets and an optional rectangular herniation ``(lateral_from, lateral_to, reach_mm)``."""
    lat, dep = _frame(angle_deg)
    out = np.zeros((SIZE, SIZE), dtype=np.uint8)
    out[(np.abs(lat) <= 20.0) & (dep <= -DISC_TO_LINE) & (dep >= -28.0)] = AxialLabel.DISC
    facet = (np.abs(lat) >= HALF_LINE) & (np.abs(lat) <= HALF_LINE + 6.0) & (dep >= 0.0) & (dep <= 8.0)
    out[facet & (lat > 0)] = AxialLabel.FACET_LEFT
    out[facet & (lat < 0)] = AxialLabel.FACET_RIGHT
    if herniation is not None:
        a, b, reach = herniation
        # pixel centres strictly beyond the disc, up to the given reach
        h = (lat >= a) & (lat <= b) & (dep > -DISC_TO_LINE) & (dep <= -DISC_TO_LINE + reach + 1e-9)
        out[h] = AxialLabel.HERNIATION
    return out


@pytest.mark.parametrize("angle", [0.0, 14.0, -23.0])
def test_normal_disc_measures_the_disc_to_line_distance(angle: float) -> None:
    reading = read_msu_slice(draw(None, angle), SPACING)
    assert reading.size == 0 and reading.zone is None and reading.side is None
    assert reading.label == "0"
    assert reading.disc_to_line_mm == pytest.approx(DISC_TO_LINE, abs=0.4)
    assert reading.half_line_mm == pytest.approx(HALF_LINE, abs=0.4)


@pytest.mark.parametrize(
    ("reach", "size"),
    [(3.0, 1), (7.5, 1), (7.75, 2), (12.0, 2), (15.0, 2), (15.25, 3), (19.0, 3)],
)
def test_size_boundaries(reach: float, size: int) -> None:
    # on the image axes the pixel grid holds the boundaries exactly (0.25 mm steps)
    reading = read_msu_slice(draw((-2.0, 2.0, reach)), SPACING)
    assert reading.size == size
    assert reading.ratio == pytest.approx(reach / DISC_TO_LINE, abs=1e-6)
    assert reading.reach_mm == pytest.approx(reach, abs=1e-6)


def test_exactly_at_the_line_is_size_2_and_just_beyond_is_3() -> None:
    assert read_msu_slice(draw((-2.0, 2.0, 15.0)), SPACING).size == 2
    assert read_msu_slice(draw((-2.0, 2.0, 15.25)), SPACING).size == 3


@pytest.mark.parametrize("angle", [0.0, 14.0, -23.0])
@pytest.mark.parametrize(
    ("span", "zone", "side"),
    [
        ((-2.0, 2.0), "A", None),
        ((2.0, 4.5), "A", None),
        ((-4.5, -2.0), "A", None),
        ((3.0, 9.0), "AB", "left"),
        ((-9.0, -3.0), "AB", "right"),
        ((7.5, 10.5), "B", "left"),
        ((-10.5, -7.5), "B", "right"),
        ((13.0, 16.0), "C", "left"),
        ((-16.0, -13.0), "C", "right"),
    ],
)
def test_zones_and_sides(span: tuple[float, float], zone: str, side: str | None, angle: float) -> None:
    reading = read_msu_slice(draw((span[0], span[1], 6.0), angle), SPACING)
    assert (reading.zone, reading.side) == (zone, side)
    assert reading.size == 1
    assert reading.label == f"1-{zone}"


def test_zone_follows_the_furthest_point_not_the_base() -> None:
    # a broad base across A and B, whose tip (the furthest 1 mm) is in B only
    mask = draw((-3.0, 10.0, 4.0))
    lat, dep = _frame(0.0)
    tip = (lat >= 7.5) & (lat <= 10.0) & (dep > -DISC_TO_LINE) & (dep <= -DISC_TO_LINE + 9.0)
    mask[tip & (mask == 0)] = AxialLabel.HERNIATION
    reading = read_msu_slice(mask, SPACING)
    assert (reading.size, reading.zone, reading.side) == (2, "B", "left")


def test_missing_facet_or_disc_is_an_error() -> None:
    mask = draw((-2.0, 2.0, 5.0))
    no_facet = np.where(mask == AxialLabel.FACET_LEFT, 0, mask).astype(np.uint8)
    with pytest.raises(MsuGeometryError, match="facet"):
        read_msu_slice(no_facet, SPACING)
    no_disc = np.where(mask == AxialLabel.DISC, 0, mask).astype(np.uint8)
    with pytest.raises(MsuGeometryError, match="disc"):
        read_msu_slice(no_disc, SPACING)


def test_stack_is_read_on_the_slice_of_maximal_herniation() -> None:
    stack = np.stack([draw((-2.0, 2.0, 3.0)), draw((-3.0, 3.0, 16.0)), draw(None), draw((-1.0, 1.0, 9.0))])
    index, reading = read_msu_stack(stack, SPACING)
    assert index == 1
    assert reading.size == 3


def test_stack_without_herniation_reads_size_0_on_a_slice_with_both_facets() -> None:
    empty = np.zeros((SIZE, SIZE), dtype=np.uint8)
    stack = np.stack([empty, draw(None), empty])
    index, reading = read_msu_stack(stack, SPACING)
    assert index == 1 and reading.size == 0
    with pytest.raises(MsuGeometryError):
        read_msu_stack(np.stack([empty, empty]), SPACING)


@pytest.mark.parametrize(("ratio", "size"), [(0.01, 1), (0.5, 1), (0.5000001, 2), (1.0, 2), (1.0000001, 3), (2.5, 3)])
def test_size_from_ratio(ratio: float, size: int) -> None:
    assert msu_size_from_ratio(ratio) == size
