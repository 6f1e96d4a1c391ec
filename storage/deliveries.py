"""Repository functions for deliveries: results on their way to destinations (the outbox).

The state machine::

    pending ──claim──► sending ──delivered──► delivered
                          │
                          └──failed──► failed ──(next_attempt_at reached)──claim──► sending ...
                                          └──(no retry left)──► dead ──resend──► pending

One row per (result, destination). When a re-run replaces a result (same SOP
Instance UID), :func:`enqueue_delivery` puts the row back to ``pending`` so the
new bytes are sent. All functions take ``session`` keyword-only and never
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
from storage.models import Delivery, DeliveryState

__all__ = [
    "claim_deliveries",
    "deliveries_of_result",
    "enqueue_delivery",
    "mark_delivered",
    "mark_delivery_failed",
    "requeue_stale_deliveries",
    "resend",
]

logger = logging.getLogger(__name__)

_deliveries = cast(sa.Table, Delivery.__table__)
_DUE_STATES = [DeliveryState.PENDING, DeliveryState.FAILED]


def _rowcount(result: sa.Result[Any]) -> int:
    return int(cast(sa.CursorResult[Any], result).rowcount)


def enqueue_delivery(
    *, session: Session, result_id: int, destination: str, now: datetime
) -> Delivery:
    """Queue a result for ``destination`` (a name from the settings), due now.

    An existing row for the pair is reset to ``pending`` with no attempts: the
    result's bytes may have changed (a re-run replaced it).
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        insert: Any = postgresql.insert(_deliveries)
    elif dialect == "sqlite":
        insert = sqlite.insert(_deliveries)
    else:  # pragma: no cover
        raise StorageError(f"unsupported database {dialect!r}")
    reset = {
        "state": DeliveryState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "delivered_at": None,
    }
    session.execute(
        insert.values(result_id=result_id, destination=destination, **reset).on_conflict_do_update(
            index_elements=["result_id", "destination"], set_=reset
        )
    )
    return session.scalars(
        sa.select(Delivery)
        .where(Delivery.result_id == result_id, Delivery.destination == destination)
        .execution_options(populate_existing=True)
    ).one()


def claim_deliveries(
    *,
    session: Session,
    now: datetime,
    destination: str | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """Take due deliveries (pending, or failed and due for a retry): they become ``sending``.

    Oldest first; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so that several
    senders never take the same row.
    """
    due = sa.or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now)
    query = (
        sa.select(Delivery.id)
        .where(Delivery.state.in_(_DUE_STATES), due)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if destination is not None:
        query = query.where(Delivery.destination == destination)
    ids = list(session.scalars(query))
    if not ids:
        return []
    session.execute(
        sa.update(_deliveries)
        .where(_deliveries.c.id.in_(ids), _deliveries.c.state.in_(_DUE_STATES))
        .values(state=DeliveryState.SENDING, attempts=_deliveries.c.attempts + 1)
    )
    return list(
        session.scalars(
            sa.select(Delivery)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.id)
            .execution_options(populate_existing=True)
        )
    )


def _transition(
    session: Session, delivery_id: int, values: dict[str, Any], from_states: list[DeliveryState]
) -> None:
    done = _rowcount(
        session.execute(
            sa.update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.state.in_(from_states))
            .values(values),
            execution_options={"synchronize_session": "fetch"},
        )
    )
    if not done:
        raise StorageError(
            f"delivery {delivery_id} is missing or not {'/'.join(s.value for s in from_states)}"
        )


def mark_delivered(*, session: Session, delivery_id: int, now: datetime) -> None:
    """The destination accepted the result."""
    _transition(
        session,
        delivery_id,
        {"state": DeliveryState.DELIVERED, "delivered_at": now, "last_error": None},
        [DeliveryState.SENDING],
    )


def mark_delivery_failed(
    *, session: Session, delivery_id: int, error: str, retry_at: datetime | None
) -> DeliveryState:
    """Sending failed: retry at ``retry_at``, or give up (``dead``) when it is ``None``."""
    state = DeliveryState.FAILED if retry_at is not None else DeliveryState.DEAD
    _transition(
        session,
        delivery_id,
        {"state": state, "next_attempt_at": retry_at, "last_error": error},
        [DeliveryState.SENDING],
    )
    return state


def requeue_stale_deliveries(*, session: Session, now: datetime) -> int:
    """Deliveries left ``sending`` by a process that stopped become due again (start-up)."""
    return _rowcount(
        session.execute(
            sa.update(_deliveries)
            .where(_deliveries.c.state == DeliveryState.SENDING)
            .values(state=DeliveryState.FAILED, next_attempt_at=now, last_error="sender stopped")
        )
    )


def resend(*, session: Session, delivery_ids: Collection[int], now: datetime) -> int:
    """Send again (``dicom-node resend``).

    Any state but ``sending`` becomes ``pending`` with no attempts; returns how many.
    """
    if not delivery_ids:
        return 0
    return _rowcount(
        session.execute(
            sa.update(_deliveries)
            .where(
                _deliveries.c.id.in_(list(delivery_ids)),
                _deliveries.c.state != DeliveryState.SENDING,
            )
            .values(
                state=DeliveryState.PENDING,
                attempts=0,
                next_attempt_at=now,
                last_error=None,
                delivered_at=None,
            )
        )
    )


def deliveries_of_result(*, session: Session, result_id: int) -> list[Delivery]:
    """The deliveries of one result, by destination."""
    return list(
        session.scalars(
            sa.select(Delivery)
            .where(Delivery.result_id == result_id)
            .order_by(Delivery.destination)
            .execution_options(populate_existing=True)
        )
    )
