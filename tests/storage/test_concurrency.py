"""Several associations recording instances of one new study at the same moment."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from storage.db import make_session_factory
from storage.models import Instance, Series, Study
from storage.store import InstanceStore
from tests.storage.conftest import at

STUDY = "1.2.826.0.1.3680043.10.77"
THREADS = 6
SOPS = 60
#: every SOP Instance UID is sent by this many threads (a PACS re-sending)
COPIES = 3


def _hammer(sessions: sessionmaker[Session], store: InstanceStore) -> Counter[str]:
    """``THREADS`` threads record ``SOPS`` instances of one study, each sent ``COPIES`` times."""
    outcomes: Counter[str] = Counter()
    per_sop: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)
    work = [
        [f"{STUDY}.{i % 3}.{i}" for i in range(SOPS) if (i + k) % THREADS < COPIES]
        for k in range(THREADS)
    ]

    def association(k: int) -> None:
        barrier.wait()
        try:
            for n, sop in enumerate(work[k]):
                series = sop.rsplit(".", 1)[0]
                stored = store.put(STUDY, series, sop, sop.encode() * 100)
                with sessions() as s:
                    outcome = repo.record_instance(
                        session=s,
                        stored=stored,
                        study_uid=STUDY,
                        series_uid=series,
                        sop_uid=sop,
                        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
                        transfer_syntax_uid="1.2.840.10008.1.2.1",
                        calling_ae=f"SCU{k}",
                        peer=f"127.0.0.1:{40000 + k}",
                        # each writer knows other attributes: gaps get filled concurrently
                        study_attrs={repo.STUDY_ATTRS[(k + n) % 5]: f"v{k}"},
                        series_attrs={
                            "series_number": series[-1],
                            repo.SERIES_ATTRS[(k + n) % 5 if (k + n) % 5 != 1 else 0]: f"v{k}",
                        },
                        now=at(n),
                    )
                    s.commit()
                with lock:
                    outcomes[outcome] += 1
                    per_sop.setdefault(sop, []).append(outcome)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=association, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], f"a writer failed: {errors[0]!r}"
    assert len(per_sop) == SOPS
    for sop, seen in per_sop.items():
        assert sorted(seen) == ["duplicate"] * (COPIES - 1) + ["new"], sop
    return outcomes


def _check_index(engine: Engine, store: InstanceStore) -> None:
    with make_session_factory(engine)() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Study)) == 1
        series = list(s.scalars(sa.select(Series)))
        assert len(series) == 3
        assert sum(x.instance_count for x in series) == SOPS
        instances = list(s.scalars(sa.select(Instance)))
        assert len(instances) == SOPS
        assert len({i.sop_instance_uid for i in instances}) == SOPS
        for x in series:
            assert x.instance_count == sum(1 for i in instances if i.series_id == x.id)
        for i in instances:
            assert store.read(i.path, sha256=i.sha256) == i.sop_instance_uid.encode() * 100
        (summary,) = repo.study_summaries(session=s)
        assert summary["instance_count"] == SOPS


def test_concurrent_writers_on_sqlite(engine: Engine, store: InstanceStore) -> None:
    outcomes = _hammer(make_session_factory(engine), store)
    assert outcomes == {"new": SOPS, "duplicate": SOPS * (COPIES - 1)}
    _check_index(engine, store)


@pytest.mark.postgres
def test_concurrent_writers_on_postgres(pg_engine: Engine, store: InstanceStore) -> None:
    outcomes = _hammer(make_session_factory(pg_engine), store)
    assert outcomes == {"new": SOPS, "duplicate": SOPS * (COPIES - 1)}
    _check_index(pg_engine, store)
