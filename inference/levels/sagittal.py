"""Disc levels on a sagittal series: segment the mid-sagittal slices, count, map to patient space."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from inference.labels import SagittalLabel
from inference.levels.errors import LevelsError
from inference.levels.junction import LevelCount, count_levels
from inference.levels.mapping import DiscLevel, VolumeLike
from inference.levels.model import fit_to_canvas, normalise_intensity, probabilities_to_labels, segment_slices
from inference.levels.orientation import CanonicalView, canonical_view
from inference.levels.series import junction_disagreement

__all__ = ["SagittalReading", "find_disc_levels", "read_sagittal"]

logger = logging.getLogger(__name__)

#: At most this many central slices are segmented to find the mid-sagittal one.
MAX_CANDIDATES = 7

_CONFIDENCE_PENALTIES = (
    ("sacrum", 0.6),
    ("bottom edge", 0.7),
    ("transitional", 0.7),
    ("may be missing", 0.8),
    ("fewer than three", 0.8),
    ("neighbouring sagittal slices", 0.8),
)


@dataclass
class SagittalReading:
    """What the network saw on the chosen mid-sagittal slice."""

    slice_index: int
    count: LevelCount
    view: CanonicalView
    labels: np.ndarray  #: canonical label map of that slice
    spacing: tuple[float, float]  #: canonical (row, col) spacing in mm


def _device_of(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def candidate_slices(n_slices: int) -> list[int]:
    """The central slices worth segmenting (the middle third, at most :data:`MAX_CANDIDATES`)."""
    if n_slices <= 0:
        return []
    centre = (n_slices - 1) / 2.0
    count = min(MAX_CANDIDATES, max(1, int(np.ceil(n_slices / 3))))
    order = sorted(range(n_slices), key=lambda k: (abs(k - centre), k))
    return sorted(order[:count])


def read_sagittal(sagittal: VolumeLike, model: torch.nn.Module) -> SagittalReading:
    """Segment the central slices and keep the mid-sagittal one (widest canal, then most discs).

    Its count gets a warning when its junction is not the one most of the central
    slices agree on (:func:`inference.levels.series.junction_disagreement`).

    Raises
    ------
    LevelsError
        When the volume has no slices or the network fails.
    """
    array = np.asarray(sagittal.array)
    if array.ndim != 3 or array.shape[0] == 0:
        raise LevelsError(f"a sagittal volume needs (slices, rows, cols) voxels, got shape {array.shape}")
    aff = np.asarray(sagittal.affine, dtype=float)
    view = canonical_view(aff, (array.shape[1], array.shape[2]))
    spacing = view.spacing((float(np.linalg.norm(aff[:3, 1])), float(np.linalg.norm(aff[:3, 2]))))
    ks = candidate_slices(array.shape[0])
    tensors, fits = [], []
    for k in ks:
        tensor, fit = fit_to_canvas(normalise_intensity(view.apply(array[k])), spacing)
        tensors.append(tensor)
        fits.append(fit)
    try:
        probs = segment_slices(model, torch.stack(tensors), _device_of(model))
    except RuntimeError as exc:
        raise LevelsError(f"the level network failed on the sagittal series: {exc}") from exc
    best: SagittalReading | None = None
    best_key: tuple[int, int, float] = (-1, -1, -np.inf)
    centre = (array.shape[0] - 1) / 2.0
    counts: list[LevelCount] = []
    for k, fit, prob in zip(ks, fits, probs):
        labels, confidence = probabilities_to_labels(prob, fit)
        count = count_levels(labels, spacing, probability=confidence)
        counts.append(count)
        # the mid-sagittal slice shows the widest canal; then the most discs, then the most central
        key = (int(np.count_nonzero(labels == SagittalLabel.CANAL)), len(count.discs), -abs(k - centre))
        if key > best_key:
            best_key, best = key, SagittalReading(k, count, view, labels, spacing)
    assert best is not None
    disagreement = junction_disagreement(best.count, counts, spacing)
    if disagreement is not None:
        best.count.warnings.append(disagreement)
    logger.debug("mid-sagittal slice %d: %d discs", best.slice_index, len(best.count.discs))
    return best


def discs_to_patient(reading: SagittalReading, affine: np.ndarray) -> list[DiscLevel]:
    """Map the discs of a reading to LPS centres and plane normals, with confidences."""
    aff = np.asarray(affine, dtype=float)
    down = aff[:3, 1] / np.linalg.norm(aff[:3, 1])
    right = aff[:3, 2] / np.linalg.norm(aff[:3, 2])
    slice_normal = np.cross(right, down)
    penalty = 1.0
    for key, factor in _CONFIDENCE_PENALTIES:
        if any(key in w for w in reading.count.warnings):
            penalty *= factor
    out: list[DiscLevel] = []
    for disc, name in zip(reading.count.discs, reading.count.names):
        ij = reading.view.to_source(np.array(disc.centroid))[0]
        center = aff[:3, :3] @ np.array([reading.slice_index, ij[0], ij[1]]) + aff[:3, 3]
        d_ij = reading.view.direction_to_source(np.array(disc.axis))[0]  # mm along (i, j)
        long_axis = d_ij[0] * down + d_ij[1] * right
        normal = np.cross(long_axis, slice_normal)
        norm = float(np.linalg.norm(normal))
        normal = normal / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
        if normal[2] < 0:
            normal = -normal
        out.append(DiscLevel(name, center, normal, float(np.clip(disc.confidence * penalty, 0.0, 1.0))))
    return out


def find_disc_levels(sagittal: VolumeLike, model: torch.nn.Module) -> tuple[list[DiscLevel], list[str]]:
    """Find and name the discs of a sagittal series.

    Parameters
    ----------
    sagittal
        A sagittal T2 (or T1) volume.
    model
        The level network (:func:`inference.levels.load_levels_model`) or any
        module mapping ``(N, 1, 320, 256)`` to ``(N, 4, 320, 256)`` logits.

    Returns
    -------
    tuple
        ``(discs cranial to caudal, warnings)``.
    """
    reading = read_sagittal(sagittal, model)
    discs = discs_to_patient(reading, sagittal.affine)
    return discs, list(reading.count.warnings)
