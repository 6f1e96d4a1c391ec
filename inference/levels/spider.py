"""The SPIDER sagittal T2 slices (PNG conversion) as arrays, split by patient.

SPIDER: van der Graaf et al., "Lumbar spine segmentation in MR images: a dataset
and a public benchmark", Scientific Data 2024 (Zenodo 10159290), CC BY 4.0. The
PNG subset holds ``images/PPP_sliceNN.png`` (8-bit, anterior left, cranial up) and
``masks/PPP_sliceNN.png`` with 29 = disc, 76 = vertebra, 150 = spinal canal.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.labels import SagittalLabel
from inference.levels.errors import LevelsDataError

__all__ = [
    "SPIDER_CITATION",
    "SPIDER_MASK_VALUES",
    "SpiderSlice",
    "load_spider",
    "mask_to_labels",
    "split_patients",
]

logger = logging.getLogger(__name__)

SPIDER_CITATION = (
    "SPIDER lumbar spine MRI dataset: van der Graaf JW et al., 'Lumbar spine segmentation in MR "
    "images: a dataset and a public benchmark', Scientific Data 2024; Zenodo 10159290; CC BY 4.0"
)

#: PNG mask value -> :class:`SagittalLabel`.
SPIDER_MASK_VALUES: dict[int, SagittalLabel] = {
    29: SagittalLabel.DISC,
    76: SagittalLabel.VERTEBRA,
    150: SagittalLabel.CANAL,
}

_NAME = re.compile(r"^(?P<patient>\d+)_slice(?P<slice>\d+)\.png$")


@dataclass(frozen=True)
class SpiderSlice:
    """One SPIDER slice: image, labels and where it came from."""

    patient: str
    slice_number: int
    image: np.ndarray  #: ``(rows, columns)`` float32, as stored (0-255)
    labels: np.ndarray  #: ``(rows, columns)`` uint8 :class:`SagittalLabel` values
    path: Path


def mask_to_labels(mask: np.ndarray) -> np.ndarray:
    """Map a SPIDER PNG mask (0/29/76/150) to :class:`SagittalLabel` values.

    Raises
    ------
    LevelsDataError
        If the mask holds values other than 0, 29, 76 and 150.
    """
    values = set(np.unique(mask).tolist()) - {0}
    unknown = values - set(SPIDER_MASK_VALUES)
    if unknown:
        raise LevelsDataError(f"SPIDER mask holds unknown values {sorted(unknown)}")
    labels = np.zeros(mask.shape, dtype=np.uint8)
    for value, label in SPIDER_MASK_VALUES.items():
        labels[mask == value] = int(label)
    return labels


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"))
    except OSError as exc:
        raise LevelsDataError(f"cannot read {path}: {exc}") from exc


def load_spider(root: Path, patients: set[str] | None = None) -> list[SpiderSlice]:
    """Read the SPIDER PNG slices under ``root`` (``images/`` and ``masks/``).

    Parameters
    ----------
    root
        The data folder.
    patients
        Only these patient ids (``None``: all).

    Returns
    -------
    list of SpiderSlice
        Sorted by patient, then slice number.
    """
    images_dir, masks_dir = Path(root) / "images", Path(root) / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise LevelsDataError(f"{root} has no images/ and masks/ folders (SPIDER PNG layout)")
    slices: list[SpiderSlice] = []
    for path in sorted(images_dir.glob("*.png")):
        match = _NAME.match(path.name)
        if match is None:
            logger.warning("skipping %s: not named PPP_sliceNN.png", path.name)
            continue
        if patients is not None and match["patient"] not in patients:
            continue
        mask_path = masks_dir / path.name
        if not mask_path.is_file():
            raise LevelsDataError(f"{path.name} has no mask in {masks_dir}")
        image = _read_png(path).astype(np.float32)
        labels = mask_to_labels(_read_png(mask_path))
        if image.shape != labels.shape:
            raise LevelsDataError(f"{path.name}: image {image.shape} and mask {labels.shape} differ")
        slices.append(SpiderSlice(match["patient"], int(match["slice"]), image, labels, path))
    if not slices:
        raise LevelsDataError(f"no SPIDER slices found under {root}")
    return slices


def split_patients(patients: list[str], test_fraction: float = 0.2, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split patient ids (never slices) into training and held-out test sets.

    The split depends only on the sorted ids and ``seed``.

    Returns
    -------
    tuple
        ``(train_ids, test_ids)``, each sorted.
    """
    ids = sorted(set(patients))
    if len(ids) < 2:
        raise LevelsDataError("need at least two patients to split")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    n_test = max(1, int(round(test_fraction * len(ids))))
    test = sorted(ids[i] for i in order[:n_test])
    train = sorted(ids[i] for i in order[n_test:])
    return train, test
