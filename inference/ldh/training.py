"""Training of the axial segmentation network: seeded, resumable, with checkpoints and a progress bar.

Works on prepared slices (see :func:`inference.ldh.data.prepare_slices`), so a
test can train on slices drawn in memory and the command on phantoms or a
site's own studies. On CPU it runs fp32 and deterministic; on CUDA with AMP.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from tqdm import tqdm

from inference.labels import AxialLabel
from inference.ldh.data import SHARE_STEPS
from inference.ldh.inferer import LdhInferer
from inference.ldh.network import NETWORK_CONFIG, build_network, widen_input
from inference.ldh.transforms import IMAGE, LABEL, PATCH, TARGET_SPACING, train_transforms
from inference.modelcard import write_card
from inference.runtime import batch_stream, seed_everything, select_device

__all__ = ["TrainConfig", "TrainResult", "evaluate_slices", "initial_state", "save_weights", "segmentation_loss", "tip_mask", "train"]

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Hyper-parameters (recorded in the checkpoint and the model card)."""

    epochs: int = 20
    steps_per_epoch: int = 50
    batch_size: int = 8
    learning_rate: float = 3e-3
    patch: tuple[int, int] = PATCH
    #: in-plane spacing (mm) of the prepared slices, the network's grid (recorded, not applied here:
    #: :func:`inference.ldh.data.prepare_slices` resamples)
    pixdim: float = TARGET_SPACING
    #: neighbouring slices either side in the network's input (recorded and used for the network's
    #: input channels; :func:`inference.ldh.data.prepare_slices` stacks them)
    context: int = 0
    seed: int = 0
    device: str = "auto"
    num_threads: int = 2
    augment: bool = True
    channels: tuple[int, ...] = tuple(NETWORK_CONFIG["channels"])  # type: ignore[arg-type]
    #: herniation pixels within ``tip_reach`` pixels of the dural sac (where the herniation's tip
    #: pushes into the sac) count ``1 + tip_weight`` times in the cross-entropy; 0 = plain DiceCE
    tip_weight: float = 0.0
    tip_reach: int = 2
    #: Dice pooled over the batch instead of per patch (a class absent from a patch then adds no
    #: loss of 1 that pushes its probabilities to zero everywhere)
    batch_dice: bool = False
    #: train on each class's share of every pixel's area on the network's grid instead of the label
    #: nearest its centre (see :func:`inference.ldh.data.prepare_slices`; the slices must be
    #: prepared with ``soft=True``)
    soft_labels: bool = False
    #: weight of the Dice term beside the cross-entropy (1: DiceCE as before)
    dice_weight: float = 1.0
    #: weights file or checkpoint the network starts from (fine-tuning); ``None`` = from scratch
    init: str | None = None
    #: background processes drawing the augmented batches (0: in-process, deterministic; on a GPU
    #: the augmentation, not the network, limits the steps per second)
    workers: int = 0
    #: stop after the first epoch that ends past this many seconds of training (checkpoint and
    #: weights are written; ``--resume`` continues the same schedule); ``None`` = no limit
    max_seconds: float | None = None


@dataclass
class TrainResult:
    """What a run did: the network, its losses per epoch, validation Dice per class."""

    network: torch.nn.Module
    epoch_losses: list[float]
    step_losses: list[float]
    val_dice: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    #: epochs run when ``max_seconds`` stopped the run early; ``None`` when it ran to the end
    stopped_after_epoch: int | None = None


