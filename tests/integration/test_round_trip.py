"""The whole loop with Orthanc as the PACS: results come back into the same study.

Orthanc's Lua router sends the phantom study to ``dicom-node serve``; the node
runs the pipeline and delivers SEG + SR back to Orthanc, where they must sit in
the source study (same Study Instance UID, same patient) and parse with
highdicom. Then: late images re-run the job and the results replace, not add;
Orthanc down while results are pending, up again: they arrive.
"""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
import sqlalchemy as sa

from storage.db import make_engine, make_session_factory
from storage.models import Delivery, DeliveryState, Job, JobState, Study
from tests.dicom_node.ops.promtext import parse, value
from tests.dicom_node.serve_harness import ServeProcess
from tests.integration.loop import node_modalities, pacs_and_node
from tests.integration.orthanc import OrthancProcess, wait_for

pytestmark = pytest.mark.integration

#: CPU inference of a lumbar phantom on 2 shared cores, plus assembly and delivery
RESULT_TIMEOUT = 400.0


def node_rows(node: ServeProcess, study_uid: str) -> tuple[list[tuple[int, JobState]], list[DeliveryState]]:
    """``([(amendment, state) of each job], [state of each delivery])`` of the study."""
    engine = make_engine(node.settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            jobs = session.execute(
                sa.select(Job.amendment, Job.state).join(Study)
                .where(Study.study_instance_uid == study_uid, Job.pipeline == "ldh")).all()
            deliveries = session.scalars(sa.select(Delivery.state)).all()
            return [(a, s) for a, s in jobs], list(deliveries)
    finally:
        engine.dispose()


def results_in_orthanc(orthanc: OrthancProcess, study_uid: str) -> tuple[list[str], list[str]] | None:
    seg, sr = (orthanc.instances_of_modality(study_uid, m) for m in ("SEG", "SR"))
    return (seg, sr) if seg and sr else None


@pytest.fixture
def loop(tmp_path: Path, orthanc_factory: type[OrthancProcess],
         request: pytest.FixtureRequest) -> Iterator[tuple[OrthancProcess, ServeProcess]]:
    orthanc, node = pacs_and_node(tmp_path, orthanc_factory,
                                  stow=bool(getattr(request, "param", False)))
    try:
        yield orthanc, node
    finally:
        if node.proc.poll() is None:
            node.stop()


def send_and_check_results(orthanc: OrthancProcess, node: ServeProcess,
                           lumbar_study: tuple[str, list[Path]]) -> list[str]:
    """Upload the study to Orthanc, wait for SEG + SR in it, check them; their SOP Instance UIDs."""
    study_uid, files = lumbar_study
    source = pydicom.dcmread(files[0], stop_before_pixels=True)
    for path in files:
        orthanc.upload(path)
    seg_ids, sr_ids = wait_for("SEG and SR in Orthanc's study",
                               lambda: results_in_orthanc(orthanc, study_uid), RESULT_TIMEOUT)
    seg = hd.seg.segread(io.BytesIO(orthanc.instance_file(seg_ids[0])))
    sr = hd.sr.srread(io.BytesIO(orthanc.instance_file(sr_ids[0])))
    for obj in (seg, sr):
        assert obj.StudyInstanceUID == study_uid
        assert obj.PatientID == source.PatientID
        assert str(obj.PatientName) == str(source.PatientName)
    assert seg.number_of_segments >= 1
    assert len(orthanc.get("/patients")) == 1 and len(orthanc.get("/studies")) == 1
    return sorted(orthanc.instance_tags(i)["SOPInstanceUID"] for i in seg_ids + sr_ids)


def test_results_come_back_into_the_same_study(
    loop: tuple[OrthancProcess, ServeProcess], lumbar_study: tuple[str, list[Path]],
) -> None:
    orthanc, node = loop
    send_and_check_results(orthanc, node, lumbar_study)
    # the results are not MR: the router does not send them back to the node
    wait_for("Orthanc to settle the study", lambda: orthanc.get(
        f"/studies/{orthanc.find_study(lumbar_study[0])}")["IsStable"])
    assert node_modalities(node, lumbar_study[0]) == {"MR"}
    # and the operator sees it in /metrics
    url = f"http://127.0.0.1:{node.settings.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=60) as response:
        samples = parse(response.read().decode())[1]
    assert value(samples, "dicom_node_jobs", pipeline="ldh", state="succeeded") == 1
    assert value(samples, "dicom_node_inference_duration_seconds_count", pipeline="ldh") == 1
    assert value(samples, "dicom_node_deliveries", destination="orthanc", state="delivered") >= 2
    assert value(samples, "dicom_node_instances_received_total") == len(lumbar_study[1])


@pytest.mark.slow
def test_sij_results_come_back_into_the_same_study(
    loop: tuple[OrthancProcess, ServeProcess], sij_study: tuple[str, list[Path]],
) -> None:
    """The SIJ phantom (Body Part PELVIS, Study Description "MRI SIJ") takes the same way."""
    orthanc, node = loop
    send_and_check_results(orthanc, node, sij_study)
    series = {s["MainDicomTags"].get("Modality"): s["MainDicomTags"].get("SeriesNumber")
              for s in orthanc.study_series(sij_study[0])}
    assert (series["SEG"], series["SR"]) == ("9011", "9012")  # the SIJ pipeline's series


@pytest.mark.slow
@pytest.mark.parametrize("loop", [True], indirect=True, ids=["stow"])
def test_results_by_stow_rs_to_orthanc_dicomweb(
    loop: tuple[OrthancProcess, ServeProcess], lumbar_study: tuple[str, list[Path]],
) -> None:
    orthanc, node = loop
    assert node.settings.destinations[0].stow_url
    send_and_check_results(orthanc, node, lumbar_study)


@pytest.mark.slow
def test_a_rerun_replaces_the_results_in_orthanc(
    loop: tuple[OrthancProcess, ServeProcess], lumbar_study: tuple[str, list[Path]], tmp_path: Path,
) -> None:
    orthanc, node = loop
    study_uid, files = lumbar_study
    before = send_and_check_results(orthanc, node, lumbar_study)
    # a late image (a new series) amends the study: the job re-runs, its results
    # carry the same SOP Instance UIDs and replace the first ones in Orthanc
    late = pydicom.dcmread(files[-1])
    late.SeriesInstanceUID, late.SOPInstanceUID = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    late.SeriesNumber, late.SeriesDescription = 99, "LATE LOCALIZER"
    late.file_meta.MediaStorageSOPInstanceUID = late.SOPInstanceUID
    late_path = tmp_path / "late.dcm"
    late.save_as(late_path, enforce_file_format=True)
    orthanc.upload(late_path)

    def rerun_delivered() -> bool:
        jobs, deliveries = node_rows(node, study_uid)
        return (any(a >= 1 and s is JobState.SUCCEEDED for a, s in jobs)
                and bool(deliveries) and all(d is DeliveryState.DELIVERED for d in deliveries))

    wait_for("the re-run's results delivered", rerun_delivered, RESULT_TIMEOUT)
    seg_ids, sr_ids = results_in_orthanc(orthanc, study_uid) or ([], [])
    after = sorted(orthanc.instance_tags(i)["SOPInstanceUID"] for i in seg_ids + sr_ids)
    assert after == before  # replaced, not duplicated


def test_results_wait_for_orthanc_to_come_back(
    loop: tuple[OrthancProcess, ServeProcess], lumbar_study: tuple[str, list[Path]],
) -> None:
    orthanc, node = loop
    study_uid, files = lumbar_study
    for path in files:
        orthanc.upload(path)
    wait_for("the node to have the whole study", lambda: node_rows(node, study_uid)[0])
    orthanc.stop()  # the PACS goes down while the job runs

    def failed_delivery() -> bool:
        return any(d in (DeliveryState.FAILED, DeliveryState.PENDING) for d in node_rows(node, study_uid)[1])

    wait_for("a delivery attempt to fail while Orthanc is down", lambda: any(
        d is DeliveryState.FAILED for d in node_rows(node, study_uid)[1]), RESULT_TIMEOUT)
    assert failed_delivery()
    orthanc.start()
    wait_for("SEG and SR in Orthanc after its restart",
             lambda: results_in_orthanc(orthanc, study_uid), RESULT_TIMEOUT)
    # the instances land in Orthanc before the node records the delivery: wait for the records too
    def all_delivered() -> bool:
        deliveries = node_rows(node, study_uid)[1]
        return bool(deliveries) and all(d is DeliveryState.DELIVERED for d in deliveries)

    wait_for("every delivery recorded as delivered", all_delivered, RESULT_TIMEOUT)
