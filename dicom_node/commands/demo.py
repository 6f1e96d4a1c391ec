"""``dicom-node demo``: the whole job on embedded defaults, with nothing to set up.

Makes a synthetic lumbar study and a synthetic SIJ study (the phantoms), starts a
node (in this process, SQLite, the local executor) and a small receiving PACS on
free loopback ports, sends the studies over DICOM, waits for the SEG and SR
objects to come back into the PACS, then prints the findings and where the files
are. Everything it started is stopped before it returns; the folder it wrote
(phantoms, the node's store, the PACS's files) is kept and named.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from pydicom import dcmread

from config.settings import Settings, load_settings

__all__ = ["DemoStudy", "demo_settings", "register", "run_demo", "send_folder", "study_progress"]


@dataclass
class DemoStudy:
    """One phantom study on its way through the node."""

    kind: str
    folder: Path
    study_uid: str
    files: list[Path]
    sent: int = 0
    status: str = "waiting"
    done: bool = False
    errors: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_settings(root: Path, pacs_port: int, *, quiet_seconds: float = 1.0, **overrides: Any) -> Settings:
    """The node's settings: SQLite and store under ``root``, loopback, short timers, one destination."""
    values: dict[str, Any] = {
        "storage_dir": root / "node",
        "host": "127.0.0.1",
        "port": _free_port(),
        "http_port": 0,
        "min_free_disk_mb": 0,
        "destinations": [{"name": "pacs", "ae_title": "DEMO_PACS", "host": "127.0.0.1", "port": pacs_port}],
        "assembly": {"series_quiet_seconds": quiet_seconds, "settle_seconds": 0.0, "poll_seconds": 0.25},
        "delivery": {"max_attempts": 12, "backoff_initial_seconds": 1.0, "backoff_max_seconds": 10.0},
    }
    values.update(overrides)
    return load_settings(None, environ={}, **values)


def send_folder(files: list[Path], port: int, *, called_ae: str = "DICOM_NODE") -> int:
    """C-STORE ``files`` on one association to ``127.0.0.1:port``; returns how many succeeded."""
    from pynetdicom import AE

    headers = [dcmread(f, stop_before_pixels=True) for f in files]
    ae = AE(ae_title="DEMO_SCANNER")
    ae.maximum_pdu_size = 0
    for sop_class in sorted({str(h.SOPClassUID) for h in headers}):
        ae.add_requested_context(sop_class)
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    if not assoc.is_established:
        raise ConnectionError(f"the node on port {port} refused the association")
    ok = 0
    try:
        for path in files:
            status = assoc.send_c_store(path)
            if status and int(status.Status) == 0:
                ok += 1
    finally:
        assoc.release()
    return ok


def study_progress(session_factory: Any, study_uid: str) -> tuple[str, bool, list[str]]:
    """``(status line, finished, problems)`` of one study in the node's database."""
    from storage.models import Delivery, DeliveryState, Job, JobState, Result, Study

    with session_factory() as session:
        study = session.scalars(sa.select(Study).where(Study.study_instance_uid == study_uid)).one_or_none()
        if study is None:
            return "not received yet", False, []
        if study.state.value != "complete":
            return f"receiving ({study.state.value})", False, []
        routing = study.routing or {}
        if not routing:
            return "routing", False, []
        if routing.get("outcome") != "routed":
            return f"not routed: {routing.get('outcome')}", True, list(routing.get("reasons", []))
        jobs = list(session.scalars(sa.select(Job).where(Job.study_id == study.id)))
        deliveries = list(session.execute(
            sa.select(Delivery.state, Delivery.last_error).join(Result, Delivery.result_id == Result.id)
            .join(Job, Result.job_id == Job.id).where(Job.study_id == study.id)
        ))
    problems = [f"{j.pipeline}: {j.error}" for j in jobs if j.state is JobState.DEAD]
    running = [j for j in jobs if j.state not in (JobState.SUCCEEDED, JobState.DEAD)]
    if running:
        states = ", ".join(f"{j.pipeline} {j.state.value}" for j in running)
        return f"inference ({states})", False, problems
    delivered = sum(1 for s, _ in deliveries if s is DeliveryState.DELIVERED)
    dead = [e for s, e in deliveries if s is DeliveryState.DEAD]
    problems += [f"delivery dead: {e}" for e in dead]
    if delivered + len(dead) < len(deliveries):
        return f"sending results ({delivered}/{len(deliveries)} delivered)", False, problems
    return f"done ({delivered} result objects delivered)", True, problems


def _make_phantoms(root: Path, lumbar_seed: int, sij_seed: int, kinds: list[str]) -> list[DemoStudy]:
    from inference.phantoms.lumbar import generate_lumbar_study
    from inference.phantoms.sij import generate_sij_study

    studies = []
    for kind in kinds:
        folder = (generate_lumbar_study(root / "phantoms" / "lumbar", lumbar_seed) if kind == "lumbar"
                  else generate_sij_study(root / "phantoms" / "sij", sij_seed))
        files = sorted((Path(folder) / "dicom").rglob("*.dcm"))
        uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
        studies.append(DemoStudy(kind, Path(folder), uid, files))
    return studies


