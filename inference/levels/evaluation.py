"""Disc Dice, disc detection and level-count accuracy on labelled sagittal slices.

The reference names come from the reference masks by the rule of
:mod:`inference.levels.junction` (the lowest disc is L5/S1, counted upwards), so
a slice counts as right when the prediction yields the same discs with the
same names.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from inference.labels import DISC_LEVELS, SagittalLabel
from inference.levels.junction import count_levels
from inference.levels.model import fit_to_canvas, normalise_intensity, probabilities_to_labels, segment_slices

__all__ = [
    "PhantomResult",
    "SliceResult",
    "Summary",
    "dice",
    "evaluate_phantom_study",
    "evaluate_slices", 
    "match_components",
    "predict_slice_labels",
    "summarise",
]

logger = logging.getLogger(__name__)

#: SPIDER's PNG slices carry no spacing; this nominal value (typical of a lumbar sagittal
#: T2 at 640 rows) only scales the size thresholds of the junction rule.
SPIDER_NOMINAL_SPACING = (0.5, 0.5)
MATCH_IOU = 0.3
LUMBAR_LEVELS = frozenset(DISC_LEVELS)


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    total = int(p.sum()) + int(r.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(p, r).sum()) / total


def match_components(a: np.ndarray, b: np.ndarray, min_iou: float = MATCH_IOU) -> dict[int, int]:
    """Match components of map ``a`` to components of map ``b`` (int maps, 0 = none) by IoU.

    Each ``a`` component gets the ``b`` component of highest IoU if that is at
    least ``min_iou``.

    Returns
    -------
    dict
        ``{a_label: b_label}``.
    """
    out: dict[int, int] = {}
    for la in np.unique(a):
        if la == 0:
            continue
        ma = a == la
        candidates = np.unique(b[ma])
        best, best_iou = 0, 0.0
        for lb in candidates:
            if lb == 0:
                continue
            mb = b == lb
            iou = float(np.logical_and(ma, mb).sum()) / float(np.logical_or(ma, mb).sum())
            if iou > best_iou:
                best, best_iou = int(lb), iou
        if best and best_iou >= min_iou:
            out[int(la)] = best
    return out


def predict_slice_labels(
    model: torch.nn.Module, images: Sequence[np.ndarray], *, batch_size: int = 8, device: str | torch.device = "cpu"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Segment canonical slices: ``[(labels, confidence)]`` at each slice's own size."""
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        prepared = [fit_to_canvas(normalise_intensity(img)) for img in chunk]
        probs = segment_slices(model, torch.stack([t for t, _ in prepared]), device)
        out.extend(probabilities_to_labels(p, fit) for p, (_, fit) in zip(probs, prepared))
    return out


@dataclass
class SliceResult:
    """Metrics of one slice."""

    name: str
    dice_disc: float
    dice_vertebra: float
    dice_canal: float
    ref_discs: int
    pred_discs: int
    detected: int  #: reference discs overlapped by a predicted disc component
    true_detections: int  #: predicted discs overlapping a reference disc component
    junction_right: bool
    count_right: bool  #: same discs, each with the same name
    lumbar_right: bool  #: junction right and every reference disc from T12/L1 down found with its name
    ref_names: list[str] = field(default_factory=list)
    pred_names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def evaluate_slice(
    name: str,
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    confidence: np.ndarray | None = None,
    spacing: tuple[float, float] = SPIDER_NOMINAL_SPACING,
) -> SliceResult:
    """Compare one predicted label map with its reference."""
    from scipy import ndimage

    ref_count = count_levels(ref, spacing)
    pred_count = count_levels(pred, spacing, probability=confidence)
    ref_all, _ = ndimage.label(ref == SagittalLabel.DISC)
    pred_all, _ = ndimage.label(pred == SagittalLabel.DISC)
    # recall: counted reference discs against any predicted disc pixels; precision the other way
    detected = len(match_components(ref_count.components, pred_all))
    true_det = len(match_components(pred_count.components, ref_all))
    pairs = match_components(pred_count.components, ref_count.components)
    names_right = all(
        pairs.get(i + 1) is not None and ref_count.names[pairs[i + 1] - 1] == pred_count.names[i]
        for i in range(len(pred_count.discs))
    )
    count_right = len(pred_count.discs) == len(ref_count.discs) and names_right
    junction_right = bool(
        pred_count.discs and ref_count.discs and pairs.get(len(pred_count.discs)) == len(ref_count.discs)
    )
    back = match_components(ref_count.components, pred_count.components)
    lumbar_right = junction_right and all(
        back.get(i + 1) is not None and pred_count.names[back[i + 1] - 1] == name
        for i, name in enumerate(ref_count.names)
        if name in LUMBAR_LEVELS
    )
    return SliceResult(
        name=name,
        dice_disc=dice(pred == SagittalLabel.DISC, ref == SagittalLabel.DISC),
        dice_vertebra=dice(pred == SagittalLabel.VERTEBRA, ref == SagittalLabel.VERTEBRA),
        dice_canal=dice(pred == SagittalLabel.CANAL, ref == SagittalLabel.CANAL),
        ref_discs=len(ref_count.discs),
        pred_discs=len(pred_count.discs),
        detected=detected,
        true_detections=true_det,
        junction_right=junction_right,
        count_right=count_right,
        lumbar_right=lumbar_right,
        ref_names=list(ref_count.names),
        pred_names=list(pred_count.names),
        warnings=list(pred_count.warnings),
    )