def _batches(
    slices: Sequence[dict[str, Any]], cfg: TrainConfig, *, seed_transforms: bool = False
) -> Callable[[np.random.Generator], Callable[[], tuple[torch.Tensor, torch.Tensor]]]:
    """``make_draw(rng)`` for :func:`inference.runtime.batch_stream`.

    ``seed_transforms`` seeds the random transforms from ``rng`` (each DataLoader worker must draw
    its own augmentations; in-process the transforms keep the globally seeded state, as before).
    """

    def make_draw(rng: np.random.Generator) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
        transform = train_transforms(patch=cfg.patch, augment=cfg.augment, soft=cfg.soft_labels)
        if seed_transforms:
            transform.set_random_state(seed=int(rng.integers(0, 2**31 - 1)))

        def draw() -> tuple[torch.Tensor, torch.Tensor]:
            images, labels = [], []
            for i in rng.integers(0, len(slices), size=cfg.batch_size):
                label = slices[int(i)][LABEL]
                label = label.float() / SHARE_STEPS if cfg.soft_labels else label.long()
                out = transform({IMAGE: slices[int(i)][IMAGE], LABEL: label})
                sample = out[0] if isinstance(out, list) else out
                images.append(torch.as_tensor(sample[IMAGE]))
                labels.append(torch.as_tensor(sample[LABEL]))
            batch = torch.stack(labels)
            return torch.stack(images).float(), batch.float() if cfg.soft_labels else batch.long()

        return draw

    return make_draw


