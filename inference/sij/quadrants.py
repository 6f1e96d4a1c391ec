"""SPARCC quadrants of the sacroiliac joints: pure numpy in, numpy out.

The rule (the same as the SIJ phantom generator's):

* **per slice, per joint**: every lesion voxel belongs to the left or the right joint and
  lies on the **iliac** or the **sacral** side of the joint line;
* **upper vs lower** is decided by the midpoint of that joint's cranio-caudal extent
  on that slice (patient S coordinate, so oblique semi-coronal planes are handled);
  a voxel exactly at the midpoint counts as upper.

How the rule is made concrete on a label map (:class:`inference.labels.SijLabel`):

* The network labels a lesion voxel as lesion, not as the bone under it, so the bone is
  recovered per slice: a connected lesion component (8-connectivity) that touches exactly
  one bone class (sacrum, left ilium or right ilium; contact = the component's one-pixel
  rim) belongs to that bone. A component touching none or several (a lesion bridging the
  joint space) is split voxel by voxel by the nearest bone (Euclidean distance in mm).
* Iliac voxels belong to their ilium's side. Sacral voxels belong to the left joint when
  their patient x (LPS: +x is the patient's left) is at or beyond the sacral midline of the
  slice (the mean x of sacrum and sacral lesion voxels), else to the right joint.
* The **joint region** of a slice is the band of pixels within ``joint_gap_mm`` of both the
  sacrum (its half on that side) and that ilium, lesion voxels counted as the bone they were
  given: the cartilaginous joint, its subchondral rim and the joint space. Its area drives
  the 5-slice selection (:func:`inference.sij.scoring.select_sparcc_slices`) and its
  cranio-caudal extent the upper/lower split. A joint without a band on a slice falls back
  to its ilium's extent, then to the extent of its lesions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from inference.labels import SijLabel

__all__ = [
    "JOINTS",
    "QUADRANT_NAMES",
    "QuadrantMap",
    "assign_quadrants",
    "lesion_bones",
    "quadrant_index",
    "quadrant_table",
]

logger = logging.getLogger(__name__)

JOINTS: tuple[str, str] = ("left", "right")
SIDES: tuple[str, str] = ("iliac", "sacral")
LEVELS: tuple[str, str] = ("upper", "lower")

#: Quadrant names in index order (the ground-truth keys of the phantoms).
QUADRANT_NAMES: tuple[str, ...] = tuple(
    f"{joint}_{side}_{level}" for joint in JOINTS for side in SIDES for level in LEVELS
)

_BONES = (int(SijLabel.SACRUM), int(SijLabel.ILIUM_LEFT), int(SijLabel.ILIUM_RIGHT))
_EIGHT = np.ones((3, 3), dtype=bool)


def quadrant_index(joint: int, side: int, level: int) -> int:
    """Index into :data:`QUADRANT_NAMES` of (joint 0=left/1=right, side 0=iliac/1=sacral, level 0=upper/1=lower)."""
    return joint * 4 + side * 2 + level


@dataclass(frozen=True)
class QuadrantMap:
    """Quadrant of every lesion voxel and the joint geometry behind it.

    Attributes
    ----------
    quadrants:
        int8 array (slices, rows, cols): index into :data:`QUADRANT_NAMES`, -1 off the lesion.
    joint_area_mm2:
        float array (slices, 2): cartilaginous-joint band area per slice, left then right.
    midpoint_z:
        float array (slices, 2): the patient S coordinate (mm) splitting upper from lower,
        NaN where the joint has no extent on the slice.
    """

    quadrants: np.ndarray
    joint_area_mm2: np.ndarray
    midpoint_z: np.ndarray

    @property
    def slice_joint_area_mm2(self) -> np.ndarray:
        """Joint area per slice, both joints together."""
        return np.asarray(self.joint_area_mm2.sum(axis=1))


def _spacing_from_affine(affine: np.ndarray) -> tuple[float, float]:
    return float(np.linalg.norm(affine[:3, 1])), float(np.linalg.norm(affine[:3, 2]))


def _patient_coordinate(affine: np.ndarray, k: int, shape: tuple[int, int], axis: int) -> np.ndarray:
    """One patient coordinate (0=x, 1=y, 2=z) of every pixel of slice ``k``."""
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    row = affine[axis]
    return np.asarray(row[0] * k + row[1] * ii + row[2] * jj + row[3], dtype=np.float64)


def lesion_bones(anatomy: np.ndarray, lesion: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """The bone (a :class:`SijLabel` value) under each lesion pixel of one slice.

    Parameters
    ----------
    anatomy:
        2D label image (``SijLabel`` values); only the three bone labels are read.
    lesion:
        2D boolean lesion mask.
    spacing:
        (row, col) pixel spacing in mm.

    Returns
    -------
    numpy.ndarray
        int16 image, the bone label at lesion pixels and 0 elsewhere (also 0 when the
        slice has no bone at all).
    """
    out = np.zeros(anatomy.shape, dtype=np.int16)
    lesion = lesion.astype(bool)
    if not lesion.any():
        return out
    bones = [(anatomy == b) & ~lesion for b in _BONES]
    present = [m.any() for m in bones]
    if not any(present):
        return out
    components, n = ndimage.label(lesion, structure=_EIGHT)
    nearest: np.ndarray | None = None
    for c in range(1, n + 1):
        comp = components == c
        rim = ndimage.binary_dilation(comp, structure=_EIGHT) & ~comp
        touched = [b for b, m in zip(_BONES, bones) if (rim & m).any()]
        if len(touched) == 1:
            out[comp] = touched[0]
            continue
        if nearest is None:
            dist = np.stack(
                [
                    ndimage.distance_transform_edt(~m, sampling=spacing) if p else np.full(m.shape, np.inf)
                    for m, p in zip(bones, present)
                ]
            )
            nearest = np.asarray(_BONES, dtype=np.int16)[np.argmin(dist, axis=0)]
        out[comp] = nearest[comp]
    return out


def _extent_midpoint(z: np.ndarray, mask: np.ndarray) -> float:
    if not mask.any():
        return float("nan")
    values = z[mask]
    return float((values.min() + values.max()) / 2.0)


def assign_quadrants(
    anatomy: np.ndarray,
    lesion: np.ndarray,
    affine: np.ndarray,
    *,
    joint_gap_mm: float = 5.0,
) -> QuadrantMap:
    """Assign every lesion voxel of a semi-coronal volume to one of the eight quadrants.

    Parameters
    ----------
    anatomy:
        Label volume (slices, rows, cols) with :class:`SijLabel` values; the bones are read
        from it (lesion labels inside it are ignored, ``lesion`` says where lesions are).
    lesion:
        Boolean volume, same shape: the lesions to assign (fat metaplasia or oedema).
    affine:
        4 x 4 matrix mapping ``(k, i, j, 1)`` to LPS millimetres.
    joint_gap_mm:
        Half-width of the joint band: a pixel belongs to a joint when it lies within this
        distance of both the sacrum and that ilium.

    Returns
    -------
    QuadrantMap
    """
    anatomy = np.asarray(anatomy)
    lesion = np.asarray(lesion, dtype=bool)
    if anatomy.shape != lesion.shape or anatomy.ndim != 3:
        raise ValueError(f"anatomy {anatomy.shape} and lesion {lesion.shape} must be the same 3D shape")
    affine = np.asarray(affine, dtype=np.float64)
    spacing = _spacing_from_affine(affine)
    pixel_area = spacing[0] * spacing[1]
    n_slices = anatomy.shape[0]
    quadrants = np.full(anatomy.shape, -1, dtype=np.int8)
    area = np.zeros((n_slices, 2), dtype=np.float64)
    midpoint = np.full((n_slices, 2), np.nan, dtype=np.float64)
    shape2d = (anatomy.shape[1], anatomy.shape[2])
    for k in range(n_slices):
        bone_of_lesion = lesion_bones(anatomy[k], lesion[k], spacing)
        filled = np.where(lesion[k], bone_of_lesion, np.where(np.isin(anatomy[k], _BONES), anatomy[k], 0))
        sacrum = filled == SijLabel.SACRUM
        has_bone = (filled > 0).any()
        if not has_bone:
            continue
        x = _patient_coordinate(affine, k, shape2d, 0)
        z = _patient_coordinate(affine, k, shape2d, 2)
        midline = float(x[sacrum].mean()) if sacrum.any() else float(x[filled > 0].mean())
        left_half = x >= midline
        for joint, ilium_label, half in (
            (0, SijLabel.ILIUM_LEFT, left_half),
            (1, SijLabel.ILIUM_RIGHT, ~left_half),
        ):
            ilium = filled == ilium_label
            sacral_half = sacrum & half
            band = np.zeros(shape2d, dtype=bool)
            if ilium.any() and sacral_half.any():
                d_sacrum = ndimage.distance_transform_edt(~sacral_half, sampling=spacing)
                d_ilium = ndimage.distance_transform_edt(~ilium, sampling=spacing)
                band = (d_sacrum <= joint_gap_mm) & (d_ilium <= joint_gap_mm)
            area[k, joint] = band.sum() * pixel_area
            iliac_lesion = lesion[k] & (bone_of_lesion == ilium_label)
            sacral_lesion = lesion[k] & (bone_of_lesion == SijLabel.SACRUM) & half
            joint_lesion = iliac_lesion | sacral_lesion
            mid = _extent_midpoint(z, band)
            if np.isnan(mid):
                mid = _extent_midpoint(z, ilium)
            if np.isnan(mid):
                mid = _extent_midpoint(z, joint_lesion)
            midpoint[k, joint] = mid
            if not joint_lesion.any():
                continue
            lower = z < mid
            for side, mask in ((0, iliac_lesion), (1, sacral_lesion)):
                quadrants[k][mask & ~lower] = quadrant_index(joint, side, 0)
                quadrants[k][mask & lower] = quadrant_index(joint, side, 1)
    return QuadrantMap(quadrants=quadrants, joint_area_mm2=area, midpoint_z=midpoint)


def quadrant_table(quadrants: np.ndarray, *, min_voxels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice, per-quadrant voxel counts and presence.

    Parameters
    ----------
    quadrants:
        The ``quadrants`` volume of a :class:`QuadrantMap`.
    min_voxels:
        A quadrant counts as involved on a slice when it holds at least this many voxels.

    Returns
    -------
    tuple of numpy.ndarray
        ``(counts, present)``, both shaped (slices, 8) in :data:`QUADRANT_NAMES` order.
    """
    if min_voxels < 1:
        raise ValueError("min_voxels must be at least 1")
    q = np.asarray(quadrants)
    counts = np.stack([(q == i).reshape(q.shape[0], -1).sum(axis=1) for i in range(len(QUADRANT_NAMES))], axis=1)
    return counts.astype(np.int64), counts >= min_voxels
