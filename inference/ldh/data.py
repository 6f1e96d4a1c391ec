"""Labelled lumbar studies on disk: phantoms, or a site's own data in the same layout.

Layout of one study folder (the phantom contract, inference/phantoms/CONTRACT.md)::

    <study>/dicom/ax_t2/*.dcm        axial T2 (one or several stacks; "<n>_ax_t2" also found)
    <study>/dicom/sag_t2/*.dcm       sagittal T2 (optional, for levels)
    <study>/labels/ax_t2.npz         "labels" (n, rows, cols) uint8 AxialLabel values and
                                     "sop_instance_uids" (n,) naming the slice of each
                                     (or labels/ax_t2.npy with the UIDs in ground_truth.json's
                                     "series" entry for ax_t2, as the phantom generator writes)
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
import torch.nn.functional as F

from inference.errors import VolumeError
from inference.labels import AxialLabel
from inference.ldh.errors import LdhDataError
from inference.ldh.transforms import (
    IMAGE,
    LABEL,
    SPACING,
    NormalizeSliced,
    ResampleToSpacingd,
    canonical_orientation,
    stack_context,
)

__all__ = ["SHARE_STEPS", "LabelledStudy", "find_studies", "load_study", "normalise_discs", "prepare_slices"]

logger = logging.getLogger(__name__)

AXIAL_KEY, SAGITTAL_KEY = "ax_t2", "sag_t2"

#: soft labels are stored as uint8 multiples of 1 / SHARE_STEPS of a pixel's area
SHARE_STEPS = 255


@dataclass
class LabelledStudy:
    """One study: its axial stacks with their label slices, the sagittal volume, the ground truth."""

    path: Path
    axial: list[Any]  #: :class:`inference.volume.Volume` per axial stack
    labels: list[np.ndarray]  #: ``(slices, rows, cols)`` uint8 per stack, aligned with ``axial``
    sagittal: Any | None
    ground_truth: dict[str, Any]


def _series_entries(truth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``series`` of a ground truth as ``{key: entry}`` (a mapping in the contract, a list with ``role`` in practice)."""
    series = truth.get("series", {})
    if isinstance(series, dict):
        return {str(k): dict(v) for k, v in series.items()}
    return {str(e.get("role")): dict(e) for e in series if isinstance(e, dict)}


def _series_dir(path: Path, key: str, truth: dict[str, Any]) -> Path | None:
    entry = _series_entries(truth).get(key, {})
    candidates = [path / str(entry["folder"])] if "folder" in entry else []
    candidates += [path / "dicom" / key, *sorted((path / "dicom").glob(f"*_{key}"))]
    return next((c for c in candidates if c.is_dir()), None)


