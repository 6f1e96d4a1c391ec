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
import sqlalchemy as sa

from storage.db import make_engine, make_session_factory
from storage.models import Instance, Series, Study, StudyState
from tests.conftest import free_port
from tests.dicom_node.serve_harness import ServeProcess, start_serve
from tests.integration.orthanc import LUA_ROUTER, OrthancProcess, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lumbar_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Path]]:
    from inference.phantoms.lumbar import generate_lumbar_study

    root = generate_lumbar_study(tmp_path_factory.mktemp("lumbar") / "study", seed=11)
    files = sorted(root.rglob("*.dcm"))
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID), files


def node_study(node: ServeProcess, study_uid: str) -> tuple[StudyState | None, int]:
    """The node's assembly state of the study and how many instances it indexed."""
    engine = make_engine(node.settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            state = session.scalar(sa.select(Study.state).where(Study.study_instance_uid == study_uid))
            count = session.scalar(
                sa.select(sa.func.count(Instance.id)).join(Series).join(Study)
                .where(Study.study_instance_uid == study_uid)) or 0
            return state, int(count)
    finally:
        engine.dispose()


def pacs_and_node(tmp_path: Path, orthanc_factory: type[OrthancProcess], *,
                  dicomweb: bool = False) -> tuple[OrthancProcess, ServeProcess]:
    """Orthanc with the Lua router pointing at a node whose destination is that Orthanc."""
    node_port = free_port()
    orthanc = orthanc_factory(tmp_path / "orthanc", lua=[LUA_ROUTER], dicomweb=dicomweb,
                              modalities={"dicom-node": ["DICOM_NODE", "127.0.0.1", node_port]})
    destination = {"name": "orthanc", "ae_title": orthanc.aet, "host": "127.0.0.1",
                   "port": orthanc.dicom_port}
    node = start_serve(tmp_path / "node", port=node_port, destinations=[destination],
                       delivery={"backoff_initial_seconds": 1.0, "backoff_max_seconds": 2.0})
    orthanc.start()
    return orthanc, node


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
    state, count = wait_for(
        "the node to receive the whole study from Orthanc",
        lambda: (s := node_study(node, study_uid))[1] == len(files) and s[0] is not None and s,
    )
    assert count == len(files)
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
