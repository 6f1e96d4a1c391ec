"""End-to-end benchmark: study in over DICOM -> SEG/SR acknowledged by the receiving PACS.

Not a test. A node runs in this process (SQLite, the local executor, the settings
of ``dicom-node demo``) with a pynetdicom receiving PACS on loopback.

* **Latency**, per study type: the phantom is sent on one association; the clock
  starts when the last instance is acknowledged and stops when the PACS stores the
  last result object. The configured quiet time (``series_quiet_seconds +
  settle_seconds``) is subtracted: what is left is routing, the job (model
  loading on the first study unless preloaded, series loading, inference,
  encoding, writing) and the delivery. Each run also prints how long the job ran
  (its row's started/finished times), the rest (assembly poll, routing,
  queueing, delivery), and the CPU time this process used meanwhile (all
  threads: the node, the PACS, this loop), the figure that does not depend on
  what else the machine runs. ``--runs`` studies per type (each with fresh UIDs);
  the first is reported separately (it loads the models with ``--no-preload``;
  otherwise it still pays the first-use imports and allocations).
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


def job_seconds(node: Node, study_uid: str) -> float:
    """Seconds the study's jobs ran (claimed -> results committed), from the job rows."""
    import sqlalchemy as sa

    from storage.models import Job, Study

    assert node.session_factory is not None
    with node.session_factory() as session:
        jobs = session.scalars(sa.select(Job).join(Study, Job.study_id == Study.id)
                               .where(Study.study_instance_uid == study_uid))
        return sum((j.finished_at - j.started_at).total_seconds() for j in jobs if j.finished_at and j.started_at)


def wait_done(node: Node, study_uids: list[str], limit: float = 3600.0) -> None:
    assert node.session_factory is not None
    deadline = time.monotonic() + limit
    while not all(study_progress(node.session_factory, uid)[1] for uid in study_uids):
        if time.monotonic() > deadline:
            raise TimeoutError("results did not come back")
        time.sleep(0.25)  # the latency is read from the PACS's receive times, not from this loop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="studies per type for the latency")
    parser.add_argument("--queue", type=int, default=20, help="studies in the throughput queue (0: skip)")
    parser.add_argument("--quiet", type=float, default=1.0, help="series quiet time of the node (s)")
    parser.add_argument("--types", nargs="+", default=["lumbar", "sij"], choices=["lumbar", "sij"])
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (phantoms, store, PACS)")
    parser.add_argument("--no-preload", action="store_true",
                        help="jobs.preload_models off: models load on the first study (as before it existed)")
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
        settings = demo_settings(root, pacs.port, quiet_seconds=args.quiet,
                                 jobs={"preload_models": not args.no_preload})
        settle = settings.assembly.series_quiet_seconds + settings.assembly.settle_seconds
        node = Node(settings)
        started = time.time()
        node.start()
        # a node is up before studies come: wait for its models (jobs.preload_models), report how long
        wait_preloaded = getattr(node.executor, "wait_preloaded", None)
        if wait_preloaded is not None:
            wait_preloaded(600)
        report["startup_s"] = time.time() - started
        print(f"node started{'' if args.no_preload else ', models loaded'} in {report['startup_s']:.1f} s",
              flush=True)
        try:
            for kind in args.types:
                latencies: list[float] = []
                jobs: list[float] = []
                cpus: list[float] = []
                for run in range(args.runs):
                    uid, copy = fresh_copy(files[kind], root / "copies" / f"{kind}-{run}")
                    send_folder(copy, node.address[1])
                    acked, cpu = time.time(), time.process_time()
                    wait_done(node, [uid])
                    cpus.append(time.process_time() - cpu)
                    problems = study_progress(node.session_factory, uid)[2]
                    objects = pacs.objects(uid)
                    if problems or not objects:
                        print(f"{kind}: no results ({'; '.join(problems)})")
                        break
                    latencies.append(max(o.received_at for o in objects) - acked - settle)
                    jobs.append(job_seconds(node, uid))
                    print(f"{kind} run {run + 1}: {latencies[-1]:.2f} s after the quiet time "
                          f"({len(objects)} objects; the job {jobs[-1]:.2f} s, the rest "
                          f"{latencies[-1] - jobs[-1]:.2f} s; CPU {cpus[-1]:.2f} s)", flush=True)
                if latencies:
                    report[kind] = {
                        "first_s": latencies[0],
                        "median_warm_s": statistics.median(latencies[1:]) if len(latencies) > 1 else None,
                        "all_s": latencies,
                        "job_s": jobs,
                        "cpu_s": cpus,
                    }
            if args.queue:
                copies = [fresh_copy(files["lumbar"], root / "queue" / str(i)) for i in range(args.queue)]
                start, cpu = time.time(), time.process_time()
                for _, copy in copies:
                    send_folder(copy, node.address[1])
                uids = [uid for uid, _ in copies]
                wait_done(node, uids)
                last = max(o.received_at for uid in uids for o in pacs.objects(uid))
                per_hour = len(uids) / (last - start) * 3600.0
                cpu_per_study = (time.process_time() - cpu) / len(uids)
                report["throughput"] = {"studies": len(uids), "seconds": last - start, "studies_per_hour": per_hour,
                                        "cpu_s_per_study": cpu_per_study}
                print(f"throughput: {len(uids)} lumbar studies in {last - start:.1f} s = {per_hour:.0f} studies/hour "
                      f"(CPU {cpu_per_study:.2f} s per study, sending included)")
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
