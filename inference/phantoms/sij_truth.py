"""Ground truth of an SIJ phantom computed from its rendered label slices.

Pure numpy/scipy functions on label arrays (``(slices, rows, columns)`` of
:class:`inference.labels.SijLabel` values), so the SIJ pipeline can apply exactly
the same rules to its own segmentations. The rules (also in docs/phantoms-sij.md):

Bone of a lesion voxel
    Each lesion voxel (FAT_METAPLASIA on T1, OEDEMA on STIR) belongs to the
    nearest bone in its slice (in-plane Euclidean distance in mm to SACRUM,
    ILIUM_LEFT, ILIUM_RIGHT voxels; ties go to the sacrum). Iliac voxels take the
    side of their ilium; sacral voxels the side of the nearer ilium. This splits
    each joint into its iliac and sacral sides along the joint line.
Joint region of a side on a slice
    Bone voxels (lesion voxels included, by the rule above) of the sacrum within
    ``JOINT_DISTANCE_MM`` of that ilium, and of that ilium within
    ``JOINT_DISTANCE_MM`` of the sacrum. Only the narrow cartilaginous joint
    qualifies: the ligamentous part is wider than this.
Upper / lower
    ``h`` = position of a voxel centre along the patient's cranial axis projected
    onto the slice plane (mm). On each slice and side the midpoint is
    ``(min h + max h) / 2`` over the joint region; ``h >= midpoint`` is upper. A
    slice without joint region on that side uses the sacrum plus that ilium.
SPARCC slices
    The 5 consecutive slices (in slice order) with the largest total joint-region
    area (both sides); ties go to the first window.
Presence
    A quadrant is positive on a slice when at least one lesion voxel falls in it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from inference.labels import SijLabel

logger = logging.getLogger(__name__)

__all__ = [
    "JOINT_DISTANCE_MM",
    "QUADRANT_KEYS",
    "SPARCC_SLICES",
    "SliceQuadrants",
    "asas_positive",
    "cranial_heights",
    "lesion_volume_ml",
    "select_sparcc_slices",
    "slice_quadrants",
]

#: Bone voxels this close (mm, in-plane) to the opposite bone form the joint region.
JOINT_DISTANCE_MM = 4.0
#: Number of consecutive slices scored (SPARCC).
SPARCC_SLICES = 5
#: Quadrant keys of the ground-truth tables, in this order.
QUADRANT_KEYS: tuple[str, ...] = tuple(
    f"{side}_{bone}_{half}"
    for side in ("left", "right")
    for bone in ("iliac", "sacral")
    for half in ("upper", "lower")
)
_ILIUM = {"left": SijLabel.ILIUM_LEFT, "right": SijLabel.ILIUM_RIGHT}


@dataclass
class SliceQuadrants:
    """Quadrant analysis of one label slice.

    Attributes
    ----------
    quadrant
        int8 map: index into :data:`QUADRANT_KEYS` for lesion voxels, -1 elsewhere.
    side
        int8 map: 0 (left) / 1 (right) for lesion voxels, -1 elsewhere.
    joint_area_mm2
        Area of the joint region (both sides).
    """

    quadrant: np.ndarray
    side: np.ndarray
    joint_area_mm2: float

    def present(self) -> dict[str, bool]:
        """Quadrant key -> at least one lesion voxel."""
        found = set(np.unique(self.quadrant[self.quadrant >= 0]).tolist())
        return {key: i in found for i, key in enumerate(QUADRANT_KEYS)}


def cranial_heights(
    shape: tuple[int, int],
    pixel_spacing: tuple[float, float],
    orientation: np.ndarray,
) -> np.ndarray:
    """Height (mm) of each pixel centre along the in-plane projection of patient superior.

    Parameters
    ----------
    shape
        ``(rows, columns)``.
    pixel_spacing
        DICOM PixelSpacing ``(row spacing, column spacing)``.
    orientation
        ImageOrientationPatient (row cosine, then column cosine), 6 values.
    """
    ori = np.asarray(orientation, dtype=float)
    row_dir, col_dir = ori[:3], ori[3:]
    # +z in LPS is superior; increasing row index moves along col_dir.
    up_r, up_c = col_dir[2], row_dir[2]
    norm = float(np.hypot(up_r, up_c))
    if norm < 1e-6:
        raise ValueError("slice plane is axial: no cranio-caudal direction in plane")
    rows = np.arange(shape[0], dtype=float)[:, None] * pixel_spacing[0]
    cols = np.arange(shape[1], dtype=float)[None, :] * pixel_spacing[1]
    return np.asarray((rows * up_r + cols * up_c) / norm)


def _distance(mask: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """In-plane distance (mm) to the nearest voxel of ``mask`` (inf when empty)."""
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return np.asarray(ndimage.distance_transform_edt(~mask, sampling=spacing))


def slice_quadrants(
    labels: np.ndarray,
    lesion_value: int,
    heights: np.ndarray,
    pixel_spacing: tuple[float, float],
) -> SliceQuadrants:
    """Assign the lesion voxels of one label slice to quadrants (rules in the module doc).

    Parameters
    ----------
    labels
        ``(rows, columns)`` SijLabel values.
    lesion_value
        ``SijLabel.FAT_METAPLASIA`` or ``SijLabel.OEDEMA``.
    heights
        :func:`cranial_heights` of the slice.
    pixel_spacing
        ``(row spacing, column spacing)`` mm.
    """
    spacing = (float(pixel_spacing[0]), float(pixel_spacing[1]))
    quadrant = np.full(labels.shape, -1, dtype=np.int8)
    side_map = np.full(labels.shape, -1, dtype=np.int8)
    bones = np.isin(labels, (SijLabel.SACRUM, SijLabel.ILIUM_LEFT, SijLabel.ILIUM_RIGHT, lesion_value))
    if not bones.any():
        return SliceQuadrants(quadrant, side_map, 0.0)
    # Work on the bounding box of the bones plus a margin.
    pad = int(np.ceil(JOINT_DISTANCE_MM / min(spacing))) + 2
    rr, cc = np.nonzero(bones)
    r0, r1 = max(rr.min() - pad, 0), min(rr.max() + pad + 1, labels.shape[0])
    c0, c1 = max(cc.min() - pad, 0), min(cc.max() + pad + 1, labels.shape[1])
    lab = labels[r0:r1, c0:c1]
    h = heights[r0:r1, c0:c1]
    lesion = lab == lesion_value
    sac = lab == SijLabel.SACRUM
    d_sac = _distance(sac, spacing)
    d_il = {s: _distance(lab == v, spacing) for s, v in _ILIUM.items()}
    has_lesion = bool(lesion.any())
    # Lesion voxels: nearest bone (ties -> sacrum), side.
    lesion_sacral = lesion & (d_sac <= np.minimum(d_il["left"], d_il["right"]))
    lesion_iliac = lesion & ~lesion_sacral
    nearer_left = d_il["left"] < d_il["right"]
    side_left = np.where(lesion_sacral, nearer_left, d_il["left"] <= d_il["right"])
    sac_full = sac | lesion_sacral
    d_sac_full = _distance(sac_full, spacing) if has_lesion else d_sac
    pixel_area = spacing[0] * spacing[1]
    joint_area = 0.0
    q_box = quadrant[r0:r1, c0:c1]
    s_box = side_map[r0:r1, c0:c1]
    for s_index, side in enumerate(("left", "right")):
        on_side = side_left if side == "left" else ~side_left
        il_full = (lab == _ILIUM[side]) | (lesion_iliac & on_side)
        d_il_full = _distance(il_full, spacing) if has_lesion else d_il[side]
        region = (sac_full & (d_il_full <= JOINT_DISTANCE_MM)) | (il_full & (d_sac_full <= JOINT_DISTANCE_MM))
        joint_area += float(region.sum()) * pixel_area
        ref = region if region.any() else (sac_full | il_full)
        if not ref.any():
            continue
        mid = 0.5 * (float(h[ref].min()) + float(h[ref].max()))
        upper = h >= mid
        for b_index, bone_mask in enumerate((lesion_iliac, lesion_sacral)):
            sel = bone_mask & on_side
            base = s_index * 4 + b_index * 2
            q_box[sel & upper] = base
            q_box[sel & ~upper] = base + 1
            s_box[sel] = s_index
    return SliceQuadrants(quadrant, side_map, joint_area)


def select_sparcc_slices(joint_area_mm2: np.ndarray, n: int = SPARCC_SLICES) -> list[int]:
    """Indices of the ``n`` consecutive slices with the largest summed joint area.

    Ties go to the first (lowest-index) window.
    """
    area = np.asarray(joint_area_mm2, dtype=float)
    if area.size < n:
        raise ValueError(f"need at least {n} slices, got {area.size}")
    sums = np.convolve(area, np.ones(n), mode="valid")
    start = int(np.argmax(sums))
    return list(range(start, start + n))


def lesion_volume_ml(
    analyses: list[SliceQuadrants], voxel_volume_mm3: float
) -> dict[str, float]:
    """Lesion volume per side (mL): lesion voxel count x voxel volume, all slices."""
    left = sum(int((a.side == 0).sum()) for a in analyses)
    right = sum(int((a.side == 1).sum()) for a in analyses)
    vol_l = left * voxel_volume_mm3 / 1000.0
    vol_r = right * voxel_volume_mm3 / 1000.0
    return {"left": vol_l, "right": vol_r, "total": vol_l + vol_r}


def asas_positive(oedema: np.ndarray) -> bool:
    """ASAS positive MRI from an oedema mask ``(slices, rows, columns)`` in slice order.

    Positive when one lesion (3D connected component, 26-connectivity across
    adjacent slices) spans at least 2 consecutive slices, or one slice holds at
    least 2 separate lesions (8-connected components).
    """
    mask = np.asarray(oedema, dtype=bool)
    if not mask.any():
        return False
    comps, n = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    for obj in ndimage.find_objects(comps):
        if obj is not None and obj[0].stop - obj[0].start >= 2:
            return True
    for plane in mask:
        _, count = ndimage.label(plane, structure=np.ones((3, 3), dtype=bool))
        if count >= 2:
            return True
    return False
