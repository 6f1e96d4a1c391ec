"""Repository functions for jobs and their results: the pipeline queue in the database.

The state machine (DESIGN.md)::

    pending ──claim──► running ──finish──► succeeded
                          │
                          └──fail──► failed ──(retry_at reached)──claim──► running ...
                                        └──(no retry left)──► dead

A job is one pipeline (at one model version) run on one amendment of a study;
the unique key ``(study_id, pipeline, model_version, amendment)`` makes
enqueueing idempotent. :func:`claim_job` hands each due job to exactly one
worker: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (several worker hosts), the
write lock on SQLite. All functions take ``session`` keyword-only and never
commit.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.errors import StorageError
from storage.models import Job, JobState, Result, ResultKind

__all__ = [
    "add_result",
    "claim_job",
    "enqueue_job",
    "fail_job",
    "finish_job",
    "list_jobs",
    "requeue_stale_jobs",
    "results_of_job",
]

logger = logging.getLogger(__name__)

_jobs = cast(sa.Table, Job.__table__)
_results = cast(sa.Table, Result.__table__)


def _rowcount(result: sa.Result[Any]) -> int:
    return int(cast(sa.CursorResult[Any], result).rowcount)


def _insert(session: Session, table: sa.Table) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise StorageError(f"unsupported database {dialect!r}")  # pragma: no cover


def enqueue_job(
    *,
    session: Session,
    study_id: int,
    pipeline: str,
    model_version: str,
    amendment: int,
    now: datetime,
    priority: int = 0,
) -> tuple[Job, bool]:
    """Queue ``pipeline`` for one amendment of a study, unless it is queued already.

    Returns
    -------
    tuple of (Job, bool)
        The job, and whether it was created by this call.
    """
    stmt = (
        _insert(session, _jobs)
        .values(
            study_id=study_id,
            pipeline=pipeline,
            model_version=model_version,
            amendment=amendment,
            state=JobState.PENDING,
            attempts=0,
            priority=priority,
            not_before=now,
        )
        .on_conflict_do_nothing(
            index_elements=["study_id", "pipeline", "model_version", "amendment"]
        )
    )
    created = bool(_rowcount(session.execute(stmt)))
    job = session.scalars(
        sa.select(Job)
        .where(
            Job.study_id == study_id,
            Job.pipeline == pipeline,
            Job.model_version == model_version,
            Job.amendment == amendment,
        )
        .execution_options(populate_existing=True)
    ).one()
    return job, created


def claim_job(
    *,
    session: Session,
    worker: str,
    now: datetime,
    pipelines: Collection[str] | None = None,
) -> Job | None:
    """Take the most urgent due job (pending, or failed and due for a retry) for ``worker``.

    The job becomes ``running`` with ``attempts + 1``; ``None`` when nothing is due.
    Highest ``priority`` first, then oldest.
    """
    due = sa.or_(Job.not_before.is_(None), Job.not_before <= now)
    query = (
        sa.select(Job.id)
        .where(Job.state.in_([JobState.PENDING, JobState.FAILED]), due)
        .order_by(Job.priority.desc(), Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if pipelines is not None:
        query = query.where(Job.pipeline.in_(list(pipelines)))
    job_id = session.scalar(query)
    if job_id is None:
        return None
    taken = _rowcount(
        session.execute(
            sa.update(_jobs)
            .where(_jobs.c.id == job_id, _jobs.c.state.in_([JobState.PENDING, JobState.FAILED]))
            .values(
                state=JobState.RUNNING,
                attempts=_jobs.c.attempts + 1,
                started_at=now,
                finished_at=None,
                worker=worker,
            )
        )
    )
    if not taken:  # pragma: no cover - only with a database that ignores the row lock
        return None
    return session.scalars(
        sa.select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    ).one()


def _transition(
    session: Session, job_id: int, values: dict[str, Any], *, from_states: list[JobState]
) -> None:
    done = _rowcount(
        session.execute(
            sa.update(Job).where(Job.id == job_id, Job.state.in_(from_states)).values(values),
            execution_options={"synchronize_session": "fetch"},
        )
    )
    if not done:
        state = session.scalar(sa.select(_jobs.c.state).where(_jobs.c.id == job_id))
        raise StorageError(
            f"job {job_id} is {state.value if state else 'missing'}, "
            f"not {'/'.join(s.value for s in from_states)}"
        )


def finish_job(*, session: Session, job_id: int, now: datetime) -> None:
    """A running job succeeded.

    Raises
    ------
    StorageError
        When the job is not running (e.g. it was requeued as stale meanwhile).
    """
    _transition(
        session,
        job_id,
        {"state": JobState.SUCCEEDED, "finished_at": now, "error": None},
        from_states=[JobState.RUNNING],
    )


def fail_job(
    *, session: Session, job_id: int, error: str, now: datetime, retry_at: datetime | None
) -> JobState:
    """A running job failed: retry it at ``retry_at``, or give up (``dead``) when ``None``.

    Returns
    -------
    JobState
        ``failed`` (will be claimed again from ``retry_at``) or ``dead``.
    """
    state = JobState.FAILED if retry_at is not None else JobState.DEAD
    _transition(
        session,
        job_id,
        {"state": state, "finished_at": now, "error": error, "not_before": retry_at},
        from_states=[JobState.RUNNING],
    )
    return state


def requeue_stale_jobs(*, session: Session, started_before: datetime, now: datetime) -> int:
    """Running jobs whose worker vanished (started before ``started_before``) become due again."""
    return _rowcount(
        session.execute(
            sa.update(_jobs)
            .where(_jobs.c.state == JobState.RUNNING, _jobs.c.started_at < started_before)
            .values(state=JobState.FAILED, error="worker lost", not_before=now, finished_at=now)
        )
    )


def list_jobs(
    *,
    session: Session,
    state: JobState | None = None,
    study_id: int | None = None,
    limit: int = 100,
) -> list[Job]:
    """Jobs, newest first, optionally in one state or of one study (for ``dicom-node jobs``)."""
    query = sa.select(Job).order_by(Job.id.desc()).limit(limit)
    if state is not None:
        query = query.where(Job.state == state)
    if study_id is not None:
        query = query.where(Job.study_id == study_id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def add_result(
    *,
    session: Session,
    job_id: int,
    sop_instance_uid: str,
    sop_class_uid: str,
    kind: ResultKind,
    path: str,
    sha256: str,
    now: datetime,
) -> Result:
    """Record a result object; a re-run that makes the same SOP Instance UID replaces it."""
    values = {
        "job_id": job_id,
        "sop_class_uid": sop_class_uid,
        "kind": kind,
        "path": path,
        "sha256": sha256,
        "created_at": now,
    }
    stmt = (
        _insert(session, _results)
        .values(sop_instance_uid=sop_instance_uid, **values)
        .on_conflict_do_update(index_elements=["sop_instance_uid"], set_=values)
    )
    session.execute(stmt)
    return session.scalars(
        sa.select(Result)
        .where(Result.sop_instance_uid == sop_instance_uid)
        .execution_options(populate_existing=True)
    ).one()


def results_of_job(*, session: Session, job_id: int) -> list[Result]:
    """The result objects recorded for a job."""
    return list(
        session.scalars(
            sa.select(Result)
            .where(Result.job_id == job_id)
            .order_by(Result.id)
            .execution_options(populate_existing=True)
        )
    )
