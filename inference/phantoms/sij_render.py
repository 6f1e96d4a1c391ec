"""Slice plan, contrasts and scanner styles of the SIJ phantom.

* :func:`sample_plan`: the semi-coronal slab (tilted parallel to the sacrum,
  with a small seeded planning error), FOV, matrix, slice thickness and gap.
* :func:`plan_coordinates`: voxel centres of the slab in the sacral frame.
* :func:`render`: T1 spin echo or STIR magnitude image from the tissue maps, with
  through-plane partial volume (sub-planes), texture, in-plane blur, bias field,
  Rician noise and intensity scale.
* :func:`sample_vendor`: Siemens / GE / Philips header styles.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from inference.phantoms.sij_anatomy import SijAnatomy, Tissue, TissueMaps

logger = logging.getLogger(__name__)

__all__ = [
    "PARTIAL_VOLUME_OFFSETS",
    "SlicePlan",
    "Vendor",
    "plan_coordinates",
    "render",
    "sample_plan",
    "sample_vendor",
]


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation matrix from small angles (radians) about x, then y, then z."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return np.asarray(rz @ ry @ rx)


@dataclass(frozen=True)
class SlicePlan:
    """Geometry of the semi-coronal slab (shared by T1 and STIR)."""

    tilt_deg: float  #: angle of the slice plane from true coronal (top tilted forward)
    rows: int
    columns: int
    pixel_spacing: tuple[float, float]  #: (row spacing, column spacing) mm
    n_slices: int
    thickness: float
    gap: float
    orientation: tuple[float, ...]  #: ImageOrientationPatient
    positions: np.ndarray  #: (n_slices, 3) ImagePositionPatient, LPS
    to_anatomy: np.ndarray  #: 4x4: LPS (x, y, z, 1) -> sacral frame (u, v, w, 1)

    @property
    def spacing_between_slices(self) -> float:
        """Centre-to-centre distance of adjacent slices (mm)."""
        return self.thickness + self.gap

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume represented by one voxel (pixel area x slice spacing)."""
        return self.pixel_spacing[0] * self.pixel_spacing[1] * self.spacing_between_slices


def sample_plan(rng: np.random.Generator, anat: SijAnatomy) -> SlicePlan:
    """Draw the slab: tilt 20-40 deg, 12-18 slices of 3-5 mm, FOV 240-380 mm, matrix 256-512."""
    tilt = float(rng.uniform(20.0, 40.0))
    tau = np.deg2rad(tilt)
    row_dir = np.array([1.0, 0.0, 0.0])  # towards the patient's left
    up = np.array([0.0, -np.sin(tau), np.cos(tau)])  # cranial along the sacrum (forward at top)
    col_dir = -up
    normal = np.cross(row_dir, col_dir)  # posterior-ish
    columns = int(rng.choice([256, 320, 384, 448, 512]))
    rows = int(round(columns * float(rng.choice([1.0, 1.0, 0.875, 0.8])) / 16.0)) * 16
    fov = float(rng.uniform(240.0, 380.0))
    pixel = round(fov / columns, 4)
    n_slices = int(rng.integers(12, 19))
    thickness = float(rng.choice([3.0, 3.5, 4.0, 4.5, 5.0]))
    gap = float(rng.choice([0.0, 0.0, 0.3, 0.4, 0.5])) * (thickness / 4.0)
    gap = round(gap, 2)
    spacing = thickness + gap
    # Slab centre in the image frame's own axes, relative to the anatomy origin.
    w_centre = anat.cart.w + float(rng.uniform(2.0, 9.0))
    # Anatomy origin in image-frame coordinates (row, up, normal) of the slab centre.
    offset = np.array([float(rng.uniform(-8.0, 8.0)), float(rng.uniform(-18.0, 2.0)), w_centre])
    # Planning error: the sacral frame is the image frame rotated by a few degrees.
    err = _rotation(*np.deg2rad(rng.uniform(-4.0, 4.0, 3)))
    basis = np.stack([row_dir, up, normal], axis=1)  # image frame (u-ish, v-ish, w-ish) in LPS
    centre = np.array([rng.uniform(-6.0, 6.0), rng.uniform(10.0, 60.0), rng.uniform(-40.0, 40.0)])
    # LPS -> image-frame coordinates relative to the slab centre, then -> anatomy.
    # anatomy = err.T @ (basis.T @ (p - centre) + offset)
    rot = err.T @ basis.T
    to_anat = np.eye(4)
    to_anat[:3, :3] = rot
    to_anat[:3, 3] = err.T @ offset - rot @ centre
    # First voxel of each slice.
    k = (np.arange(n_slices) - (n_slices - 1) / 2.0) * spacing
    corner = centre - row_dir * (columns - 1) / 2.0 * pixel - col_dir * (rows - 1) / 2.0 * pixel
    positions = corner[None, :] + k[:, None] * normal[None, :]
    orientation = tuple(float(round(x, 6)) for x in (*row_dir, *col_dir))
    return SlicePlan(
        tilt_deg=tilt,
        rows=rows,
        columns=columns,
        pixel_spacing=(pixel, pixel),
        n_slices=n_slices,
        thickness=thickness,
        gap=gap,
        orientation=orientation,
        positions=np.round(positions, 4),
        to_anatomy=to_anat,
    )


