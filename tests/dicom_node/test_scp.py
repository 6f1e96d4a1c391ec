"""The receiver against a live ``dicom-node serve``, with pynetdicom as the SCU."""

from __future__ import annotations

import hashlib
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import CTImageStorage

from config.settings import load_settings
from dicom_node.dimse import Status
from dicom_node.scp import AssociationPolicy, is_valid_uid, parse_instance
from dicom_node.server import Node
from tests.conftest import free_port
from tests.dicom_node.serve_harness import (
    ServeProcess,
    associate,
    audit,
    audit_of,
    echo_ok,
    indexed,
    make_instance,
    send_files_as_is,
    start_serve,
)


MR = (MRImageStorage, [ExplicitVRLittleEndian])


def _store(node: ServeProcess, ds: Dataset | Path, context: tuple[str, list[str]] = MR) -> int:
    assoc = associate(node.port, [context])
    assert assoc.is_established
    try:
        with send_files_as_is():
            status = assoc.send_c_store(ds)
        return int(status.Status)
    finally:
        assoc.release()


def _write_raw(path: Path, ds: Dataset, meta_sop_uid: str) -> Path:
    """A Part 10 file whose meta names ``meta_sop_uid`` whatever the data set holds."""
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = meta_sop_uid
    ds.preamble = b"\x00" * 128
    old = pydicom.config.settings.writing_validation_mode
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE  # a bad UID on purpose
    try:
        ds.save_as(path, enforce_file_format=False)
    finally:
        pydicom.config.settings.writing_validation_mode = old
    return path


def test_uid_syntax() -> None:
    assert is_valid_uid("1.2.840.10008.1.1")
    for bad in ("", "1", "1..2", "1.02", "1.2.a", "1.2 ", "1." * 40 + "1", None):
        assert not is_valid_uid(bad)


def test_truncated_bytes_are_refused_by_the_parser() -> None:
    ds = make_instance(generate_uid(), generate_uid(), 1)
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    assert parse_instance(data).SOPInstanceUID == ds.SOPInstanceUID
    with pytest.raises(ValueError, match="truncated"):
        parse_instance(data[:-10])
    with pytest.raises(ValueError):
        parse_instance(b"not dicom at all" * 10)


def test_store_is_durable_indexed_and_audited(shared_node: ServeProcess) -> None:
    ds = make_instance(generate_uid(), generate_uid(), 1)
    assert _store(shared_node, ds) == Status.SUCCESS
    rows = indexed(shared_node)
    path, sha256, version = rows[ds.SOPInstanceUID]
    data = Path(path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha256
    # stored as received: the file ends with exactly the encoded data set we sent
    assert data.endswith(encode(ds, False, True))
    assert pydicom.dcmread(path).SOPInstanceUID == ds.SOPInstanceUID
    events = [e for e in audit(shared_node, kind="store") if e.sop_uid == ds.SOPInstanceUID]
    assert [(e.outcome, e.calling_ae, e.study_uid) for e in events] == [
        ("0x0000", "TEST_SCU", ds.StudyInstanceUID)
    ]
    assert events[0].peer.startswith("127.0.0.1:")
    assert version == 1
    # patient identifiers never reach the INFO log
    assert "TEST123" not in shared_node.log() and "Test^Patient" not in shared_node.log()


def test_resend_is_idempotent_and_new_content_is_a_new_version(shared_node: ServeProcess) -> None:
    ds = make_instance(generate_uid(), generate_uid(), 1)
    before = len(indexed(shared_node))
    assert _store(shared_node, ds) == Status.SUCCESS
    assert _store(shared_node, ds) == Status.SUCCESS
    assert len(indexed(shared_node)) == before + 1
    assert indexed(shared_node)[ds.SOPInstanceUID][2] == 1
    ds.SeriesDescription = "changed"
    assert _store(shared_node, ds) == Status.SUCCESS
    rows = indexed(shared_node)
    assert len(rows) == before + 1
    path, sha256, version = rows[ds.SOPInstanceUID]
    assert version == 2
    assert pydicom.dcmread(path).SeriesDescription == "changed"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        ("missing_sop_uid", Status.MISSING_OR_INVALID_UID),
        ("mismatched_sop_uid", Status.SOP_INSTANCE_UID_MISMATCH),
        ("bad_study_uid", Status.MISSING_OR_INVALID_UID),
        ("missing_series_uid", Status.MISSING_OR_INVALID_UID),
        ("wrong_sop_class", Status.DATA_SET_DOES_NOT_MATCH_SOP_CLASS),
    ],
)
def test_bad_uids_get_their_status(
    shared_node: ServeProcess, tmp_path: Path, mutate: str, expected: Status
) -> None:
    ds = make_instance(generate_uid(), generate_uid(), 1)
    meta_uid = ds.SOPInstanceUID
    context = MR
    if mutate == "missing_sop_uid":
        del ds.SOPInstanceUID
    elif mutate == "mismatched_sop_uid":
        ds.SOPInstanceUID = generate_uid()
    elif mutate == "bad_study_uid":
        with pytest.warns(UserWarning, match="Invalid value for VR UI"):  # pydicom lets it through, warning
            ds.StudyInstanceUID = "1.2.3.abc"
    elif mutate == "missing_series_uid":
        del ds.SeriesInstanceUID
    elif mutate == "wrong_sop_class":
        ds.SOPClassUID = CTImageStorage
    path = _write_raw(tmp_path / "bad.dcm", ds, meta_uid)
    assert _store(shared_node, path, context) == expected
    assert meta_uid not in indexed(shared_node) and ds.get("SOPInstanceUID") not in indexed(shared_node)
    assert echo_ok(shared_node.port)
    assert f"0x{expected:04X}" in shared_node.log()
    events = [e for e in audit(shared_node, kind="store") if e.sop_uid == meta_uid]
    assert [e.outcome for e in events] == [f"0x{expected:04X}"]


