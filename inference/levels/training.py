"""Training of the sagittal level network (SPIDER slices, phantom sagittals when given).

Seeded, resumable (a checkpoint after every epoch), with a progress bar; runs on
CPU in well under an hour on two cores, and on CUDA when it is asked for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import Dataset
from monai.losses import DiceCELoss
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
)
from monai.utils import set_determinism
from torch.utils.data import DataLoader

from inference.levels.errors import LevelsDataError
from inference.levels.model import CANVAS, build_network, fit_to_canvas, normalise_intensity, plan_fit
from inference.modelcard import half_state_dict
from inference.runtime import seed_everything

__all__ = ["TrainConfig", "TrainResult", "export_weights", "prepare_sample", "train_levels", "train_transforms"]

logger = logging.getLogger(__name__)


def prepare_sample(
    image: np.ndarray, labels: np.ndarray, pixel_spacing: tuple[float, float] = (1.0, 1.0)
) -> dict[str, np.ndarray]:
    """One training sample on the canvas: ``{"image": (1, *CANVAS), "label": (1, *CANVAS)}``."""
    tensor, fit = fit_to_canvas(normalise_intensity(image), pixel_spacing)
    lab = torch.as_tensor(labels.astype(np.float32))[None, None]
    resized = F.interpolate(lab, size=fit.size, mode="nearest")
    canvas = torch.zeros((1, 1, *CANVAS), dtype=torch.float32)
    r0, c0 = fit.offset
    canvas[..., r0 : r0 + fit.size[0], c0 : c0 + fit.size[1]] = resized
    return {"image": tensor.numpy(), "label": canvas[0].numpy()}


def export_weights(state: dict[str, torch.Tensor], path: Path) -> Path:
    """Save a state dict for shipping: floating tensors as float16 (half the size; loading casts back)."""
    torch.save(half_state_dict(state), path)
    return path


def train_transforms() -> Compose:
    """Augmentation (dictionary transforms on keys ``image`` and ``label``)."""
    keys = ["image", "label"]
    return Compose(
        [
            RandAffined(
                keys=keys,
                prob=0.8,
                rotate_range=(0.2,),
                scale_range=(0.2, 0.2),
                translate_range=(24, 24),
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
            RandScaleIntensityd(keys="image", factors=0.2, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.3),
            RandAdjustContrastd(keys="image", gamma=(0.7, 1.5), prob=0.3),
            RandGaussianNoised(keys="image", std=0.03, prob=0.3),
        ]
    )


@dataclass
class TrainConfig:
    """What a training run needs; the defaults make the bundled demo weights."""

    out_dir: Path
    epochs: int = 60
    batch_size: int = 8
    learning_rate: float = 2e-3
    seed: int = 0
    device: str = "cpu"
    threads: int = 2
    schedule: str = "onecycle"  #: ``onecycle`` (from scratch) or ``cosine`` (decay from the start, for fine-tuning)
    init_weights: Path | None = None  #: start from these weights (a state dict) instead of random ones


@dataclass
class TrainResult:
    """Where the weights went and how the loss went."""

    weights: Path
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_levels(
    samples: Sequence[dict[str, np.ndarray]],
    config: TrainConfig,
    progress: Callable[[Any], Any] | None = None,
) -> TrainResult:
    """Train the network on prepared samples; resume from ``out_dir/checkpoint.pt`` if present.

    Parameters
    ----------
    samples
        Outputs of :func:`prepare_sample`.
    config
        Run settings.
    progress
        Optional wrapper for the epoch iterator (e.g. ``tqdm``).

    Returns
    -------
    TrainResult
        ``weights`` is ``out_dir/levels.pt`` (a float32 state dict, no card yet).
    """
    if not samples:
        raise LevelsDataError("no training samples")
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, config.threads))
    seed_everything(config.seed)
    set_determinism(seed=config.seed)
    device = torch.device(config.device)
    network = build_network().to(device)
    if config.init_weights is not None:
        init = torch.load(config.init_weights, map_location=device, weights_only=True)
        if "network" in init:
            init = init["network"]
        network.load_state_dict({k: v.float() for k, v in init.items()})
        logger.info("initialised from %s", config.init_weights)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    total_steps = config.epochs * max(1, int(np.ceil(len(samples) / config.batch_size)))
    scheduler: torch.optim.lr_scheduler.LRScheduler
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total_steps, eta_min=config.learning_rate * 0.02)
    elif config.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.learning_rate, total_steps=total_steps)
    else:
        raise ValueError(f"unknown schedule {config.schedule!r} (onecycle or cosine)")
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, lambda_ce=1.0)
    result = TrainResult(weights=out_dir / "levels.pt")
    start_epoch = 0
    checkpoint = out_dir / "checkpoint.pt"
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        network.load_state_dict(state["network"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"]) + 1
        result.losses = list(state["losses"])
        torch.set_rng_state(state["torch_rng"])
        logger.info("resuming from %s at epoch %d", checkpoint, start_epoch)
    generator = torch.Generator()
    generator.manual_seed(config.seed)
    loader = DataLoader(
        Dataset(list(samples), transform=train_transforms()),
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=0,
        generator=generator,
    )
    epochs: Any = range(start_epoch, config.epochs)
    if progress is not None:
        epochs = progress(epochs)
    t0 = time.monotonic()
    for epoch in epochs:
        generator.manual_seed(config.seed * 1000 + epoch)
        network.train()
        total, count = 0.0, 0
        for batch in loader:
            image = torch.as_tensor(batch["image"]).to(device)
            label = torch.as_tensor(batch["label"]).to(device)
            optimiser.zero_grad()
            loss = loss_fn(network(image), label)
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.item()) * image.shape[0]
            count += image.shape[0]
        result.losses.append(total / max(1, count))
        logger.info("epoch %d/%d loss %.4f", epoch + 1, config.epochs, result.losses[-1])
        if hasattr(epochs, "set_postfix"):
            epochs.set_postfix(loss=f"{result.losses[-1]:.4f}")
        torch.save(
            {
                "network": network.state_dict(),
                "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "losses": result.losses,
                "torch_rng": torch.get_rng_state(),
            },
            checkpoint,
        )
    network.cpu()
    export_weights(network.state_dict(), result.weights)
    result.seconds = time.monotonic() - t0
    return result
