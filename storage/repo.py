"""Repository functions over the index: studies, series, instances, audit events.

Every function takes the ``session`` keyword-only; callers own the unit of work
and commit it (STYLE.md 7). Functions here never commit.

:func:`record_instance` is the hot path of the C-STORE handler. It is written
with single-statement upserts (``INSERT ... ON CONFLICT DO NOTHING``, then
``SELECT``) and counter updates done in SQL (``n = n + 1``), so that two
associations recording instances of the same new study at the same moment on
PostgreSQL neither fail on a unique constraint nor lose a count. The study's
row is locked first (``SELECT ... FOR UPDATE``), so that recordings of the
same study queue behind each other instead of deadlocking. On SQLite the
engine's ``BEGIN IMMEDIATE`` serialises writers anyway.

Record one instance per transaction (the C-STORE handler does: the commit is
what makes the acknowledgement safe). A caller that records several studies in
one transaction should do so in a stable order (e.g. sorted by Study Instance
UID), or two such transactions can deadlock on PostgreSQL.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any, Literal, TypedDict, Unpack, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.errors import InvalidUID, StorageError
from storage.models import (
    UID_LENGTH,
    AuditEvent,
    Instance,
    Job,
    Series,
    Study,
    StudyState,
    UTCDateTime,
    utcnow,
)
from storage.store import StoredFile

__all__ = [
    "Outcome",
    "STUDY_ATTRS",
    "SERIES_ATTRS",
    "AuditFields",
    "add_audit_event",
    "insert_audit_event",
    "audit_events",
    "get_study",
    "instances_of_study",
    "mark_study_complete",
    "open_studies",
    "record_instance",
    "series_of",
    "study_summaries",
]

logger = logging.getLogger(__name__)

Outcome = Literal["new", "duplicate", "new_version"]

#: keys of ``study_attrs`` that :func:`record_instance` reads
STUDY_ATTRS = ("patient_id", "patient_name", "accession_number", "study_date", "study_description")
#: keys of ``series_attrs`` that :func:`record_instance` reads
SERIES_ATTRS = (
    "modality",
    "series_number",
    "series_description",
    "body_part_examined",
    "frame_of_reference_uid",
)

_studies = cast(sa.Table, Study.__table__)
_series = cast(sa.Table, Series.__table__)
_instances = cast(sa.Table, Instance.__table__)
_audit_events = cast(sa.Table, AuditEvent.__table__)
# one row per C-STORE: a Core INSERT, about half a millisecond cheaper than the
# ORM's unit of work for the same row (docs/receiver.md)
_INSERT_AUDIT = sa.insert(_audit_events)


def _rowcount(result: sa.Result[Any]) -> int:
    return int(cast(sa.CursorResult[Any], result).rowcount)


def _check_uid(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidUID(f"{name} is empty")
    if len(value) > UID_LENGTH:
        raise InvalidUID(f"{name} is longer than {UID_LENGTH} characters")
    return value


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def _int(value: object) -> int | None:
    """An IS value (or an int) as ``int``; anything unparsable as ``None``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        try:
            number = float(str(value).strip())
        except ValueError:
            return None
        return int(number) if number.is_integer() else None


@functools.lru_cache(maxsize=None)
def _insert_ignore_stmt(dialect: str, table: sa.Table, key: str) -> Any:
    # built once: values travel as parameters, so the statement is compiled once
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])
    return None


def _insert_ignore(session: Session, table: sa.Table, values: dict[str, Any], key: str) -> bool:
    """Insert ``values`` unless a row with the same unique ``key`` exists; ``True`` if inserted."""
    stmt = _insert_ignore_stmt(session.get_bind().dialect.name, table, key)
    if stmt is None:  # pragma: no cover - only SQLite and PostgreSQL are supported
        try:
            with session.begin_nested():
                session.execute(sa.insert(table), values)
            return True
        except sa.exc.IntegrityError:
            return False
    return bool(_rowcount(session.execute(stmt, values)))


def _later(column: sa.ColumnElement[Any], now: Any) -> sa.ColumnElement[Any]:
    """SQL for ``max(column, now)``, portable to SQLite and PostgreSQL."""
    value = now if isinstance(now, sa.BindParameter) else sa.literal(now, column.type)
    return sa.case((column < value, value), else_=column)


