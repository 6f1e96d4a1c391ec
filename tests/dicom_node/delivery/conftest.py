"""Fixtures of the delivery tests: a migrated database, a store, results in the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Destination, Settings
from dicom_node.delivery.outbox import enqueue_results
from storage import jobs
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import ResultKind, Study
from storage.store import InstanceStore
from tests.conftest import free_port
from tests.dicom_node.delivery.peers import RecordingSCP, make_study

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``: the worker's passes get explicit times."""
    return T0 + timedelta(seconds=seconds)


@dataclass
class Outbox:
    """A database, a store and a way to put a study's results in the outbox."""

    sessions: sessionmaker[Session]
    store: InstanceStore
    tmp: Path

    def add_study(
        self, n: int, destinations: list[str], *, now: datetime = T0
    ) -> tuple[str, list[str]]:
        """A study with ``n`` results queued for ``destinations``: (study UID, SOP UIDs)."""
        study_uid, files = make_study(self.tmp / generate_uid(), n)
        with self.sessions() as session:
            study = Study(study_instance_uid=study_uid, first_received_at=now, last_received_at=now)
            session.add(study)
            session.flush()
            job, _ = jobs.enqueue_job(
                session=session, study_id=study.id, pipeline="ldh", model_version="1",
                amendment=0, now=now,
            )
            result_ids, uids = [], []
            for path in files:
                ds = dcmread(path)
                stored = self.store.put(
                    study_uid, str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID), path.read_bytes()
                )
                result = jobs.add_result(
                    session=session, job_id=job.id, sop_instance_uid=str(ds.SOPInstanceUID),
                    sop_class_uid=str(ds.SOPClassUID), kind=ResultKind.SC, path=stored.relpath,
                    sha256=stored.sha256, now=now,
                )
                result_ids.append(result.id)
                uids.append(str(ds.SOPInstanceUID))
            enqueue_results(
                session=session, result_ids=result_ids, destinations=destinations, now=now
            )
            session.commit()
        return study_uid, uids


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    """An outbox on a migrated SQLite database in ``tmp_path``."""
    engine = make_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    upgrade(engine)
    yield Outbox(make_session_factory(engine), InstanceStore(tmp_path / "store"), tmp_path / "made")
    engine.dispose()


@pytest.fixture
def scp() -> Iterator[RecordingSCP]:
    """A recording pynetdicom SCP (AE ``PACS``) on a free loopback port."""
    peer = RecordingSCP().start(free_port())
    yield peer
    peer.stop()


def with_destination(settings: Settings, port: int, *, name: str = "pacs", ae_title: str = "PACS",
                     max_attempts: int = 4) -> Settings:
    """``settings`` with one destination and a fast retry policy."""
    return settings.model_copy(update={
        "destinations": [Destination(name=name, ae_title=ae_title, host="127.0.0.1", port=port)],
        "delivery": settings.delivery.model_copy(update={
            "max_attempts": max_attempts, "backoff_initial_seconds": 10.0,
            "backoff_max_seconds": 60.0,
        }),
    })
