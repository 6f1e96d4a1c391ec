"""The lumbosacral junction agreed by the neighbouring sagittal slices of one series.

Pure numpy on :class:`~inference.levels.junction.LevelCount` objects of parallel
slices that share one pixel grid (the slices of a sagittal series, canonical
orientation). One slice may miss its L5/S1 (partial volume, a rudimentary disc)
or find a band below it; its neighbours usually do not. The rule:

1. the junction row of a slice is the row of its lowest disc (in mm);
2. the series junction is the median row of the largest group of slices whose
   junctions lie within ``tolerance`` median segments of one another, when that
   group holds a strict majority of the slices;
3. a slice whose lowest disc lies more than ``tolerance`` segments from the
   series junction gets a warning (a band inside the sacrum below, or its L5/S1
   not found); its names are not changed (see :func:`junction_disagreement`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from inference.levels.junction import LevelCount

__all__ = ["junction_disagreement", "series_junction"]

logger = logging.getLogger(__name__)

#: Junctions closer than this many median segments are the same disc.
TOLERANCE = 0.5


def _rows_mm(count: LevelCount, spacing: tuple[float, float]) -> np.ndarray:
    return np.array([d.centroid[0] for d in count.discs], dtype=float) * float(spacing[0])


def _segment_mm(counts: Sequence[LevelCount], spacing: tuple[float, float]) -> float:
    gaps = [np.diff(_rows_mm(c, spacing)) for c in counts if len(c.discs) >= 2]
    pooled = np.concatenate(gaps) if gaps else np.array([])
    return float(np.median(pooled)) if pooled.size else 0.0


def series_junction(
    counts: Sequence[LevelCount], spacing: tuple[float, float], *, tolerance: float = TOLERANCE
) -> tuple[float, float] | None:
    """The junction row (mm) a strict majority of the slices agree on, and the median segment (mm).

    Returns
    -------
    tuple or None
        ``(junction row in mm, median segment in mm)``; None with fewer than three
        slices with discs or without a strict majority.
    """
    with_discs = [c for c in counts if c.discs]
    if len(with_discs) < 3:
        return None
    segment = _segment_mm(with_discs, spacing)
    if segment <= 0:
        return None
    rows = np.array([_rows_mm(c, spacing)[-1] for c in with_discs])
    best: np.ndarray | None = None
    for row in rows:
        group = rows[np.abs(rows - row) <= tolerance * segment]
        if best is None or group.size > best.size:
            best = group
    assert best is not None
    if best.size * 2 <= len(counts):
        return None
    return float(np.median(best)), segment


def junction_disagreement(
    count: LevelCount, counts: Sequence[LevelCount], spacing: tuple[float, float], *, tolerance: float = TOLERANCE
) -> str | None:
    """A warning when ``count``'s junction is not the one most slices of its series agree on (else None).

    Only a warning: on the SPIDER training patients, renaming or trimming a slice to
    the series junction did not raise the per-slice level count (0.1.0 weights: 89.5 %
    either way; 0.2.0: 97.5 -> 96.5 %), since the reference masks themselves differ
    from slice to slice at a thin L5/S1.
    """
    agreed = series_junction(counts, spacing, tolerance=tolerance)
    if agreed is None or not count.discs:
        return None
    junction_mm, segment_mm = agreed
    offset = (_rows_mm(count, spacing)[-1] - junction_mm) / segment_mm
    if abs(offset) <= tolerance:
        return None
    where = "below" if offset > 0 else "above"
    return (
        f"the lowest disc of this slice lies {abs(offset):.1f} segments {where} the junction most neighbouring "
        "sagittal slices agree on: check the junction and the count"
    )
