"""The pipeline on a lumbar phantom study: graded from the reference labels and with the demo weights.

Making a phantom takes tens of seconds on two busy cores, so these tests are ``slow``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inference.ldh.data import LabelledStudy, load_study
from inference.ldh.evaluation import cases_from_result, summarise
from inference.ldh.pipeline import LdhPipeline, make_segmentation
from inference.modelcard import bundled_weights

from tests.inference.ldh.conftest import IntensityStub

pytestmark = pytest.mark.slow

SEED = 10007  # from the evaluation range: never used to train the demo weights


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> LabelledStudy:
    lumbar = pytest.importorskip("inference.phantoms.lumbar")
    folder = tmp_path_factory.mktemp("ldh") / "study"
    lumbar.generate_lumbar_study(folder, SEED)
    return load_study(folder)


def test_grading_reference_labels_reproduces_ground_truth(phantom: LabelledStudy) -> None:
    pipe = LdhPipeline(IntensityStub(), use_level_finder=False)
    segs = [make_segmentation(i, v, lab) for i, (v, lab) in enumerate(zip(phantom.axial, phantom.labels))]
    findings, _ = pipe.grade(phantom.axial, segs)
    graded = {f.level: f for f in findings}
    discs = [d for d in phantom.ground_truth["discs"] if d["axial_stack"] is not None]
    assert discs
    for disc in discs:
        f = graded[disc["level"]]
        assert f.size == disc["msu_size"], disc["level"]
        assert f.zone == disc["zone"], disc["level"]
        if disc["msu_size"]:
            assert f.slice is not None and f.slice.sop_instance_uid == disc["max_slice_sop_instance_uid"]
            assert f.side == (disc["side"] or "central")


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> list[LabelledStudy]:
    lumbar = pytest.importorskip("inference.phantoms.lumbar")
    root = tmp_path_factory.mktemp("ldh-held-out")
    studies = []
    for seed in range(10000, 10004):  # the evaluation range: never used to train the demo weights
        lumbar.generate_lumbar_study(root / str(seed), seed)
        studies.append(load_study(root / str(seed)))
    return studies


def test_demo_weights_on_held_out_phantoms(held_out: list[LabelledStudy]) -> None:
    if not bundled_weights("ldh").is_file():
        pytest.skip("no bundled ldh weights")
    pipe = LdhPipeline.from_weights(device="cpu", use_level_finder=False)
    cases = []
    for study in held_out:
        result = pipe(study.axial, study.sagittal)
        assert result.model_sha256 and "research use only" in result.notice
        cases += cases_from_result(result, study.ground_truth, study.labels, study=study.path.name)
    report = summarise(cases, n_boot=10)
    assert report.n_levels >= 8
    # floors well below what the demo weights measured on 12 held-out phantoms (docs/ldh.md):
    # an untrained or broken network fails every one of them
    called = [c.pred_size > 0 for c in cases if c.ref_size > 0]
    assert sum(called) >= 0.8 * len(called)
    assert sum(c.ref_zone == c.pred_zone for c in cases) >= 0.7 * len(cases)
    assert sum(c.ref_size == c.pred_size for c in cases) >= 0.5 * len(cases)
    assert report.iou_mean > 0.4
