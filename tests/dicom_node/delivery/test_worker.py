"""The retry loop against a real pynetdicom SCP on loopback, pass by pass with explicit times."""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from config.settings import Settings
from dicom_node.delivery.outbox import dead_delivery_ids, delivery_ids_of_study
from dicom_node.delivery.worker import DeliveryWorker, backoff_seconds
from storage.deliveries import claim_deliveries, resend
from storage.models import Delivery, DeliveryState
from tests.conftest import free_port
from tests.dicom_node.delivery.conftest import Outbox, at, with_destination
from tests.dicom_node.delivery.peers import RecordingSCP


def _rows(outbox: Outbox) -> list[Delivery]:
    with outbox.sessions() as session:
        return list(session.scalars(sa.select(Delivery).order_by(Delivery.id)))


def _worker(settings: Settings, outbox: Outbox) -> DeliveryWorker:
    return DeliveryWorker(settings, outbox.sessions, outbox.store, rng=random.Random(7))


def test_each_study_on_one_association(
    outbox: Outbox, scp: RecordingSCP, settings: Settings
) -> None:
    settings = with_destination(settings, scp.port)
    _, first = outbox.add_study(3, ["pacs"])
    _, second = outbox.add_study(2, ["pacs"])
    worker = _worker(settings, outbox)
    assert worker.run_once(at(1)) == 5
    assert scp.associations == 2
    assert sorted(scp.stored) == sorted(first + second)
    assert {r.state for r in _rows(outbox)} == {DeliveryState.DELIVERED}
    assert worker.run_once(at(2)) == 0
    assert scp.associations == 2


def test_receiver_down_then_up_arrives_once_after_backoff(
    outbox: Outbox, settings: Settings
) -> None:
    port = free_port()
    settings = with_destination(settings, port)
    _, uids = outbox.add_study(2, ["pacs"])
    worker = _worker(settings, outbox)

    assert worker.run_once(at(0)) == 2  # nothing listening
    rows = _rows(outbox)
    assert {r.state for r in rows} == {DeliveryState.FAILED}
    assert all("no-association" in (r.last_error or "") for r in rows)
    first_delay = (rows[0].next_attempt_at - at(0)).total_seconds()
    assert 8.0 <= first_delay <= 10.0  # initial 10 s, jitter 80-100 %

    assert worker.run_once(at(5)) == 0  # not due yet
    assert worker.run_once(at(10)) == 2  # still down: the wait doubles
    second_delay = (_rows(outbox)[0].next_attempt_at - at(10)).total_seconds()
    assert 16.0 <= second_delay <= 20.0

    scp = RecordingSCP().start(port)
    try:
        assert worker.run_once(at(20)) == 0
        assert worker.run_once(at(30)) == 2
        assert worker.run_once(at(1000)) == 0
    finally:
        scp.stop()
    assert Counter(scp.stored) == Counter(uids)  # each exactly once
    assert scp.associations == 1
    rows = _rows(outbox)
    assert {r.state for r in rows} == {DeliveryState.DELIVERED}
    assert [r.attempts for r in rows] == [3, 3]


def test_failure_status_retried_then_dead_then_resent(
    outbox: Outbox, scp: RecordingSCP, settings: Settings
) -> None:
    settings = with_destination(settings, scp.port, max_attempts=3)
    study, uids = outbox.add_study(2, ["pacs"])
    worker = _worker(settings, outbox)
    scp.status = 0xA700
    t = 0.0
    for attempt in range(1, 4):
        assert worker.run_once(at(t)) == 2
        rows = _rows(outbox)
        assert all("0xA700" in (r.last_error or "") for r in rows)
        assert all(r.attempts == attempt for r in rows)
        t += 1000.0
    assert {r.state for r in rows} == {DeliveryState.DEAD}
    assert scp.requests == 6 and scp.stored == []
    assert worker.run_once(at(t + 10_000)) == 0  # dead letters stay put

    with outbox.sessions() as session:
        dead = dead_delivery_ids(session=session)
        assert dead == delivery_ids_of_study(session=session, study_uid=study)
        assert resend(session=session, delivery_ids=dead, now=at(t)) == 2
        session.commit()
    scp.status = 0x0000
    assert worker.run_once(at(t)) == 2
    assert sorted(scp.stored) == sorted(uids)
    assert {r.state for r in _rows(outbox)} == {DeliveryState.DELIVERED}