def initial_state(path: Path) -> dict[str, torch.Tensor]:
    """The network state dict stored in ``path``: a weights file (a state dict) or a training checkpoint.

    Loaded with ``weights_only=True`` (tensors and plain containers only).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state dict")
    inner = state.get("state_dict", state)
    if not isinstance(inner, dict) or not all(isinstance(v, torch.Tensor) for v in inner.values()):
        raise ValueError(f"{path} holds no state dict")
    return inner


def tip_mask(labels: torch.Tensor, reach: int) -> torch.Tensor:
    """Herniation pixels within ``reach`` pixels (chessboard distance) of the dural sac.

    ``labels`` is ``(N, 1, H, W)`` :class:`~inference.labels.AxialLabel` values; returns a bool
    tensor of the same shape.
    """
    sac = (labels == AxialLabel.DURAL_SAC).float()
    near = F.max_pool2d(sac, kernel_size=2 * reach + 1, stride=1, padding=reach) > 0
    return near & (labels == AxialLabel.HERNIATION)


def segmentation_loss(
    tip_weight: float = 0.0, tip_reach: int = 2, batch_dice: bool = False, dice_weight: float = 1.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """DiceCE (foreground Dice + cross-entropy), with the herniation's tip weighted in the cross-entropy.

    The targets are ``(N, 1, H, W)`` label values, or ``(N, C, H, W)`` float shares of each
    pixel's area per class (soft labels): the cross-entropy then takes the shares as the target
    distribution and the tip is found on their argmax. The Dice then squares predictions and
    shares in its denominator (V-Net's form): the plain soft Dice is lowest when a pixel's
    prediction is 1 wherever its share exceeds about half the Dice and 0 elsewhere, which would
    round the shares back to whole pixels; the squared form is lowest at the shares themselves.

    Parameters
    ----------
    tip_weight
        Herniation pixels within ``tip_reach`` pixels of the dural sac (see :func:`tip_mask`) count
        ``1 + tip_weight`` times in the cross-entropy's pixel mean; 0 gives plain DiceCE.
    tip_reach
        Pixels.
    batch_dice
        Dice pooled over the batch (per class) rather than per patch.
    dice_weight
        Weight of the Dice term (the cross-entropy's is 1).

    Returns
    -------
    callable
        ``loss(logits (N, C, H, W), labels (N, 1, H, W) or shares (N, C, H, W))``.
    """
    dice_ce, dice_ce_soft = (
        DiceCELoss(to_onehot_y=not soft, squared_pred=soft, softmax=True, include_background=False, lambda_ce=1.0,
                   lambda_dice=dice_weight, batch=batch_dice)
        for soft in (False, True)
    )

    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        soft = labels.shape[1] > 1
        loss = (dice_ce_soft if soft else dice_ce)(logits, labels)
        if tip_weight > 0:
            hard = labels.argmax(dim=1, keepdim=True) if soft else labels
            pixel_ce = F.cross_entropy(logits.float(), labels.float() if soft else labels[:, 0], reduction="none")
            loss = loss + tip_weight * (pixel_ce * tip_mask(hard, tip_reach)[:, 0]).mean()
        return loss

    return loss_fn


#: settings a resumed run must share with its checkpoint: the network and its input, the grid and patch its
#: slices are drawn at, the form of their labels, and the steps per epoch the schedule's position is
#: counted in (the number of epochs may grow: the run then goes on further)
RESUME_KEYS = ("channels", "context", "pixdim", "patch", "steps_per_epoch", "soft_labels")


def _check_resumable(checkpoint: Path, saved: dict[str, Any], cfg: TrainConfig) -> None:
    """Refuse to continue a checkpoint under settings that would silently train something else."""
    now = asdict(cfg)
    changed = [
        f"{key} {_plain(saved[key])} -> {_plain(now[key])}"
        for key in RESUME_KEYS
        if key in saved and _plain(saved[key]) != _plain(now[key])
    ]
    if changed:
        raise ValueError(
            f"{checkpoint} was written with other settings ({'; '.join(changed)}): resume with the "
            "checkpoint's settings, or start a new run from it with --init"
        )


def _plain(value: Any) -> Any:
    """Tuples and lists compare alike (the checkpoint keeps what ``asdict`` gave)."""
    return list(value) if isinstance(value, (tuple, list)) else value


def train(
    slices: Sequence[dict[str, Any]],
    cfg: TrainConfig,
    *,
    val_slices: Sequence[dict[str, Any]] = (),
    checkpoint: Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train a network on prepared slices.

    Parameters
    ----------
    slices
        Training slices: dicts with ``image`` ``(1 + 2 * context, h, w)`` and ``label`` ``(1, h, w)``
        (``cfg.soft_labels``: ``(classes, h, w)`` uint8 shares x :data:`~inference.ldh.data.SHARE_STEPS`, as
        :func:`~inference.ldh.data.prepare_slices` makes them).
    cfg
        Hyper-parameters.
    val_slices
        Slices for the per-class Dice printed at the end (optional).
    checkpoint
        Written after every epoch (network, optimiser, epoch, losses, RNG state).
    resume
        Continue from ``checkpoint`` when it exists.
    progress
        Show a tqdm bar.
    """
    if not slices:
        raise ValueError("no training slices")
    if (torch.as_tensor(slices[0][LABEL]).shape[0] > 1) != cfg.soft_labels:
        raise ValueError("soft_labels needs slices prepared with soft=True (shares per class), and only those"
                         if cfg.soft_labels else "slices of shares per class need soft_labels")
    start = time.perf_counter()
    device = select_device(cfg.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, cfg.num_threads))
    seed_everything(cfg.seed, deterministic=device.type == "cpu")
    rng = np.random.default_rng(cfg.seed)
    network = build_network(cfg.channels, in_channels=1 + 2 * cfg.context)
    if cfg.init is not None and not (resume and checkpoint is not None and checkpoint.is_file()):
        try:  # a 2D network's weights start a 2.5D one on the slice itself (widen_input)
            network.load_state_dict(widen_input(initial_state(Path(cfg.init)), network))
        except RuntimeError as exc:
            raise ValueError(f"{cfg.init} does not fit the network (channels {cfg.channels}, context {cfg.context}): {exc}") from exc
        logger.info("initialised from %s", cfg.init)
    network = network.to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=cfg.learning_rate, weight_decay=1e-4)
    total_steps = cfg.epochs * cfg.steps_per_epoch
    warmup = max(1, total_steps // 20)

    def schedule(step: int) -> float:  # linear warm-up, then cosine decay to 5 %
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.05 + 0.95 * 0.5 * (1.0 + float(np.cos(np.pi * progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    loss_fn = segmentation_loss(cfg.tip_weight, cfg.tip_reach, cfg.batch_dice, cfg.dice_weight)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    first_epoch, epoch_losses, step_losses = 0, [], []
    if resume and checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        _check_resumable(checkpoint, state.get("config", {}), cfg)
        network.load_state_dict(state["state_dict"])
        optimiser.load_state_dict(state["optimizer"])
        first_epoch = int(state["epoch"]) + 1
        done = first_epoch * cfg.steps_per_epoch  # the schedule is a function of the step: jump to it
        scheduler.last_epoch = done
        for group in optimiser.param_groups:
            group["lr"] = group["initial_lr"] * schedule(done)
        epoch_losses, step_losses = list(state["epoch_losses"]), list(state["step_losses"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location moved it to the training device
        logger.info("resumed from %s at epoch %d", checkpoint, first_epoch)
    stream = batch_stream(_batches(slices, cfg, seed_transforms=cfg.workers > 0), rng, workers=cfg.workers,
                          seed=cfg.seed * 100_003 + first_epoch)
    bar = tqdm(total=total_steps, initial=first_epoch * cfg.steps_per_epoch, disable=not progress, desc="train ldh")
    for epoch in range(first_epoch, cfg.epochs):
        network.train()
        running = []
        for _ in range(cfg.steps_per_epoch):
            images, labels = next(stream)
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            optimiser.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, enabled=device.type == "cuda"):
                loss = loss_fn(network(images), labels)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            scheduler.step()
            running.append(float(loss.detach()))
            step_losses.append(running[-1])
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(running[-10:]):.3f}")
        epoch_losses.append(float(np.mean(running)))
        logger.info("epoch %d: loss %.4f", epoch, epoch_losses[-1])
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            tmp = checkpoint.with_suffix(".tmp")
            torch.save(
                {
                    "state_dict": network.state_dict(),
                    "optimizer": optimiser.state_dict(),
                    "epoch": epoch,
                    "epoch_losses": epoch_losses,
                    "step_losses": step_losses,
                    "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                    "config": asdict(cfg),
                },
                tmp,
            )
            tmp.replace(checkpoint)
        if cfg.max_seconds is not None and time.perf_counter() - start > cfg.max_seconds and epoch + 1 < cfg.epochs:
            stopped_at = epoch + 1
            logger.warning("time limit: stopped after epoch %d of %d", stopped_at, cfg.epochs)
            break
    else:
        stopped_at = None
    bar.close()
    stream.close()  # stops the workers
    result = TrainResult(network=network.eval(), epoch_losses=epoch_losses, step_losses=step_losses,
                         stopped_after_epoch=stopped_at)
    if val_slices:
        result.val_dice = evaluate_slices(network, val_slices, device=device)
    result.seconds = time.perf_counter() - start
    return result


def evaluate_slices(
    network: torch.nn.Module, slices: Sequence[dict[str, Any]], *, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Dice per class (foreground classes) pooled over prepared slices."""
    inferer = LdhInferer()
    inter = np.zeros(len(AxialLabel))
    total = np.zeros(len(AxialLabel))
    for item in slices:
        probs = inferer(torch.as_tensor(item[IMAGE])[None].to(device), network)
        pred = probs.argmax(dim=1)[0].cpu().numpy()
        label = torch.as_tensor(item[LABEL])
        ref = (label.argmax(dim=0) if label.shape[0] > 1 else label[0]).numpy()
        for c in range(1, len(AxialLabel)):
            p, r = pred == c, ref == c
            inter[c] += np.logical_and(p, r).sum()
            total[c] += p.sum() + r.sum()
    return {AxialLabel(c).name.lower(): (2 * inter[c] / total[c] if total[c] else float("nan")) for c in range(1, len(AxialLabel))}


def save_weights(network: torch.nn.Module, path: Path, card: dict[str, Any]) -> Path:
    """Write a state dict (fp32, CPU) to ``path`` and its model card beside it; returns the card's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
    torch.save(state, path)
    data = dict(card)
    data.setdefault("network", {k: list(v) if isinstance(v, tuple) else v for k, v in NETWORK_CONFIG.items()})
    return write_card(path, data)

