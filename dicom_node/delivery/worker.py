"""The retry loop: claim due deliveries, send them per study, record what happened.

Each pass (:meth:`DeliveryWorker.run_once`) claims the due rows of the outbox
(pending, or failed and due again), groups them by (study, destination) and
sends each group on one association (:func:`dicom_node.delivery.scu.send_study`,
or STOW-RS when the destination has a ``stow_url``): destinations in parallel, a
destination's studies one after the other. Each row is then marked
delivered, failed with its next attempt time, or dead:

* exponential backoff from ``settings.delivery``: ``backoff_initial_seconds``
  doubled after each attempt, capped at ``backoff_max_seconds``, with jitter
  (80-100 % of that), so that many failed studies do not retry in lock step;
* ``max_attempts`` attempts, then dead (the dead letters; ``dicom-node resend``);
* dead at once when retrying cannot help: the destination is no longer in the
  settings, or the result's file is missing or does not match its checksum.

:meth:`DeliveryWorker.start` first puts rows left ``sending`` by a process that
stopped mid-send back in the queue, then runs passes on a thread until
:meth:`DeliveryWorker.stop`. A C-STORE of the same SOP Instance UID is idempotent
at a PACS, so a row sent just before a crash and sent again is harmless.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from config.settings import DeliverySettings, Destination, Settings
from dicom_node.delivery.outbox import OutboxItem, outbox_items
from dicom_node.delivery.scu import SendReport, send_study
from dicom_node.delivery.stow import send_study_stow
from storage.deliveries import (
    claim_deliveries,
    mark_delivered,
    mark_delivery_failed,
    requeue_stale_deliveries,
)
from storage.errors import StorageError
from storage.store import InstanceStore

__all__ = ["DeliveryWorker", "Sender", "backoff_seconds"]

logger = logging.getLogger(__name__)

#: ``send(destination, paths, settings=..., study_uid=...)``: what the worker calls per group
Sender = Callable[..., SendReport]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def backoff_seconds(attempts: int, policy: DeliverySettings, rng: random.Random) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1-based).

    ``backoff_initial_seconds * 2 ** (attempts - 1)`` capped at
    ``backoff_max_seconds``, times a jitter factor drawn from [0.8, 1.0).
    """
    exponent = min(max(attempts - 1, 0), 62)
    base = min(policy.backoff_max_seconds, policy.backoff_initial_seconds * 2.0**exponent)
    return base * (0.8 + 0.2 * rng.random())


@dataclass(frozen=True)
class _Verdict:
    ok: bool
    error: str | None = None
    retry: bool = True


