"""Axial slices to disc levels: geometry in patient coordinates, and the stack-order fallback.

Pure numpy. A slice gets the level of the disc whose axis (the line through the
disc centre along the disc normal) crosses the slice plane closest to the disc
centre, when that crossing is

* within ``tolerance_mm`` of the disc plane (measured along the disc normal), and
* inside the slice's pixel matrix (the slice intersects the disc's axis in its
  field of view), with the slice no more than 60 degrees from the disc plane.

``distance_mm`` is that signed distance, positive cranial of the disc.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from inference.levels.junction import level_name

__all__ = [
    "DiscLevel",
    "SliceLevel",
    "VolumeLike",
    "assign_from_discs",
    "coordinates_agree",
    "stack_order_levels",
]

logger = logging.getLogger(__name__)

#: Largest angle between a slice and a disc plane for the slice to be read as through that disc.
MAX_TILT_DEG = 60.0


class VolumeLike(Protocol):
    """What the mapping needs of :class:`inference.volume.Volume`."""

    array: np.ndarray
    affine: np.ndarray
    frame_of_reference_uid: str | None


@dataclass
class DiscLevel:
    """One disc found on the sagittal series, in patient coordinates.

    Attributes
    ----------
    name
        ``"L5/S1"``, ``"L4/L5"``, ... counted from the lumbosacral junction.
    center
        ``(3,)`` disc centre, LPS mm.
    normal
        ``(3,)`` unit normal of the disc plane, pointing cranially.
    confidence
        0-1: network confidence, lowered by what makes the count uncertain.
    """

    name: str
    center: np.ndarray
    normal: np.ndarray
    confidence: float


@dataclass
class SliceLevel:
    """The level of one axial slice and how it was found.

    Attributes
    ----------
    level
        Disc level name, or None when no disc is within the tolerance.
    distance_mm
        Signed distance from the disc plane along its normal (positive cranial);
        None for stack-order levels.
    confidence
        0-1.
    method
        ``"sagittal"`` (cross-referenced to the sagittal series) or ``"stack_order"``.
    warnings
        What makes this level uncertain (``"inferred ..."`` for stack order).
    """

    level: str | None
    distance_mm: float | None
    confidence: float
    method: str
    warnings: list[str] = field(default_factory=list)


def _slice_frame(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    aff = np.asarray(affine, dtype=float)
    row_step, col_step = aff[:3, 1], aff[:3, 2]
    normal = np.cross(col_step, row_step)  # row direction x column direction
    normal /= np.linalg.norm(normal)
    return aff[:3, 0], row_step, col_step, normal


def volume_centre(volume: VolumeLike) -> np.ndarray:
    """LPS centre of a volume's voxel grid."""
    shape = np.asarray(volume.array.shape, dtype=float)
    centre = (shape - 1) / 2.0
    aff = np.asarray(volume.affine, dtype=float)
    return np.asarray(aff[:3, :3] @ centre + aff[:3, 3])


def coordinates_agree(axial: VolumeLike, sagittal: VolumeLike, margin_mm: float = 10.0) -> bool:
    """Whether an axial stack's centre lies inside the sagittal volume's box (plus ``margin_mm``).

    Used when the two series do not share a frame of reference: their patient
    coordinates can still be trusted when they clearly describe the same region.
    """
    aff = np.asarray(sagittal.affine, dtype=float)
    shape = np.asarray(sagittal.array.shape, dtype=float)
    idx = np.linalg.solve(aff[:3, :3], volume_centre(axial) - aff[:3, 3])
    steps = np.linalg.norm(aff[:3, :3], axis=0)
    tolerance = margin_mm / np.maximum(steps, 1e-6)
    return bool(np.all(idx >= -0.5 - tolerance) and np.all(idx <= shape - 0.5 + tolerance))


