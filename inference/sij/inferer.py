"""Sliding-window inference with Gaussian blending and flip test-time augmentation.

The network is an argument of :meth:`SijInferer.__call__`, never an attribute built here,
so tests can pass a stub network with the same input/output contract
((B, 2, slices, rows, cols) in, (B, 6, slices, rows, cols) logits out).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from monai.inferers import sliding_window_inference

from inference.labels import SijLabel
from inference.sij.network import SOFTMAX_LABELS, to_probabilities

__all__ = ["SijInferer"]

logger = logging.getLogger(__name__)

_SWAP = list(range(len(SOFTMAX_LABELS) + 1))
_L, _R = SOFTMAX_LABELS.index(int(SijLabel.ILIUM_LEFT)), SOFTMAX_LABELS.index(int(SijLabel.ILIUM_RIGHT))
_SWAP[_L], _SWAP[_R] = _R, _L


@dataclass
class SijInferer:
    """Turn a preprocessed image into class probabilities.

    Parameters
    ----------
    patch_size:
        Sliding-window ROI (slices, rows, cols).
    overlap:
        Window overlap, one number or one per axis (slice, row, col) (the source study used 0.5;
        0.25 keeps CPU inference within seconds; v0.4.0 uses none across slices, see docs/sij.md).
    flip_tta:
        Average with the mirrored (left-right, ilium channels swapped back) and the
        cranio-caudally flipped passes.
    sw_batch_size:
        Windows per forward pass.
    """

    patch_size: tuple[int, int, int] = (16, 192, 192)
    overlap: float | tuple[float, float, float] = 0.25
    flip_tta: bool = True
    sw_batch_size: int = 4

    def _single(self, image: torch.Tensor, network: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        logits = sliding_window_inference(
            image,
            roi_size=self.patch_size,
            sw_batch_size=self.sw_batch_size,
            predictor=network,
            overlap=self.overlap,
            mode="gaussian",
            padding_mode="constant",
        )
        return to_probabilities(torch.as_tensor(logits))

    def __call__(self, image: torch.Tensor, network: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Probabilities (B, 6, slices, rows, cols): 5 softmax classes then oedema.

        Parameters
        ----------
        image:
            Preprocessed input (B, 2, slices, rows, cols).
        network:
            Any callable with the network's contract; called under ``torch.no_grad``.
        """
        with torch.no_grad():
            probs = self._single(image, network)
            if not self.flip_tta:
                return probs
            mirrored = torch.flip(self._single(torch.flip(image, dims=[-1]), network), dims=[-1])[:, _SWAP]
            upside = torch.flip(self._single(torch.flip(image, dims=[-2]), network), dims=[-2])
            return (probs + mirrored + upside) / 3.0
