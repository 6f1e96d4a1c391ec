"""``dicom-node worker``: a Celery worker running dicom-node jobs (``executor: celery``).

Run one per GPU, with the same configuration as ``serve`` (the shared database and
instance store path). See docs/orchestration.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from dicom_node.cli import settings_from_args
from dicom_node.logs import configure_logging

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.device:
        overrides["device"] = args.device
    settings = settings_from_args(args, **overrides)
    configure_logging(level=args.log_level or settings.log_level, json_format=bool(args.log_json or settings.log_json))
    from dicom_node.executors.celery_executor import run_worker

    return run_worker(settings, loglevel=args.log_level or settings.log_level, broker=args.broker)


def register(sub: Any) -> None:
    """Add the ``worker`` sub-command."""
    parser = sub.add_parser("worker", help="run a Celery worker for dicom-node jobs (executor: celery)")
    parser.add_argument("--broker", default=None,
                        help="broker URL (default: the celery_broker_url setting)")
    parser.add_argument("--device", default=None, help="auto, cpu or cuda[:N] (one worker per GPU)")
    parser.set_defaults(func=_run)