_B_ID: sa.BindParameter[Any] = sa.bindparam("b_id")
_B_NOW = sa.bindparam("b_now", type_=UTCDateTime())
_SELECT_STUDY = (
    sa.select(_studies.c.id, _studies.c.state, *(_studies.c[k] for k in STUDY_ATTRS))
    .where(_studies.c.study_instance_uid == sa.bindparam("b_uid"))
    .with_for_update()
)
_SELECT_SERIES = sa.select(
    _series.c.id, _series.c.study_id, *(_series.c[k] for k in SERIES_ATTRS)
).where(_series.c.series_instance_uid == sa.bindparam("b_uid"))
_SELECT_INSTANCE = (
    sa.select(_instances.c.id, _instances.c.series_id, _instances.c.sha256, _instances.c.version)
    .where(_instances.c.sop_instance_uid == sa.bindparam("b_uid"))
    .with_for_update()
)
# the common case of record_instance, prepared once
_TOUCH_SERIES_NEW = (
    sa.update(_series)
    .where(_series.c.id == _B_ID)
    .values(
        instance_count=_series.c.instance_count + 1,
        last_received_at=_later(_series.c.last_received_at, _B_NOW),
    )
)
_TOUCH_SERIES = (
    sa.update(_series)
    .where(_series.c.id == _B_ID)
    .values(last_received_at=_later(_series.c.last_received_at, _B_NOW))
)
_TOUCH_STUDY = (
    sa.update(_studies)
    .where(_studies.c.id == _B_ID)
    .values(last_received_at=_later(_studies.c.last_received_at, _B_NOW))
)


def _upsert_study(
    session: Session, study_uid: str, attrs: dict[str, str | None], now: datetime
) -> tuple[int, StudyState, dict[str, Any]]:
    """The study's id and state, creating the row if needed; and the gaps to fill.

    The row is read ``FOR UPDATE``: recordings of one study take their row locks
    in one order (study, series, instance) and so never deadlock each other.
    """
    values = {k: _text(attrs.get(k)) for k in STUDY_ATTRS}
    params = {"b_uid": study_uid}
    row = session.execute(_SELECT_STUDY, params).one_or_none()
    if row is None:
        _insert_ignore(
            session,
            _studies,
            {
                "study_instance_uid": study_uid,
                **values,
                "state": StudyState.RECEIVING,
                "forced": False,
                "amendment": 0,
                "first_received_at": now,
                "last_received_at": now,
            },
            "study_instance_uid",
        )
        row = session.execute(_SELECT_STUDY, params).one()
    # the first value received wins; later instances only fill gaps
    fill = {k: v for k, v in values.items() if v is not None and getattr(row, k) is None}
    return int(row.id), StudyState(row.state), fill


def _upsert_series(
    session: Session, study_id: int, series_uid: str, attrs: dict[str, object], now: datetime
) -> tuple[int, dict[str, Any]]:
    """The series' id, creating the row if needed; and the gaps to fill."""
    values: dict[str, Any] = {
        "modality": _text(attrs.get("modality")),
        "series_number": _int(attrs.get("series_number")),
        "series_description": _text(attrs.get("series_description")),
        "body_part_examined": _text(attrs.get("body_part_examined")),
        "frame_of_reference_uid": _text(attrs.get("frame_of_reference_uid")),
    }
    params = {"b_uid": series_uid}
    row = session.execute(_SELECT_SERIES, params).one_or_none()
    if row is None:
        _insert_ignore(
            session,
            _series,
            {
                "study_id": study_id,
                "series_instance_uid": series_uid,
                **values,
                "instance_count": 0,
                "last_received_at": now,
            },
            "series_instance_uid",
        )
        row = session.execute(_SELECT_SERIES, params).one()
    if row.study_id != study_id:
        raise StorageError("the series UID is already indexed under another study")
    fill = {k: v for k, v in values.items() if v is not None and getattr(row, k) is None}
    return int(row.id), fill


def _fill(table: sa.Table, values: dict[str, Any]) -> dict[str, Any]:
    return {k: sa.func.coalesce(table.c[k], v) for k, v in values.items()}


