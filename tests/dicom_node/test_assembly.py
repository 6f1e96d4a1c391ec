"""Study assembly on a real (temporary SQLite) database, with a hand-driven clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy.orm import Session, sessionmaker

from config.settings import AssemblySettings
from dicom_node.assembly import StudyAssembler, StudyCompleted
from storage import repo
from storage.db import make_engine, make_session_factory, upgrade
from storage.store import InstanceStore

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
TIMERS = AssemblySettings(series_quiet_seconds=10, settle_seconds=5, forced_timeout_seconds=100)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    upgrade(engine)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


class Feeder:
    """Records instances the way the SCP does (store + index + commit)."""

    def __init__(self, db: sessionmaker[Session], root: Path) -> None:
        self.db = db
        self.store = InstanceStore(root)

    def add(self, study: str, series: str, at: datetime) -> None:
        sop = generate_uid()
        stored = self.store.put(study, series, sop, b"DICM" + sop.encode())
        with self.db() as session:
            repo.record_instance(
                session=session, stored=stored, study_uid=study, series_uid=series,
                sop_uid=sop, sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
                transfer_syntax_uid="1.2.840.10008.1.2.1", calling_ae="TEST", peer="127.0.0.1:1",
                study_attrs={}, series_attrs={"modality": "MR"}, now=at,
            )
            session.commit()


@pytest.fixture
def feed(db: sessionmaker[Session], tmp_path: Path) -> Feeder:
    return Feeder(db, tmp_path / "store")


def _assembler(db: sessionmaker[Session], events: list[StudyCompleted]) -> StudyAssembler:
    return StudyAssembler(db, TIMERS, on_complete=[events.append])


def test_series_quiet_then_settle(db: sessionmaker[Session], feed: Feeder) -> None:
    events: list[StudyCompleted] = []
    assembler = _assembler(db, events)
    study, s1, s2 = generate_uid(), generate_uid(), generate_uid()
    feed.add(study, s1, T0)
    feed.add(study, s2, T0 + timedelta(seconds=8))  # resets the study's clock
    assert assembler.poll(T0 + timedelta(seconds=14)) == []  # s2 not quiet yet
    assert assembler.poll(T0 + timedelta(seconds=18)) == []  # s2 quiet, settling
    done = assembler.poll(T0 + timedelta(seconds=23))  # 8 + 10 + 5
    assert [e.study_uid for e in done] == [study] and events == done
    assert done[0].forced is False and done[0].amendment == 0
    assert set(done[0].series_uids) == {s1, s2} and done[0].instance_count == 2
    assert assembler.poll(T0 + timedelta(seconds=60)) == []  # published once


def test_forced_timeout_proceeds_and_flags(db: sessionmaker[Session], feed: Feeder) -> None:
    events: list[StudyCompleted] = []
    assembler = _assembler(db, events)
    study, series = generate_uid(), generate_uid()
    for second in range(0, 101, 5):  # never quiet for 10 s
        feed.add(study, series, T0 + timedelta(seconds=second))
        assert assembler.poll(T0 + timedelta(seconds=second)) == [] or second >= 100
    assert [e.forced for e in events] == [True]
    with db() as session:
        row = repo.get_study(session=session, study_uid=study)
        assert row is not None and row.forced and row.state.value == "complete"


def test_late_instance_is_an_amendment(db: sessionmaker[Session], feed: Feeder) -> None:
    events: list[StudyCompleted] = []
    assembler = _assembler(db, events)
    study, series = generate_uid(), generate_uid()
    feed.add(study, series, T0)
    assembler.poll(T0 + timedelta(seconds=15))
    feed.add(study, generate_uid(), T0 + timedelta(seconds=300))  # after completion
    with db() as session:
        row = repo.get_study(session=session, study_uid=study)
        assert row is not None and row.state.value == "amended" and row.amendment == 1
    # the amendment's forced timeout runs from its first late instance, not from T0
    assert assembler.poll(T0 + timedelta(seconds=301)) == []
    done = assembler.poll(T0 + timedelta(seconds=315))
    assert [(e.amendment, e.forced, e.instance_count) for e in done] == [(1, False, 2)]
    assert [e.amendment for e in events] == [0, 1]
    # a second amendment that keeps receiving is forced 100 s after its first instance
    series = generate_uid()
    for second in range(400, 520, 5):
        feed.add(study, series, T0 + timedelta(seconds=second))
        done = assembler.poll(T0 + timedelta(seconds=second))
        if done:
            break
    assert second == 500 and [(e.amendment, e.forced) for e in done] == [(2, True)]


def test_state_survives_a_restart(db: sessionmaker[Session], feed: Feeder) -> None:
    study, series = generate_uid(), generate_uid()
    feed.add(study, series, T0)
    first: list[StudyCompleted] = []
    assert _assembler(db, first).poll(T0 + timedelta(seconds=5)) == []
    # a new assembler (a restarted process) knows nothing in memory but the database
    second: list[StudyCompleted] = []
    assert [e.study_uid for e in _assembler(db, second).poll(T0 + timedelta(seconds=16))] == [study]
    assert first == [] and len(second) == 1


def test_a_failing_subscriber_does_not_stop_the_others(
    db: sessionmaker[Session], feed: Feeder
) -> None:
    seen: list[str] = []

    def broken(event: StudyCompleted) -> None:
        raise RuntimeError("subscriber bug")

    assembler = StudyAssembler(db, TIMERS, on_complete=[broken, lambda e: seen.append(e.study_uid)])
    study = generate_uid()
    feed.add(study, generate_uid(), T0)
    assert len(assembler.poll(T0 + timedelta(seconds=16))) == 1
    assert seen == [study]


def test_timer_thread_completes_and_stops(db: sessionmaker[Session], feed: Feeder) -> None:
    import threading

    done = threading.Event()
    clock = [T0]
    assembler = StudyAssembler(
        db, AssemblySettings(series_quiet_seconds=1, settle_seconds=0, poll_seconds=0.05),
        on_complete=[lambda e: done.set()], clock=lambda: clock[0],
    )
    feed.add(generate_uid(), generate_uid(), T0)
    assembler.start()
    try:
        clock[0] = T0 + timedelta(seconds=2)
        assert done.wait(30)
    finally:
        assembler.stop()


def test_node_publishes_completion_to_subscribers(tmp_path: Path) -> None:
    """End to end in-process: C-STORE into a Node, its assembler calls our subscriber."""
    import threading

    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

    from config.settings import load_settings
    from dicom_node.server import Node
    from tests.conftest import free_port
    from tests.dicom_node.serve_harness import associate, make_instance

    settings = load_settings(
        environ={}, storage_dir=tmp_path / "var", host="127.0.0.1", port=free_port(),
        min_free_disk_mb=0,
        assembly={"series_quiet_seconds": 0.5, "settle_seconds": 0.2, "poll_seconds": 0.1},
    )
    received: list[StudyCompleted] = []
    arrived = threading.Event()
    node = Node(settings, on_complete=[received.append, lambda e: arrived.set()])
    node.start()
    try:
        study, series = generate_uid(), generate_uid()
        assoc = associate(node.address[1], [(MRImageStorage, [ExplicitVRLittleEndian])])
        try:
            for i in range(3):
                assert assoc.send_c_store(make_instance(study, series, i + 1)).Status == 0
        finally:
            assoc.release()
        assert arrived.wait(60)
    finally:
        node.stop()
    assert [(e.study_uid, e.series_uids, e.instance_count, e.forced) for e in received] == [
        (study, (series,), 3, False)
    ]
