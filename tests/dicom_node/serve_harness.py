"""Start ``dicom-node serve`` as a subprocess on free loopback ports, and talk to it.

Used by the receiver's tests (and free for other parts' tests): :func:`start_serve`
writes a YAML config into a temporary directory, starts ``python -m dicom_node
serve --config`` and waits until the node answers C-ECHO; :class:`ServeProcess`
stops it by its own pid. :func:`make_instance` builds small synthetic MR
instances; :func:`associate` opens a pynetdicom association with ``TCP_NODELAY``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification

from config.settings import Settings, load_settings
from tests.conftest import REPO_ROOT, free_port

__all__ = [
    "ServeProcess",
    "associate",
    "dcmtk_env",
    "echo_ok",
    "make_instance",
    "send_files_as_is",
    "start_serve",
]


def dcmtk_env() -> dict[str, str]:
    """The environment for DCMTK/Orthanc processes: ``TCP_NODELAY=1`` (BENCHMARKING.md)."""
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    return env


def associate(
    port: int,
    contexts: Sequence[tuple[str, Sequence[str]] | str] = (Verification,),
    *,
    called_ae: str = "DICOM_NODE",
    calling_ae: str = "TEST_SCU",
    timeout: float = 30.0,
) -> Association:
    """An association to ``127.0.0.1:port`` (check ``is_established``), TCP_NODELAY set."""
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.maximum_pdu_size = 0
    for context in contexts:
        if isinstance(context, str):
            ae.add_requested_context(context)
        else:
            ae.add_requested_context(context[0], list(context[1]))
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    if assoc.is_established and assoc.dul.socket and assoc.dul.socket.socket:
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return assoc


@contextmanager
def send_files_as_is() -> Iterator[None]:
    """Let ``send_c_store(path)`` stream a file's bytes unchanged (truncated ones too)."""
    from pynetdicom import _config

    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old


def echo_ok(port: int, *, called_ae: str = "DICOM_NODE", calling_ae: str = "TEST_SCU") -> bool:
    """True if the node at ``port`` answers C-ECHO with success."""
    assoc = associate(port, called_ae=called_ae, calling_ae=calling_ae, timeout=5.0)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and int(status.Status) == 0
    finally:
        assoc.release()


def make_instance(
    study_uid: str,
    series_uid: str,
    number: int,
    *,
    size: int = 16,
    sop_uid: str | None = None,
    seed: int = 0,
) -> Dataset:
    """A small synthetic MR image (Explicit VR Little Endian) of one series."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientID = "TEST123"
    ds.PatientName = "Test^Patient"
    ds.StudyDate = "20260101"
    ds.Modality = "MR"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    rng = np.random.default_rng(seed + number)
    ds.PixelData = rng.integers(0, 4096, (size, size), dtype=np.uint16).tobytes()
    return ds


@dataclass
class ServeProcess:
    """A running ``dicom-node serve`` subprocess."""

    proc: subprocess.Popen[bytes]
    port: int
    ae_title: str
    directory: Path
    config_path: Path
    settings: Settings
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        """What the process wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``sig`` to this process (by pid) and wait; returns the exit status."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def start_serve(
    directory: Path,
    *,
    port: int | None = None,
    ae_title: str = "DICOM_NODE",
    ready_timeout: float = 180.0,
    **config: Any,
) -> ServeProcess:
    """Start ``dicom-node serve`` with its store in ``directory/var``; wait until it is ready.

    Ready is the server's own "ready:" log line, written once the SCP listens (an
    echo would not do: allow-list tests refuse the harness's own association).

    ``config`` holds extra top-level keys of the YAML config (``assembly={...}``,
    ``allowed_calling_aets=[...]``, ``min_free_disk_mb=...``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    values: dict[str, Any] = {
        "ae_title": ae_title,
        "host": "127.0.0.1",
        "port": port,
        "http_port": free_port(),
        "storage_dir": str(directory / "var"),
        "min_free_disk_mb": 0,
        "log_level": "INFO",
        "assembly": {"series_quiet_seconds": 1.0, "settle_seconds": 0.5, "poll_seconds": 0.2},
        # receiver tests: no model loading at start (~6 s of CPU each); a job loads its model itself
        "jobs": {"preload_models": False},
    }
    values.update(config)
    config_path = directory / "dicom-node.yaml"
    config_path.write_text(yaml.safe_dump(values))
    settings = load_settings(config_path, environ={})
    log_path = directory / f"serve-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_NODE_")}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicom_node", "serve"],
            env={**env, "DICOM_NODE_CONFIG": str(config_path)},
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    node = ServeProcess(proc, port, ae_title, directory, config_path, settings, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}:\n{node.log()}")
        if "dicom_node.server: ready:" in node.log():
            return node
        time.sleep(0.2)
    node.kill()
    raise RuntimeError(f"serve was not ready within {ready_timeout} s:\n{node.log()}")


@pytest.fixture
def serve_node(tmp_path: Path) -> Iterator[ServeProcess]:
    """A ``serve`` subprocess with default test settings, stopped after the test."""
    node = start_serve(tmp_path / "node")
    try:
        yield node
    finally:
        if node.proc.poll() is None:
            node.stop()


@pytest.fixture(scope="session")
def shared_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One ``serve`` for the whole session (tests use their own UIDs); must exit 0.

    Starting ``serve`` costs seconds (the CLI imports every command), so tests that
    only need *a* node share this one and look only at their own UIDs.
    """
    node = start_serve(tmp_path_factory.mktemp("shared") / "node")
    try:
        yield node
    finally:
        if node.proc.poll() is None:
            assert node.stop() == 0


def indexed(node: ServeProcess) -> dict[str, tuple[str, str, int]]:
    """The node's index: SOP Instance UID -> (absolute file path, sha256, version)."""
    import sqlalchemy as sa

    from storage.db import make_engine, make_session_factory
    from storage.models import Instance
    from storage.store import InstanceStore

    engine = make_engine(node.settings.resolved_database_url)
    try:
        store = InstanceStore(node.settings.storage_dir / "instances")
        with make_session_factory(engine)() as session:
            return {
                row.sop_instance_uid: (str(store.path(row.path)), row.sha256, row.version)
                for row in session.scalars(sa.select(Instance))
            }
    finally:
        engine.dispose()


def audit(node: ServeProcess, kind: str | None = None) -> list[Any]:
    """The node's audit events (newest first)."""
    return audit_of(node.settings, kind)


def audit_of(settings: Settings, kind: str | None = None) -> list[Any]:
    """The audit events (newest first) in the database ``settings`` name."""
    from storage import repo
    from storage.db import make_engine, make_session_factory

    engine = make_engine(settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            events = repo.audit_events(session=session, kind=kind)
            session.expunge_all()
            return events
    finally:
        engine.dispose()
