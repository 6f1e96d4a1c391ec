"""The axial segmentation network: a small 2D residual U-Net from MONAI, 2.5D when asked.

2D or 2.5D: lumbar axial T2 stacks are short (a handful of 3-4 mm slices per
disc), angled differently per disc and often with gaps, and the MSU rule is read
on single slices; the first weights were 2D. But the slices either side of the
slice of maximal herniation hold its material in only part of their 3-4 mm
(partial volume), faint on the slice alone; the neighbouring slice may show
where it is. So the network can take each slice with ``context`` neighbours
either side in the same stack as extra input channels
(:func:`inference.ldh.transforms.stack_context`; the stack's ends repeat their
slice), recorded in the model card (``network.in_channels``,
``preprocessing.context_slices``); on the phantoms it gained
little (docs/ldh.md), and the bundled weights are 2D. Either
way it stays a 2D network: training on two CPU cores within minutes, inference
well under a second per study.
"""

from __future__ import annotations

import logging

import torch
from monai.networks.nets import UNet

from inference.labels import AxialLabel

__all__ = ["NETWORK_CONFIG", "build_network", "widen_input"]

logger = logging.getLogger(__name__)

#: Architecture of the bundled weights (recorded in the model card).
NETWORK_CONFIG: dict[str, object] = {
    "class": "monai.networks.nets.UNet",
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": len(AxialLabel),
    "channels": (16, 32, 64, 128),
    "strides": (2, 2, 2),
    "num_res_units": 1,
    "norm": "batch",
}


def build_network(channels: tuple[int, ...] | None = None, in_channels: int = 1) -> torch.nn.Module:
    """A freshly initialised network with the bundled architecture (or other ``channels``).

    ``in_channels`` is ``1 + 2 * context`` for a network that sees ``context`` neighbouring
    slices either side.
    """
    chans = tuple(channels) if channels is not None else tuple(NETWORK_CONFIG["channels"])  # type: ignore[arg-type]
    if in_channels < 1 or in_channels % 2 == 0:
        raise ValueError(f"in_channels must be 1 + 2 * context (odd, at least 1), not {in_channels}")
    return UNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=len(AxialLabel),
        channels=chans,
        strides=(2,) * (len(chans) - 1),
        num_res_units=1,
        norm="batch",
    )


def widen_input(state: dict[str, torch.Tensor], network: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state`` of a one-channel network fitted to ``network``'s wider input (2D to 2.5D).

    Each input convolution keeps its weights on the centre channel (the slice itself) and gets
    zeros on the neighbours' channels: the widened network starts out computing exactly what
    the one-channel network did, and training lets it learn what the neighbours add. Other
    tensors are returned as they are (a mismatch there is left to ``load_state_dict`` to report).
    """
    target = network.state_dict()
    out = dict(state)
    for key, value in state.items():
        want = target.get(key)
        if want is None or want.shape == value.shape or value.ndim != 4 or value.shape[1] != 1:
            continue
        if want.shape[0] == value.shape[0] and want.shape[2:] == value.shape[2:] and want.shape[1] % 2 == 1:
            wide = torch.zeros(want.shape, dtype=value.dtype)
            wide[:, want.shape[1] // 2] = value[:, 0]
            out[key] = wide
    return out
