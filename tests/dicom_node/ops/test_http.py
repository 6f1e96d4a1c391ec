"""The ops endpoint in-process, on a temporary database with rows of every kind."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.ops.http import OpsServer
from dicom_node.ops.metrics import LATENCY_BUCKETS, collect_metrics
from dicom_node.ops.probes import (
    Check,
    database_probe,
    store_probe,
    threads_probe,
    weights_probe,
)
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import (
    AuditEvent,
    Delivery,
    DeliveryState,
    Instance,
    Job,
    JobState,
    Result,
    ResultKind,
    Series,
    Study,
    StudyState,
)
from storage.store import InstanceStore
from tests.dicom_node.ops.promtext import parse, value

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ops.sqlite3'}")
    upgrade(engine)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def _populate(session: Session) -> None:
    """Two studies, five instances, jobs in three states, deliveries, audit events."""
    studies = []
    for n, state in enumerate((StudyState.COMPLETE, StudyState.RECEIVING)):
        study = Study(study_instance_uid=f"1.2.3.{n}", state=state, first_received_at=T0,
                      last_received_at=T0, completed_at=T0 if state is StudyState.COMPLETE else None)
        series = Series(study=study, series_instance_uid=f"1.2.3.{n}.1", last_received_at=T0)
        session.add_all([study, series])
        for i in range(3 - n):
            session.add(Instance(series=series, sop_instance_uid=f"1.2.3.{n}.1.{i}",
                                 sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
                                 transfer_syntax_uid="1.2.840.10008.1.2.1", path=f"x/{n}/{i}",
                                 sha256="0" * 64, size_bytes=1000 + i, received_at=T0))
        studies.append(study)
    done = [Job(study=studies[0], pipeline="ldh", model_version="1", amendment=a,
                state=JobState.SUCCEEDED, started_at=T0, finished_at=T0 + timedelta(seconds=s))
            for a, s in enumerate((0.4, 3.0, 700.0))]
    session.add_all(done)
    session.add(Job(study=studies[0], pipeline="sij", model_version="1", state=JobState.DEAD,
                    started_at=T0, finished_at=T0 + timedelta(seconds=1)))
    session.add(Job(study=studies[1], pipeline="sij", model_version="1", state=JobState.PENDING))
    for k, kind in enumerate((ResultKind.SEG, ResultKind.SR)):
        result = Result(job=done[0], sop_instance_uid=f"9.9.{k}", sop_class_uid="1.2",
                        kind=kind, path=f"r/{k}", sha256="1" * 64, created_at=T0)
        session.add(result)
        session.add(Delivery(result=result, destination='PACS "main"', state=DeliveryState.DELIVERED))
        session.add(Delivery(result=result, destination="backup", state=DeliveryState.DEAD))
    for outcome in ("rejected", "rejected", "aborted", "accepted"):
        session.add(AuditEvent(at=T0, kind="association", outcome=outcome))
    for outcome in ("0x0000", "0xA700", "0xC000", "0xC000"):
        session.add(AuditEvent(at=T0, kind="store", outcome=outcome))
    session.commit()


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.fixture
def ops(factory: sessionmaker[Session], tmp_path: Path) -> Iterator[OpsServer]:
    store = InstanceStore(tmp_path / "instances")
    server = OpsServer(
        "127.0.0.1", 0,
        probes={"database": database_probe(factory), "store": store_probe(store)},
        metrics=lambda: collect_metrics(factory, store, gauges={
            "dicom_node_active_associations": ("open now", lambda: 2),
            "dicom_node_broken": ("raises", lambda: 1 / 0),
        }),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _url(server: OpsServer, path: str) -> str:
    host, port = server.address
    return f"http://{host}:{port}{path}"


def test_metrics_are_counted_from_the_database(ops: OpsServer, factory: sessionmaker[Session]) -> None:
    with factory() as session:
        _populate(session)
    status, ctype, text = _get(_url(ops, "/metrics"))
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    types, s = parse(text)
    assert value(s, "dicom_node_database_up") == 1
    assert value(s, "dicom_node_instances_received_total") == 5
    assert value(s, "dicom_node_received_bytes_total") == 1000 + 1001 + 1002 + 1000 + 1001
    assert value(s, "dicom_node_studies", state="complete") == 1
    assert value(s, "dicom_node_studies", state="receiving") == 1
    assert value(s, "dicom_node_studies", state="amended") == 0
    assert value(s, "dicom_node_studies_completed_total") == 1
    assert value(s, "dicom_node_jobs", pipeline="ldh", state="dead") == 0
    assert value(s, "dicom_node_deliveries", destination="backup", state="pending") == 0
    assert value(s, "dicom_node_jobs", pipeline="ldh", state="succeeded") == 3
    assert value(s, "dicom_node_jobs", pipeline="sij", state="dead") == 1
    assert value(s, "dicom_node_jobs", pipeline="sij", state="pending") == 1
    assert value(s, "dicom_node_deliveries", destination='PACS "main"', state="delivered") == 2
    assert value(s, "dicom_node_deliveries", destination="backup", state="dead") == 2
    assert value(s, "dicom_node_associations_rejected_total") == 2
    assert value(s, "dicom_node_associations_aborted_total") == 1
    assert value(s, "dicom_node_store_failures_total", status="0xC000") == 2
    assert value(s, "dicom_node_store_failures_total", status="0xA700") == 1
    assert "dicom_node_store_failures_total" not in s or all(
        dict(k)["status"] != "0x0000" for k in s["dicom_node_store_failures_total"])
    # the histogram: succeeded jobs only (0.4 s, 3 s, 700 s), per pipeline
    assert types["dicom_node_inference_duration_seconds"] == "histogram"
    h = "dicom_node_inference_duration_seconds"
    assert value(s, h + "_count", pipeline="ldh") == 3
    assert value(s, h + "_sum", pipeline="ldh") == pytest.approx(703.4)
    assert value(s, h + "_bucket", pipeline="ldh", le="0.5") == 1
    assert value(s, h + "_bucket", pipeline="ldh", le="5") == 2
    assert value(s, h + "_bucket", pipeline="ldh", le=str(int(LATENCY_BUCKETS[-1]))) == 2
    assert value(s, h + "_bucket", pipeline="ldh", le="+Inf") == 3
    assert not any(dict(k).get("pipeline") == "sij" for k in s.get(h + "_count", {}))
    assert value(s, "dicom_node_store_free_bytes") > 0
    assert value(s, "dicom_node_active_associations") == 2
    assert "dicom_node_broken" not in types  # a gauge that raises is left out, the page is not


def test_metrics_on_an_empty_database_are_zero(ops: OpsServer) -> None:
    _, _, text = _get(_url(ops, "/metrics"))
    _, s = parse(text)
    assert value(s, "dicom_node_instances_received_total") == 0
    assert value(s, "dicom_node_received_bytes_total") == 0
    assert value(s, "dicom_node_associations_rejected_total") == 0


def test_metrics_report_an_unreadable_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")  # no schema: every query fails
    try:
        _, s = parse(collect_metrics(make_session_factory(engine)))
    finally:
        engine.dispose()
    assert value(s, "dicom_node_database_up") == 0
    assert "dicom_node_instances_received_total" not in s


def test_healthz_readyz_and_unknown_paths(ops: OpsServer) -> None:
    assert _get(_url(ops, "/healthz"))[::2] == (200, "ok\n")
    status, ctype, body = _get(_url(ops, "/readyz"))
    assert (status, ctype) == (200, "application/json")
    doc = json.loads(body)
    assert doc["ready"] is True
    assert set(doc["checks"]) == {"database", "store"}
    assert _get(_url(ops, "/nothing"))[0] == 404


def test_readyz_is_503_naming_the_failed_check(factory: sessionmaker[Session], tmp_path: Path) -> None:
    def broken() -> Check:
        raise RuntimeError("no connection")

    server = OpsServer("127.0.0.1", 0, metrics=lambda: "", probes={
        "database": database_probe(factory), "workers": lambda: Check(False, "job-worker-: 0/2"),
        "broken": broken,
    })
    server.start()
    try:
        status, _, body = _get(_url(server, "/readyz"))
    finally:
        server.stop()
    doc = json.loads(body)
    assert status == 503 and doc["ready"] is False
    assert doc["checks"]["database"] == {"ok": True, "detail": "reachable"}
    assert doc["checks"]["workers"]["ok"] is False
    assert doc["checks"]["broken"] == {"ok": False, "detail": "RuntimeError: no connection"}


def test_store_probe_fails_below_the_floor_or_unwritable(tmp_path: Path) -> None:
    assert store_probe(InstanceStore(tmp_path / "a"))().ok
    assert not store_probe(InstanceStore(tmp_path / "b", min_free_bytes=1 << 62))().ok
    gone = InstanceStore(tmp_path / "c")
    gone.root.rmdir()
    with pytest.raises(OSError):  # run_probes turns this into a failed check
        store_probe(gone)()


def test_database_probe_fails_without_a_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'db.sqlite3'}")
    try:
        with pytest.raises(sa.exc.OperationalError):
            database_probe(make_session_factory(engine))()
    finally:
        engine.dispose()


def test_threads_probe_counts_live_threads_by_name() -> None:
    import threading

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="job-worker-0", daemon=True)
    thread.start()
    try:
        assert threads_probe({"job-worker-": 1})().ok
        assert not threads_probe({"job-worker-": 2})().ok
    finally:
        stop.set()
        thread.join()
    assert not threads_probe({"job-worker-": 1})().ok


def test_weights_probe(tmp_path: Path) -> None:
    weights = tmp_path / "site.pt"
    assert not weights_probe({"ldh": weights})().ok
    weights.write_bytes(b"tensors")
    assert not weights_probe({"ldh": weights})().ok  # no card
    (tmp_path / "site.card.json").write_text(json.dumps({"version": "7", "sha256": "ab"}))
    check = weights_probe({"ldh": weights})()
    assert check == Check(True, "ldh 7")
    assert weights_probe({"ldh": None})().ok  # the bundled LDH weights are in the repo
