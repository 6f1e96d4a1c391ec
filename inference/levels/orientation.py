"""Bring a sagittal slice into the canonical display orientation, and back.

Canonical (SPIDER's, and the network's): rows run cranial to caudal (-z in LPS),
columns run anterior to posterior (+y). Pure numpy on the volume's affine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CanonicalView", "canonical_view"]


@dataclass(frozen=True)
class CanonicalView:
    """Transpose, then flip: how a slice's ``(i, j)`` grid becomes the canonical grid."""

    transpose: bool
    flip_rows: bool
    flip_cols: bool
    shape: tuple[int, int]  #: the source slice's ``(rows, cols)``

    @property
    def canonical_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the canonical image."""
        return (self.shape[1], self.shape[0]) if self.transpose else self.shape

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Source slice (``shape``) to canonical image."""
        out = np.asarray(image)
        if self.transpose:
            out = out.T
        if self.flip_rows:
            out = out[::-1, :]
        if self.flip_cols:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """Canonical ``(row, col)`` points (``(N, 2)``, fractional) to source ``(i, j)``."""
        pts = np.atleast_2d(np.asarray(points, dtype=float)).copy()
        rows, cols = self.canonical_shape
        if self.flip_cols:
            pts[:, 1] = cols - 1 - pts[:, 1]
        if self.flip_rows:
            pts[:, 0] = rows - 1 - pts[:, 0]
        if self.transpose:
            pts = pts[:, ::-1]
        return pts

    def direction_to_source(self, vectors: np.ndarray) -> np.ndarray:
        """Canonical ``(d row, d col)`` directions (``(N, 2)``) to source ``(d i, d j)``."""
        vec = np.atleast_2d(np.asarray(vectors, dtype=float)).copy()
        if self.flip_cols:
            vec[:, 1] = -vec[:, 1]
        if self.flip_rows:
            vec[:, 0] = -vec[:, 0]
        if self.transpose:
            vec = vec[:, ::-1]
        return vec

    def spacing(self, source_spacing: tuple[float, float]) -> tuple[float, float]:
        """Canonical ``(row, col)`` spacing from the source's."""
        return (source_spacing[1], source_spacing[0]) if self.transpose else (source_spacing[0], source_spacing[1])


def canonical_view(affine: np.ndarray, shape: tuple[int, int]) -> CanonicalView:
    """How to show slices of a volume with this ``(k, i, j)`` affine anterior-left, cranial-up.

    Parameters
    ----------
    affine
        4 x 4 volume affine (column 1: row step, column 2: column step, in LPS).
    shape
        ``(rows, cols)`` of a slice.
    """
    aff = np.asarray(affine, dtype=float)
    down = aff[:3, 1] / np.linalg.norm(aff[:3, 1])  # increasing row index i
    right = aff[:3, 2] / np.linalg.norm(aff[:3, 2])  # increasing column index j
    transpose = abs(right[2]) > abs(down[2])  # the columns run along the body axis
    vertical, horizontal = (right, down) if transpose else (down, right)
    return CanonicalView(
        transpose=bool(transpose),
        flip_rows=bool(vertical[2] > 0),  # canonical rows go caudal (-z)
        flip_cols=bool(horizontal[1] < 0),  # canonical columns go posterior (+y)
        shape=(int(shape[0]), int(shape[1])),
    )
