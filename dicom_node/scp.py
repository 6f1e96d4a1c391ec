"""The DICOM receiver: one pynetdicom AE answering C-ECHO and C-STORE.

Handlers stay thin (STYLE.md): their dependencies come in through pynetdicom's
``(event, handler, [args])`` tuples. The C-STORE handler parses the data set's
element headers (no pixel decoding), checks the minimum attributes, writes
``event.encoded_dataset()`` durably through :class:`storage.store.InstanceStore`,
records the rows, commits, and only then answers success. Every failure is
translated to a :class:`~dicom_node.dimse.Status` here, at the edge.

Association policy (calling-AE and peer allow-lists, called-AE check) is applied
when the A-ASSOCIATE-RQ arrives so that each rejection is audited with its reason;
the maximum number of associations, timeouts and the maximum PDU size are set on
the AE from ``settings.network``. ``TCP_NODELAY`` is set on every accepted socket
(see BENCHMARKING.md).
"""

from __future__ import annotations

import io
import logging
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    Verification,
    _STORAGE_CLASSES,
)
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from dicom_node.dimse import Status
from storage import repo
from storage.errors import StorageError, StoreFullError
from storage.store import InstanceStore

__all__ = [
    "AssociationPolicy",
    "InstanceReceived",
    "Receiver",
    "build_ae",
    "handle_echo",
    "handle_requested",
    "handle_store",
    "is_valid_uid",
    "start_scp",
]

logger = logging.getLogger(__name__)

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")

#: Seconds pynetdicom's DUL reactor sleeps when a pass found nothing to do. Its
#: default, 1 ms, is paid several times per C-STORE (waiting for our response,
#: then for the next PDU): a bare pynetdicom SCP did about twice the small
#: instances/s at 0.1 ms (docs/receiver.md). The price is CPU while an
#: association is open and idle (measured there too). pynetdicom has no public
#: knob: the value is set on each association's DUL when its connection opens.
DUL_RUN_LOOP_DELAY = 0.0001

#: study-level attributes copied into the Study row (keyword -> column)
_STUDY_ATTRS = {
    "PatientID": "patient_id",
    "PatientName": "patient_name",
    "AccessionNumber": "accession_number",
    "StudyDate": "study_date",
    "StudyDescription": "study_description",
}
#: series-level attributes copied into the Series row (keyword -> column)
_SERIES_ATTRS = {
    "Modality": "modality",
    "SeriesNumber": "series_number",
    "SeriesDescription": "series_description",
    "BodyPartExamined": "body_part_examined",
    "FrameOfReferenceUID": "frame_of_reference_uid",
}


def is_valid_uid(value: object) -> bool:
    """True if ``value`` is a syntactically valid UID (PS3.5 9.1): digits and dots, <= 64."""
    return isinstance(value, str) and len(value) <= 64 and bool(_UID_RE.match(value))


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class InstanceReceived:
    """Published after an instance is durable and indexed (for the assembler)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    outcome: str
    at: datetime


class _Refused(Exception):
    """An instance the handler refuses, with the status to answer."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _text(ds: Dataset, keyword: str) -> Any:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if keyword == "SeriesNumber":
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return str(value)


def parse_instance(data: bytes) -> Dataset:
    """Parse a received Part 10 byte string far enough to trust its structure.

    Every element is read (values stay raw: nothing is decoded) and each element
    with a defined length must have all its bytes: a truncated instance is refused.

    Raises
    ------
    ValueError
        With the reason when the bytes are not a coherent DICOM data set.
    """
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:  # pydicom raises many types on garbage
        raise ValueError(f"cannot parse data set: {type(exc).__name__}: {exc}") from exc
    for elem in ds._dict.values():  # raw elements, before conversion
        if isinstance(elem, RawDataElement) and elem.value is not None:
            if elem.length != 0xFFFFFFFF and len(elem.value) != elem.length:
                raise ValueError(
                    f"element {elem.tag} is truncated: {len(elem.value)} of {elem.length} bytes"
                )
    return ds


