"""The SQLite engine: writers queue (in and across processes), nothing is left locked."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage import repo
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import AuditEvent
from tests.conftest import REPO_ROOT


def _events(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(AuditEvent)).scalar_one())


def _write_in_thread(engine: Engine) -> list[BaseException]:
    """Commit one event from another thread; return what went wrong."""
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with make_session_factory(engine)() as s:
                repo.add_audit_event(session=s, kind="echo", outcome="0x0000")
                s.commit()
        except BaseException as exc:  # noqa: BLE001 - returned
            errors.append(exc)

    # keep the pool's idle connection (the one used before) checked out, idle, so
    # that the writer needs another one and with it the writer lock
    with engine.connect():
        t = threading.Thread(target=write)
        t.start()
        t.join(timeout=120)
    assert not t.is_alive(), "the write is stuck: a finished transaction kept the lock"
    return errors


def test_a_session_closed_without_commit_lets_others_write(engine: Engine) -> None:
    with make_session_factory(engine)() as s:
        repo.add_audit_event(session=s, kind="echo", outcome="0x0000")
        s.flush()
    assert _write_in_thread(engine) == []
    assert _events(engine) == 1


def test_a_failed_transaction_lets_others_write(engine: Engine) -> None:
    with pytest.raises(ZeroDivisionError), engine.begin() as conn:
        conn.exec_driver_sql("SELECT 1")
        1 / 0  # noqa: B018
    with pytest.raises(sa.exc.OperationalError), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO no_such_table VALUES (1)")
    assert _write_in_thread(engine) == []


def test_one_connection_may_run_transactions_one_after_another(engine: Engine) -> None:
    with engine.connect() as conn:
        for _ in range(3):
            conn.execute(sa.text("SELECT 1"))
            conn.commit()
        conn.execute(sa.text("SELECT 1"))
        conn.rollback()
    assert _write_in_thread(engine) == []


def test_a_second_writer_waits_for_the_first(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    first = sessions()
    repo.add_audit_event(session=first, kind="echo", outcome="first")
    first.flush()  # holds the write transaction
    result: list[object] = []
    t = threading.Thread(target=lambda: result.extend(_write_in_thread(engine)))
    t.start()
    first.commit()
    first.close()
    t.join(timeout=120)
    assert not t.is_alive() and result == []
    assert _events(engine) == 2


_OTHER_PROCESS = textwrap.dedent("""
    import sys
    from storage.db import make_engine, make_session_factory
    from storage import repo
    sessions = make_session_factory(make_engine(sys.argv[1]))
    for i in range(40):
        with sessions() as s:
            repo.add_audit_event(session=s, kind="store", outcome="other")
            s.commit()
    """)


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    try:
        other = subprocess.Popen(
            [sys.executable, "-c", _OTHER_PROCESS, url],
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stderr=subprocess.PIPE,
            text=True,
        )
        sessions = make_session_factory(engine)
        for _ in range(40):
            with sessions() as s:
                repo.add_audit_event(session=s, kind="store", outcome="this")
                s.commit()
        _, err = other.communicate(timeout=300)
        assert other.returncode == 0, err
        assert _events(engine) == 80
    finally:
        engine.dispose()
