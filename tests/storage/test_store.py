"""The instance store: atomic, durable, hashed paths, idempotent, versioned, with a floor."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from storage.errors import IntegrityMismatch, InvalidUID, StorageError, StoreFullError
from storage.store import TMP_PREFIX, TMP_SUFFIX, InstanceStore, atomic_write, uid_digest
from tests.conftest import REPO_ROOT

STUDY, SERIES, SOP = (
    "1.2.826.0.1.3680043.2.1",
    "1.2.826.0.1.3680043.2.1.1",
    "1.2.826.0.1.3680043.2.1.1.1",
)


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_writes_the_bytes_as_given_and_reads_them_back(store: InstanceStore) -> None:
    data = b"DICM" + bytes(range(256)) * 100
    stored = store.put(STUDY, SERIES, SOP, data)
    assert stored.version == 1 and not stored.identical
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert store.path(stored.relpath).read_bytes() == data
    assert store.read(stored.relpath, sha256=stored.sha256) == data
    assert list(store.iter_files()) == [stored.relpath]
    # nothing else was left in the store: no temporary file
    assert _all_files(store.root) == [store.path(stored.relpath)]


def test_path_is_made_of_hashes_only(store: InstanceStore) -> None:
    stored = store.put(STUDY, SERIES, SOP, b"x")
    parts = stored.relpath.split("/")
    study = uid_digest(STUDY)
    assert parts == [study[:2], study, uid_digest(SERIES), uid_digest(SOP) + ".dcm"]
    for uid in (STUDY, SERIES, SOP):
        assert uid not in stored.relpath


@pytest.mark.parametrize(
    "hostile",
    [
        "../../etc",
        "1.2/3",
        "/etc/passwd",
        "..",
        ".",
        "a\\b\\..\\..",
        "1.2\x00.3",
        "x" * 5000,
        "é/../ü",
    ],
)
def test_hostile_uids_never_become_path_parts(store: InstanceStore, hostile: str) -> None:
    stored = store.put(hostile, hostile, hostile, b"payload")
    parts = stored.relpath.split("/")
    assert len(parts) == 4
    assert all(set(p.removesuffix(".dcm")) <= set("0123456789abcdef") for p in parts)
    written = store.path(stored.relpath).resolve()
    assert written.is_relative_to(store.root)
    assert written.read_bytes() == b"payload"
    # nothing appeared outside the store root
    assert [p for p in _all_files(store.root.parent) if not p.is_relative_to(store.root)] == []


@pytest.mark.parametrize(
    "relpath", ["../x", "/etc/passwd", "a/../../b", "", "a//b", "./a", "a\\..\\b"]
)
def test_path_refuses_to_leave_the_store(store: InstanceStore, relpath: str) -> None:
    with pytest.raises(StorageError):
        store.path(relpath)


def test_empty_uid_is_refused(store: InstanceStore) -> None:
    with pytest.raises(InvalidUID):
        store.put(STUDY, "", SOP, b"x")
    assert _all_files(store.root) == []


def test_same_uid_same_bytes_is_idempotent(store: InstanceStore) -> None:
    first = store.put(STUDY, SERIES, SOP, b"same bytes")
    mtime = store.path(first.relpath).stat().st_mtime_ns
    again = store.put(STUDY, SERIES, SOP, b"same bytes")
    assert again.identical
    assert (again.relpath, again.sha256, again.version) == (first.relpath, first.sha256, 1)
    assert store.path(first.relpath).stat().st_mtime_ns == mtime
    assert len(list(store.iter_files())) == 1


def test_same_uid_different_bytes_keeps_both_versions(store: InstanceStore) -> None:
    v1 = store.put(STUDY, SERIES, SOP, b"first content")
    v2 = store.put(STUDY, SERIES, SOP, b"second content")
    assert (v2.version, v2.identical) == (2, False)
    assert v2.relpath.endswith(".v2.dcm") and v2.relpath != v1.relpath
    assert store.read(v1.relpath) == b"first content"
    assert store.read(v2.relpath) == b"second content"
    # re-sending the newest content is a duplicate of version 2
    again = store.put(STUDY, SERIES, SOP, b"second content")
    assert (again.version, again.identical, again.relpath) == (2, True, v2.relpath)
    # going back to the first content is a change too: version 3
    v3 = store.put(STUDY, SERIES, SOP, b"first content")
    assert (v3.version, v3.identical) == (3, False)
    assert sorted(store.iter_files()) == sorted([v1.relpath, v2.relpath, v3.relpath])


def test_below_the_floor_nothing_is_written(tmp_path: Path) -> None:
    probe = InstanceStore(tmp_path / "store")
    floor = probe.free_bytes() + 10 * 2**40  # 10 TiB more than there is
    full = InstanceStore(tmp_path / "store", min_free_bytes=floor)
    assert probe.has_space() and not full.has_space()
    with pytest.raises(StoreFullError):
        full.put(STUDY, SERIES, SOP, b"x" * 1000)
    assert _all_files(full.root) == []


def test_floor_counts_the_incoming_bytes(tmp_path: Path) -> None:
    probe = InstanceStore(tmp_path / "store")
    # the floor sits 1 GiB under the free space: a small write passes, a 2 GiB one does not
    store = InstanceStore(tmp_path / "store", min_free_bytes=probe.free_bytes() - 2**30)
    assert store.has_space(1000)
    assert not store.has_space(2 * 2**30)


def test_read_detects_changed_bytes(store: InstanceStore) -> None:
    stored = store.put(STUDY, SERIES, SOP, b"original")
    store.verify(stored.relpath, stored.sha256)
    store.path(stored.relpath).write_bytes(b"tampered")
    with pytest.raises(IntegrityMismatch):
        store.read(stored.relpath, sha256=stored.sha256)
    with pytest.raises(IntegrityMismatch):
        store.verify(stored.relpath, stored.sha256)


def test_concurrent_puts_of_one_uid_never_overwrite(store: InstanceStore) -> None:
    """Eight writers, two contents, one SOP UID: every content is kept intact, none lost."""
    contents = [b"A" * 50_000, b"B" * 50_000]
    results = []
    barrier = threading.Barrier(8)

    def writer(i: int) -> None:
        barrier.wait()
        results.append(store.put(STUDY, SERIES, SOP, contents[i % 2]))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    files = sorted(store.iter_files())
    # each file holds one whole content, and each version number is used once
    for rel in files:
        assert store.read(rel) in contents
    written = [r for r in results if not r.identical]
    assert len({r.version for r in written}) == len(written) == len(files)
    for r in results:
        assert store.read(r.relpath, sha256=r.sha256) in contents
    assert not [p for p in _all_files(store.root) if p.name.startswith(TMP_PREFIX)]


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "result.dcm"
    atomic_write(target, b"old")
    atomic_write(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["result.dcm"]


_CRASHING_WRITER = textwrap.dedent("""
    import os, stat, sys, time
    from pathlib import Path
    from storage.store import InstanceStore

    store = InstanceStore(Path(sys.argv[1]))
    ready = Path(sys.argv[2])
    real_fsync = os.fsync

    def stall(fd):
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return real_fsync(fd)  # directories
        # the bytes are written under the temporary name, not yet flushed: stop here
        ready.write_text("writing")
        time.sleep(600)

    os.fsync = stall
    store.put("1.2.3", "1.2.3.4", "1.2.3.4.5", b"x" * 1_000_000)
    """)


def test_a_write_killed_midway_leaves_no_instance_and_is_swept(tmp_path: Path) -> None:
    root = tmp_path / "store"
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_WRITER, str(root), str(ready)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, "the writer exited before it started writing"
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = InstanceStore(root)
    leftovers = [p for p in _all_files(root) if p.name.startswith(TMP_PREFIX)]
    assert len(leftovers) == 1 and leftovers[0].name.endswith(TMP_SUFFIX)
    # no partial file under an instance name, and nothing an index could pick up
    final = store.path(store.relpath_for("1.2.3", "1.2.3.4", "1.2.3.4.5"))
    assert not final.exists()
    assert list(store.iter_files()) == []
    # a sender that retries finds no half-written version in its way
    assert store.put("1.2.3", "1.2.3.4", "1.2.3.4.5", b"y").version == 1
    # start-up sweep: the leftover goes, the instance stays
    assert store.sweep_temporary() == 1
    assert [p.name.startswith(TMP_PREFIX) for p in _all_files(root)] == [False]
    assert store.sweep_temporary() == 0


def test_sweep_spares_recent_temporaries_when_asked(store: InstanceStore) -> None:
    stored = store.put(STUDY, SERIES, SOP, b"x")
    directory = store.path(stored.relpath).parent
    old = directory / f"{TMP_PREFIX}old{TMP_SUFFIX}"
    new = directory / f"{TMP_PREFIX}new{TMP_SUFFIX}"
    old.write_bytes(b"o")
    new.write_bytes(b"n")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert store.sweep_temporary(older_than_seconds=3600) == 1
    assert new.exists() and not old.exists()
    assert list(store.iter_files()) == [stored.relpath]


def test_a_removed_directory_is_made_again(store: InstanceStore) -> None:
    import shutil

    first = store.put(STUDY, SERIES, SOP, b"one")
    shutil.rmtree(store.root / first.relpath.split("/")[0])  # e.g. a retention purge
    again = store.put(STUDY, SERIES, f"{SOP}.2", b"two")
    assert store.read(again.relpath) == b"two"
