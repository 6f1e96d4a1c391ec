"""The on-disk instance store: received bytes, written as-is, durably.

Layout under the store root (all names derived by hashing, because UIDs come
from the wire and are untrusted; a UID is never a path part)::

    <sha(study)[:2]>/<sha(study)>/<sha(series)>/<sha(sop)>.dcm       version 1
    <sha(study)[:2]>/<sha(study)>/<sha(series)>/<sha(sop)>.v2.dcm    version 2, ...

``sha`` is the hex SHA-256 of the UID's UTF-8 bytes.

A write is atomic and durable: the bytes go to a temporary file in the target
directory (``.tmp-*.partial``: a name no instance can have), are flushed with
``fsync``, linked to the final name, and the directory is flushed. After a
crash only whole files exist under instance names; the leftover temporary files
are removed by :meth:`InstanceStore.sweep_temporary` at start-up.

The final name is taken with ``link(2)``, which fails instead of overwriting,
so two writers of the same SOP Instance UID (two associations, or two
processes on shared storage) can never overwrite each other's version.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from storage.errors import IntegrityMismatch, InvalidUID, StorageError, StoreFullError

__all__ = ["InstanceStore", "StoredFile", "atomic_write", "uid_digest"]

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
TMP_SUFFIX = ".partial"
SUFFIX = ".dcm"
_VERSION_RE = re.compile(r"^[0-9a-f]{64}(?:\.v([0-9]+))?\.dcm$")
# errors of link(2) meaning "this file system has no hard links"
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    """What :meth:`InstanceStore.put` did.

    Attributes
    ----------
    relpath
        The file, relative to the store root (POSIX separators).
    sha256
        Hex SHA-256 of the bytes.
    size
        Number of bytes.
    version
        1 for the first content of a SOP Instance UID, 2, 3, ... for later ones.
    identical
        The same UID with the same bytes was already stored; nothing was written.
    """

    relpath: str
    sha256: str
    size: int
    version: int
    identical: bool


def uid_digest(uid: str) -> str:
    """The hex SHA-256 of ``uid``: the only form in which a UID reaches a path."""
    return hashlib.sha256(uid.encode("utf-8", "surrogatepass")).hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_fsync(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(tag: str) -> str:
    return f"{TMP_PREFIX}{tag}-{uuid.uuid4().hex}{TMP_SUFFIX}"


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        logger.warning("could not remove temporary file %s", path, exc_info=True)


def _raise_write_error(exc: OSError, what: str) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise StoreFullError(f"no space left writing {what}") from exc
    raise StorageError(f"cannot write {what}: {exc}") from exc


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably, replacing what is there.

    For files that are replaced rather than versioned (results of a re-run).
    The parent directory must exist.

    Raises
    ------
    StoreFullError
        When the file system is full (nothing is left behind).
    StorageError
        For any other failure to write.
    """
    path = Path(path)
    tmp = path.with_name(_temp_name(path.name[:16]))
    try:
        _write_fsync(tmp, data)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        _unlink_quietly(tmp)
        _raise_write_error(exc, str(path))


