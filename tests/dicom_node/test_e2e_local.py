"""End to end over DICOM with the local executor (SQLite): PACS down then up, then an amendment.

A lumbar phantom is sent to a node (SEG, SR, PDF report and key images asked for
in ``results:``) whose destination PACS is not listening yet:
the results are written and their deliveries fail and are retried; once the PACS
is up every result arrives (nothing lost). Then a late series arrives after
completion: the study is amended, the job re-runs and the new results replace
the old ones in the PACS (same SOP Instance UIDs, no second set).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydicom import dcmread
from pydicom.uid import generate_uid

from dicom_node.commands._demo_pacs import ReceivingPacs
from dicom_node.commands.demo import demo_settings, send_folder, study_progress
from dicom_node.server import Node
from inference.phantoms.lumbar import generate_lumbar_study
from storage.models import Delivery, DeliveryState, Job, JobState, Result, Study
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def wait_for(condition: Callable[[], bool], what: str, limit: float = 400.0) -> None:
    """Poll until ``condition`` holds; fail naming ``what`` after ``limit`` s (a hang guard, not a timing check)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.25)


def test_pacs_down_then_up_and_amendment_replaces_results(tmp_path: Path) -> None:
    folder = generate_lumbar_study(tmp_path / "phantom", 3)
    files = sorted((folder / "dicom").rglob("*.dcm"))
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    pacs_port = free_port()
    settings = demo_settings(tmp_path, pacs_port, quiet_seconds=1.0,
                             results={"pdf": True, "secondary_capture": True})
    node = Node(settings)
    node.start()
    pacs = ReceivingPacs(tmp_path / "pacs", port=pacs_port)
    try:
        sessions = node.session_factory
        assert sessions is not None
        assert send_folder(files, node.address[1]) == len(files)

        def deliveries() -> list[tuple[DeliveryState, int, str]]:
            with sessions() as s:
                return [(d.state, d.attempts, r.sop_instance_uid) for d, r in s.execute(
                    sa.select(Delivery, Result).join(Result, Delivery.result_id == Result.id))]

        # the PACS is down: results are in the outbox and their first attempt failed
        wait_for(lambda: any(state is DeliveryState.FAILED for state, _, _ in deliveries()), "a failed delivery")
        first_uids = {uid for _, _, uid in deliveries()}
        assert not pacs.received

        pacs.start()
        wait_for(lambda: study_progress(sessions, study_uid)[1], "the results to arrive")
        line, _, problems = study_progress(sessions, study_uid)
        assert not problems, problems
        received = pacs.objects(study_uid)
        assert {o.sop_instance_uid for o in received} == first_uids
        assert {"SEG", "SR", "DOC"} <= {o.modality for o in received}
        with sessions() as s:  # every kind the results: section asked for, all delivered
            kinds = {r.kind.value for r in s.scalars(sa.select(Result))}
        assert kinds == {"seg", "sr", "pdf", "sc"}
        assert all(state is DeliveryState.DELIVERED for state, _, _ in deliveries())
        stores_before = len(pacs.received)

        with sessions() as s:
            study = s.scalars(sa.select(Study).where(Study.study_instance_uid == study_uid)).one()
            assert study.routing is not None and study.routing["outcome"] == "routed"
            assert study.routing["amendment"] == 0

        # a late series (a copy of the sagittal T1 under new UIDs) amends the completed study
        late_series = generate_uid()
        late_files = []
        for path in sorted((folder / "dicom" / "sag_t1").glob("*.dcm"))[:3]:
            ds = dcmread(path)
            ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.SeriesNumber = late_series, generate_uid(), 99
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            target = tmp_path / "late" / path.name
            target.parent.mkdir(exist_ok=True)
            ds.save_as(target, enforce_file_format=True)
            late_files.append(target)
        assert send_folder(late_files, node.address[1]) == len(late_files)

        def amended_and_sent() -> bool:
            with sessions() as s:
                job = s.scalars(sa.select(Job).where(Job.amendment == 1)).one_or_none()
                if job is None or job.state is not JobState.SUCCEEDED:
                    return False
            return study_progress(sessions, study_uid)[1] and len(pacs.received) >= 2 * stores_before

        wait_for(amended_and_sent, "the amendment's results")
        with sessions() as s:
            jobs = list(s.scalars(sa.select(Job).order_by(Job.id)))
            results = list(s.scalars(sa.select(Result)))
            assert [(j.pipeline, j.amendment, j.state) for j in jobs] == [
                ("ldh", 0, JobState.SUCCEEDED), ("ldh", 1, JobState.SUCCEEDED)]
            assert {r.sop_instance_uid for r in results} == first_uids  # replaced, not added
            assert {r.job_id for r in results} == {jobs[1].id}
        # the PACS got the same SOP Instance UIDs again: one set of results, newer copies
        assert {o.sop_instance_uid for o in pacs.objects(study_uid)} == first_uids
        assert len(pacs.received) == 2 * stores_before
    finally:
        node.stop()
        pacs.stop()
