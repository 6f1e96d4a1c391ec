"""SQLAlchemy 2 models of dicom-node's index.

The database indexes what the instance store holds (studies, series,
instances), the work done on it (jobs, results, deliveries) and who sent what
(audit events). Alembic owns the schema: a change here needs a migration in
``storage/migrations/versions`` (``tests/storage/test_migrations.py`` fails
until models and migrations agree).

Conventions
-----------
* Timestamps are timezone-aware UTC on the Python side (:class:`UTCDateTime`);
  a naive datetime is refused rather than guessed.
* States are ``str`` enums stored as their lower-case value in a ``VARCHAR``
  (:class:`StrEnumType`), so that adding a state needs no ``ALTER TYPE``.
* UID columns are ``VARCHAR(64)`` (the DICOM maximum); the audit trail keeps
  whatever arrived, as ``TEXT``, because it records bad input too.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AuditEvent",
    "Base",
    "Delivery",
    "DeliveryState",
    "Instance",
    "Job",
    "JobState",
    "Result",
    "ResultKind",
    "Series",
    "Study",
    "StudyState",
    "UID_LENGTH",
    "utcnow",
]

#: DICOM PS3.5 6.2: a UI value is at most 64 characters.
UID_LENGTH = 64

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamp with time zone``; SQLite stores the naive UTC
    value (it has no time zone type), which is read back as UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: give a timezone-aware UTC time")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


E = TypeVar("E", bound=enum.Enum)


class StrEnumType(sa.types.TypeDecorator[E], Generic[E]):
    """A ``str`` enum stored as its value in a ``VARCHAR(16)``."""

    impl = sa.String(16)
    cache_ok = True

    def __init__(self, enum_cls: type[E], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.enum_cls = enum_cls

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        # validates plain strings too: an unknown state is a bug, not data
        return str(self.enum_cls(value).value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        if value is None:
            return None
        return self.enum_cls(value)

    def copy(self, **kw: Any) -> StrEnumType[E]:
        return StrEnumType(self.enum_cls)


class StudyState(str, enum.Enum):
    """Where a study is in assembly."""

    RECEIVING = "receiving"
    COMPLETE = "complete"
    #: instances arrived after completion; the assembler completes it again
    AMENDED = "amended"


class JobState(str, enum.Enum):
    """The job state machine: pending → running → succeeded | failed → dead."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"


class DeliveryState(str, enum.Enum):
    """A result's way to one destination: pending → sending → delivered | failed → dead."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"


class ResultKind(str, enum.Enum):
    """What a result object is."""

    SEG = "seg"
    SR = "sr"
    PDF = "pdf"
    SC = "sc"


class Base(DeclarativeBase):
    """Declarative base of all dicom-node tables."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class Study(Base):
    """A study as received, with its assembly state."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(sa.String(UID_LENGTH), unique=True)
    patient_id: Mapped[str | None] = mapped_column(sa.Text)
    patient_name: Mapped[str | None] = mapped_column(sa.Text)
    accession_number: Mapped[str | None] = mapped_column(sa.Text)
    #: the Study Date as received (DA, normally ``YYYYMMDD``; not parsed)
    study_date: Mapped[str | None] = mapped_column(sa.Text)
    study_description: Mapped[str | None] = mapped_column(sa.Text)
    state: Mapped[StudyState] = mapped_column(
        StrEnumType(StudyState), default=StudyState.RECEIVING, index=True
    )
    #: completed by the forced timeout while instances were still arriving
    forced: Mapped[bool] = mapped_column(default=False)
    #: 0 = the original; +1 each time instances arrive after completion
    amendment: Mapped[int] = mapped_column(default=0)
    first_received_at: Mapped[datetime]
    last_received_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    #: the routing decision (series → pipeline, with reasons); filled by routing
    routing: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)

    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(Base):
    """A series of a study."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(
        sa.ForeignKey("studies.id", ondelete="CASCADE"), index=True
    )
    series_instance_uid: Mapped[str] = mapped_column(sa.String(UID_LENGTH), unique=True)
    modality: Mapped[str | None] = mapped_column(sa.Text)
    series_number: Mapped[int | None]
    series_description: Mapped[str | None] = mapped_column(sa.Text)
    body_part_examined: Mapped[str | None] = mapped_column(sa.Text)
    frame_of_reference_uid: Mapped[str | None] = mapped_column(sa.Text)
    instance_count: Mapped[int] = mapped_column(default=0)
    last_received_at: Mapped[datetime]

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")


