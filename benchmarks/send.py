"""Send benchmark: our C-STORE sender vs DCMTK storescu, to the same storescp, in one run.

Not a test. It writes two data sets into a temporary directory (``--small`` MR
instances of 64x64, ``--large`` of 512x512, 16-bit), starts DCMTK ``storescp``
on a free loopback port (``TCP_NODELAY=1``, files written to a temporary
directory, no fsync), and for each run sends each data set on one association
with:

* ``pynetdicom-defaults``: a plain pynetdicom AE, ``send_c_store(path)`` per file
  (decoded and re-encoded), Nagle on, default PDU size: the ~20 instances/s the
  issue reports;
* ``pynetdicom+nodelay``: the same with ``TCP_NODELAY`` set on the socket (and our
  work-around for pynetdicom's reactor race, without which it loses responses);
* ``send_study``: :func:`dicom_node.delivery.scu.send_study` (``TCP_NODELAY`` at
  connection open, stored bytes streamed as they are, unlimited PDU on our side);
* ``storescu``: DCMTK's sender (``TCP_NODELAY=1``), timed as a process.

It prints instances/s, MB/s and CPU milliseconds per instance of the sender
(medians of ``--runs``; CPU time is less sensitive than wall time to the load of
a shared machine) and the ratio of ``send_study`` to storescu measured in the
same runs.

Usage::

    nice -n 10 .venv/bin/python benchmarks/send.py --runs 3
    nice -n 10 .venv/bin/python benchmarks/send.py --runs 1 --small 100 --large 20  # quick
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
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
sys.path.insert(0, str(REPO))

from config.settings import Destination, load_settings  # noqa: E402
from dicom_node.delivery.scu import _keep_responses, send_study  # noqa: E402

AET = "STORESCP"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_series(out: Path, count: int, size: int) -> list[Path]:
    """``count`` MR instances of ``size`` x ``size`` pixels in one study."""
    out.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 4096, (size, size), dtype=np.uint16)
    study, series = generate_uid(), generate_uid()
    paths = []
    for i in range(count):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID, ds.Modality, ds.InstanceNumber = "BENCH", "MR", i + 1
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = pixels.tobytes()
        path = out / f"{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _pynetdicom(paths: list[Path], port: int, *, nodelay: bool) -> None:
    from pynetdicom import AE

    ae = AE(ae_title="BENCH")
    ae.add_requested_context(MRImageStorage, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title=AET)
    if not assoc.is_established:
        raise RuntimeError("no association")
    if nodelay:
        sock = assoc.dul.socket.socket if assoc.dul.socket is not None else None
        if sock is None:
            raise RuntimeError("the association has no socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # without it pynetdicom's reactor loses some responses (see docs/delivery.md)
        _keep_responses(assoc)
    try:
        for path in paths:
            if assoc.send_c_store(path).Status != 0:
                raise RuntimeError("store failed")
    finally:
        assoc.release()


_SETTINGS = load_settings(environ={}, check_paths=False)


def _send_study(paths: list[Path], port: int) -> None:
    settings = _SETTINGS
    dest = Destination(name="bench", ae_title=AET, host="127.0.0.1", port=port)
    report = send_study(dest, paths, settings=settings)
    if not report.ok:
        raise RuntimeError(report.failed[0].describe())


def _storescu(paths: list[Path], port: int) -> None:
    subprocess.run(
        ["storescu", "-aec", AET, "-xe", "127.0.0.1", str(port), *map(str, paths)],
        check=True, env=dict(os.environ, TCP_NODELAY="1"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


SENDERS: dict[str, Callable[[list[Path], int], None]] = {
    "pynetdicom-defaults": lambda p, port: _pynetdicom(p, port, nodelay=False),
    "pynetdicom+nodelay": lambda p, port: _pynetdicom(p, port, nodelay=True),
    "send_study": _send_study,
    "storescu": _storescu,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=300, help="64x64 instances")
    parser.add_argument("--large", type=int, default=40, help="512x512 instances")
    parser.add_argument("--slow-limit", type=int, default=60,
                        help="instances sent by pynetdicom-defaults (it is slow)")
    args = parser.parse_args()
    if shutil.which("storescp") is None or shutil.which("storescu") is None:
        print("DCMTK storescp/storescu are needed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="send-bench-") as tmp:
        root = Path(tmp)
        sets = {
            "small": write_series(root / "small", args.small, 64),
            "large": write_series(root / "large", args.large, 512),
        }
        port = free_port()
        received = root / "received"
        received.mkdir()
        proc = subprocess.Popen(
            ["storescp", "-aet", AET, "--output-directory", str(received), str(port)],
            env=dict(os.environ, TCP_NODELAY="1"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            _wait(port)
            results = _measure(sets, port, args, received)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    _print(results, sets)
    return 0


def _wait(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("storescp did not start")


def _cpu() -> float:
    """CPU seconds of this process (all threads) and of its finished children (storescu)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _measure(
    sets: dict[str, list[Path]], port: int, args: argparse.Namespace, received: Path
) -> dict[tuple[str, str], list[tuple[float, int, int, float]]]:
    results: dict[tuple[str, str], list[tuple[float, int, int, float]]] = {}
    for _ in range(args.runs):
        for set_name, paths in sets.items():
            for name, sender in SENDERS.items():
                chosen = paths[: args.slow_limit] if name == "pynetdicom-defaults" else paths
                size = sum(p.stat().st_size for p in chosen)
                cpu0 = _cpu()
                start = time.perf_counter()
                sender(chosen, port)
                seconds = time.perf_counter() - start
                cpu = _cpu() - cpu0
                results.setdefault((set_name, name), []).append((seconds, len(chosen), size, cpu))
                for f in received.iterdir():
                    f.unlink()
    return results


def _print(
    results: dict[tuple[str, str], list[tuple[float, int, int, float]]], sets: dict[str, list[Path]]
) -> None:
    print(f"{'data set':<8} {'sender':<22} {'inst/s':>9} {'MB/s':>8} {'CPU ms/inst':>12}"
          "   (medians of runs; CPU: the sender's process)")
    for set_name in sets:
        for (s, name), runs in results.items():
            if s != set_name:
                continue
            per_s = statistics.median(n / t for t, n, _, _ in runs)
            mb_s = statistics.median(b / t / 1e6 for t, _, b, _ in runs)
            cpu_ms = statistics.median(1000 * c / n for _, n, _, c in runs)
            print(f"{set_name:<8} {name:<22} {per_s:9.1f} {mb_s:8.1f} {cpu_ms:12.2f}")
        ratio = statistics.median(
            (n1 / t1) / (n2 / t2)
            for (t1, n1, _, _), (t2, n2, _, _) in zip(
                results[(set_name, "send_study")], results[(set_name, "storescu")]
            )
        )
        print(f"{set_name:<8} send_study / storescu = {ratio:.2f} (median of per-run ratios)")


if __name__ == "__main__":
    sys.exit(main())
