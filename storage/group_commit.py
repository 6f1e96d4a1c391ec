"""Group commit: units of work from many threads share one durable commit.

Each C-STORE must be committed before it is acknowledged, and a durable commit
costs one ``fsync`` (SQLite ``synchronous=FULL``) during which SQLite holds its
write lock. With several associations at once, the commits queue behind each
other. :class:`GroupCommitter` lets them share: a caller hands over its unit of
work and blocks; whichever waiting thread gets the turn runs every queued unit
in one transaction, each in its own SAVEPOINT (a failing unit is rolled back
alone and its caller gets its exception), commits once, and wakes them all.
A unit's caller returns only after the commit that contains it succeeded, so
"acknowledge after commit" still holds.

With one association at a time it behaves exactly like a session per unit.

Example
-------
>>> committer = GroupCommitter(session_factory)
>>> outcome = committer.run(lambda session: repo.record_instance(session=session, ...))
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from storage.errors import StorageError

__all__ = ["GroupCommitter"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _Unit(Generic[T]):
    __slots__ = ("work", "result", "error", "done")

    def __init__(self, work: Callable[[Session], T]) -> None:
        self.work = work
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommitter:
    """Run units of work from many threads with one commit per batch.

    Parameters
    ----------
    session_factory
        From :func:`storage.db.make_session_factory`.
    max_batch
        At most this many units share one transaction.
    """

    def __init__(self, session_factory: sessionmaker[Session], *, max_batch: int = 128) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._session_factory = session_factory
        self._max_batch = max_batch
        self._queue: deque[_Unit[object]] = deque()
        self._queue_lock = threading.Lock()
        self._turn = threading.Lock()
        #: number of commits made (for tests and metrics)
        self.commits = 0

    def pending(self) -> int:
        """Units queued and not yet taken into a transaction."""
        with self._queue_lock:
            return len(self._queue)

    def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in a shared transaction; return once it is committed.

        ``work`` must not commit or roll back the session itself.

        Raises
        ------
        BaseException
            Whatever ``work`` raised (its changes are rolled back, others' are not).
        StorageError
            When the shared commit failed (nothing of the batch was committed),
            raised from the database error.
        """
        unit: _Unit[T] = _Unit(work)
        with self._queue_lock:
            self._queue.append(unit)  # type: ignore[arg-type]
        while True:
            with self._turn:
                if not unit.done:
                    self._run_batch()
            if unit.done:
                break
        if unit.error is not None:
            raise unit.error
        return unit.result  # type: ignore[return-value]

    def _run_batch(self) -> None:
        with self._queue_lock:
            batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
        if not batch:
            return
        try:
            with self._session_factory() as session:
                for unit in batch:
                    try:
                        with session.begin_nested():
                            unit.result = unit.work(session)
                    except Exception as exc:  # handed to the unit's own caller
                        unit.error = exc
                try:
                    session.commit()
                    self.commits += 1
                except Exception as exc:
                    logger.error("group commit of %d unit(s) failed: %s", len(batch), exc)
                    failure = StorageError(f"commit failed: {exc}")
                    failure.__cause__ = exc
                    for unit in batch:
                        if unit.error is None:
                            unit.error = failure
        except BaseException as exc:
            # e.g. the session could not even be opened: no unit may wait for ever
            for unit in batch:
                if unit.error is None and not unit.done:
                    unit.error = exc
            raise
        finally:
            for unit in batch:
                unit.done = True
