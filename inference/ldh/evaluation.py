"""Evaluation of LDH grading and localisation the way the source study reports it.

For a labelled set (or two raters' label files): herniation detection IoU (mean)
and recall, sensitivity and specificity of grading (MSU size 0-3) and
localisation (zone: none, A, AB, B, C) per class and overall (macro mean),
Gwet's AC1 against the reference, confusion matrices, and percentile bootstrap
95 % confidence intervals over disc levels.

Label files have the ``ground_truth.json`` shape of the phantoms: a
``study_instance_uid`` and a ``discs`` list of ``{"level", "msu_size", "zone",
"side"}``; :func:`result_to_labels` writes a pipeline result in that shape, so a
model's output and a surgeon's labels are compared with the same code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.labels import AxialLabel
from inference.ldh.errors import LdhDataError
from inference.ldh.result import LdhResult
from inference.metrics import (
    ClassStats,
    bootstrap_ci,
    confusion_matrix,
    gwet_ac1,
    iou,
    macro_sensitivity_specificity,
    per_class_stats,
)

__all__ = [
    "EvaluationReport",
    "LevelCase",
    "SIZE_CLASSES",
    "TaskReport",
    "ZONE_CLASSES",
    "cases_from_labels",
    "cases_from_result",
    "format_report",
    "read_label_files",
    "result_to_labels",
    "summarise",
]

logger = logging.getLogger(__name__)

SIZE_CLASSES: tuple[int, ...] = (0, 1, 2, 3)
ZONE_CLASSES: tuple[str, ...] = ("none", "A", "AB", "B", "C")


@dataclass(frozen=True)
class LevelCase:
    """One disc level read by the reference and by the model (or a second rater)."""

    study: str
    level: str
    ref_size: int
    ref_zone: str
    pred_size: int
    pred_zone: str
    iou: float | None = None  #: herniation mask IoU over the stack (only where the reference has a herniation)
    #: herniation mask IoU on the reference's slice of maximal herniation alone (the slice the MSU
    #: is read on, and the one the source study's surgeons annotated)
    slice_iou: float | None = None


def _zone(size: int, zone: str | None) -> str:
    return "none" if size == 0 or zone is None else str(zone)


def cases_from_result(
    result: LdhResult, ground_truth: dict[str, Any], labels: Sequence[np.ndarray] = (), study: str = ""
) -> list[LevelCase]:
    """Compare a pipeline result with a study's ground truth, level by level.

    Parameters
    ----------
    result
        The pipeline's output on the study.
    ground_truth
        The study's ``ground_truth.json``; levels without an axial stack are skipped.
    labels
        Reference label stacks aligned with ``result.segmentations`` (for the IoU).
    study
        Name used in the cases.
    """
    cases = []
    uid_to_slice = {
        ref.sop_instance_uid: (seg.stack_index, k) for seg in result.segmentations for k, ref in enumerate(seg.slices)
    }
    for disc in ground_truth.get("discs", []):
        if disc.get("axial_stack") is None:
            continue
        level = str(disc["level"])
        finding = result.finding(level)
        pred_size = finding.size if finding is not None else 0
        pred_zone = _zone(pred_size, finding.zone if finding is not None else None)
        ref_size = int(disc["msu_size"])
        overlap = slice_overlap = None
        sop = disc.get("max_slice_sop_instance_uid")
        if ref_size > 0 and labels and sop in uid_to_slice:
            stack, k = uid_to_slice[sop]
            pred_mask = result.segmentations[stack].labels == AxialLabel.HERNIATION
            ref_mask = labels[stack] == AxialLabel.HERNIATION
            overlap = iou(pred_mask, ref_mask)
            slice_overlap = iou(pred_mask[k], ref_mask[k])
        cases.append(
            LevelCase(
                study, level, ref_size, _zone(ref_size, disc.get("zone")), pred_size, pred_zone, overlap, slice_overlap
            )
        )
    return cases


def result_to_labels(result: LdhResult, study_instance_uid: str) -> dict[str, Any]:
    """A pipeline result in the label-file shape (``discs`` with level, size, zone, side and measurements)."""
    return {
        "study_instance_uid": study_instance_uid,
        "rater": f"{result.model_name} {result.model_version}",
        "discs": [
            {
                "level": f.level,
                "msu_size": f.size,
                "zone": f.zone,
                "side": f.side,
                "depth_mm": round(f.depth_mm, 2),
                "ratio": round(f.ratio, 4),
                "confidence": round(f.confidence, 4),
                "level_inferred": f.level_inferred,
                "max_slice_sop_instance_uid": f.slice.sop_instance_uid if f.slice and f.size else None,
            }
            for f in result.findings
        ],
    }


def read_label_files(path: Path) -> dict[str, dict[str, Any]]:
    """Label files under ``path`` (a JSON file, or a folder searched for ``*.json``) by Study Instance UID."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*.json"))
    out: dict[str, dict[str, Any]] = {}
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LdhDataError(f"label file {file} is unreadable: {exc}") from exc
        if not isinstance(data, dict) or "discs" not in data or "study_instance_uid" not in data:
            logger.debug("skipping %s: not a label file", file)
            continue
        out[str(data["study_instance_uid"])] = data
    if not out:
        raise LdhDataError(f"no label files (JSON with study_instance_uid and discs) under {path}")
    return out


