"""DIMSE status codes answered by the node, in one place (PS3.4 B.2.3, PS3.7 C).

Every status the SCP returns is a member of :class:`Status`; docs/receiver.md
lists them with the situations that produce them. The "cannot understand"
codes are in the storage service's 0xCxxx failure range; 0xC211 is left to
pynetdicom, which answers it when a handler raises (ours never does).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Status"]


class Status(IntEnum):
    """DIMSE status values used by the SCP."""

    #: the instance (or echo) succeeded; for C-STORE the file and its row are durable
    SUCCESS = 0x0000
    #: the store's free space is below ``min_free_disk_mb`` (or the disk filled up)
    OUT_OF_RESOURCES = 0xA700
    #: the data set's SOP Class UID does not match the request's Affected SOP Class UID
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    #: the data set cannot be parsed (truncated, not DICOM, wrong transfer syntax)
    CANNOT_UNDERSTAND = 0xC210
    #: a required UID is missing or its value is not a valid UID
    MISSING_OR_INVALID_UID = 0xC220
    #: the data set's SOP Instance UID does not match the request's Affected SOP Instance UID
    SOP_INSTANCE_UID_MISMATCH = 0xC221
    #: the node failed while storing (database or file system error); nothing was indexed
    PROCESSING_FAILURE = 0x0110

    @property
    def is_success(self) -> bool:
        """True for :attr:`SUCCESS`."""
        return self is Status.SUCCESS
