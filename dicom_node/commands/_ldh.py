"""``dicom-node train ldh`` and ``dicom-node evaluate ldh``.

Training reads labelled studies in the phantom layout (see
:mod:`inference.ldh.data`), or makes phantoms from a seed range when no data is
given. Evaluation runs the pipeline on a labelled set and prints the source
study's table; with ``--rater-a``/``--rater-b`` it compares two raters' label
files instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_TRAIN_SEEDS = "0:48"
DEFAULT_EVAL_SEEDS = "10000:10020"


def _seed_range(text: str) -> range:
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected START:STOP, got {text!r}") from exc
    if stop <= start:
        raise argparse.ArgumentTypeError(f"empty seed range {text!r}")
    return range(start, stop)


def _within(flag: str, convert: Callable[[str], float], low: float, high: float, unit: str) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)`` refused outside ``low``-``high`` (inclusive)."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected {unit}, got {text!r}") from exc
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{flag} {text} is outside {low:g}-{high:g} ({unit})")
        return value

    return parse


def _channels(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected filters per level, e.g. 16,32,64,128, got {text!r}") from exc
    if len(values) < 2 or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"--channels {text}: at least two levels of one or more filters")
    return values


_pixdim = _within("--pixdim", float, 0.1, 5.0, "a spacing in mm")
_context = _within("--context", int, 0, 2, "a number of slices either side")


def _phantoms(seeds: range, root: Path) -> list[Path]:
    """Lumbar phantom studies for ``seeds`` under ``root`` (made once, reused afterwards)."""
    from inference.phantoms.lumbar import generate_lumbar_study

    out = []
    for seed in seeds:
        folder = root / f"lumbar-{seed:05d}"
        if not (folder / "ground_truth.json").is_file():
            generate_lumbar_study(folder, seed)
        out.append(folder)
    return out


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, nargs="*", default=[], help="study folders or folders holding them (phantom layout)")
    parser.add_argument("--synth-seeds", type=_seed_range, default=None, help=f"train on lumbar phantoms of these seeds (default {DEFAULT_TRAIN_SEEDS} when no --data)")
    parser.add_argument("--synth-dir", type=Path, default=Path("var/phantoms/lumbar"), help="where phantoms are made and kept")
    parser.add_argument("--out", type=Path, default=Path("var/train/ldh"), help="checkpoint, weights and model card go here")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--patch", type=int, default=128, help="training patch edge in pixels (of --pixdim)")
    parser.add_argument("--pixdim", type=_pixdim, default=1.0,
                        help="in-plane spacing (mm) the network works at (default 1; written in the card, "
                             "which the pipeline follows)")
    parser.add_argument("--channels", type=_channels, default=None, metavar="C1,C2,...",
                        help="filters per U-Net level (default: the bundled weights' 16,32,64,128; written in "
                             "the card, which the pipeline follows)")
    parser.add_argument("--context", type=_context, default=0, metavar="N",
                        help="neighbouring slices of the stack either side the network sees with each slice "
                             "(0-2; default 0: 2D; written in the card, which the pipeline follows); --init "
                             "weights of a 2D network start on the slice itself")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--workers", type=int, default=0,
                        help="background processes drawing augmented batches (default 0: in-process, deterministic; "
                             "use several on a GPU host)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop after the epoch that ends past this many minutes; checkpoint and weights are "
                             "written and --resume continues the same schedule (for time-limited GPU slots)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of studies held out for the Dice printed at the end")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--init", type=Path, default=None, metavar="WEIGHTS",
                        help="start from these weights or checkpoint (fine-tuning); ignored by --resume once OUT/checkpoint.pt exists")
    parser.add_argument("--tip-weight", type=float, default=0.0,
                        help="herniation pixels next to the dural sac count 1 + this in the cross-entropy (default 0)")
    parser.add_argument("--batch-dice", action="store_true", help="Dice pooled over the batch instead of per patch")
    parser.add_argument("--soft-labels", action="store_true",
                        help="train on each class's share of every pixel's area on the --pixdim grid, not the label "
                             "nearest its centre (keeps the boundaries the resampling would round to whole pixels)")
    parser.add_argument("--dice-weight", type=float, default=1.0, help="weight of the Dice term beside the cross-entropy (default 1)")
    parser.add_argument("--version", default="0.1.0", help="version written in the model card")
    parser.add_argument("--no-progress", action="store_true")


def run_train(args: argparse.Namespace) -> int:
    from inference.ldh.data import find_studies, load_study, prepare_slices
    from inference.ldh.errors import LdhError
    from inference.ldh.network import NETWORK_CONFIG
    from inference.ldh.training import TrainConfig, save_weights, train
    from inference.modelcard import sha256_file

    seeds = args.synth_seeds if args.synth_seeds is not None else (None if args.data else _seed_range(DEFAULT_TRAIN_SEEDS))
    if args.init is not None and not args.init.is_file():
        print(f"train ldh: --init {args.init} does not exist", file=sys.stderr)
        return 2
    init_sha = sha256_file(args.init) if args.init is not None else None  # before training: the file may be replaced
    try:
        folders = find_studies(args.data)
        if seeds is not None:
            print(f"making lumbar phantoms for seeds {seeds.start}-{seeds.stop - 1} in {args.synth_dir} ...", file=sys.stderr)
            folders += _phantoms(seeds, args.synth_dir)
        if not folders:
            print("no labelled studies found (give --data or --synth-seeds)", file=sys.stderr)
            return 2
        n_val = int(round(len(folders) * args.val_fraction)) if len(folders) > 1 else 0
        val_folders, train_folders = folders[:n_val], folders[n_val:]
        t0 = time.perf_counter()
        train_slices = prepare_slices([load_study(f) for f in train_folders], pixdim=args.pixdim, context=args.context,
                                      soft=args.soft_labels)
        val_slices = prepare_slices([load_study(f) for f in val_folders], pixdim=args.pixdim, context=args.context)
        print(f"{len(train_folders)} training studies ({len(train_slices)} slices), {len(val_folders)} validation "
              f"studies; prepared in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        cfg = TrainConfig(
            epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
            learning_rate=args.lr, patch=(args.patch, args.patch), pixdim=args.pixdim, context=args.context, seed=args.seed,
            **({"channels": args.channels} if args.channels is not None else {}), device=args.device, num_threads=args.threads,
            tip_weight=args.tip_weight, batch_dice=args.batch_dice, soft_labels=args.soft_labels,
            dice_weight=args.dice_weight, workers=args.workers,
            max_seconds=args.max_minutes * 60 if args.max_minutes is not None else None, init=str(args.init) if args.init is not None else None,
        )
        result = train(
            train_slices, cfg, val_slices=val_slices, checkpoint=args.out / "checkpoint.pt",
            resume=args.resume, progress=not args.no_progress,
        )
    except (LdhError, ValueError) as exc:
        print(f"train ldh: {exc}", file=sys.stderr)
        return 1
    weights = args.out / "ldh.pt"
    card = {
        "name": "ldh",
        "version": args.version,
        "task": "axial lumbar T2 segmentation (disc, herniation, dural sac, facets, vertebra) for MSU grading",
        "training_data": {
            "phantom_seeds": [seeds.start, seeds.stop] if seeds is not None else None,
            "studies": [str(f) for f in train_folders],
            "validation_studies": [str(f) for f in val_folders],
            "slices": len(train_slices),
        },
        "training": {**{k: v for k, v in vars(cfg).items() if k != "channels"}, "seconds": round(result.seconds, 1),
                     "final_loss": result.epoch_losses[-1] if result.epoch_losses else None},
        "validation_dice": result.val_dice,
        "preprocessing": {"pixdim_mm": args.pixdim, "context_slices": args.context},
        "network": {**{k: list(v) if isinstance(v, tuple) else v for k, v in NETWORK_CONFIG.items()},
                    "channels": list(cfg.channels), "strides": [2] * (len(cfg.channels) - 1),
                    "in_channels": 1 + 2 * args.context},
    }
    if result.stopped_after_epoch is not None:
        card["training"]["stopped_after_epoch"] = result.stopped_after_epoch
        print(f"time limit: stopped after epoch {result.stopped_after_epoch} of {cfg.epochs} "
              f"(--resume continues)", file=sys.stderr)
    if args.init is not None:
        card["initialised_from"] = {"path": str(args.init), "sha256": init_sha}
    save_weights(result.network, weights, card)
    print(f"weights: {weights} (card {weights.with_suffix('.card.json')}); {result.seconds:.0f} s")
    for name, value in result.val_dice.items():
        print(f"  validation Dice {name:12s} {value:.3f}")
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, nargs="*", default=[], help="labelled study folders (phantom layout)")
    parser.add_argument("--synth-seeds", type=_seed_range, default=None, help=f"evaluate on phantoms of these seeds (default {DEFAULT_EVAL_SEEDS} when no --data; never used in training)")
    parser.add_argument("--synth-dir", type=Path, default=None, help="where phantoms are made (default: a temporary folder)")
    parser.add_argument("--weights", type=Path, default=None, help="model weights with their card (default: the bundled demo weights)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-level-finder", action="store_true", help="levels from the stack order only")
    parser.add_argument("--herniation-threshold", type=float, default=None, metavar="P",
                        help="herniation wherever its probability reaches P (default: the card's, else argmax)")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                        help="left-right flip test-time augmentation (default: the card's preprocessing.flip_tta)")
    parser.add_argument("--iou-threshold", type=float, default=0.5, help="IoU a detected herniation must reach")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    parser.add_argument("--predictions", type=Path, default=None, help="write the model's label files here")
    parser.add_argument("--json", type=Path, default=None, help="write the metrics as JSON here")
    parser.add_argument("--per-case", action="store_true",
                        help="also list every disc level: reference and model grade and zone, herniation IoU over "
                             "the stack and on the slice of maximal herniation (and put them in --json as 'cases')")
    parser.add_argument("--rater-a", type=Path, default=None, help="reference label file(s): compare two raters, no model")
    parser.add_argument("--rater-b", type=Path, default=None, help="second rater's label file(s)")


def _print_report(report: Any, title: str, args: argparse.Namespace, cases: Sequence[Any] = ()) -> None:
    from inference.ldh.evaluation import format_report

    print(format_report(report, title))
    data = report.as_dict()
    if args.per_case:
        print(_format_cases(cases, args.iou_threshold))
        data["cases"] = [dataclasses.asdict(case) for case in cases]
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _format_cases(cases: Sequence[Any], iou_threshold: float) -> str:
    """One line per disc level; ``*`` marks a grade or zone read otherwise, or a herniation missed."""
    lines = ["", "per level (the model, or rater B, against the reference; * grade or zone differ, or the herniation's "
                 "IoU is under the threshold)",
             f"{'study':24s} {'level':6s} {'reference':10s} {'model':10s} {'stack IoU':>9s} {'slice IoU':>9s}"]

    def read(size: int, zone: str) -> str:
        return "none" if size == 0 else f"{size}-{zone}"

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for c in cases:
        missed = c.ref_size > 0 and c.iou is not None and c.iou < iou_threshold
        flag = "*" if missed or (c.ref_size, c.ref_zone) != (c.pred_size, c.pred_zone) else " "
        lines.append(f"{c.study:24s} {c.level:6s} {read(c.ref_size, c.ref_zone):10s} {read(c.pred_size, c.pred_zone):10s} "
                     f"{number(c.iou):>9s} {number(c.slice_iou):>9s} {flag}")
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from inference.ldh.data import find_studies, load_study
    from inference.ldh.errors import LdhError
    from inference.ldh.evaluation import (
        cases_from_labels,
        cases_from_result,
        iter_cases,
        read_label_files,
        result_to_labels,
        summarise,
    )
    from inference.ldh.pipeline import LdhPipeline
    from inference.modelcard import WeightsError

    try:
        if args.rater_a is not None or args.rater_b is not None:
            if args.rater_a is None or args.rater_b is None:
                print("evaluate ldh: --rater-a and --rater-b go together", file=sys.stderr)
                return 2
            cases = cases_from_labels(read_label_files(args.rater_a), read_label_files(args.rater_b))
            report = summarise(cases, iou_threshold=args.iou_threshold, n_boot=args.bootstrap)
            _print_report(report, f"LDH agreement: {args.rater_b} against {args.rater_a}", args, cases)
            return 0
        torch.set_num_threads(max(1, args.threads))
        pipeline = LdhPipeline.from_weights(
            args.weights, device=args.device, flip_tta=args.tta, use_level_finder=not args.no_level_finder
        )
        if args.herniation_threshold is not None:
            pipeline.herniation_threshold = args.herniation_threshold
        with tempfile.TemporaryDirectory(prefix="ldh-eval-") as tmp:
            folders = find_studies(args.data)
            seeds = args.synth_seeds if args.synth_seeds is not None else (None if args.data else _seed_range(DEFAULT_EVAL_SEEDS))
            if seeds is not None:
                folders += _phantoms(seeds, args.synth_dir or Path(tmp))
            if not folders:
                print("no labelled studies found", file=sys.stderr)
                return 2
            per_study, seconds = [], []
            for folder in folders:
                study = load_study(folder)
                t0 = time.perf_counter()
                result = pipeline(study.axial, study.sagittal)
                seconds.append(time.perf_counter() - t0)
                per_study.append(cases_from_result(result, study.ground_truth, study.labels, study=folder.name))
                if args.predictions is not None:
                    args.predictions.mkdir(parents=True, exist_ok=True)
                    uid = str(study.ground_truth.get("study_instance_uid", folder.name))
                    (args.predictions / f"{folder.name}.json").write_text(
                        json.dumps(result_to_labels(result, uid), indent=2) + "\n", encoding="utf-8"
                    )
        cases = iter_cases(per_study)
        report = summarise(cases, iou_threshold=args.iou_threshold, n_boot=args.bootstrap)
        card = pipeline.card
        name = f"{card.name} {card.version} (sha256 {card.sha256[:12]}...)" if card else "untrained"
        _print_report(report, f"LDH evaluation of {name}", args, cases)
        print(f"\npipeline time per study: mean {sum(seconds) / len(seconds):.2f} s over {len(seconds)} studies")
        if card is not None and card.synthetic:
            print(card.notice)
    except (LdhError, WeightsError) as exc:
        print(f"evaluate ldh: {exc}", file=sys.stderr)
        return 1
    return 0
