"""Repository functions for routing decisions and single-job recovery.

Small additions beside :mod:`storage.jobs` (which owns the job state machine):
store a study's routing decision, read one job with its study, and put back one
running job whose worker is known to be gone. ``session`` keyword-only; the
caller commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage.models import Job, JobState, Study, StudyState

__all__ = ["get_job", "requeue_job", "running_jobs", "set_study_routing", "studies_to_route", "study_by_id"]


def set_study_routing(*, session: Session, study_id: int, decision: dict[str, Any]) -> None:
    """Record the routing decision (JSON) on the study."""
    session.execute(sa.update(Study).where(Study.id == study_id).values(routing=decision))


def study_by_id(*, session: Session, study_id: int) -> Study | None:
    """The study with primary key ``study_id``, freshly read."""
    return session.scalars(
        sa.select(Study).where(Study.id == study_id).execution_options(populate_existing=True)
    ).one_or_none()


def get_job(*, session: Session, job_id: int) -> Job | None:
    """The job ``job_id``, freshly read."""
    return session.scalars(
        sa.select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    ).one_or_none()


def running_jobs(*, session: Session) -> list[Job]:
    """Every job in state ``running``."""
    return list(
        session.scalars(
            sa.select(Job).where(Job.state == JobState.RUNNING).execution_options(populate_existing=True)
        )
    )


def requeue_job(*, session: Session, job_id: int, error: str, now: datetime) -> bool:
    """A running job whose worker died becomes due again (``failed``); whether it was running."""
    result = session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.state == JobState.RUNNING)
        .values(state=JobState.FAILED, error=error, not_before=now, finished_at=now)
    )
    return bool(cast(sa.CursorResult[Any], result).rowcount)


def studies_to_route(*, session: Session) -> list[tuple[int, int]]:
    """``(study_id, amendment)`` of complete studies whose current amendment has no routing decision."""
    rows = session.execute(
        # (a JSON column may hold JSON null rather than SQL NULL, so the check is made here)
        sa.select(Study.id, Study.amendment, Study.routing).where(Study.state == StudyState.COMPLETE)
    )
    out = []
    for study_id, amendment, routing in rows:
        if not routing or routing.get("amendment") != amendment:
            out.append((int(study_id), int(amendment or 0)))
    return out