def test_wrong_called_ae_is_rejected(shared_node: ServeProcess) -> None:
    assoc = associate(shared_node.port, called_ae="NOT_OURS")
    assert assoc.is_rejected
    assert assoc.acceptor.primitive.diagnostic == 0x07
    assert echo_ok(shared_node.port)
    assert any("NOT_OURS" in (e.detail or "") for e in audit(shared_node, kind="association"))


def test_association_policy() -> None:
    policy = AssociationPolicy("NODE", ["PACS"], ["10.0.0.1"])
    assert policy.refusal("PACS", "NODE", "10.0.0.1") is None
    assert policy.refusal("PACS", "OTHER", "10.0.0.1")[1] == (1, 1, 7)
    assert policy.refusal("STRANGER", "NODE", "10.0.0.1")[1] == (1, 1, 3)
    reason, _ = policy.refusal("PACS", "NODE", "127.0.0.1")
    assert "peer address 127.0.0.1" in reason
    assert AssociationPolicy("NODE").refusal("ANYONE", "NODE", "1.2.3.4") is None


def test_allow_lists_and_disk_floor(tmp_path: Path) -> None:
    """Unknown calling AE, peer address not allowed, and a disk below the floor."""
    node = start_serve(
        tmp_path / "node", allowed_calling_aets=["PACS", "TEST_SCU"],
        allowed_hosts=["127.0.0.1"], min_free_disk_mb=10**9,
    )
    try:
        assoc = associate(node.port, calling_ae="STRANGER")
        assert assoc.is_rejected
        assert assoc.acceptor.primitive.diagnostic == 0x03
        assert echo_ok(node.port, calling_ae="PACS")

        ds = make_instance(generate_uid(), generate_uid(), 1)
        assert _store(node, ds) == Status.OUT_OF_RESOURCES
        assert indexed(node) == {}
        assert not [p for p in (node.settings.storage_dir / "instances").rglob("*") if p.is_file()]
        assert echo_ok(node.port)
        events = audit(node)
        assert any(e.kind == "association" and e.calling_ae == "STRANGER" for e in events)
        assert any(e.kind == "store" and e.outcome == "0xA700" for e in events)
    finally:
        assert node.stop() == 0


def test_peer_address_allow_list_in_process(tmp_path: Path) -> None:
    """The same checks run in-process too (Node is what ``serve`` runs)."""
    settings = load_settings(
        environ={}, storage_dir=tmp_path / "var", host="127.0.0.1", port=free_port(),
        min_free_disk_mb=0, allowed_hosts=["10.9.8.7"],
    )
    node = Node(settings)
    node.start()
    try:
        assert not echo_ok(node.address[1])
        events = audit_of(settings)
        assert [e.detail for e in events] == ["peer address 127.0.0.1 is not allowed"]
    finally:
        node.stop()


def _sendable(path: str) -> tuple[str, str, bool] | None:
    """(SOP Class UID, transfer syntax, has file meta) of a test file, None if unsendable."""
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    except Exception:
        return None
    meta = getattr(ds, "file_meta", None)
    sop_class = (meta.get("MediaStorageSOPClassUID") if meta else None) or ds.get("SOPClassUID")
    sop_uid = (meta.get("MediaStorageSOPInstanceUID") if meta else None) or ds.get("SOPInstanceUID")
    ts = meta.get("TransferSyntaxUID") if meta else None
    if not sop_class or not sop_uid:
        return None  # no SCU can address a C-STORE without them
    has_meta = ts is not None and "MediaStorageSOPInstanceUID" in meta
    if ts is None:
        ts = "1.2.840.10008.1.2" if ds.is_implicit_VR else (
            "1.2.840.10008.1.2.1" if ds.is_little_endian else "1.2.840.10008.1.2.2")
    return str(sop_class), str(ts), has_meta


