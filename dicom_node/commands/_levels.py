"""``dicom-node train levels`` and ``dicom-node evaluate levels``: the sagittal disc-level network.

Data: a SPIDER-style folder (``images/PPP_sliceNN.png`` and ``masks/PPP_sliceNN.png``,
mask values 29 disc / 76 vertebra / 150 canal). Patients are split into training
and held-out sets by ``--split-seed`` and ``--test-fraction``, never slices.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from inference.levels.errors import LevelsError

logger = logging.getLogger(__name__)

DEFAULT_VERSION = "0.1.0"


def _add_split(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spider", type=Path, required=True, help="SPIDER-style folder with images/ and masks/")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the patient split (default 0)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of patients held out (default 0.2)")
    parser.add_argument("--device", default="cpu", help="cpu, auto, cuda or cuda:N (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dicom-node train levels``."""
    _add_split(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder (levels.pt, card, checkpoint)")
    parser.add_argument("--epochs", type=int, default=70)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--version", default=DEFAULT_VERSION, help="version written into the model card")
    parser.add_argument("--schedule", choices=("onecycle", "cosine"), default="onecycle", help="learning-rate schedule")
    parser.add_argument(
        "--phantoms", type=Path, default=None, help="folder of lumbar phantom studies to train on as well (dicom-node synth lumbar)"
    )
    parser.add_argument("--phantom-slices", type=int, default=3, help="central sagittal slices per phantom study (default 3)")
    parser.add_argument("--init", type=Path, default=None, help="start from these weights or checkpoint (fine-tuning)")


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dicom-node evaluate levels``."""
    _add_split(parser)
    parser.add_argument("--weights", type=Path, default=None, help="weights with a card (default: bundled demo weights)")
    parser.add_argument("--all", action="store_true", help="evaluate every patient, not only the held-out ones")
    parser.add_argument(
        "--train-fold",
        metavar="I/K",
        default=None,
        help="evaluate fold I of K (0-based) of the TRAINING patients instead of the held-out ones, for choosing "
        "rules without touching the held-out patients (training patients sorted, patient n in fold n mod K)",
    )
    parser.add_argument("--per-slice", action="store_true", help="print one line per slice")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary and per-slice results here")
    parser.add_argument(
        "--phantoms", type=Path, default=None, help="also level these lumbar phantom studies against their ground truth"
    )


def train_fold(train_ids: list[str], spec: str) -> list[str]:
    """The training patients of fold ``"I/K"`` (0-based I): sorted ids, the n-th in fold n mod K.

    Raises
    ------
    ValueError
        When ``spec`` is not ``I/K`` with ``0 <= I < K``.
    """
    try:
        index, folds = (int(part) for part in spec.split("/"))
    except ValueError as exc:
        raise ValueError(f"--train-fold wants I/K, e.g. 0/5, got {spec!r}") from exc
    if not 0 <= index < folds:
        raise ValueError(f"--train-fold {spec}: need 0 <= I < K")
    return [p for n, p in enumerate(sorted(train_ids)) if n % folds == index]


def _split(args: argparse.Namespace) -> tuple[list[Any], list[str], list[str]]:
    from inference.levels.spider import load_spider, split_patients

    slices = load_spider(args.spider)
    train_ids, test_ids = split_patients([s.patient for s in slices], args.test_fraction, args.split_seed)
    return slices, train_ids, test_ids


def _evaluate(model: Any, slices: list[Any], patients: list[str], device: Any) -> tuple[Any, list[Any]]:
    from inference.levels.evaluation import evaluate_slices, summarise

    chosen = [s for s in slices if s.patient in set(patients)]
    items = [(f"{s.patient}_slice{s.slice_number:02d}", s.image, s.labels) for s in chosen]
    results = evaluate_slices(model, items, device=device)
    return summarise(results, len(set(patients))), results


def _print_summary(summary: Any, title: str) -> None:
    print(title)
    print(f"  slices {summary.slices} of {summary.patients} patients; discs {summary.ref_discs} reference, {summary.pred_discs} predicted")
    print(f"  disc Dice            {summary.dice_disc:.3f}   (target >= 0.85)")
    print(f"  disc recall          {summary.disc_recall:.3f}   (target >= 0.97)")
    print(f"  disc precision       {summary.disc_precision:.3f}")
    print(f"  junction right       {summary.junction_right:.1%}")
    print(f"  level count right    {summary.count_right:.1%}   (target >= 95 %; every disc in view named right)")
    print(f"  lumbar levels right  {summary.lumbar_right:.1%}   (junction and T12/L1..L5/S1 named right)")
    print(f"  vertebra Dice {summary.dice_vertebra:.3f}, canal Dice {summary.dice_canal:.3f}")


def _phantom_seed(study: Path) -> int | None:
    try:
        return int(json.loads((study / "ground_truth.json").read_text(encoding="utf-8"))["seed"])
    except (OSError, ValueError, KeyError):
        return None


def run_train(args: argparse.Namespace) -> int:
    """Train, export float16 weights, evaluate on the held-out patients, write the card."""
    import torch
    from tqdm import tqdm

    from inference.levels.model import LevelsModel, build_network
    from inference.levels.spider import SPIDER_CITATION
    from inference.levels.training import TrainConfig, prepare_sample, train_levels
    from inference.modelcard import write_card
    from inference.runtime import select_device

    try:
        device = select_device(args.device)
        slices, train_ids, test_ids = _split(args)
        samples = [prepare_sample(s.image, s.labels) for s in slices if s.patient in set(train_ids)]
        n_spider = len(samples)
        studies: list[Path] = []
        if args.phantoms is not None:
            from inference.levels.phantoms import phantom_sagittal_slices, phantom_studies

            studies = phantom_studies(args.phantoms)
            for study in studies:
                for image, labels, spacing in phantom_sagittal_slices(study, args.phantom_slices):
                    samples.append(prepare_sample(image, labels, spacing))
        config = TrainConfig(
            out_dir=args.out,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            seed=args.seed,
            device=str(device),
            threads=args.threads,
            schedule=args.schedule,
            init_weights=args.init,
        )
        result = train_levels(samples, config, progress=lambda it: tqdm(it, desc="epochs", unit="epoch"))
        network = build_network()
        network.load_state_dict({k: v.float() for k, v in torch.load(result.weights, weights_only=True).items()})
        summary, _ = _evaluate(LevelsModel(network), slices, test_ids, device)
    except (LevelsError, OSError, RuntimeError) as exc:
        print(f"dicom-node train levels: {exc}", file=sys.stderr)
        return 1
    card = {
        "name": "levels",
        "version": args.version,
        "task": "sagittal lumbar T2 segmentation (disc, vertebra, spinal canal) for disc-level counting",
        "architecture": "MONAI UNet 2D, channels 16-256, strides 2x4, 2 residual units; input 320x256",
        "weights_dtype": "float16",
        "training_data": {
            "spider": SPIDER_CITATION,
            "spider_slices": n_spider,
            "train_patients": train_ids,
            "held_out_patients": test_ids,
            "phantoms": {
                "studies": [p.name for p in studies],
                "seeds": [_phantom_seed(p) for p in studies],
                "slices": len(samples) - n_spider,
            }
            if studies
            else None,
        },
        "seeds": {"training": args.seed, "split": args.split_seed},
        "training": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "schedule": args.schedule,
            "init": None if args.init is None else str(args.init),
            "seconds": round(result.seconds),
            "final_loss": round(result.losses[-1], 4) if result.losses else None,
        },
        "metrics_held_out": summary.as_dict(),
        "synthetic_training_data": False,
        "intended_use": "research use only; trained on public SPIDER MRI (CC BY 4.0); not a medical device",
    }
    write_card(result.weights, card)
    _print_summary(summary, f"held-out patients {', '.join(test_ids)}")
    print(f"weights: {result.weights}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Print disc Dice, detection and level-count accuracy for a SPIDER-style set."""
    from inference.levels.model import load_levels_model
    from inference.runtime import select_device

    try:
        device = select_device(args.device)
        import torch

        torch.set_num_threads(max(1, args.threads))
        model = load_levels_model(args.weights, device=device)
        slices, train_ids, test_ids = _split(args)
        patients = sorted({s.patient for s in slices}) if args.all else test_ids
        if args.train_fold is not None:
            patients = train_fold(train_ids, args.train_fold)
        summary, results = _evaluate(model, slices, patients, device)
    except (LevelsError, OSError, RuntimeError, ValueError) as exc:
        print(f"dicom-node evaluate levels: {exc}", file=sys.stderr)
        return 1
    card = model.card
    if card is not None:
        print(f"model {card.name} {card.version} (sha256 {card.sha256[:12]}...)")
    scope = f"training fold {args.train_fold}" if args.train_fold is not None else "all" if args.all else "held-out"
    _print_summary(summary, f"{scope} patients: {', '.join(patients)}")
    if args.per_slice:
        for r in results:
            flag = "ok " if r.count_right else "BAD"
            print(f"  {flag} {r.name}: Dice {r.dice_disc:.3f}, discs {r.pred_discs}/{r.ref_discs}, lowest {r.pred_names[-1:] or '-'}; {'; '.join(r.warnings)}")
    phantom_results: list[dict[str, Any]] = []
    if args.phantoms is not None:
        from inference.levels.evaluation import evaluate_phantom_study
        from inference.levels.phantoms import phantom_studies

        for study in phantom_studies(args.phantoms):
            try:
                res = evaluate_phantom_study(model, study)
            except (LevelsError, OSError, ValueError) as exc:
                print(f"  phantom {study.name}: {exc}", file=sys.stderr)
                continue
            phantom_results.append(res.__dict__)
            print(
                f"  phantom {res.study}: discs named right {res.discs_named_right}/{res.discs}, "
                f"axial slices right {res.axial_right}/{res.axial_slices}; {'; '.join(res.warnings)}"
            )
        if phantom_results:
            named = sum(r["discs_named_right"] for r in phantom_results) / max(1, sum(r["discs"] for r in phantom_results))
            axial = sum(r["axial_right"] for r in phantom_results) / max(1, sum(r["axial_slices"] for r in phantom_results))
            print(f"phantoms: discs named right {named:.1%}, axial slices levelled right {axial:.1%}")
    if args.json is not None:
        payload = {"summary": summary.as_dict(), "slices": [r.__dict__ for r in results], "phantoms": phantom_results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0
