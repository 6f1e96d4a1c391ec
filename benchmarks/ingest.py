"""Ingest benchmark: DCMTK storescu -> {storescp, Orthanc, pynetdicom, dicom-node serve}.

Not a test. In one run it generates two data sets into a temporary directory
(``--large`` MR instances of 512x512 16-bit, ``--small`` small MR instances of
64x64), then for each run and each receiver starts the receiver fresh on free
loopback ports with its own temporary storage, sends each data set with one
``storescu`` association, and times the ``storescu`` process. It prints
instances/s and MB/s per receiver (medians of ``--runs``), the ratios of
dicom-node to the others, and the peak RSS (VmHWM) of ``serve``.

Every DCMTK and Orthanc process gets ``TCP_NODELAY=1`` (BENCHMARKING.md).
Durability differs: storescp does not fsync; Orthanc fsyncs its SQLite index
about once per instance; dicom-node fsyncs each file, its directory and the
SQLite commit (synchronous FULL) before answering. ``pynetdicom`` is a bare
pynetdicom SCP writing the received bytes without fsync or index: the floor for
any receiver built on pynetdicom, so the gap to it is what dicom-node's own work
costs.

Usage::

    nice -n 10 .venv/bin/python benchmarks/ingest.py --runs 3
    nice -n 10 .venv/bin/python benchmarks/ingest.py --runs 1 --large 60 --small 200  # quick
    # before/after in one run, plus serve with SQLite synchronous=NORMAL:
    mkdir /tmp/base && git archive <rev> | tar -x -C /tmp/base
    nice -n 10 .venv/bin/python benchmarks/ingest.py --baseline /tmp/base \
        --receivers orthanc,dn-base,dicom-node,dn-normal,pynetdicom

The order of the receivers is reversed on every other run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    return env


# -- data ---------------------------------------------------------------------


def write_series(out: Path, count: int, size: int, seed: int = 0) -> int:
    """Write ``count`` MR instances of ``size`` x ``size`` into ``out``; returns total bytes."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 4096, (size, size), dtype=np.uint16)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    total = 0
    for i in range(count):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName = "BENCH", "Bench^Mark"
        ds.StudyDate, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "20260101", "MR", 1, i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [0.5, 0.5], 1.0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = pixels.tobytes()
        path = out / f"{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        total += path.stat().st_size
    return total


# -- receivers ----------------------------------------------------------------


