"""Preprocessing of axial T2 slices: canonical orientation, resampling, intensity, augmentation.

Dictionary transforms with fixed keys (MONAI style):

``"image"``
    ``(1, rows, cols)`` float32 slice.
``"label"``
    ``(1, rows, cols)`` :class:`~inference.labels.AxialLabel` values (training only), or with
    soft labels ``(classes, rows, cols)`` shares of each pixel's area per class.
``"spacing"``
    ``(row spacing, column spacing)`` in mm of the slice as it is now.
``"native_shape"``
    ``(rows, cols)`` before resampling, set by :class:`ResampleToSpacingd`.

Slices are first turned to one canonical orientation (columns run towards the
patient's left, rows towards posterior) by :func:`canonical_orientation`, so the
network always sees the radiological convention whatever the scanner wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import (
    Compose,
    EnsureTyped,
    MapTransform,
    RandAdjustContrastd,
    RandAffined,
    RandBiasFieldd,
    RandCropByLabelClassesd,
    RandGaussianNoised,
    RandScaleIntensityd,
    SpatialPadd,
)

from inference.labels import AxialLabel

__all__ = [
    "IMAGE",
    "LABEL",
    "NATIVE_SHAPE",
    "SPACING",
    "NormalizeSliced",
    "ResampleToSpacingd",
    "SliceOrientation",
    "canonical_orientation",
    "inference_transforms",
    "resample_back",
    "stack_context",
    "train_transforms",
]

logger = logging.getLogger(__name__)

IMAGE, LABEL, SPACING, NATIVE_SHAPE = "image", "label", "spacing", "native_shape"

#: In-plane spacing (mm) the network works at.
TARGET_SPACING = 1.0
#: Training patch (pixels at :data:`TARGET_SPACING`).
PATCH = (128, 128)


@dataclass(frozen=True)
class SliceOrientation:
    """Flips and transpose that bring a slice to the canonical orientation (applied in that order)."""

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Canonical view of ``array`` (its last two axes are rows, columns)."""
        out = np.swapaxes(array, -1, -2) if self.transpose else array
        if self.flip_rows:
            out = np.flip(out, axis=-2)
        if self.flip_cols:
            out = np.flip(out, axis=-1)
        return np.ascontiguousarray(out)

    def invert(self, array: np.ndarray) -> np.ndarray:
        """Undo :meth:`apply`."""
        out = array
        if self.flip_cols:
            out = np.flip(out, axis=-1)
        if self.flip_rows:
            out = np.flip(out, axis=-2)
        if self.transpose:
            out = np.swapaxes(out, -1, -2)
        return np.ascontiguousarray(out)

    def spacing(self, spacing: Sequence[float]) -> tuple[float, float]:
        """``(row, column)`` spacing after :meth:`apply`."""
        sr, sc = float(spacing[0]), float(spacing[1])
        return (sc, sr) if self.transpose else (sr, sc)


def canonical_orientation(row_direction: Sequence[float], column_direction: Sequence[float]) -> SliceOrientation:
    """How to show an axial slice with columns towards the patient's left and rows towards posterior.

    Parameters
    ----------
    row_direction, column_direction
        LPS unit vectors along a row (increasing column index) and down a column
        (ImageOrientationPatient's two halves).
    """
    row = np.asarray(row_direction, dtype=float)
    col = np.asarray(column_direction, dtype=float)
    transpose = abs(col[0]) > abs(row[0])
    if transpose:
        row, col = col, row
    return SliceOrientation(transpose=bool(transpose), flip_rows=bool(col[1] < 0), flip_cols=bool(row[0] < 0))


def stack_context(slices: np.ndarray, context: int = 0, *, towards_head: bool = True) -> np.ndarray:
    """Each slice of a stack with its ``context`` neighbours either side, as channels.

    Parameters
    ----------
    slices
        ``(n, rows, cols)``: one stack, slices in their geometric order.
    context
        Neighbours each side (0: the slices alone, as a channel axis).
    towards_head
        Whether the slice index increases towards the patient's head
        (LPS z); the channels always run from the feet to the head, whichever way the scanner
        numbered the slices (``volume.affine[2, 0] >= 0``: the slice step points up).

    Returns
    -------
    numpy.ndarray
        ``(n, 1 + 2 * context, rows, cols)``, the slice itself in the middle channel; past the
        stack's ends its first or last slice is repeated.
    """
    if context < 0:
        raise ValueError(f"context must be 0 or more slices, not {context}")
    n = slices.shape[0]
    offsets = np.arange(-context, context + 1)
    if not towards_head:
        offsets = offsets[::-1]
    index = np.clip(np.arange(n)[:, None] + offsets[None, :], 0, n - 1)
    return np.ascontiguousarray(slices[index])


