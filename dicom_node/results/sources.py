"""Find the source image datasets that a result's slices refer to.

The encoders receive either pydicom datasets (full images or headers) or
:class:`inference.volume.Volume` objects (whose ``headers`` are the datasets of
their frames) and look slices up by SOP Instance UID.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from dicom_node.results.errors import ResultsInputError

__all__ = ["SourceIndex"]

logger = logging.getLogger(__name__)


class SourceIndex:
    """Source datasets by SOP Instance UID.

    Parameters
    ----------
    sources
        Datasets, or objects with a ``headers`` list of datasets (volumes), in any mix.
    """

    def __init__(self, sources: Iterable[Any]) -> None:
        self._by_uid: dict[str, Dataset] = {}
        self._pixels: dict[str, tuple[Any, int]] = {}
        for item in sources:
            datasets: Sequence[Dataset] = [item] if isinstance(item, Dataset) else list(getattr(item, "headers", []))
            if not isinstance(item, Dataset) and hasattr(item, "array"):
                for k, uid in enumerate(getattr(item, "sop_instance_uids", [])):
                    self._pixels.setdefault(str(uid), (item, k))
            for ds in datasets:
                uid = str(ds.get("SOPInstanceUID", ""))
                if uid:
                    self._by_uid.setdefault(uid, ds)

    def __len__(self) -> int:
        return len(self._by_uid)

    def __contains__(self, uid: object) -> bool:
        return uid in self._by_uid

    def get(self, sop_instance_uid: str) -> Dataset:
        """The dataset of ``sop_instance_uid``.

        Raises
        ------
        ResultsInputError
            When no source has that UID.
        """
        try:
            return self._by_uid[sop_instance_uid]
        except KeyError:
            raise ResultsInputError(
                f"source image {sop_instance_uid} is not among the {len(self)} source datasets given"
            ) from None

    def pixels(self, sop_instance_uid: str) -> np.ndarray:
        """The 2D pixel array of a source slice (from its volume, else the dataset's Pixel Data).

        Raises
        ------
        ResultsInputError
            When neither a volume nor a dataset with pixel data holds the slice.
        """
        if sop_instance_uid in self._pixels:
            volume, k = self._pixels[sop_instance_uid]
            return np.asarray(volume.array[k], dtype=np.float32)
        ds = self.get(sop_instance_uid)
        if "PixelData" not in ds:
            raise ResultsInputError(f"source image {sop_instance_uid} was given without pixel data")
        return np.asarray(ds.pixel_array, dtype=np.float32)

    def datasets(self, uids: Iterable[str]) -> list[Dataset]:
        """The datasets of ``uids`` (each once, first-seen order)."""
        seen: dict[str, Dataset] = {}
        for uid in uids:
            if uid not in seen:
                seen[uid] = self.get(uid)
        return list(seen.values())
