"""Study assembly: decide when a study has arrived, and tell the subscribers.

All state lives in the database (``Study.last_received_at``,
``Series.last_received_at``, ``Study.state``), so the assembler itself holds none and
a restarted node picks up where the previous one stopped: timers are computed from
the stored times, not from in-memory countdowns.

Rules (seconds from ``settings.assembly``):

* a **series is quiet** when no instance of it arrived for ``series_quiet_seconds``
  (every instance resets its timer: the SCP updates ``Series.last_received_at``);
* a **study completes** when every one of its series is quiet and then
  ``settle_seconds`` more passed (at ``last instance + quiet + settle``);
* a study still receiving ``forced_timeout_seconds`` after its first instance (for
  an amendment: after the first instance that arrived after its previous
  completion) is **completed anyway** and flagged ``forced``;
* an instance arriving after completion turns the study **amended** (the storage
  layer does that, amendment + 1); it is assembled again by the same rules and
  published again with its amendment number, so subscribers re-run on it.

Completion is published as a :class:`StudyCompleted` to each callable in
``on_complete``, *before* the completion is committed: a crash in between publishes
the study again after the restart (at-least-once), so subscribers must be
idempotent per ``(study_uid, amendment)``. A subscriber that raises is logged and
does not stop the others or the completion.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from config.settings import AssemblySettings
from storage import repo
from storage.models import Instance, Series, StudyState

__all__ = ["StudyAssembler", "StudyCompleted"]

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    """Database times without a zone are UTC (SQLite drops the zone)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def _amendment_start(session: Session, study: Any) -> datetime | None:
    """When the first instance after the study's previous completion arrived."""
    previous = repo.audit_events(
        session=session, study_uid=study.study_instance_uid, kind="study_complete", limit=1,
    )
    if not previous:
        return None
    first = session.scalar(
        sa.select(sa.func.min(Instance.received_at))
        .join(Series, Instance.series_id == Series.id)
        .where(Series.study_id == study.id, Instance.received_at > previous[0].at)
    )
    return first if first is not None else previous[0].at


@dataclass(frozen=True)
class StudyCompleted:
    """A study (or an amendment of it) has arrived and may be processed."""

    study_uid: str
    study_id: int
    #: True when the forced timeout completed it while instances still arrived
    forced: bool
    #: 0 for the first completion, N for the Nth amendment
    amendment: int
    completed_at: datetime
    series_uids: tuple[str, ...]
    instance_count: int


class StudyAssembler:
    """Completes studies from the database state, on a timer thread or by :meth:`poll`.

    Parameters
    ----------
    session_factory
        One session per poll.
    assembly
        The timers (``settings.assembly``).
    on_complete
        Subscribers called with each :class:`StudyCompleted`.
    clock
        Returns the current time (timezone-aware UTC); tests pass their own.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        assembly: AssemblySettings,
        *,
        on_complete: Sequence[Callable[[StudyCompleted], None]] = (),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.session_factory = session_factory
        self.quiet = timedelta(seconds=assembly.series_quiet_seconds)
        self.settle = timedelta(seconds=assembly.settle_seconds)
        self.forced_timeout = timedelta(seconds=assembly.forced_timeout_seconds)
        self.poll_seconds = assembly.poll_seconds
        self.on_complete: list[Callable[[StudyCompleted], None]] = list(on_complete)
        self.clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()

    def subscribe(self, callback: Callable[[StudyCompleted], None]) -> None:
        """Add a subscriber (before :meth:`start`)."""
        self.on_complete.append(callback)

    # -- the decision ------------------------------------------------------------

    def due(
        self, study: Any, series: Sequence[Any], now: datetime, *, since: datetime | None = None,
    ) -> bool | None:
        """None if ``study`` keeps waiting, else whether it completes forced (True) or not.

        ``since`` starts the forced timeout instead of the study's first instance
        (an amendment's timeout runs from its first late instance).
        """
        last = _aware(study.last_received_at)
        if series:
            last = max(_aware(s.last_received_at) or last for s in series)  # type: ignore[type-var]
        if last is None:
            return None
        all_quiet = all(now - (_aware(s.last_received_at) or last) >= self.quiet for s in series)
        if all_quiet and now - last >= self.quiet + self.settle:
            return False
        start = _aware(since) or _aware(study.first_received_at) or last
        if now - start >= self.forced_timeout:
            return True
        return None

    def poll(self, now: datetime | None = None) -> list[StudyCompleted]:
        """Complete every open study that is due; returns what was published."""
        now = now or self.clock()
        done: list[StudyCompleted] = []
        with self._poll_lock, self.session_factory() as session:
            for study in repo.open_studies(session=session):
                if study.state not in (StudyState.RECEIVING, StudyState.AMENDED):
                    continue
                series = repo.series_of(session=session, study_id=study.id)
                since = _amendment_start(session, study) if study.amendment else None
                forced = self.due(study, series, now, since=since)
                if forced is None:
                    continue
                event = StudyCompleted(
                    study_uid=study.study_instance_uid,
                    study_id=study.id,
                    forced=forced,
                    amendment=int(study.amendment or 0),
                    completed_at=now,
                    series_uids=tuple(s.series_instance_uid for s in series),
                    instance_count=sum(int(s.instance_count or 0) for s in series),
                )
                self._publish(event)
                repo.mark_study_complete(session=session, study_id=study.id, forced=forced, now=now)
                repo.add_audit_event(
                    session=session, kind="study_complete",
                    outcome="forced" if forced else "complete",
                    study_uid=event.study_uid, now=now,
                    detail=f"amendment {event.amendment}, {event.instance_count} instances "
                           f"in {len(series)} series",
                )
                session.commit()
                log = logger.warning if forced else logger.info
                log(
                    "study complete%s (amendment %d, %d series, %d instances)",
                    " (FORCED by timeout)" if forced else "", event.amendment,
                    len(series), event.instance_count, extra={"study_uid": event.study_uid},
                )
                done.append(event)
        return done

    def _publish(self, event: StudyCompleted) -> None:
        for callback in self.on_complete:
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - one subscriber never blocks the others
                logger.exception("study-complete subscriber %r failed", callback,
                                 extra={"study_uid": event.study_uid})

    # -- the timer thread -------------------------------------------------------

    def start(self) -> None:
        """Poll every ``poll_seconds`` on a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("assembler already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="study-assembler", daemon=True)
        self._thread.start()

    def wake(self, *_: object) -> None:
        """Poll now (for instance after a store); accepts and ignores any event."""
        self._wake.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread after the poll in progress."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the thread must survive a bad poll
                logger.exception("study assembly poll failed")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