def plan_coordinates(
    plan: SlicePlan, *, offset_mm: float = 0.0, step: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sacral-frame coordinates ``(u, v, w)`` of voxel centres, each ``(n, rows, cols)`` float32.

    Parameters
    ----------
    plan
        The slab.
    offset_mm
        Shift of every slice along its normal (partial-volume sub-planes).
    step
        Take every ``step``-th row and column (a coarser grid of the same slab).
    """
    ori = np.asarray(plan.orientation, dtype=float)
    row_dir, col_dir = ori[:3], ori[3:]
    normal = np.cross(row_dir, col_dir)
    rot = plan.to_anatomy[:3, :3]
    origin = rot @ (plan.positions[0] + offset_mm * normal) + plan.to_anatomy[:3, 3]
    step_k = rot @ (plan.positions[1] - plan.positions[0]) if plan.n_slices > 1 else np.zeros(3)
    step_i = rot @ col_dir * plan.pixel_spacing[0]
    step_j = rot @ row_dir * plan.pixel_spacing[1]
    k = np.arange(plan.n_slices, dtype=np.float32)[:, None, None]
    i = np.arange(0, plan.rows, step, dtype=np.float32)[None, :, None]
    j = np.arange(0, plan.columns, step, dtype=np.float32)[None, None, :]
    out = []
    for a in range(3):
        out.append(
            (np.float32(origin[a]) + k * np.float32(step_k[a]))
            + i * np.float32(step_i[a])
            + j * np.float32(step_j[a])
        )
    return out[0], out[1], out[2]


#: Relative signal of each tissue: (T1 spin echo, STIR).
_CONTRAST: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (0.0, 0.0),
    Tissue.FAT: (1.0, 0.07),
    Tissue.MUSCLE: (0.33, 0.24),
    Tissue.MARROW: (0.72, 0.11),
    Tissue.CORTEX: (0.05, 0.03),
    Tissue.CARTILAGE: (0.26, 0.38),
    Tissue.LIGAMENT: (0.2, 0.12),
    Tissue.FORAMEN: (0.62, 0.3),
    Tissue.CSF: (0.14, 1.0),
    Tissue.DISC: (0.36, 0.55),
    Tissue.VESSEL: (0.08, 0.05),
    Tissue.BOWEL: (0.4, 0.45),
    Tissue.SCLEROSIS: (0.14, 0.06),
}
#: FM on T1, relative to subcutaneous fat (drawn per study in this range).
FM_T1 = (0.9, 1.0)
FM_STIR = 0.06
OEDEMA_T1 = 0.45
OEDEMA_STIR = 0.85


def _interp_matrix(n: int, cells: int) -> np.ndarray:
    """``(n, cells)`` linear interpolation weights from a coarse grid to ``n`` samples."""
    x = np.linspace(0.0, cells - 1.0, n)
    lo = np.minimum(np.floor(x).astype(int), cells - 2)
    frac = x - lo
    m = np.zeros((n, cells), dtype=np.float32)
    m[np.arange(n), lo] = 1.0 - frac
    m[np.arange(n), lo + 1] = frac
    return m


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int, int], cells: int) -> np.ndarray:
    """A smooth random field (zero mean, unit-ish sd): a coarse grid, bilinearly upsampled per slice."""
    coarse = rng.standard_normal((shape[0], cells, cells)).astype(np.float32)
    rows = _interp_matrix(shape[1], cells)
    cols = _interp_matrix(shape[2], cells)
    return np.asarray(rows @ coarse @ cols.T, dtype=np.float32)


#: Partial volume across the slice: sub-planes at these fractions of the thickness
#: from the centre, and their weights (the centre plane, which carries the labels,
#: weighs the rest).
PARTIAL_VOLUME_OFFSETS = (-1.0 / 3.0, 1.0 / 3.0)
PARTIAL_VOLUME_WEIGHT = 0.25
#: Sub-planes are classified on a grid this many times coarser in-plane.
PARTIAL_VOLUME_STEP = 2


def _signal(
    maps: TissueMaps, lut: np.ndarray, sequence: str, fm_level: float
) -> np.ndarray:
    """Noise-free relative signal of the tissue maps (no texture)."""
    image = lut[maps.tissue]
    if sequence == "t1":
        image[maps.oedema & ~maps.fm] = OEDEMA_T1
        image[maps.fm] = fm_level
    else:
        image[maps.fm] = FM_STIR
        image[maps.oedema] = OEDEMA_STIR * maps.oedema_level[maps.oedema]
    return np.asarray(image, dtype=np.float32)


def _upsample(image: np.ndarray, step: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of a ``step``-coarser grid back to ``shape``."""
    if step == 1:
        return image
    big = np.repeat(np.repeat(image, step, axis=1), step, axis=2)
    return np.asarray(big[:, : shape[1], : shape[2]])


def render(
    maps: TissueMaps,
    sequence: str,
    anat: SijAnatomy,
    plan: SlicePlan,
    rng: np.random.Generator,
    *,
    sub_planes: tuple[TissueMaps, ...] = (),
) -> np.ndarray:
    """Magnitude image ``(n, rows, cols)`` uint16 of ``sequence`` ("t1" or "stir").

    Parameters
    ----------
    maps
        Tissue maps at the voxel centres (the plane the labels come from).
    sub_planes
        Tissue maps of the partial-volume sub-planes (``PARTIAL_VOLUME_OFFSETS``,
        classified every ``PARTIAL_VOLUME_STEP`` pixels); each weighs
        ``PARTIAL_VOLUME_WEIGHT``. Empty: no through-plane partial volume.
    """
    col = 0 if sequence == "t1" else 1
    lut = np.zeros(len(Tissue), dtype=np.float32)
    for tissue, values in _CONTRAST.items():
        lut[tissue] = values[col]
    if sequence == "t1":
        lut[Tissue.MARROW] = anat.marrow_t1
        lut[Tissue.MUSCLE] *= float(rng.uniform(0.85, 1.15))
    else:
        lut[Tissue.MUSCLE] *= float(rng.uniform(0.85, 1.15))
        lut[Tissue.FAT] *= float(rng.uniform(0.7, 1.4))
    shape = maps.tissue.shape
    # Texture: marrow heterogeneity and soft-tissue variation.
    tex = _smooth_field(rng, shape, 20)
    fm_level = max(float(rng.uniform(*FM_T1)), anat.marrow_t1 + 0.14)
    image = _signal(maps, lut, sequence, fm_level)
    if sub_planes:
        image *= 1.0 - PARTIAL_VOLUME_WEIGHT * len(sub_planes)
        for sub in sub_planes:
            image += PARTIAL_VOLUME_WEIGHT * _upsample(
                _signal(sub, lut, sequence, fm_level), PARTIAL_VOLUME_STEP, shape
            )
    amount = np.where(maps.tissue == Tissue.MARROW, np.float32(0.07), np.float32(0.03))
    amount[maps.fm if sequence == "t1" else maps.oedema] = 0.05
    image *= 1.0 + amount * tex
    # Point spread: a little in-plane blur (sub-pixel).
    image = ndimage.gaussian_filter(image, sigma=(0.0, 0.6, 0.6), mode="nearest")
    # Bias field: receive coils (posterior elements brighter), smooth in-plane gradient.
    n, rows, cols = shape
    yy = np.linspace(-1.0, 1.0, rows, dtype=np.float32)[None, :, None]
    xx = np.linspace(-1.0, 1.0, cols, dtype=np.float32)[None, None, :]
    kk = np.linspace(-1.0, 1.0, n, dtype=np.float32)[:, None, None]
    a = rng.uniform(-0.15, 0.15, 5).astype(np.float32)
    bias = np.exp(a[0] * xx + a[1] * yy + 0.12 * kk + a[2] * xx * xx + a[3] * yy * yy + a[4] * xx * yy)
    image *= bias
    # Rician noise.
    sigma = float(rng.uniform(0.015, 0.045)) * (1.3 if sequence == "stir" else 1.0)
    real = image + rng.normal(0.0, sigma, shape).astype(np.float32)
    imag = rng.normal(0.0, sigma, shape).astype(np.float32)
    image = np.sqrt(real * real + imag * imag)
    scale = float(rng.uniform(600.0, 3000.0))
    return np.clip(np.rint(image * scale), 0, 65535).astype(np.uint16)


@dataclass(frozen=True)
class Vendor:
    """Scanner style: names, models and sequence parameters as that vendor writes them."""

    manufacturer: str
    model_name: str
    field_strength: float
    t1_description: str
    stir_description: str
    t1_sequence_name: str
    stir_sequence_name: str
    series_numbers: tuple[int, int]
    scan_options_t1: str
    scan_options_stir: str
    stir_variant: str


def sample_vendor(rng: np.random.Generator) -> Vendor:
    """One of the three vendor header styles, with a field strength."""
    vendor = int(rng.integers(0, 3))
    field = float(rng.choice([1.5, 3.0]))
    if vendor == 0:
        return Vendor(
            manufacturer="SIEMENS",
            model_name=str(rng.choice(["Avanto", "Aera", "Skyra", "Vida"])),
            field_strength=field,
            t1_description="t1_tse_cor_obl",
            stir_description="t2_tirm_cor_obl",
            t1_sequence_name="*tse2d1_3",
            stir_sequence_name="*tir2d1_17",
            series_numbers=(int(rng.integers(2, 5)), int(rng.integers(5, 8))),
            scan_options_t1="",
            scan_options_stir="IR",
            stir_variant="SK\\SP\\MP\\OSP",
        )
    if vendor == 1:
        return Vendor(
            manufacturer="GE MEDICAL SYSTEMS",
            model_name=str(rng.choice(["Optima MR450w", "SIGNA Explorer", "DISCOVERY MR750"])),
            field_strength=field,
            t1_description="OCor T1 FSE",
            stir_description="OCor STIR",
            t1_sequence_name="fse-xl",
            stir_sequence_name="fse-ir",
            series_numbers=(int(rng.integers(3, 6)), int(rng.integers(6, 9))),
            scan_options_t1="FAST_GEMS\\SAT_GEMS",
            scan_options_stir="FAST_GEMS\\IR_GEMS",
            stir_variant="SK\\MP",
        )
    return Vendor(
        manufacturer="Philips Medical Systems",
        model_name=str(rng.choice(["Ingenia", "Achieva", "Ingenia Elition X"])),
        field_strength=field,
        t1_description="T1W_TSE_COR",
        stir_description="STIR_COR",
        t1_sequence_name="TSE",
        stir_sequence_name="IR_TSE",
        series_numbers=(int(rng.integers(3, 6)) * 100 + 1, int(rng.integers(6, 9)) * 100 + 1),
        scan_options_t1="",
        scan_options_stir="IR",
        stir_variant="SK\\MP",
    )
