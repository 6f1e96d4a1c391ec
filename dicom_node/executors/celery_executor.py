"""The scale-out executor: the same job function as a Celery task.

The database stays the source of truth; a Celery message is only a *doorbell*:
the task ``dicom_node.run_jobs`` claims due jobs from the database
(:meth:`JobRunner.process_next`) until none is left. So a lost, duplicated or
redelivered message can neither lose nor double a job, and retries with backoff
are the job rows' ``not_before`` (the node rings again while jobs are due).

* ``serve`` (``executor: celery``) routes completed studies, queues the jobs and
  rings (:class:`CeleryExecutor`); every ``poll_seconds`` it rings again while
  due jobs wait (retries, lost messages); it also requeues jobs of dead worker
  processes on its host and jobs past the job timeout.
* ``dicom-node worker`` (:func:`run_worker`) runs one worker process per GPU:
  ``acks_late``, prefetch 1, ``task_reject_on_worker_lost``; at start it requeues
  jobs left ``running`` by a dead worker process on the same host (and jobs past
  the job timeout from any host), then rings once.

The Celery app is built from the settings at start (:func:`make_celery`), never at
import time. The broker URL is ``settings.celery_broker_url`` (environment:
``DICOM_NODE_CELERY_BROKER_URL``, like every other key).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from dicom_node.assembly import StudyCompleted
from dicom_node.executors.base import Executor
from dicom_node.jobs import JobPolicy, JobRunner, route_pending_studies
from dicom_node.routing import parse_rules
from storage.models import Job, JobState
from storage.store import InstanceStore

__all__ = ["CeleryExecutor", "TASK_NAME", "broker_url", "make_celery", "run_worker"]

logger = logging.getLogger(__name__)

TASK_NAME = "dicom_node.run_jobs"
QUEUE = "dicom-node"


def broker_url(settings: Settings) -> str:
    """The broker URL: ``settings.celery_broker_url``."""
    return settings.celery_broker_url


def make_celery(settings: Settings, *, broker: str | None = None) -> Celery:
    """A Celery app configured for dicom-node jobs (no result backend)."""
    app = Celery("dicom_node", broker=broker or broker_url(settings), set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=QUEUE,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        # a message whose worker died is delivered again after this long; the
        # job itself is recovered from the database much sooner (see run_worker)
        broker_transport_options={"visibility_timeout": 3600},
    )
    return app


def _due_jobs(session_factory: sessionmaker[Session], now: datetime) -> int:
    with session_factory() as session:
        return int(session.scalar(
            sa.select(sa.func.count(Job.id)).where(
                Job.state.in_([JobState.PENDING, JobState.FAILED]),
                sa.or_(Job.not_before.is_(None), Job.not_before <= now),
            )
        ) or 0)


class CeleryExecutor(Executor):
    """The ``serve`` side: routes studies, queues jobs, rings the workers."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        store: InstanceStore,
        *,
        poll_seconds: float = 5.0,
        app: Celery | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.store = store
        self.rules = parse_rules(settings.routing, priorities=settings.jobs.priorities)
        self.app = app or make_celery(settings)
        self.poll_seconds = poll_seconds
        # only for recovery: jobs of dead worker processes on this host, and timed-out ones
        self.recovery = JobRunner(settings, session_factory, store)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_study_complete(self, event: StudyCompleted) -> None:
        """Wake the router thread (no database writes inside the assembler's transaction)."""
        self._wake.set()

    def ring(self, count: int = 1) -> None:
        """Send ``count`` doorbells to the workers."""
        for _ in range(count):
            self.app.send_task(TASK_NAME, queue=QUEUE)

    def start(self) -> None:
        """Start the router thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="celery-router", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the router thread (jobs keep running on the workers)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                created = route_pending_studies(settings=self.settings, session_factory=self.session_factory,
                                                store=self.store, rules=self.rules)
                self.recovery.recover()
                if created:
                    self.ring(len(created))
                elif _due_jobs(self.session_factory, datetime.now(timezone.utc)):
                    self.ring()
            except Exception:  # the thread survives a broker or database outage; logged with its cause
                logger.exception("celery router pass failed")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()


_runner: JobRunner | None = None


def register_task(app: Celery, runner: JobRunner) -> Any:
    """Register the doorbell task on ``app``, running jobs with ``runner`` (this process's models)."""
    global _runner
    _runner = runner

    @app.task(name=TASK_NAME, acks_late=True, ignore_result=True)
    def run_jobs() -> int:
        assert _runner is not None
        done = 0
        while _runner.process_next() is not None:
            done += 1
        return done

    return run_jobs


def run_worker(settings: Settings, *, concurrency: int = 1, loglevel: str = "INFO",
               policy: JobPolicy | None = None, broker: str | None = None) -> int:
    """Run a Celery worker for dicom-node jobs until stopped (``dicom-node worker``)."""
    from dicom_node.server import store_root
    from storage.db import make_engine, make_session_factory, upgrade

    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    store = InstanceStore(store_root(settings))
    # results and their deliveries are committed here; serve's delivery worker sends them
    runner = JobRunner(settings, sessions, store, policy=policy)
    app = make_celery(settings, broker=broker)
    register_task(app, runner)
    runner.recover()
    if settings.jobs.preload_models:  # before the first doorbell: this process only runs jobs
        rules = parse_rules(settings.routing, priorities=settings.jobs.priorities)
        runner.pipelines.preload(list(dict.fromkeys(rule.pipeline for rule in rules)))
    app.send_task(TASK_NAME, queue=QUEUE)  # look at the queue once now
    try:
        worker = app.Worker(pool="solo", concurrency=concurrency, loglevel=loglevel, queues=[QUEUE],
                            hostname=f"dicom-node-{os.getpid()}@{socket.gethostname()}")
        worker.start()
        return int(getattr(worker, "exitcode", 0) or 0)
    finally:
        engine.dispose()
