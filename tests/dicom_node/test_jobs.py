"""The job function's state machine on SQLite: routing stored, unique jobs, retries, dead, recovery."""

from __future__ import annotations

import socket
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy.orm import Session, sessionmaker

from config.settings import load_settings
from dicom_node.jobs import JobPolicy, JobRunner, PipelineCache, route_completed_study, route_pending_studies
from storage.db import make_engine, make_session_factory, upgrade
from storage.jobs import claim_job
from storage.models import Job, JobState, Study
from storage.store import InstanceStore
from tests.dicom_node.indexing import ingest
from tests.dicom_node.test_routing import AXIAL, header

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


@pytest.fixture
def node(tmp_path: Path) -> Any:
    settings = load_settings(None, environ={}, storage_dir=tmp_path / "node", min_free_disk_mb=0)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    yield settings, make_session_factory(engine), InstanceStore(tmp_path / "node" / "instances")
    engine.dispose()


def lumbar_axial(study_uid: str, count: int = 3) -> list[Dataset]:
    series = generate_uid()
    out = []
    for k in range(count):
        ds = header("t2_tse_tra", AXIAL, body="LSPINE", number=4)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study_uid, series, k + 1
        ds.ImagePositionPatient = [0.0, 0.0, 4.0 * k]
        out.append(ds)
    return out


def job_row(sessions: sessionmaker[Session]) -> Job:
    with sessions() as session:
        return session.scalars(sa.select(Job)).one()


def test_decision_is_stored_and_jobs_are_unique_per_amendment(node: Any) -> None:
    settings, sessions, store = node
    study_id = ingest(sessions, store, lumbar_axial(generate_uid()), now=NOW)
    decision, created = route_completed_study(settings=settings, session_factory=sessions, store=store,
                                              study_id=study_id, amendment=0, now=NOW)
    assert decision.pipelines() == ["ldh"] and len(created) == 1
    _, again = route_completed_study(settings=settings, session_factory=sessions, store=store,
                                     study_id=study_id, amendment=0, now=NOW)
    assert again == []  # the same (study, pipeline, model version, amendment): no second job
    assert route_pending_studies(settings=settings, session_factory=sessions, store=store) == []
    with sessions() as session:
        study = session.get(Study, study_id)
        assert study is not None and study.routing is not None
        assert study.routing["outcome"] == "routed" and study.routing["amendment"] == 0
        assert study.routing["jobs"] == {"ldh": created[0]}
        assert any("role axial <- series #4" in r for r in study.routing["reasons"])


def test_rule_priority_orders_the_queue(node: Any) -> None:
    settings, sessions, store = node
    rule = {"name": "urgent", "pipeline": "ldh", "priority": 7,
            "roles": {"axial": {"match": {"field": "class.plane", "equals": "axial"}}}}
    settings = settings.model_copy(update={"routing": [rule]})
    study_id = ingest(sessions, store, lumbar_axial(generate_uid()), now=NOW)
    route_pending_studies(settings=settings, session_factory=sessions, store=store)
    job = job_row(sessions)
    assert job.study_id == study_id and job.priority == 7


def test_unrouted_study_is_recorded_not_an_error(node: Any) -> None:
    settings, sessions, store = node
    ds = header("Ax T2 brain", AXIAL, body="HEAD")
    ds.StudyInstanceUID = generate_uid()
    study_id = ingest(sessions, store, [ds], now=NOW)
    assert route_pending_studies(settings=settings, session_factory=sessions, store=store) == []
    with sessions() as session:
        study = session.get(Study, study_id)
        assert study is not None and study.routing is not None and study.routing["outcome"] == "unrouted"
        assert session.scalar(sa.select(sa.func.count(Job.id))) == 0


class FailingPipeline:
    """A stand-in network that always fails (the retry path, not the model, is under test)."""

    device = "cpu"

    def __call__(self, *args: object) -> None:
        raise RuntimeError("out of memory (stand-in)")


