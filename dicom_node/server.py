"""The ``serve`` lifecycle: database, store, SCP and study assembly, and a clean stop.

Start-up: engine + Alembic ``upgrade``, sweep of temporary files left by a crash,
then the SCP and the assembler. Shutdown (SIGTERM or SIGINT): stop accepting
associations, refuse new C-STOREs with 0xA700 and let those in flight finish
(durable and indexed), abort the remaining associations, stop the assembler,
dispose of the engine, exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from pynetdicom import AE
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from dicom_node.assembly import StudyAssembler, StudyCompleted
from dicom_node.delivery.worker import DeliveryWorker
from dicom_node.executors import Executor, build_executor
from dicom_node.ops.http import OpsServer
from dicom_node.ops.node import start_ops_server
from dicom_node.scp import Receiver, start_scp
from storage.db import make_engine, make_session_factory, upgrade
from storage.store import InstanceStore

__all__ = ["Node", "serve", "store_root"]

logger = logging.getLogger(__name__)


def store_root(settings: Settings) -> Path:
    """Where the instance files live: ``<storage_dir>/instances``."""
    return settings.storage_dir / "instances"


class Node:
    """One running node: engine, store, receiver, SCP, assembler, job executor and delivery.

    Parameters
    ----------
    settings
        The validated settings.
    on_complete
        Subscribers to :class:`~dicom_node.assembly.StudyCompleted` (routing adds its own).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        on_complete: Sequence[Callable[[StudyCompleted], None]] = (),
    ) -> None:
        self.settings = settings
        self.on_complete = list(on_complete)
        self.engine: Engine | None = None
        self.session_factory: sessionmaker[Session] | None = None
        self.store: InstanceStore | None = None
        self.receiver: Receiver | None = None
        self.assembler: StudyAssembler | None = None
        self.ae: AE | None = None
        self.server: ThreadedAssociationServer | None = None
        self.ops: OpsServer | None = None
        self.delivery: DeliveryWorker | None = None
        self.executor: Executor | None = None

    def start(self) -> None:
        """Open the database (migrating it), sweep the store, start SCP and assembler."""
        settings = self.settings
        self.engine = make_engine(settings.resolved_database_url)
        upgrade(self.engine)
        self.session_factory = make_session_factory(self.engine)
        self.store = InstanceStore(
            store_root(settings), min_free_bytes=settings.min_free_disk_mb * 1024 * 1024,
        )
        swept = self.store.sweep_temporary()
        if swept:
            logger.warning("removed %d temporary files left by an earlier crash", swept)
        self.receiver = Receiver(self.store, self.session_factory, called_ae=settings.ae_title)
        self.delivery = DeliveryWorker(settings, self.session_factory, self.store)
        self.executor = build_executor(
            settings, self.session_factory, self.store, on_results=self.delivery.wake,
        )
        self.assembler = StudyAssembler(
            self.session_factory, settings.assembly,
            on_complete=[*self.on_complete, self.executor.on_study_complete],
        )
        self.ae, self.server = start_scp(settings, self.receiver)
        self.delivery.start()
        self.executor.start()
        self.assembler.start()
        self.ops = start_ops_server(self)  # /healthz, /readyz, /metrics on http_port

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the SCP listens on."""
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop accepting, finish in-flight C-STOREs, then close everything."""
        if self.ops is not None:
            self.ops.stop()
            self.ops = None
        if self.server is not None:
            self.server.shutdown()  # no new associations
        if self.receiver is not None:
            if not self.receiver.close(timeout=grace_seconds):
                logger.error("C-STOREs still in flight after %.0f s; stopping anyway", grace_seconds)
        if self.server is not None:
            for assoc in list(self.server.active_associations):
                assoc.abort()
            self.server = None
        if self.assembler is not None:
            self.assembler.stop()
        if self.executor is not None:
            self.executor.stop()
        if self.delivery is not None:
            self.delivery.stop()
        if self.engine is not None:
            self.engine.dispose()
        logger.info("stopped")


def serve(
    settings: Settings,
    *,
    on_complete: Sequence[Callable[[StudyCompleted], None]] = (),
    stop_event: threading.Event | None = None,
) -> int:
    """Run a node until SIGTERM/SIGINT (or ``stop_event``); returns the exit status 0."""
    stop = stop_event or threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s: shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {
        sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
    } if threading.current_thread() is threading.main_thread() else {}
    node = Node(settings, on_complete=on_complete)
    try:
        node.start()
        host, port = node.address
        logger.info("ready: %s on %s:%d", settings.ae_title, host, port)
        while not stop.wait(1.0):
            pass
    finally:
        node.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
