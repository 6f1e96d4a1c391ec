"""Routing rules: the expression language, the built-in defaults on vendor naming, the dry run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicom_node.cli import main
from dicom_node.routing import RoutingError, SeriesInfo, matches, parse_rules, route_study
from tests.dicom_node.serve_harness import make_instance

AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
SAGITTAL = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
CORONAL = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]


def header(description: str, orientation: list[float], *, body: str = "", number: int = 1, **tags: object) -> Dataset:
    ds = make_instance("1.2.3", generate_uid(), 1, size=4)
    ds.SeriesDescription = description
    ds.SeriesNumber = number
    ds.ImageOrientationPatient = orientation
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 4.0
    if body:
        ds.BodyPartExamined = body
    for key, value in tags.items():
        setattr(ds, key, value)
    return ds


def info(ds: Dataset, count: int = 20) -> SeriesInfo:
    return SeriesInfo(str(ds.SeriesInstanceUID), ds, count)


@pytest.mark.parametrize(
    ("axial", "sagittal"),
    [
        ("t2_tse_tra", "t2_tse_sag"),  # Siemens
        ("Ax T2 FSE", "Sag T2 FSE"),  # GE
        ("T2W_TSE_TRA", "T2W_TSE_SAG"),  # Philips
    ],
)
def test_defaults_route_vendor_lumbar_naming(axial: str, sagittal: str) -> None:
    series = [
        info(header(axial, AXIAL, body="LSPINE", number=4)),
        info(header(sagittal, SAGITTAL, body="LSPINE", number=2)),
        info(header("t1_tse_sag", SAGITTAL, body="LSPINE", number=3, RepetitionTime=500, EchoTime=10)),
    ]
    decision = route_study(series, parse_rules([]))
    assert decision.outcome == "routed", decision.reasons
    assert decision.pipelines() == ["ldh"]
    roles = decision.roles_of("ldh")
    assert roles["axial"] == series[0].series_uid
    assert roles["sagittal"] == series[1].series_uid


@pytest.mark.parametrize(("t1", "stir"), [("t1_tse_cor SIJ", "t2_tirm_cor SIJ"), ("OCor T1 FSE", "OCor STIR"),
                                           ("T1W_TSE_COR", "STIR_COR")])
def test_defaults_route_vendor_sij_naming(t1: str, stir: str) -> None:
    series = [info(header(t1, CORONAL, body="SIJ")), info(header(stir, CORONAL, body="SIJ"))]
    decision = route_study(series, parse_rules([]))
    assert decision.pipelines() == ["sij"], decision.reasons
    assert decision.roles_of("sij") == {"t1": series[0].series_uid, "stir": series[1].series_uid}


def test_missing_required_series_is_incomplete_not_routed() -> None:
    decision = route_study([info(header("t2_tse_sag", SAGITTAL, body="LSPINE"))], parse_rules([]))
    assert decision.outcome == "incomplete"
    assert decision.incomplete == [{"rule": "lumbar", "pipeline": "ldh", "missing": ["axial"]}]
    assert any("required series missing: axial" in r for r in decision.reasons)


def test_unrelated_study_is_unrouted_with_a_reason() -> None:
    decision = route_study([info(header("Ax T2 brain", AXIAL, body="HEAD"))], parse_rules([]))
    assert decision.outcome == "unrouted"
    assert decision.reasons[-1] == "no rule matches this study: nothing to run"
    json.dumps(decision.as_dict())  # stored on the study as JSON


def test_the_largest_candidate_wins_and_one_series_fills_one_role() -> None:
    small = info(header("t2_tse_tra", AXIAL, body="LSPINE", number=5), count=5)
    big = info(header("t2_tse_tra_2", AXIAL, body="LSPINE", number=6), count=30)
    decision = route_study([small, big], parse_rules([]))
    assert decision.roles_of("ldh")["axial"] == big.series_uid
    assert "over 1 other candidate" in decision.reasons[0]


def test_expression_language() -> None:
    ds = info(header("T2 AX L-SPINE", AXIAL, body="LSPINE", EchoTime=100, RepetitionTime=4000))
    assert matches(ds, {"field": "SeriesDescription", "regex": r"\bax\b"})
    assert not matches(ds, {"field": "SeriesDescription", "regex": "sag"})
    assert matches(ds, {"field": "EchoTime", "range": [80, None]})
    assert not matches(ds, {"field": "EchoTime", "range": [None, 50]})
    assert matches(ds, {"field": "BodyPartExamined", "present": True})
    assert matches(ds, {"field": "ContrastBolusAgent", "present": False})
    assert not matches(ds, {"field": "ContrastBolusAgent", "regex": "."})
    assert matches(ds, {"field": "class.plane", "equals": "AXIAL"})
    assert matches(ds, {"field": "class.weighting", "in": ["T2", "PD"]})
    assert matches(ds, {"all": [{"field": "Modality", "equals": "MR"}, {"not": {"field": "class.plane", "equals": "sagittal"}}]})
    assert matches(ds, {"any": [{"field": "Modality", "equals": "CT"}, {"field": "EchoTime", "equals": 100}]})
    assert not matches(ds, {"any": [{"field": "Modality", "equals": "CT"}, {"field": "EchoTime", "equals": 99}]})
    assert matches(ds, {"field": "ImageOrientationPatient", "range": [0.9, 1.1]})  # any value of a list


def test_configured_rule_by_tags_only() -> None:
    rules = parse_rules([{
        "name": "site lumbar", "pipeline": "ldh",
        "roles": {"axial": {"match": {"all": [
            {"field": "SeriesDescription", "regex": "^LS_AX"}, {"field": "EchoTime", "range": [60, 200]}]}}},
    }])
    assert rules[0].priority == 0
    assert parse_rules([{"pipeline": "sij", "priority": 5, "roles": {"t1": {"match": {"field": "Modality", "equals": "MR"}}}}])[0].priority == 5
    # jobs.priorities fills in for rules without a priority of their own (the built-in ones too)
    sij_rule = {"pipeline": "sij", "roles": {"t1": {"match": {"field": "Modality", "equals": "MR"}}}}
    assert parse_rules([sij_rule], priorities={"sij": 2})[0].priority == 2
    assert parse_rules([{**sij_rule, "priority": 5}], priorities={"sij": 2})[0].priority == 5
    assert [r.priority for r in parse_rules([], priorities={"sij": 3})] == [0, 3]
    hit = info(header("LS_AX_T2", AXIAL, EchoTime=90))
    miss = info(header("LS_AX_T2", AXIAL, EchoTime=20))
    assert route_study([hit], rules).pipelines() == ["ldh"]
    assert route_study([miss], rules).outcome == "unrouted"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"pipeline": "brain", "roles": {}}, "pipeline must be"),
        ({"pipeline": "ldh", "roles": {"coronal": {"match": {"field": "Modality", "equals": "MR"}}}}, "roles of ldh"),
        ({"pipeline": "ldh", "roles": {"axial": {"match": {"field": "Modality", "like": "MR"}}}}, "operators"),
        ({"pipeline": "ldh", "roles": {"axial": {"match": {"field": "X", "regex": "("}}}}, "bad regex"),
        ({"pipeline": "ldh", "roles": {"axial": {"match": {"all": []}}}}, "non-empty list"),
        ({"pipeline": "ldh", "priority": "high", "roles": {"axial": {"match": {"field": "X", "present": True}}}},
         "priority must be an integer"),
        ({"pipeline": "ldh", "roles": {"axial": {"match": {"field": "class.colour", "equals": 1}}}}, "classifier field"),
    ],
)
def test_bad_rules_are_refused_with_the_rule_named(rule: dict[str, object], message: str) -> None:
    with pytest.raises(RoutingError, match=message) as info_:
        parse_rules([{"name": "mine", **rule}])
    assert "routing[0] (mine)" in str(info_.value)


def test_route_dry_run_prints_the_decision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = generate_uid()
    for description, orientation, number in (("t2_tse_tra", AXIAL, 4), ("t2_tse_sag", SAGITTAL, 2)):
        series = generate_uid()
        for k in range(3):
            ds = header(description, orientation, body="LSPINE", number=number)
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, k + 1
            ds.ImagePositionPatient = [0.0, 0.0, 4.0 * k] if orientation is AXIAL else [4.0 * k, 0.0, 0.0]
            ds.save_as(tmp_path / f"{number}-{k}.dcm", enforce_file_format=True)
    assert main(["route", "--dry-run", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"study {study}: routed" in out
    assert "-> ldh (rule lumbar)" in out and "role axial <- series #4" in out
    assert main(["route", "--dry-run", "--json", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report[study]["outcome"] == "routed"
    assert main(["route", str(tmp_path)]) == 2
