"""The plain-language summary a radiologist reads in three seconds.

Lumbar: ``"L4/5: MSU 2-B left (depth 7.1 mm, 68 %); L5/S1: 1-A central (depth ...)"``,
normal levels listed together (``"L3/4 normal"``), "(levels inferred)" once when
the levels were not read on a sagittal series. SIJ: the result's own summary line.
Every summary ends with the research-use notice.
"""

from __future__ import annotations

from inference.ldh.result import LdhResult, LevelFinding
from inference.sij.result import SijResult

__all__ = ["ldh_summary", "short_level", "sij_summary"]


def short_level(level: str | None) -> str:
    """``"L4/L5"`` -> ``"L4/5"``, ``"L5/S1"`` stays, ``None`` -> ``"level ?"``."""
    if not level:
        return "level ?"
    upper, _, lower = level.partition("/")
    if upper[:1] == lower[:1] and lower[1:].isdigit():
        return f"{upper}/{lower[1:]}"
    return level


def _finding(f: LevelFinding) -> str:
    side = f" {f.side}" if f.side in ("left", "right") else ""
    return (f"{short_level(f.level)}: MSU {f.grade}{side} "
            f"(depth {f.depth_mm:.1f} mm, {f.ratio_percent:.0f} %)")


def ldh_summary(result: LdhResult, *, with_notice: bool = True) -> str:
    """One line: herniated levels first (cranial to caudal), then the normal ones."""
    herniated = [f for f in result.findings if f.size > 0]
    normal = [f for f in result.findings if f.size == 0]
    parts = [_finding(f) for f in herniated]
    if normal:
        parts.append(", ".join(short_level(f.level) for f in normal) + " normal")
    if not parts:
        parts.append("no disc level could be graded")
    elif not herniated:
        parts.insert(0, "No disc herniation")
    text = "; ".join(parts)
    if any(f.level_inferred for f in result.findings):
        text += " (levels inferred from stack order)"
    if with_notice:
        text += f". {result.notice[:1].upper()}{result.notice[1:]}."
    return text


def sij_summary(result: SijResult, *, with_notice: bool = True) -> str:
    """The SIJ result's summary line, with the notice."""
    text = result.summary()
    if with_notice:
        notice = result.model.notice if result.model else "research use only; untrained or stub network"
        text += f". {notice[:1].upper()}{notice[1:]}."
    return text
