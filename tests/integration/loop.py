"""A site in a box: Orthanc with the Lua router, and a ``serve`` subprocess between."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from storage.db import make_engine, make_session_factory
from storage.models import Instance, Series, Study, StudyState
from tests.conftest import free_port
from tests.dicom_node.serve_harness import ServeProcess, start_serve
from tests.integration.orthanc import LUA_ROUTER, OrthancProcess

__all__ = ["node_modalities", "node_study", "pacs_and_node"]


def node_study(node: ServeProcess, study_uid: str) -> tuple[StudyState | None, int]:
    """The node's assembly state of the study and how many instances it indexed."""
    engine = make_engine(node.settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            state = session.scalar(sa.select(Study.state).where(Study.study_instance_uid == study_uid))
            count = session.scalar(
                sa.select(sa.func.count(Instance.id)).join(Series).join(Study)
                .where(Study.study_instance_uid == study_uid)) or 0
            return state, int(count)
    finally:
        engine.dispose()


def pacs_and_node(tmp_path: Path, orthanc_factory: type[OrthancProcess], *,
                  stow: bool = False) -> tuple[OrthancProcess, ServeProcess]:
    """Orthanc with the Lua router pointing at a node whose destination is that Orthanc.

    With ``stow`` the node delivers by STOW-RS to Orthanc's DICOMweb plugin instead of C-STORE.
    """
    node_port = free_port()
    orthanc = orthanc_factory(tmp_path / "orthanc", lua=[LUA_ROUTER], dicomweb=stow,
                              modalities={"dicom-node": ["DICOM_NODE", "127.0.0.1", node_port]})
    destination: dict[str, Any] = {"name": "orthanc", "ae_title": orthanc.aet, "host": "127.0.0.1",
                   "port": orthanc.dicom_port}
    if stow:
        destination["stow_url"] = f"{orthanc.url}/dicom-web"
    node = start_serve(tmp_path / "node", port=node_port, destinations=[destination],
                       delivery={"backoff_initial_seconds": 1.0, "backoff_max_seconds": 2.0})
    orthanc.start()
    return orthanc, node


def node_modalities(node: ServeProcess, study_uid: str) -> set[str]:
    """The modalities of the series the node received for the study."""
    engine = make_engine(node.settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            return {str(m) for m in session.scalars(
                sa.select(Series.modality).join(Study).where(Study.study_instance_uid == study_uid))}
    finally:
        engine.dispose()