def cases_from_labels(reference: dict[str, dict[str, Any]], other: dict[str, dict[str, Any]]) -> list[LevelCase]:
    """Level-by-level cases of two raters' label files (studies and levels both rated)."""
    cases = []
    for uid, ref in sorted(reference.items()):
        if uid not in other:
            logger.warning("study %s has no label from the second rater", uid)
            continue
        theirs = {str(d["level"]): d for d in other[uid]["discs"]}
        for disc in ref["discs"]:
            if disc.get("axial_stack", 0) is None or str(disc["level"]) not in theirs:
                continue
            o = theirs[str(disc["level"])]
            rs, os_ = int(disc["msu_size"]), int(o["msu_size"])
            cases.append(LevelCase(uid, str(disc["level"]), rs, _zone(rs, disc.get("zone")), os_, _zone(os_, o.get("zone"))))
    return cases


@dataclass
class TaskReport:
    """Agreement on one classification task (grading or localisation)."""

    name: str
    classes: tuple[Any, ...]
    matrix: np.ndarray
    per_class: list[ClassStats]
    sensitivity: float
    specificity: float
    ac1: float
    sensitivity_ci: tuple[float, float]
    specificity_ci: tuple[float, float]
    ac1_ci: tuple[float, float]


@dataclass
class EvaluationReport:
    """Everything ``dicom-node evaluate ldh`` prints."""

    n_studies: int
    n_levels: int
    iou_mean: float
    iou_ci: tuple[float, float]
    recall: float
    recall_ci: tuple[float, float]
    n_herniations: int
    iou_threshold: float
    size: TaskReport
    zone: TaskReport
    #: the same two on the reference's slice of maximal herniation alone (nan without masks)
    slice_iou_mean: float = float("nan")
    slice_iou_ci: tuple[float, float] = (float("nan"), float("nan"))
    slice_recall: float = float("nan")
    slice_recall_ci: tuple[float, float] = (float("nan"), float("nan"))
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (model cards carry it)."""

        def task(t: TaskReport) -> dict[str, Any]:
            return {
                "sensitivity": t.sensitivity,
                "specificity": t.specificity,
                "gwet_ac1": t.ac1,
                "sensitivity_ci95": list(t.sensitivity_ci),
                "specificity_ci95": list(t.specificity_ci),
                "gwet_ac1_ci95": list(t.ac1_ci),
                "confusion_matrix": {"classes": [str(c) for c in t.classes], "counts": t.matrix.tolist()},
            }

        return {
            "studies": self.n_studies,
            "levels": self.n_levels,
            "herniations": self.n_herniations,
            "detection_iou_mean": self.iou_mean,
            "detection_iou_ci95": list(self.iou_ci),
            "detection_recall": self.recall,
            "detection_recall_ci95": list(self.recall_ci),
            "detection_iou_threshold": self.iou_threshold,
            "max_slice_iou_mean": self.slice_iou_mean,
            "max_slice_iou_ci95": list(self.slice_iou_ci),
            "max_slice_recall": self.slice_recall,
            "max_slice_recall_ci95": list(self.slice_recall_ci),
            "grading": task(self.size),
            "localisation": task(self.zone),
        }


def _task(name: str, ref: list[Any], pred: list[Any], classes: Sequence[Any], n_boot: int, seed: int) -> TaskReport:
    matrix = confusion_matrix(ref, pred, classes)
    sens, spec = macro_sensitivity_specificity(matrix, classes)
    ref_a, pred_a = np.asarray(ref, dtype=object), np.asarray(pred, dtype=object)

    def stat(which: int) -> Any:
        def f(idx: np.ndarray) -> float:
            m = confusion_matrix(list(ref_a[idx]), list(pred_a[idx]), classes)
            return macro_sensitivity_specificity(m, classes)[which]

        return f

    ac1 = gwet_ac1(ref, pred, classes) if ref else float("nan")
    return TaskReport(
        name=name,
        classes=tuple(classes),
        matrix=matrix,
        per_class=per_class_stats(matrix, classes),
        sensitivity=sens,
        specificity=spec,
        ac1=ac1,
        sensitivity_ci=bootstrap_ci(stat(0), len(ref), n_resamples=n_boot, seed=seed),
        specificity_ci=bootstrap_ci(stat(1), len(ref), n_resamples=n_boot, seed=seed + 1),
        ac1_ci=bootstrap_ci(
            lambda idx: gwet_ac1(list(ref_a[idx]), list(pred_a[idx]), classes), len(ref), n_resamples=n_boot, seed=seed + 2
        ),
    )


def summarise(cases: Sequence[LevelCase], *, iou_threshold: float = 0.5, n_boot: int = 1000, seed: int = 0) -> EvaluationReport:
    """The source study's table for level cases.

    A reference herniation counts as detected when the prediction has a
    herniation at that level whose mask overlaps the reference with IoU at least
    ``iou_threshold`` (without masks, as in a two-rater comparison: when both
    call a herniation). The IoU is over the stack holding the reference's slice of
    maximal herniation; the ``slice_*`` fields score that one slice alone, where
    the MSU is read and the source study's surgeons drew.
    """
    if not cases:
        raise LdhDataError("no disc levels to evaluate")
    herniated = [c for c in cases if c.ref_size > 0]
    ious = np.array([c.iou for c in herniated if c.iou is not None], dtype=float)
    detected = np.array(
        [c.pred_size > 0 and (c.iou is None or c.iou >= iou_threshold) for c in herniated], dtype=float
    )
    with_slice = [(c.pred_size, c.slice_iou) for c in herniated if c.slice_iou is not None]
    slice_ious = np.array([v for _, v in with_slice], dtype=float)
    slice_detected = np.array([size > 0 and v >= iou_threshold for size, v in with_slice], dtype=float)
    return EvaluationReport(
        n_studies=len({c.study for c in cases}),
        n_levels=len(cases),
        iou_mean=float(ious.mean()) if ious.size else float("nan"),
        iou_ci=bootstrap_ci(lambda i: float(ious[i].mean()), len(ious), n_resamples=n_boot, seed=seed + 3),
        recall=float(detected.mean()) if detected.size else float("nan"),
        recall_ci=bootstrap_ci(lambda i: float(detected[i].mean()), len(detected), n_resamples=n_boot, seed=seed + 4),
        n_herniations=len(herniated),
        iou_threshold=iou_threshold,
        size=_task("grading (MSU size)", [c.ref_size for c in cases], [c.pred_size for c in cases], SIZE_CLASSES, n_boot, seed),
        zone=_task("localisation (MSU zone)", [c.ref_zone for c in cases], [c.pred_zone for c in cases], ZONE_CLASSES, n_boot, seed + 10),
        slice_iou_mean=float(slice_ious.mean()) if slice_ious.size else float("nan"),
        slice_iou_ci=bootstrap_ci(lambda i: float(slice_ious[i].mean()), len(slice_ious), n_resamples=n_boot, seed=seed + 5),
        slice_recall=float(slice_detected.mean()) if slice_detected.size else float("nan"),
        slice_recall_ci=bootstrap_ci(
            lambda i: float(slice_detected[i].mean()), len(slice_detected), n_resamples=n_boot, seed=seed + 6
        ),
    )


def _pct(x: float) -> str:
    return "   n/a" if np.isnan(x) else f"{100 * x:5.1f}%"


def _ci(ci: tuple[float, float], scale: float = 100.0) -> str:
    if np.isnan(ci[0]):
        return "(n/a)"
    digits = 1 if scale == 100.0 else 3
    return f"({scale * ci[0]:.{digits}f} to {scale * ci[1]:.{digits}f})"


def _cell(x: float) -> str:
    return "  n/a" if np.isnan(x) else f"{100 * x:5.1f}"


def format_report(report: EvaluationReport, title: str = "LDH evaluation") -> str:
    """The report as a plain-text table (what the command prints)."""
    lines = [
        f"{title}: {report.n_studies} studies, {report.n_levels} disc levels, {report.n_herniations} herniations",
        "",
        "metric                          value    95% CI          (source study, internal test)",
        f"detection IoU (mean)            {report.iou_mean:6.3f}   {_ci(report.iou_ci, 1.0):14s}  0.84 / 0.82",
        f"detection recall (IoU>={report.iou_threshold:.2f})     {_pct(report.recall)}   {_ci(report.recall_ci):14s}  99.6% / 99.5%",
    ]
    if not np.isnan(report.slice_iou_mean):
        lines += [
            "  on the slice of maximal herniation alone (where the MSU is read):",
            f"  IoU (mean)                    {report.slice_iou_mean:6.3f}   {_ci(report.slice_iou_ci, 1.0):14s}",
            f"  recall (IoU>={report.iou_threshold:.2f})             {_pct(report.slice_recall)}   {_ci(report.slice_recall_ci):14s}",
        ]
    for task, paper in ((report.size, ("87.0%", "95.5%", "0.81")), (report.zone, ("84.0%", "94.4%", "0.76"))):
        lines += [
            "",
            f"{task.name}",
            f"  sensitivity (macro)           {_pct(task.sensitivity)}   {_ci(task.sensitivity_ci):14s}  {paper[0]}",
            f"  specificity (macro)           {_pct(task.specificity)}   {_ci(task.specificity_ci):14s}  {paper[1]}",
            f"  Gwet's AC1                    {task.ac1:6.3f}   {_ci(task.ac1_ci, 1.0):14s}  {paper[2]}",
            "  per class:     " + "  ".join(f"{str(s.label):>5s}" for s in task.per_class),
            "    n (ref)      " + "  ".join(f"{s.tp + s.fn:5d}" for s in task.per_class),
            "    sensitivity  " + "  ".join(_cell(s.sensitivity) for s in task.per_class),
            "    specificity  " + "  ".join(_cell(s.specificity) for s in task.per_class),
            "  confusion (rows: reference, columns: predicted)",
            "          " + " ".join(f"{str(c):>5s}" for c in task.classes),
        ]
        for c, row in zip(task.classes, task.matrix):
            lines.append(f"    {str(c):>5s} " + " ".join(f"{int(v):5d}" for v in row))
    return "\n".join(lines)


def iter_cases(items: Iterable[list[LevelCase]]) -> list[LevelCase]:
    """Flatten per-study case lists."""
    return [c for group in items for c in group]
