"""The MSU rule applied to axial label masks: how phantom ground truth is derived.

This is the reference reading of CLINICAL.md section 1 that the lumbar phantoms
are graded with. It is deliberately simple, pure numpy and documented so that a
reader can check a phantom's ground truth by hand (docs/phantoms.md):

* Work in millimetres on pixel centres: a pixel ``(r, c)`` sits at
  ``(r * row_spacing, c * column_spacing)``.
* **Medial facet margins**: the medial-most pixel of ``FACET_LEFT`` and of
  ``FACET_RIGHT`` along the direction joining the two facets' centroids (of
  the pixels within half a pixel of that extreme, the one nearest the disc's
  centroid: the anteromedial corner). The **intra-facet line** joins them.
* ``e_lat`` is the unit vector from the right to the left medial margin (towards
  the patient's left), ``e_post`` is perpendicular to it, pointing away from the
  disc. The *depth* of a pixel is its signed distance to the intra-facet line
  along ``e_post`` (the line is at depth 0, the disc at negative depths).
* **Posterior disc margin**: the largest depth of a ``DISC`` pixel whose lateral
  position lies between the two medial margins.
* **Size**: reach = (largest depth of a ``HERNIATION`` pixel) - (disc margin
  depth); ratio = reach / (0 - disc margin depth). 0 without herniation pixels,
  1 for ratio <= 0.5, 2 for ratio <= 1.0 (exactly 100 % is still 2), else 3.
* **Zone**: the *tip* is the herniation pixels within ``TIP_TOLERANCE_MM`` of the
  largest depth. With ``t`` the lateral position from the line's midpoint and
  ``W`` half the line's length: AB when the tip has pixels on both sides of the
  A/B boundary ``|t| = W/2``; otherwise by the tip centroid: A for
  ``|t| <= W/2``, B for ``W/2 < |t| <= W``, C beyond ``W`` (lateral to the
  medial facet margin). Side (left/right) for AB, B and C.
* The **slice of maximal herniation** of a stack is the one with the most
  herniation pixels (first one on ties); without herniation the slice with the
  most disc pixels that shows both facets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from inference.labels import AxialLabel

__all__ = [
    "MsuGeometryError",
    "MsuReading",
    "TIP_TOLERANCE_MM",
    "msu_size_from_ratio",
    "read_msu_slice",
    "read_msu_stack",
]

#: Herniation pixels this close (mm) to the furthest depth form the "tip".
TIP_TOLERANCE_MM = 1.0


class MsuGeometryError(ValueError):
    """A slice lacks what the MSU rule needs (both facets and the disc)."""


@dataclass(frozen=True)
class MsuReading:
    """The MSU class of one disc read on one axial slice, with its measurements.

    Attributes
    ----------
    size
        0 (no herniation) to 3.
    zone
        ``"A"``, ``"AB"``, ``"B"``, ``"C"`` or ``None`` without herniation.
    side
        ``"left"`` / ``"right"`` (patient) for AB, B and C; ``None`` otherwise.
    disc_to_line_mm
        Distance from the posterior disc margin to the intra-facet line.
    reach_mm
        Distance from the posterior disc margin to the herniation's furthest point.
    ratio
        ``reach_mm / disc_to_line_mm`` (1.0 = at the line).
    tip_lateral_mm
        Lateral position of the tip centroid from the line's midpoint (+ = patient left).
    half_line_mm
        Half the length of the intra-facet line (``W``).
    herniation_area_mm2
        Area of the herniation on this slice.
    """

    size: int
    zone: str | None
    side: str | None
    disc_to_line_mm: float
    reach_mm: float | None
    ratio: float | None
    tip_lateral_mm: float | None
    half_line_mm: float
    herniation_area_mm2: float

    @property
    def label(self) -> str:
        """MSU notation, e.g. ``"2-AB"``, ``"0"`` for a normal disc."""
        return "0" if self.size == 0 else f"{self.size}-{self.zone}"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dictionary (floats rounded to 0.01 mm)."""
        out: dict[str, object] = {}
        for key, value in asdict(self).items():
            out[key] = round(value, 3) if isinstance(value, float) else value
        out["label"] = self.label
        return out


def msu_size_from_ratio(ratio: float) -> int:
    """MSU size of a herniation reaching ``ratio`` of the disc-to-line distance.

    Parameters
    ----------
    ratio
        Reach divided by the distance from the posterior disc margin to the
        intra-facet line; must be positive.

    Returns
    -------
    int
        1 for ``ratio <= 0.5``, 2 for ``ratio <= 1.0``, else 3.
    """
    if ratio <= 0.5:
        return 1
    if ratio <= 1.0:
        return 2
    return 3