def _read_truth(path: Path) -> dict[str, Any]:
    gt_path = path / "ground_truth.json"
    if not gt_path.is_file():
        return {}
    try:
        data = json.loads(gt_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LdhDataError(f"{gt_path}: unreadable ({exc})") from exc
    return dict(data)


def normalise_discs(truth: dict[str, Any]) -> list[dict[str, Any]]:
    """The ground truth's ``discs`` with the contract's keys.

    Accepts ``zone``/``side``/``max_slice_sop_instance_uid``/``axial_stack`` (the
    contract) or ``msu_zone``/``msu_side``/``sop_instance_uid`` (levels imaged
    by an axial stack carry a slice UID).
    """
    out = []
    for disc in truth.get("discs", []):
        d = dict(disc)
        d.setdefault("zone", disc.get("msu_zone"))
        d.setdefault("side", disc.get("msu_side"))
        uid = disc.get("max_slice_sop_instance_uid", disc.get("sop_instance_uid"))
        d["max_slice_sop_instance_uid"] = uid if int(disc.get("msu_size", 0)) > 0 else None
        if "axial_stack" not in d:
            d["axial_stack"] = 0 if disc.get("sop_instance_uid") or disc.get("slice_index") is not None else None
        out.append(d)
    return out


def find_studies(roots: Iterable[Path]) -> list[Path]:
    """Study folders (holding ``dicom/ax_t2`` or ``dicom/<n>_ax_t2``) under or at each root, sorted."""
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        hits = [p for p in root.glob("**/dicom/*") if p.is_dir() and (p.name == AXIAL_KEY or p.name.endswith("_" + AXIAL_KEY))]
        found.update(p.parent.parent for p in hits)
    return sorted(found)


def _read_labels(path: Path, truth: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    npz_path = path / "labels" / f"{AXIAL_KEY}.npz"
    npy_path = path / "labels" / f"{AXIAL_KEY}.npy"
    try:
        if npz_path.is_file():
            with np.load(npz_path) as npz:
                return np.asarray(npz["labels"]), [str(u) for u in npz["sop_instance_uids"]]
        uids = _series_entries(truth).get(AXIAL_KEY, {}).get("sop_instance_uids")
        if npy_path.is_file() and uids:
            return np.load(npy_path), [str(u) for u in uids]
    except (OSError, KeyError, ValueError) as exc:
        raise LdhDataError(f"{path}: unreadable axial labels ({exc})") from exc
    raise LdhDataError(f"{path}: no axial labels (labels/{AXIAL_KEY}.npz, or .npy with the SOP UIDs in ground_truth.json)")


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
    truth = _read_truth(path)
    ax_dir = _series_dir(path, AXIAL_KEY, truth)
    if ax_dir is None:
        raise LdhDataError(f"{path}: no axial T2 folder (dicom/{AXIAL_KEY})")
    axial = _load_volumes(ax_dir)
    if not axial:
        raise LdhDataError(f"{path}: no axial T2 images in {ax_dir}")
    sag_dir = _series_dir(path, SAGITTAL_KEY, truth)
    sagittal_volumes = _load_volumes(sag_dir) if sag_dir is not None else []
    sagittal = max(sagittal_volumes, key=lambda v: v.array.shape[0]) if sagittal_volumes else None
    labels: list[np.ndarray] = []
    if with_labels:
        label_array, uids = _read_labels(path, truth)
        index = {uid: i for i, uid in enumerate(uids)}
        for volume in axial:
            missing = [u for u in volume.sop_instance_uids if u not in index]
            if missing:
                raise LdhDataError(f"{path}: no label slice for SOP Instance UID {missing[0]}")
            stack = np.stack([label_array[index[u]] for u in volume.sop_instance_uids])
            if stack.shape != volume.array.shape:
                raise LdhDataError(f"{path}: label shape {stack.shape} differs from the images {volume.array.shape}")
            labels.append(stack.astype(np.uint8))
    if truth:
        truth = {**truth, "discs": normalise_discs(truth)}
    return LabelledStudy(path=path, axial=axial, labels=labels, sagittal=sagittal, ground_truth=truth)


def prepare_slices(
    studies: Sequence[LabelledStudy], pixdim: float = 1.0, context: int = 0, *, soft: bool = False
) -> list[dict[str, Any]]:
    """Every labelled axial slice, canonically oriented, resampled to ``pixdim`` mm and normalised.

    ``context`` neighbouring slices of the same stack either side come along as extra image
    channels (:func:`~inference.ldh.transforms.stack_context`).

    ``soft`` keeps what the resampling would otherwise round away: instead of the label nearest
    each new pixel's centre, every class's share of the new pixel's area (``(classes, h, w)``,
    in steps of 1 / :data:`SHARE_STEPS` to keep the slices small). On the 0.75 mm grid a network that reproduced the
    nearest labels perfectly would, resampled back, match the native herniation masks only at
    a mean stack IoU of 0.88 (0.975 with the shares; selection phantoms, docs/ldh.md).

    Returns
    -------
    list of dict
        ``{"image": (1 + 2 * context, h, w) float32 tensor, "label": (1, h, w) uint8 tensor
        (``soft``: ``(classes, h, w)`` uint8 shares x :data:`SHARE_STEPS`), "study": str}``.
    """
    resample = ResampleToSpacingd([IMAGE, LABEL], pixdim=pixdim, modes=("bilinear", "area" if soft else "nearest"))
    normalise = NormalizeSliced([IMAGE])
    out = []
    for study in studies:
        for volume, labels in zip(study.axial, study.labels):
            orient = canonical_orientation(volume.row_direction, volume.column_direction)
            spacing = orient.spacing((float(volume.spacing[1]), float(volume.spacing[2])))
            images = stack_context(orient.apply(np.asarray(volume.array, dtype=np.float32)), context,
                                   towards_head=bool(volume.affine[2, 0] >= 0))
            labs = orient.apply(labels)
            for img, lab in zip(images, labs):
                if soft:
                    target = F.one_hot(torch.from_numpy(lab.astype(np.int64)), len(AxialLabel)).permute(2, 0, 1).float()
                else:
                    target = torch.from_numpy(lab[None].astype(np.float32))
                d = resample({IMAGE: torch.from_numpy(img), LABEL: target, SPACING: spacing})
                d = normalise(d)
                label = torch.as_tensor(d[LABEL])
                out.append(
                    {
                        IMAGE: torch.as_tensor(d[IMAGE]).float(),
                        LABEL: (label.clamp(0.0, 1.0) * SHARE_STEPS if soft else label).round().to(torch.uint8),
                        "study": str(study.path.name),
                    }
                )
    return out
