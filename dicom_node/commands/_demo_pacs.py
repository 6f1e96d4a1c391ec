"""A tiny receiving PACS for the demo and the end-to-end tests: a C-STORE SCP that files what it gets.

Every received object is written to ``<root>/<StudyInstanceUID>/<SOPInstanceUID>.dcm``
(a second copy of the same SOP Instance UID replaces the first, as a PACS does)
and counted; :attr:`ReceivingPacs.received` lists every store, in order.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

__all__ = ["ReceivedObject", "ReceivingPacs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceivedObject:
    """One C-STORE the PACS accepted."""

    study_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    path: Path
    #: ``time.time()`` when the object was stored (before the response went back)
    received_at: float = 0.0


class ReceivingPacs:
    """A C-STORE SCP on ``host:port`` (0 = a free port) storing under ``root``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, root: Path, *, ae_title: str = "DEMO_PACS", host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root)
        self.ae_title = ae_title
        self.host = host
        self.port = port
        self.received: list[ReceivedObject] = []
        self._lock = threading.Lock()
        self._server: ThreadedAssociationServer | None = None

    def _on_store(self, event: Event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        study = str(ds.StudyInstanceUID)
        folder = self.root / study
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        tmp = path.with_suffix(".part")
        ds.save_as(tmp, enforce_file_format=True)
        tmp.replace(path)
        with self._lock:
            self.received.append(
                ReceivedObject(study, str(ds.SOPInstanceUID), str(ds.SOPClassUID), str(ds.get("Modality", "")), path,
                               time.time())
            )
        return 0x0000

    def start(self) -> ReceivingPacs:
        """Start listening (non-blocking)."""
        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = 0
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(Verification)
        server = ae.start_server(
            (self.host, self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
        )
        assert server is not None
        self._server = server
        self.port = int(server.server_address[1])
        logger.info("receiving PACS %s on %s:%d", self.ae_title, self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop listening and close the associations."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> ReceivingPacs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def objects(self, study_uid: str | None = None, modality: str | None = None) -> list[ReceivedObject]:
        """The distinct objects received (latest copy per SOP Instance UID)."""
        with self._lock:
            latest = {o.sop_instance_uid: o for o in self.received}
        return [o for o in latest.values()
                if (study_uid is None or o.study_uid == study_uid) and (modality is None or o.modality == modality)]
