"""Engine, sessions and schema migrations.

One engine per process (:func:`make_engine`), one session per unit of work
(:func:`make_session_factory`), and Alembic owns the schema (:func:`upgrade`,
applied by ``dicom-node serve`` at start-up).

SQLite is made safe for a service that acknowledges instances only once they
are durable and that writes from several threads at once:

* ``journal_mode=WAL`` (readers do not block the writer),
* ``synchronous=FULL`` (a committed transaction survives a power loss, not just
  a crash of the process) by default; ``synchronous=NORMAL`` only when asked for
  explicitly, with ``?synchronous=NORMAL`` in the URL or the ``sqlite_synchronous``
  argument: then a commit skips the WAL ``fsync`` (about a third of the time of
  an ingested instance here) and still survives a kill of the process (SIGKILL:
  the WAL is in the operating system's page cache), but a power loss or kernel
  crash may roll back the last commits before a checkpoint (docs/receiver.md),
* ``busy_timeout`` of 30 s, ``foreign_keys=ON``,
* every transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock up
  front, so two writers queue on the busy timeout instead of one of them failing
  with "database is locked" when it upgrades a read lock (the busy handler is not
  called in that case);
* within the process, transactions queue on a lock before ``BEGIN IMMEDIATE``
  (the same 30 s limit), which is much faster than SQLite's sleeping busy handler.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage.errors import StorageError

__all__ = ["MIGRATIONS_DIR", "make_engine", "make_session_factory", "open_database", "upgrade"]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# any constant will do: it names the lock that serialises concurrent upgrades
_PG_MIGRATION_LOCK = 0x6463_6D6E  # "dcmn"


def make_engine(url: str, *, sqlite_synchronous: str | None = None, **kwargs: Any) -> Engine:
    """Create the process's engine for ``url``.

    Parameters
    ----------
    url
        A SQLAlchemy URL, e.g. ``sqlite:////var/lib/dicom-node/db.sqlite3`` or
        ``postgresql+psycopg2://user@host/dbname``. A SQLite URL may carry
        ``?synchronous=FULL`` or ``?synchronous=NORMAL`` (see the module
        docstring); the parameter is ours and is not passed to the driver.
    sqlite_synchronous
        ``"FULL"`` or ``"NORMAL"``: SQLite's ``PRAGMA synchronous``; overrides the
        URL's. ``None`` (the default) means the URL's, else ``"FULL"``. Ignored for
        other databases.
    **kwargs
        Passed to :func:`sqlalchemy.create_engine` (tests use ``echo``).

    Returns
    -------
    sqlalchemy.engine.Engine
        With the SQLite settings described in the module docstring, or with
        ``pool_pre_ping`` for a server database.

    Raises
    ------
    StorageError
        When the URL cannot be parsed or its driver is not installed.
    """
    synchronous = "FULL"
    try:
        parsed = sa.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            synchronous = _synchronous(parsed.query.get("synchronous"), sqlite_synchronous)
            parsed = parsed.difference_update_query(["synchronous"])
            connect_args = dict(kwargs.pop("connect_args", {}))
            connect_args.setdefault("check_same_thread", False)
            connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
            engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
            _configure_sqlite(engine, synchronous)
        else:
            kwargs.setdefault("pool_pre_ping", True)
            engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
        raise StorageError(f"cannot use database URL {_safe(url)}: {exc}") from exc
    logger.debug("engine for %s", engine.url.render_as_string(hide_password=True))
    if engine.dialect.name == "sqlite" and synchronous != "FULL":
        logger.warning(
            "SQLite synchronous=%s: acknowledged instances survive a crash of the process "
            "but the last commits may be lost on a power loss", synchronous,
        )
    return engine


#: the values of PRAGMA synchronous we accept: both keep the WAL consistent
SQLITE_SYNCHRONOUS = ("FULL", "NORMAL")


def _synchronous(from_url: Any, explicit: str | None) -> str:
    """The ``PRAGMA synchronous`` value: ``explicit``, else the URL's, else FULL."""
    if isinstance(from_url, tuple):  # the query key given more than once
        from_url = from_url[-1]
    value = explicit if explicit is not None else (from_url or "FULL")
    value = str(value).strip().upper()
    if value not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}, not {value!r}")
    return value


def _safe(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable URL>"


def _configure_sqlite(engine: Engine, synchronous: str = "FULL") -> None:
    # Writers of this process queue on a lock instead of on SQLite's busy handler,
    # which sleeps in steps of up to 100 ms and cut throughput by half to two thirds
    # with four concurrent associations (docs/storage.md). Other processes still
    # meet the busy timeout.
    writer = threading.Lock()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # take transaction control away from pysqlite; "begin" below emits BEGIN
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    # id of the DBAPI connection holding the lock; one holder at a time
    holder: list[int | None] = [None]

    def _release(dbapi_connection: Any) -> None:
        if holder[0] is not None and holder[0] == id(_raw(dbapi_connection)):
            holder[0] = None
            writer.release()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        key = id(_raw(conn.connection))
        if holder[0] != key:
            if not writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
                raise StorageError("database is busy: no transaction could start in 30 s")
            holder[0] = key
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _release(conn.connection)
            raise

    # released once COMMIT / ROLLBACK has run (the "commit" event comes before it)
    dialect = engine.dialect
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    def _do_commit(dbapi_connection: Any) -> None:
        try:
            do_commit(dbapi_connection)
        finally:
            _release(dbapi_connection)

    def _do_rollback(dbapi_connection: Any) -> None:
        try:
            do_rollback(dbapi_connection)
        finally:
            _release(dbapi_connection)

    setattr(dialect, "do_commit", _do_commit)
    setattr(dialect, "do_rollback", _do_rollback)

    # safety nets: a connection going back to the pool or thrown away never keeps it
    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        _release(dbapi_connection)

    @event.listens_for(engine, "invalidate")
    def _on_invalidate(dbapi_connection: Any, record: Any, exception: Any) -> None:
        _release(dbapi_connection)


def _raw(connection: Any) -> Any:
    """The driver's connection under SQLAlchemy's pool wrappers."""
    try:
        raw = connection.dbapi_connection
    except (AttributeError, NotImplementedError):
        return connection
    return connection if raw is None else raw


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """The session factory of the process; callers own the transaction.

    ``expire_on_commit=False``: objects returned by repository functions stay
    readable after the caller commits (the CLI prints them, the assembler
    passes them on).
    """
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def open_database(url: str) -> Iterator[sessionmaker[Session]]:
    """Engine for ``url``, migrated to head, as a session factory; the engine is disposed on exit.

    For short-lived commands (``status``, ``jobs``, ``resend``) that open the database once.
    """
    engine = make_engine(url)
    try:
        upgrade(engine)
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic configuration for the shipped migrations; no ``alembic.ini`` needed.

    Parameters
    ----------
    engine
        Its URL is set as ``sqlalchemy.url`` (for command-line style use).
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest) with Alembic.

    Safe when several processes start at once: on PostgreSQL an advisory lock
    serialises them, on SQLite the ``BEGIN IMMEDIATE`` write lock does.

    Raises
    ------
    StorageError
        When a migration fails; the transaction is rolled back.
    """
    cfg = alembic_config()
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"database migration to {revision!r} failed: {exc}") from exc
    logger.info("database schema at %s", revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, ``None`` when it has none."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
