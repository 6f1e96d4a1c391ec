"""Read the findings back out of a TID 1500 SR for the demo's table (no highdicom parsing)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

__all__ = ["Group", "measurement_groups", "lumbar_rows", "sij_rows"]


@dataclass
class Group:
    """One measurement group: its tracking identifier, coded and numeric items."""

    tracking: str = ""
    codes: dict[str, str] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)


def _name(item: Dataset) -> str:
    seq = item.get("ConceptNameCodeSequence")
    return str(seq[0].CodeMeaning) if seq else ""


def _walk(items: Any) -> Iterator[Dataset]:
    for item in items or []:
        yield item
        yield from _walk(item.get("ContentSequence"))


def measurement_groups(sr: Dataset) -> list[Group]:
    """Every "Measurement Group" container of the report, flattened."""
    groups = []
    for item in _walk(sr.get("ContentSequence")):
        if item.get("ValueType") != "CONTAINER" or _name(item) != "Measurement Group":
            continue
        group = Group()
        for child in item.get("ContentSequence") or []:
            name, kind = _name(child), child.get("ValueType")
            if kind == "TEXT" and name == "Tracking Identifier":
                group.tracking = str(child.TextValue)
            elif kind == "CODE" and child.get("ConceptCodeSequence"):
                group.codes[name] = str(child.ConceptCodeSequence[0].CodeMeaning)
            elif kind == "NUM" and child.get("MeasuredValueSequence"):
                group.numbers[name] = float(child.MeasuredValueSequence[0].NumericValue)
        groups.append(group)
    return groups


def lumbar_rows(sr: Dataset) -> list[tuple[str, str, str]]:
    """``(level, MSU grade or "normal", detail)`` per disc level of a lumbar SR."""
    rows: dict[str, tuple[str, str, str]] = {}
    for group in measurement_groups(sr):
        level = group.tracking.split()[-1] if group.tracking else "?"
        size = group.codes.get("MSU herniation size", "")
        zone = group.codes.get("MSU herniation zone", "")
        if size:
            grade = f"{size.replace('MSU size ', '')}-{zone.replace('MSU zone ', '')}"
            ratio = group.numbers.get("Herniation depth ratio")
            detail = f"depth ratio {ratio:.0f} %" if ratio is not None else ""
            rows[level] = (level, f"MSU {grade}", detail)
        elif level not in rows and group.codes.get("Disc herniation", "").lower() == "absent":
            rows[level] = (level, "normal", "")
    return sorted(rows.values())


def sij_rows(sr: Dataset) -> list[tuple[str, str]]:
    """``(measure, value)`` for the study-level SIJ findings (FM score, axSpA probability ...)."""
    out: list[tuple[str, str]] = []
    for group in measurement_groups(sr):
        for name, value in group.numbers.items():
            low = name.lower()
            if "score" in low or "probability" in low or "sparcc" in low:
                out.append((name, f"{value:g}"))
        for name, meaning in group.codes.items():
            if "axspa" in name.lower() or "spondyl" in name.lower():
                out.append((name, meaning))
    seen: set[tuple[str, str]] = set()
    return [r for r in out if not (r in seen or seen.add(r))]  # type: ignore[func-returns-value]