# pydicom's own test files include deliberately mislabelled ones; reading them here warns
@pytest.mark.filterwarnings("ignore:Expected explicit VR, but found implicit VR:UserWarning")
def test_every_pydicom_test_file_gets_a_documented_status(shared_node: ServeProcess) -> None:
    from pydicom.data import get_testdata_files

    documented = {int(s) for s in Status}
    before = len(indexed(shared_node))
    results: dict[str, int] = {}
    files: dict[str, tuple[str, str, bool]] = {}
    for path in sorted(get_testdata_files()):
        if Path(path).is_file() and (sendable := _sendable(path)) is not None:
            files[path] = sendable
    pairs = sorted({(c, t) for c, t, _ in files.values()})
    assert len(pairs) <= 128  # one association can propose them all
    assoc = associate(shared_node.port, [(c, [t]) for c, t in pairs])
    assert assoc.is_established
    try:
        accepted = {(cx.abstract_syntax, cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}
        for path, (sop_class, ts, has_meta) in files.items():
            name = Path(path).name
            if (sop_class, ts) not in accepted:
                results[name] = -1  # a non-storage SOP class: context rejected
                continue
            payload: Path | Dataset = Path(path)
            if not has_meta:
                payload = pydicom.dcmread(path, force=True)
                payload.file_meta = pydicom.dataset.FileMetaDataset()
                payload.file_meta.TransferSyntaxUID = ts
            try:
                with send_files_as_is():
                    status = assoc.send_c_store(payload)
            except Exception:  # the SCU cannot encode it: nothing was sent
                results[name] = -2
                continue
            assert assoc.is_established, name
            results[name] = int(status.Status) if status else -3
    finally:
        assoc.release()
    assert len(results) > 50
    # DICOMDIR (Media Storage Directory) is not a storage SOP class: its context is refused
    assert {name for name, s in results.items() if s == -1} <= {
        name for name in results if name.startswith("DICOMDIR")
    }
    sent = {name: s for name, s in results.items() if s >= 0}
    assert set(sent.values()) <= documented, results
    assert results["MR_truncated.dcm"] == Status.CANNOT_UNDERSTAND
    assert results["rtplan_truncated.dcm"] == Status.CANNOT_UNDERSTAND
    # the test file's meta names another SOP Instance UID than its data set
    assert results["rtplan.dcm"] == Status.SOP_INSTANCE_UID_MISMATCH
    for name in ("MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
                 "JPEG2000.dcm", "MR_small_RLE.dcm"):
        assert results[name] == Status.SUCCESS, name
    successes = sum(1 for s in sent.values() if s == Status.SUCCESS)
    added = len(indexed(shared_node)) - before
    assert 20 < added <= successes  # some test files share a SOP Instance UID
    assert echo_ok(shared_node.port)


def test_ae_limits_and_timeouts_come_from_settings(tmp_path: Path) -> None:
    from dicom_node.scp import build_ae, storage_sop_classes

    settings = load_settings(
        environ={}, storage_dir=tmp_path / "var", min_free_disk_mb=0,
        network={"max_associations": 3, "network_timeout": 7, "acse_timeout": 8,
                 "dimse_timeout": 0, "maximum_pdu_size": 65536},
    )
    ae = build_ae(settings)
    assert (ae.maximum_associations, ae.network_timeout, ae.acse_timeout) == (3, 7, 8)
    assert ae.dimse_timeout is None and ae.maximum_pdu_size == 65536
    supported = {str(cx.abstract_syntax) for cx in ae.supported_contexts}
    for uid in ("1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1",  # MR, Enhanced MR
                "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.88.22",  # SC, Enhanced SR
                "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.104.1",  # SEG, PDF
                "1.2.840.10008.5.1.4.1.1.4.2", "1.2.840.10008.1.1"):  # MR Spectroscopy, echo
        assert uid in supported, uid
    assert set(storage_sop_classes()) <= supported
    mr = next(cx for cx in ae.supported_contexts if cx.abstract_syntax == MRImageStorage)
    for ts in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
               "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.2"):
        assert ts in mr.transfer_syntax, ts


def test_max_associations_in_process(tmp_path: Path) -> None:
    settings = load_settings(
        environ={}, storage_dir=tmp_path / "var", host="127.0.0.1", port=free_port(),
        min_free_disk_mb=0, network={"max_associations": 1},
    )
    node = Node(settings)
    node.start()
    try:
        first = associate(node.address[1])
        assert first.is_established
        try:
            second = associate(node.address[1])
            assert second.is_rejected
            assert second.acceptor.primitive.diagnostic == 0x02  # local limit exceeded
        finally:
            first.release()
        assert echo_ok(node.address[1])
    finally:
        node.stop()
