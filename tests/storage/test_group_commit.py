"""Group commit: many threads, shared commits, failures isolated to their own unit."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from storage.errors import InvalidUID
from storage.group_commit import GroupCommitter
from storage.models import AuditEvent, Instance
from storage.store import InstanceStore
from tests.storage.conftest import at

STUDY = "1.2.826.0.1.3680043.10.88"


def _record(store: InstanceStore, sop: str) -> object:
    stored = store.put(STUDY, f"{STUDY}.1", sop, sop.encode())

    def work(session: Session) -> str:
        outcome = repo.record_instance(
            session=session,
            stored=stored,
            study_uid=STUDY,
            series_uid=f"{STUDY}.1",
            sop_uid=sop,
            sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            calling_ae="SCU",
            peer="127.0.0.1",
            study_attrs={},
            series_attrs={"modality": "MR"},
            now=at(0),
        )
        repo.add_audit_event(session=session, kind="store", outcome="0x0000", sop_uid=sop)
        return outcome

    return work


def test_units_queued_together_share_one_commit(
    sessions: sessionmaker[Session], store: InstanceStore
) -> None:
    committer = GroupCommitter(sessions)
    waiting = 7
    started, release = threading.Event(), threading.Event()
    outcomes: list[str] = []

    def first(session: Session) -> str:
        # hold the turn until the other units are queued behind this one
        started.set()
        release.wait(timeout=120)
        return "first"

    def caller(work: object) -> None:
        outcomes.append(committer.run(work))  # type: ignore[arg-type]

    leader = threading.Thread(target=caller, args=(first,))
    leader.start()
    assert started.wait(timeout=120)
    others = [
        threading.Thread(target=caller, args=(_record(store, f"{STUDY}.1.{i}"),))
        for i in range(waiting)
    ]
    for t in others:
        t.start()
    while committer.pending() < waiting:
        threading.Event().wait(0.01)
    release.set()
    for t in [leader, *others]:
        t.join()
    assert sorted(outcomes) == ["first"] + ["new"] * waiting
    assert committer.commits == 2
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Instance)) == waiting
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == waiting


def test_a_failing_unit_is_rolled_back_alone(
    sessions: sessionmaker[Session], store: InstanceStore
) -> None:
    committer = GroupCommitter(sessions)
    assert committer.run(_record(store, f"{STUDY}.1.1")) == "new"

    def bad(session: Session) -> str:
        repo.add_audit_event(session=session, kind="store", outcome="0x0000", detail="rolled back")
        raise InvalidUID("bad")

    with pytest.raises(InvalidUID):
        committer.run(bad)
    assert committer.run(_record(store, f"{STUDY}.1.2")) == "new"
    assert committer.run(_record(store, f"{STUDY}.1.2")) == "duplicate"
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Instance)) == 2
        details = s.scalars(sa.select(AuditEvent.detail)).all()
        assert "rolled back" not in details and len(details) == 3


def test_many_threads_lose_nothing(sessions: sessionmaker[Session], store: InstanceStore) -> None:
    committer = GroupCommitter(sessions, max_batch=5)
    errors: list[BaseException] = []

    def association(k: int) -> None:
        try:
            for i in range(15):
                committer.run(_record(store, f"{STUDY}.1.{k}.{i}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=association, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert committer.commits <= 90
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Instance)) == 90
        (summary,) = repo.study_summaries(session=s)
        assert summary["instance_count"] == 90
