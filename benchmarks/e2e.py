"""End-to-end benchmark: study in over DICOM -> SEG/SR acknowledged by the receiving PACS.

Not a test. A node runs in this process (SQLite, the local executor, the settings
of ``dicom-node demo``) with a pynetdicom receiving PACS on loopback.

* **Latency**, per study type: the phantom is sent on one association; the clock
  starts when the last instance is acknowledged and stops when the PACS stores the
  last result object. The configured quiet time (``series_quiet_seconds +
  settle_seconds``) is subtracted: what is left is routing, the job (model
  loading on the first study, series loading, inference, encoding, writing) and
  the delivery. ``--runs`` studies per type (each with fresh UIDs); the first
  includes loading the models and is reported separately.
* **Throughput**: ``--queue`` copies of the lumbar phantom (fresh UIDs each) sent
  back to back; studies/hour = studies / (last result stored - first instance sent).

Usage::

    nice -n 10 .venv/bin/python benchmarks/e2e.py --runs 3 --queue 20
    .venv/bin/python benchmarks/e2e.py --runs 2 --queue 4 --json out.json   # quick
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

from dicom_node.commands._demo_pacs import ReceivingPacs
from dicom_node.commands.demo import demo_settings, send_folder, study_progress
from dicom_node.server import Node


def fresh_copy(files: list[Path], out: Path) -> tuple[str, list[Path]]:
    """The study ``files`` under new Study/Series/SOP Instance UIDs (a new study to the node)."""
    study = generate_uid()
    series: dict[str, str] = {}
    written = []
    out.mkdir(parents=True, exist_ok=True)
    for k, path in enumerate(files):
        ds = dcmread(path)
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series.setdefault(str(ds.SeriesInstanceUID), generate_uid())
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        target = out / f"{k:04d}.dcm"
        ds.save_as(target, enforce_file_format=True)
        written.append(target)
    return study, written


def wait_done(node: Node, study_uids: list[str], limit: float = 3600.0) -> None:
    assert node.session_factory is not None
    deadline = time.monotonic() + limit
    while not all(study_progress(node.session_factory, uid)[1] for uid in study_uids):
        if time.monotonic() > deadline:
            raise TimeoutError("results did not come back")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="studies per type for the latency")
    parser.add_argument("--queue", type=int, default=20, help="studies in the throughput queue (0: skip)")
    parser.add_argument("--quiet", type=float, default=1.0, help="series quiet time of the node (s)")
    parser.add_argument("--types", nargs="+", default=["lumbar", "sij"], choices=["lumbar", "sij"])
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (phantoms, store, PACS)")
    args = parser.parse_args()

    from inference.phantoms.lumbar import generate_lumbar_study
    from inference.phantoms.sij import generate_sij_study

    root = Path(tempfile.mkdtemp(prefix="dicom-node-e2e-"))
    phantoms = {
        "lumbar": generate_lumbar_study(root / "phantoms" / "lumbar", 1),
        "sij": generate_sij_study(root / "phantoms" / "sij", 1),
    }
    files = {k: sorted((Path(v) / "dicom").rglob("*.dcm")) for k, v in phantoms.items()}
    report: dict[str, object] = {"quiet_seconds": args.quiet, "root": str(root)}
    with ReceivingPacs(root / "pacs") as pacs:
        settings = demo_settings(root, pacs.port, quiet_seconds=args.quiet)
        settle = settings.assembly.series_quiet_seconds + settings.assembly.settle_seconds
        node = Node(settings)
        node.start()
        try:
            for kind in args.types:
                latencies = []
                for run in range(args.runs):
                    uid, copy = fresh_copy(files[kind], root / "copies" / f"{kind}-{run}")
                    send_folder(copy, node.address[1])
                    acked = time.time()
                    wait_done(node, [uid])
                    problems = study_progress(node.session_factory, uid)[2]
                    objects = pacs.objects(uid)
                    if problems or not objects:
                        print(f"{kind}: no results ({'; '.join(problems)})")
                        break
                    latencies.append(max(o.received_at for o in objects) - acked - settle)
                    print(f"{kind} run {run + 1}: {latencies[-1]:.2f} s after the quiet time "
                          f"({len(objects)} objects)", flush=True)
                if latencies:
                    report[kind] = {
                        "first_s": latencies[0],
                        "median_warm_s": statistics.median(latencies[1:]) if len(latencies) > 1 else None,
                        "all_s": latencies,
                    }
            if args.queue:
                copies = [fresh_copy(files["lumbar"], root / "queue" / str(i)) for i in range(args.queue)]
                start = time.time()
                for _, copy in copies:
                    send_folder(copy, node.address[1])
                uids = [uid for uid, _ in copies]
                wait_done(node, uids)
                last = max(o.received_at for uid in uids for o in pacs.objects(uid))
                per_hour = len(uids) / (last - start) * 3600.0
                report["throughput"] = {"studies": len(uids), "seconds": last - start, "studies_per_hour": per_hour}
                print(f"throughput: {len(uids)} lumbar studies in {last - start:.1f} s = {per_hour:.0f} studies/hour")
        finally:
            node.stop()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
