"""``dicom-node synth {lumbar,sij} --out DIR [--seed N] [--count K]``: write phantom studies.

Study ``i`` (seed ``N + i``) goes to ``DIR/<kind>-<seed>/``; one progress line
per study. With ``--count`` above 1 the studies are made by at most two worker
processes (``--workers``).
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["GENERATORS", "register", "run"]

#: kind -> (module, function) of the generator; imported lazily so that a kind
#: whose module has not landed yet does not break the others.
GENERATORS: dict[str, tuple[str, str]] = {
    "lumbar": ("inference.phantoms.lumbar", "generate_lumbar_study"),
    "sij": ("inference.phantoms.sij", "generate_sij_study"),
}
MAX_WORKERS = 2


def _generator(module_name: str, function: str) -> Callable[..., Any]:
    module = importlib.import_module(module_name)
    return getattr(module, function)  # type: ignore[no-any-return]


def _one(job: tuple[str, str, str, str, int]) -> tuple[int, float, str]:
    """Make one study (runs in a worker: the job names the generator, not the kind)."""
    module_name, function, kind, out, seed = job
    start = time.perf_counter()
    folder = Path(out) / f"{kind}-{seed}"
    _generator(module_name, function)(folder, seed)
    return seed, time.perf_counter() - start, str(folder)


def run(args: argparse.Namespace) -> int:
    """Write ``args.count`` studies of ``args.kind``; 0 on success, 2 on bad arguments."""
    if args.count < 1:
        print("synth: --count must be at least 1", file=sys.stderr)
        return 2
    module_name, function = GENERATORS[args.kind]
    try:
        _generator(module_name, function)
    except (ImportError, AttributeError) as exc:
        print(f"synth: the {args.kind} phantom is not available: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(module_name, function, args.kind, str(out), args.seed + i) for i in range(args.count)]
    workers = max(1, min(args.workers, MAX_WORKERS, len(jobs)))
    start = time.perf_counter()
    done = 0
    if workers == 1:
        results = map(_one, jobs)
        for seed, seconds, path in results:
            done += 1
            print(f"[{done}/{len(jobs)}] {args.kind} seed {seed}: {path} ({seconds:.1f} s)", flush=True)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers) as pool:
            for seed, seconds, path in pool.imap(_one, jobs):
                done += 1
                print(f"[{done}/{len(jobs)}] {args.kind} seed {seed}: {path} ({seconds:.1f} s)", flush=True)
    total = time.perf_counter() - start
    print(f"wrote {done} {args.kind} studies to {out} in {total:.1f} s ({workers} worker(s))", flush=True)
    return 0


def register(sub: Any) -> None:
    """Add the ``synth`` sub-command."""
    parser = sub.add_parser("synth", help="write phantom studies (DICOM + ground truth)")
    parser.add_argument("kind", choices=sorted(GENERATORS), help="which phantom")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--count", type=int, default=1, help="number of studies (seeds N..N+K-1)")
    parser.add_argument(
        "--workers", type=int, default=MAX_WORKERS,
        help=f"worker processes for --count > 1 (at most {MAX_WORKERS}, the default)",
    )
    parser.set_defaults(func=run)