def record_instance(
    *,
    session: Session,
    stored: StoredFile,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    sop_class_uid: str,
    transfer_syntax_uid: str,
    calling_ae: str | None,
    peer: str | None,
    study_attrs: dict[str, str | None],
    series_attrs: dict[str, object],
    now: datetime,
) -> Outcome:
    """Index one stored instance: upsert its study and series, insert or update its row.

    Parameters
    ----------
    session
        The caller's session; the caller commits (and only then acknowledges).
    stored
        What :meth:`storage.store.InstanceStore.put` returned for the bytes.
    study_uid, series_uid, sop_uid, sop_class_uid, transfer_syntax_uid
        The instance's UIDs, at most 64 characters each.
    calling_ae, peer
        Who sent it (calling AE title, ``host:port`` or address).
    study_attrs
        ``patient_id``, ``patient_name``, ``accession_number``, ``study_date``
        (DA as received), ``study_description``. The first non-empty value
        received for a study is kept; later instances only fill gaps.
    series_attrs
        ``modality``, ``series_number`` (int or IS string; unparsable = none),
        ``series_description``, ``body_part_examined``,
        ``frame_of_reference_uid``; same rule.
    now
        The time of receipt, timezone-aware.

    Returns
    -------
    str
        ``"new"`` (a row was inserted), ``"duplicate"`` (the same UID with the
        same bytes is already indexed in this series: nothing changes, not even
        ``last_received_at``) or ``"new_version"`` (the same UID with different
        bytes, or re-sent under another series: the row now points to the new
        file and counts move with it; the caller audits it). After ``"new"`` or
        ``"new_version"`` a complete study becomes ``amended`` (``amendment + 1``,
        ``completed_at`` cleared).

    Raises
    ------
    InvalidUID
        When a UID is empty or too long (nothing is written).
    StorageError
        When the series UID is already indexed under another study.
    """
    _check_uid("Study Instance UID", study_uid)
    _check_uid("Series Instance UID", series_uid)
    _check_uid("SOP Instance UID", sop_uid)
    _check_uid("SOP Class UID", sop_class_uid)
    _check_uid("Transfer Syntax UID", transfer_syntax_uid)

    study_id, state, study_fill = _upsert_study(session, study_uid, study_attrs, now)
    series_id, series_fill = _upsert_series(session, study_id, series_uid, series_attrs, now)

    row_values = {
        "series_id": series_id,
        "sop_class_uid": sop_class_uid,
        "transfer_syntax_uid": transfer_syntax_uid,
        "path": stored.relpath,
        "sha256": stored.sha256,
        "size_bytes": stored.size,
        "received_at": now,
        "calling_ae": calling_ae,
        "peer_address": peer,
    }
    outcome: Outcome
    series_values = _fill(_series, series_fill)
    if _insert_ignore(
        session,
        _instances,
        {"sop_instance_uid": sop_uid, "version": 1, **row_values},
        "sop_instance_uid",
    ):
        outcome = "new"
        series_values["instance_count"] = _series.c.instance_count + 1
    else:
        existing = session.execute(_SELECT_INSTANCE, {"b_uid": sop_uid}).one()
        if existing.sha256 == stored.sha256 and existing.series_id == series_id:
            outcome = "duplicate"
        else:
            outcome = "new_version"
            session.execute(
                sa.update(_instances)
                .where(_instances.c.id == existing.id)
                .values(version=max(existing.version + 1, stored.version), **row_values)
            )
            if existing.series_id != series_id:
                # the UID was re-sent under another series: the count moves with it
                session.execute(
                    sa.update(_series)
                    .where(_series.c.id == existing.series_id)
                    .values(instance_count=_series.c.instance_count - 1)
                )
                series_values["instance_count"] = _series.c.instance_count + 1

    study_values = _fill(_studies, study_fill)
    amended = outcome != "duplicate" and state is StudyState.COMPLETE
    if amended:
        study_values.update(
            state=StudyState.AMENDED, amendment=_studies.c.amendment + 1, completed_at=None
        )
    touch = {"b_id": series_id, "b_now": now}
    if outcome != "duplicate":
        # the common case runs prepared statements; gaps to fill add one more
        counted = "instance_count" in series_values
        series_values.pop("instance_count", None)
        session.execute(_TOUCH_SERIES_NEW if counted else _TOUCH_SERIES, touch)
        session.execute(_TOUCH_STUDY, {"b_id": study_id, "b_now": now})
    if series_values:
        session.execute(sa.update(_series).where(_series.c.id == series_id).values(series_values))
    if study_values:
        session.execute(sa.update(_studies).where(_studies.c.id == study_id).values(study_values))
    if amended:
        logger.info(
            "study amended: instances arrived after completion", extra={"study_uid": study_uid}
        )
    return outcome


