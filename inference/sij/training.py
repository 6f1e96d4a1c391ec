"""Training: the segmentation network first, then the axSpA classifier on its output.

Seeded (one ``numpy.random.Generator`` drives case choice and MONAI's random transforms
are seeded from it), resumable (a checkpoint with model, optimiser, step and generator
state is written every ``checkpoint_every`` steps and picked up with ``resume=True``),
with a tqdm progress bar. CPU-feasible: the default network and patch train at about one
to two seconds per step on two cores.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.losses import DiceLoss
from tqdm import tqdm

from inference.labels import SijLabel
from inference.modelcard import WeightsError, half_state_dict, load_weights, write_card
from inference.runtime import batch_stream, select_device
from inference.sij.classifier import FEATURE_NAMES, AxspaClassifier, fit_classifier
from inference.sij.errors import SijDataError, SijModelError
from inference.sij.network import OEDEMA_CHANNEL, SOFTMAX_LABELS, NetworkConfig, build_network
from inference.sij.pipeline import SijPipeline
from inference.sij.result import SijResult
from inference.sij.transforms import DEFAULT_SPACING_MM, training_transforms

__all__ = ["TrainConfig", "round_to_stored", "segmentation_loss", "train_classifier", "train_segmentation", "write_model"]

logger = logging.getLogger(__name__)

_FM_INDEX = SOFTMAX_LABELS.index(int(SijLabel.FAT_METAPLASIA))


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run (stored in the model card)."""

    steps: int = 600
    batch_cases: int = 2
    samples_per_case: int = 2
    patch_size: tuple[int, int, int] = (8, 64, 64)
    inference_patch_size: tuple[int, int, int] = (16, 192, 192)
    spacing_mm: float = DEFAULT_SPACING_MM
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2
    checkpoint_every: int = 50
    #: Cross-entropy weight of fat metaplasia (the other softmax classes weigh 1).
    fm_weight: float = 20.0
    #: Share of training patches centred on each softmax class (background, FM, sacrum, ilia).
    crop_ratios: tuple[float, ...] = (0.1, 0.7, 0.1, 0.05, 0.05)
    #: Weights (with a card) whose network state starts the training instead of a random one.
    init: str | None = None
    #: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; on CUDA the steps run in mixed precision.
    device: str = "cpu"
    #: Background processes drawing the augmented patches (0: in-process, deterministic).
    workers: int = 0
    #: Stop (checkpoint written) once a step ends past this many seconds; ``None`` = no limit.
    max_seconds: float | None = None
    network: NetworkConfig = field(default_factory=NetworkConfig)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        data = asdict(self)
        data["patch_size"] = list(self.patch_size)
        data["inference_patch_size"] = list(self.inference_patch_size)
        data["crop_ratios"] = list(self.crop_ratios)
        data["network"] = self.network.to_dict()
        return data


#: Dice over the whole batch (small lesions are absent from many patches) on the foreground classes.
_DICE = DiceLoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
#: Cross-entropy weights per softmax class of v0.1.0: fat metaplasia is rare and small.
CE_WEIGHTS = (1.0, 20.0, 1.0, 1.0, 1.0)


def segmentation_loss(
    logits: torch.Tensor, label: torch.Tensor, oedema: torch.Tensor, valid: torch.Tensor, *,
    ce_weights: Sequence[float] = CE_WEIGHTS,
) -> torch.Tensor:
    """Batch Dice + weighted CE over the softmax classes, BCE + soft Dice on oedema where a STIR label exists.

    Parameters
    ----------
    logits:
        (B, 6, ...) network output.
    label:
        (B, 1, ...) softmax class indices.
    oedema:
        (B, 1, ...) 0/1.
    valid:
        (B,) 1.0 where the oedema target is known.
    ce_weights:
        Cross-entropy weight per softmax class.
    """
    classes = logits[:, :OEDEMA_CHANNEL]
    weight = torch.tensor(tuple(ce_weights), dtype=classes.dtype, device=classes.device)
    loss = _DICE(classes, label) + torch.nn.functional.cross_entropy(classes, label[:, 0].long(), weight=weight)
    if float(valid.sum()) > 0:
        o_logit = logits[:, OEDEMA_CHANNEL:]
        bce = torch.nn.functional.binary_cross_entropy_with_logits(o_logit, oedema, reduction="none")
        bce = bce.flatten(1).mean(1)
        prob = torch.sigmoid(o_logit).flatten(1)
        tgt = oedema.flatten(1)
        dice = 1 - (2 * (prob * tgt).sum(1) + 1) / (prob.sum(1) + tgt.sum(1) + 1)
        loss = loss + ((bce + dice) * valid).sum() / valid.sum()
    return loss


