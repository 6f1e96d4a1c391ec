"""Split frames into geometrically consistent stacks, sort them along the normal, check spacing.

A "series" may hold several stacks: different orientations (one angled axial
block per lumbar disc), echoes, localisers, enhanced StackIDs. Frames are first
grouped by what can never share a stack (series, frame of reference, orientation,
echo, localiser flag, StackID). Within a group, repeated positions are told apart
by acquisition number, then image type, then temporal position; only if none of
these separates them is it an error. (Acquisition number does not split a stack
by itself: Siemens concatenations interleave slices of one stack across
acquisition numbers.)

Parallel blocks with a gap between them (GE "groups", unangled disc blocks) look
like a stack with missing slices. They are told apart by the InstanceNumbers of
the series: when no number is missing, nothing was lost in transfer and the gap
was planned, so the stack is split into regular runs (:func:`split_runs`);
otherwise the gap is reported as missing slices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from inference.errors import (
    DuplicateSliceError,
    InconsistentGeometryError,
    IrregularSpacingError,
    MissingSliceError,
)
from inference.geometry import affine_from_slice
from inference.volume_frames import FrameRecord

__all__ = ["SortedStack", "group_frames", "missing_instance_numbers", "sort_stack", "split_runs"]

logger = logging.getLogger(__name__)

#: Largest difference of any IOP component still counted as the same orientation.
ORIENTATION_TOLERANCE = 1e-3


@dataclass
class SortedStack:
    """Frames of one stack in volume order, with the affine and spacing they define."""

    records: list[FrameRecord]
    affine: np.ndarray
    spacing: tuple[float, float, float]


def _orientation_clusters(records: Sequence[FrameRecord]) -> list[list[FrameRecord]]:
    clusters: list[tuple[np.ndarray, list[FrameRecord]]] = []
    for record in records:
        for reference, members in clusters:
            if np.max(np.abs(reference - record.orientation)) <= ORIENTATION_TOLERANCE:
                members.append(record)
                break
        else:
            clusters.append((record.orientation, [record]))
    return [members for _, members in clusters]


def _split_by(records: list[FrameRecord], key: Callable[[FrameRecord], Hashable]) -> list[list[FrameRecord]]:
    groups: dict[Hashable, list[FrameRecord]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return list(groups.values())


def _position_key(record: FrameRecord, tolerance: float) -> tuple[int, ...]:
    return tuple(int(v) for v in np.rint(record.position / tolerance))


def _has_duplicates(records: Sequence[FrameRecord], tolerance: float) -> bool:
    keys = [_position_key(r, tolerance) for r in records]
    return len(set(keys)) != len(keys)


#: Attributes that tell apart frames at the same position, tried in this order.
_DISAMBIGUATORS: tuple[tuple[str, Callable[[FrameRecord], Hashable]], ...] = (
    ("AcquisitionNumber", lambda r: r.acquisition_number),
    ("ImageType", lambda r: r.image_type),
    ("temporal position", lambda r: r.temporal),
)


def _resolve_duplicates(records: list[FrameRecord], tolerance: float) -> list[list[FrameRecord]]:
    pending = [records]
    for name, key in _DISAMBIGUATORS:
        if not any(_has_duplicates(group, tolerance) for group in pending):
            break
        split: list[list[FrameRecord]] = []
        for group in pending:
            if _has_duplicates(group, tolerance):
                parts = _split_by(group, key)
                if len(parts) > 1:
                    logger.debug("repeated slice positions told apart by %s (%d stacks)", name, len(parts))
                split.extend(parts)
            else:
                split.append(group)
        pending = split
    return pending


def group_frames(records: Sequence[FrameRecord], position_tolerance: float = 0.01) -> list[list[FrameRecord]]:
    """Group frames into candidate stacks (not yet sorted or checked).

    Parameters
    ----------
    records
        Frames of any number of instances.
    position_tolerance
        Positions closer than this (mm) count as the same position.

    Returns
    -------
    list[list[FrameRecord]]
        Groups in the order their first frame was seen.
    """
    coarse = _split_by(
        list(records),
        lambda r: (r.series_instance_uid, r.frame_of_reference_uid, r.echo, r.localizer, r.stack_id),
    )
    stacks: list[list[FrameRecord]] = []
    for group in coarse:
        for cluster in _orientation_clusters(group):
            stacks.extend(_resolve_duplicates(cluster, position_tolerance))
    return stacks


def missing_instance_numbers(records: Sequence[FrameRecord]) -> list[int] | None:
    """InstanceNumbers absent from the range the single-frame instances of a series span.

    Parameters
    ----------
    records
        All frames of one series (every stack of it).

    Returns
    -------
    list[int] | None
        The missing numbers (empty when the numbering is complete), or ``None``
        when single-frame instances lack InstanceNumber and nothing can be said.
        Multi-frame instances are ignored: their frames cannot be lost one by one.
    """
    singles = {r.sop_instance_uid: r.instance_number for r in records if r.frame_index is None}
    if not singles:
        return []
    if any(number is None for number in singles.values()):
        return None
    numbers = {int(n) for n in singles.values() if n is not None}
    return sorted(set(range(min(numbers), max(numbers) + 1)) - numbers)


def split_runs(
    records: Sequence[FrameRecord], *, spacing_rtol: float = 0.02, spacing_atol: float = 0.01
) -> list[list[FrameRecord]] | None:
    """Split one orientation's frames into runs of evenly spaced, aligned slices.

    A new run starts wherever the gap along the normal differs from the run's
    own step, or the in-plane position jumps. Each run keeps its own spacing.

    Parameters
    ----------
    records
        Frames of one orientation group.
    spacing_rtol, spacing_atol
        As in :func:`sort_stack`.

    Returns
    -------
    list[list[FrameRecord]] | None
        The runs (a single run when the stack is regular), or ``None`` when
        splitting would leave a run of one slice: then the frames are not
        planned blocks and :func:`sort_stack` reports what is wrong with them.
    """
    if len(records) < 2:
        return [list(records)]
    orientation = records[0].orientation
    normal = np.cross(orientation[:3], orientation[3:])
    ordered = sorted(records, key=lambda r: float(np.dot(r.position, normal)))
    runs: list[list[FrameRecord]] = [[ordered[0]]]
    step: np.ndarray | None = None
    for previous, record in zip(ordered, ordered[1:]):
        delta = record.position - previous.position
        gap = float(np.dot(delta, normal))
        if gap <= spacing_atol:
            return None  # duplicates: sort_stack says so
        if step is None:
            step = delta
            runs[-1].append(record)
            continue
        tolerance = max(spacing_atol, spacing_rtol * float(np.dot(step, normal)))
        if float(np.linalg.norm(delta - step)) <= tolerance:
            runs[-1].append(record)
        else:
            runs.append([record])
            step = None
    if len(runs) > 1 and min(len(run) for run in runs) < 2:
        return None
    return runs


def _check_same_grid(records: Sequence[FrameRecord]) -> None:
    first = records[0]
    for record in records[1:]:
        if (record.rows, record.columns) != (first.rows, first.columns):
            raise InconsistentGeometryError(
                f"mixed sizes in one stack: {first.label} is {first.rows}x{first.columns}, "
                f"{record.label} is {record.rows}x{record.columns}"
            )
        if not np.allclose(record.pixel_spacing, first.pixel_spacing, rtol=1e-3, atol=1e-4):
            raise InconsistentGeometryError(
                f"mixed pixel spacing in one stack: {first.label} has {first.pixel_spacing}, "
                f"{record.label} has {record.pixel_spacing}"
            )


def sort_stack(
    records: Sequence[FrameRecord],
    *,
    spacing_rtol: float = 0.02,
    spacing_atol: float = 0.01,
) -> SortedStack:
    """Sort a stack along its normal and check that it is a regular grid.

    Parameters
    ----------
    records
        Frames with one orientation (as grouped by :func:`group_frames`).
    spacing_rtol, spacing_atol
        A gap between consecutive slices matches the spacing when it is within
        ``max(spacing_atol, spacing_rtol * spacing)`` mm of it; the same
        tolerance applies to the in-plane drift of consecutive positions.

    Returns
    -------
    SortedStack

    Raises
    ------
    InconsistentGeometryError
        Mixed sizes or pixel spacing, or slices that drift in-plane.
    DuplicateSliceError
        Two frames at one position.
    MissingSliceError
        A gap of a whole number (>= 2) of spacings.
    IrregularSpacingError
        Any other uneven gap.
    """
    if not records:
        raise InconsistentGeometryError("a stack needs at least one slice")
    _check_same_grid(records)
    orientation = records[0].orientation
    normal = np.cross(orientation[:3], orientation[3:])
    distances = np.array([float(np.dot(r.position, normal)) for r in records])
    order = np.argsort(distances, kind="stable")
    ordered = [records[i] for i in order]
    distances = distances[order]
    row_spacing, col_spacing = ordered[0].pixel_spacing
    label = f"series {ordered[0].series_instance_uid}"
    if len(ordered) == 1:
        single = ordered[0]
        thickness = single.spacing_between_slices or single.slice_thickness or 1.0
        step: np.ndarray | float = float(thickness)
        slice_spacing = float(thickness)
    else:
        gaps = np.diff(distances)
        spacing = float(np.median(gaps))
        tolerance = max(spacing_atol, spacing_rtol * abs(spacing))
        for m, gap in enumerate(gaps):
            if gap <= spacing_atol:
                raise DuplicateSliceError(
                    f"{label}: {ordered[m].label} and {ordered[m + 1].label} are at the same position "
                    f"({distances[m]:.3f} mm along the normal) and no acquisition number, image type "
                    "or temporal position tells them apart"
                )
        if spacing <= spacing_atol:
            raise DuplicateSliceError(f"{label}: most slices share their position with another")
        for m, gap in enumerate(gaps):
            if abs(gap - spacing) <= tolerance:
                continue
            ratio = gap / spacing
            whole = round(ratio)
            if whole >= 2 and abs(gap - whole * spacing) <= tolerance * whole:
                raise MissingSliceError(
                    f"{label}: {whole - 1} slice(s) missing between {ordered[m].label} and "
                    f"{ordered[m + 1].label} (gap {gap:.3f} mm, spacing {spacing:.3f} mm, "
                    f"{distances[m]:.3f} to {distances[m + 1]:.3f} mm along the normal)"
                )
            raise IrregularSpacingError(
                f"{label}: slice spacing is irregular: gap {gap:.3f} mm between {ordered[m].label} and "
                f"{ordered[m + 1].label}, whereas the median gap is {spacing:.3f} mm"
            )
        positions = np.array([r.position for r in ordered])
        step_vector = (positions[-1] - positions[0]) / (len(ordered) - 1)
        drift = np.linalg.norm(np.diff(positions, axis=0) - step_vector, axis=1)
        worst = int(np.argmax(drift))
        if drift[worst] > tolerance:
            raise InconsistentGeometryError(
                f"{label}: slices do not lie on one line: the step from {ordered[worst].label} to "
                f"{ordered[worst + 1].label} differs from the mean step by {drift[worst]:.3f} mm"
            )
        cos_shear = abs(float(np.dot(step_vector, normal))) / float(np.linalg.norm(step_vector))
        shear = float(np.degrees(np.arccos(np.clip(cos_shear, 0.0, 1.0))))
        if shear > 0.5:
            logger.warning("%s: slice positions are sheared by %.2f degrees from the normal", label, shear)
        step = step_vector
        slice_spacing = spacing
    affine = affine_from_slice(ordered[0].position, orientation, (row_spacing, col_spacing), step)
    return SortedStack(records=ordered, affine=affine, spacing=(slice_spacing, row_spacing, col_spacing))
