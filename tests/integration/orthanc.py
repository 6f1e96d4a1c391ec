"""A throw-away Orthanc PACS on loopback for the integration tests.

:class:`OrthancProcess` writes its own JSON config (storage under a temporary
directory, HTTP and DICOM ports from ``free_port()``, ``RemoteAccessAllowed``
off, ``TCP_NODELAY=1`` in its environment), starts ``Orthanc`` and waits for its
REST API; :meth:`~OrthancProcess.stop` ends it by its own pid, and
:meth:`~OrthancProcess.start` again brings it back on the same ports and storage
(the "PACS down, then up" tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import REPO_ROOT, free_port, require_program

__all__ = ["DICOMWEB_PLUGIN", "LUA_ROUTER", "OrthancProcess", "wait_for"]

LUA_ROUTER = REPO_ROOT / "deploy" / "orthanc" / "autoroute.lua"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 180.0,
             interval: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class OrthancProcess:
    """One Orthanc with its config in ``workdir``.

    Parameters
    ----------
    workdir
        Config, storage and log go here.
    aet
        Orthanc's own AE title.
    modalities
        ``DicomModalities``: name to ``[AE title, host, port]``.
    lua
        Lua scripts to load (``LuaScripts``).
    dicomweb
        Load the DICOMweb plugin (``/dicom-web/``).
    stable_age
        ``StableAge`` in seconds (when ``OnStableStudy`` fires).
    """

    def __init__(self, workdir: Path, *, aet: str = "ORTHANC",
                 modalities: dict[str, list[Any]] | None = None, lua: Sequence[Path] = (),
                 dicomweb: bool = False, stable_age: int = 1) -> None:
        self.program = require_program("Orthanc")
        self.workdir = workdir
        self.aet = aet
        self.http_port, self.dicom_port = free_port(), free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "Name": "integration-test",
            "StorageDirectory": str(workdir / "storage"),
            "IndexDirectory": str(workdir / "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            "DicomCheckCalledAet": False,
            "DicomModalities": modalities or {},
            "LuaScripts": [str(p) for p in lua],
            "UserMetadata": {"DicomNodeSent": 1024},
            "StableAge": stable_age,
            "OverwriteInstances": True,
            "Plugins": [],
        }
        if dicomweb:
            config["Plugins"] = [str(DICOMWEB_PLUGIN)]
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
        self.config_path = workdir / "orthanc.json"
        self.config_path.write_text(json.dumps(config, indent=1), encoding="utf-8")
        self.log_path = workdir / "orthanc.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 60.0) -> OrthancProcess:
        """Start (or restart) Orthanc and wait until its REST API answers."""
        env = dict(os.environ, TCP_NODELAY="1")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.program, "--verbose", str(self.config_path)],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.get("/system")
                return self
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"Orthanc did not start:\n{self.log()[-3000:]}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM by pid, SIGKILL if it does not exit within 30 s."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- REST --------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> bytes:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=headers or {})
        with urllib.request.urlopen(req, timeout=60) as response:
            return bytes(response.read())

    def get(self, path: str) -> Any:
        return json.loads(self.request("GET", path) or b"null")

    def upload(self, path: Path) -> dict[str, Any]:
        """POST one DICOM file to ``/instances``."""
        result: dict[str, Any] = json.loads(self.request("POST", "/instances", path.read_bytes()))
        return result

    def find_study(self, study_uid: str) -> str | None:
        """Orthanc's ID of the study with this Study Instance UID, if it holds it."""
        body = json.dumps({"Level": "Study", "Query": {"StudyInstanceUID": study_uid}}).encode()
        found = json.loads(self.request("POST", "/tools/find", body))
        return str(found[0]) if found else None

    def study_instances(self, study_uid: str) -> list[dict[str, Any]]:
        """Every instance of the study (``/studies/{id}/instances``), empty if absent."""
        study_id = self.find_study(study_uid)
        if study_id is None:
            return []
        result: list[dict[str, Any]] = self.get(f"/studies/{study_id}/instances")
        return result

    def instance_tags(self, orthanc_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/instances/{orthanc_id}/simplified-tags")
        return result

    def instance_file(self, orthanc_id: str) -> bytes:
        return self.request("GET", f"/instances/{orthanc_id}/file")

    def study_series(self, study_uid: str) -> list[dict[str, Any]]:
        """The series of the study (``/studies/{id}/series``), empty if absent."""
        study_id = self.find_study(study_uid)
        if study_id is None:
            return []
        result: list[dict[str, Any]] = self.get(f"/studies/{study_id}/series")
        return result

    def instances_of_modality(self, study_uid: str, modality: str) -> list[str]:
        """Orthanc IDs of the study's instances in series of ``modality`` (SEG, SR, MR ...)."""
        return [i for s in self.study_series(study_uid)
                if s["MainDicomTags"].get("Modality") == modality for i in s["Instances"]]