def _print_findings(out: TextIO, study: DemoStudy, pacs: Any) -> None:
    from dicom_node.commands._demo_sr import lumbar_rows, sij_rows

    objects = pacs.objects(study.study_uid)
    srs = [o for o in objects if o.modality == "SR"]
    print(f"\n{study.kind} study {study.study_uid}", file=out)
    for problem in study.errors:
        print(f"  ! {problem}", file=out)
    for sr in srs:
        ds = dcmread(sr.path)
        if study.kind == "lumbar":
            rows = lumbar_rows(ds)
            print(f"  {'level':<8} {'finding':<12} detail", file=out)
            for level, grade, detail in rows or [("-", "no level graded", "")]:
                print(f"  {level:<8} {grade:<12} {detail}", file=out)
        else:
            for name, value in sij_rows(ds) or [("findings", "none reported")]:
                print(f"  {name:<40} {value}", file=out)
    for obj in sorted(objects, key=lambda o: (o.modality, str(o.path))):
        print(f"  {obj.modality:<3} {obj.path}", file=out)
    for png in _overlays(study, objects, out):
        print(f"  PNG {png}", file=out)
    if not objects:
        print("  no result objects came back", file=out)


def _overlays(study: DemoStudy, objects: list[Any], out: TextIO) -> list[Path]:
    """One overlay PNG per received SEG (its most segmented source slice), next to the PACS files."""
    from dicom_node.commands._demo_png import render_overlay

    sources = {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in study.files}
    pngs = []
    for obj in objects:
        if obj.modality != "SEG":
            continue
        try:
            png = render_overlay(obj.path, sources, obj.path.with_suffix(".png"))
        except Exception as exc:  # a picture is a nicety: say why there is none and go on
            print(f"  (no overlay for {obj.path.name}: {type(exc).__name__}: {exc})", file=out)
            continue
        if png is not None:
            pngs.append(png)
    return pngs


def run_demo(
    root: Path,
    *,
    kinds: tuple[str, ...] = ("lumbar", "sij"),
    lumbar_seed: int = 1,
    sij_seed: int = 1,
    timeout: float = 900.0,
    quiet_seconds: float = 1.0,
    out: TextIO = sys.stdout,
    progress: Callable[[str], None] | None = None,
) -> list[DemoStudy]:
    """Run the demo in ``root``; returns the studies with their final status.

    Raises
    ------
    TimeoutError
        When the results are not back within ``timeout`` seconds (everything is stopped first).
    """
    from dicom_node.commands._demo_pacs import ReceivingPacs
    from dicom_node.server import Node

    start = time.monotonic()
    say = progress or (lambda line: print(line, file=out, flush=True))
    say(f"demo folder: {root}")
    say("making synthetic studies (phantoms) ...")
    studies = _make_phantoms(root, lumbar_seed, sij_seed, list(kinds))
    pacs = ReceivingPacs(root / "pacs").start()
    node: Node | None = None
    try:
        settings = demo_settings(root, pacs.port, quiet_seconds=quiet_seconds)
        node = Node(settings)
        node.start()
        say(f"node {settings.ae_title} on 127.0.0.1:{node.address[1]}, receiving PACS DEMO_PACS on "
            f"127.0.0.1:{pacs.port}")
        for study in studies:
            study.sent = send_folder(study.files, node.address[1], called_ae=settings.ae_title)
            say(f"sent {study.kind} study: {study.sent}/{len(study.files)} instances acknowledged")
        assert node.session_factory is not None
        last = ""
        deadline = time.monotonic() + timeout
        while True:
            for study in studies:
                study.status, study.done, study.errors = study_progress(node.session_factory, study.study_uid)
            line = "  ".join(f"{s.kind}: {s.status}" for s in studies)
            if line != last:
                say(f"[{time.monotonic() - start:5.1f} s] {line}")
                last = line
            if all(s.done for s in studies):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"results not back after {timeout:.0f} s: {line}")
            time.sleep(0.5)
    finally:
        if node is not None:
            node.stop()
        pacs.stop()
    for study in studies:
        _print_findings(out, study, pacs)
    print(f"\nfinished in {time.monotonic() - start:.0f} s; everything stopped. Files under {root}", file=out)
    print("Research use only: synthetic studies and weights trained on synthetic data.", file=out)
    return studies


def _run(args: argparse.Namespace) -> int:
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="dicom-node-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        studies = run_demo(root, kinds=tuple(args.studies), lumbar_seed=args.seed, sij_seed=args.seed,
                           timeout=args.timeout)
    except TimeoutError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    return 0 if all(s.done and not s.errors for s in studies) else 1


def register(sub: Any) -> None:
    """Add the ``demo`` sub-command."""
    parser = sub.add_parser(
        "demo", help="synthetic studies -> a node -> results in a local PACS, on embedded defaults",
        description="Runs a node and a receiving PACS on free loopback ports, sends synthetic lumbar and "
                    "SIJ studies, waits for SEG/SR to come back and prints the findings.",
    )
    parser.add_argument("--out", default=None, help="folder to work in (default: a new temporary folder, kept)")
    parser.add_argument("--studies", nargs="+", choices=["lumbar", "sij"], default=["lumbar", "sij"],
                        help="which synthetic studies to send (default: both)")
    parser.add_argument("--seed", type=int, default=1, help="phantom seed (default 1)")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    parser.set_defaults(func=_run)