def wait_echo(aet: str, port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rc = subprocess.run(
            ["echoscu", "-aec", aet, "127.0.0.1", str(port)], env=_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ).returncode
        if rc == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{aet} on port {port} did not answer C-ECHO")


class Receiver:
    name = "?"
    aet = "?"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.peak_rss_kb: int | None = None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            with open(f"/proc/{self.proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        self.peak_rss_kb = int(line.split()[1])
        except OSError:
            pass
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class StoreScp(Receiver):
    name, aet = "storescp", "STORESCP"

    def start(self) -> None:
        out = self.work / "out"
        out.mkdir(parents=True)
        self.proc = subprocess.Popen(
            ["storescp", "-aet", self.aet, "-od", str(out), "+xa", "-pdu", "131072",
             str(self.port)],
            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_echo(self.aet, self.port)


class Orthanc(Receiver):
    name, aet = "orthanc", "ORTHANC"

    def start(self) -> None:
        storage = self.work / "orthanc"
        storage.mkdir(parents=True)
        config = {
            "Name": "bench", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "DicomAet": self.aet, "DicomPort": self.port, "HttpPort": free_port(),
            "RemoteAccessAllowed": False, "DicomCheckCalledAet": False, "Plugins": [],
            "StorageCompression": False, "HttpServerEnabled": True, "DicomServerEnabled": True,
            "SaveJobs": False, "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True,
        }
        path = self.work / "orthanc.json"
        path.write_text(json.dumps(config))
        self.proc = subprocess.Popen(
            ["Orthanc", str(path)], env=_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_echo(self.aet, self.port)


class DicomNode(Receiver):
    name, aet = "dicom-node", "DICOM_NODE"
    #: appended to the SQLite URL (``?synchronous=NORMAL`` for the variant below)
    url_query = ""
    #: the source tree ``serve`` runs from (``--baseline`` sets one for the variant)
    tree = REPO

    def start(self) -> None:
        env = _env()
        if self.url_query:
            db = (self.work / "var" / "dicom-node.sqlite3").resolve()
            env["DICOM_NODE_DATABASE_URL"] = f"sqlite:///{db}{self.url_query}"
        if self.tree != REPO:
            env["PYTHONPATH"] = str(self.tree)
        env.update({
            "DICOM_NODE_AE_TITLE": self.aet, "DICOM_NODE_HOST": "127.0.0.1",
            "DICOM_NODE_PORT": str(self.port), "DICOM_NODE_HTTP_PORT": str(free_port()),
            "DICOM_NODE_STORAGE_DIR": str(self.work / "var"), "DICOM_NODE_MIN_FREE_DISK_MB": "0",
            "DICOM_NODE_LOG_LEVEL": "WARNING",
        })
        env.pop("DICOM_NODE_CONFIG", None)
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "dicom_node", "serve"], env=env, cwd=self.tree,
            stdout=subprocess.DEVNULL, stderr=None,
        )
        wait_echo(self.aet, self.port)


class DicomNodeNormal(DicomNode):
    """``serve`` with SQLite ``synchronous=NORMAL`` (survives SIGKILL, not a power loss)."""

    name = "dn-normal"
    url_query = "?synchronous=NORMAL"


class DicomNodeBaseline(DicomNode):
    """``serve`` from another source tree (``--baseline``): before/after in one run."""

    name = "dn-base"


class BarePynetdicom(Receiver):
    """A pynetdicom SCP that writes ``encoded_dataset()`` to a file, no fsync, no index.

    The floor of any pynetdicom-based receiver: the difference to ``dicom-node`` is
    what parsing, durability (fsyncs) and indexing cost.
    """

    name, aet = "pynetdicom", "BARE"

    def start(self) -> None:
        out = self.work / "out"
        out.mkdir(parents=True)
        self.proc = subprocess.Popen(
            [PYTHON, __file__, "--bare-scp", str(self.port), str(out)],
            env=_env(), stdout=subprocess.DEVNULL, stderr=None,
        )
        wait_echo(self.aet, self.port)


def run_bare_scp(port: int, out: Path) -> int:
    """Serve ``BarePynetdicom`` until SIGTERM."""
    import threading

    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    def on_store(event: object) -> int:
        data = event.encoded_dataset()  # type: ignore[attr-defined]
        uid = event.request.AffectedSOPInstanceUID  # type: ignore[attr-defined]
        (out / f"{uid}.dcm").write_bytes(data)
        return 0

    def on_open(event: object) -> None:
        sock = event.assoc.dul.socket.socket  # type: ignore[attr-defined]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    ae = AE("BARE")
    ae.maximum_pdu_size = 0
    ae.add_supported_context(Verification)
    ae.add_supported_context(MRImageStorage, ALL_TRANSFER_SYNTAXES)
    server = ae.start_server(
        ("127.0.0.1", port), block=False,
        evt_handlers=[(evt.EVT_C_STORE, on_store), (evt.EVT_CONN_OPEN, on_open)],
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    assert server is not None
    server.shutdown()
    return 0


RECEIVERS: dict[str, Callable[[Path], Receiver]] = {
    "storescp": StoreScp, "orthanc": Orthanc, "pynetdicom": BarePynetdicom,
    "dicom-node": DicomNode, "dn-normal": DicomNodeNormal, "dn-base": DicomNodeBaseline,
}


def send(aet: str, port: int, data: Path) -> float:
    """Send every file under ``data`` in one association; returns seconds."""
    cmd = ["storescu", "-aec", aet, "+sd", "+r", "-pdu", "131072", "127.0.0.1", str(port), str(data)]
    start = time.perf_counter()
    result = subprocess.run(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"storescu to {aet} failed: {result.stderr.decode()[-500:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--bare-scp"]:
        return run_bare_scp(int(argv[1]), Path(argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--large", type=int, default=600, help="512x512 MR instances")
    parser.add_argument("--small", type=int, default=2000, help="64x64 MR instances")
    parser.add_argument("--receivers", default="storescp,orthanc,pynetdicom,dicom-node")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--baseline", type=Path, default=None,
        help="a source tree (e.g. a 'git worktree add' of an older commit) that the receiver "
             "'dn-base' runs serve from, to compare before/after in the same run",
    )
    args = parser.parse_args(argv)
    if args.baseline is not None:
        DicomNodeBaseline.tree = args.baseline.resolve()
    names = [n for n in args.receivers.split(",") if n]
    needed = {"storescu", "echoscu"} | {"storescp"} & set(names)
    needed |= {"Orthanc"} if "orthanc" in names else set()
    missing = sorted(p for p in needed if shutil.which(p) is None)
    if missing:
        print(f"not installed: {', '.join(missing)}", file=sys.stderr)
        return 2

    root = Path(tempfile.mkdtemp(prefix="dicom-node-bench-"))
    try:
        datasets = {}
        for label, count, size in (("large", args.large, 512), ("small", args.small, 64)):
            if count <= 0:
                continue
            path = root / "data" / label
            total = write_series(path, count, size)
            datasets[label] = (path, count, total)
            print(f"data set {label}: {count} instances, {total / 1e6:.1f} MB")
        # rates[label][receiver] = list of (instances/s, MB/s)
        rates: dict[str, dict[str, list[tuple[float, float]]]] = {
            label: {n: [] for n in names} for label in datasets
        }
        peak_rss: list[int] = []
        for run in range(args.runs):
            # alternate the order, so that no receiver always runs first (page cache,
            # load drifting over a run)
            for name in (names if run % 2 == 0 else names[::-1]):
                for label, (path, count, total) in datasets.items():
                    work = root / "work" / f"{name}-{label}-{run}"
                    receiver = RECEIVERS[name](work)
                    receiver.start()
                    try:
                        seconds = send(receiver.aet, receiver.port, path)
                    finally:
                        receiver.stop()
                        if receiver.peak_rss_kb and name.startswith(("dicom-node", "dn-")):
                            peak_rss.append(receiver.peak_rss_kb)
                        shutil.rmtree(work, ignore_errors=True)
                    rates[label][name].append((count / seconds, total / 1e6 / seconds))
                    print(f"run {run + 1} {label:5} {name:10} {count / seconds:8.1f} inst/s "
                          f"{total / 1e6 / seconds:8.1f} MB/s", flush=True)
        print(f"\nmedians of {args.runs} run(s), storescu -> receiver, one association:")
        for label, by_name in rates.items():
            med = {n: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
                   for n, v in by_name.items() if v}
            for name, (ips, mbs) in med.items():
                print(f"  {label:5} {name:10} {ips:8.1f} instances/s {mbs:8.1f} MB/s")
            for mine in (n for n in med if n.startswith(("dicom-node", "dn-"))):
                ours = med[mine][0]
                for name, (ips, _) in med.items():
                    if name != mine and not name.startswith(("dicom-node", "dn-")):
                        print(f"  {label:5} ratio {mine}/{name}: {ours / ips:.2f}")
        if peak_rss:
            print(f"peak RSS of dicom-node serve (any variant): {max(peak_rss) / 1024:.0f} MiB")
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
