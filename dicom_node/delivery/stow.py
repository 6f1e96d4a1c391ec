"""DICOMweb STOW-RS: all result objects of one study in one ``multipart/related`` POST.

Used for a destination with a ``stow_url`` (the DICOMweb service root, e.g.
``http://pacs:8042/dicom-web``); the objects are POSTed to ``<stow_url>/studies``
as stored (``application/dicom`` parts), with the standard library's HTTP client
(no dicomweb-client dependency). The response (PS3.18 10.5.3, ``application/dicom+json``)
is read per instance: in the Referenced SOP Sequence = delivered (a Warning Reason
makes it a warning, a failure unless accepted), in the Failed SOP Sequence = failed
with its Failure Reason. The result is the same :class:`~dicom_node.delivery.scu.SendReport`
as for C-STORE.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from config.settings import Destination, Settings
from dicom_node.delivery.scu import Failure, InstanceOutcome, SendReport, _inspect

__all__ = ["send_study_stow"]

logger = logging.getLogger(__name__)

_REFERENCED_SOP_SEQUENCE = "00081199"
_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_INSTANCE_UID = "00081155"
_FAILURE_REASON = "00081197"
_WARNING_REASON = "00081196"


def _body(paths: Sequence[Path], boundary: str) -> bytes:
    parts: list[bytes] = []
    for path in paths:
        parts.append(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
        )
        parts.append(path.read_bytes())
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(parts)


def _value(item: dict[str, Any], tag: str) -> Any:
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def _parse(payload: bytes) -> tuple[dict[str, int | None], dict[str, int]]:
    """(referenced UID -> warning reason or None, failed UID -> failure reason)."""
    if not payload.strip():
        return {}, {}
    doc = json.loads(payload)
    if isinstance(doc, list):  # some servers wrap the data set in an array
        doc = doc[0] if doc else {}
    referenced = {
        str(_value(item, _REFERENCED_SOP_INSTANCE_UID)): _value(item, _WARNING_REASON)
        for item in doc.get(_REFERENCED_SOP_SEQUENCE, {}).get("Value", [])
    }
    failed = {
        str(_value(item, _REFERENCED_SOP_INSTANCE_UID)): int(
            _value(item, _FAILURE_REASON) or 0xC000
        )
        for item in doc.get(_FAILED_SOP_SEQUENCE, {}).get("Value", [])
    }
    return referenced, failed


def send_study_stow(
    destination: Destination,
    objects: Sequence[str | os.PathLike[str]],
    *,
    settings: Settings,
    study_uid: str | None = None,
    accept_warnings: bool = False,
) -> SendReport:
    """POST the files of one study to ``destination.stow_url`` + ``/studies``.

    Parameters
    ----------
    destination
        A destination with ``stow_url`` set.
    objects
        Part 10 files, sent as stored.
    settings
        ``settings.network.network_timeout`` bounds the request.
    study_uid
        For the log records only.
    accept_warnings
        Count an instance with a Warning Reason as delivered.

    Returns
    -------
    SendReport
        One outcome per file, in the order given.
    """
    if not destination.stow_url:
        raise ValueError(f"destination {destination.name!r} has no stow_url")
    started = time.monotonic()
    report = SendReport(destination=destination.name)
    items = [_inspect(obj) for obj in objects]
    good = [it for it in items if it.error is None]
    url = destination.stow_url.rstrip("/") + "/studies"
    boundary = uuid.uuid4().hex
    status_code: int | None = None
    failure: Failure | None = None
    detail: str | None = None
    referenced: dict[str, int | None] = {}
    failed: dict[str, int] = {}
    if good:
        body = _body([Path(str(it.source)) for it in good], boundary)
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        })
        try:
            with urllib.request.urlopen(
                request, timeout=settings.network.network_timeout or None
            ) as response:
                status_code = response.status
                referenced, failed = _parse(response.read())
        except urllib.error.HTTPError as exc:
            status_code = exc.code
            try:
                referenced, failed = _parse(exc.read())
            except (ValueError, AttributeError):
                referenced, failed = {}, {}
            detail = f"HTTP {exc.code} {exc.reason}"
        except (TimeoutError, socket.timeout) as exc:
            failure, detail = Failure.TIMEOUT, f"no HTTP response in time ({exc})"
        except (urllib.error.URLError, OSError) as exc:
            failure, detail = Failure.NO_ASSOCIATION, f"no connection to {url}: {exc}"
        except ValueError as exc:  # an unreadable response body
            detail = f"unreadable STOW-RS response: {exc}"
        else:
            report.bytes_sent = len(body)
    report.association_failure = failure
    for item in items:
        report.outcomes.append(
            _outcome(item.sop_instance_uid, item.sop_class_uid, item.error, failure, detail,
                     status_code, referenced, failed, accept_warnings)
        )
    report.seconds = time.monotonic() - started
    logger.info("STOW-RS %d/%d objects to %s: HTTP %s", len(report.delivered), len(items),
                destination.name, status_code,
                extra={"study_uid": study_uid, "destination": destination.name})
    return report


def _outcome(
    uid: str,
    cls: str,
    error: str | None,
    failure: Failure | None,
    detail: str | None,
    status_code: int | None,
    referenced: dict[str, int | None],
    failed: dict[str, int],
    accept_warnings: bool,
) -> InstanceOutcome:
    if error is not None:
        return InstanceOutcome(uid, cls, failure=Failure.UNREADABLE, detail=error)
    if failure is not None:
        return InstanceOutcome(uid, cls, failure=failure, detail=detail)
    if uid in failed:
        return InstanceOutcome(uid, cls, status=failed[uid], failure=Failure.STATUS_FAILURE,
                               detail=detail or f"STOW-RS failed (HTTP {status_code})")
    if uid in referenced and status_code is not None and status_code < 300:
        warning = referenced[uid]
        if warning is not None and not accept_warnings:
            return InstanceOutcome(uid, cls, status=int(warning), failure=Failure.STATUS_WARNING,
                                   detail="STOW-RS warning")
        return InstanceOutcome(uid, cls, status=int(warning) if warning is not None else 0)
    return InstanceOutcome(uid, cls, failure=Failure.STATUS_FAILURE,
                           detail=detail or f"not stored (HTTP {status_code})")
