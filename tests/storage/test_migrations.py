"""Alembic owns the schema: migrations apply on SQLite and PostgreSQL and agree with the models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from storage.db import alembic_config, current_revision, make_engine, upgrade
from storage.errors import StorageError
from storage.models import Base
from tests.conftest import REPO_ROOT

TABLES = {"studies", "series", "instances", "jobs", "results", "deliveries", "audit_events"}


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def _check_fresh_database(engine: Engine) -> None:
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == _head()
    assert TABLES <= set(sa.inspect(engine).get_table_names())
    assert _diff(engine) == [], "models and migrations disagree: write a migration"
    # applying again (every start-up does) is a no-op
    upgrade(engine)
    assert current_revision(engine) == _head()


def test_one_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1


def test_migrations_on_fresh_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    try:
        _check_fresh_database(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'down.sqlite3'}")
    try:
        upgrade(engine)
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert not TABLES & set(sa.inspect(engine).get_table_names())
        upgrade(engine)
        assert _diff(engine) == []
    finally:
        engine.dispose()


def test_upgrade_needs_no_ini_in_the_working_directory(tmp_path: Path) -> None:
    """``serve`` runs from anywhere: the migrations ship inside the package."""
    db = tmp_path / "elsewhere.sqlite3"
    code = (
        "from storage.db import make_engine, upgrade, current_revision; "
        f"e = make_engine({f'sqlite:///{db}'!r}); upgrade(e); print(current_revision(e))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == _head()


def test_unusable_url_is_a_storage_error() -> None:
    with pytest.raises(StorageError):
        make_engine("nosuchdialect://x")


def test_failed_migration_is_a_storage_error(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'clash.sqlite3'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE studies (x INTEGER)")
        with pytest.raises(StorageError):
            upgrade(engine)
        # rolled back as a whole: no half-made schema
        assert current_revision(engine) is None
        assert set(sa.inspect(engine).get_table_names()) == {"studies"}
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_migrations_on_fresh_postgres(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        _check_fresh_database(engine)
        assert engine.pool._pre_ping  # type: ignore[attr-defined]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_concurrent_upgrades_on_postgres(pg_url: str) -> None:
    """Several front-ends starting at once: the advisory lock lets one migrate, the others wait."""
    import threading

    errors: list[BaseException] = []
    engines = [make_engine(pg_url) for _ in range(3)]
    barrier = threading.Barrier(len(engines))

    def start(engine: Engine) -> None:
        barrier.wait()
        try:
            upgrade(engine)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert current_revision(engines[0]) == _head()
        assert _diff(engines[0]) == []
    finally:
        for e in engines:
            e.dispose()