class DeliveryWorker:
    """Sends the outbox to the destinations, with retries, on a thread or pass by pass.

    Parameters
    ----------
    settings
        Destinations, the retry policy (``settings.delivery``), our AE title and
        network settings.
    session_factory
        One session per unit of work (claim; record one group's outcome).
    store
        Where results' files live (``Result.path`` is relative to its root).
    poll_seconds
        How long the thread sleeps when nothing was due (:meth:`wake` cuts it short).
    batch
        At most this many rows claimed per pass.
    clock
        Returns the current time (timezone-aware UTC) when :meth:`run_once` is
        called without ``now``.
    rng
        The jitter's random numbers (seed it in tests).
    max_parallel_destinations
        Destinations served at the same time in one pass (one thread each), so a
        destination that times out does not hold the others back.
    send
        The C-STORE sender (default :func:`~dicom_node.delivery.scu.send_study`);
        destinations with a ``stow_url`` use
        :func:`~dicom_node.delivery.stow.send_study_stow` instead.
    """

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        store: InstanceStore,
        *,
        poll_seconds: float = 1.0,
        batch: int = 200,
        clock: Callable[[], datetime] = _utcnow,
        rng: random.Random | None = None,
        send: Sender = send_study,
        max_parallel_destinations: int = 4,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.store = store
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.clock = clock
        self.rng = rng or random.Random()
        self._send = send
        self.max_parallel_destinations = max(1, max_parallel_destinations)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread -----------------------------------------------------------------

    def start(self) -> None:
        """Requeue deliveries left ``sending`` by a stopped process, then send on a thread."""
        if self._thread is not None:
            raise RuntimeError("the delivery worker is already running")
        self.requeue_stale()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="delivery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the pass under way (its association included) and stop the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("delivery worker still sending after %s s", timeout)
            self._thread = None

    def wake(self) -> None:
        """Look at the outbox now (call after committing new deliveries)."""
        self._wake.set()

    def requeue_stale(self, now: datetime | None = None) -> int:
        """Deliveries left ``sending`` become due again; returns how many."""
        with self.session_factory() as session:
            count = requeue_stale_deliveries(session=session, now=now or self.clock())
            session.commit()
        if count:
            logger.warning("requeued %d deliveries left sending by a stopped process", count)
        return count

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = self.run_once()
            except Exception:  # the thread must survive a database outage; logged with cause
                logger.exception("delivery pass failed")
                handled = 0
            if handled < self.batch:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    # -- one pass -------------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> int:
        """Claim the due deliveries, send them per (study, destination), record outcomes.

        Parameters
        ----------
        now
            The time of the pass (timezone-aware UTC); rows due at or before it are
            claimed and retry times are counted from it. Default: the clock.

        Returns
        -------
        int
            How many deliveries were attempted.
        """
        now = now or self.clock()
        with self.session_factory() as session:
            claimed = claim_deliveries(session=session, now=now, limit=self.batch)
            items = outbox_items(session=session, delivery_ids=[d.id for d in claimed])
            session.commit()
        # destination -> study -> items: destinations in parallel, studies one by one
        plan: dict[str, dict[str, list[OutboxItem]]] = defaultdict(lambda: defaultdict(list))
        for item in items:
            plan[item.destination][item.study_uid].append(item)
        if len(plan) <= 1:
            for destination, studies in plan.items():
                self._send_studies(destination, studies, now)
        else:
            workers = min(len(plan), self.max_parallel_destinations)
            with ThreadPoolExecutor(workers, thread_name_prefix="delivery") as pool:
                futures = [pool.submit(self._send_studies, destination, studies, now)
                           for destination, studies in plan.items()]
                for future in futures:
                    future.result()
        return len(items)

    def _send_studies(
        self, destination: str, studies: dict[str, list[OutboxItem]], now: datetime
    ) -> None:
        for study_uid, group in studies.items():
            try:
                verdicts = self._deliver(study_uid, destination, group)
            except Exception as exc:  # the edge: a bug must not leave rows "sending"
                logger.exception("sending to %s failed", destination,
                                 extra={"study_uid": study_uid, "destination": destination})
                error = f"sender error: {type(exc).__name__}: {exc}"
                verdicts = {item.delivery_id: _Verdict(False, error) for item in group}
            self._record(study_uid, group, verdicts, now)

    def _deliver(
        self, study_uid: str, destination_name: str, group: Sequence[OutboxItem]
    ) -> dict[int, _Verdict]:
        destination = self._destination(destination_name)
        if destination is None:
            error = f"destination {destination_name!r} is not in the settings"
            return {item.delivery_id: _Verdict(False, error, retry=False) for item in group}
        verdicts: dict[int, _Verdict] = {}
        paths: list[Path] = []
        sendable: list[OutboxItem] = []
        for item in group:
            try:
                self.store.verify(item.path, item.sha256)
            except (StorageError, OSError) as exc:
                verdicts[item.delivery_id] = _Verdict(False, f"result file: {exc}", retry=False)
                continue
            paths.append(self.store.path(item.path))
            sendable.append(item)
        if not sendable:
            return verdicts
        send = send_study_stow if destination.stow_url else self._send
        report = send(destination, paths, settings=self.settings, study_uid=study_uid,
                      accept_warnings=self.settings.delivery.accept_warnings)
        by_uid = {o.sop_instance_uid: o for o in report.outcomes}
        for item in sendable:
            outcome = by_uid.get(item.sop_instance_uid)
            if outcome is None:
                verdicts[item.delivery_id] = _Verdict(False, "no outcome reported for the object")
            elif outcome.ok:
                verdicts[item.delivery_id] = _Verdict(True)
            else:
                verdicts[item.delivery_id] = _Verdict(False, outcome.describe())
        return verdicts

    def _destination(self, name: str) -> Destination | None:
        return next((d for d in self.settings.destinations if d.name == name), None)

    def _record(
        self,
        study_uid: str,
        group: Sequence[OutboxItem],
        verdicts: dict[int, _Verdict],
        now: datetime,
    ) -> None:
        policy = self.settings.delivery
        extra = {"study_uid": study_uid, "destination": group[0].destination}
        dead = failed = 0
        with self.session_factory() as session:
            for item in group:
                verdict = verdicts[item.delivery_id]
                if verdict.ok:
                    mark_delivered(session=session, delivery_id=item.delivery_id, now=now)
                    continue
                retry_at: datetime | None = None
                if verdict.retry and item.attempts < policy.max_attempts:
                    delay = backoff_seconds(item.attempts, policy, self.rng)
                    retry_at = now + timedelta(seconds=delay)
                    failed += 1
                else:
                    dead += 1
                mark_delivery_failed(
                    session=session, delivery_id=item.delivery_id,
                    error=verdict.error or "failed", retry_at=retry_at,
                )
            session.commit()
        if failed:
            logger.warning(
                "%d of %d deliveries to %s failed; retrying (attempt %d of %d)",
                failed, len(group), group[0].destination, max(i.attempts for i in group),
                policy.max_attempts, extra=extra,
            )
        if dead:
            reasons = sorted({verdicts[i.delivery_id].error or "" for i in group
                              if not verdicts[i.delivery_id].ok})
            logger.error(
                "%d deliveries to %s are dead (dead letter): %s", dead, group[0].destination,
                "; ".join(reasons), extra=extra,
            )
