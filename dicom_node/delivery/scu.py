"""The C-STORE sender: all result objects of one study to one destination, one association.

:func:`send_study` proposes presentation contexts for the SOP classes and transfer
syntaxes of the objects it is given (read from their file meta, not by decoding them)
plus the result classes the node makes (SEG, SR, PDF, SC), opens one association,
sends every object and checks each response's status. Anything but success is a
failure and says which kind (:class:`Failure`): a failure or warning status, no
accepted presentation context, an association refused, rejected or aborted, a
timeout. Nothing is raised for a peer's behaviour: the caller (the retry loop in
:mod:`dicom_node.delivery.worker`) decides what to do with the report.

Speed (BENCHMARKING.md): pynetdicom never sets ``TCP_NODELAY`` and Nagle's
algorithm with delayed ACKs stalls every request about 40 ms, which is why its SCU
was measured at ~20 instances/s; the option is set on the socket as soon as the
connection opens. Files are sent as stored (the bytes after the file meta are
streamed, as pynetdicom's chunked mode does, but for our requests only: nothing
is decoded or re-encoded), and our maximum PDU size is
``settings.network.maximum_pdu_size`` (0 = unlimited). docs/delivery.md has the
measurements.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import split_dataset
from pynetdicom.presentation import PresentationContext

from config.settings import Destination, Settings

__all__ = [
    "RESULT_SOP_CLASSES",
    "Failure",
    "InstanceOutcome",
    "SendReport",
    "send_study",
]

logger = logging.getLogger(__name__)

#: the SOP classes the node's results use, always proposed
RESULT_SOP_CLASSES: tuple[str, ...] = (
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
)
_UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
_MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: odd IDs 1..255


class Failure(str, enum.Enum):
    """Why an object was not delivered."""

    #: no TCP connection or no A-ASSOCIATE-AC (nothing listening, refused, unreachable)
    NO_ASSOCIATION = "no-association"
    #: the peer answered A-ASSOCIATE-RJ
    REJECTED = "rejected"
    #: the association was aborted (A-ABORT, connection lost) before the response came
    ABORTED = "aborted"
    #: no C-STORE response within the DIMSE timeout (pynetdicom then aborts)
    TIMEOUT = "timeout"
    #: the response's status is a failure (0xAxxx, 0xCxxx, ...)
    STATUS_FAILURE = "status-failure"
    #: the response's status is a warning (0xBxxx, 0x0001, 0x0107, 0x0116): not delivered
    STATUS_WARNING = "status-warning"
    #: the peer accepted no presentation context for the object's SOP class and syntax
    NO_CONTEXT = "no-context"
    #: the object could not be read or is not a DICOM file with file meta
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class InstanceOutcome:
    """The fate of one object in a :class:`SendReport`."""

    sop_instance_uid: str
    sop_class_uid: str
    #: the DIMSE status of the response, ``None`` when none came
    status: int | None = None
    failure: Failure | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        """True when the peer answered success (or a warning the caller accepted)."""
        return self.failure is None and self.status is not None

    def describe(self) -> str:
        """A one-line reason, for ``Delivery.last_error``."""
        if self.ok:
            return "delivered"
        text = self.failure.value if self.failure else "unknown"
        if self.status is not None:
            text += f" 0x{self.status:04X}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class SendReport:
    """What :func:`send_study` did: one outcome per object, in the order given."""

    destination: str
    outcomes: list[InstanceOutcome] = field(default_factory=list)
    #: the association-level failure, if any (then every object failed with it)
    association_failure: Failure | None = None
    seconds: float = 0.0
    bytes_sent: int = 0

    @property
    def ok(self) -> bool:
        """True when every object was delivered."""
        return all(o.ok for o in self.outcomes)

    @property
    def delivered(self) -> list[str]:
        """SOP Instance UIDs the peer accepted."""
        return [o.sop_instance_uid for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[InstanceOutcome]:
        """Outcomes that are not a success."""
        return [o for o in self.outcomes if not o.ok]


@dataclass
class _Item:
    """One object to send: a file sent as stored, or a dataset pynetdicom encodes."""

    source: Path | Dataset
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    transfer_syntax: str = ""
    size: int = 0
    #: where the data set starts in the file (after the file meta)
    offset: int = 0
    error: str | None = None


def _inspect(obj: str | os.PathLike[str] | Dataset) -> _Item:
    if isinstance(obj, Dataset):
        item = _Item(obj)
        try:
            item.sop_class_uid = str(obj.SOPClassUID)
            item.sop_instance_uid = str(obj.SOPInstanceUID)
            item.transfer_syntax = str(obj.file_meta.TransferSyntaxUID)
        except AttributeError as exc:
            item.error = f"dataset lacks {exc}"
        return item
    path = Path(obj)
    item = _Item(path)
    try:
        meta, item.offset = split_dataset(path)  # reads the file meta only
        item.sop_class_uid = str(meta.MediaStorageSOPClassUID)
        item.sop_instance_uid = str(meta.MediaStorageSOPInstanceUID)
        item.transfer_syntax = str(meta.TransferSyntaxUID)
        item.size = path.stat().st_size
    except Exception as exc:  # pydicom raises many types on bad files
        item.error = f"cannot read the file meta of {path.name}: {type(exc).__name__}: {exc}"
    return item


def _contexts(items: Iterable[_Item]) -> list[PresentationContext]:
    """One context per (SOP class, stored syntax), plus one with both uncompressed syntaxes."""
    wanted: dict[str, list[str]] = {uid: [] for uid in RESULT_SOP_CLASSES}
    for item in items:
        if item.error is None:
            syntaxes = wanted.setdefault(item.sop_class_uid, [])
            if item.transfer_syntax not in syntaxes:
                syntaxes.append(item.transfer_syntax)
    contexts: list[PresentationContext] = []
    for sop_class, syntaxes in wanted.items():
        # each stored syntax alone, so that the peer accepts exactly it (a peer picks
        # one syntax per context, pynetdicom's in its own order: implicit VR first)
        for ts in syntaxes:
            contexts.append(_context(sop_class, [ts]))
        # and the uncompressed ones, to convert to when a stored syntax is refused
        contexts.append(_context(sop_class, list(_UNCOMPRESSED)))
    if len(contexts) > _MAX_CONTEXTS:
        logger.warning("%d presentation contexts, only %d proposed", len(contexts), _MAX_CONTEXTS)
    return contexts[:_MAX_CONTEXTS]


def _context(sop_class: str, syntaxes: list[str]) -> PresentationContext:
    cx = PresentationContext()
    cx.abstract_syntax = UID(sop_class)
    cx.transfer_syntax = [UID(ts) for ts in syntaxes]
    return cx


class _Connection:
    """Sets ``TCP_NODELAY`` as soon as the TCP connection opens, and remembers that it did."""

    def __init__(self) -> None:
        self.opened = False

    def on_open(self, event: Any) -> None:
        self.opened = True
        sock = getattr(event.assoc.dul.socket, "socket", None)
        if sock is None:
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            logger.debug("could not set TCP_NODELAY", exc_info=True)


def _keep_responses(assoc: Association) -> None:
    """Give C-STORE responses the association's reactor took back to the sender.

    pynetdicom 3.0.4 pauses its reactor thread before each ``send_c_store`` with a
    flag the reactor sets *before* it waits on the checkpoint, so the reactor can
    still take the response off the DIMSE queue; it then drops it ("Received
    unexpected C-STORE service message") and the sender waits for the DIMSE
    timeout. With Nagle on, the 40 ms stall hid the race; with ``TCP_NODELAY`` it
    shows up on a busy machine. The response is put back on the queue instead.
    """
    original = assoc._serve_request

    def serve(msg: Any, context_id: int) -> None:
        if isinstance(msg, C_STORE) and msg.Status is not None:  # a response, not a request
            assoc.dimse.msg_queue.put((context_id, msg))
            return
        original(msg, context_id)

    assoc._serve_request = serve  # type: ignore[method-assign]


def _accepted(assoc: Association, item: _Item) -> tuple[int | None, bool]:
    """The context accepting the stored syntax as is, and whether an uncompressed one is."""
    exact: int | None = None
    convertible = False
    for cx in assoc.accepted_contexts:
        if cx.abstract_syntax != item.sop_class_uid:
            continue
        if cx.transfer_syntax[0] == item.transfer_syntax and exact is None:
            exact = cx.context_id
        elif cx.transfer_syntax[0] in _UNCOMPRESSED:
            convertible = True
    return exact, convertible and item.transfer_syntax in _UNCOMPRESSED


def _stream_file(assoc: Association, item: _Item, context_id: int, message_id: int) -> Dataset:
    """``send_c_store`` for a file sent as stored, without pynetdicom's process-wide switch.

    pynetdicom streams a file's bytes only when ``_config.STORE_SEND_CHUNKED_DATASET``
    is set, for every caller in the process (and then never converts between
    syntaxes, which breaks other senders in the same process, e.g. the demo's).
    This is its chunked branch of ``send_c_store`` (3.0.4) for our own request.
    """
    req = C_STORE()
    req.MessageID = message_id
    req.Priority = 2
    req.AffectedSOPClassUID = UID(item.sop_class_uid)
    req.AffectedSOPInstanceUID = UID(item.sop_instance_uid)
    req._dataset_path = (Path(str(item.source)), item.offset)
    # pause the association's reactor, as send_c_store does (see _keep_responses)
    assoc._reactor_checkpoint.clear()
    deadline = time.monotonic() + 5.0
    while not assoc._is_paused and assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.0001)
    try:
        assoc.dimse.send_msg(req, context_id)
        _, rsp = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    if rsp is None:  # DIMSE timeout or abort
        assoc._handle_no_response()
        return Dataset()
    return assoc._check_received_status(rsp)


def _classify_status(status: int) -> Failure | None:
    """PS3.7 C: 0x0000 success; 0x0001, 0xBxxx, 0x0107, 0x0116 warnings; the rest failures."""
    if status == 0x0000:
        return None
    if (status & 0xF000) == 0xB000 or status in (0x0001, 0x0107, 0x0116):
        return Failure.STATUS_WARNING
    return Failure.STATUS_FAILURE


def _no_association(assoc: Association, connected: bool) -> tuple[Failure, str]:
    if assoc.is_rejected:
        return Failure.REJECTED, "association rejected (A-ASSOCIATE-RJ)"
    if not connected:
        return Failure.NO_ASSOCIATION, "no connection (nothing listening, refused or unreachable)"
    if assoc.is_aborted:
        return Failure.ABORTED, "association aborted while negotiating"
    return Failure.TIMEOUT, "no answer to the association request in time"


def _build_ae(settings: Settings) -> AE:
    ae = AE(ae_title=settings.ae_title)
    net = settings.network
    ae.network_timeout = net.network_timeout or None
    ae.acse_timeout = net.acse_timeout or None
    ae.dimse_timeout = net.dimse_timeout or None
    ae.connection_timeout = net.acse_timeout or None
    ae.maximum_pdu_size = net.maximum_pdu_size
    return ae


def send_study(
    destination: Destination,
    objects: Sequence[str | os.PathLike[str] | Dataset],
    *,
    settings: Settings,
    study_uid: str | None = None,
    accept_warnings: bool = False,
) -> SendReport:
    """Send the objects of one study to ``destination`` on one association.

    Parameters
    ----------
    destination
        The peer (AE title, host, port).
    objects
        Part 10 files (sent as stored, not decoded) or datasets with file meta.
    settings
        Our AE title, timeouts and maximum PDU size (``settings.network``).
    study_uid
        For the log records only.
    accept_warnings
        Count a warning status (0xB000, 0xB006, 0xB007) as delivered; by default it
        is a failure.

    Returns
    -------
    SendReport
        One :class:`InstanceOutcome` per object, in the order given.
    """
    started = time.monotonic()
    if destination.host is None or destination.port is None or destination.ae_title is None:
        raise ValueError(f"destination {destination.name!r} is not a C-STORE destination")
    log_extra = {"study_uid": study_uid, "destination": destination.name}
    report = SendReport(destination=destination.name)
    items = [_inspect(obj) for obj in objects]
    if not items:
        return report
    outcomes: list[InstanceOutcome | None] = [None] * len(items)
    for i, item in enumerate(items):
        if item.error is not None:
            outcomes[i] = InstanceOutcome(
                item.sop_instance_uid, item.sop_class_uid, failure=Failure.UNREADABLE,
                detail=item.error,
            )
    sendable = [i for i, o in enumerate(outcomes) if o is None]
    if sendable:
        _send(destination, items, sendable, outcomes, report, settings, accept_warnings, log_extra)
    report.outcomes = [o for o in outcomes if o is not None]
    report.seconds = time.monotonic() - started
    logger.info(
        "sent %d/%d objects to %s in %.2f s%s", len(report.delivered), len(items),
        destination.name, report.seconds,
        f" ({report.association_failure.value})" if report.association_failure else "",
        extra=log_extra,
    )
    return report


def _send(
    destination: Destination,
    items: list[_Item],
    sendable: list[int],
    outcomes: list[InstanceOutcome | None],
    report: SendReport,
    settings: Settings,
    accept_warnings: bool,
    log_extra: dict[str, str | None],
) -> None:
    assert destination.host and destination.port and destination.ae_title  # checked by send_study
    ae = _build_ae(settings)
    contexts = _contexts(items[i] for i in sendable)
    connection = _Connection()
    assoc = ae.associate(
        destination.host, destination.port, contexts=contexts, ae_title=destination.ae_title,
        evt_handlers=[(evt.EVT_CONN_OPEN, connection.on_open)],
    )
    if assoc.is_established:
        _keep_responses(assoc)
    else:
        failure, detail = _no_association(assoc, connection.opened)
        report.association_failure = failure
        logger.warning("%s %s:%d: %s", destination.ae_title, destination.host,
                       destination.port, detail, extra=log_extra)
        for i in sendable:
            outcomes[i] = InstanceOutcome(
                items[i].sop_instance_uid, items[i].sop_class_uid, failure=failure, detail=detail
            )
        return
    try:
        for i in sendable:
            item = items[i]
            # a lost response leaves the association unusable (pynetdicom aborts it)
            if report.association_failure is not None or not assoc.is_established:
                failure = report.association_failure or Failure.ABORTED
                outcomes[i] = InstanceOutcome(
                    item.sop_instance_uid, item.sop_class_uid, failure=failure,
                    detail="not sent: the association had ended",
                )
                continue
            outcomes[i] = _store_one(assoc, item, accept_warnings, report, message_id=i + 1)
    finally:
        if assoc.is_established:
            assoc.release()


def _store_one(
    assoc: Association, item: _Item, accept_warnings: bool, report: SendReport, message_id: int
) -> InstanceOutcome:
    uid, cls = item.sop_instance_uid, item.sop_class_uid
    exact, convertible = _accepted(assoc, item)
    source: Path | Dataset = item.source
    if exact is None:
        if not convertible:
            return InstanceOutcome(
                uid, cls, failure=Failure.NO_CONTEXT,
                detail=f"no accepted context for {cls} in {item.transfer_syntax}",
            )
        if isinstance(source, Path):
            try:
                source = pydicom.dcmread(source)  # pynetdicom converts between LE syntaxes
            except Exception as exc:  # pydicom raises many types on bad files
                return InstanceOutcome(
                    uid, cls, failure=Failure.UNREADABLE, detail=f"{type(exc).__name__}: {exc}"
                )
    sent_at = time.monotonic()
    try:
        if exact is not None and isinstance(source, Path):
            rsp = _stream_file(assoc, item, exact, message_id)
        else:
            rsp = assoc.send_c_store(source, msg_id=message_id)
    except (OSError, ValueError, AttributeError, RuntimeError) as exc:
        if not assoc.is_established:
            report.association_failure = Failure.ABORTED
            return InstanceOutcome(uid, cls, failure=Failure.ABORTED, detail=str(exc))
        return InstanceOutcome(
            uid, cls, failure=Failure.UNREADABLE, detail=f"{type(exc).__name__}: {exc}"
        )
    if "Status" not in rsp:
        # pynetdicom returns an empty dataset when the DIMSE timeout expired (it then
        # aborts) or when the association was aborted or the response was invalid
        timeout = assoc.dimse_timeout
        timed_out = timeout is not None and time.monotonic() - sent_at >= 0.95 * timeout
        lost = Failure.TIMEOUT if timed_out else Failure.ABORTED
        report.association_failure = lost
        return InstanceOutcome(uid, cls, failure=lost, detail="no C-STORE response")
    status = int(rsp.Status)
    report.bytes_sent += item.size
    failure = _classify_status(status)
    if failure is Failure.STATUS_WARNING and accept_warnings:
        failure = None
    detail = str(rsp.get("ErrorComment", "")) or None
    return InstanceOutcome(uid, cls, status=status, failure=failure, detail=detail)
