"""``dicom-node resend``: put deliveries back in the outbox (one study, dead letters, one row).

The rows become ``pending`` with no attempts; the running node's delivery worker
sends them on its next pass. ``--send`` sends them from this process instead,
until nothing is due (when no node is running).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dicom_node.cli import settings_from_args

if TYPE_CHECKING:  # imported when needed: the CLI starts faster
    from sqlalchemy.orm import Session, sessionmaker

    from config.settings import Settings


def _run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    from dicom_node.delivery.outbox import dead_delivery_ids, delivery_ids_of_study
    from storage.deliveries import resend
    from storage.db import open_database

    now = datetime.now(timezone.utc)
    with open_database(settings.resolved_database_url) as sessions:
        with sessions() as session:
            if args.study:
                ids = delivery_ids_of_study(
                    session=session, study_uid=args.study, destination=args.destination
                )
            elif args.all_dead:
                ids = dead_delivery_ids(session=session, destination=args.destination)
            else:
                ids = list(args.delivery)
            count = resend(session=session, delivery_ids=ids, now=now)
            session.commit()
        skipped = len(ids) - count
        print(f"resend: {count} deliveries queued again"
              + (f" ({skipped} skipped: missing or being sent)" if skipped else ""))
        if count == 0:
            print("resend: nothing to send again", file=sys.stderr)
            return 1
        if args.send:
            return _send_now(settings, sessions, ids)
    return 0


def _send_now(settings: Settings, sessions: sessionmaker[Session], ids: list[int]) -> int:
    """Send due deliveries from this process until none is due; 0 if all of ``ids`` arrived."""
    import sqlalchemy as sa

    from dicom_node.delivery.worker import DeliveryWorker
    from dicom_node.server import store_root
    from storage.models import Delivery, DeliveryState
    from storage.store import InstanceStore

    worker = DeliveryWorker(settings, sessions, InstanceStore(store_root(settings)))
    total = 0
    while True:
        handled = worker.run_once()
        total += handled
        if handled == 0:
            break
    with sessions() as session:
        states = dict(
            session.execute(
                sa.select(Delivery.state, sa.func.count())
                .where(Delivery.id.in_(ids))
                .group_by(Delivery.state)
            ).all()
        )
    waiting = states.get(DeliveryState.FAILED, 0) + states.get(DeliveryState.PENDING, 0)
    print(f"resend: {total} attempts; delivered {states.get(DeliveryState.DELIVERED, 0)}, "
          f"waiting for a retry {waiting}, dead {states.get(DeliveryState.DEAD, 0)}")
    return 0 if waiting == 0 and states.get(DeliveryState.DEAD, 0) == 0 else 1


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "resend",
        help="send results again: one study, all dead deliveries, or given deliveries",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--study", metavar="UID", help="every delivery of this study's results")
    which.add_argument("--all-dead", action="store_true", help="every dead delivery")
    which.add_argument("--delivery", metavar="ID", type=int, nargs="+",
                       help="these delivery ids")
    parser.add_argument("--destination", metavar="NAME", default=None,
                        help="only deliveries to this destination (with --study/--all-dead)")
    parser.add_argument("--send", action="store_true",
                        help="send now from this process instead of leaving it to the node")
    parser.set_defaults(func=_run)