def _points(mask: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.stack([rows * float(spacing[0]), cols * float(spacing[1])], axis=1)


def read_msu_slice(labels: np.ndarray, pixel_spacing: tuple[float, float]) -> MsuReading:
    """Apply the MSU rule to one axial label slice.

    Parameters
    ----------
    labels
        ``(rows, columns)`` integer array of :class:`~inference.labels.AxialLabel` values.
    pixel_spacing
        ``(row spacing, column spacing)`` in mm (DICOM PixelSpacing order).

    Returns
    -------
    MsuReading

    Raises
    ------
    MsuGeometryError
        When the slice has no pixels of a facet or of the disc between the facets.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2D, got shape {labels.shape}")
    left = _points(labels == AxialLabel.FACET_LEFT, pixel_spacing)
    right = _points(labels == AxialLabel.FACET_RIGHT, pixel_spacing)
    disc = _points(labels == AxialLabel.DISC, pixel_spacing)
    hern = _points(labels == AxialLabel.HERNIATION, pixel_spacing)
    if len(left) == 0 or len(right) == 0:
        raise MsuGeometryError("the slice does not show both facet joints")
    if len(disc) == 0:
        raise MsuGeometryError("the slice shows no disc")
    axis = left.mean(axis=0) - right.mean(axis=0)
    norm = float(np.hypot(*axis))
    if norm == 0.0:
        raise MsuGeometryError("the facet joints coincide")
    axis /= norm
    eps = 0.5 * min(float(pixel_spacing[0]), float(pixel_spacing[1]))  # ties: within half a pixel
    disc_centre = disc.mean(axis=0)

    def nearest_to_disc(points: np.ndarray) -> np.ndarray:
        return points[int(np.argmin(np.hypot(*(points - disc_centre).T)))]

    proj_left = left @ axis
    medial_left = nearest_to_disc(left[proj_left <= proj_left.min() + eps])
    proj_right = right @ axis
    medial_right = nearest_to_disc(right[proj_right >= proj_right.max() - eps])
    e_lat = medial_left - medial_right
    length = float(np.hypot(*e_lat))
    if length == 0.0:
        raise MsuGeometryError("the medial facet margins coincide")
    e_lat /= length
    e_post = np.array([-e_lat[1], e_lat[0]])
    if (disc.mean(axis=0) - medial_right) @ e_post > 0:
        e_post = -e_post
    middle = 0.5 * (medial_left + medial_right)
    half = 0.5 * length

    def depth(p: np.ndarray) -> np.ndarray:
        return (p - medial_right) @ e_post

    def lateral(p: np.ndarray) -> np.ndarray:
        return (p - middle) @ e_lat

    in_span = np.abs(lateral(disc)) <= half
    if not in_span.any():
        raise MsuGeometryError("no disc pixel lies between the medial facet margins")
    margin = float(depth(disc[in_span]).max())
    disc_to_line = -margin
    if disc_to_line <= 0:
        raise MsuGeometryError("the posterior disc margin is not anterior to the intra-facet line")
    area = float(len(hern) * pixel_spacing[0] * pixel_spacing[1])
    if len(hern) == 0:
        return MsuReading(0, None, None, disc_to_line, None, None, None, half, 0.0)
    h_depth = depth(hern)
    furthest = float(h_depth.max())
    reach = furthest - margin
    ratio = reach / disc_to_line
    size = msu_size_from_ratio(ratio) if reach > 0 else 1
    tip = lateral(hern[h_depth >= furthest - TIP_TOLERANCE_MM])
    centroid = float(tip.mean())
    abs_tip = np.abs(tip)
    in_a = abs_tip <= half / 2
    in_b = (abs_tip > half / 2) & (abs_tip <= half)
    if in_a.any() and in_b.any():
        zone = "AB"
        side_value = float(tip[in_b].mean())
    else:
        side_value = centroid
        if abs(centroid) <= half / 2:
            zone = "A"
        elif abs(centroid) <= half:
            zone = "B"
        else:
            zone = "C"
    side = None if zone == "A" else ("left" if side_value > 0 else "right")
    return MsuReading(size, zone, side, disc_to_line, reach, ratio, centroid, half, area)


def read_msu_stack(
    labels: np.ndarray, pixel_spacing: tuple[float, float]
) -> tuple[int, MsuReading]:
    """Read the MSU class of one disc level on its slice of maximal herniation.

    Parameters
    ----------
    labels
        ``(slices, rows, columns)`` axial label slices of one disc level.
    pixel_spacing
        ``(row spacing, column spacing)`` in mm.

    Returns
    -------
    tuple of (int, MsuReading)
        Index of the slice read and the reading.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.shape[0] == 0:
        raise ValueError(f"labels must be (slices, rows, columns), got shape {labels.shape}")
    herniation = (labels == AxialLabel.HERNIATION).sum(axis=(1, 2))
    if herniation.max() > 0:
        index = int(np.argmax(herniation))
        return index, read_msu_slice(labels[index], pixel_spacing)
    disc = (labels == AxialLabel.DISC).sum(axis=(1, 2))
    has_facets = (labels == AxialLabel.FACET_LEFT).any(axis=(1, 2)) & (
        labels == AxialLabel.FACET_RIGHT
    ).any(axis=(1, 2))
    candidates = np.where(has_facets, disc, -1)
    index = int(np.argmax(candidates))
    if candidates[index] <= 0:
        raise MsuGeometryError("no slice of the stack shows the disc and both facets")
    return index, read_msu_slice(labels[index], pixel_spacing)