class AuditFields(TypedDict, total=False):
    """The optional columns of an audit event: who, about what, and why."""

    calling_ae: str | None
    called_ae: str | None
    peer: str | None
    study_uid: str | None
    series_uid: str | None
    sop_uid: str | None
    detail: str | None


def _audit_row(kind: str, outcome: str, now: datetime | None, fields: AuditFields) -> dict[str, Any]:
    """Every column of one audit event (those not given are ``None``)."""
    row: dict[str, Any] = dict.fromkeys(AuditFields.__optional_keys__)
    row.update(fields)
    row.update(at=now or utcnow(), kind=kind, outcome=outcome)
    return row


def add_audit_event(
    *, session: Session, kind: str, outcome: str, now: datetime | None = None, **fields: Unpack[AuditFields]
) -> None:
    """Add one event to the audit trail (who sent what, when, with which outcome).

    Parameters
    ----------
    kind
        ``association``, ``store``, ``echo``, ``reject``, ``study_complete``,
        ``new_version``, ...
    outcome
        A DIMSE status such as ``"0x0000"``, or a short word (``"accepted"``).
    now
        The time of the event; the current time when ``None``.
    **fields
        The :class:`AuditFields`: ``calling_ae``, ``called_ae``, ``peer``,
        ``study_uid``, ``series_uid``, ``sop_uid``, ``detail``.
    """
    session.add(AuditEvent(**_audit_row(kind, outcome, now, fields)))


def insert_audit_event(
    *, session: Session, kind: str, outcome: str, now: datetime | None = None, **fields: Unpack[AuditFields]
) -> None:
    """:func:`add_audit_event`, inserted now with a Core ``INSERT`` (the hot path).

    The same row in the same transaction, but written at once instead of at the
    next flush, without the ORM's unit of work: about half a millisecond less per
    C-STORE on the shared VM (docs/receiver.md). A value the column cannot take
    (a naive ``now``) raises here rather than at the flush.
    """
    session.execute(_INSERT_AUDIT, _audit_row(kind, outcome, now, fields))


def audit_events(
    *, session: Session, study_uid: str | None = None, kind: str | None = None, limit: int = 1000
) -> list[AuditEvent]:
    """The newest audit events first, optionally of one study and/or one kind."""
    stmt = sa.select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if study_uid is not None:
        stmt = stmt.where(AuditEvent.study_uid == study_uid)
    if kind is not None:
        stmt = stmt.where(AuditEvent.kind == kind)
    return list(session.scalars(stmt))


def get_study(*, session: Session, study_uid: str) -> Study | None:
    """The study with Study Instance UID ``study_uid``, or ``None``."""
    return session.scalars(
        sa.select(Study)
        .where(Study.study_instance_uid == study_uid)
        .execution_options(populate_existing=True)
    ).one_or_none()


def open_studies(*, session: Session) -> list[Study]:
    """Studies the assembler still watches (``receiving`` or ``amended``), oldest first."""
    return list(
        session.scalars(
            sa.select(Study)
            .where(Study.state.in_([StudyState.RECEIVING, StudyState.AMENDED]))
            .order_by(Study.first_received_at, Study.id)
            .execution_options(populate_existing=True)
        )
    )


def series_of(*, session: Session, study_id: int) -> list[Series]:
    """The series of a study, by Series Number (series without one last)."""
    return list(
        session.scalars(
            sa.select(Series)
            .where(Series.study_id == study_id)
            .order_by(Series.series_number.is_(None), Series.series_number, Series.id)
            .execution_options(populate_existing=True)
        )
    )


