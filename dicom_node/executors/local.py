"""The embedded executor: a pool of worker threads inside ``serve``.

Each thread claims due jobs from the database (:meth:`JobRunner.process_next`)
until none is left, then sleeps until woken by a completed study or the poll
interval. Models are loaded once (shared :class:`PipelineCache`) and inference is
serialised per device, so the SCP's threads keep answering while a job runs.
Jobs left ``running`` by a dead process are requeued at start, and timed-out
ones on every poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from dicom_node.assembly import StudyCompleted
from dicom_node.executors.base import Executor
from dicom_node.jobs import JobPolicy, JobRunner, route_pending_studies
from dicom_node.routing import parse_rules
from storage.store import InstanceStore

__all__ = ["LocalExecutor"]

logger = logging.getLogger(__name__)


class LocalExecutor(Executor):
    """``settings.workers`` threads running jobs in this process.

    Parameters
    ----------
    settings, session_factory, store
        As for :class:`~dicom_node.jobs.JobRunner`.
    on_results
        Called when a job committed results (wake the delivery worker).
    policy
        Retries and timeout; default ``settings.jobs``.
    poll_seconds
        How long an idle thread sleeps before looking at the queue again.
    """

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        store: InstanceStore,
        *,
        on_results: Callable[[], None] | None = None,
        policy: JobPolicy | None = None,
        poll_seconds: float = 2.0,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.store = store
        self.rules = parse_rules(settings.routing, priorities=settings.jobs.priorities)
        self.runner = JobRunner(settings, session_factory, store, policy=policy,
                                on_results=on_results)
        self.poll_seconds = poll_seconds
        self._wake = threading.Condition()
        self._pending_wake = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._preload: threading.Thread | None = None
        self._route_lock = threading.Lock()

    def on_study_complete(self, event: StudyCompleted) -> None:
        """Wake a worker: it routes the study and runs its jobs.

        Called inside the assembler's transaction, so it must not write to the
        database itself (SQLite has one writer).
        """
        self.wake()

    def wake(self) -> None:
        """Let idle workers look at the queue now."""
        with self._wake:
            self._pending_wake += 1
            self._wake.notify_all()

    def start(self) -> None:
        """Requeue lost jobs, start loading the models (``jobs.preload_models``), start the worker threads."""
        self.runner.recover()
        self._stop.clear()
        if self.settings.jobs.preload_models:
            pipelines = list(dict.fromkeys(rule.pipeline for rule in self.rules))
            self._preload = threading.Thread(target=self.runner.pipelines.preload, args=(pipelines,),
                                             name="model-preload", daemon=True)
            self._preload.start()
        for i in range(self.settings.workers):
            thread = threading.Thread(target=self._loop, name=f"job-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wait_preloaded(self, timeout: float | None = None) -> bool:
        """Wait until the models started at :meth:`start` are loaded; whether they are (``True`` if none)."""
        if self._preload is not None:
            self._preload.join(timeout)
            return not self._preload.is_alive()
        return True

    def stop(self, timeout: float | None = 60.0) -> None:
        """Let running jobs finish (up to ``timeout``), then stop the threads."""
        self._stop.set()
        self.wake()
        for thread in [*self._threads, *([self._preload] if self._preload is not None else [])]:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("a job was still running at stop; it is requeued at the next start")
        self._threads = []
        self._preload = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self._route_lock:
                    route_pending_studies(settings=self.settings, session_factory=self.session_factory,
                                          store=self.store, rules=self.rules)
                self.runner.recover()
                while not self._stop.is_set() and self.runner.process_next() is not None:
                    pass
            except Exception:  # the thread survives a database outage; logged with its cause
                logger.exception("job worker pass failed")
            with self._wake:
                if self._pending_wake == 0 and not self._stop.is_set():
                    self._wake.wait(self.poll_seconds)
                self._pending_wake = 0
