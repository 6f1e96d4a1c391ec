"""The ``serve`` lifecycle: clean stop on SIGTERM, and a SIGKILL in the middle of a transfer."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pynetdicom.dsutils import encode

from dicom_node.dimse import Status
from dicom_node.cli import main
from tests.dicom_node.serve_harness import (
    ServeProcess,
    associate,
    echo_ok,
    indexed,
    make_instance,
    start_serve,
)

MR = (MRImageStorage, [ExplicitVRLittleEndian])


def _send_until_broken(
    node: ServeProcess, study: str, series: str, count: int, *, kill_after: int, sig: int
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Send ``count`` instances; after ``kill_after`` acks signal the node.

    Returns (acknowledged, attempted-but-not-acknowledged), UID -> encoded data set.
    """
    acked: dict[str, bytes] = {}
    unacked: dict[str, bytes] = {}
    assoc = associate(node.port, [MR])
    assert assoc.is_established
    try:
        for i in range(count):
            ds = make_instance(study, series, i + 1, size=256)
            data = encode(ds, False, True)
            if len(acked) == kill_after:
                threading.Thread(target=os.kill, args=(node.pid, sig)).start()
            if not assoc.is_established:
                break
            status = assoc.send_c_store(ds)
            if status and int(status.Status) == Status.SUCCESS:
                acked[ds.SOPInstanceUID] = data
            else:
                unacked[ds.SOPInstanceUID] = data
    finally:
        if assoc.is_established:
            assoc.release()
    return acked, unacked


def _status_json(node: ServeProcess, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["--config", str(node.config_path), "status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_sigkill_mid_transfer_restart_then_sigterm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Crash, restart, resume assembly; then a clean SIGTERM in the middle of a transfer."""
    directory = tmp_path / "node"
    assembly = {"series_quiet_seconds": 3.0, "settle_seconds": 0.5, "poll_seconds": 0.2}
    node = start_serve(directory, assembly=assembly)
    study, series = generate_uid(), generate_uid()
    acked, unacked = _send_until_broken(
        node, study, series, 300, kill_after=40, sig=signal.SIGKILL
    )
    node.proc.wait(30)
    assert node.proc.returncode == -signal.SIGKILL
    assert len(acked) >= 40

    node = start_serve(directory, assembly=assembly)  # same store and database, new port
    try:
        rows = indexed(node)
        # every acknowledged instance is present and intact
        for uid, data in acked.items():
            path, sha256, _ = rows[uid]
            stored = Path(path).read_bytes()
            assert hashlib.sha256(stored).hexdigest() == sha256
            assert stored.endswith(data)
        # nothing else is indexed, except possibly the one instance that was committed
        # when the kill came, before its response left: then it is complete too
        extra = set(rows) - set(acked)
        assert extra <= set(unacked) and len(extra) <= 1
        for uid in extra:
            assert Path(rows[uid][0]).read_bytes().endswith(unacked[uid])
        # no temporary files are left in the store after the start-up sweep
        store = node.settings.storage_dir / "instances"
        assert all(p.name.endswith(".dcm") for p in store.rglob("*") if p.is_file())

        # study assembly resumes from the database and completes the study
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            studies = {s["study_instance_uid"]: s for s in _status_json(node, capsys)["studies"]}
            if studies[study]["state"] == "complete":
                break
            time.sleep(0.5)
        assert studies[study]["state"] == "complete"
        assert studies[study]["instance_count"] == len(rows)
        assert echo_ok(node.port)

        # SIGTERM while a sender is busy: in-flight stores finish, the node exits 0
        acked2, _ = _send_until_broken(
            node, study, generate_uid(), 300, kill_after=20, sig=signal.SIGTERM
        )
        assert node.proc.wait(60) == 0
        assert "received SIGTERM" in node.log() and "stopped" in node.log()
        rows2 = indexed(node)
        assert set(acked2) <= set(rows2)
        # what was refused (0xA700) or cut off during shutdown is not indexed
        assert set(rows2) - set(rows) == set(acked2)
        assert len(acked2) >= 20
    finally:
        if node.proc.poll() is None:
            assert node.stop() == 0