@dataclass
class AssociationPolicy:
    """Who may associate: allow-lists (empty = anyone) and our own AE title."""

    ae_title: str
    allowed_calling_aets: list[str] = field(default_factory=list)
    allowed_hosts: list[str] = field(default_factory=list)

    def refusal(self, calling_ae: str, called_ae: str, host: str) -> tuple[str, tuple[int, int, int]] | None:
        """The reason and A-ASSOCIATE-RJ (result, source, diagnostic), or None to accept."""
        if called_ae.strip() != self.ae_title:
            return f"called AE {called_ae.strip()!r} is not ours", (0x01, 0x01, 0x07)
        if self.allowed_calling_aets and calling_ae.strip() not in self.allowed_calling_aets:
            return f"calling AE {calling_ae.strip()!r} is not allowed", (0x01, 0x01, 0x03)
        if self.allowed_hosts and host not in self.allowed_hosts:
            return f"peer address {host} is not allowed", (0x01, 0x01, 0x03)
        return None


class Receiver:
    """Stores C-STORE data sets durably and indexes them; shared by all associations.

    Parameters
    ----------
    store
        The on-disk instance store.
    session_factory
        Makes one session per instance (one unit of work).
    called_ae
        Our AE title, recorded in the audit trail.
    subscribers
        Called with an :class:`InstanceReceived` after each successful commit.
    clock
        Returns the current time (timezone-aware UTC).
    """

    def __init__(
        self,
        store: InstanceStore,
        session_factory: sessionmaker[Session],
        *,
        called_ae: str,
        subscribers: list[Callable[[InstanceReceived], None]] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.session_factory = session_factory
        self.called_ae = called_ae
        self.subscribers = list(subscribers or [])
        self.clock = clock
        self._lock = threading.Condition()
        self._in_flight = 0
        self._closing = False

    # -- shutdown -------------------------------------------------------------

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new stores (0xA700) and wait for those in flight; True if all finished."""
        with self._lock:
            self._closing = True
            return self._lock.wait_for(lambda: self._in_flight == 0, timeout)

    @property
    def in_flight(self) -> int:
        """Number of C-STORE requests being processed now."""
        with self._lock:
            return self._in_flight

    # -- C-STORE ----------------------------------------------------------------

    def on_store(self, event: Event) -> int:
        """Handle one C-STORE request; returns the DIMSE status."""
        with self._lock:
            if self._closing:
                logger.warning("refusing C-STORE: shutting down")
                return int(Status.OUT_OF_RESOURCES)
            self._in_flight += 1
        try:
            return int(self._store(event))
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def _store(self, event: Event) -> Status:
        request: Any = event.request  # a C_STORE primitive
        assoc = event.assoc
        calling_ae = str(assoc.requestor.ae_title).strip()
        peer = f"{assoc.requestor.address}:{assoc.requestor.port}"
        sop_uid = str(request.AffectedSOPInstanceUID or "")
        audit: dict[str, Any] = {
            "calling_ae": calling_ae, "called_ae": self.called_ae, "peer": peer,
            "sop_uid": sop_uid[:64] or None,
        }
        try:
            try:
                data = event.encoded_dataset()
            except Exception as exc:  # noqa: BLE001 - a request pynetdicom cannot hand over
                raise _Refused(Status.CANNOT_UNDERSTAND, f"no data set: {exc}") from exc
            study_uid, series_uid, ds = self._check(data, request)
        except _Refused as refused:
            logger.warning(
                "refused C-STORE (0x%04X) from %s (%s): %s", int(refused.status), calling_ae,
                peer, refused.reason, extra={"sop_uid": sop_uid},
            )
            self._audit_failure(refused.status, refused.reason, audit)
            return refused.status
        audit.update(study_uid=study_uid, series_uid=series_uid)
        extra = {"study_uid": study_uid, "series_uid": series_uid, "sop_uid": sop_uid}

        if not self.store.has_space(len(data)):
            reason = "free disk space below min_free_disk_mb"
            logger.error("refused C-STORE (0xA700): %s", reason, extra=extra)
            self._audit_failure(Status.OUT_OF_RESOURCES, reason, audit)
            return Status.OUT_OF_RESOURCES
        try:
            stored = self.store.put(study_uid, series_uid, sop_uid, data)
        except StoreFullError as exc:
            logger.error("refused C-STORE (0xA700): store full: %s", exc, extra=extra)
            self._audit_failure(Status.OUT_OF_RESOURCES, f"store full: {exc}", audit)
            return Status.OUT_OF_RESOURCES
        except (StorageError, OSError) as exc:
            logger.exception("C-STORE failed writing the file", extra=extra)
            self._audit_failure(Status.PROCESSING_FAILURE, f"write failed: {exc}", audit)
            return Status.PROCESSING_FAILURE

        now = self.clock()
        try:
            with self.session_factory() as session:
                outcome = repo.record_instance(
                    session=session,
                    stored=stored,
                    study_uid=study_uid,
                    series_uid=series_uid,
                    sop_uid=sop_uid,
                    sop_class_uid=str(request.AffectedSOPClassUID),
                    transfer_syntax_uid=str(event.context.transfer_syntax),
                    calling_ae=calling_ae,
                    peer=peer,
                    study_attrs={col: _text(ds, kw) for kw, col in _STUDY_ATTRS.items()},
                    series_attrs={col: _text(ds, kw) for kw, col in _SERIES_ATTRS.items()},
                    now=now,
                )
                repo.insert_audit_event(
                    session=session, kind="store", outcome="0x0000", now=now,
                    detail=outcome if outcome == "new" else f"{outcome}: version {stored.version}",
                    **audit,
                )
                session.commit()
        except Exception as exc:  # noqa: BLE001 - any DB failure is answered, never raised
            logger.exception("C-STORE failed indexing the instance", extra=extra)
            self._audit_failure(Status.PROCESSING_FAILURE, f"index failed: {exc}", audit)
            return Status.PROCESSING_FAILURE

        if outcome == "new_version":
            logger.warning("instance re-sent with different content: kept as version %d",
                           stored.version, extra=extra)
        else:
            logger.debug("stored instance (%s)", outcome, extra=extra)
        received = InstanceReceived(study_uid, series_uid, sop_uid, outcome, now)
        for subscriber in self.subscribers:
            try:
                subscriber(received)
            except Exception:  # noqa: BLE001 - a subscriber never fails a stored instance
                logger.exception("instance subscriber %r failed", subscriber, extra=extra)
        return Status.SUCCESS

    def _check(self, data: bytes, request: Any) -> tuple[str, str, Dataset]:
        try:
            ds = parse_instance(data)
        except ValueError as exc:
            raise _Refused(Status.CANNOT_UNDERSTAND, str(exc)) from exc
        try:
            sop_uid = ds.get("SOPInstanceUID")
            sop_class = ds.get("SOPClassUID")
            study_uid = ds.get("StudyInstanceUID")
            series_uid = ds.get("SeriesInstanceUID")
        except Exception as exc:  # a value that cannot be converted
            raise _Refused(Status.CANNOT_UNDERSTAND, f"cannot read UIDs: {exc}") from exc
        for keyword, value in (
            ("SOPInstanceUID", sop_uid), ("SOPClassUID", sop_class),
            ("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid),
        ):
            if value is None or value == "":
                raise _Refused(Status.MISSING_OR_INVALID_UID, f"{keyword} is missing")
            if not is_valid_uid(str(value)):
                raise _Refused(Status.MISSING_OR_INVALID_UID, f"{keyword} {str(value)[:80]!r} is not a valid UID")
        if str(sop_uid) != str(request.AffectedSOPInstanceUID):
            raise _Refused(
                Status.SOP_INSTANCE_UID_MISMATCH,
                f"SOPInstanceUID {sop_uid} != Affected SOP Instance UID {request.AffectedSOPInstanceUID}",
            )
        if str(sop_class) != str(request.AffectedSOPClassUID):
            raise _Refused(
                Status.DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
                f"SOPClassUID {sop_class} != Affected SOP Class UID {request.AffectedSOPClassUID}",
            )
        return str(study_uid), str(series_uid), ds

    def _audit_failure(self, status: Status, reason: str, audit: dict[str, Any]) -> None:
        try:
            with self.session_factory() as session:
                repo.add_audit_event(
                    session=session, kind="store", outcome=f"0x{int(status):04X}",
                    detail=reason[:500], now=self.clock(), **audit,
                )
                session.commit()
        except Exception:  # noqa: BLE001 - auditing must not change the answer
            logger.exception("could not record the audit event")

    def audit_association(self, outcome: str, detail: str | None, *, calling_ae: str,
                          called_ae: str, peer: str) -> None:
        """Record an association event (accepted, rejected with reason, aborted)."""
        try:
            with self.session_factory() as session:
                repo.add_audit_event(
                    session=session, kind="association", outcome=outcome, detail=detail,
                    calling_ae=calling_ae, called_ae=called_ae, peer=peer, now=self.clock(),
                )
                session.commit()
        except Exception:  # noqa: BLE001
            logger.exception("could not record the audit event")


# -- handlers (bound with their dependencies as pynetdicom handler args) ------


def handle_echo(event: Event) -> int:
    """C-ECHO: always success while the node runs."""
    return int(Status.SUCCESS)


def handle_store(event: Event, receiver: Receiver) -> int:
    """C-STORE: delegate to the shared :class:`Receiver`."""
    return receiver.on_store(event)


def handle_conn_open(event: Event) -> None:
    """Set ``TCP_NODELAY`` on the accepted socket (delayed ACK costs ~40 ms per PDU).

    Also shortens the DUL reactor's idle sleep to :data:`DUL_RUN_LOOP_DELAY`.
    """
    dul = event.assoc.dul
    if hasattr(dul, "_run_loop_delay"):
        dul._run_loop_delay = DUL_RUN_LOOP_DELAY
    sock = getattr(dul.socket, "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            logger.debug("could not set TCP_NODELAY", exc_info=True)


def handle_requested(event: Event, policy: AssociationPolicy, receiver: Receiver) -> None:
    """A-ASSOCIATE-RQ: apply the allow-lists and the called-AE check, auditing refusals."""
    assoc = event.assoc
    primitive: Any = assoc.requestor.primitive  # the A-ASSOCIATE-RQ, set before this event
    calling = str(primitive.calling_ae_title).strip()
    called = str(primitive.called_ae_title).strip()
    host = str(assoc.requestor.address)
    peer = f"{host}:{assoc.requestor.port}"
    refusal = policy.refusal(calling, called, host)
    if refusal is None:
        logger.info("association requested by %s from %s", calling, peer)
        return
    reason, (result, source, diagnostic) = refusal
    logger.warning("rejecting association from %s (%s): %s", calling, peer, reason)
    receiver.audit_association("rejected", reason, calling_ae=calling, called_ae=called, peer=peer)
    assoc.acse.send_reject(result, source, diagnostic)  # sets assoc.is_rejected
    evt.trigger(assoc, evt.EVT_REJECTED, {})
    assoc.kill()


def handle_aborted(event: Event, receiver: Receiver) -> None:
    """Audit associations that end with an abort."""
    assoc = event.assoc
    receiver.audit_association(
        "aborted", None, calling_ae=str(assoc.requestor.ae_title).strip(),
        called_ae=receiver.called_ae, peer=f"{assoc.requestor.address}:{assoc.requestor.port}",
    )


# -- the AE -----------------------------------------------------------------------


def storage_sop_classes() -> list[str]:
    """Every storage SOP class pynetdicom knows (MR, Enhanced MR, SC, SR, SEG, PDF ...)."""
    return sorted(str(uid) for uid in _STORAGE_CLASSES.values())


def build_ae(settings: Settings) -> AE:
    """An AE configured from ``settings``: contexts, limits, timeouts, PDU size."""
    ae = AE(ae_title=settings.ae_title)
    net = settings.network
    ae.maximum_associations = net.max_associations
    ae.network_timeout = net.network_timeout or None
    ae.acse_timeout = net.acse_timeout or None
    ae.dimse_timeout = net.dimse_timeout or None
    ae.maximum_pdu_size = net.maximum_pdu_size
    # our own handler checks (and audits) the called AE and the allow-lists
    ae.require_called_aet = False
    ae.require_calling_aet = []
    ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
    for uid in storage_sop_classes():
        ae.add_supported_context(uid, ALL_TRANSFER_SYNTAXES)
    return ae


def start_scp(settings: Settings, receiver: Receiver) -> tuple[AE, ThreadedAssociationServer]:
    """Start the SCP (non-blocking) on ``settings.host:settings.port``."""
    ae = build_ae(settings)
    policy = AssociationPolicy(
        ae_title=settings.ae_title,
        allowed_calling_aets=list(settings.allowed_calling_aets),
        allowed_hosts=list(settings.allowed_hosts),
    )
    handlers: list[Any] = [
        (evt.EVT_CONN_OPEN, handle_conn_open),
        (evt.EVT_REQUESTED, handle_requested, [policy, receiver]),
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, handle_store, [receiver]),
        (evt.EVT_ABORTED, handle_aborted, [receiver]),
    ]
    server = ae.start_server(
        (settings.host, settings.port), block=False, evt_handlers=handlers,
    )
    assert server is not None
    logger.info("SCP %s listening on %s:%d", settings.ae_title, *server.server_address[:2])
    return ae, server
