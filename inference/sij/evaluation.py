"""Evaluation of the SIJ pipeline against labelled studies: the source study's table and more.

Reports DSC of fat metaplasia (mean +- sd over studies with reference FM, and per case), AUC
with its DeLong 95 % CI, sensitivity/specificity at the stored threshold, calibration,
SPARCC-score agreement (ICC(2,1)) and quadrant-level FM presence accuracy on the
reference's scoring slices; oedema quadrant accuracy and ASAS agreement where a STIR exists.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from inference.labels import SijLabel
from inference.metrics import dice
from inference.sij.quadrants import QUADRANT_NAMES
from inference.sij.result import SijResult
from inference.sij.stats import AucResult, Calibration, calibration, delong_auc, icc_2_1, sensitivity_specificity

__all__ = ["CaseScore", "SijEvaluation", "evaluate_results", "format_report", "quadrant_agreement"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseScore:
    """Per-study comparison with the reference."""

    case: str
    dsc_fm: float
    reference_fm_ml: float
    predicted_fm_ml: float
    reference_score: int
    predicted_score: int
    quadrant_agreement: int
    quadrant_total: int
    same_slices: bool
    axspa: int
    probability: float | None
    oedema_quadrant_agreement: int = 0
    oedema_quadrant_total: int = 0
    asas_reference: bool | None = None
    asas_predicted: bool | None = None


@dataclass
class SijEvaluation:
    """Aggregated metrics (see :func:`format_report` for the printed table)."""

    cases: list[CaseScore]
    dsc_mean: float
    dsc_sd: float
    dsc_cases: int
    auc: AucResult | None
    sensitivity: float | None
    specificity: float | None
    threshold: float | None
    calibration: Calibration | None
    icc_score: float
    score_mae: float
    quadrant_accuracy: float
    slice_agreement: float
    oedema_quadrant_accuracy: float | None
    asas_agreement: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def quadrant_agreement(result: SijResult, table: dict[str, dict[str, bool]], presence: np.ndarray) -> tuple[int, int]:
    """``(agreeing, compared)`` quadrant cells of ``presence`` (slices, 8) against a ground-truth table.

    ``table`` maps SOP Instance UIDs (the reference's scoring slices) to ``{quadrant: bool}``.
    """
    index = {u: k for k, u in enumerate(result.sop_instance_uids)}
    agree = total = 0
    for uid, row in table.items():
        k = index.get(uid)
        if k is None:
            continue
        for n, name in enumerate(QUADRANT_NAMES):
            total += 1
            agree += int(bool(presence[k, n]) == bool(row[name]))
    return agree, total


def _oedema_presence(result: SijResult) -> np.ndarray | None:
    if result.oedema is None:
        return None
    from inference.sij.quadrants import assign_quadrants, quadrant_table  # local: only when oedema exists

    qmap = assign_quadrants(result.labels, result.oedema, result.affine)
    pixel = float(np.linalg.norm(result.affine[:3, 1]) * np.linalg.norm(result.affine[:3, 2]))
    _, present = quadrant_table(qmap.quadrants, min_voxels=max(1, math.ceil(2.0 / pixel - 1e-9)))
    return present


def evaluate_results(
    names: Sequence[str],
    results: Sequence[SijResult],
    reference_labels: Sequence[np.ndarray],
    truths: Sequence[dict[str, Any]],
) -> SijEvaluation:
    """Compare pipeline results with reference label maps (T1 grid) and ground-truth JSON."""
    scores: list[CaseScore] = []
    for name, res, ref, truth in zip(names, results, reference_labels, truths):
        ref_fm = np.asarray(ref) == SijLabel.FAT_METAPLASIA
        pred_fm = res.labels == SijLabel.FAT_METAPLASIA
        agree, total = quadrant_agreement(res, truth.get("fm_table", {}), res.fm_presence)
        o_agree = o_total = 0
        oedema_table = truth.get("oedema_table")
        if oedema_table and res.oedema is not None:
            presence = _oedema_presence(res)
            if presence is not None:
                o_agree, o_total = quadrant_agreement(res, oedema_table, presence)
        ref_ml = truth.get("fm_volume_ml", {}).get("total")
        scores.append(
            CaseScore(
                case=name,
                dsc_fm=dice(pred_fm, ref_fm, empty=1.0),
                reference_fm_ml=float(ref_ml) if ref_ml is not None else float("nan"),
                predicted_fm_ml=res.fm_volume_ml["total"],
                reference_score=int(truth.get("sparcc_fm_score", -1)),
                predicted_score=res.sparcc_fm_score,
                quadrant_agreement=agree,
                quadrant_total=total,
                same_slices=list(res.sparcc_sop_instance_uids) == list(truth.get("sparcc_slices", [])),
                axspa=int(truth.get("axspa", -1)),
                probability=res.axspa_probability,
                oedema_quadrant_agreement=o_agree,
                oedema_quadrant_total=o_total,
                asas_reference=truth.get("asas_positive_mri"),
                asas_predicted=res.asas_positive_mri,
            )
        )
    with_fm = [s.dsc_fm for s, ref in zip(scores, reference_labels) if (np.asarray(ref) == SijLabel.FAT_METAPLASIA).any()]
    dsc = np.asarray(with_fm, dtype=np.float64)
    labelled = [s for s in scores if s.axspa in (0, 1) and s.probability is not None]
    auc = sens = spec = None
    cal = None
    threshold = results[0].threshold if results else None
    if labelled and len({s.axspa for s in labelled}) == 2:
        y = np.array([s.axspa for s in labelled])
        p = np.array([float(s.probability) for s in labelled])  # type: ignore[arg-type]
        auc = delong_auc(y, p)
        if threshold is not None:
            sens, spec = sensitivity_specificity(y, p >= threshold)
        cal = calibration(y, p, n_bins=5)
    ref_scores = np.array([s.reference_score for s in scores if s.reference_score >= 0], dtype=np.float64)
    pred_scores = np.array([s.predicted_score for s in scores if s.reference_score >= 0], dtype=np.float64)
    icc = icc_2_1(ref_scores, pred_scores) if ref_scores.size >= 2 else float("nan")
    q_total = sum(s.quadrant_total for s in scores)
    o_total = sum(s.oedema_quadrant_total for s in scores)
    asas_pairs = [(s.asas_reference, s.asas_predicted) for s in scores
                  if s.asas_reference is not None and s.asas_predicted is not None]
    return SijEvaluation(
        cases=scores,
        dsc_mean=float(dsc.mean()) if dsc.size else float("nan"),
        dsc_sd=float(dsc.std(ddof=1)) if dsc.size > 1 else float("nan"),
        dsc_cases=int(dsc.size),
        auc=auc,
        sensitivity=sens,
        specificity=spec,
        threshold=threshold,
        calibration=cal,
        icc_score=icc,
        score_mae=float(np.abs(ref_scores - pred_scores).mean()) if ref_scores.size else float("nan"),
        quadrant_accuracy=sum(s.quadrant_agreement for s in scores) / q_total if q_total else float("nan"),
        slice_agreement=float(np.mean([s.same_slices for s in scores])) if scores else float("nan"),
        oedema_quadrant_accuracy=sum(s.oedema_quadrant_agreement for s in scores) / o_total if o_total else None,
        asas_agreement=float(np.mean([a == b for a, b in asas_pairs])) if asas_pairs else None,
    )


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f} %"


def format_report(ev: SijEvaluation, *, per_case: bool = True) -> str:
    """The printed table: the source study's metrics first, then agreement with the reference."""
    lines = ["SIJ fat metaplasia / axSpA evaluation", "=" * 38]
    lines.append(f"FM segmentation DSC          {_pct(ev.dsc_mean)} +- {_pct(ev.dsc_sd)} (n={ev.dsc_cases} studies with FM)")
    if ev.auc is not None:
        a = ev.auc
        lines.append(f"axSpA AUC (DeLong 95 % CI)   {a.auc:.3f} ({a.ci_low:.3f}-{a.ci_high:.3f}), "
                     f"{a.n_positive} axSpA / {a.n_negative} non-axSpA")
        lines.append(f"at threshold {ev.threshold:.3f}:          sensitivity {_pct(ev.sensitivity)}, "
                     f"specificity {_pct(ev.specificity)}")
    else:
        lines.append("axSpA AUC                    n/a (needs both classes and a classifier)")
    if ev.calibration is not None:
        c = ev.calibration
        lines.append(f"calibration                  Brier {c.brier:.3f}, ECE {c.ece:.3f}, "
                     f"intercept {c.intercept:.2f}, slope {c.slope:.2f}")
        lines.append("  bins (mean p -> observed, n): " + ", ".join(f"{m:.2f}->{o:.2f} ({n})" for m, o, n in c.bins))
    lines.append(f"SPARCC FM score ICC(2,1)     {ev.icc_score:.3f} (mean abs. difference {ev.score_mae:.2f})")
    lines.append(f"quadrant FM presence acc.    {_pct(ev.quadrant_accuracy)} (reference scoring slices)")
    lines.append(f"same 5 scoring slices        {_pct(ev.slice_agreement)} of studies")
    if ev.oedema_quadrant_accuracy is not None:
        lines.append(f"oedema quadrant accuracy     {_pct(ev.oedema_quadrant_accuracy)}")
    if ev.asas_agreement is not None:
        lines.append(f"ASAS positive-MRI agreement  {_pct(ev.asas_agreement)}")
    if per_case:
        lines.append("")
        lines.append(f"{'case':<24}{'DSC':>8}{'FM mL ref/pred':>18}{'score ref/pred':>16}{'quadr.':>9}{'axSpA':>7}{'p':>7}")
        for s in ev.cases:
            prob = "-" if s.probability is None else f"{s.probability:.2f}"
            lines.append(
                f"{s.case[:23]:<24}{100 * s.dsc_fm:>7.1f}%{s.reference_fm_ml:>9.2f}/{s.predicted_fm_ml:<8.2f}"
                f"{s.reference_score:>8}/{s.predicted_score:<7}{s.quadrant_agreement:>5}/{s.quadrant_total:<3}"
                f"{s.axspa:>7}{prob:>7}"
            )
    return "\n".join(lines)
