"""Training slices from lumbar phantom studies (``inference/phantoms/CONTRACT.md`` layout).

The central slices of each study's ``sag_t2`` with their :class:`SagittalLabel`
labels, both brought to the canonical view (anterior left, cranial up). The
phantoms label the sacrum as vertebra; SPIDER's masks leave it unlabelled; the
junction rule accepts both.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from inference.errors import VolumeError
from inference.levels.errors import LevelsDataError
from inference.levels.orientation import canonical_view
from inference.levels.sagittal import candidate_slices

__all__ = ["phantom_sagittal_slices", "phantom_studies"]

logger = logging.getLogger(__name__)


def phantom_studies(root: Path) -> list[Path]:
    """Study folders under ``root`` (those with ``ground_truth.json``), sorted; ``root`` itself if it is one."""
    root = Path(root)
    if (root / "ground_truth.json").is_file():
        return [root]
    return sorted(p.parent for p in root.glob("*/ground_truth.json"))


def phantom_sagittal_slices(
    study: Path, n_slices: int = 3, series_key: str = "sag_t2"
) -> list[tuple[np.ndarray, np.ndarray, tuple[float, float]]]:
    """The ``n_slices`` central sagittal slices of a phantom study.

    Returns
    -------
    list of tuple
        ``(image, labels, (row, col) spacing in mm)`` in the canonical view.
    """
    from inference.volume import load_volumes

    study = Path(study)
    try:
        volumes = load_volumes(study / "dicom" / series_key)
        data = np.load(study / "labels" / f"{series_key}.npz")
        labels, uids = data["labels"], [str(u) for u in data["sop_instance_uids"]]
    except (OSError, KeyError, ValueError, VolumeError) as exc:
        raise LevelsDataError(f"phantom study {study} has no usable {series_key}: {exc}") from exc
    if not volumes:
        raise LevelsDataError(f"phantom study {study} has no {series_key} volume")
    volume = volumes[0]
    index = {uid: i for i, uid in enumerate(uids)}
    view = canonical_view(volume.affine, volume.array.shape[1:])
    spacing = view.spacing((float(volume.spacing[1]), float(volume.spacing[2])))
    out = []
    central = sorted(candidate_slices(volume.array.shape[0]), key=lambda k: abs(k - (volume.array.shape[0] - 1) / 2))
    for k in sorted(central[:n_slices]):
        uid = volume.sop_instance_uids[k]
        if uid not in index:
            raise LevelsDataError(f"{study}: slice {uid} has no label slice")
        out.append((view.apply(volume.array[k]), view.apply(labels[index[uid]]), spacing))
    return out
