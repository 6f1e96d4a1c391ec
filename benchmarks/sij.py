"""Benchmark: one SIJ study from DICOM files to :class:`SijResult`, wall time and peak memory.

Run::

    .venv/bin/python benchmarks/sij.py [--study DIR] [--seed 4242] [--threads 2] [--repeat 3] [--tta | --no-tta]

Without ``--study`` a phantom study is written to a temporary folder first (not timed).
Reported per device (CPU with ``--threads`` threads, and CUDA when present): the median
wall time over ``--repeat`` runs of reading the files, building the volumes, running the
pipeline with the bundled weights; and the process's peak resident memory (and peak CUDA
memory). Targets (issue 6): <= 10 s and <= 3 GB on 2 CPU cores, <= 1 s on one GPU.
This is a benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from inference.sij.pipeline import SijPipeline
from inference.volume import load_volumes


def _one(study: Path, pipeline: SijPipeline) -> float:
    t0 = time.perf_counter()
    t1 = load_volumes(study / "dicom" / "cor_t1")[0]
    stir_dir = study / "dicom" / "cor_stir"
    stir = load_volumes(stir_dir)[0] if stir_dir.is_dir() else None
    result = pipeline(t1, stir)
    if pipeline.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    print(f"  {elapsed:6.2f} s  {result.summary()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, default=None, help="study folder (phantom layout)")
    parser.add_argument("--seed", type=int, default=4242, help="phantom seed when no --study is given")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    tta = parser.add_mutually_exclusive_group()
    tta.add_argument("--tta", dest="tta", action="store_const", const=True, default=None,
                     help="flip test-time augmentation on (default: as the weights' card says)")
    tta.add_argument("--no-tta", dest="tta", action="store_const", const=False)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        study = args.study
        if study is None:
            from inference.phantoms.sij import generate_sij_study

            study = generate_sij_study(Path(tmp) / "study", seed=args.seed)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            pipeline = SijPipeline.from_weights(device=device, flip_tta=args.tta)
            print(f"{device} ({args.threads} threads)" if device == "cpu" else torch.cuda.get_device_name())
            _one(study, pipeline)  # warm-up (allocations, kernel selection)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times = [_one(study, pipeline) for _ in range(args.repeat)]
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            line = f"{device}: median {statistics.median(times):.2f} s over {len(times)} runs; peak RSS {peak_mb:.0f} MB"
            if device == "cuda":
                line += f", peak CUDA {torch.cuda.max_memory_allocated() / 2**20:.0f} MB"
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
