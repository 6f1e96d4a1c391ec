"""The evaluation table on hand-made cases, results and label files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference.labels import AxialLabel
from inference.ldh.evaluation import (
    LevelCase,
    cases_from_labels,
    cases_from_result,
    format_report,
    read_label_files,
    result_to_labels,
    summarise,
)
from inference.ldh.inferer import LdhInferer
from inference.ldh.pipeline import LdhPipeline

from tests.inference.ldh.conftest import IntensityStub, labelled_slice, make_stack


def test_summary_by_hand() -> None:
    cases = [
        LevelCase("s1", "L4/L5", 2, "B", 2, "B", 0.9),
        LevelCase("s1", "L5/S1", 1, "A", 0, "none", 0.0),
        LevelCase("s2", "L4/L5", 0, "none", 0, "none"),
        LevelCase("s2", "L5/S1", 3, "C", 2, "C", 0.6),
    ]
    r = summarise(cases, n_boot=50)
    assert (r.n_studies, r.n_levels, r.n_herniations) == (2, 4, 3)
    assert r.iou_mean == pytest.approx(0.5)
    assert r.recall == pytest.approx(2 / 3)
    np.testing.assert_array_equal(r.size.matrix, [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]])
    stats = {s.label: s for s in r.zone.per_class}
    assert stats["C"].sensitivity == 1.0 and stats["A"].sensitivity == 0.0
    assert stats["none"].specificity == pytest.approx(2 / 3)
    text = format_report(r)
    assert "detection recall" in text and "Gwet's AC1" in text and "66.7%" in text
    assert np.isnan(r.slice_iou_mean) and "slice of maximal herniation" not in text


def test_summary_on_the_slice_of_maximal_herniation() -> None:
    cases = [
        LevelCase("s1", "L4/L5", 2, "B", 2, "B", 0.4, 0.9),
        LevelCase("s1", "L5/S1", 1, "A", 1, "A", 0.6, 0.45),
        LevelCase("s2", "L4/L5", 0, "none", 0, "none"),
    ]
    r = summarise(cases, n_boot=50)
    assert r.iou_mean == pytest.approx(0.5) and r.recall == pytest.approx(0.5)
    assert r.slice_iou_mean == pytest.approx(0.675) and r.slice_recall == pytest.approx(0.5)
    assert r.as_dict()["max_slice_iou_mean"] == pytest.approx(0.675)
    assert "slice of maximal herniation" in format_report(r)


def test_pipeline_against_ground_truth_and_back_as_labels(tmp_path: Path) -> None:
    lab = np.stack([labelled_slice(), labelled_slice(12, (65, 71))])
    stacks = [make_stack(lab, 0.0, name="a")]
    result = LdhPipeline(IntensityStub(), inferer=LdhInferer(roi_size=(96, 96)), use_level_finder=False)(stacks)
    truth = {
        "study_instance_uid": "1.2",
        "discs": [
            {"level": "L5/S1", "msu_size": 2, "zone": "B", "side": "left", "axial_stack": 0,
             "max_slice_sop_instance_uid": "a.1"},
            {"level": "L1/L2", "msu_size": 0, "zone": None, "side": None, "axial_stack": None},
        ],
    }
    cases = cases_from_result(result, truth, [lab], study="s")
    assert cases == [LevelCase("s", "L5/S1", 2, "B", 2, "B", 1.0, 1.0)]
    # reference herniation the model missed on the other slice lowers the stack IoU only
    ref = lab.copy()
    ref[0, 2:8, 2:8] = AxialLabel.HERNIATION
    (case,) = cases_from_result(result, truth, [ref], study="s")
    assert case.slice_iou == 1.0 and case.iou is not None and case.iou < 1.0
    hern = int((lab == AxialLabel.HERNIATION).sum())
    assert case.iou == pytest.approx(hern / (hern + 36))
    # the result written as a label file compares as a second rater
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ground_truth.json").write_text(json.dumps(truth))
    (tmp_path / "pred.json").write_text(json.dumps(result_to_labels(result, "1.2")))
    ref = read_label_files(tmp_path / "a")
    other = read_label_files(tmp_path / "pred.json")
    rater_cases = cases_from_labels(ref, other)
    assert [(c.ref_size, c.pred_size, c.pred_zone) for c in rater_cases] == [(2, 2, "B")]
    report = summarise(rater_cases, n_boot=20)
    assert report.recall == 1.0 and report.size.ac1 == pytest.approx(1.0)
