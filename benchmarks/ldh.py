"""LDH pipeline benchmark: a standard lumbar study from files to the result object.

Not a test. Makes (or takes) a lumbar phantom study (sagittal T2 + three angled
axial T2 stacks), then times, per run: reading the DICOM files into volumes,
segmentation, levels and MSU grading, i.e. file to :class:`LdhResult`. Prints
the median wall time per study, axial slices per second, and the peak RSS of
the process. Runs on 2 CPU threads, and again on CUDA when one is present.

Wall time depends on what else runs: on a shared machine also read
``cpu_seconds`` (process CPU time of the run, all threads), and prefer
``--threads 1`` when the cores are oversubscribed.

Targets (issue 5): <= 5 s per study and <= 2 GB RSS on 2 CPU cores; <= 0.5 s on one GPU.

Usage::

    nice -n 10 .venv/bin/python benchmarks/ldh.py --runs 3
    nice -n 10 .venv/bin/python benchmarks/ldh.py --study /path/to/study --runs 5
    .venv/bin/python benchmarks/ldh.py --runs 3 --no-tta     # without the card's flip TTA
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from inference.ldh.data import AXIAL_KEY, SAGITTAL_KEY, _read_truth, _series_dir  # noqa: E402
from inference.ldh.pipeline import LdhPipeline  # noqa: E402
from inference.volume import load_volumes  # noqa: E402


def run_once(pipeline: LdhPipeline, study: Path) -> tuple[float, int, dict[str, float]]:
    """File to result once; returns (seconds, axial slices, the pipeline's own timings and CPU seconds)."""
    truth = _read_truth(study)
    t0 = time.perf_counter()
    c0 = time.process_time()
    ax_dir = _series_dir(study, AXIAL_KEY, truth)
    sag_dir = _series_dir(study, SAGITTAL_KEY, truth)
    assert ax_dir is not None, f"no axial series in {study}"
    axial = load_volumes(ax_dir)
    sagittal = max(load_volumes(sag_dir), key=lambda v: v.array.shape[0]) if sag_dir else None
    t_read = time.perf_counter() - t0
    result = pipeline(axial, sagittal)
    seconds = time.perf_counter() - t0
    if device_is_cuda(pipeline):
        torch.cuda.synchronize()
    timings = {"read": t_read, **result.timings_s, "cpu_seconds": time.process_time() - c0}
    return seconds, sum(v.array.shape[0] for v in axial), timings


def device_is_cuda(pipeline: LdhPipeline) -> bool:
    return pipeline.device.type == "cuda"


def bench(device: str, study: Path, runs: int, weights: Path | None, tta: bool | None = None) -> dict[str, object]:
    pipeline = LdhPipeline.from_weights(weights, device=device, flip_tta=tta)
    run_once(pipeline, study)  # warm-up: imports, allocator, cuDNN autotune
    times: list[float] = []
    slices = 0
    last: dict[str, float] = {}
    for _ in range(runs):
        seconds, slices, last = run_once(pipeline, study)
        times.append(seconds)
    median = statistics.median(times)
    out: dict[str, object] = {
        "device": str(pipeline.device),
        "threads": torch.get_num_threads(),
        "flip_tta": pipeline.inferer.flip_tta,
        "runs": runs,
        "seconds_per_study_median": round(median, 3),
        "seconds_per_study_all": [round(t, 3) for t in times],
        "axial_slices": slices,
        "slices_per_second": round(slices / median, 1),
        "stage_seconds_last_run": {k: round(v, 3) for k, v in last.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if pipeline.device.type == "cuda":
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=None, help="a lumbar study folder (default: phantom seed 10000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                        help="left-right flip TTA (default: the weights card's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="ldh-bench-") as tmp:
        study = args.study
        if study is None:
            from inference.phantoms.lumbar import generate_lumbar_study

            study = Path(tmp) / "study"
            generate_lumbar_study(study, 10000)
        results = [bench("cpu", study, args.runs, args.weights, args.tta)]
        if torch.cuda.is_available():
            results.append(bench("cuda", study, args.runs, args.weights, args.tta))
    for r in results:
        print(json.dumps(r, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
