"""Disc levels from the sagittal series, and the level of every axial slice.

>>> model = load_levels_model()                                  # doctest: +SKIP
>>> levels = assign_levels(axial_volumes, sagittal_volume, model=model)  # doctest: +SKIP
>>> levels[0][3].level, levels[0][3].distance_mm, levels[0][3].method    # doctest: +SKIP
('L4/L5', -2.1, 'sagittal')

Without a usable sagittal series the levels come from the order of the axial
stacks (lowest = L5/S1), with ``method="stack_order"`` and an ``"inferred"``
warning on every slice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from inference.levels.errors import LevelsDataError, LevelsError, LevelsModelError
from inference.levels.junction import count_levels, level_name
from inference.levels.mapping import (
    DiscLevel,
    SliceLevel,
    VolumeLike,
    assign_from_discs,
    coordinates_agree,
    stack_order_levels,
)
from inference.levels.model import LevelsModel, load_levels_model
from inference.levels.sagittal import find_disc_levels

__all__ = [
    "DiscLevel",
    "LevelsDataError",
    "LevelsError",
    "LevelsModel",
    "LevelsModelError",
    "SliceLevel",
    "assign_from_discs",
    "assign_levels",
    "count_levels",
    "find_disc_levels",
    "level_name",
    "load_levels_model",
]

logger = logging.getLogger(__name__)

#: Fewer discs than this on the sagittal series and it is not used for levels.
MIN_DISCS = 2


def assign_levels(
    axial: Sequence[VolumeLike],
    sagittal: VolumeLike | None,
    *,
    model: torch.nn.Module | None = None,
    tolerance_mm: float = 12.0,
) -> list[list[SliceLevel]]:
    """The disc level of every slice of every axial stack.

    Parameters
    ----------
    axial
        Axial stacks (one :class:`~inference.volume.Volume` per stack).
    sagittal
        The study's sagittal T2 (T1 as fallback), or None.
    model
        The level network; None loads the bundled demo weights.
    tolerance_mm
        Largest distance of a slice from a disc plane to take its level.

    Returns
    -------
    list of list of SliceLevel
        One list per axial volume, one entry per slice. When the sagittal series
        is missing or unusable (no network, fewer than two discs, coordinates
        that do not match), levels come from the stack order and are flagged
        ``"inferred"``.
    """
    if not axial:
        return []
    if sagittal is None:
        return stack_order_levels(axial, "no sagittal series")
    try:
        network = model if model is not None else load_levels_model()
        discs, sag_warnings = find_disc_levels(sagittal, network)
    except LevelsError as exc:
        logger.warning("sagittal series unusable for levels: %s", exc)
        return stack_order_levels(axial, f"sagittal series unusable ({exc})")
    if len(discs) < MIN_DISCS:
        return stack_order_levels(axial, f"only {len(discs)} disc(s) found on the sagittal series")
    fallback = stack_order_levels(axial, "the axial stack's patient coordinates do not match the sagittal series")
    out: list[list[SliceLevel]] = []
    for index, volume in enumerate(axial):
        warnings = list(sag_warnings)
        scale = 1.0
        same_frame = (
            volume.frame_of_reference_uid is not None
            and volume.frame_of_reference_uid == sagittal.frame_of_reference_uid
        )
        if not same_frame:
            if not coordinates_agree(volume, sagittal):
                logger.warning("axial stack %d: frame of reference differs and coordinates disagree", index)
                for level in fallback[index]:
                    level.warnings.append(
                        "frame of reference differs from the sagittal series "
                        f"({volume.frame_of_reference_uid} vs {sagittal.frame_of_reference_uid})"
                    )
                out.append(fallback[index])
                continue
            warnings.append(
                "frame of reference differs from the sagittal series; its patient coordinates agree "
                "(the axial stack lies inside the sagittal field of view), so they were used"
            )
            scale = 0.8
        out.append(assign_from_discs(volume, discs, tolerance_mm=tolerance_mm, confidence_scale=scale, warnings=warnings))
    return out
