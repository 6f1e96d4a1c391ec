"""The exception family of the ``storage`` package.

Every error raised on purpose by :mod:`storage` derives from
:class:`StorageError` and is raised ``from`` its cause, so that the edges (the
C-STORE handler, a worker) can translate it into a DIMSE status or a failed job
without losing the reason.
"""

from __future__ import annotations

__all__ = ["IntegrityMismatch", "InvalidUID", "StorageError", "StoreFullError"]


class StorageError(Exception):
    """Base class of the errors raised by :mod:`storage`."""


class StoreFullError(StorageError):
    """The store's file system is below its free-space floor; nothing was written.

    The C-STORE handler answers 0xA700 (out of resources) for it.
    """


class IntegrityMismatch(StorageError):
    """A stored file's bytes no longer match the SHA-256 recorded for it."""


class InvalidUID(StorageError):
    """A UID that cannot be indexed (empty, or longer than the 64 characters DICOM allows)."""
