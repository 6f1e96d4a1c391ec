"""SPARCC-style slice selection and score arithmetic, lesion volumes, ASAS MRI flag.

Pure functions on numpy arrays; the quadrant tables they read come from
:func:`inference.sij.quadrants.quadrant_table`.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from inference.sij.quadrants import QUADRANT_NAMES

__all__ = [
    "SPARCC_SLICES",
    "asas_positive_mri",
    "lesion_volumes_ml",
    "select_sparcc_slices",
    "sparcc_score",
]

logger = logging.getLogger(__name__)

#: Number of consecutive slices the SPARCC structural score reads.
SPARCC_SLICES = 5


def select_sparcc_slices(joint_area: np.ndarray, n: int = SPARCC_SLICES) -> np.ndarray:
    """The ``n`` consecutive slices with the largest total cartilaginous-joint area.

    Parameters
    ----------
    joint_area:
        Joint area per slice (any unit), shape (slices,).
    n:
        Window length (5 for SPARCC).

    Returns
    -------
    numpy.ndarray
        Slice indices, ascending. Ties go to the most caudal-first, i.e. lowest, start
        index; a volume with fewer than ``n`` slices returns all of them.
    """
    area = np.asarray(joint_area, dtype=np.float64)
    if area.ndim != 1:
        raise ValueError("joint_area must be one value per slice")
    if n < 1:
        raise ValueError("n must be positive")
    if area.size <= n:
        return np.arange(area.size)
    window = np.convolve(area, np.ones(n), mode="valid")
    start = int(np.argmax(window))  # first maximum
    return np.arange(start, start + n)


def sparcc_score(present: np.ndarray, slices: np.ndarray) -> int:
    """SPARCC-style score: involved quadrants summed over the chosen slices (0-8 each, 0-40 for 5).

    Parameters
    ----------
    present:
        Boolean (slices, 8) presence table.
    slices:
        The slice indices to score.
    """
    table = np.asarray(present, dtype=bool)
    if table.ndim != 2 or table.shape[1] != len(QUADRANT_NAMES):
        raise ValueError(f"presence table must be (slices, {len(QUADRANT_NAMES)}), got {table.shape}")
    idx = np.asarray(slices, dtype=np.int64)
    return int(table[idx].sum())


def lesion_volumes_ml(quadrants: np.ndarray, lesion: np.ndarray, voxel_volume_mm3: float) -> dict[str, float]:
    """Lesion volume per joint and in total, in millilitres.

    Parameters
    ----------
    quadrants:
        Quadrant index volume (-1 where unassigned); indices 0-3 are the left joint, 4-7 the right.
    lesion:
        Boolean lesion volume; the total counts every lesion voxel, assigned or not.
    voxel_volume_mm3:
        Volume of one voxel (slice spacing included).

    Returns
    -------
    dict
        ``{"left": ..., "right": ..., "total": ...}``.
    """
    q = np.asarray(quadrants)
    scale = float(voxel_volume_mm3) / 1000.0
    left = int(((q >= 0) & (q < 4)).sum())
    right = int((q >= 4).sum())
    total = int(np.asarray(lesion, dtype=bool).sum())
    return {"left": left * scale, "right": right * scale, "total": total * scale}


def asas_positive_mri(oedema: np.ndarray, *, min_voxels: int = 3) -> bool:
    """ASAS definition of a positive MRI from an oedema mask.

    Positive when one lesion spans at least two consecutive slices (a 3D connected
    component, 26-connectivity, present on two or more slices) or when one slice holds
    at least two separate lesions (2D components). Components smaller than ``min_voxels``
    (per slice) are ignored as noise.
    """
    mask = np.asarray(oedema, dtype=bool)
    if mask.ndim != 3:
        raise ValueError("oedema must be a 3D (slices, rows, cols) mask")
    cleaned = np.zeros_like(mask)
    for k in range(mask.shape[0]):
        comps, n = ndimage.label(mask[k], structure=np.ones((3, 3), dtype=bool))
        if n == 0:
            continue
        sizes = ndimage.sum(np.ones_like(comps), comps, index=np.arange(1, n + 1))
        keep = np.flatnonzero(sizes >= min_voxels) + 1
        cleaned[k] = np.isin(comps, keep)
        if keep.size >= 2:
            return True
    comps3, n3 = ndimage.label(cleaned, structure=np.ones((3, 3, 3), dtype=bool))
    for c in range(1, n3 + 1):
        slices_hit = np.flatnonzero((comps3 == c).any(axis=(1, 2)))
        if slices_hit.size >= 2:
            return True
    return False
