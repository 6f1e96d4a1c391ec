"""Typed result of the lumbar pipeline: what the SEG and SR encoders receive.

Everything a report needs is here, in plain types: per disc level the MSU grade
with the measurements behind it and the slice it was read on; per axial stack
the label masks on the native pixel grid with the SOP Instance UID (and frame
number) of every slice. No DICOM encoding happens in :mod:`inference`.
docs/ldh.md describes every field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["LdhResult", "LevelFinding", "SliceRef", "StackSegmentation"]


@dataclass(frozen=True)
class SliceRef:
    """One source slice: which stack, which slice of it, and its DICOM identity."""

    stack_index: int
    slice_index: int
    series_instance_uid: str
    sop_instance_uid: str
    frame_number: int | None


@dataclass(frozen=True)
class LevelFinding:
    """The MSU reading of one disc level.

    Attributes
    ----------
    level
        ``"L4/L5"`` etc. (:data:`inference.labels.DISC_LEVELS`), ``None`` when unknown.
    level_method
        ``"sagittal"`` (cross-referenced on the sagittal series) or ``"stack_order"`` (inferred).
    level_inferred
        True when the level was not read on a sagittal series: reports must say so.
    level_confidence
        Confidence of the level assignment, 0-1.
    size
        MSU size 0-3 (0: no herniation).
    zone
        ``"A"``, ``"AB"``, ``"B"``, ``"C"`` or ``None``.
    side
        ``"left"``, ``"right"``, ``"central"`` (zone A) or ``None``.
    depth_mm, reference_mm, ratio
        Reach of the herniation beyond the posterior disc margin, distance from
        that margin to the intra-facet line, and their ratio (fraction).
    area_mm2
        Herniation area on the slice read.
    volume_mm3
        Herniation volume over all slices of the level (area x slice spacing).
    bbox
        ``(row_min, col_min, row_max, col_max)`` pixel box of the herniation on that slice.
    apex_px, fifty_percent_px
        ``(row, col)`` pixel points: where the herniation intrudes furthest; the 50 % point.
    intrafacet_line_px
        ``((row, col), (row, col))``: the right and left medial facet margins.
    quarter_points_px
        The three ``(row, col)`` points splitting the intra-facet line into quarters.
    confidence
        Mean network probability of herniation inside the herniation mask on the
        slice read (with a finding), or ``1 - `` the largest herniation
        probability over the level's slices (normal level).
    slice
        The slice the grade was read on (``None`` when no slice could be read).
    slices
        All slices of the level (where the masks belong).
    warnings
        Anything a reader should know (level inferred, slice without facets, ...).
    """

    level: str | None
    level_method: str
    level_inferred: bool
    level_confidence: float
    size: int
    zone: str | None
    side: str | None
    depth_mm: float
    reference_mm: float
    ratio: float
    area_mm2: float
    volume_mm3: float
    bbox: tuple[int, int, int, int] | None
    apex_px: tuple[float, float] | None
    fifty_percent_px: tuple[float, float] | None
    intrafacet_line_px: tuple[tuple[float, float], tuple[float, float]] | None
    quarter_points_px: tuple[tuple[float, float], ...] | None
    confidence: float
    slice: SliceRef | None
    slices: tuple[SliceRef, ...]
    warnings: tuple[str, ...] = ()

    @property
    def grade(self) -> str:
        """MSU notation: ``"2-B"``, ``"1-A"``, ``"0"``."""
        return "0" if self.size == 0 else f"{self.size}-{self.zone}"

    @property
    def ratio_percent(self) -> float:
        """``ratio`` in percent."""
        return 100.0 * self.ratio

    @property
    def summary(self) -> str:
        """One line for a report, e.g. ``"L4/L5: MSU 2-B left (depth 7.1 mm, 68 %)"``."""
        name = self.level or "level ?"
        if self.level_inferred and self.level:
            name += " (inferred)"
        if self.size == 0:
            return f"{name}: no herniation"
        side = f" {self.side}" if self.side in ("left", "right") else ""
        return f"{name}: MSU {self.grade}{side} (depth {self.depth_mm:.1f} mm, {self.ratio_percent:.0f} %)"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        out = asdict(self)
        out["grade"] = self.grade
        out["ratio_percent"] = self.ratio_percent
        return out


@dataclass
class StackSegmentation:
    """Label masks of one axial stack on its native pixel grid.

    Attributes
    ----------
    stack_index
        Position of the stack in the input list.
    labels
        ``(slices, rows, cols)`` uint8 :class:`~inference.labels.AxialLabel` values,
        slice ``k`` belonging to ``slices[k]``.
    herniation_probability
        ``(slices, rows, cols)`` float16 network probability of herniated material.
    slices
        Source of every slice.
    levels
        Level of every slice (``None`` where none was assigned).
    affine
        The stack's 4 x 4 ``(k, i, j)`` to LPS affine.
    spacing
        ``(slice, row, col)`` spacing in mm.
    """

    stack_index: int
    labels: np.ndarray
    herniation_probability: np.ndarray
    slices: tuple[SliceRef, ...]
    levels: tuple[str | None, ...]
    affine: np.ndarray
    spacing: tuple[float, float, float]


@dataclass
class LdhResult:
    """Findings per disc level, the masks they were read on, and the model that made them."""

    findings: list[LevelFinding]
    segmentations: list[StackSegmentation]
    model_name: str
    model_version: str
    model_sha256: str | None
    notice: str
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    def finding(self, level: str) -> LevelFinding | None:
        """The finding of ``level`` (``None`` when the level was not imaged)."""
        for f in self.findings:
            if f.level == level:
                return f
        return None

    @property
    def summary(self) -> str:
        """All levels, cranial to caudal, ``;``-separated."""
        return "; ".join(f.summary for f in self.findings)