@dataclass
class Summary:
    """Aggregated metrics over slices."""

    slices: int
    patients: int
    dice_disc: float  #: mean over slices
    dice_vertebra: float
    dice_canal: float
    disc_recall: float
    disc_precision: float
    junction_right: float  #: share of slices
    count_right: float  #: share of slices
    lumbar_right: float  #: share of slices
    ref_discs: int
    pred_discs: int

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON and the model card)."""
        return asdict(self)


def summarise(results: Sequence[SliceResult], patients: int) -> Summary:
    """Mean Dice, pooled detection recall/precision, shares of slices right."""
    n = max(1, len(results))
    ref = sum(r.ref_discs for r in results)
    pred = sum(r.pred_discs for r in results)
    return Summary(
        slices=len(results),
        patients=patients,
        dice_disc=float(np.mean([r.dice_disc for r in results])) if results else 0.0,
        dice_vertebra=float(np.mean([r.dice_vertebra for r in results])) if results else 0.0,
        dice_canal=float(np.mean([r.dice_canal for r in results])) if results else 0.0,
        disc_recall=sum(r.detected for r in results) / max(1, ref),
        disc_precision=sum(r.true_detections for r in results) / max(1, pred),
        junction_right=sum(r.junction_right for r in results) / n,
        count_right=sum(r.count_right for r in results) / n,
        lumbar_right=sum(r.lumbar_right for r in results) / n,
        ref_discs=ref,
        pred_discs=pred,
    )


def evaluate_slices(
    model: torch.nn.Module,
    items: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    spacing: tuple[float, float] = SPIDER_NOMINAL_SPACING,
    device: str | torch.device = "cpu",
) -> list[SliceResult]:
    """Segment ``(name, image, reference labels)`` slices and compare each with its reference."""
    predictions = predict_slice_labels(model, [img for _, img, _ in items], device=device)
    return [
        evaluate_slice(name, pred, ref, confidence=conf, spacing=spacing)
        for (name, _, ref), (pred, conf) in zip(items, predictions)
    ]


@dataclass
class PhantomResult:
    """Levels on one phantom study against its ground truth."""

    study: str
    discs: int  #: ground-truth discs
    discs_named_right: int  #: a found disc of the same name within ``max_error_mm`` of the true centre (in the sagittal plane)
    axial_slices: int  #: axial slices the ground-truth discs give a level
    axial_right: int  #: of those, slices given the same level from the sagittal series
    warnings: list[str] = field(default_factory=list)


def evaluate_phantom_study(
    model: torch.nn.Module, study: Any, *, max_error_mm: float = 10.0, tolerance_mm: float = 12.0
) -> PhantomResult:
    """Find the discs of a phantom study's ``sag_t2`` and level its axial stacks; compare with the truth."""
    import json
    from pathlib import Path

    from inference.levels import assign_levels
    from inference.levels.mapping import DiscLevel, assign_from_discs
    from inference.levels.sagittal import find_disc_levels
    from inference.volume import load_volumes

    root = Path(study)
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    true_discs = [
        DiscLevel(d["level"], np.asarray(d["center_lps"], float), np.asarray(d["normal_lps"], float), 1.0)
        for d in truth["discs"]
    ]
    sagittal = load_volumes(root / "dicom" / "sag_t2")[0]
    axial = load_volumes(root / "dicom" / "ax_t2")
    found, warnings = find_disc_levels(sagittal, model)
    by_name = {d.name: d for d in found}
    aff = np.asarray(sagittal.affine, dtype=float)
    normal = np.cross(aff[:3, 2], aff[:3, 1])
    normal /= np.linalg.norm(normal)

    def in_plane_error(a: np.ndarray, b: np.ndarray) -> float:
        # the lateral offset of the mid-sagittal slice does not change any level
        diff = a - b
        return float(np.linalg.norm(diff - (diff @ normal) * normal))

    named_right = sum(
        1 for d in true_discs if d.name in by_name and in_plane_error(by_name[d.name].center, d.center) <= max_error_mm
    )
    got = assign_levels(axial, sagittal, model=model, tolerance_mm=tolerance_mm)
    slices = right = 0
    for volume, levels in zip(axial, got):
        for want, have in zip(assign_from_discs(volume, true_discs, tolerance_mm=tolerance_mm), levels):
            if want.level is None:
                continue
            slices += 1
            right += int(have.level == want.level)
    return PhantomResult(root.name, len(true_discs), named_right, slices, right, warnings)
