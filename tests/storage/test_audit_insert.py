"""``insert_audit_event``: the Core INSERT of the C-STORE hot path writes what the ORM did."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from storage import repo

_FIELDS = dict(
    kind="store", outcome="0x0000", calling_ae="MOD", called_ae="NODE", peer="10.0.0.1:104",
    study_uid="1.2.3", series_uid="1.2.3.4", sop_uid="1.2.3.4.5", detail="new",
)


def test_same_row_as_add_audit_event(sessions: sessionmaker[Session]) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with sessions() as s:
        repo.add_audit_event(session=s, now=when, **_FIELDS)
        repo.insert_audit_event(session=s, now=when, **_FIELDS)
        s.commit()
    with sessions() as s:
        events = repo.audit_events(session=s, study_uid="1.2.3")
        assert len(events) == 2
        cols = ["at", *_FIELDS]
        orm, core = ({c: getattr(e, c) for c in cols} for e in sorted(events, key=lambda e: e.id))
        assert core == orm
        assert core["at"] == when


def test_rolled_back_with_its_transaction(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        repo.insert_audit_event(session=s, now=datetime.now(timezone.utc), **_FIELDS)
        s.rollback()
    with sessions() as s:
        assert repo.audit_events(session=s) == []


def test_naive_time_refused_at_once(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, pytest.raises(sa.exc.StatementError):
        repo.insert_audit_event(session=s, now=datetime(2026, 1, 1), **_FIELDS)