def assign_from_discs(
    volume: VolumeLike,
    discs: Sequence[DiscLevel],
    *,
    tolerance_mm: float = 12.0,
    confidence_scale: float = 1.0,
    warnings: Sequence[str] = (),
) -> list[SliceLevel]:
    """Level of every slice of one axial volume from discs in the same patient coordinates.

    Parameters
    ----------
    volume
        The axial stack (its affine and slice count are used).
    discs
        Discs found on the sagittal series.
    tolerance_mm
        Largest distance from a disc plane for a slice to take its level.
    confidence_scale
        Multiplies every confidence (e.g. when frames of reference differ).
    warnings
        Copied into every slice's warnings.

    Returns
    -------
    list of SliceLevel
        One per slice, ``method="sagittal"``.
    """
    n_slices, rows, cols = (int(v) for v in volume.array.shape)
    slice_step, row_step, col_step, normal = _slice_frame(volume.affine)
    origin = np.asarray(volume.affine, dtype=float)[:3, 3]
    cos_max = float(np.cos(np.radians(MAX_TILT_DEG)))
    out: list[SliceLevel] = []
    for k in range(n_slices):
        point = origin + k * slice_step
        best: tuple[float, DiscLevel] | None = None
        nearest_any: tuple[float, DiscLevel] | None = None
        for disc in discs:
            n_d = np.asarray(disc.normal, dtype=float)
            n_d = n_d / np.linalg.norm(n_d)
            denom = float(n_d @ normal)
            if abs(denom) < cos_max:
                continue
            t = float((point - disc.center) @ normal) / denom
            crossing = disc.center + t * n_d
            rel = crossing - point
            i = float(rel @ row_step) / float(row_step @ row_step)
            j = float(rel @ col_step) / float(col_step @ col_step)
            if not (-0.5 <= i <= rows - 0.5 and -0.5 <= j <= cols - 0.5):
                continue
            if nearest_any is None or abs(t) < abs(nearest_any[0]):
                nearest_any = (t, disc)
            if abs(t) <= tolerance_mm and (best is None or abs(t) < abs(best[0])):
                best = (t, disc)
        if best is not None:
            t, disc = best
            conf = float(disc.confidence) * (1.0 - 0.5 * (abs(t) / tolerance_mm) ** 2) * confidence_scale
            out.append(SliceLevel(disc.name, t, float(np.clip(conf, 0.0, 1.0)), "sagittal", list(warnings)))
        else:
            why = (
                f"no disc within {tolerance_mm:g} mm (nearest: {nearest_any[1].name} at {nearest_any[0]:+.1f} mm)"
                if nearest_any is not None
                else "the slice crosses no disc found on the sagittal series"
            )
            out.append(SliceLevel(None, None if nearest_any is None else nearest_any[0], 0.0, "sagittal", [*warnings, why]))
    return out


def stack_order_levels(axial: Sequence[VolumeLike], reason: str, confidence: float = 0.5) -> list[list[SliceLevel]]:
    """Levels from the order of the axial stacks: the lowest (most caudal) stack is L5/S1.

    Every slice of a stack gets the stack's level, ``method="stack_order"``, and a
    warning starting with ``"inferred"`` that carries ``reason``.
    """
    centres = [float(volume_centre(v)[2]) for v in axial]
    order = np.argsort(centres, kind="stable")  # lowest z = most caudal first
    rank = {int(index): position for position, index in enumerate(order)}
    out: list[list[SliceLevel]] = []
    for index, volume in enumerate(axial):
        name = level_name(rank[index])
        warning = f"inferred from the axial stack order (lowest stack = L5/S1): {reason}"
        extra: list[str] = []
        aff = np.asarray(volume.affine, dtype=float)
        extent_z = abs(float(aff[2, 0])) * max(0, volume.array.shape[0] - 1)
        if extent_z > 40.0:
            extra.append(f"the stack spans {extent_z:.0f} mm along the spine: it may cover more than one disc")
        out.append([SliceLevel(name, None, confidence, "stack_order", [warning, *extra]) for _ in range(volume.array.shape[0])])
    return out