def _checkpoint(path: Path, net: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any, step: int,
                rng: np.random.Generator, history: list[float]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {"model": net.state_dict(), "optim": opt.state_dict(), "sched": sched.state_dict(), "step": step,
         "rng": rng.bit_generator.state,
         "history": history},
        tmp,
    )
    tmp.replace(path)


def _patch_batches(
    prepared: Sequence[dict[str, Any]], rand: Any, config: TrainConfig
) -> Callable[[np.random.Generator], Callable[[], tuple[torch.Tensor, ...]]]:
    """``make_draw(rng)`` for :func:`inference.runtime.batch_stream`: ``batch_cases`` studies per step,
    ``samples_per_case`` random patches each, as ``(image, label, oedema, oedema_valid)`` tensors."""

    def make_draw(rng: np.random.Generator) -> Callable[[], tuple[torch.Tensor, ...]]:
        def draw() -> tuple[torch.Tensor, ...]:
            rand.set_random_state(seed=int(rng.integers(0, 2**31 - 1)))
            picks = rng.choice(len(prepared), size=min(config.batch_cases, len(prepared)), replace=False)
            samples: list[dict[str, Any]] = []
            for p in picks:
                out = rand(dict(prepared[int(p)]))
                samples.extend(out if isinstance(out, list) else [out])
            return tuple(torch.stack([torch.as_tensor(s[key]).float() for s in samples])
                         for key in ("image", "label", "oedema", "oedema_valid"))

        return draw

    return make_draw


