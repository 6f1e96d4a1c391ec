"""``dicom-node train sij`` and ``dicom-node evaluate sij``.

Training data and evaluation data use the phantom layout (one study per folder with
``dicom/cor_t1``, optional ``dicom/cor_stir``, ``labels/*.npz`` and ``ground_truth.json``;
see docs/sij.md). ``--phantoms N`` writes N phantom studies into ``--data`` first.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _patch(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.lower().replace("x", ",").split(",")]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("patch size is SLICESxROWSxCOLS, e.g. 8x64x64")
    return (parts[0], parts[1], parts[2])


def _ratios(text: str) -> tuple[float, ...]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError("crop ratios are 5 numbers, e.g. 0.1,0.7,0.1,0.05,0.05") from exc
    if len(parts) != 5 or min(parts) < 0 or sum(parts) <= 0:
        raise argparse.ArgumentTypeError("crop ratios are 5 non-negative numbers, e.g. 0.1,0.7,0.1,0.05,0.05")
    return parts


def _overlap(text: str) -> Any:
    from inference.sij.pipeline import overlap_setting

    try:
        parts = [float(p) for p in text.split(",")]
        return overlap_setting(parts if len(parts) > 1 else parts[0])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"overlap is a number or three (slice,row,col): {exc}") from exc


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True,
                        help="folder of labelled studies (phantom layout, any depth)")
    parser.add_argument("--phantoms", type=int, default=0, metavar="N",
                        help="first write N SIJ phantom studies into --data (seeds --phantom-seed ...)")
    parser.add_argument("--phantom-seed", type=int, default=1000, help="seed of the first phantom (default 1000)")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N studies (sorted by path)")
    parser.add_argument("--limit", type=int, default=0, help="use at most this many studies (0: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default auto)")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dicom-node train sij``."""
    _add_data_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("sij.pt"),
                        help="weights to write (a model card is written beside them); default ./sij.pt")
    parser.add_argument("--steps", type=int, default=1500, help="segmentation training steps (default 1500)")
    parser.add_argument("--batch-cases", type=int, default=2, help="studies per step (default 2)")
    parser.add_argument("--samples", type=int, default=2, help="patches per study per step (default 2)")
    parser.add_argument("--patch", type=_patch, default=(8, 64, 64), help="training patch, default 8x64x64")
    parser.add_argument("--spacing", type=float, default=2.0, help="in-plane spacing in mm (default 2.0)")
    parser.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate (default 2e-3)")
    parser.add_argument("--fm-weight", type=float, default=20.0,
                        help="cross-entropy weight of fat metaplasia (default 20)")
    parser.add_argument("--crop-ratios", type=_ratios, default=(0.1, 0.7, 0.1, 0.05, 0.05),
                        help="patch centres per class background,FM,sacrum,left ilium,right ilium "
                             "(default 0.1,0.7,0.1,0.05,0.05)")
    parser.add_argument("--window", type=_patch, default=None,
                        help="sliding-window size SxRxC stored for inference (default: the training patch; "
                             "instance norm makes larger windows see other statistics than training did)")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from the network of these weights (with card) instead of a random one")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--filters", type=lambda t: tuple(int(v) for v in t.split(",")), default=None,
                        metavar="F1,F2,F3,F4",
                        help="network feature maps per level (default 8,16,32,64; ignored with --init, which "
                             "keeps the architecture of the weights it starts from)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop segmentation training after this many minutes (checkpoint written; --resume "
                             "continues the same schedule)")
    parser.add_argument("--workers", type=int, default=0,
                        help="background processes drawing augmented patches (default 0: in-process, "
                             "deterministic; use several on a GPU host)")
    parser.add_argument("--seg-cases", type=int, default=0,
                        help="studies used for segmentation (0: all); the classifier always sees all")
    parser.add_argument("--resume", action="store_true", help="continue from <out>.ckpt when it exists")
    parser.add_argument("--segmentation-only", action="store_true",
                        help="write the network (and card) without fitting the classifier; fit it later with "
                             "--classifier-only on other studies")
    parser.add_argument("--classifier-only", action="store_true",
                        help="keep the network of the existing --out weights; refit only the axSpA classifier")
    parser.add_argument("--min-areas", type=lambda t: tuple(float(v) for v in t.split(",")), default=(2.0,),
                        metavar="MM2,...", help="quadrant FM area thresholds to choose from on the classifier "
                                                "studies by quadrant accuracy (default 2)")
    parser.add_argument("--fm-joint-mm", type=float, default=None, metavar="MM",
                        help="post-processing: drop fat metaplasia farther than MM from the sacrum or an ilium "
                             "(stored in the card; default: no restriction)")
    parser.add_argument("--version", default="0.1.0", help="model version written to the card")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dicom-node evaluate sij``."""
    _add_data_arguments(parser)
    parser.add_argument("--weights", type=Path, default=None, help="weights with a card (default: bundled sij.pt)")
    tta = parser.add_mutually_exclusive_group()
    tta.add_argument("--tta", dest="tta", action="store_const", const=True, default=None,
                     help="flip test-time augmentation on (default: as the weights' card says)")
    tta.add_argument("--no-tta", dest="tta", action="store_const", const=False, help="flip test-time augmentation off")
    parser.add_argument("--window", type=_patch, default=None,
                        help="sliding-window size SxRxC (default: the card's inference_patch_size)")
    parser.add_argument("--overlap", type=_overlap, default=None, metavar="F or S,R,C",
                        help="sliding-window overlap, one number or one per axis (default: the card's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics as JSON here")
    parser.add_argument("--no-per-case", action="store_true", help="leave the per-case table out")


def _maybe_generate(args: argparse.Namespace) -> None:
    if args.phantoms <= 0:
        return
    from inference.phantoms.sij import generate_sij_study  # the phantom generator (issue 3)

    args.data.mkdir(parents=True, exist_ok=True)
    for n in range(args.phantoms):
        seed = args.phantom_seed + n
        out = args.data / f"sij_{seed:05d}"
        if not (out / "ground_truth.json").is_file():
            generate_sij_study(out, seed=seed)
    print(f"{args.phantoms} phantom studies in {args.data}", file=sys.stderr)


def _load(args: argparse.Namespace) -> list[Any]:
    from tqdm import tqdm

    from inference.sij.data import find_cases, load_case

    paths = find_cases(args.data)[args.skip :]
    if args.limit:
        paths = paths[: args.limit]
    if not paths:
        raise SystemExit(f"no studies with ground_truth.json under {args.data}")
    return [load_case(p) for p in tqdm(paths, desc="loading", disable=getattr(args, "no_progress", False))]


def _existing_network(weights: Path) -> tuple[Any, Any, dict[str, Any]]:
    """Network, training config and card of existing weights (for ``--classifier-only``)."""
    import dataclasses

    from inference.modelcard import read_card
    from inference.sij.network import NetworkConfig
    from inference.sij.pipeline import SijPipeline
    from inference.sij.training import TrainConfig

    existing = SijPipeline.from_weights(weights, device="cpu", flip_tta=False)
    card = read_card(weights).extra
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    kwargs = {k: v for k, v in card["training"].items() if k in names}
    kwargs["network"] = NetworkConfig.from_dict(card["network"])
    kwargs["patch_size"] = tuple(card["preprocessing"]["patch_size"])
    kwargs["inference_patch_size"] = tuple(card["preprocessing"]["inference_patch_size"])
    return existing.network, TrainConfig(**kwargs), card


def _network_config(args: argparse.Namespace) -> Any:
    """Architecture to train: that of ``--init`` weights, else the default with ``--filters``."""
    import dataclasses

    from inference.modelcard import WeightsError, read_card
    from inference.sij.network import NetworkConfig

    if args.init is not None:
        try:
            return NetworkConfig.from_dict(read_card(args.init).extra["network"])
        except (WeightsError, KeyError) as exc:
            raise SystemExit(f"dicom-node train sij: cannot start from {args.init}: {exc}") from exc
    if args.filters is None:
        return NetworkConfig()
    if len(args.filters) != len(NetworkConfig().filters):
        raise SystemExit(f"--filters takes {len(NetworkConfig().filters)} numbers, one per level")
    return dataclasses.replace(NetworkConfig(), filters=args.filters)


def run_train(args: argparse.Namespace) -> int:
    """Train the segmentation network, then the classifier on its output; write weights + card."""
    import dataclasses

    import numpy as np
    import torch

    from inference.runtime import seed_everything, select_device
    from inference.sij.errors import SijError
    from inference.sij.inferer import SijInferer
    from inference.sij.pipeline import PostprocessConfig, SijPipeline
    from inference.sij.stats import delong_auc
    from inference.sij.training import (
        TrainConfig,
        round_to_stored,
        train_classifier,
        train_segmentation,
        tune_and_predict,
        write_model,
    )

    torch.set_num_threads(max(1, args.threads))
    seed_everything(args.seed)
    _maybe_generate(args)
    try:
        cases = _load(args)
        seg_cases = cases[: args.seg_cases] if args.seg_cases else cases
        network = _network_config(args)
        config = TrainConfig(network=network, steps=args.steps, batch_cases=args.batch_cases, samples_per_case=args.samples,
                             patch_size=args.patch, spacing_mm=args.spacing, lr=args.lr, seed=args.seed,
                             threads=args.threads, fm_weight=args.fm_weight, crop_ratios=args.crop_ratios,
                             inference_patch_size=args.window or args.patch,
                             init=str(args.init) if args.init is not None else None,
                             device=args.device, workers=args.workers,
                             max_seconds=args.max_minutes * 60 if args.max_minutes is not None else None)
        t0 = time.monotonic()
        previous: dict[str, Any] = {}
        if args.classifier_only:
            net, config, previous = _existing_network(args.out)
            history = [float(previous.get("metrics", {}).get("final_loss_mean_last_50", float("nan")))]
        else:
            net, history = train_segmentation([c.as_dict() for c in seg_cases], config,
                                              checkpoint=args.out.with_suffix(".ckpt"), resume=args.resume,
                                              progress=not args.no_progress)
        seg_s = time.monotonic() - t0
        round_to_stored(net)  # the classifier below is fitted on the float16 weights that are shipped
        if args.segmentation_only:
            write_model(args.out, net, config, classifier=None, version=args.version,
                        training_data=f"{len(seg_cases)} studies from {args.data}",
                        metrics={"segmentation_steps": len(history), "segmentation_steps_planned": config.steps,
                                 "final_loss_mean_last_50": float(sum(history[-50:]) / max(1, len(history[-50:]))),
                                 "segmentation_studies": len(seg_cases), "segmentation_data": str(args.data)})
            print(f"wrote {args.out} and its card (no classifier)")
            return 0
        pipeline = SijPipeline(net, inferer=SijInferer(patch_size=config.inference_patch_size, flip_tta=False),
                               device=select_device(args.device),
                               spacing_mm=config.spacing_mm,
                               postprocess=PostprocessConfig(fm_joint_distance_mm=args.fm_joint_mm))
        fm_scale, dice_by_scale, results = tune_and_predict(pipeline, cases, min_areas_mm2=args.min_areas,
                                                            progress=not args.no_progress)
        labels = [c.axspa for c in cases]
        classifier, oof = train_classifier(results, labels, seed=args.seed)
        oof_auc = delong_auc(np.asarray(labels), oof).auc
        metrics = {
            **previous.get("metrics", {}),
            "final_loss_mean_last_50": float(sum(history[-50:]) / max(1, len(history[-50:]))),
            "classifier_out_of_fold_auc": oof_auc,
            "classifier_studies": len(cases),
            "fm_dice_by_scale_on_classifier_studies": {str(k): v for k, v in dice_by_scale.items()},
        }
        if not args.classifier_only:
            metrics["segmentation_training_seconds"] = round(seg_s, 1)
            metrics["segmentation_steps"] = len(history)
            metrics["segmentation_steps_planned"] = config.steps
            metrics["segmentation_studies"] = len(seg_cases)
            metrics["segmentation_data"] = str(args.data)
        write_model(args.out, net, config, classifier=classifier, version=args.version,
                    training_data=previous.get("training", {}).get("data", f"{len(seg_cases)} studies from {args.data}"),
                    metrics=metrics,
                    postprocess=dataclasses.asdict(pipeline.postprocess))
    except SijError as exc:
        print(f"dicom-node train sij: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} and its card; classifier out-of-fold AUC {oof_auc:.3f}, "
          f"threshold {classifier.threshold:.3f}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Run the pipeline on labelled studies and print the source study's table."""
    import torch
    from tqdm import tqdm

    from inference.sij.errors import SijError
    from inference.sij.evaluation import evaluate_results, format_report
    from inference.sij.pipeline import SijPipeline

    torch.set_num_threads(max(1, args.threads))
    _maybe_generate(args)
    try:
        pipeline = SijPipeline.from_weights(args.weights, device=args.device, flip_tta=args.tta)
        if args.window is not None:
            pipeline.inferer.patch_size = args.window
        if args.overlap is not None:
            pipeline.inferer.overlap = args.overlap
        cases = _load(args)
        t0 = time.monotonic()
        results = [pipeline(c.t1, c.stir) for c in tqdm(cases, desc="sij evaluate")]
        seconds = (time.monotonic() - t0) / len(cases)
        ev = evaluate_results([c.path.name for c in cases], results, [c.t1_labels for c in cases],
                              [c.truth for c in cases])
    except SijError as exc:
        print(f"dicom-node evaluate sij: {exc}", file=sys.stderr)
        return 1
    ev.extra["seconds_per_study"] = round(seconds, 2)
    if pipeline.model is not None:
        ev.extra["model"] = {"name": pipeline.model.name, "version": pipeline.model.version,
                             "sha256": pipeline.model.sha256}
    print(format_report(ev, per_case=not args.no_per_case))
    print(f"\n{len(cases)} studies, {seconds:.2f} s per study; {pipeline.model.notice if pipeline.model else ''}")
    if args.json is not None:
        args.json.write_text(json.dumps(ev.to_dict(), indent=2, default=float) + "\n", encoding="utf-8")
    return 0
