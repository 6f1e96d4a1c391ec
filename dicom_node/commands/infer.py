"""``dicom-node infer DIR --out DIR``: run the pipelines on a folder of DICOM files, offline.

For every study under DIR, the series each pipeline needs are chosen from their
headers (lumbar: axial T2 + optional sagittal T2; SIJ: coronal T1 + optional
STIR), the pipeline runs, and its SEG(s) and SR are written to
``OUT/<StudyInstanceUID>/<SeriesNumber>-<Modality>-<InstanceNumber>.dcm``. The
plain-language summary of each result is printed. No network, no database.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from config.settings import load_settings
from dicom_node.results import ResultOptions
from dicom_node.results.offline import Pipelines, find_studies, infer_study, write_objects

__all__ = ["load_pipelines", "register", "run"]


def load_pipelines(
    ldh_weights: Path | None, sij_weights: Path | None, device: str, wanted: set[str]
) -> Pipelines:
    """Build the pipelines from their weights; one that cannot be built is reported, not fatal."""
    pipes = Pipelines()
    if "ldh" in wanted:
        try:
            from inference.ldh.pipeline import LdhPipeline

            pipes.ldh = LdhPipeline.from_weights(ldh_weights, device=device)
        except Exception as exc:  # missing weights, checksum, torch: say why and go on
            pipes.unavailable["ldh"] = f"lumbar pipeline not available: {exc}"
    if "sij" in wanted:
        try:
            from inference.sij.pipeline import SijPipeline

            pipes.sij = SijPipeline.from_weights(sij_weights, device=device)
        except Exception as exc:  # as above
            pipes.unavailable["sij"] = f"SIJ pipeline not available: {exc}"
    return pipes


def run(args: argparse.Namespace, pipelines: Pipelines | None = None) -> int:
    """Infer every study under ``args.folder``; 0 when every applicable pipeline ran, 1 otherwise."""
    folder, out = Path(args.folder), Path(args.out)
    if not folder.is_dir():
        print(f"infer: {folder} is not a folder", file=sys.stderr)
        return 2
    studies = find_studies(folder)
    if not studies:
        print(f"infer: no DICOM studies under {folder}", file=sys.stderr)
        return 2
    logging.getLogger("highdicom").setLevel(max(logging.WARNING, logging.getLogger().level))
    # offline: no store is written, so storage_dir is not checked or created
    settings = load_settings(args.config, check_paths=False)
    configured = settings.results
    options = ResultOptions(
        fractional=args.fractional or configured.fractional,
        include_anatomy=configured.include_anatomy and not args.no_anatomy,
        include_oedema=configured.include_oedema,
        secondary_capture=args.secondary_capture or configured.secondary_capture,
        pdf=args.pdf or configured.pdf,
    )
    if pipelines is None:
        device = args.device or settings.device
        ldh_w = args.ldh_weights or settings.models.ldh_weights
        sij_w = args.sij_weights or settings.models.sij_weights
        pipelines = load_pipelines(ldh_w, sij_w, device, set(args.pipelines))
    failed = 0
    for study_uid, series in sorted(studies.items()):
        start = time.perf_counter()
        outcome = infer_study(study_uid, series, pipelines, options)
        print(f"study {study_uid}")
        if not outcome.results and not outcome.errors:
            print("  no series for the lumbar or SIJ pipeline")
            if args.verbose:
                for reason in outcome.selection.reasons:
                    print(f"    {reason}")
        for name, encoded in outcome.results.items():
            files = write_objects(encoded.datasets, out / study_uid)
            print(f"  {name}: {encoded.summary}")
            for path in files:
                print(f"    wrote {path}")
        for name, error in outcome.errors.items():
            failed += 1
            print(f"  {name}: FAILED: {error}")
        print(f"  ({time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


def register(sub: Any) -> None:
    """Add the ``infer`` sub-command."""
    parser = sub.add_parser("infer", help="run the pipelines on a folder of DICOM files and write SEG + SR")
    parser.add_argument("folder", help="folder of DICOM files (walked recursively; several studies allowed)")
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per study)")
    parser.add_argument("--pipelines", nargs="+", choices=["ldh", "sij"], default=["ldh", "sij"],
                        help="which pipelines may run (default: both)")
    parser.add_argument("--ldh-weights", type=Path, default=None, help="lumbar weights (default: config, else bundled)")
    parser.add_argument("--sij-weights", type=Path, default=None, help="SIJ weights (default: config, else bundled)")
    parser.add_argument("--device", default=None, help="auto, cpu or cuda[:N] (default: the config's device)")
    parser.add_argument("--fractional", action="store_true", help="herniation segments as probabilities")
    parser.add_argument("--no-anatomy", action="store_true", help="only the lesion segments (no disc, sac, bones)")
    parser.add_argument("--secondary-capture", action="store_true",
                        help="also write key images with the overlay burned in (Secondary Capture)")
    parser.add_argument("--pdf", action="store_true", help="also write an Encapsulated PDF report (Modality DOC)")
    parser.add_argument("-v", "--verbose", action="store_true", help="say how each series was classified")
    parser.set_defaults(func=run)
