"""Fixtures of the integration tests: Orthanc as the site's PACS, a node between."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.integration.orthanc import OrthancProcess


@pytest.fixture(scope="session")
def lumbar_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Path]]:
    """A lumbar phantom study on disk: ``(Study Instance UID, files)``."""
    from inference.phantoms.lumbar import generate_lumbar_study

    root = generate_lumbar_study(tmp_path_factory.mktemp("lumbar") / "study", seed=11)
    files = sorted(root.rglob("*.dcm"))
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID), files


@pytest.fixture
def orthanc_factory(tmp_path: Path) -> Iterator[type[OrthancProcess]]:
    """Make Orthanc processes (``factory(workdir, ...)``), all stopped after the test."""
    started: list[OrthancProcess] = []

    class Tracked(OrthancProcess):
        def start(self, timeout: float = 60.0) -> OrthancProcess:
            started.append(self)
            return super().start(timeout)

    try:
        yield Tracked
    finally:
        for orthanc in started:
            orthanc.stop()


@pytest.fixture(scope="session")
def sij_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Path]]:
    """An SIJ phantom study on disk: ``(Study Instance UID, files)``."""
    from inference.phantoms.sij import generate_sij_study

    root = generate_sij_study(tmp_path_factory.mktemp("sij") / "study", seed=5)
    files = sorted(root.rglob("*.dcm"))
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID), files
