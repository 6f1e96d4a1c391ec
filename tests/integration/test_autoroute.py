"""Orthanc as the site's PACS: its Lua router sends lumbar and SIJ MR studies to the node.

The phantom study is uploaded to Orthanc over its REST API, as a modality would
store it; Orthanc's ``OnStableStudy`` (deploy/orthanc/autoroute.lua, unchanged)
sends it to a ``dicom-node serve`` subprocess, which must receive every instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.dicom_node.serve_harness import ServeProcess
from tests.integration.loop import node_study, pacs_and_node
from tests.integration.orthanc import OrthancProcess, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def routed(tmp_path: Path, orthanc_factory: type[OrthancProcess]) -> Iterator[tuple[OrthancProcess, ServeProcess]]:
    orthanc, node = pacs_and_node(tmp_path, orthanc_factory)
    try:
        yield orthanc, node
    finally:
        if node.proc.poll() is None:
            node.stop()


def test_lua_router_sends_a_lumbar_study_to_the_node(
    routed: tuple[OrthancProcess, ServeProcess], lumbar_study: tuple[str, list[Path]],
) -> None:
    orthanc, node = routed
    study_uid, files = lumbar_study
    for path in files:
        assert orthanc.upload(path)["Status"] == "Success"
    wait_for("the node to receive the whole study from Orthanc",
             lambda: node_study(node, study_uid)[1] == len(files))
    state, count = node_study(node, study_uid)
    assert count == len(files) and state is not None
    assert "dicom-node auto-routing: study" in orthanc.log()


def test_lua_router_leaves_other_studies_alone(
    routed: tuple[OrthancProcess, ServeProcess], tmp_path: Path,
) -> None:
    """A knee MR and a lumbar CT stay in Orthanc; the node never hears of them."""
    from tests.dicom_node.serve_harness import make_instance

    orthanc, node = routed
    uids = []
    for n, (modality, body_part, description) in enumerate(
        (("MR", "KNEE", "KNEE MRI"), ("CT", "LSPINE", "CT LWS"))
    ):
        ds = make_instance(pydicom.uid.generate_uid(), pydicom.uid.generate_uid(), 1)
        ds.Modality, ds.BodyPartExamined, ds.StudyDescription = modality, body_part, description
        path = tmp_path / f"other{n}.dcm"
        ds.save_as(path, enforce_file_format=True)
        assert orthanc.upload(path)["Status"] == "Success"
        uids.append(str(ds.StudyInstanceUID))
    # a lumbar MR study uploaded after them is routed: by then their stable events have run
    ds = make_instance(pydicom.uid.generate_uid(), pydicom.uid.generate_uid(), 1)
    ds.BodyPartExamined, ds.StudyDescription = "LSPINE", "LWS"
    path = tmp_path / "lumbar.dcm"
    ds.save_as(path, enforce_file_format=True)
    orthanc.upload(path)
    wait_for("the lumbar MR study at the node",
             lambda: node_study(node, str(ds.StudyInstanceUID))[1] == 1)
    wait_for("Orthanc to have routed or skipped every study",
             lambda: all(orthanc.get(f"/studies/{orthanc.find_study(u)}")["IsStable"] for u in uids))
    for uid in uids:
        assert node_study(node, uid) == (None, 0)


def test_lua_router_sends_late_images_once_and_never_non_mr_series(
    routed: tuple[OrthancProcess, ServeProcess], tmp_path: Path,
) -> None:
    """A late MR image is sent alone; a non-MR series in the study (results) is not sent."""
    from tests.dicom_node.serve_harness import audit, make_instance

    orthanc, node = routed
    study, series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()

    def upload(ds: pydicom.Dataset, name: str) -> None:
        ds.BodyPartExamined, ds.StudyDescription = "LSPINE", "MR LWS"
        ds.save_as(tmp_path / name, enforce_file_format=True)
        assert orthanc.upload(tmp_path / name)["Status"] == "Success"

    upload(make_instance(study, series, 1), "first.dcm")
    wait_for("the first image at the node", lambda: node_study(node, study)[1] == 1)
    result = make_instance(study, pydicom.uid.generate_uid(), 1)
    result.Modality = "OT"  # stands for the node's SEG/SR series coming back
    upload(result, "result.dcm")
    upload(make_instance(study, series, 2), "late.dcm")
    wait_for("the late image at the node", lambda: node_study(node, study)[1] == 2)
    wait_for("Orthanc to settle the study",
             lambda: orthanc.get(f"/studies/{orthanc.find_study(study)}")["IsStable"])
    stores = [e for e in audit(node, "store") if e.study_uid == study]
    assert len(stores) == 2  # each MR image sent once, the other series never
