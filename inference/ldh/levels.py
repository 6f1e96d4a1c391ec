"""Disc level of every axial slice: the level finder when available, else the stack order.

:func:`slice_levels` calls :func:`inference.levels.assign_levels` (sagittal
cross-reference, with its own stack-order fallback). When that package cannot be
imported, :func:`stack_order_levels` is the private fallback: stacks sorted from
caudal to cranial along the patient's z axis, the lowest named L5/S1, and every
level flagged as inferred.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from inference.labels import DISC_LEVELS

__all__ = ["LevelInfo", "slice_levels", "stack_order_levels"]

logger = logging.getLogger(__name__)


class _StackLike(Protocol):
    array: np.ndarray
    affine: np.ndarray


@dataclass
class LevelInfo:
    """The level of one slice (same fields as :class:`inference.levels.SliceLevel`)."""

    level: str | None
    distance_mm: float | None
    confidence: float
    method: str
    warnings: list[str] = field(default_factory=list)


def _centre_z(stack: _StackLike) -> float:
    shape = np.asarray(stack.array.shape, dtype=float)
    aff = np.asarray(stack.affine, dtype=float)
    return float((aff[:3, :3] @ ((shape - 1) / 2.0) + aff[:3, 3])[2])


def stack_order_levels(axial: Sequence[_StackLike], reason: str = "no sagittal series") -> list[list[LevelInfo]]:
    """Levels from the order of the stacks: the most caudal (lowest z in LPS) is L5/S1.

    Every slice of a stack gets the stack's level, with confidence 0.5 and an
    ``"inferred from stack order"`` warning; stacks beyond T12/L1 get ``None``.
    """
    order = sorted(range(len(axial)), key=lambda i: _centre_z(axial[i]))
    names: dict[int, str | None] = {}
    for rank, index in enumerate(order):
        position = len(DISC_LEVELS) - 1 - rank
        names[index] = DISC_LEVELS[position] if position >= 0 else None
    out = []
    for index, stack in enumerate(axial):
        warning = f"level inferred from stack order ({reason})"
        out.append(
            [LevelInfo(names[index], None, 0.5, "stack_order", [warning]) for _ in range(stack.array.shape[0])]
        )
    return out


def slice_levels(
    axial: Sequence[Any],
    sagittal: Any | None,
    *,
    model: torch.nn.Module | None = None,
    use_level_finder: bool = True,
) -> list[list[Any]]:
    """One level record per slice of each axial stack (``.level``, ``.method``, ``.confidence``, ``.warnings``)."""
    if use_level_finder:
        try:
            from inference.levels import assign_levels
        except ImportError as exc:  # the level finder is optional at run time
            logger.warning("level finder unavailable (%s); levels from stack order", exc)
        else:
            return list(assign_levels(list(axial), sagittal, model=model))
    return list(stack_order_levels(axial, "level finder not used" if sagittal is not None else "no sagittal series"))