class Instance(Base):
    """A stored SOP instance; ``path`` is relative to the store root."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(
        sa.ForeignKey("series.id", ondelete="CASCADE"), index=True
    )
    sop_instance_uid: Mapped[str] = mapped_column(sa.String(UID_LENGTH), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(sa.String(UID_LENGTH))
    transfer_syntax_uid: Mapped[str] = mapped_column(sa.String(UID_LENGTH))
    path: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    #: 1 = first; a re-sent UID with different bytes is kept as version 2, 3, ...
    version: Mapped[int] = mapped_column(default=1)
    received_at: Mapped[datetime]
    calling_ae: Mapped[str | None] = mapped_column(sa.Text)
    peer_address: Mapped[str | None] = mapped_column(sa.Text)

    series: Mapped[Series] = relationship(back_populates="instances")


class Job(Base):
    """One pipeline run on one amendment of a study."""

    __tablename__ = "jobs"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "pipeline", "model_version", "amendment"),
        sa.Index("ix_jobs_state_not_before", "state", "not_before"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(
        sa.ForeignKey("studies.id", ondelete="CASCADE"), index=True
    )
    pipeline: Mapped[str] = mapped_column(sa.String(64))
    model_version: Mapped[str] = mapped_column(sa.String(64))
    amendment: Mapped[int] = mapped_column(default=0)
    state: Mapped[JobState] = mapped_column(StrEnumType(JobState), default=JobState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    priority: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    worker: Mapped[str | None] = mapped_column(sa.Text)

    study: Mapped[Study] = relationship()
    results: Mapped[list[Result]] = relationship(back_populates="job")


class Result(Base):
    """A DICOM object made by a job (SEG, SR, ...), stored under the store root."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(sa.String(UID_LENGTH), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(sa.String(UID_LENGTH))
    kind: Mapped[ResultKind] = mapped_column(StrEnumType(ResultKind))
    path: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime]

    job: Mapped[Job] = relationship(back_populates="results")
    deliveries: Mapped[list[Delivery]] = relationship(back_populates="result")


class Delivery(Base):
    """One result on its way to one destination."""

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.UniqueConstraint("result_id", "destination"),
        sa.Index("ix_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(sa.ForeignKey("results.id", ondelete="CASCADE"))
    #: the destination's ``name`` in the settings
    destination: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[DeliveryState] = mapped_column(
        StrEnumType(DeliveryState), default=DeliveryState.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    delivered_at: Mapped[datetime | None]

    result: Mapped[Result] = relationship(back_populates="deliveries")


class AuditEvent(Base):
    """Who did what, when, with which outcome.

    ``kind`` is e.g. ``association``, ``store``, ``echo``, ``reject``,
    ``study_complete``, ``new_version``; ``outcome`` a DIMSE status such as
    ``0x0000`` or a short word. UIDs are kept as received (they may be the
    reason for a rejection), so these columns are unbounded text.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    calling_ae: Mapped[str | None] = mapped_column(sa.Text)
    called_ae: Mapped[str | None] = mapped_column(sa.Text)
    peer: Mapped[str | None] = mapped_column(sa.Text)
    study_uid: Mapped[str | None] = mapped_column(sa.Text, index=True)
    series_uid: Mapped[str | None] = mapped_column(sa.Text)
    sop_uid: Mapped[str | None] = mapped_column(sa.Text)
    outcome: Mapped[str] = mapped_column(sa.String(32))
    detail: Mapped[str | None] = mapped_column(sa.Text)