class InstanceStore:
    """Received instances on a local or shared file system.

    Parameters
    ----------
    root
        The store's directory; created if missing.
    min_free_bytes
        The free-space floor: below it :meth:`put` raises :class:`StoreFullError`
        (the C-STORE handler answers 0xA700) instead of failing half-way.
    """

    def __init__(self, root: Path, *, min_free_bytes: int = 0) -> None:
        self.root = Path(root).resolve()
        self.min_free_bytes = int(min_free_bytes)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the store at {self.root}: {exc}") from exc
        self._known_dirs: set[Path] = set()
        self._dir_lock = threading.Lock()
        # only used where the file system has no hard links (see _claim)
        self._rename_lock = threading.Lock()

    # -- space ---------------------------------------------------------------

    def free_bytes(self) -> int:
        """Free bytes on the store's file system, as available to this user."""
        return shutil.disk_usage(self.root).free

    def has_space(self, incoming: int = 0) -> bool:
        """Whether the free space, less ``incoming`` bytes, is at least the floor."""
        if self.min_free_bytes <= 0:
            return True
        return self.free_bytes() - incoming >= self.min_free_bytes

    # -- paths ---------------------------------------------------------------

    @staticmethod
    def relpath_for(study_uid: str, series_uid: str, sop_uid: str, version: int = 1) -> str:
        """The relative path of ``version`` of an instance (see the module docstring)."""
        study = uid_digest(study_uid)
        name = uid_digest(sop_uid) + (f".v{version}" if version > 1 else "") + SUFFIX
        return f"{study[:2]}/{study}/{uid_digest(series_uid)}/{name}"

    def path(self, relpath: str) -> Path:
        """The absolute path of ``relpath``, which must stay inside the store.

        Raises
        ------
        StorageError
            When ``relpath`` is absolute, empty or climbs out of the root.
        """
        pure = PurePosixPath(relpath)
        if (
            not relpath
            or pure.is_absolute()
            or "\\" in relpath
            or any(part in ("..", ".", "") for part in relpath.split("/"))
        ):
            raise StorageError(f"not a path inside the store: {relpath!r}")
        return self.root.joinpath(*pure.parts)

    def read(self, relpath: str, *, sha256: str | None = None) -> bytes:
        """The bytes of ``relpath``; checked against ``sha256`` when it is given.

        Raises
        ------
        IntegrityMismatch
            When the bytes do not hash to ``sha256``.
        StorageError
            When the file cannot be read.
        """
        path = self.path(relpath)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {relpath}: {exc}") from exc
        if sha256 is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != sha256:
                raise IntegrityMismatch(f"{relpath}: sha256 {actual} != recorded {sha256}")
        return data

    def verify(self, relpath: str, sha256: str) -> None:
        """Raise :class:`IntegrityMismatch` unless ``relpath`` hashes to ``sha256``."""
        actual = self._hash_file(self.path(relpath))
        if actual != sha256:
            raise IntegrityMismatch(f"{relpath}: sha256 {actual} != recorded {sha256}")

    # -- writing -------------------------------------------------------------

    def put(self, study_uid: str, series_uid: str, sop_uid: str, data: bytes) -> StoredFile:
        """Store the encoded bytes of one instance, durably, before it is acknowledged.

        Parameters
        ----------
        study_uid, series_uid, sop_uid
            The instance's UIDs as received (hashed into the path).
        data
            The encoded dataset, written as-is.

        Returns
        -------
        StoredFile
            ``identical=True`` when the newest stored version already holds these
            bytes (nothing written); otherwise the version just written.

        Raises
        ------
        InvalidUID
            When a UID is empty.
        StoreFullError
            When the file system is below the floor (checked before writing) or
            fills up while writing; nothing is left behind.
        StorageError
            For any other failure to write.
        """
        for name, uid in (("study", study_uid), ("series", series_uid), ("SOP instance", sop_uid)):
            if not isinstance(uid, str) or not uid:
                raise InvalidUID(f"empty {name} UID")
        size = len(data)
        if not self.has_space(size):
            raise StoreFullError(
                f"free space below the floor of {self.min_free_bytes} bytes in {self.root}"
            )
        digest = hashlib.sha256(data).hexdigest()
        rel1 = self.relpath_for(study_uid, series_uid, sop_uid)
        directory = self.path(rel1).parent
        try:
            self._ensure_dir(directory)
        except OSError as exc:
            _raise_write_error(exc, f"directory {directory}")

        latest = self._latest_version(study_uid, series_uid, sop_uid)
        if latest and self._same(study_uid, series_uid, sop_uid, latest, digest, size):
            return StoredFile(
                self.relpath_for(study_uid, series_uid, sop_uid, latest), digest, size, latest, True
            )

        tmp = directory / _temp_name(uid_digest(sop_uid)[:16])
        try:
            try:
                _write_fsync(tmp, data)
            except FileNotFoundError:
                # the directory was removed since we saw it (a purge): make it again
                self._known_dirs.discard(directory)
                self._ensure_dir(directory)
                _write_fsync(tmp, data)
            while True:
                version = latest + 1
                rel = self.relpath_for(study_uid, series_uid, sop_uid, version)
                if self._claim(tmp, self.path(rel)):
                    break
                # another writer took this version name first: look again
                latest = self._latest_version(study_uid, series_uid, sop_uid)
                if self._same(study_uid, series_uid, sop_uid, latest, digest, size):
                    _unlink_quietly(tmp)
                    return StoredFile(
                        self.relpath_for(study_uid, series_uid, sop_uid, latest),
                        digest,
                        size,
                        latest,
                        True,
                    )
            _unlink_quietly(tmp)
            _fsync_dir(directory)
        except OSError as exc:
            _unlink_quietly(tmp)
            _raise_write_error(exc, "an instance")
        if version > 1:
            logger.info("stored version %d of an instance with different bytes", version)
        return StoredFile(rel, digest, size, version, False)

    def _claim(self, tmp: Path, target: Path) -> bool:
        """Give ``tmp`` the name ``target`` unless it exists; ``False`` if it does."""
        try:
            os.link(tmp, target)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
        # no hard links here: rename, guarded in this process only
        with self._rename_lock:
            if target.exists():
                return False
            os.rename(tmp, target)
            return True

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._known_dirs:
            return
        missing: list[Path] = []
        current = directory
        while current != self.root and not current.is_dir():
            missing.append(current)
            current = current.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                pass
            # the new directory entry must survive a power loss too
            _fsync_dir(path.parent)
        with self._dir_lock:
            if len(self._known_dirs) > 100_000:
                self._known_dirs.clear()
            self._known_dirs.add(directory)

    def _latest_version(self, study_uid: str, series_uid: str, sop_uid: str) -> int:
        version = 0
        while self.path(self.relpath_for(study_uid, series_uid, sop_uid, version + 1)).exists():
            version += 1
        return version

    def _same(
        self, study_uid: str, series_uid: str, sop_uid: str, version: int, digest: str, size: int
    ) -> bool:
        if version < 1:
            return False
        path = self.path(self.relpath_for(study_uid, series_uid, sop_uid, version))
        try:
            if path.stat().st_size != size:
                return False
            return self._hash_file(path) == digest
        except FileNotFoundError:
            return False

    @staticmethod
    def _hash_file(path: Path) -> str:
        h = hashlib.sha256()
        try:
            with path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc}") from exc
        return h.hexdigest()

    # -- housekeeping ----------------------------------------------------------

    def sweep_temporary(self, *, older_than_seconds: float = 0.0) -> int:
        """Remove temporary files left by an interrupted write; return how many.

        Parameters
        ----------
        older_than_seconds
            Only remove files not modified for this long. 0 (at start-up of a
            single node) removes all; on storage shared by several front-ends give
            a margin, so that another process's write in progress is left alone.
        """
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in self._walk(temporary=True):
            try:
                if older_than_seconds > 0 and path.stat().st_mtime > cutoff:
                    continue
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
        if removed:
            logger.warning("removed %d temporary file(s) left by an interrupted write", removed)
        return removed

    def iter_files(self) -> Iterator[str]:
        """Relative paths of every stored instance file (temporary files excluded)."""
        for path in self._walk(temporary=False):
            yield path.relative_to(self.root).as_posix()

    def _walk(self, *, temporary: bool) -> Iterator[Path]:
        stack = [self.root]
        while stack:
            directory = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    is_tmp = entry.name.startswith(TMP_PREFIX) and entry.name.endswith(TMP_SUFFIX)
                    if temporary and is_tmp:
                        yield Path(entry.path)
                    elif not temporary and _VERSION_RE.match(entry.name):
                        yield Path(entry.path)
