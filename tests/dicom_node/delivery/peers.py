"""Real peers for the delivery tests: a recording pynetdicom SCP and DCMTK's storescp."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicom_node.delivery.scu import RESULT_SOP_CLASSES

SC = "1.2.840.10008.5.1.4.1.1.7"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def make_object(directory: Path, study_uid: str, *, sop_class: str = SC, size: int = 64) -> Path:
    """A small Part 10 file of ``sop_class`` in ``study_uid`` (explicit VR little endian)."""
    meta = FileMetaDataset()
    sop_uid = generate_uid()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "P1"
    ds.Modality = "OT"
    ds.ContentLabel = "X"
    ds.add_new(0x00091010, "OB", b"\0" * size)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{sop_uid}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def make_study(directory: Path, n: int = 3) -> tuple[str, list[Path]]:
    """A study UID and ``n`` objects in it (SC and SR alternating)."""
    study = generate_uid()
    classes = [SC, COMPREHENSIVE_SR]
    return study, [make_object(directory, study, sop_class=classes[i % 2]) for i in range(n)]


@dataclass
class RecordingSCP:
    """A pynetdicom storage SCP on loopback that records what it got.

    ``status`` is what every C-STORE answers (change it while running); the SOP
    Instance UIDs stored with success and the number of associations are kept.
    """

    ae_title: str = "PACS"
    status: int = 0x0000
    port: int = 0
    stored: list[str] = field(default_factory=list)
    #: the transfer syntax of each stored instance
    syntaxes: list[str] = field(default_factory=list)
    requests: int = 0
    associations: int = 0
    hook: Callable[[Any], None] | None = None
    require_called_aet: bool = False
    #: the transfer syntaxes accepted (default: all)
    transfer_syntaxes: list[str] | None = None
    _server: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, port: int) -> RecordingSCP:
        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = 0
        ae.require_called_aet = self.require_called_aet
        ae.add_supported_context(Verification)
        for uid in RESULT_SOP_CLASSES:
            ae.add_supported_context(uid, self.transfer_syntaxes or ALL_TRANSFER_SYNTAXES)
        handlers = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_CONN_OPEN, _nodelay),
        ]
        self.port = port
        self._server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_accepted(self, event: Any) -> None:
        with self._lock:
            self.associations += 1

    def _on_store(self, event: Any) -> int:
        if self.hook is not None:
            self.hook(event)
        with self._lock:
            self.requests += 1
            status = self.status
            if status == 0:
                self.stored.append(str(event.request.AffectedSOPInstanceUID))
                self.syntaxes.append(str(event.context.transfer_syntax))
        return status


def _nodelay(event: Any) -> None:
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def wait_listening(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 10
) -> None:
    """Wait until something accepts connections on ``127.0.0.1:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"peer exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


def start_storescp(
    program: str,
    port: int,
    out_dir: Path,
    *,
    ae_title: str = "STORESCP",
    extra: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """DCMTK storescp on loopback, Nagle off, writing into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TCP_NODELAY="1")
    proc = subprocess.Popen(
        [program, "-aet", ae_title, "--output-directory", str(out_dir), *(extra or []), str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc)
    except Exception:
        stop_process(proc)
        raise
    return proc


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a peer we started, by its own pid."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
