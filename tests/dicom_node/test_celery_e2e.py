"""End to end with the Celery executor against the real Redis and PostgreSQL on this machine.

A node (``executor: celery``, in this process) receives a lumbar phantom over
DICOM, routes it and rings a ``dicom-node worker`` subprocess. The worker is
killed (SIGKILL) while it runs the job; a second worker started afterwards finds
the job of the dead process, runs it again, and exactly one set of results
reaches the receiving PACS, graded as the phantom's ground truth says.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from pydicom import dcmread

from dicom_node.commands._demo_pacs import ReceivingPacs
from dicom_node.commands._demo_sr import lumbar_rows
from dicom_node.commands.demo import demo_settings, send_folder, study_progress
from dicom_node.server import Node
from inference.phantoms.lumbar import generate_lumbar_study
from storage.models import Job, JobState, Result
from tests.conftest import REPO_ROOT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PG_SERVER = os.environ.get("DICOM_NODE_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping())
    except redis.exceptions.ConnectionError:
        return False


@pytest.fixture
def broker() -> Iterator[str]:
    if not _redis_up():
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
                        "--save", "", "--appendonly", "no"], capture_output=True, check=False, timeout=30)
        time.sleep(1)
    if not _redis_up():
        pytest.skip("CELERY E2E SKIPPED: no Redis on 127.0.0.1:6379 and redis-server could not start it")
    db = random.Random(uuid.uuid4().int).randint(1, 15)  # a database of its own, flushed after
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    client.flushdb()
    yield f"redis://127.0.0.1:6379/{db}"
    client.flushdb()


@pytest.fixture
def pg_url() -> Iterator[str]:
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError:
        subprocess.run("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
                       shell=True, capture_output=True, check=False, timeout=60)
    name = f"dicom_node_celery_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"CELERY E2E SKIPPED: no PostgreSQL at {PG_SERVER} ({exc.orig})")
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def wait_for(condition: Callable[[], bool], what: str, limit: float = 400.0) -> None:
    """Poll until ``condition`` holds; a hang guard, not a timing check."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


def start_worker(config: Path, broker: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dicom_node", "--config", str(config), "worker", "--broker", broker],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def test_worker_killed_mid_job_gives_exactly_one_set_of_results(
    tmp_path: Path, broker: str, pg_url: str,
) -> None:
    folder = generate_lumbar_study(tmp_path / "phantom", 1)
    files = sorted((folder / "dicom").rglob("*.dcm"))
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    pacs_port = free_port()
    settings = demo_settings(tmp_path, pacs_port, executor="celery", database_url=pg_url, device="cpu",
                             celery_broker_url=broker)
    config = tmp_path / "node.yaml"
    config.write_text(yaml.safe_dump(json.loads(settings.model_dump_json())))
    log = tmp_path / "worker.log"

    with ReceivingPacs(tmp_path / "pacs", port=pacs_port) as pacs:
        node = Node(settings)
        node.start()
        first = start_worker(config, broker, log)
        second: subprocess.Popen[bytes] | None = None
        try:
            sessions = node.session_factory
            assert sessions is not None
            assert send_folder(files, node.address[1]) == len(files)

            def job() -> Job | None:
                with sessions() as s:
                    return s.scalars(sa.select(Job)).one_or_none()

            def running_on_first() -> bool:
                j = job()
                assert first.poll() is None, log.read_text()
                return j is not None and j.state is JobState.RUNNING and (j.worker or "").endswith(f":{first.pid}")

            wait_for(running_on_first, "the first worker to run the job")
            stop(first, signal.SIGKILL)  # mid-job: the row stays running, the message unacknowledged
            killed = job()
            assert killed is not None and killed.state is JobState.RUNNING

            second = start_worker(config, broker, log)
            wait_for(lambda: study_progress(sessions, study_uid)[1], "the results after the second worker")
            _, _, problems = study_progress(sessions, study_uid)
            assert not problems, problems
            final = job()
            assert final is not None and final.state is JobState.SUCCEEDED
            assert final.attempts == 2 and (final.worker or "").endswith(f":{second.pid}")
            with sessions() as s:
                results = {r.sop_instance_uid for r in s.scalars(sa.select(Result))}
            received = pacs.objects(study_uid)
            assert {o.sop_instance_uid for o in received} == results
            assert len(pacs.received) == len(results)  # each object once: one set of results
            sr = dcmread(next(o.path for o in received if o.modality == "SR"))
            truth = json.loads((folder / "ground_truth.json").read_text())
            herniated = {d["level"]: d["msu_size"] for d in truth["discs"] if d["msu_size"]}
            graded = {lv: g for lv, g, _ in lumbar_rows(sr) if g.startswith("MSU")}
            assert set(graded) == set(herniated)
        finally:
            node.stop()
            stop(first)
            if second is not None:
                stop(second)
