"""Post-processing of the axial segmentation: probabilities to clean label slices.

Numpy in, numpy out. Keeps one disc, one dural sac and one facet joint per
side, drops specks of herniated material, and names the facets by the
patient's side from the image orientation rather than trusting the network.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from inference.labels import AxialLabel

__all__ = ["clean_labels", "herniation_confidence", "left_direction_in_slice", "link_herniation_across_slices"]

logger = logging.getLogger(__name__)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, lab, index=np.arange(1, n + 1))
    return np.asarray(lab == (int(np.argmax(sizes)) + 1))


def left_direction_in_slice(row_direction: Sequence[float], column_direction: Sequence[float]) -> np.ndarray:
    """The patient's left (+x in LPS) as a ``(row, column)`` direction in a slice's pixel grid."""
    return np.array([float(column_direction[0]), float(row_direction[0])])


def clean_labels(
    labels: np.ndarray,
    spacing: Sequence[float],
    left_direction: Sequence[float],
    *,
    min_herniation_mm2: float = 2.0,
    max_gap_mm: float = 4.0,
    min_fragment_mm2: float = 20.0,
) -> np.ndarray:
    """Tidy one ``(rows, cols)`` label slice.

    * disc and dural sac: the largest connected component of each;
    * facet joints: both classes pooled, the two largest components kept, and
      named left/right by their position along ``left_direction``;
    * herniated material: components smaller than ``min_herniation_mm2`` dropped
      (merged into the disc when they touch it); components further than
      ``max_gap_mm`` from the disc kept only from ``min_fragment_mm2`` up (a
      migrated fragment), smaller ones dropped as noise.

    Parameters
    ----------
    labels
        Argmax of the network output (:class:`~inference.labels.AxialLabel`).
    spacing
        ``(row, column)`` spacing in mm.
    left_direction
        Patient's left in (row, column) space, see :func:`left_direction_in_slice`.
    min_herniation_mm2
        Smallest herniation component kept.
    """
    out = np.asarray(labels).astype(np.uint8, copy=True)
    for cls in (AxialLabel.DISC, AxialLabel.DURAL_SAC):
        mask = out == cls
        if mask.any():
            out[mask & ~_largest_component(mask)] = AxialLabel.BACKGROUND
    facets = (out == AxialLabel.FACET_LEFT) | (out == AxialLabel.FACET_RIGHT)
    out[facets] = AxialLabel.BACKGROUND
    lab, n = ndimage.label(facets)
    if n:
        sizes = ndimage.sum(facets, lab, index=np.arange(1, n + 1))
        keep = [int(i) + 1 for i in np.argsort(sizes)[::-1][:2]]
        direction = np.asarray(left_direction, dtype=float)
        scale = np.asarray(spacing, dtype=float)
        centres = [np.argwhere(lab == i).mean(axis=0) * scale @ direction for i in keep]
        if len(keep) == 2:
            left_first = centres[0] > centres[1]
            out[lab == keep[0]] = AxialLabel.FACET_LEFT if left_first else AxialLabel.FACET_RIGHT
            out[lab == keep[1]] = AxialLabel.FACET_RIGHT if left_first else AxialLabel.FACET_LEFT
        else:  # one facet: keep what the network called it
            original = np.asarray(labels)[lab == keep[0]]
            out[lab == keep[0]] = np.bincount(original, minlength=len(AxialLabel)).argmax()
    hern = out == AxialLabel.HERNIATION
    if hern.any():
        lab, n = ndimage.label(hern)
        index = np.arange(1, n + 1)
        sizes = ndimage.sum(hern, lab, index=index) * float(spacing[0]) * float(spacing[1])
        near_disc = ndimage.binary_dilation(out == AxialLabel.DISC)
        touches = np.asarray(ndimage.maximum(near_disc, lab, index=index), dtype=bool)
        small = sizes < min_herniation_mm2
        # a speck on the disc's edge is disc; one elsewhere is noise
        replacement = np.zeros(n + 1, dtype=np.int16) - 1
        replacement[1:][small & touches] = AxialLabel.DISC
        replacement[1:][small & ~touches] = AxialLabel.BACKGROUND
        disc = out == AxialLabel.DISC
        if disc.any():
            gap = ndimage.distance_transform_edt(~disc, sampling=[float(v) for v in spacing])
            nearest = np.asarray(ndimage.minimum(gap, lab, index=index), dtype=float)
            stray = (nearest > max_gap_mm) & (sizes < min_fragment_mm2) & ~small
            replacement[1:][stray] = AxialLabel.BACKGROUND
        new = replacement[lab]
        out[new >= 0] = new[new >= 0].astype(np.uint8)
    return out


def link_herniation_across_slices(
    raw: np.ndarray, cleaned: np.ndarray, spacing: Sequence[float], *, min_herniation_mm2: float = 2.0
) -> np.ndarray:
    """Give back herniated material that :func:`clean_labels` dropped as stray but that continues a kept herniation.

    Slice by slice, material more than a few mm from the slice's disc looks like noise; but a
    herniation that reaches above or below its disc shows on the neighbouring slices of the
    stack as a patch next to the sac with little or no disc beside it. A herniation component
    of the network's labels (``raw``) that the cleaning set to background is restored when it
    overlaps herniation kept on an adjacent slice (the slices of one stack share the pixel
    grid), repeatedly, so that the material continues over several slices. Specks under
    ``min_herniation_mm2`` stay dropped; material merged into the disc stays disc.

    Parameters
    ----------
    raw
        ``(slices, rows, cols)`` network labels before cleaning.
    cleaned
        The same slices after :func:`clean_labels`.
    spacing
        ``(row, column)`` spacing in mm.
    """
    raw = np.asarray(raw)
    out = np.asarray(cleaned).astype(np.uint8, copy=True)
    pixel_mm2 = float(spacing[0]) * float(spacing[1])
    pending: list[tuple[int, np.ndarray]] = []  # (slice, component mask) of dropped material
    for k in range(raw.shape[0]):
        dropped = (raw[k] == AxialLabel.HERNIATION) & (out[k] == AxialLabel.BACKGROUND)
        lab, n = ndimage.label(dropped)
        if n:
            sizes = ndimage.sum(dropped, lab, index=np.arange(1, n + 1)) * pixel_mm2
            pending += [(k, lab == i + 1) for i in range(n) if sizes[i] >= min_herniation_mm2]
    while pending:  # in rounds, until nothing more continues a kept herniation
        hern = out == AxialLabel.HERNIATION
        linked = [
            any(comp[hern[j]].any() for j in (k - 1, k + 1) if 0 <= j < out.shape[0]) for k, comp in pending
        ]
        if not any(linked):
            break
        for (k, comp), restore in zip(pending, linked):
            if restore:
                out[k][comp] = AxialLabel.HERNIATION
        pending = [item for item, restore in zip(pending, linked) if not restore]
    return out


def herniation_confidence(probability: np.ndarray, mask: np.ndarray) -> float:
    """Mean herniation probability inside the predicted herniation (``nan`` when empty)."""
    values = np.asarray(probability)[np.asarray(mask, dtype=bool)]
    return float(values.mean()) if values.size else float("nan")
