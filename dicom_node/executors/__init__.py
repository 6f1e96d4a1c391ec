"""Executors: where jobs run (``local`` threads in ``serve``, or ``celery`` workers)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from dicom_node.executors.base import Executor
from storage.store import InstanceStore

__all__ = ["Executor", "build_executor"]


def build_executor(
    settings: Settings,
    session_factory: sessionmaker[Session],
    store: InstanceStore,
    *,
    on_results: Callable[[], None] | None = None,
) -> Executor:
    """The executor ``settings.executor`` names."""
    if settings.executor == "celery":
        from dicom_node.executors.celery_executor import CeleryExecutor

        return CeleryExecutor(settings, session_factory, store)
    from dicom_node.executors.local import LocalExecutor

    return LocalExecutor(settings, session_factory, store, on_results=on_results)
