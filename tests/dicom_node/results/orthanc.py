"""A throw-away Orthanc on loopback (temporary config and storage), driven by its REST API."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import free_port, require_program

USER, PASSWORD = "results", "results-test"


class Orthanc:
    """REST client of a running Orthanc."""

    def __init__(self, url: str) -> None:
        self.url = url
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self._auth = {"Authorization": f"Basic {token}"}

    def request(self, method: str, path: str, body: bytes | None = None) -> Any:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=self._auth)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def upload(self, path: Path) -> dict[str, Any]:
        """POST one file to /instances; Orthanc answers with its status (Success, AlreadyStored)."""
        result: dict[str, Any] = self.request("POST", "/instances", path.read_bytes())
        return result


@contextmanager
def running_orthanc(workdir: Path) -> Iterator[Orthanc]:
    """Start Orthanc with its own config and storage under ``workdir``; stop it afterwards."""
    program = require_program("Orthanc")
    http, dicom = free_port(), free_port()
    config = {
        "Name": "results-test",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "storage"),
        "HttpPort": http,
        "DicomPort": dicom,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "Plugins": [],
        "HttpServerEnabled": True,
        "DicomServerEnabled": False,
        "StableAge": 1,
    }
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "orthanc.json"
    cfg.write_text(json.dumps(config), encoding="utf-8")
    log = open(workdir / "orthanc.log", "wb")
    proc = subprocess.Popen([program, str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    client = Orthanc(f"http://127.0.0.1:{http}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.get("/system")
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Orthanc did not start: {(workdir / 'orthanc.log').read_text()[-2000:]}")
                time.sleep(0.2)
        yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
