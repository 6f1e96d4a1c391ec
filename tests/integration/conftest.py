"""Fixtures of the integration tests: Orthanc as the site's PACS, a node between."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.orthanc import OrthancProcess


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
