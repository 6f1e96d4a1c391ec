"""Orthanc (a real PACS) accepts SEG, SR, key images and PDF into the source study; re-runs replace."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicom_node.results import ResultOptions, encode_ldh, encode_sij
from dicom_node.results.offline import write_objects

from tests.dicom_node.results.conftest import LumbarCase, SijCase
from tests.dicom_node.results.orthanc import running_orthanc


@pytest.mark.integration
def test_orthanc_accepts_results_in_the_source_study(lumbar: LumbarCase, sij: SijCase, tmp_path: Path) -> None:
    everything = ResultOptions(secondary_capture=True, pdf=True)
    ldh = encode_ldh(lumbar.result, lumbar.axial, everything)
    sij_out = encode_sij(sij.result, [sij.t1], everything)
    files = write_objects(ldh.datasets, tmp_path / "ldh") + write_objects(sij_out.datasets, tmp_path / "sij")
    sources = [h.filename for v in lumbar.axial for h in v.headers[:1]] + [sij.t1.headers[0].filename]
    with running_orthanc(tmp_path / "orthanc") as pacs:
        for src in sources:
            assert pacs.upload(Path(src))["Status"] == "Success"
        studies_before = set(pacs.get("/studies"))
        answers = [pacs.upload(path) for path in files]
        assert [a["Status"] for a in answers] == ["Success"] * len(files)
        assert set(pacs.get("/studies")) == studies_before  # no new study: same Study Instance UID
        for answer, path in zip(answers, files):
            tags = pacs.get(f"/instances/{answer['ID']}/simplified-tags")
            assert tags["Modality"] in ("SEG", "SR", "OT", "DOC")
            assert tags["SOPInstanceUID"] and tags["PatientID"]
            assert answer["ParentStudy"] in studies_before
        n_instances = len(pacs.get("/instances"))
        # the same objects again (a re-run of the same model): stored once
        again = [pacs.upload(path)["Status"] for path in files]
        assert again == ["AlreadyStored"] * len(files)
        assert len(pacs.get("/instances")) == n_instances
        series = {pacs.get(f"/series/{a['ParentSeries']}")["MainDicomTags"].get("SeriesNumber") for a in answers}
        assert series == {"9001", "9002", "9003", "9004", "9011", "9012", "9013", "9014"}


@pytest.fixture(autouse=True)
def _filenames(lumbar: LumbarCase) -> None:
    if not getattr(lumbar.axial[0].headers[0], "filename", None):
        pytest.skip("source headers carry no file name")
