"""Run a segmentation network over canonical, resampled slices (MONAI inferer style).

The network is an argument of the call, never a global: a stub network stands
in for the real one in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from monai.inferers import SlidingWindowInferer

from inference.labels import AxialLabel

__all__ = ["LdhInferer"]

logger = logging.getLogger(__name__)

#: Channel order of a mirrored prediction put back: the facet on the mirrored image's
#: left is the patient's right one.
_SWAP = [int(label) for label in AxialLabel]
_SWAP[AxialLabel.FACET_LEFT], _SWAP[AxialLabel.FACET_RIGHT] = int(AxialLabel.FACET_RIGHT), int(AxialLabel.FACET_LEFT)


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
    flip_tta
        Also infer the left-right mirrored slices (canonical orientation: columns run to the
        patient's left), mirror the probabilities back with the two facet channels swapped,
        and average the two passes. Twice the network time.
    """

    def __init__(
        self,
        roi_size: Sequence[int] = (192, 192),
        sw_batch_size: int = 4,
        overlap: float = 0.25,
        amp: bool = True,
        flip_tta: bool = False,
    ) -> None:
        self.amp = amp
        self.flip_tta = flip_tta
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
            probs = self._softmax(inputs, network)
            if self.flip_tta:
                mirrored = self._softmax(torch.flip(inputs, dims=[-1]), network)
                probs = (probs + torch.flip(mirrored, dims=[-1])[:, _SWAP]) / 2
        return probs

    def _softmax(self, inputs: torch.Tensor, network: torch.nn.Module) -> torch.Tensor:
        logits = self._window(inputs, network)
        assert isinstance(logits, torch.Tensor)
        return torch.softmax(logits.float(), dim=1)
