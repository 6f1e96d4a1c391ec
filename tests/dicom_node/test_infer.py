"""``dicom-node infer``: series selection, files written per study, summaries printed, re-runs replace."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import highdicom as hd
import pytest

from dicom_node.cli import build_parser
from dicom_node.commands.infer import run
from dicom_node.results.offline import Pipelines, find_studies, select_series

from tests.dicom_node.results.conftest import (
    LUMBAR_SEED,
    SIJ_SEED,
    dciodvfy_errors,
    lumbar_result,
    phantom_folder,
    sij_result,
)


@pytest.fixture(scope="module")
def lumbar_folder() -> Path:
    return phantom_folder("lumbar", LUMBAR_SEED)


@pytest.fixture(scope="module")
def sij_folder() -> Path:
    return phantom_folder("sij", SIJ_SEED)


@pytest.fixture(scope="module")
def two_studies(lumbar_folder: Path, sij_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder holding the DICOM files of a lumbar and an SIJ phantom study."""
    root = tmp_path_factory.mktemp("incoming")
    shutil.copytree(lumbar_folder / "dicom", root / "lumbar")
    shutil.copytree(sij_folder / "dicom", root / "sij")
    return root


_READINGS: dict[Path, Any] = {}


def reference_pipelines(lumbar_folder: Path, sij_folder: Path) -> Pipelines:
    """Stand-ins that return the phantoms' reference readings (the encoders are under test, not the networks)."""
    def ldh(axial: list[Any], sagittal: Any) -> Any:
        assert len(axial) == 3 and sagittal is not None
        if lumbar_folder not in _READINGS:
            _READINGS[lumbar_folder] = lumbar_result(lumbar_folder)[1]
        return _READINGS[lumbar_folder]

    def sij(t1: Any, stir: Any) -> Any:
        assert stir is not None
        if sij_folder not in _READINGS:
            _READINGS[sij_folder] = sij_result(sij_folder)[1]
        return _READINGS[sij_folder]

    return Pipelines(ldh=ldh, sij=sij)


def test_select_series_picks_each_pipelines_inputs(two_studies: Path) -> None:
    studies = find_studies(two_studies)
    assert len(studies) == 2
    chosen = [select_series(series) for series in studies.values()]
    lumbar = next(s for s in chosen if s.ldh_axial)
    sij = next(s for s in chosen if s.sij_t1)
    assert lumbar.ldh_sagittal and lumbar.sij_t1 is None
    assert sij.sij_stir and sij.ldh_axial is None


def test_infer_writes_seg_and_sr_per_study_and_prints_summaries(
    two_studies: Path, lumbar_folder: Path, sij_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = build_parser().parse_args(["infer", str(two_studies), "--out", str(out)])
    assert run(args, pipelines=reference_pipelines(lumbar_folder, sij_folder)) == 0
    printed = capsys.readouterr().out
    assert "ldh: " in printed and "MSU" in printed and "sij: SIJ fat metaplasia: SPARCC" in printed
    files = sorted(out.rglob("*.dcm"))
    names = sorted(p.name for p in files)
    assert names == sorted(["9001-SEG-1.dcm", "9001-SEG-2.dcm", "9001-SEG-3.dcm", "9002-SR-1.dcm",
                            "9011-SEG-1.dcm", "9012-SR-1.dcm"])
    for path in files:
        if path.name.startswith(("9002", "9012")):
            sr = hd.sr.srread(path)
            assert path.parent.name == sr.StudyInstanceUID
        else:
            assert path.parent.name == hd.seg.segread(path).StudyInstanceUID
    # a re-run would write the same names: the file name is made of the fixed Series Number and the
    # instance number, and the UIDs are derived (tested with the encoders)
    for path in files:
        assert dciodvfy_errors(path, tmp_path, path.stem) == []


def test_missing_pipeline_is_reported_and_the_other_still_runs(
    two_studies: Path, lumbar_folder: Path, sij_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipes = reference_pipelines(lumbar_folder, sij_folder)
    pipes.sij, pipes.unavailable["sij"] = None, "SIJ pipeline not available: no weights"
    args = build_parser().parse_args(["infer", str(two_studies), "--out", str(tmp_path / "o")])
    assert run(args, pipelines=pipes) == 1
    printed = capsys.readouterr().out
    assert "sij: FAILED: SIJ pipeline not available: no weights" in printed and "ldh: " in printed
    assert not list((tmp_path / "o").rglob("9012-SR-1.dcm")) and list((tmp_path / "o").rglob("9002-SR-1.dcm"))


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    args = build_parser().parse_args(["infer", str(tmp_path), "--out", str(tmp_path / "o")])
    assert run(args, pipelines=Pipelines()) == 2
