"""Dictionary preprocessing of the SIJ pipeline, with fixed keys.

Input dictionary (what :mod:`inference.sij.data` and the pipeline build):

``"t1"``
    semi-coronal T1, float array (slices, rows, cols);
``"stir"``
    STIR on the same grid, or ``None``;
``"spacing"``
    (slice, row, col) spacing in mm;
``"t1_labels"`` / ``"stir_labels"`` (training only)
    :class:`inference.labels.SijLabel` maps of the two series (``stir_labels`` may be ``None``).

Output keys: ``"image"`` (2, slices, rows, cols) float32, ``"label"`` (1, ...) holding softmax
class indices (positions in :data:`inference.sij.network.SOFTMAX_LABELS`), ``"oedema"`` (1, ...)
0/1 and ``"oedema_valid"`` (1.0 when a STIR label was given, so the loss can ignore the
oedema channel otherwise).

Resampling is **in-plane only** (to ``spacing_mm``, 2 mm by default: the source study used 1 mm, we trade
resolution for CPU time): the thick slices are
kept as acquired, so every output slice is one source slice and masks map back to SOP
Instance UIDs without interpolation across slices.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import (
    Compose,
    MapTransform,
    NormalizeIntensityd,
    RandCropByLabelClassesd,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
    Randomizable,
    SpatialPadd,
)

from inference.labels import SijLabel
from inference.sij.network import SOFTMAX_LABELS

__all__ = [
    "PrepareSijd",
    "RandFlipLeftRightd",
    "ResampleInPlaned",
    "inference_transforms",
    "resample_in_plane",
    "training_transforms",
]

logger = logging.getLogger(__name__)

DEFAULT_SPACING_MM = 2.0
_LEFT_INDEX = SOFTMAX_LABELS.index(int(SijLabel.ILIUM_LEFT))
_RIGHT_INDEX = SOFTMAX_LABELS.index(int(SijLabel.ILIUM_RIGHT))


def _label_to_index(labels: np.ndarray) -> np.ndarray:
    lut = np.zeros(256, dtype=np.int64)
    for index, value in enumerate(SOFTMAX_LABELS):
        lut[value] = index
    return lut[np.asarray(labels, dtype=np.uint8)]


class PrepareSijd(MapTransform):
    """Stack T1 and STIR into ``"image"``; turn label maps into ``"label"`` and ``"oedema"``."""

    def __init__(self) -> None:
        super().__init__(keys=["t1"], allow_missing_keys=True)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        t1 = np.asarray(d["t1"], dtype=np.float32)
        stir = d.get("stir")
        stir_arr = np.zeros_like(t1) if stir is None else np.asarray(stir, dtype=np.float32)
        if stir_arr.shape != t1.shape:
            raise ValueError(f"STIR shape {stir_arr.shape} differs from T1 shape {t1.shape}")
        d["image"] = torch.from_numpy(np.stack([t1, stir_arr]))
        if d.get("t1_labels") is not None:
            labels = np.asarray(d["t1_labels"])
            d["label"] = torch.from_numpy(_label_to_index(labels)[None].astype(np.float32))
            stir_labels = d.get("stir_labels")
            if stir_labels is None:
                d["oedema"] = torch.zeros((1, *t1.shape), dtype=torch.float32)
                d["oedema_valid"] = torch.tensor(0.0)
            else:
                oedema = np.asarray(stir_labels) == SijLabel.OEDEMA
                d["oedema"] = torch.from_numpy(oedema[None].astype(np.float32))
                d["oedema_valid"] = torch.tensor(1.0)
        return d


def resample_in_plane(tensor: torch.Tensor, size: tuple[int, int], *, mode: str) -> torch.Tensor:
    """Resize (channels, slices, rows, cols) to ``size`` in-plane; slices untouched.

    ``mode`` is ``"bilinear"`` (images, probabilities) or ``"nearest"`` (labels).
    """
    t = torch.as_tensor(tensor)
    c, k = t.shape[0], t.shape[1]
    planes = t.reshape(c * k, 1, t.shape[2], t.shape[3]).float()
    if mode == "nearest":
        out = F.interpolate(planes, size=size, mode="nearest-exact")
    else:
        out = F.interpolate(planes, size=size, mode="bilinear", align_corners=False, antialias=False)
    return out.reshape(c, k, size[0], size[1])


def in_plane_size(shape: Sequence[int], spacing: Sequence[float], target_mm: float) -> tuple[int, int]:
    """The in-plane grid size of a (slices, rows, cols) volume resampled to ``target_mm``."""
    return (
        max(1, int(round(shape[1] * float(spacing[1]) / target_mm))),
        max(1, int(round(shape[2] * float(spacing[2]) / target_mm))),
    )


class ResampleInPlaned(MapTransform):
    """Resample ``image`` (bilinear) and ``label``/``oedema`` (nearest) to an in-plane spacing."""

    def __init__(self, spacing_mm: float = DEFAULT_SPACING_MM) -> None:
        super().__init__(keys=["image"], allow_missing_keys=True)
        self.spacing_mm = float(spacing_mm)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = torch.as_tensor(d["image"])
        size = in_plane_size(image.shape[1:], d["spacing"], self.spacing_mm)
        d["native_shape"] = tuple(int(s) for s in image.shape[1:])
        d["image"] = resample_in_plane(image, size, mode="bilinear")
        for key in ("label", "oedema"):
            if key in d:
                d[key] = resample_in_plane(torch.as_tensor(d[key]), size, mode="nearest")
        return d


class RandFlipLeftRightd(Randomizable, MapTransform):
    """Mirror across the columns and swap the left/right ilium labels so anatomy stays true."""

    def __init__(self, prob: float = 0.5) -> None:
        MapTransform.__init__(self, keys=["image"], allow_missing_keys=True)
        self.prob = prob
        self._do = False

    def randomize(self, data: Any = None) -> None:
        self._do = bool(self.R.random() < self.prob)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        self.randomize()
        d = dict(data)
        if not self._do:
            return d
        d["image"] = torch.flip(torch.as_tensor(d["image"]), dims=[-1])
        if "oedema" in d:
            d["oedema"] = torch.flip(torch.as_tensor(d["oedema"]), dims=[-1])
        if "label" in d:
            label = torch.flip(torch.as_tensor(d["label"]), dims=[-1]).clone()
            left = label == _LEFT_INDEX
            label[label == _RIGHT_INDEX] = _LEFT_INDEX
            label[left] = _RIGHT_INDEX
            d["label"] = label
        return d


def inference_transforms(spacing_mm: float = DEFAULT_SPACING_MM) -> Compose:
    """Preprocessing at inference: stack, resample in-plane, z-score each channel."""
    return Compose(
        [PrepareSijd(), ResampleInPlaned(spacing_mm), NormalizeIntensityd(keys="image", channel_wise=True)]
    )


def training_transforms(
    patch_size: tuple[int, int, int],
    spacing_mm: float = DEFAULT_SPACING_MM,
    *,
    samples: int = 2,
    ratios: Sequence[float] = (0.1, 0.7, 0.1, 0.05, 0.05),
) -> tuple[Compose, Compose]:
    """``(deterministic part, random part)`` of the training preprocessing.

    The deterministic part is cached per case; the random part crops ``samples`` patches
    (centred on each softmax class in ``ratios``; classes absent from a case are skipped),
    mirrors and jitters intensities.
    """
    fixed = inference_transforms(spacing_mm)
    keys = ["image", "label", "oedema"]
    rand = Compose(
        [
            SpatialPadd(keys=keys, spatial_size=patch_size),
            RandCropByLabelClassesd(
                keys=keys,
                label_key="label",
                spatial_size=patch_size,
                num_classes=len(SOFTMAX_LABELS),
                ratios=[float(r) for r in ratios],
                num_samples=samples,
                warn=False,
            ),
            RandFlipLeftRightd(prob=0.5),
            RandScaleIntensityd(keys="image", factors=0.15, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.15, prob=0.5),
            RandGaussianNoised(keys="image", std=0.05, prob=0.3),
        ]
    )
    return fixed, rand
