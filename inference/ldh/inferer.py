"""Run a segmentation network over canonical, resampled slices (MONAI inferer style).

The network is an argument of the call, never a global: a stub network stands
in for the real one in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from monai.inferers import SlidingWindowInferer

__all__ = ["LdhInferer"]

logger = logging.getLogger(__name__)


class LdhInferer:
    """Softmax probabilities of a batch of slices, by sliding window, with AMP on CUDA.

    Parameters
    ----------
    roi_size
        Window in pixels (at the network's spacing); slices smaller than the
        window are padded, larger ones tiled with ``overlap`` and Gaussian weights.
    sw_batch_size
        Windows per forward pass.
    overlap
        Fraction of overlap between windows.
    amp
        Mixed precision on CUDA devices (ignored on CPU, which stays fp32 and deterministic).
    """

    def __init__(
        self,
        roi_size: Sequence[int] = (192, 192),
        sw_batch_size: int = 4,
        overlap: float = 0.25,
        amp: bool = True,
    ) -> None:
        self.amp = amp
        self._window = SlidingWindowInferer(
            roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, overlap=overlap, mode="gaussian"
        )

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module) -> torch.Tensor:
        """Probabilities ``(N, classes, h, w)`` for ``(N, 1, h, w)`` inputs, on the inputs' device.

        The network is put in eval mode; no gradients are kept.
        """
        network.eval()
        use_amp = self.amp and inputs.device.type == "cuda"
        with torch.inference_mode(), torch.autocast(device_type=inputs.device.type, enabled=use_amp):
            logits = self._window(inputs, network)
        assert isinstance(logits, torch.Tensor)
        return torch.softmax(logits.float(), dim=1)
