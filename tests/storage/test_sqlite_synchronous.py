"""SQLite ``PRAGMA synchronous``: FULL unless NORMAL is asked for explicitly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage import repo
from storage.db import make_engine, make_session_factory, upgrade
from storage.errors import StorageError

# PRAGMA synchronous reads back as a number: 1 NORMAL, 2 FULL
_NORMAL, _FULL = 1, 2


def _synchronous(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


def test_default_is_full(tmp_path: Path) -> None:
    assert _synchronous(make_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}")) == _FULL


def test_normal_from_the_url_is_not_passed_to_the_driver(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}?synchronous=normal")
    assert _synchronous(engine) == _NORMAL
    assert "synchronous" not in engine.url.query
    upgrade(engine)  # migrations and sessions work on the stripped URL
    with make_session_factory(engine)() as session:
        assert session.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_the_argument_overrides_the_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}?synchronous=NORMAL"
    assert _synchronous(make_engine(url, sqlite_synchronous="FULL")) == _FULL
    plain = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    assert _synchronous(make_engine(plain, sqlite_synchronous="NORMAL")) == _NORMAL


@pytest.mark.parametrize("value", ["OFF", "0", "EXTRA", ""])
def test_unsafe_or_unknown_values_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(StorageError, match="synchronous"):
        make_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}", sqlite_synchronous=value)


_KILLED_WRITER = """
import os, signal, sys
from datetime import datetime, timezone
from storage.db import make_engine, make_session_factory
from storage import repo
sessions = make_session_factory(make_engine(sys.argv[1]))
for i in range(20):
    with sessions() as s:
        repo.insert_audit_event(session=s, kind="store", outcome="0x0000",
                                sop_uid=f"1.2.3.{i}", now=datetime.now(timezone.utc))
        s.commit()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_normal_keeps_every_commit_when_the_process_is_killed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}?synchronous=NORMAL"
    upgrade(make_engine(url))
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, url], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    with make_session_factory(make_engine(url))() as session:
        events = repo.audit_events(session=session)
    assert sorted(e.sop_uid or "" for e in events) == sorted(f"1.2.3.{i}" for i in range(20))
