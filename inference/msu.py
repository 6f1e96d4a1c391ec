"""MSU classification of a lumbar disc herniation on one axial slice: pure geometry.

Numpy in, numpy out; no network and no DICOM. The rules are those of CLINICAL.md
section 1 (Mysliwiec et al., Eur Spine J 2010):

* the **intra-facet line** joins the medial margins of the left and right facet
  joints (the anteromedial corner of each facet's medial edge);
* the **posterior disc margin** is the most posterior disc pixel between the two
  medial facet margins (the reading of :mod:`inference.phantoms.msu_truth`, which
  grades the phantoms);
* **size** is the reach of the herniation from the posterior margin of the
  non-herniated disc towards that line: 1 up to 50 % of the distance, 2 above 50 %
  up to the line (exactly 100 % is still 2), 3 beyond it; 0 when there is no
  herniated material;
* **zone**: three points split the intra-facet line into four quarters; A is the two
  central quarters, B the two lateral ones, C lies lateral to a medial facet
  margin, AB when the herniation's furthest part straddles an A/B boundary. The
  zone is read where the herniation intrudes furthest; B, C and AB carry a side.

Conventions
-----------
All coordinates are in millimetres in the slice plane, as ``(row, column)``
pairs: pixel ``(i, j)`` sits at ``(i * row_spacing, j * column_spacing)``.
Pixel centres are the measured points. "Left" and "right" are the patient's,
taken from the facet labels (:class:`inference.labels.AxialLabel`), never from
the image's orientation, so a flipped or rotated image is graded the same.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inference.labels import AxialLabel

__all__ = [
    "IntraFacetLine",
    "MsuError",
    "MsuMeasurement",
    "classify_size",
    "classify_zone",
    "intrafacet_line",
    "lateral_position",
    "measure_msu",
    "select_max_slice",
]

logger = logging.getLogger(__name__)

#: Ratios within this of a boundary count as on it (float noise, not anatomy).
RATIO_EPS = 1e-6


class MsuError(ValueError):
    """The masks lack what the MSU rule needs (a facet, the disc) or are degenerate."""


@dataclass(frozen=True)
class IntraFacetLine:
    """The intra-facet line of one slice, from the right to the left medial facet margin.

    Attributes
    ----------
    right, left
        ``(2,)`` points (mm, row/column) on the medial margins of the patient's
        right and left facet joints.
    """

    right: np.ndarray
    left: np.ndarray

    @property
    def length_mm(self) -> float:
        """Distance between the two medial margins."""
        return float(np.linalg.norm(self.left - self.right))

    @property
    def direction(self) -> np.ndarray:
        """Unit vector from the right towards the left margin."""
        return (self.left - self.right) / self.length_mm

    def quarter_points(self) -> np.ndarray:
        """The three points (25 %, 50 %, 75 % from the right margin) that split the line, ``(3, 2)``."""
        return np.stack([self.right + f * (self.left - self.right) for f in (0.25, 0.5, 0.75)])


@dataclass(frozen=True)
class MsuMeasurement:
    """What the MSU rule reads on one slice, with the measurements behind the grade.

    Attributes
    ----------
    size
        MSU size 0-3 (0: no herniated material on the slice).
    zone
        ``"A"``, ``"AB"``, ``"B"``, ``"C"``, or ``None`` when ``size == 0``.
    side
        ``"left"``, ``"right"``, ``"central"`` (zone A) or ``None`` when ``size == 0``.
    depth_mm
        Reach of the herniation beyond the posterior disc margin, along the
        posterior direction (perpendicular to the intra-facet line).
    reference_mm
        Distance from the posterior disc margin to the intra-facet line.
    ratio
        ``depth_mm / reference_mm`` (a fraction; 0.5 is the size 1/2 boundary).
    area_mm2
        Area of the herniated material on the slice.
    bbox
        ``(row_min, col_min, row_max, col_max)`` pixel bounding box of the
        herniation (inclusive), or ``None``.
    apex_mm
        ``(2,)`` point where the herniation intrudes furthest (mean of the apex pixels), or ``None``.
    lateral
        Position of the apex along the intra-facet line: 0 at the right medial
        margin, 1 at the left one (``None`` without herniation).
    fifty_percent_mm
        ``(2,)`` point halfway from the disc margin to the intra-facet line, at the apex's lateral position.
    line
        The intra-facet line.
    posterior
        ``(2,)`` unit vector pointing from the disc towards the intra-facet line.
    reference
        ``"disc"`` or ``"vertebra"`` (migrated fragment: measured from the posterior vertebral cortex).
    """

    size: int
    zone: str | None
    side: str | None
    depth_mm: float
    reference_mm: float
    ratio: float
    area_mm2: float
    bbox: tuple[int, int, int, int] | None
    apex_mm: np.ndarray | None
    lateral: float | None
    fifty_percent_mm: np.ndarray | None
    line: IntraFacetLine
    posterior: np.ndarray
    reference: str

    @property
    def label(self) -> str:
        """The grade as written in reports: ``"2-B"``, ``"1-A"``, ``"0"``."""
        return "0" if self.size == 0 else f"{self.size}-{self.zone}"


def _points_mm(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.column_stack([rows * float(spacing[0]), cols * float(spacing[1])])


def _medial_point(
    points: np.ndarray, values: np.ndarray, *, largest: bool, tol: float, towards: np.ndarray | None
) -> np.ndarray:
    """Of the points within ``tol`` of the extreme value, the one nearest ``towards`` (else their mean)."""
    target = values.max() if largest else values.min()
    edge = points[np.abs(values - target) <= tol]
    if towards is None:
        return np.asarray(edge.mean(axis=0))
    return np.asarray(edge[int(np.argmin(np.linalg.norm(edge - towards, axis=1)))])


def intrafacet_line(
    facet_left: np.ndarray,
    facet_right: np.ndarray,
    spacing: Sequence[float],
    *,
    left_direction: Sequence[float] | None = None,
    towards: Sequence[float] | None = None,
) -> IntraFacetLine:
    """The line joining the medial margins of the two facet joints.

    The medial margin of each facet is its extreme pixel towards the other
    facet, measured along the patient's left-right axis: ``left_direction`` when
    the caller gives it, else the axis joining the two facets' centroids (so a
    rotated slice is handled like an upright one). Of the pixels within half a
    pixel of that extreme (a straight medial edge), the one nearest ``towards``
    (the disc's centre: the anteromedial corner) is taken, or their mean when
    ``towards`` is ``None``. This is the reading of
    :mod:`inference.phantoms.msu_truth`.

    Parameters
    ----------
    facet_left, facet_right
        Boolean ``(rows, cols)`` masks of the patient's left and right facet joints.
    spacing
        ``(row spacing, column spacing)`` in mm.
    left_direction
        ``(2,)`` direction (row, column components, in mm space) of the patient's
        left in this slice, e.g. from ImageOrientationPatient.
    towards
        ``(2,)`` point (mm): picks the anteromedial corner of a straight medial edge.

    Returns
    -------
    IntraFacetLine

    Raises
    ------
    MsuError
        If a facet is empty or the two facets coincide.
    """
    left_pts = _points_mm(facet_left, spacing)
    right_pts = _points_mm(facet_right, spacing)
    if len(left_pts) == 0 or len(right_pts) == 0:
        missing = "left" if len(left_pts) == 0 else "right"
        raise MsuError(f"no {missing} facet joint on the slice: the intra-facet line needs both")
    if left_direction is None:
        axis = left_pts.mean(axis=0) - right_pts.mean(axis=0)
    else:
        axis = np.asarray(left_direction, dtype=float).reshape(2)
    norm = float(np.linalg.norm(axis))
    if norm == 0.0:
        raise MsuError("no left-right axis: facet centroids coincide or left_direction is zero")
    axis = axis / norm
    tol = 0.5 * float(min(spacing))  # ties: within half a pixel
    target = None if towards is None else np.asarray(towards, dtype=float).reshape(2)
    left = _medial_point(left_pts, left_pts @ axis, largest=False, tol=tol, towards=target)
    right = _medial_point(right_pts, right_pts @ axis, largest=True, tol=tol, towards=target)
    if np.linalg.norm(left - right) == 0.0:
        raise MsuError("the medial facet margins coincide")
    return IntraFacetLine(right=right, left=left)


def lateral_position(points: np.ndarray, line: IntraFacetLine) -> np.ndarray:
    """Position of points along the intra-facet line: 0 at the right margin, 1 at the left."""
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    return np.asarray(((pts - line.right) @ line.direction) / line.length_mm)


def classify_size(ratio: float) -> int:
    """MSU size 1-3 of herniated material reaching ``ratio`` of the disc-to-line distance.

    ``ratio <= 0.5`` is 1, ``0.5 < ratio <= 1`` is 2 (exactly 100 % is still 2),
    above 1 is 3. Ratios within :data:`RATIO_EPS` of a boundary count as on it.
    """
    if ratio <= 0.5 + RATIO_EPS:
        return 1
    if ratio <= 1.0 + RATIO_EPS:
        return 2
    return 3


def _zone_of(t: float) -> str:
    if t < -RATIO_EPS or t > 1.0 + RATIO_EPS:
        return "C"
    if t < 0.25 - RATIO_EPS or t > 0.75 + RATIO_EPS:
        return "B"
    return "A"


def classify_zone(apex_lateral: np.ndarray) -> tuple[str, str]:
    """Zone and side from the lateral positions of the herniation's furthest pixels.

    Parameters
    ----------
    apex_lateral
        Positions along the intra-facet line (0 right margin, 1 left margin) of
        the pixels where the herniation intrudes furthest.

    Returns
    -------
    tuple
        ``(zone, side)``: zone ``"A"``, ``"AB"``, ``"B"`` or ``"C"``; side
        ``"central"`` for A, else ``"left"`` or ``"right"`` from the apex's centre.
    """
    t = np.asarray(apex_lateral, dtype=float).reshape(-1)
    if t.size == 0:
        raise MsuError("no apex pixels to read a zone from")
    centre = float(t.mean())
    zones = np.array([_zone_of(float(v)) for v in t])
    zone = _zone_of(centre)
    if "A" in zones and "B" in zones:
        zone = "AB"
        centre = float(t[zones == "B"].mean())  # the side of the lateral part
    side = "central" if zone == "A" else ("left" if centre > 0.5 else "right")
    return zone, side


def _posterior_reference(
    labels: np.ndarray, spacing: Sequence[float], posterior: np.ndarray, line: IntraFacetLine
) -> tuple[float, str] | None:
    """Projection of the posterior disc margin, or of the posterior vertebral cortex without disc."""
    disc = _points_mm(labels == AxialLabel.DISC, spacing)
    if len(disc):
        t = lateral_position(disc, line)
        between = disc[(t >= 0.0) & (t <= 1.0)]  # the margin behind the canal, not a lateral bulge
        return float(((between if len(between) else disc) @ posterior).max()), "disc"
    vertebra = _points_mm(labels == AxialLabel.VERTEBRA, spacing)
    sac = _points_mm(labels == AxialLabel.DURAL_SAC, spacing)
    if len(vertebra) == 0 or len(sac) == 0:
        return None
    front = vertebra @ posterior
    body = front[front < float((sac @ posterior).min())]  # anterior to the sac: the vertebral body
    if body.size == 0:
        return None
    return float(body.max()), "vertebra"


def measure_msu(
    labels: np.ndarray,
    spacing: Sequence[float],
    *,
    apex_tolerance_mm: float = 1.0,
    min_herniation_mm2: float = 0.0,
    left_direction: Sequence[float] | None = None,
) -> MsuMeasurement:
    """Grade (size) and localise (zone, side) the herniation on one labelled axial slice.

    Parameters
    ----------
    labels
        ``(rows, cols)`` integer mask with :class:`~inference.labels.AxialLabel` values.
    spacing
        ``(row spacing, column spacing)`` in mm.
    apex_tolerance_mm
        Herniation pixels within this distance (along the posterior direction) of
        the furthest one form the apex the zone is read on.
    min_herniation_mm2
        Herniated material smaller than this counts as none (size 0).
    left_direction
        The patient's left in slice (row, column) space, when known; see :func:`intrafacet_line`.

    Returns
    -------
    MsuMeasurement

    Raises
    ------
    MsuError
        Without both facets, or without a disc (or vertebral body) to measure from.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise MsuError(f"expected one 2D slice of labels, got shape {labels.shape}")
    anchor = _points_mm(labels == AxialLabel.DISC, spacing)
    if len(anchor) == 0:
        anchor = _points_mm(labels == AxialLabel.VERTEBRA, spacing)
    if len(anchor) == 0:
        raise MsuError("neither disc nor vertebral body on the slice: nothing to measure size from")
    line = intrafacet_line(
        labels == AxialLabel.FACET_LEFT,
        labels == AxialLabel.FACET_RIGHT,
        spacing,
        left_direction=left_direction,
        towards=anchor.mean(axis=0),
    )
    normal = np.array([-line.direction[1], line.direction[0]])
    if float((line.right - anchor.mean(axis=0)) @ normal) < 0:
        normal = -normal
    ref = _posterior_reference(labels, spacing, normal, line)
    if ref is None:
        raise MsuError("no posterior disc margin or vertebral cortex on the slice")
    margin, reference = ref
    line_level = float(line.right @ normal)
    reference_mm = line_level - margin
    if reference_mm <= 0:
        raise MsuError(f"the intra-facet line is not posterior to the disc margin ({reference_mm:.1f} mm)")

    herniation = labels == AxialLabel.HERNIATION
    pixel_area = float(spacing[0]) * float(spacing[1])
    area = float(herniation.sum()) * pixel_area
    if area == 0.0 or area < min_herniation_mm2:
        return MsuMeasurement(
            size=0, zone=None, side=None, depth_mm=0.0, reference_mm=reference_mm, ratio=0.0,
            area_mm2=area, bbox=None, apex_mm=None, lateral=None, fifty_percent_mm=None,
            line=line, posterior=normal, reference=reference,
        )
    rows, cols = np.nonzero(herniation)
    bbox = (int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max()))
    pts = _points_mm(herniation, spacing)
    reach = pts @ normal
    furthest = float(reach.max())
    apex_pts = pts[reach >= furthest - apex_tolerance_mm - 1e-9]
    apex = apex_pts.mean(axis=0)
    depth = furthest - margin
    ratio = depth / reference_mm
    lateral = lateral_position(apex_pts, line)
    zone, side = classify_zone(lateral)
    t_apex = float(lateral_position(apex, line)[0])
    on_line = line.right + t_apex * (line.left - line.right)
    fifty = on_line - 0.5 * reference_mm * normal
    return MsuMeasurement(
        size=classify_size(ratio), zone=zone, side=side, depth_mm=float(depth),
        reference_mm=float(reference_mm), ratio=float(ratio), area_mm2=area, bbox=bbox,
        apex_mm=apex, lateral=t_apex, fifty_percent_mm=fifty, line=line, posterior=normal,
        reference=reference,
    )


def select_max_slice(measurements: Sequence[MsuMeasurement | None]) -> int | None:
    """Index of the slice of maximal herniation: largest area, then largest ratio, then first.

    The same choice as the phantoms' ground truth (:mod:`inference.phantoms.msu_truth`).

    ``None`` entries (slices the rule could not be read on) and slices without
    herniation are skipped; returns ``None`` when no slice has herniated material.
    """
    best: tuple[float, float] | None = None
    index: int | None = None
    for k, m in enumerate(measurements):
        if m is None or m.size == 0:
            continue
        key = (m.area_mm2, m.ratio)
        if best is None or key > best:
            best, index = key, k
    return index
