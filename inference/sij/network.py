"""The anisotropic 3D U-Net of the SIJ pipeline (MONAI DynUNet).

Tensors are laid out ``(batch, channel, slice, row, col)``: the first spatial axis is the
thick semi-coronal slice direction. As in the source study's network, the first levels use
in-plane kernels (1 x 3 x 3) and in-plane down-sampling (1 x 2 x 2) so that thick slices are
not blurred together; the deeper levels see 3 x 3 x 3 and down-sample across slices once.
Residual blocks and instance norm as in the study; deep supervision and attention gates are
left out to keep the model CPU-trainable on two cores (a few minutes per epoch).

Inputs (channels): semi-coronal T1, semi-coronal STIR (zeros when the study has none).
Outputs (channels): five softmax classes (:data:`SOFTMAX_LABELS`, background, fat metaplasia,
sacrum, left ilium, right ilium) and one sigmoid channel for bone-marrow oedema, which may
overlap fat metaplasia.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from monai.networks.nets import DynUNet

from inference.labels import SijLabel

__all__ = ["IN_CHANNELS", "OUT_CHANNELS", "SOFTMAX_LABELS", "NetworkConfig", "build_network", "to_probabilities"]

logger = logging.getLogger(__name__)

IN_CHANNELS = 2
#: Label value of each softmax channel.
SOFTMAX_LABELS: tuple[int, ...] = (
    int(SijLabel.BACKGROUND),
    int(SijLabel.FAT_METAPLASIA),
    int(SijLabel.SACRUM),
    int(SijLabel.ILIUM_LEFT),
    int(SijLabel.ILIUM_RIGHT),
)
OEDEMA_CHANNEL = len(SOFTMAX_LABELS)
OUT_CHANNELS = len(SOFTMAX_LABELS) + 1


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture hyper-parameters, stored in the model card so weights rebuild their network."""

    filters: tuple[int, ...] = (8, 16, 32, 64)
    kernels: tuple[tuple[int, int, int], ...] = ((1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3))
    strides: tuple[tuple[int, int, int], ...] = ((1, 1, 1), (1, 2, 2), (1, 2, 2), (2, 2, 2))
    dropout: float = 0.1
    res_block: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        data = asdict(self)
        data["kernels"] = [list(k) for k in self.kernels]
        data["strides"] = [list(s) for s in self.strides]
        data["filters"] = list(self.filters)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(
            filters=tuple(int(f) for f in data["filters"]),
            kernels=tuple((int(a), int(b), int(c)) for a, b, c in data["kernels"]),
            strides=tuple((int(a), int(b), int(c)) for a, b, c in data["strides"]),
            dropout=float(data.get("dropout", 0.0)),
            res_block=bool(data.get("res_block", True)),
        )

    @property
    def divisor(self) -> tuple[int, int, int]:
        """Patch sizes must be multiples of this, per axis (the total down-sampling)."""
        out = [1, 1, 1]
        for stride in self.strides:
            out = [o * s for o, s in zip(out, stride)]
        return (out[0], out[1], out[2])


def build_network(config: NetworkConfig | None = None) -> DynUNet:
    """The DynUNet described by ``config`` (default: the bundled demo architecture)."""
    cfg = config or NetworkConfig()
    if not (len(cfg.filters) == len(cfg.kernels) == len(cfg.strides)):
        raise ValueError("filters, kernels and strides must have one entry per level")
    return DynUNet(
        spatial_dims=3,
        in_channels=IN_CHANNELS,
        out_channels=OUT_CHANNELS,
        kernel_size=[list(k) for k in cfg.kernels],
        strides=[list(s) for s in cfg.strides],
        upsample_kernel_size=[list(s) for s in cfg.strides[1:]],
        filters=list(cfg.filters),
        dropout=cfg.dropout,
        norm_name=("INSTANCE", {"affine": True}),
        res_block=cfg.res_block,
    )


def to_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the class channels, sigmoid on the oedema channel."""
    return torch.cat(
        [torch.softmax(logits[:, :OEDEMA_CHANNEL], dim=1), torch.sigmoid(logits[:, OEDEMA_CHANNEL:])], dim=1
    )
