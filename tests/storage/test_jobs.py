"""Jobs, results and deliveries: idempotent enqueueing, one claimant, retries, dead letters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from storage import deliveries, jobs, repo
from storage.errors import StorageError
from storage.models import DeliveryState, JobState, ResultKind
from storage.store import InstanceStore
from tests.storage.conftest import at

STUDY = "1.2.826.0.1.3680043.10.99"


def _study_id(session: Session, store: InstanceStore) -> int:
    stored = store.put(STUDY, f"{STUDY}.1", f"{STUDY}.1.1", b"x")
    repo.record_instance(
        session=session,
        stored=stored,
        study_uid=STUDY,
        series_uid=f"{STUDY}.1",
        sop_uid=f"{STUDY}.1.1",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        calling_ae=None,
        peer=None,
        study_attrs={},
        series_attrs={},
        now=at(0),
    )
    study = repo.get_study(session=session, study_uid=STUDY)
    assert study is not None
    return study.id


def test_job_lifecycle(sessions: sessionmaker[Session], store: InstanceStore) -> None:
    with sessions() as s:
        sid = _study_id(s, store)
        job, created = jobs.enqueue_job(
            session=s, study_id=sid, pipeline="ldh", model_version="1.0", amendment=0, now=at(1)
        )
        again, created_again = jobs.enqueue_job(
            session=s, study_id=sid, pipeline="ldh", model_version="1.0", amendment=0, now=at(2)
        )
        assert created and not created_again and again.id == job.id
        low, _ = jobs.enqueue_job(
            session=s,
            study_id=sid,
            pipeline="sij",
            model_version="1.0",
            amendment=0,
            now=at(1),
            priority=-1,
        )
        s.commit()

        claimed = jobs.claim_job(session=s, worker="w1", now=at(3))
        assert claimed is not None and claimed.id == job.id
        assert (claimed.state, claimed.attempts, claimed.worker) == (JobState.RUNNING, 1, "w1")
        # not claimable twice
        other = jobs.claim_job(session=s, worker="w2", now=at(3), pipelines=["ldh"])
        assert other is None
        # a retry later
        state = jobs.fail_job(session=s, job_id=job.id, error="oom", now=at(4), retry_at=at(60))
        assert state is JobState.FAILED
        assert jobs.claim_job(session=s, worker="w2", now=at(5), pipelines=["ldh"]) is None
        retried = jobs.claim_job(session=s, worker="w2", now=at(61), pipelines=["ldh"])
        assert retried is not None and retried.attempts == 2
        result = jobs.add_result(
            session=s,
            job_id=job.id,
            sop_instance_uid="2.25.1",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.66.4",
            kind=ResultKind.SEG,
            path="results/a.dcm",
            sha256="a" * 64,
            now=at(62),
        )
        jobs.finish_job(session=s, job_id=job.id, now=at(63))
        assert retried.state is JobState.SUCCEEDED and retried.error is None
        with pytest.raises(StorageError):
            jobs.finish_job(session=s, job_id=job.id, now=at(64))
        # a re-run replaces the result of the same SOP Instance UID
        replaced = jobs.add_result(
            session=s,
            job_id=job.id,
            sop_instance_uid="2.25.1",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.66.4",
            kind=ResultKind.SEG,
            path="results/b.dcm",
            sha256="b" * 64,
            now=at(65),
        )
        assert replaced.id == result.id and replaced.path == "results/b.dcm"
        assert [r.sha256 for r in jobs.results_of_job(session=s, job_id=job.id)] == ["b" * 64]
        # the low-priority job is next; failing without retry makes it dead
        nxt = jobs.claim_job(session=s, worker="w1", now=at(66))
        assert nxt is not None and nxt.id == low.id
        assert (
            jobs.fail_job(session=s, job_id=low.id, error="bad", now=at(67), retry_at=None)
            is JobState.DEAD
        )
        assert jobs.claim_job(session=s, worker="w1", now=at(10_000)) is None
        s.commit()
        assert [j.state for j in jobs.list_jobs(session=s)] == [JobState.DEAD, JobState.SUCCEEDED]
        assert len(jobs.list_jobs(session=s, state=JobState.DEAD, study_id=sid)) == 1


def test_stale_running_job_is_requeued(
    sessions: sessionmaker[Session], store: InstanceStore
) -> None:
    with sessions() as s:
        sid = _study_id(s, store)
        job, _ = jobs.enqueue_job(
            session=s, study_id=sid, pipeline="ldh", model_version="1", amendment=0, now=at(0)
        )
        assert jobs.claim_job(session=s, worker="gone", now=at(1)) is not None
        assert jobs.requeue_stale_jobs(session=s, started_before=at(0), now=at(2)) == 0
        assert jobs.requeue_stale_jobs(session=s, started_before=at(100), now=at(100)) == 1
        again = jobs.claim_job(session=s, worker="w", now=at(101))
        assert again is not None and again.id == job.id and again.attempts == 2
        s.commit()


def test_delivery_lifecycle(sessions: sessionmaker[Session], store: InstanceStore) -> None:
    with sessions() as s:
        sid = _study_id(s, store)
        job, _ = jobs.enqueue_job(
            session=s, study_id=sid, pipeline="ldh", model_version="1", amendment=0, now=at(0)
        )
        result = jobs.add_result(
            session=s,
            job_id=job.id,
            sop_instance_uid="2.25.7",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.88.34",
            kind=ResultKind.SR,
            path="r.dcm",
            sha256="c" * 64,
            now=at(1),
        )
        pacs = deliveries.enqueue_delivery(
            session=s, result_id=result.id, destination="pacs", now=at(2)
        )
        web = deliveries.enqueue_delivery(
            session=s, result_id=result.id, destination="web", now=at(2)
        )
        s.commit()

        taken = deliveries.claim_deliveries(session=s, now=at(3), destination="pacs")
        assert [d.id for d in taken] == [pacs.id]
        assert (taken[0].state, taken[0].attempts) == (DeliveryState.SENDING, 1)
        assert deliveries.claim_deliveries(session=s, now=at(3), destination="pacs") == []
        deliveries.mark_delivered(session=s, delivery_id=pacs.id, now=at(4))
        with pytest.raises(StorageError):
            deliveries.mark_delivered(session=s, delivery_id=pacs.id, now=at(5))

        (w,) = deliveries.claim_deliveries(session=s, now=at(3))
        assert w.id == web.id
        assert (
            deliveries.mark_delivery_failed(
                session=s, delivery_id=web.id, error="0xA700", retry_at=at(100)
            )
            is DeliveryState.FAILED
        )
        assert deliveries.claim_deliveries(session=s, now=at(50)) == []
        (w,) = deliveries.claim_deliveries(session=s, now=at(100))
        assert w.attempts == 2
        assert (
            deliveries.mark_delivery_failed(
                session=s, delivery_id=web.id, error="refused", retry_at=None
            )
            is DeliveryState.DEAD
        )
        assert deliveries.claim_deliveries(session=s, now=at(10_000)) == []
        # resend: dead and delivered go back to pending with no attempts
        assert deliveries.resend(session=s, delivery_ids=[web.id, pacs.id], now=at(200)) == 2
        states = {
            d.destination: (d.state, d.attempts)
            for d in deliveries.deliveries_of_result(session=s, result_id=result.id)
        }
        assert states == {"pacs": (DeliveryState.PENDING, 0), "web": (DeliveryState.PENDING, 0)}
        # a re-enqueue (a re-run replaced the result) resets too
        taken = deliveries.claim_deliveries(session=s, now=at(201))
        assert len(taken) == 2
        assert deliveries.requeue_stale_deliveries(session=s, now=at(202)) == 2
        d = deliveries.enqueue_delivery(
            session=s, result_id=result.id, destination="pacs", now=at(203)
        )
        assert (d.state, d.attempts, d.last_error) == (DeliveryState.PENDING, 0, None)
        s.commit()


def test_concurrent_workers_claim_each_job_once(
    sessions: sessionmaker[Session], store: InstanceStore
) -> None:
    import threading

    with sessions() as s:
        sid = _study_id(s, store)
        for i in range(20):
            jobs.enqueue_job(
                session=s, study_id=sid, pipeline=f"p{i}", model_version="1", amendment=0, now=at(0)
            )
        s.commit()
    done: list[int] = []
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            while True:
                with sessions() as s:
                    job = jobs.claim_job(session=s, worker=name, now=at(1))
                    if job is None:
                        return
                    s.commit()
                    jobs.finish_job(session=s, job_id=job.id, now=at(2))
                    s.commit()
                    done.append(job.id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(done) == len(set(done)) == 20
    with sessions() as s:
        listed = jobs.list_jobs(session=s)
        assert {j.state for j in listed} == {JobState.SUCCEEDED}
        assert {j.attempts for j in listed} == {1}
