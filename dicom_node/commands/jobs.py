"""``dicom-node jobs``: the job queue, and each study's routing decision."""

from __future__ import annotations

import argparse
import json
from typing import Any

import sqlalchemy as sa

from dicom_node.cli import settings_from_args

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from storage.db import open_database
    from storage.jobs import list_jobs
    from storage.models import JobState, Study

    settings = settings_from_args(args)
    with open_database(settings.resolved_database_url) as sessions:
        with sessions() as session:
            state = JobState(args.state) if args.state else None
            jobs = list_jobs(session=session, state=state, limit=args.limit)
            uids = dict(session.execute(sa.select(Study.id, Study.study_instance_uid)
                                         .where(Study.id.in_({j.study_id for j in jobs}))).all())
            rows = [
                {
                    "id": j.id, "study_instance_uid": uids.get(j.study_id), "pipeline": j.pipeline,
                    "model_version": j.model_version, "amendment": j.amendment, "state": j.state.value,
                    "attempts": j.attempts, "priority": j.priority, "worker": j.worker, "error": j.error,
                    "started_at": j.started_at.isoformat() if j.started_at else None,
                    "finished_at": j.finished_at.isoformat() if j.finished_at else None,
                }
                for j in jobs
            ]
            routing = {
                uid: decision for uid, decision in session.execute(
                    sa.select(Study.study_instance_uid, Study.routing).where(Study.routing.is_not(None))
                    .order_by(Study.id.desc()).limit(args.limit)
                )
            } if args.routing else {}
    if args.json:
        print(json.dumps({"jobs": rows, "routing": routing}, indent=2))
        return 0
    if not rows:
        print("no jobs")
    for row in rows:
        error = f"  {row['error']}" if row["error"] else ""
        print(f"#{row['id']:<5} {row['state']:<9} {row['pipeline']:<4} v{row['model_version']:<8} "
              f"amendment {row['amendment']}  attempts {row['attempts']}  {row['study_instance_uid']}{error}")
    for uid, decision in routing.items():
        print(f"\nstudy {uid}: {decision.get('outcome')} (amendment {decision.get('amendment')})")
        for reason in decision.get("reasons", []):
            print(f"    {reason}")
    return 0


def register(sub: Any) -> None:
    """Add the ``jobs`` sub-command."""
    parser = sub.add_parser("jobs", help="the job queue (and, with --routing, the routing decisions)")
    parser.add_argument("--state", choices=[s for s in ("pending", "running", "succeeded", "failed", "dead")],
                        default=None, help="only jobs in this state")
    parser.add_argument("--limit", type=int, default=50, help="at most this many (newest first)")
    parser.add_argument("--routing", action="store_true", help="also print each study's routing decision")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_run)