def test_failure_retries_with_backoff_then_dead(node: Any) -> None:
    settings, sessions, store = node
    study_id = ingest(sessions, store, lumbar_axial(generate_uid()), now=NOW)
    route_completed_study(settings=settings, session_factory=sessions, store=store, study_id=study_id, amendment=0)
    cache = PipelineCache(settings)
    cache._pipelines["ldh"] = FailingPipeline()
    runner = JobRunner(settings, sessions, store, policy=JobPolicy(max_attempts=2, backoff_initial_seconds=30),
                       pipelines=cache)
    assert runner.process_next() is None
    job = job_row(sessions)
    assert job.state is JobState.FAILED and job.attempts == 1
    assert job.error is not None and "out of memory (stand-in)" in job.error
    assert job.not_before is not None and job.finished_at is not None
    assert job.not_before - job.finished_at >= timedelta(seconds=29)
    assert runner.process_next() is None and job_row(sessions).attempts == 1  # not due yet
    runner.process_next(now=job.not_before + timedelta(seconds=1))
    job = job_row(sessions)
    assert job.state is JobState.DEAD and job.attempts == 2


def test_missing_weights_make_the_job_dead_at_once_with_the_reason(node: Any, tmp_path: Path) -> None:
    settings, sessions, store = node
    settings = settings.model_copy(update={"models": settings.models.model_copy(
        update={"ldh_weights": tmp_path / "nowhere.pt"})})
    study_id = ingest(sessions, store, lumbar_axial(generate_uid()), now=NOW)
    route_completed_study(settings=settings, session_factory=sessions, store=store, study_id=study_id, amendment=0)
    runner = JobRunner(settings, sessions, store, policy=JobPolicy(max_attempts=5))
    runner.process_next()
    job = job_row(sessions)
    assert job.model_version == "unavailable"
    assert job.state is JobState.DEAD and job.attempts == 1
    assert job.error is not None and "nowhere.pt" in job.error


def test_running_job_of_a_dead_process_is_picked_up_again(node: Any) -> None:
    settings, sessions, store = node
    study_id = ingest(sessions, store, lumbar_axial(generate_uid()), now=NOW)
    route_completed_study(settings=settings, session_factory=sessions, store=store, study_id=study_id, amendment=0)
    dead_pid = subprocess.Popen(["true"])  # a process that has exited
    dead_pid.wait()
    now = datetime.now(timezone.utc)
    with sessions() as session:
        assert claim_job(session=session, worker=f"{socket.gethostname()}:{dead_pid.pid}", now=now) is not None
        session.commit()
    runner = JobRunner(settings, sessions, store)
    assert runner.recover(now=now) == 1
    job = job_row(sessions)
    assert job.state is JobState.FAILED and job.error is not None and "died" in job.error
    # a job whose worker is alive (this process) is left alone until the job timeout
    with sessions() as session:
        assert claim_job(session=session, worker=runner.worker, now=now) is not None
        session.commit()
    assert runner.recover(now=now + timedelta(seconds=10)) == 0
    assert runner.recover(now=now + timedelta(seconds=runner.policy.timeout_seconds + 1)) == 1


