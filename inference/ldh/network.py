"""The axial segmentation network: a small 2D residual U-Net from MONAI.

Why 2D and not 2.5D: lumbar axial T2 stacks are short (a handful of 3-4 mm
slices per disc), angled differently per disc and often with gaps, so the
neighbouring slice adds little that the in-plane context does not already show;
the MSU rule is read on single slices anyway. 2D keeps training on two CPU cores
within minutes and inference well under a second per study.
"""

from __future__ import annotations

import logging

import torch
from monai.networks.nets import UNet

from inference.labels import AxialLabel

__all__ = ["NETWORK_CONFIG", "build_network"]

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


def build_network(channels: tuple[int, ...] | None = None) -> torch.nn.Module:
    """A freshly initialised network with the bundled architecture (or other ``channels``)."""
    chans = tuple(channels) if channels is not None else tuple(NETWORK_CONFIG["channels"])  # type: ignore[arg-type]
    return UNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=len(AxialLabel),
        channels=chans,
        strides=(2,) * (len(chans) - 1),
        num_res_units=1,
        norm="batch",
    )
