"""Fixtures of the storage tests: a migrated SQLite database, a throw-away PostgreSQL database."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage.db import make_engine, make_session_factory, upgrade
from storage.models import Base
from storage.store import InstanceStore

#: the project's PostgreSQL server (see the issue); DICOM_NODE_TEST_PG overrides it
PG_SERVER = os.environ.get("DICOM_NODE_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``: test times are explicit, never the wall clock."""
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database in a temporary directory."""
    eng = make_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_engine(request: pytest.FixtureRequest) -> Engine:
    """A migrated, empty database: SQLite, then the PostgreSQL server."""
    if request.param == "sqlite":
        return request.getfixturevalue("engine")
    return request.getfixturevalue("pg_shared_engine")


@pytest.fixture
def sessions(any_engine: Engine) -> sessionmaker[Session]:
    """The session factory of ``any_engine`` (each test runs on both databases)."""
    return make_session_factory(any_engine)


@pytest.fixture
def store(tmp_path: Path) -> InstanceStore:
    """An instance store in a temporary directory, with no floor."""
    return InstanceStore(tmp_path / "store")


def _pg_reachable(admin: Engine) -> str | None:
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return None
    except sa.exc.OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)


def _try_start_postgres() -> None:
    ctl = shutil.which("pg_ctlcluster")
    conf = Path("/etc/postgresql")
    if ctl is None or not conf.is_dir():
        return
    for version in sorted(p.name for p in conf.iterdir()):
        subprocess.run(
            [ctl, "--skip-systemctl-redirect", version, "main", "start"],
            capture_output=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the server's ``postgres`` database; skips loudly without one."""
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (extra 'postgres')")
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    problem = _pg_reachable(admin)
    if problem is not None:
        _try_start_postgres()
        problem = _pg_reachable(admin)
    if problem is not None:
        admin.dispose()
        pytest.skip(f"PostgreSQL TESTS SKIPPED: no server at {PG_SERVER} ({problem})")
    yield admin
    admin.dispose()


@pytest.fixture
def pg_url(pg_admin: Engine) -> Iterator[str]:
    """URL of a fresh, empty database with a unique name, dropped afterwards."""
    name = f"dicom_node_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """A migrated engine on the throw-away PostgreSQL database."""
    eng = make_engine(pg_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def _pg_session_db(pg_admin: Engine) -> Iterator[Engine]:
    """One migrated throw-away PostgreSQL database for the whole run."""
    name = f"dicom_node_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    eng = make_engine(f"{PG_SERVER}/{name}")
    try:
        upgrade(eng)
        yield eng
    finally:
        eng.dispose()
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_shared_engine(_pg_session_db: Engine) -> Engine:
    """The run's PostgreSQL database, emptied for this test (faster than a new one)."""
    tables = ", ".join(f'"{t.name}"' for t in reversed(Base.metadata.sorted_tables))
    with _pg_session_db.begin() as conn:
        # a session a test forgot to close would otherwise hang the run here
        conn.exec_driver_sql("SET LOCAL lock_timeout = '20s'")
        conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    return _pg_session_db