def test_jobs_command_lists_jobs_and_routing(node: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dicom_node.cli import main

    settings, sessions, store = node
    study_uid = generate_uid()
    study_id = ingest(sessions, store, lumbar_axial(study_uid), now=NOW)
    route_completed_study(settings=settings, session_factory=sessions, store=store, study_id=study_id, amendment=0)
    config = tmp_path / "node.yaml"
    config.write_text(f"storage_dir: {settings.storage_dir}\nmin_free_disk_mb: 0\n")
    assert main(["--config", str(config), "jobs", "--routing"]) == 0
    out = capsys.readouterr().out
    assert "pending   ldh" in out and study_uid in out
    assert f"study {study_uid}: routed (amendment 0)" in out
    assert main(["--config", str(config), "jobs", "--json", "--state", "dead"]) == 0
    assert '"jobs": []' in capsys.readouterr().out


def test_jobs_settings_drive_retries_timeout_and_priorities(node: Any) -> None:
    """The ``jobs:`` section reaches the runner (retries, timeout) and the router (priorities)."""
    from dicom_node.executors.celery_executor import CeleryExecutor
    from dicom_node.executors.local import LocalExecutor

    settings, sessions, store = node
    settings = settings.model_copy(update={"jobs": settings.jobs.model_copy(update={
        "max_attempts": 2, "backoff_initial_seconds": 40.0, "backoff_max_seconds": 50.0,
        "timeout_seconds": 120.0, "priorities": {"ldh": 4}})})
    expected = JobPolicy(max_attempts=2, backoff_initial_seconds=40.0, backoff_max_seconds=50.0,
                         timeout_seconds=120.0)
    assert LocalExecutor(settings, sessions, store).runner.policy == expected
    assert CeleryExecutor(settings, sessions, store).recovery.policy == expected
    assert expected.retry_delay(1) == 40.0 and expected.retry_delay(3) == 50.0

    study_id = ingest(sessions, store, lumbar_axial(generate_uid()), now=NOW)
    route_pending_studies(settings=settings, session_factory=sessions, store=store)
    job = job_row(sessions)
    assert job.study_id == study_id and job.priority == 4  # the built-in rule sets none: jobs.priorities

    cache = PipelineCache(settings)
    cache._pipelines["ldh"] = FailingPipeline()
    runner = JobRunner(settings, sessions, store, pipelines=cache)  # no policy given: settings.jobs
    runner.process_next()
    job = job_row(sessions)
    assert job.state is JobState.FAILED and job.not_before is not None and job.finished_at is not None
    assert job.not_before - job.finished_at >= timedelta(seconds=39)
    runner.process_next(now=job.not_before + timedelta(seconds=1))
    assert job_row(sessions).state is JobState.DEAD  # max_attempts 2


def test_models_are_loaded_once_at_start_with_the_level_finder(node: Any, tmp_path: Path) -> None:
    """``jobs.preload_models``: the executor builds the routed pipelines at start, the LDH one with its
    level finder (loaded once, not per study), and a broken level-finder path does not stop grading."""
    from dicom_node.executors.local import LocalExecutor

    settings, sessions, store = node
    executor = LocalExecutor(settings, sessions, store)
    executor.start()
    try:
        assert executor._preload is not None
        assert executor.wait_preloaded(300)
        cache = executor.runner.pipelines
        assert set(cache._pipelines) == {"ldh", "sij"}  # the built-in rules route to both
        ldh = cache.get("ldh")
        assert ldh.levels_model is not None and cache.get("ldh").levels_model is ldh.levels_model
    finally:
        executor.stop()
    assert executor._preload is None

    broken = settings.model_copy(update={"models": settings.models.model_copy(
        update={"levels_weights": tmp_path / "no-levels.pt"})})
    assert PipelineCache(broken).get("ldh").levels_model is None  # levels from the stack order, per study
    off = settings.model_copy(update={"jobs": settings.jobs.model_copy(update={"preload_models": False})})
    executor = LocalExecutor(off, sessions, store)
    executor.start()
    try:
        assert executor.wait_preloaded(0) and executor.runner.pipelines._pipelines == {}
    finally:
        executor.stop()


@pytest.mark.parametrize("flip_tta", [None, False, True])
def test_pipelines_take_flip_tta_from_the_settings_or_else_their_cards(tmp_path: Path, flip_tta: bool | None) -> None:
    from inference.modelcard import bundled_weights

    if not (bundled_weights("ldh").is_file() and bundled_weights("sij").is_file()):
        pytest.skip("bundled weights missing")
    settings = load_settings(None, environ={}, storage_dir=tmp_path, device="cpu", models={"flip_tta": flip_tta})
    cache = PipelineCache(settings)
    ldh, sij = cache.get("ldh"), cache.get("sij")
    if flip_tta is None:  # the bundled cards: on for LDH, off for SIJ (docs/ldh.md, docs/sij.md)
        assert (ldh.inferer.flip_tta, sij.inferer.flip_tta) == (True, False)
    else:
        assert ldh.inferer.flip_tta is flip_tta and sij.inferer.flip_tta is flip_tta
