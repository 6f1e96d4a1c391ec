"""Repository functions: recording instances, assembly states, summaries, the audit trail."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from storage.errors import InvalidUID, StorageError
from storage.models import AuditEvent, Instance, Series, Study, StudyState
from storage.store import InstanceStore
from tests.storage.conftest import at

STUDY = "1.2.826.0.1.3680043.10.1"
MR = "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def record(
    session: Session,
    store: InstanceStore,
    *,
    series: str,
    sop: str,
    data: bytes | None = None,
    study: str = STUDY,
    now: datetime | None = None,
    study_attrs: dict[str, str | None] | None = None,
    series_attrs: dict[str, object] | None = None,
) -> str:
    """Put the bytes in the store and index them, as the C-STORE handler does."""
    stored = store.put(study, series, sop, data if data is not None else sop.encode())
    return repo.record_instance(
        session=session,
        stored=stored,
        study_uid=study,
        series_uid=series,
        sop_uid=sop,
        sop_class_uid=MR,
        transfer_syntax_uid=EXPLICIT_LE,
        calling_ae="MODALITY",
        peer="127.0.0.1:50000",
        study_attrs=study_attrs
        or {
            "patient_id": "PID-1",
            "patient_name": "Doe^Jane",
            "accession_number": "ACC1",
            "study_date": "20260102",
            "study_description": "MRI LUMBAR SPINE",
        },
        series_attrs=series_attrs
        or {"modality": "MR", "series_number": "3", "series_description": "T2 AX"},
        now=now or at(0),
    )


def count(session: Session, model: Any) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def test_new_instance_creates_study_series_and_row(
    sessions: sessionmaker[Session], store: InstanceStore
) -> None:
    with sessions() as s:
        assert record(s, store, series=f"{STUDY}.1", sop=f"{STUDY}.1.1", now=at(5)) == "new"
        s.commit()
    with sessions() as s:
        study = repo.get_study(session=s, study_uid=STUDY)
        assert study is not None
        assert study.state is StudyState.RECEIVING
        assert (study.forced, study.amendment, study.completed_at) == (False, 0, None)
        assert study.patient_id == "PID-1" and study.study_date == "20260102"
        assert study.first_received_at == at(5) == study.last_received_at
        assert study.last_received_at.tzinfo is not None
        (series,) = repo.series_of(session=s, study_id=study.id)
        assert (series.series_number, series.modality, series.instance_count) == (3, "MR", 1)
        (inst,) = repo.instances_of_study(session=s, study_uid=STUDY)
        assert inst.sop_instance_uid == f"{STUDY}.1.1" and inst.version == 1
        assert store.read(inst.path, sha256=inst.sha256) == f"{STUDY}.1.1".encode()
        assert (inst.calling_ae, inst.peer_address) == ("MODALITY", "127.0.0.1:50000")


def test_resend_same_bytes_is_one_row_and_duplicate(
    sessions: sessionmaker[Session], store: InstanceStore
) -> None:
    with sessions() as s:
        assert record(s, store, series=f"{STUDY}.1", sop=f"{STUDY}.1.1", now=at(0)) == "new"
        assert record(s, store, series=f"{STUDY}.1", sop=f"{STUDY}.1.1", now=at(9)) == "duplicate"
        s.commit()
    with sessions() as s:
        assert count(s, Instance) == 1
        (series,) = s.scalars(sa.select(Series))
        assert series.instance_count == 1
        # a duplicate changes nothing, not even the quiet timer
        assert series.last_received_at == at(0)


def test_resend_different_bytes_is_new_version(
    sessions: sessionmaker[Session], store: InstanceStore
) -> None:
    sop = f"{STUDY}.1.1"
    with sessions() as s:
        assert record(s, store, series=f"{STUDY}.1", sop=sop, data=b"v1", now=at(0)) == "new"
        assert (
            record(s, store, series=f"{STUDY}.1", sop=sop, data=b"v2", now=at(1)) == "new_version"
        )
        s.commit()
    with sessions() as s:
        (inst,) = s.scalars(sa.select(Instance))
        assert inst.version == 2
        assert store.read(inst.path, sha256=inst.sha256) == b"v2"
        # the first version's file is still there
        assert store.read(store.relpath_for(STUDY, f"{STUDY}.1", sop)) == b"v1"
        (series,) = s.scalars(sa.select(Series))
        assert series.instance_count == 1 and series.last_received_at == at(1)


def test_counters_and_last_received(sessions: sessionmaker[Session], store: InstanceStore) -> None:
    with sessions() as s:
        for i in range(5):
            record(s, store, series=f"{STUDY}.1", sop=f"{STUDY}.1.{i}", now=at(10 + i))
        for i in range(3):
            record(
                s,
                store,
                series=f"{STUDY}.2",
                sop=f"{STUDY}.2.{i}",
                now=at(20 + i),
                series_attrs={"modality": "MR", "series_number": 1, "series_description": "T1 SAG"},
            )
        # an instance that arrives late but carries an older time does not move the clock back
        record(s, store, series=f"{STUDY}.1", sop=f"{STUDY}.1.99", now=at(1))
        s.commit()
    with sessions() as s:
        study = repo.get_study(session=s, study_uid=STUDY)
        assert study is not None
        assert study.first_received_at == at(10) and study.last_received_at == at(22)
        series = repo.series_of(session=s, study_id=study.id)
        # ordered by Series Number
        assert [(x.series_number, x.instance_count) for x in series] == [(1, 3), (3, 6)]
        assert series[1].last_received_at == at(14)
        assert len(repo.instances_of_study(session=s, study_uid=STUDY)) == 9


def test_first_values_win_and_gaps_are_filled(
    sessions: sessionmaker[Session], store: InstanceStore
) -> None:
    with sessions() as s:
        record(
            s,
            store,
            series=f"{STUDY}.1",
            sop=f"{STUDY}.1.1",
            study_attrs={"patient_id": "PID-1", "study_description": None},
            series_attrs={"modality": "MR", "series_number": "x7"},
        )
        record(
            s,
            store,
            series=f"{STUDY}.1",
            sop=f"{STUDY}.1.2",
            study_attrs={"patient_id": "OTHER", "study_description": "LSPINE"},
            series_attrs={"modality": "CT", "series_number": " 7 ", "body_part_examined": "LSPINE"},
        )
        s.commit()
    with sessions() as s:
        study = repo.get_study(session=s, study_uid=STUDY)
        assert study is not None
        assert (study.patient_id, study.study_description) == ("PID-1", "LSPINE")
        (series,) = repo.series_of(session=s, study_id=study.id)
        assert (series.modality, series.series_number, series.body_part_examined) == (
            "MR",
            7,
            "LSPINE",
        )


def test_complete_then_late_instance_amends(
    sessions: sessionmaker[Session], store: InstanceStore
) -> None:
    with sessions() as s:
        record(s, store, series=f"{STUDY}.1", sop=f"{STUDY}.1.1", now=at(0))
        s.commit()
    with sessions() as s:
        (study,) = repo.open_studies(session=s)
        repo.mark_study_complete(session=s, study_id=study.id, forced=True, now=at(60))
        # the object already in the session shows the new state
        assert study.state is StudyState.COMPLETE and study.forced
        s.commit()
    with sessions() as s:
        assert repo.open_studies(session=s) == []
        study = repo.get_study(session=s, study_uid=STUDY)
        assert study is not None
        assert (study.state, study.forced, study.completed_at) == (
            StudyState.COMPLETE,
            True,
            at(60),
        )
        # a re-sent duplicate after completion changes nothing
        assert record(s, store, series=f"{STUDY}.1", sop=f"{STUDY}.1.1", now=at(70)) == "duplicate"
        s.commit()
        assert repo.open_studies(session=s) == []
        # a new instance does: amendment 1
        assert record(s, store, series=f"{STUDY}.1", sop=f"{STUDY}.1.2", now=at(80)) == "new"
        assert record(s, store, series=f"{STUDY}.1", sop=f"{STUDY}.1.3", now=at(81)) == "new"
        s.commit()
    with sessions() as s:
        (study,) = repo.open_studies(session=s)
        assert (study.state, study.amendment, study.completed_at) == (StudyState.AMENDED, 1, None)
        repo.mark_study_complete(session=s, study_id=study.id, forced=False, now=at(120))
        s.commit()
        # a changed instance after the second completion: amendment 2
        assert (
            record(s, store, series=f"{STUDY}.1", sop=f"{STUDY}.1.1", data=b"fix", now=at(130))
            == "new_version"
        )
        s.commit()
        study = repo.get_study(session=s, study_uid=STUDY)
        assert study is not None
        assert (study.state, study.amendment, study.forced) == (StudyState.AMENDED, 2, False)


def test_mark_unknown_study_complete_raises(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, pytest.raises(StorageError):
        repo.mark_study_complete(session=s, study_id=12345, forced=False, now=at(0))


@pytest.mark.parametrize(
    "field,value", [("sop", ""), ("sop", "1." + "2" * 70), ("series", ""), ("study", "9" * 65)]
)
def test_unindexable_uids_are_refused(
    sessions: sessionmaker[Session], store: InstanceStore, field: str, value: str
) -> None:
    uids = {"study": STUDY, "series": f"{STUDY}.1", "sop": f"{STUDY}.1.1"}
    uids[field] = value
    stored = store.put("1", "2", "3", b"x")  # the file is not what is checked here
    with sessions() as s:
        with pytest.raises(InvalidUID):
            repo.record_instance(
                session=s,
                stored=stored,
                study_uid=uids["study"],
                series_uid=uids["series"],
                sop_uid=uids["sop"],
                sop_class_uid=MR,
                transfer_syntax_uid=EXPLICIT_LE,
                calling_ae=None,
                peer=None,
                study_attrs={},
                series_attrs={},
                now=at(0),
            )
        assert count(s, Study) == 0


def test_series_uid_reused_by_another_study_is_refused(
    sessions: sessionmaker[Session], store: InstanceStore
) -> None:
    with sessions() as s:
        record(s, store, series="1.2.3.1", sop="1.2.3.1.1")
        s.commit()
        with pytest.raises(StorageError):
            record(s, store, study="9.9.9", series="1.2.3.1", sop="9.9.9.1.1")
        s.rollback()
        assert count(s, Instance) == 1


def test_study_summaries(sessions: sessionmaker[Session], store: InstanceStore) -> None:
    other = "1.2.826.0.1.3680043.10.2"
    with sessions() as s:
        assert repo.study_summaries(session=s) == []
        for i in range(4):
            record(s, store, series=f"{STUDY}.3", sop=f"{STUDY}.3.{i}", now=at(i))
        record(
            s,
            store,
            series=f"{STUDY}.1",
            sop=f"{STUDY}.1.0",
            now=at(5),
            series_attrs={"modality": "MR", "series_number": "1", "series_description": "T1 SAG"},
        )
        record(s, store, study=other, series=f"{other}.1", sop=f"{other}.1.0", now=at(100))
        s.commit()
        study = repo.get_study(session=s, study_uid=STUDY)
        assert study is not None
        repo.mark_study_complete(session=s, study_id=study.id, forced=True, now=at(50))
        s.commit()
        summaries = repo.study_summaries(session=s)
        assert len(repo.study_summaries(session=s, limit=1)) == 1
    # newest first
    assert [x["study_instance_uid"] for x in summaries] == [other, STUDY]
    first = summaries[1]
    assert first["state"] == "complete" and first["forced"] is True and first["amendment"] == 0
    assert (first["series_count"], first["instance_count"]) == (2, 5)
    assert first["last_received_at"] == at(5).isoformat()
    assert first["completed_at"] == at(50).isoformat()
    assert first["routing"] is None and first["jobs"] == []  # not routed: no decision, no job
    assert [
        (x["series_number"], x["series_description"], x["modality"], x["instance_count"])
        for x in first["series"]
    ] == [(1, "T1 SAG", "MR", 1), (3, "T2 AX", "MR", 4)]
    # no patient identifiers in what `status` prints
    text = repr(summaries)
    assert "PID-1" not in text and "Doe^Jane" not in text
    assert summaries[0]["state"] == "receiving"


def test_audit_events(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        repo.add_audit_event(
            session=s,
            kind="store",
            outcome="0x0000",
            calling_ae="MODALITY",
            called_ae="DICOM_NODE",
            peer="10.0.0.1:1234",
            study_uid=STUDY,
            series_uid=f"{STUDY}.1",
            sop_uid=f"{STUDY}.1.1",
            now=at(3),
        )
        # bad input is recorded as received, however long
        repo.add_audit_event(
            session=s, kind="reject", outcome="0xA900", sop_uid="9" * 300, detail="bad UID"
        )
        s.commit()
    with sessions() as s:
        events = repo.audit_events(session=s)
        assert [e.kind for e in events] == ["reject", "store"]  # newest first
        (store_event,) = repo.audit_events(session=s, study_uid=STUDY)
        assert (store_event.outcome, store_event.peer, store_event.at) == (
            "0x0000",
            "10.0.0.1:1234",
            at(3),
        )
        (reject,) = repo.audit_events(session=s, kind="reject")
        assert reject.sop_uid == "9" * 300
        assert reject.at.tzinfo is not None
        assert count(s, AuditEvent) == 2


def test_naive_datetimes_are_refused(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        repo.add_audit_event(session=s, kind="echo", outcome="0x0000", now=datetime(2026, 1, 1))
        with pytest.raises(sa.exc.StatementError):
            s.flush()


def test_times_come_back_in_utc(sessions: sessionmaker[Session]) -> None:
    from datetime import timedelta

    plus_two = timezone(timedelta(hours=2))
    with sessions() as s:
        repo.add_audit_event(
            session=s, kind="echo", outcome="0x0000", now=datetime(2026, 1, 1, 12, tzinfo=plus_two)
        )
        s.commit()
    with sessions() as s:
        (event,) = repo.audit_events(session=s)
        assert event.at == datetime(2026, 1, 1, 10, tzinfo=timezone.utc)
        assert event.at.utcoffset() == timedelta(0)


def test_file_written_but_never_indexed_is_indexed_on_resend(
    sessions: sessionmaker[Session], store: InstanceStore
) -> None:
    """Killed between the write and the commit: the sender re-sends, the row appears once."""
    sop = f"{STUDY}.1.1"
    store.put(STUDY, f"{STUDY}.1", sop, b"bytes")  # then the process died: no row
    with sessions() as s:
        assert record(s, store, series=f"{STUDY}.1", sop=sop, data=b"bytes") == "new"
        s.commit()
        (inst,) = s.scalars(sa.select(Instance))
        assert inst.version == 1 and store.read(inst.path, sha256=inst.sha256) == b"bytes"


def test_uid_resent_under_another_series_moves_its_count(
    sessions: sessionmaker[Session], store: InstanceStore
) -> None:
    sop = f"{STUDY}.9.9"
    with sessions() as s:
        assert record(s, store, series=f"{STUDY}.1", sop=sop, data=b"same") == "new"
        assert record(s, store, series=f"{STUDY}.2", sop=sop, data=b"same") == "new_version"
        s.commit()
        counts = {x.series_instance_uid: x.instance_count for x in s.scalars(sa.select(Series))}
        assert counts == {f"{STUDY}.1": 0, f"{STUDY}.2": 1}
        (inst,) = s.scalars(sa.select(Instance))
        assert inst.version == 2
        assert inst.path == store.relpath_for(STUDY, f"{STUDY}.2", sop)


def test_completion_is_refused_when_an_instance_arrived_meanwhile(
    sessions: sessionmaker[Session], store: InstanceStore
) -> None:
    with sessions() as s:
        record(s, store, series=f"{STUDY}.1", sop=f"{STUDY}.1.1", now=at(0))
        s.commit()
        (study,) = repo.open_studies(session=s)
        seen = study.last_received_at
        # another association records a late instance before the assembler's update
        record(s, store, series=f"{STUDY}.1", sop=f"{STUDY}.1.2", now=at(30))
        s.commit()
        assert not repo.mark_study_complete(
            session=s, study_id=study.id, forced=False, now=at(31), unless_received_after=seen
        )
        assert [x.id for x in repo.open_studies(session=s)] == [study.id]
        assert repo.mark_study_complete(
            session=s, study_id=study.id, forced=False, now=at(45), unless_received_after=at(30)
        )
        s.commit()
        assert repo.open_studies(session=s) == []
