"""STOW-RS to Orthanc's DICOMweb plugin on loopback, and through the retry loop."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from config.settings import Destination, Settings
from dicom_node.delivery.scu import Failure
from dicom_node.delivery.stow import send_study_stow
from dicom_node.delivery.worker import DeliveryWorker
from storage.models import Delivery, DeliveryState
from tests.conftest import free_port, require_program
from tests.dicom_node.delivery.conftest import Outbox, at
from tests.dicom_node.delivery.peers import make_study, stop_process

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


class Orthanc:
    def __init__(self, proc: subprocess.Popen[bytes], http_port: int) -> None:
        self.proc = proc
        self.base = f"http://127.0.0.1:{http_port}"

    def instances(self) -> list[str]:
        """SOP Instance UIDs Orthanc holds."""
        with urllib.request.urlopen(f"{self.base}/instances?expand", timeout=10) as rsp:
            return sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in json.load(rsp))


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    program = require_program("Orthanc")
    if not PLUGIN.exists():
        pytest.skip("Orthanc's DICOMweb plugin is not installed")
    http_port, dicom_port = free_port(), free_port()
    config = tmp_path / "orthanc.json"
    config.write_text(json.dumps({
        "Name": "TEST", "StorageDirectory": str(tmp_path / "orthanc-db"),
        "IndexDirectory": str(tmp_path / "orthanc-db"), "HttpPort": http_port,
        "DicomPort": dicom_port, "DicomAet": "ORTHANC", "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "HttpBindAddress": "127.0.0.1",
        "Plugins": [str(PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }))
    proc = subprocess.Popen([program, str(config)], env=dict(os.environ, TCP_NODELAY="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peer = Orthanc(proc, http_port)
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Orthanc exited with {proc.returncode}")
            try:
                peer.instances()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield peer
    finally:
        stop_process(proc)


def _stow(orthanc: Orthanc, url: str | None = None) -> Destination:
    return Destination(name="web", ae_title="ORTHANC", host="127.0.0.1", port=1,
                       stow_url=url or f"{orthanc.base}/dicom-web")


def test_stow_to_orthanc(orthanc: Orthanc, settings: Settings, tmp_path: Path) -> None:
    _, files = make_study(tmp_path / "out", 3)
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom")
    report = send_study_stow(_stow(orthanc), [*files, bad], settings=settings)
    assert [o.ok for o in report.outcomes] == [True, True, True, False]
    assert report.outcomes[3].failure is Failure.UNREADABLE
    assert orthanc.instances() == sorted(report.delivered)


def test_stow_wrong_url_is_a_failure(orthanc: Orthanc, settings: Settings, tmp_path: Path) -> None:
    _, files = make_study(tmp_path / "out", 1)
    report = send_study_stow(_stow(orthanc, f"{orthanc.base}/no-such"), files, settings=settings)
    assert report.outcomes[0].failure is Failure.STATUS_FAILURE
    assert "HTTP 404" in report.outcomes[0].describe()
    report = send_study_stow(_stow(orthanc, f"http://127.0.0.1:{free_port()}/dicom-web"), files,
                             settings=settings)
    assert report.outcomes[0].failure is Failure.NO_ASSOCIATION


def test_worker_uses_stow_for_a_stow_destination(
    orthanc: Orthanc, outbox: Outbox, settings: Settings
) -> None:
    settings = settings.model_copy(update={"destinations": [_stow(orthanc)]})
    _, uids = outbox.add_study(2, ["web"])
    assert DeliveryWorker(settings, outbox.sessions, outbox.store).run_once(at(0)) == 2
    assert orthanc.instances() == sorted(uids)
    with outbox.sessions() as session:
        states = set(session.scalars(sa.select(Delivery.state)))
    assert states == {DeliveryState.DELIVERED}
