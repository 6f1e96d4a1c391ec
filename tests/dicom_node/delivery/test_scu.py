"""The C-STORE sender against real peers on loopback."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from config.settings import Destination, Settings
from dicom_node.delivery.scu import Failure, send_study
from tests.conftest import free_port, require_program
from tests.dicom_node.delivery.peers import (
    RecordingSCP,
    make_study,
    start_storescp,
    stop_process,
)


def _dest(port: int, ae_title: str = "PACS") -> Destination:
    return Destination(name="pacs", ae_title=ae_title, host="127.0.0.1", port=port)


def test_one_association_per_study_all_objects(
    scp: RecordingSCP, settings: Settings, tmp_path: Path
) -> None:
    study, files = make_study(tmp_path / "out", 5)
    report = send_study(_dest(scp.port), files, settings=settings, study_uid=study)
    assert report.ok, [o.describe() for o in report.outcomes]
    assert scp.associations == 1
    sent = [pydicom.dcmread(f).SOPInstanceUID for f in files]
    assert scp.stored == sent
    assert report.delivered == sent
    assert report.bytes_sent == sum(f.stat().st_size for f in files)
    assert scp.syntaxes == ["1.2.840.10008.1.2.1"] * 5  # as stored


def test_failure_status_is_a_failure(scp: RecordingSCP, settings: Settings, tmp_path: Path) -> None:
    scp.status = 0xA700
    _, files = make_study(tmp_path / "out", 2)
    report = send_study(_dest(scp.port), files, settings=settings)
    assert not report.ok
    assert [o.status for o in report.outcomes] == [0xA700, 0xA700]
    assert {o.failure for o in report.outcomes} == {Failure.STATUS_FAILURE}
    assert "0xA700" in report.outcomes[0].describe()


def test_warning_status_is_a_failure_unless_accepted(
    scp: RecordingSCP, settings: Settings, tmp_path: Path
) -> None:
    scp.status = 0xB007
    _, files = make_study(tmp_path / "out", 1)
    report = send_study(_dest(scp.port), files, settings=settings)
    assert report.outcomes[0].failure is Failure.STATUS_WARNING
    assert not report.ok
    assert send_study(_dest(scp.port), files, settings=settings, accept_warnings=True).ok


def test_nothing_listening(settings: Settings, tmp_path: Path) -> None:
    _, files = make_study(tmp_path / "out", 2)
    report = send_study(_dest(free_port()), files, settings=settings)
    assert report.association_failure is Failure.NO_ASSOCIATION
    assert [o.failure for o in report.outcomes] == [Failure.NO_ASSOCIATION] * 2


def test_rejected_association(tmp_path: Path, settings: Settings) -> None:
    peer = RecordingSCP(ae_title="RIGHT", require_called_aet=True).start(free_port())
    try:
        _, files = make_study(tmp_path / "out", 1)
        report = send_study(_dest(peer.port, "WRONG"), files, settings=settings)
    finally:
        peer.stop()
    assert report.association_failure is Failure.REJECTED
    assert peer.requests == 0


def test_unreadable_file_fails_alone(scp: RecordingSCP, settings: Settings, tmp_path: Path) -> None:
    _, files = make_study(tmp_path / "out", 1)
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom")
    report = send_study(_dest(scp.port), [bad, *files], settings=settings)
    assert report.outcomes[0].failure is Failure.UNREADABLE
    assert report.outcomes[1].ok
    assert len(scp.stored) == 1


def test_delivery_to_storescp_byte_identical(settings: Settings, tmp_path: Path) -> None:
    storescp = require_program("storescp")
    port = free_port()
    proc = start_storescp(storescp, port, tmp_path / "in")
    try:
        _, files = make_study(tmp_path / "out", 4)
        report = send_study(_dest(port, "STORESCP"), files, settings=settings)
    finally:
        stop_process(proc)
    assert report.ok, [o.describe() for o in report.outcomes]
    received = sorted((tmp_path / "in").iterdir())
    assert len(received) == 4
    # the data sets arrive as stored (storescp rewrites only the file meta)
    sent = {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f) for f in files}
    for path in received:
        got = pydicom.dcmread(path)
        assert got == sent[got.SOPInstanceUID]


def test_response_taken_by_the_reactor_goes_back_to_the_sender(scp: RecordingSCP) -> None:
    from pynetdicom import AE
    from pynetdicom.dimse_primitives import C_STORE

    from dicom_node.delivery.scu import _keep_responses

    ae = AE()
    ae.dimse_timeout = 5  # without the work-around, get_msg waits this long for nothing
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.7")
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="PACS")
    assert assoc.is_established
    try:
        _keep_responses(assoc)
        rsp = C_STORE()
        rsp.MessageIDBeingRespondedTo = 1
        rsp.Status = 0x0000
        assoc._serve_request(rsp, 1)  # what the reactor does with a message it took
        context_id, msg = assoc.dimse.get_msg(block=True)
        assert (context_id, msg) == (1, rsp)
    finally:
        assoc.release()


def test_converted_when_the_stored_syntax_is_refused(settings: Settings, tmp_path: Path) -> None:
    from pynetdicom import _config

    implicit = "1.2.840.10008.1.2"
    peer = RecordingSCP(transfer_syntaxes=[implicit]).start(free_port())
    try:
        _, files = make_study(tmp_path / "out", 2)  # explicit VR little endian
        report = send_study(_dest(peer.port), files, settings=settings)
    finally:
        peer.stop()
    assert report.ok, [o.describe() for o in report.outcomes]
    assert peer.syntaxes == [implicit, implicit]
    # the sender leaves pynetdicom's process-wide settings alone
    assert _config.STORE_SEND_CHUNKED_DATASET is False


def test_peer_abort_fails_the_rest(settings: Settings, tmp_path: Path) -> None:
    peer = RecordingSCP()
    seen: list[int] = []

    def abort_on_second(event: object) -> None:
        seen.append(1)
        if len(seen) == 2:
            event.assoc.abort()  # type: ignore[attr-defined]

    peer.hook = abort_on_second
    peer.start(free_port())
    settings = settings.model_copy(
        update={"network": settings.network.model_copy(update={"dimse_timeout": 20.0})}
    )
    try:
        _, files = make_study(tmp_path / "out", 4)
        report = send_study(_dest(peer.port), files, settings=settings)
    finally:
        peer.stop()
    assert report.outcomes[0].ok
    assert [o.failure for o in report.outcomes[1:]] == [Failure.ABORTED] * 3
    assert report.association_failure is Failure.ABORTED


def test_no_response_in_time_is_a_timeout(settings: Settings, tmp_path: Path) -> None:
    import time

    peer = RecordingSCP()
    peer.hook = lambda event: time.sleep(2.0)  # answers after our DIMSE timeout
    peer.start(free_port())
    settings = settings.model_copy(
        update={"network": settings.network.model_copy(update={"dimse_timeout": 0.5})}
    )
    try:
        _, files = make_study(tmp_path / "out", 2)
        report = send_study(_dest(peer.port), files, settings=settings)
    finally:
        peer.stop()
    assert [o.failure for o in report.outcomes] == [Failure.TIMEOUT, Failure.TIMEOUT]
    assert report.association_failure is Failure.TIMEOUT


def test_datasets_are_sent_too(scp: RecordingSCP, settings: Settings, tmp_path: Path) -> None:
    _, files = make_study(tmp_path / "out", 2)
    datasets = [pydicom.dcmread(f) for f in files]
    report = send_study(_dest(scp.port), datasets, settings=settings)
    assert report.ok, [o.describe() for o in report.outcomes]
    assert scp.stored == [str(ds.SOPInstanceUID) for ds in datasets]
