"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from config.settings import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _strict_pydicom() -> Iterator[None]:
    """Write and read with pydicom's strict value checking, as STYLE.md asks."""
    config = pydicom.config
    old = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.RAISE
    try:
        yield
    finally:
        config.settings.writing_validation_mode = old


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a node on loopback with its store in a temporary directory."""
    return load_settings(
        environ={},
        storage_dir=tmp_path / "var",
        host="127.0.0.1",
        port=free_port(),
        http_port=free_port(),
        min_free_disk_mb=0,
    )


def require_program(name: str) -> str:
    """Path of an external program the test needs; the test command installs it.

    The virtual environment's own ``bin`` is skipped: pynetdicom installs scripts
    named like DCMTK's (``storescu``, ``echoscu`` ...) with other options.
    """
    venv_bin = os.path.realpath(os.path.join(sys.prefix, "bin"))
    search = os.pathsep.join(
        d for d in os.environ.get("PATH", os.defpath).split(os.pathsep)
        if d and os.path.realpath(d) != venv_bin
    )
    path = shutil.which(name, path=search)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/test installs it)")
    return path
