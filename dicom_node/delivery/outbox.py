"""The outbox seen from the service: queue results for destinations, find deliveries to resend.

Thin additions over :mod:`storage.deliveries` (which owns the state machine): the
queries here join deliveries to their result, job and study, which the storage
functions do not need. Functions take ``session`` keyword-only and never commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from config.settings import Destination
from storage.deliveries import enqueue_delivery
from storage.models import Delivery, DeliveryState, Instance, Job, Result, Series, Study

__all__ = [
    "OutboxItem",
    "dead_delivery_ids",
    "delivery_ids_of_study",
    "enqueue_results",
    "outbox_items",
    "sender_destinations",
]

logger = logging.getLogger(__name__)


def enqueue_results(
    *,
    session: Session,
    result_ids: Iterable[int],
    destinations: Iterable[str | Destination],
    now: datetime,
) -> list[Delivery]:
    """Queue every result for every destination, due ``now``; the caller commits.

    Call it in the transaction that records the results (after their files are
    durable in the store), then :meth:`DeliveryWorker.wake` after the commit. A
    result queued again (a re-run replaced it) is reset to ``pending``.

    Parameters
    ----------
    result_ids
        ``Result.id`` values (see :func:`storage.jobs.add_result`).
    destinations
        Destination names (``Destination.name``) or the destinations themselves,
        usually ``settings.destinations``.
    now
        Timezone-aware UTC.
    """
    names = [d.name if isinstance(d, Destination) else d for d in destinations]
    queued = [
        enqueue_delivery(session=session, result_id=result_id, destination=name, now=now)
        for result_id in result_ids
        for name in names
    ]
    logger.debug("queued %d deliveries", len(queued))
    return queued


@dataclass(frozen=True)
class OutboxItem:
    """A claimed delivery with what sending it needs."""

    delivery_id: int
    attempts: int
    destination: str
    study_uid: str
    sop_instance_uid: str
    path: str
    sha256: str


def _joined() -> sa.Select[int, int, str, str, str, str, str]:
    return (
        sa.select(
            Delivery.id, Delivery.attempts, Delivery.destination, Study.study_instance_uid,
            Result.sop_instance_uid, Result.path, Result.sha256,
        )
        .join(Result, Delivery.result_id == Result.id)
        .join(Job, Result.job_id == Job.id)
        .join(Study, Job.study_id == Study.id)
    )


def outbox_items(*, session: Session, delivery_ids: Iterable[int]) -> list[OutboxItem]:
    """The deliveries ``delivery_ids`` with their study, result file and attempts, by id."""
    ids = list(delivery_ids)
    if not ids:
        return []
    rows = session.execute(_joined().where(Delivery.id.in_(ids)).order_by(Delivery.id))
    return [
        OutboxItem(
            delivery_id=row[0], attempts=row[1], destination=row[2], study_uid=row[3],
            sop_instance_uid=row[4], path=row[5], sha256=row[6],
        )
        for row in rows
    ]


def delivery_ids_of_study(
    *, session: Session, study_uid: str, destination: str | None = None
) -> list[int]:
    """Every delivery of the results of one study (any state), optionally to one destination."""
    query = (
        sa.select(Delivery.id)
        .join(Result, Delivery.result_id == Result.id)
        .join(Job, Result.job_id == Job.id)
        .join(Study, Job.study_id == Study.id)
        .where(Study.study_instance_uid == study_uid)
        .order_by(Delivery.id)
    )
    if destination is not None:
        query = query.where(Delivery.destination == destination)
    return list(session.scalars(query))


def dead_delivery_ids(*, session: Session, destination: str | None = None) -> list[int]:
    """Every dead delivery (the dead letters), optionally to one destination."""
    query = sa.select(Delivery.id).where(Delivery.state == DeliveryState.DEAD).order_by(Delivery.id)
    if destination is not None:
        query = query.where(Delivery.destination == destination)
    return list(session.scalars(query))


def sender_destinations(
    *, session: Session, study_uid: str, destinations: Iterable[Destination]
) -> list[Destination]:
    """The destinations whose AE title sent instances of this study ("return to sender").

    The calling AE titles recorded with the study's instances are matched against
    ``destinations`` (the port a sender listens on is not known from its
    association, so it must be configured as a destination).
    """
    callers = set(
        session.scalars(
            sa.select(Instance.calling_ae)
            .join(Series, Instance.series_id == Series.id)
            .join(Study, Series.study_id == Study.id)
            .where(Study.study_instance_uid == study_uid, Instance.calling_ae.is_not(None))
            .distinct()
        )
    )
    callers = {c.strip() for c in callers if c}
    return [d for d in destinations if d.ae_title in callers]
