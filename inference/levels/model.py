"""The sagittal segmentation network, split the MONAI way.

* preprocessing: :func:`normalise_intensity` and :func:`fit_to_canvas` turn one
  sagittal slice (canonical orientation: anterior left, cranial up) into a fixed
  ``CANVAS`` tensor, keeping the physical aspect ratio, and remember how to undo it;
* inferer: :func:`segment_slices` takes the network as an argument, so a stub can
  stand in for it in tests;
* post-processing: :func:`probabilities_to_labels` maps the output back onto the
  slice's own pixel grid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import UNet

from inference.labels import SagittalLabel
from inference.levels.errors import LevelsModelError
from inference.modelcard import ModelCard, WeightsError, bundled_weights, load_weights

__all__ = [
    "CANVAS",
    "CanvasFit",
    "LevelsModel",
    "build_network",
    "fit_to_canvas",
    "load_levels_model",
    "normalise_intensity",
    "probabilities_to_labels",
    "segment_slices",
]

logger = logging.getLogger(__name__)

#: Network input size ``(rows, columns)``; SPIDER's 640 x 512 slices scale by exactly 0.5.
CANVAS: tuple[int, int] = (320, 256)
N_CLASSES = len(SagittalLabel)
NETWORK_KWARGS: dict[str, Any] = {
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": N_CLASSES,
    "channels": (16, 32, 64, 128, 256),
    "strides": (2, 2, 2, 2),
    "num_res_units": 2,
}


def build_network() -> torch.nn.Module:
    """The 2D MONAI UNet used for sagittal disc / vertebra / canal segmentation."""
    return UNet(**NETWORK_KWARGS)


class LevelsModel(torch.nn.Module):
    """The level network with the card of its weights (a module, so it goes wherever a network goes)."""

    def __init__(self, network: torch.nn.Module, card: ModelCard | None = None) -> None:
        super().__init__()
        self.network = network
        self.card = card

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 4, *CANVAS)`` for inputs ``(N, 1, *CANVAS)``."""
        return self.network(x)  # type: ignore[no-any-return]


def load_levels_model(weights: Path | None = None, device: str | torch.device = "cpu") -> LevelsModel:
    """Load the level network with verified weights.

    Parameters
    ----------
    weights
        A ``.pt`` file with a card beside it; ``None`` loads the bundled demo weights.
    device
        Torch device for inference.

    Raises
    ------
    LevelsModelError
        When the weights are missing, fail their checksum, or do not fit the network.
    """
    path = bundled_weights("levels") if weights is None else Path(weights)
    dev = torch.device(device)
    try:
        state, card = load_weights(path, map_location=dev)
    except WeightsError as exc:
        raise LevelsModelError(f"cannot load the disc-level weights: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    network = build_network()
    try:
        network.load_state_dict({k: v.float() for k, v in state.items()})
    except (RuntimeError, KeyError, AttributeError) as exc:
        raise LevelsModelError(f"weights {path} do not fit the level network: {exc}") from exc
    model = LevelsModel(network, card)
    model.to(dev).eval()
    return model


def normalise_intensity(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Scale intensities so that the ``low``/``high`` percentiles map to 0/1 (clipped to [0, 1.5])."""
    img = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(img, [low, high])
    if hi <= lo:
        return np.zeros_like(img)
    return np.clip((img - lo) / (hi - lo), 0.0, 1.5).astype(np.float32)


@dataclass(frozen=True)
class CanvasFit:
    """How a slice was placed on the canvas: resized to ``size`` then placed at ``offset``."""

    source_shape: tuple[int, int]
    size: tuple[int, int]
    offset: tuple[int, int]


def plan_fit(shape: tuple[int, int], pixel_spacing: tuple[float, float] = (1.0, 1.0)) -> CanvasFit:
    """Largest physical-aspect-preserving size of a ``shape`` slice that fits :data:`CANVAS`."""
    rows, cols = int(shape[0]), int(shape[1])
    height, width = rows * float(pixel_spacing[0]), cols * float(pixel_spacing[1])
    scale = min(CANVAS[0] / height, CANVAS[1] / width)
    size = (max(1, min(CANVAS[0], int(round(height * scale)))), max(1, min(CANVAS[1], int(round(width * scale)))))
    offset = ((CANVAS[0] - size[0]) // 2, (CANVAS[1] - size[1]) // 2)
    return CanvasFit(source_shape=(rows, cols), size=size, offset=offset)


def fit_to_canvas(image: np.ndarray, pixel_spacing: tuple[float, float] = (1.0, 1.0)) -> tuple[torch.Tensor, CanvasFit]:
    """Resize a normalised slice onto the zero-padded canvas.

    Returns
    -------
    tuple
        ``(tensor of shape (1, *CANVAS), fit)``.
    """
    fit = plan_fit(image.shape, pixel_spacing)  # type: ignore[arg-type]
    tensor = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)[None, None]
    resized = F.interpolate(tensor, size=fit.size, mode="bilinear", align_corners=False, antialias=True)
    canvas = torch.zeros((1, 1, *CANVAS), dtype=torch.float32)
    r0, c0 = fit.offset
    canvas[..., r0 : r0 + fit.size[0], c0 : c0 + fit.size[1]] = resized
    return canvas[0], fit


def segment_slices(network: torch.nn.Module, batch: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Run the network on ``(N, 1, *CANVAS)`` inputs and return softmax probabilities.

    The network is an argument so a stub can stand in for it. No gradients.
    """
    network.eval()
    with torch.no_grad():
        logits = network(batch.to(device))
        return torch.softmax(logits.float(), dim=1).cpu()


def probabilities_to_labels(probabilities: torch.Tensor, fit: CanvasFit) -> tuple[np.ndarray, np.ndarray]:
    """Crop one ``(C, *CANVAS)`` probability map to the slice, resize it back, take the argmax.

    Returns
    -------
    tuple
        ``(labels (rows, cols) uint8, max probability (rows, cols) float32)``.
    """
    r0, c0 = fit.offset
    crop = probabilities[None, :, r0 : r0 + fit.size[0], c0 : c0 + fit.size[1]]
    full = F.interpolate(crop, size=fit.source_shape, mode="bilinear", align_corners=False)[0]
    confidence, labels = full.max(dim=0)
    return labels.numpy().astype(np.uint8), confidence.numpy().astype(np.float32)