def _resize(tensor: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    batch = tensor.unsqueeze(0).float()
    if mode == "nearest":
        out = F.interpolate(batch, size=size, mode="nearest-exact")
    elif mode == "area":  # the share of each new pixel's area (bilinear with anti-aliasing when shrinking)
        out = F.interpolate(batch, size=size, mode="bilinear", antialias=True, align_corners=False)
    else:
        out = F.interpolate(batch, size=size, mode=mode, align_corners=False)
    return out[0]


class ResampleToSpacingd(MapTransform):
    """Resample ``(C, rows, cols)`` slices to a fixed in-plane spacing, keeping the field of view.

    Reads :data:`SPACING`, writes the new spacing back and the native shape to
    :data:`NATIVE_SHAPE` so that :func:`resample_back` can undo it.
    """

    def __init__(
        self,
        keys: Sequence[str],
        pixdim: float = TARGET_SPACING,
        modes: Sequence[str] = ("bilinear",),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.pixdim = float(pixdim)
        self.modes = list(modes) if len(modes) == len(self.keys) else [modes[0]] * len(self.keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        sr, sc = (float(v) for v in d[SPACING])
        first = torch.as_tensor(d[self.keys[0]])
        rows, cols = int(first.shape[-2]), int(first.shape[-1])
        size = (max(1, round(rows * sr / self.pixdim)), max(1, round(cols * sc / self.pixdim)))
        for key, mode in zip(self.key_iterator(d), self.modes):
            d[key] = _resize(torch.as_tensor(d[key]), size, mode)
        d[NATIVE_SHAPE] = (rows, cols)
        d[SPACING] = (rows * sr / size[0], cols * sc / size[1])
        return d


def resample_back(tensor: torch.Tensor, native_shape: Sequence[int]) -> torch.Tensor:
    """Resample ``(N, C, h, w)`` network outputs (probabilities or logits) back to the native grid."""
    size = (int(native_shape[0]), int(native_shape[1]))
    return F.interpolate(tensor.float(), size=size, mode="bilinear", align_corners=False)


class NormalizeSliced(MapTransform):
    """Scale intensities so that the ``low``-``high`` percentiles map to 0-1 (clipped), per slice.

    Robust to the scanner's arbitrary intensity scale and to bias fields that
    keep the percentiles' order.
    """

    def __init__(self, keys: Sequence[str], low: float = 0.5, high: float = 99.5) -> None:
        super().__init__(keys)
        self.low, self.high = low, high

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = torch.as_tensor(d[key]).float()
            lo, hi = torch.quantile(img.flatten(), torch.tensor([self.low / 100, self.high / 100])).tolist()
            scale = hi - lo if hi > lo else 1.0
            d[key] = ((img - lo) / scale).clamp(0.0, 1.0)
        return d


def inference_transforms(pixdim: float = TARGET_SPACING) -> Compose:
    """Resample and normalise one canonical slice dict (``image`` and ``spacing``)."""
    return Compose(
        [
            ResampleToSpacingd([IMAGE], pixdim=pixdim, modes=("bilinear",)),
            NormalizeSliced([IMAGE]),
            EnsureTyped([IMAGE], dtype=torch.float32, track_meta=False),
        ]
    )


def train_transforms(
    pixdim: float = TARGET_SPACING, patch: Sequence[int] = PATCH, augment: bool = True, soft: bool = False
) -> Compose:
    """Training transforms for slices already resampled and normalised (see :func:`inference_transforms`).

    Patches are drawn around every class (herniated material is small: it is
    sampled as often as the disc); no left-right flips, since they would swap
    the patient's sides that the facet labels carry.

    ``soft``: the label is ``(classes, h, w)`` float shares of each pixel's area (see
    :func:`inference.ldh.data.prepare_slices`): patches are centred on pixels holding any share of
    a class, the augmentation interpolates the shares bilinearly (not nearest), and the shares
    that padding leaves missing go to the background, so every pixel's shares sum to 1.
    """
    steps: list[Any] = [
        EnsureTyped([IMAGE, LABEL], track_meta=False),
        SpatialPadd([IMAGE, LABEL], spatial_size=tuple(patch)),
        RandCropByLabelClassesd(
            [IMAGE, LABEL],
            label_key=LABEL,
            spatial_size=tuple(patch),
            num_classes=len(AxialLabel),
            ratios=[1, 2, 4, 1, 1, 1, 1],
            num_samples=1,
            warn=False,
        ),
    ]
    if augment:
        steps += [
            RandAffined(
                [IMAGE, LABEL],
                prob=0.7,
                rotate_range=(0.3,),
                scale_range=(0.12, 0.12),
                translate_range=(6, 6),
                mode=("bilinear", "bilinear" if soft else "nearest"),
                padding_mode="zeros",
            ),
            RandBiasFieldd([IMAGE], prob=0.3, coeff_range=(0.0, 0.3)),
            RandAdjustContrastd([IMAGE], prob=0.3, gamma=(0.7, 1.5)),
            RandScaleIntensityd([IMAGE], prob=0.3, factors=0.15),
            RandGaussianNoised([IMAGE], prob=0.3, std=0.04),
        ]
    if soft:
        steps += [EnsureTyped([IMAGE, LABEL], dtype=torch.float32, track_meta=False), _FillBackgroundd([LABEL])]
    else:
        steps.append(EnsureTyped([IMAGE, LABEL], dtype=(torch.float32, torch.long), track_meta=False))
    return Compose(steps)


class _FillBackgroundd(MapTransform):
    """Give the share of a pixel's area that no class holds (zero padding) to the background."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            shares = torch.as_tensor(d[key]).clamp(0.0, 1.0)
            shares[AxialLabel.BACKGROUND] += (1.0 - shares.sum(dim=0)).clamp(min=0.0)
            d[key] = shares / shares.sum(dim=0, keepdim=True)
        return d