def test_unknown_destination_and_missing_file_are_dead_at_once(
    outbox: Outbox, scp: RecordingSCP, settings: Settings
) -> None:
    settings = with_destination(settings, scp.port)
    outbox.add_study(1, ["gone"])
    _, uids = outbox.add_study(2, ["pacs"])
    rows = _rows(outbox)
    with outbox.sessions() as session:
        delivery = session.get(Delivery, rows[1].id)
        assert delivery is not None
        outbox.store.path(delivery.result.path).unlink()
    assert _worker(settings, outbox).run_once(at(0)) == 3
    rows = _rows(outbox)
    assert [r.state for r in rows] == [DeliveryState.DEAD, DeliveryState.DEAD,
                                        DeliveryState.DELIVERED]
    assert "not in the settings" in (rows[0].last_error or "")
    assert "result file" in (rows[1].last_error or "")
    assert scp.stored == [uids[1]]


def test_backoff_is_capped_with_jitter(settings: Settings) -> None:
    policy = settings.delivery.model_copy(
        update={"backoff_initial_seconds": 10.0, "backoff_max_seconds": 3600.0}
    )
    rng = random.Random(1)
    waits = [backoff_seconds(n, policy, rng) for n in range(1, 30)]
    assert 8.0 <= waits[0] <= 10.0 and 16.0 <= waits[1] <= 20.0
    assert all(0.8 * 3600 <= w <= 3600 for w in waits[9:])
    assert len({round(w, 6) for w in waits[9:]}) > 1  # jittered, not lock step


def test_thread_requeues_stale_sending_rows_on_start(
    outbox: Outbox, scp: RecordingSCP, settings: Settings
) -> None:
    settings = with_destination(settings, scp.port)
    _, uids = outbox.add_study(3, ["pacs"])
    with outbox.sessions() as session:  # a sender that claimed them and died
        assert len(claim_deliveries(session=session, now=at(0))) == 3
        session.commit()
    worker = DeliveryWorker(settings, outbox.sessions, outbox.store, poll_seconds=0.05)
    assert worker.run_once() == 0  # "sending" rows are not due
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(scp.stored) < 3:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert sorted(scp.stored) == sorted(uids)
    rows = _rows(outbox)
    assert {r.state for r in rows} == {DeliveryState.DELIVERED}
    assert all(r.attempts == 2 for r in rows)
    assert all(r.delivered_at is not None and r.delivered_at - at(0) > timedelta(0) for r in rows)


def test_sender_destinations_match_calling_ae(outbox: Outbox, settings: Settings) -> None:
    from config.settings import Destination
    from dicom_node.delivery.outbox import sender_destinations
    from storage import repo

    study = "1.2.3.4"
    stored = outbox.store.put(study, "1.2.3.4.1", "1.2.3.4.1.1", b"x")
    with outbox.sessions() as session:
        repo.record_instance(
            session=session, stored=stored, study_uid=study, series_uid="1.2.3.4.1",
            sop_uid="1.2.3.4.1.1", sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
            transfer_syntax_uid="1.2.840.10008.1.2.1", calling_ae="MODALITY", peer="127.0.0.1",
            study_attrs={}, series_attrs={}, now=at(0),
        )
        session.commit()
        dests = [Destination(name=n, ae_title=a, host="h", port=104)
                 for n, a in (("pacs", "PACS"), ("back", "MODALITY"))]
        assert [d.name for d in sender_destinations(
            session=session, study_uid=study, destinations=dests)] == ["back"]
        assert sender_destinations(session=session, study_uid="9.9", destinations=dests) == []


def test_two_destinations_one_down(outbox: Outbox, scp: RecordingSCP, settings: Settings) -> None:
    from config.settings import Destination

    settings = with_destination(settings, scp.port)
    down = Destination(name="down", ae_title="DOWN", host="127.0.0.1", port=free_port())
    settings = settings.model_copy(update={"destinations": [*settings.destinations, down]})
    _, uids = outbox.add_study(2, ["pacs", "down"])
    assert _worker(settings, outbox).run_once(at(0)) == 4
    assert sorted(scp.stored) == sorted(uids) and scp.associations == 1
    states = {(r.destination, r.state) for r in _rows(outbox)}
    assert states == {("pacs", DeliveryState.DELIVERED), ("down", DeliveryState.FAILED)}


def test_a_sender_that_raises_leaves_no_row_sending(outbox: Outbox, settings: Settings) -> None:
    settings = with_destination(settings, free_port())

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    outbox.add_study(2, ["pacs"])
    worker = DeliveryWorker(settings, outbox.sessions, outbox.store, send=broken)
    assert worker.run_once(at(0)) == 2
    rows = _rows(outbox)
    assert {r.state for r in rows} == {DeliveryState.FAILED}
    assert all("RuntimeError: bug" in (r.last_error or "") for r in rows)
