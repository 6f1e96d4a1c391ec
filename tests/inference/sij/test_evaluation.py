"""The evaluation table on toy cases: perfect predictions score perfectly, damaged ones do not."""

from __future__ import annotations

import numpy as np

from inference.labels import SijLabel
from inference.sij.classifier import FEATURE_NAMES, fit_classifier
from inference.sij.evaluation import evaluate_results, format_report
from inference.sij.pipeline import analyse
from inference.sij.toy import toy_case


def truth_of(case, result) -> dict:
    return {
        "axspa": case.axspa,
        "sparcc_fm_score": result.sparcc_fm_score,
        "sparcc_slices": list(result.sparcc_sop_instance_uids),
        "fm_table": result.fm_table_dict(),
        "fm_volume_ml": result.fm_volume_ml,
    }


def test_perfect_and_damaged_segmentations() -> None:
    cases = [toy_case(s) for s in range(12)]
    refs = [analyse(c.t1_labels, None, c.affine, sop_instance_uids=c.sop_instance_uids) for c in cases]
    x = np.array([[r.features[n] for n in FEATURE_NAMES] for r in refs])
    y = np.array([c.axspa for c in cases])
    clf, _ = fit_classifier(x, y, folds=3)
    truths = [truth_of(c, r) for c, r in zip(cases, refs)]
    perfect = [analyse(c.t1_labels, None, c.affine, sop_instance_uids=c.sop_instance_uids, classifier=clf) for c in cases]
    ev = evaluate_results([f"toy{n}" for n in range(12)], perfect, [c.t1_labels for c in cases], truths)
    assert ev.dsc_mean == 1.0 and ev.quadrant_accuracy == 1.0 and ev.icc_score == 1.0 and ev.slice_agreement == 1.0
    assert ev.auc is not None and 0.0 <= ev.auc.auc <= 1.0
    text = format_report(ev)
    assert "DSC" in text and "AUC" in text and "ICC" in text and "toy11" in text

    damaged = []
    for c in cases:
        labels = c.t1_labels.copy()
        labels[labels == SijLabel.FAT_METAPLASIA] = SijLabel.SACRUM  # every lesion missed
        damaged.append(analyse(labels, None, c.affine, sop_instance_uids=c.sop_instance_uids, classifier=clf))
    bad = evaluate_results([f"toy{n}" for n in range(12)], damaged, [c.t1_labels for c in cases], truths)
    assert bad.dsc_mean == 0.0 and bad.quadrant_accuracy < 1.0 and bad.score_mae > 0
