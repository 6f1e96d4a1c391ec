"""docker-compose.yml and deploy/orthanc/ agree with each other and with the settings.

The compose file is not run here (no Docker engine); these checks catch what
would break it at start: a node environment the settings refuse, Orthanc pointed
at the wrong AE title or port, a Lua script the config does not load.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from config.settings import load_settings
from tests.conftest import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
ORTHANC_JSON = REPO_ROOT / "deploy" / "orthanc" / "orthanc.json"
LUA = REPO_ROOT / "deploy" / "orthanc" / "autoroute.lua"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service["environment"].items()}


def test_compose_has_the_topology() -> None:
    services = _compose()["services"]
    assert {"orthanc", "dicom-node", "postgres", "redis", "worker"} <= set(services)
    assert services["dicom-node"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    # the worker reads the instances the node stored: the same volume at the same path
    assert services["worker"]["volumes"] == services["dicom-node"]["volumes"]


def test_node_environment_is_valid_settings() -> None:
    services = _compose()["services"]
    for name in ("dicom-node", "worker"):
        settings = load_settings(environ=_env(services[name]), check_paths=False)
        assert settings.executor == "celery"
        assert settings.resolved_database_url.startswith("postgresql")
    node = load_settings(environ=_env(services["dicom-node"]), check_paths=False)
    ports = services["dicom-node"]["ports"]
    assert f"{node.port}:{node.port}" in ports and f"{node.http_port}:{node.http_port}" in ports


def test_orthanc_routes_to_the_node_and_receives_its_results() -> None:
    services = _compose()["services"]
    node = load_settings(environ=_env(services["dicom-node"]), check_paths=False)
    config = json.loads(ORTHANC_JSON.read_text())
    modality = re.search(r'local NODE_MODALITY = "([^"]+)"', LUA.read_text())
    assert modality, "the Lua script names its modality"
    ae, host, port = config["DicomModalities"][modality.group(1)]
    assert (ae, host, port) == (node.ae_title, "dicom-node", node.port)
    (destination,) = node.destinations
    assert destination.ae_title == config["DicomAet"] and destination.port == config["DicomPort"]
    assert destination.host == "orthanc" and node.allowed_calling_aets == [config["DicomAet"]]
    mounts = {m.split(":")[1] for m in services["orthanc"]["volumes"]}
    assert set(config["LuaScripts"]) <= mounts
    assert "DicomNodeSent" in config["UserMetadata"] and '"DicomNodeSent"' in LUA.read_text()
    assert config["OverwriteInstances"] is True  # a re-run's results replace the old ones