def train_segmentation(
    cases: Sequence[dict[str, Any]],
    config: TrainConfig,
    *,
    checkpoint: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[torch.nn.Module, list[float]]:
    """Train the segmentation network on in-memory cases.

    Parameters
    ----------
    cases:
        Dictionaries with the keys :mod:`inference.sij.transforms` reads (labels included).
    checkpoint:
        Where to write the resumable checkpoint (``None``: no checkpoints).
    resume:
        Continue from ``checkpoint`` when it exists.

    Returns
    -------
    tuple
        ``(network, per-step losses)``.
    """
    if not cases:
        raise SijDataError("no training cases")
    torch.set_num_threads(max(1, config.threads))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    fixed, rand = training_transforms(config.patch_size, config.spacing_mm, samples=config.samples_per_case,
                                      ratios=config.crop_ratios)
    prepared = [fixed(dict(c)) for c in tqdm(cases, disable=not progress, desc="sij prepare")]
    net = build_network(config.network)
    if config.init is not None:
        try:
            state, _ = load_weights(Path(config.init), map_location="cpu")
            net.load_state_dict(state)
        except (WeightsError, RuntimeError) as exc:
            raise SijModelError(f"cannot start from {config.init}: {exc}") from exc
        logger.info("network initialised from %s", config.init)
    dev = select_device(config.device)
    net = net.to(dev)  # before the optimiser: its load_state_dict puts a resumed state on the parameters' device
    ce_weights = (1.0, float(config.fm_weight), 1.0, 1.0, 1.0)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - 0.9 * min(s, config.steps) / config.steps)
    start, history = 0, []
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
    if resume and checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        start, history = int(state["step"]), list(state["history"])
        rng.bit_generator.state = state["rng"]
        sched.load_state_dict(state["sched"])
        logger.info("resumed from %s at step %d", checkpoint, start)
    scaler = torch.amp.GradScaler("cuda", enabled=dev.type == "cuda")
    stream = batch_stream(_patch_batches(prepared, rand, config), rng, workers=config.workers,
                          seed=config.seed * 100_003 + start)
    net.train()
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not progress, desc="sij seg")
    t0 = time.monotonic()
    for step in bar:
        image, label, oedema, valid = (t.to(dev, non_blocking=True) for t in next(stream))
        opt.zero_grad()
        with torch.autocast(device_type=dev.type, enabled=dev.type == "cuda"):
            logits = net(image)
        loss = segmentation_loss(logits.float(), label, oedema, valid, ce_weights=ce_weights)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        history.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(history[-20:]):.3f}")
        if on_step is not None:
            on_step(step, history[-1])
        out_of_time = config.max_seconds is not None and time.monotonic() - t0 > config.max_seconds
        if checkpoint is not None and ((step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps
                                       or out_of_time):
            _checkpoint(checkpoint, net, opt, sched, step + 1, rng, history)
        if out_of_time and step + 1 < config.steps:
            logger.warning("time limit: stopped after step %d of %d", step + 1, config.steps)
            break
    stream.close()  # stops the workers
    net = net.cpu()
    logger.info("segmentation: %d steps in %.0f s", len(history) - start, time.monotonic() - t0)
    net.eval()
    return net, history


def train_classifier(
    results: Sequence[SijResult], labels: Sequence[int], *, seed: int = 0, l2: float = 1.0
) -> tuple[AxspaClassifier, np.ndarray]:
    """Fit the axSpA classifier on the features of pipeline results (segmentation-derived)."""
    x = np.array([[r.features[n] for n in FEATURE_NAMES] for r in results], dtype=np.float64)
    return fit_classifier(x, np.asarray(labels), seed=seed, l2=l2)


def round_to_stored(network: torch.nn.Module) -> torch.nn.Module:
    """Round the network's floating parameters and buffers to float16 precision, in place.

    :func:`write_model` stores float16; a network rounded first gives the same outputs as the
    file it is written to, so the classifier and thresholds fitted on it fit the shipped weights.
    """
    with torch.no_grad():
        for tensor in (*network.parameters(), *network.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.half())
    return network


def write_model(
    path: Path,
    network: torch.nn.Module,
    config: TrainConfig,
    *,
    classifier: AxspaClassifier | None,
    version: str,
    training_data: str,
    metrics: dict[str, Any] | None = None,
    postprocess: dict[str, Any] | None = None,
) -> Path:
    """Write ``<path>`` (state dict) and its model card with everything :meth:`SijPipeline.from_weights` needs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # float16, DynUNet's doubly registered blocks once: round the network first (round_to_stored)
    # so that what is fitted on it afterwards sees the shipped weights
    torch.save(half_state_dict(network.state_dict()), path)
    card: dict[str, Any] = {
        "name": path.stem,
        "version": version,
        "task": "SIJ fat-metaplasia segmentation (semi-coronal T1 + STIR) and axSpA classification",
        "architecture": "MONAI DynUNet, anisotropic (1x3x3 kernels, 1x2x2 strides in the first levels)",
        "network": config.network.to_dict(),
        "preprocessing": {
            "spacing_mm": config.spacing_mm,
            "patch_size": list(config.patch_size),
            "inference_patch_size": list(config.inference_patch_size),
            "overlap": 0.25,
            # the FM scale, quadrant threshold and classifier are fitted on outputs without flip TTA
            "flip_tta": False,
            "inputs": ["cor_t1", "cor_stir (zeros when absent)"],
            "normalisation": "z-score per channel over the volume",
            "resampling": "in-plane only (bilinear); slices kept as acquired",
        },
        "outputs": {"softmax_labels": [SijLabel(v).name for v in SOFTMAX_LABELS], "sigmoid": ["OEDEMA"]},
        "training": {**config.to_dict(), "data": training_data},
        "metrics": metrics or {},
        "postprocess": postprocess or {},
        "synthetic_training_data": True,
        "weights_dtype": "float16",
    }
    if classifier is not None:
        card["classifier"] = classifier.to_dict()
    write_card(path, card)
    return path


def predict_all(pipeline: SijPipeline, cases: Sequence[Any], *, progress: bool = True) -> list[SijResult]:
    """Run the pipeline over loaded cases (:class:`inference.sij.data.SijCase`)."""
    return [pipeline(c.t1, c.stir) for c in tqdm(cases, disable=not progress, desc="sij predict")]


FM_SCALES: tuple[float, ...] = (2.0, 1.0, 0.7, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05, 0.025, 0.01)


def tune_and_predict(
    pipeline: SijPipeline,
    cases: Sequence[Any],
    *,
    scales: Sequence[float] = FM_SCALES,
    min_areas_mm2: Sequence[float] = (2.0,),
    progress: bool = True,
) -> tuple[float, dict[float, float], list[SijResult]]:
    """Choose the FM probability scale with the best mean FM Dice on ``cases``; predict them with it.

    Dice is measured on the label maps post-processing makes (``fm_joint_distance_mm`` included).

    Then, with that scale, choose the quadrant area threshold (``min_quadrant_area_mm2``) among
    ``min_areas_mm2`` with the best quadrant FM presence accuracy against the cases' ground-truth
    ``fm_table`` (the smallest on ties); ``pipeline.postprocess`` keeps both choices.

    Returns
    -------
    tuple
        ``(best scale, {scale: mean Dice over studies with reference FM}, results at the best settings)``.
    """
    from inference.metrics import dice
    from inference.sij.evaluation import quadrant_agreement

    probs = []
    for c in tqdm(cases, disable=not progress, desc="sij predict"):
        used, note = pipeline.stir_for(c.t1, c.stir)
        stir_array = None if used is None else np.asarray(used.array, dtype=np.float32)
        probs.append((used, note, pipeline.probabilities(np.asarray(c.t1.array, dtype=np.float32), stir_array,
                                                         c.t1.spacing)))
    table: dict[float, float] = {}
    base = pipeline.postprocess
    for scale in scales:
        pipeline.postprocess = dataclasses.replace(base, fm_scale=float(scale))
        scores = []
        for c, (_, _, p) in zip(cases, probs):
            ref = c.t1_labels == SijLabel.FAT_METAPLASIA
            if not ref.any():
                continue
            affine = np.asarray(c.t1.affine, dtype=np.float64)
            spacing = (float(np.linalg.norm(affine[:3, 1])), float(np.linalg.norm(affine[:3, 2])))
            labels, _ = pipeline.labels_from_probabilities(p, False, spacing)
            scores.append(dice(labels == SijLabel.FAT_METAPLASIA, ref))
        table[float(scale)] = float(np.mean(scores)) if scores else float("nan")
    best = max(table, key=lambda s: -1.0 if np.isnan(table[s]) else table[s])
    pipeline.postprocess = dataclasses.replace(pipeline.postprocess, fm_scale=best)
    logger.info("FM scale %s (mean Dice by scale: %s)", best, table)
    best_results: list[SijResult] = []
    best_accuracy = -1.0
    chosen_area = pipeline.postprocess.min_quadrant_area_mm2
    base = pipeline.postprocess
    for area in sorted(min_areas_mm2):
        pipeline.postprocess = dataclasses.replace(base, min_quadrant_area_mm2=float(area))
        results = [pipeline.result_from_probabilities(c.t1, used, p, note) for c, (used, note, p) in zip(cases, probs)]
        counts = [quadrant_agreement(r, c.truth.get("fm_table", {}), r.fm_presence) for r, c in zip(results, cases)]
        total = sum(t for _, t in counts)
        accuracy = sum(a for a, _ in counts) / total if total else 0.0
        logger.info("quadrant area %.1f mm2: FM presence accuracy %.4f", area, accuracy)
        if accuracy > best_accuracy:
            best_accuracy, best_results, chosen_area = accuracy, results, float(area)
    pipeline.postprocess = dataclasses.replace(base, min_quadrant_area_mm2=chosen_area)
    return best, table, best_results
