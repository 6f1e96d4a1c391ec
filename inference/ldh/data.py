"""Labelled lumbar studies on disk: phantoms, or a site's own data in the same layout.

Layout of one study folder (the phantom contract, inference/phantoms/CONTRACT.md)::

    <study>/dicom/ax_t2/*.dcm        axial T2 (one or several stacks)
    <study>/dicom/sag_t2/*.dcm       sagittal T2 (optional, for levels)
    <study>/labels/ax_t2.npz         "labels" (n, rows, cols) uint8 AxialLabel values and
                                     "sop_instance_uids" (n,) naming the slice of each
    <study>/ground_truth.json        per disc level "msu_size", "zone", "side" (evaluation only)

A site labels its own images the same way: masks keyed by SOP Instance UID, so the
order of the files does not matter.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference.errors import VolumeError
from inference.ldh.errors import LdhDataError
from inference.ldh.transforms import (
    IMAGE,
    LABEL,
    SPACING,
    NormalizeSliced,
    ResampleToSpacingd,
    canonical_orientation,
)

__all__ = ["LabelledStudy", "find_studies", "load_study", "prepare_slices"]

logger = logging.getLogger(__name__)

AXIAL_KEY, SAGITTAL_KEY = "ax_t2", "sag_t2"


@dataclass
class LabelledStudy:
    """One study: its axial stacks with their label slices, the sagittal volume, the ground truth."""

    path: Path
    axial: list[Any]  #: :class:`inference.volume.Volume` per axial stack
    labels: list[np.ndarray]  #: ``(slices, rows, cols)`` uint8 per stack, aligned with ``axial``
    sagittal: Any | None
    ground_truth: dict[str, Any]


def find_studies(roots: Iterable[Path]) -> list[Path]:
    """Study folders (holding ``dicom/ax_t2``) under or at each root, sorted."""
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        if (root / "dicom" / AXIAL_KEY).is_dir():
            found.add(root)
        else:
            found.update(p.parent.parent for p in root.glob(f"**/dicom/{AXIAL_KEY}") if p.is_dir())
    return sorted(found)


def _load_volumes(folder: Path) -> list[Any]:
    from inference.volume import load_volumes  # imported late: the reader pulls in the decoders

    try:
        return list(load_volumes(folder))
    except VolumeError as exc:
        raise LdhDataError(f"cannot read {folder}: {exc}") from exc


def load_study(path: Path, *, with_labels: bool = True) -> LabelledStudy:
    """Read one study folder (see the module docstring).

    Raises
    ------
    LdhDataError
        Missing axial series, labels missing for a slice, or label shapes that differ from the images.
    """
    path = Path(path)
    axial = _load_volumes(path / "dicom" / AXIAL_KEY)
    if not axial:
        raise LdhDataError(f"{path}: no axial T2 images in dicom/{AXIAL_KEY}")
    sag_dir = path / "dicom" / SAGITTAL_KEY
    sagittal_volumes = _load_volumes(sag_dir) if sag_dir.is_dir() else []
    sagittal = max(sagittal_volumes, key=lambda v: v.array.shape[0]) if sagittal_volumes else None
    labels: list[np.ndarray] = []
    if with_labels:
        npz_path = path / "labels" / f"{AXIAL_KEY}.npz"
        try:
            with np.load(npz_path) as npz:
                label_array = np.asarray(npz["labels"])
                uids = [str(u) for u in npz["sop_instance_uids"]]
        except (OSError, KeyError, ValueError) as exc:
            raise LdhDataError(f"{npz_path}: unreadable labels ({exc})") from exc
        index = {uid: i for i, uid in enumerate(uids)}
        for volume in axial:
            missing = [u for u in volume.sop_instance_uids if u not in index]
            if missing:
                raise LdhDataError(f"{npz_path}: no label slice for SOP Instance UID {missing[0]}")
            stack = np.stack([label_array[index[u]] for u in volume.sop_instance_uids])
            if stack.shape != volume.array.shape:
                raise LdhDataError(f"{npz_path}: label shape {stack.shape} differs from the images {volume.array.shape}")
            labels.append(stack.astype(np.uint8))
    gt_path = path / "ground_truth.json"
    truth = json.loads(gt_path.read_text(encoding="utf-8")) if gt_path.is_file() else {}
    return LabelledStudy(path=path, axial=axial, labels=labels, sagittal=sagittal, ground_truth=truth)


def prepare_slices(studies: Sequence[LabelledStudy], pixdim: float = 1.0) -> list[dict[str, Any]]:
    """Every labelled axial slice, canonically oriented, resampled to ``pixdim`` mm and normalised.

    Returns
    -------
    list of dict
        ``{"image": (1, h, w) float32 tensor, "label": (1, h, w) uint8 tensor, "study": str}``.
    """
    resample = ResampleToSpacingd([IMAGE, LABEL], pixdim=pixdim, modes=("bilinear", "nearest"))
    normalise = NormalizeSliced([IMAGE])
    out = []
    for study in studies:
        for volume, labels in zip(study.axial, study.labels):
            orient = canonical_orientation(volume.row_direction, volume.column_direction)
            spacing = orient.spacing((float(volume.spacing[1]), float(volume.spacing[2])))
            images = orient.apply(np.asarray(volume.array, dtype=np.float32))
            labs = orient.apply(labels)
            for img, lab in zip(images, labs):
                d = resample({IMAGE: torch.from_numpy(img[None].copy()), LABEL: torch.from_numpy(lab[None].astype(np.float32)), SPACING: spacing})
                d = normalise(d)
                out.append(
                    {
                        IMAGE: torch.as_tensor(d[IMAGE]).float(),
                        LABEL: torch.as_tensor(d[LABEL]).round().to(torch.uint8),
                        "study": str(study.path.name),
                    }
                )
    return out