def mark_study_complete(
    *,
    session: Session,
    study_id: int,
    forced: bool,
    now: datetime,
    unless_received_after: datetime | None = None,
) -> bool:
    """Mark a study complete (``forced``: by the forced timeout, still receiving).

    Parameters
    ----------
    unless_received_after
        The study's ``last_received_at`` the caller based its decision on. When
        given, the study is completed only if nothing arrived since (on
        PostgreSQL an instance may be committed between the caller's read and
        this update); otherwise it stays open and ``False`` is returned.

    Returns
    -------
    bool
        Whether the study was marked complete.

    Raises
    ------
    StorageError
        When there is no study with that id.
    """
    condition = [Study.id == study_id]
    if unless_received_after is not None:
        condition.append(Study.last_received_at <= unless_received_after)
    # ORM-enabled update: Study objects already in this session see the new state
    done = _rowcount(
        session.execute(
            sa.update(Study)
            .where(*condition)
            .values(state=StudyState.COMPLETE, forced=forced, completed_at=now),
            execution_options={"synchronize_session": "fetch"},
        )
    )
    if done:
        return True
    if session.scalar(sa.select(Study.id).where(Study.id == study_id)) is None:
        raise StorageError(f"no study with id {study_id}")
    return False


def instances_of_study(*, session: Session, study_uid: str) -> list[Instance]:
    """The instances of a study, by series (Series Number) then by arrival."""
    return list(
        session.scalars(
            sa.select(Instance)
            .join(Series, Instance.series_id == Series.id)
            .join(Study, Series.study_id == Study.id)
            .where(Study.study_instance_uid == study_uid)
            .order_by(Series.series_number.is_(None), Series.series_number, Series.id, Instance.id)
            .execution_options(populate_existing=True)
        )
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def study_summaries(*, session: Session, limit: int | None = None) -> list[dict[str, Any]]:
    """What ``dicom-node status`` shows: studies (newest first) with their series.

    No patient identifiers are included. Times are ISO 8601 strings (UTC), so
    that the result can be written as JSON as it is.

    Returns
    -------
    list of dict
        Keys ``study_instance_uid``, ``state``, ``forced``, ``amendment``,
        ``study_date``, ``study_description``, ``series_count``,
        ``instance_count``, ``first_received_at``, ``last_received_at``,
        ``completed_at``, ``series``: a list of dicts with
        ``series_instance_uid``, ``series_number``, ``series_description``,
        ``modality``, ``instance_count``, ``last_received_at``; ``routing``: the
        stored routing decision (JSON, as the router wrote it) or ``None``; and
        ``jobs``: the study's jobs (oldest first), dicts with ``id``,
        ``pipeline``, ``model_version``, ``amendment``, ``state``, ``attempts``,
        ``error``.
    """
    stmt = sa.select(Study).order_by(Study.last_received_at.desc(), Study.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    studies = list(session.scalars(stmt.execution_options(populate_existing=True)))
    by_study: dict[int, list[Series]] = {s.id: [] for s in studies}
    if studies:
        for series in session.scalars(
            sa.select(Series)
            .where(Series.study_id.in_(list(by_study)))
            .order_by(Series.series_number.is_(None), Series.series_number, Series.id)
            .execution_options(populate_existing=True)
        ):
            by_study[series.study_id].append(series)
    jobs_of: dict[int, list[dict[str, Any]]] = {s.id: [] for s in studies}
    if studies:
        for job in session.scalars(
            sa.select(Job)
            .where(Job.study_id.in_(list(jobs_of)))
            .order_by(Job.id)
            .execution_options(populate_existing=True)
        ):
            jobs_of[job.study_id].append(
                {
                    "id": job.id,
                    "pipeline": job.pipeline,
                    "model_version": job.model_version,
                    "amendment": job.amendment,
                    "state": job.state.value,
                    "attempts": job.attempts,
                    "error": job.error,
                }
            )
    out: list[dict[str, Any]] = []
    for study in studies:
        series_list = by_study[study.id]
        out.append(
            {
                "study_instance_uid": study.study_instance_uid,
                "state": study.state.value,
                "forced": study.forced,
                "amendment": study.amendment,
                "study_date": study.study_date,
                "study_description": study.study_description,
                "series_count": len(series_list),
                "instance_count": sum(s.instance_count for s in series_list),
                "first_received_at": _iso(study.first_received_at),
                "last_received_at": _iso(study.last_received_at),
                "completed_at": _iso(study.completed_at),
                "series": [
                    {
                        "series_instance_uid": s.series_instance_uid,
                        "series_number": s.series_number,
                        "series_description": s.series_description,
                        "modality": s.modality,
                        "instance_count": s.instance_count,
                        "last_received_at": _iso(s.last_received_at),
                    }
                    for s in series_list
                ],
                "routing": study.routing or None,
                "jobs": jobs_of[study.id],
            }
        )
    return out
