"""Scan plan and scanner header style of a phantom lumbar study (seeded).

A plan has a sagittal T2, a sagittal T1 (same slice positions, as sites usually
plan them) and one axial T2 series with a stack per disc level, each stack
parallel to its disc with a few degrees of planning error. Vendor styles give
the series descriptions, sequence tags and numbering of Siemens, GE and Philips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.phantoms.lumbar_anatomy import DiscShape, SpineAnatomy
from inference.phantoms.lumbar_render import ImagePlane, StackGeometry

__all__ = ["SeriesPlan", "VendorStyle", "VENDORS", "plan_axial_stack", "plan_sagittal", "rotation"]


@dataclass(frozen=True)
class VendorStyle:
    """How one manufacturer names and tags the three lumbar series."""

    manufacturer: str
    models: tuple[str, ...]
    descriptions: dict[str, str]  #: role -> SeriesDescription
    sequence_names: dict[str, str]
    sequence_variant: str
    scan_options: str
    series_number_step: int  #: Philips numbers series 201, 301, ...
    study_descriptions: tuple[str, ...]


VENDORS: dict[str, VendorStyle] = {
    "siemens": VendorStyle(
        manufacturer="SIEMENS",
        models=("Avanto", "Aera", "Skyra", "Espree"),
        descriptions={"sag_t2": "t2_tse_sag", "sag_t1": "t1_tse_sag", "ax_t2": "t2_tse_tra"},
        sequence_names={"sag_t2": "*tse2d1_15", "sag_t1": "*tse2d1_3", "ax_t2": "*tse2d1_17"},
        sequence_variant="SK\\SP\\OSP",
        scan_options="",
        series_number_step=1,
        study_descriptions=("LWS^Routine", "Spine^LSpine", "MRT LWS"),
    ),
    "ge": VendorStyle(
        manufacturer="GE MEDICAL SYSTEMS",
        models=("SIGNA HDxt", "Optima MR450w", "SIGNA Explorer"),
        descriptions={"sag_t2": "Sag T2 FRFSE", "sag_t1": "Sag T1 FSE", "ax_t2": "Ax T2 FRFSE"},
        sequence_names={"sag_t2": "frfse", "sag_t1": "fse", "ax_t2": "frfse"},
        sequence_variant="SK\\OSP",
        scan_options="FAST_GEMS\\FR_GEMS",
        series_number_step=1,
        study_descriptions=("MRI LUMBAR SPINE WO CONTRAST", "MR L-SPINE WO"),
    ),
    "philips": VendorStyle(
        manufacturer="Philips Medical Systems",
        models=("Ingenia", "Achieva", "Intera"),
        descriptions={"sag_t2": "T2W_TSE_SAG", "sag_t1": "T1W_TSE_SAG", "ax_t2": "T2W_TSE_TRA"},
        sequence_names={"sag_t2": "TSE", "sag_t1": "TSE", "ax_t2": "TSE"},
        sequence_variant="SK",
        scan_options="",
        series_number_step=100,
        study_descriptions=("LWK", "MR Lumbar Spine", "L-Spine routine"),
    ),
}


@dataclass(frozen=True)
class SeriesPlan:
    """One series to render: its role, stacks and sequence parameters."""

    role: str  #: "sag_t2", "sag_t1" or "ax_t2"
    weighting: str  #: "T1" or "T2"
    stacks: tuple[StackGeometry, ...]
    levels: tuple[str, ...]  #: disc level of each stack ("" for sagittal)
    echo_time: float
    repetition_time: float
    echo_train_length: int
    flip_angle: float


def rotation(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """3x3 rotation by ``angle_deg`` about the unit vector ``axis`` (Rodrigues)."""
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    t = np.radians(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def _matrix(rng: np.random.Generator, choices: tuple[int, ...]) -> int:
    return int(rng.choice(choices))


def _acquired(matrix: int, wanted: int, fov: float) -> int:
    """Acquired matrix: no finer than 0.85 mm (the anatomy is drawn at about 1 mm)."""
    return int(min(matrix, wanted, 2 * int(fov / 0.85 / 2)))


def _stack(
    centre: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    n: int,
    spacing_between: float,
    thickness: float,
    fov: float,
    matrix: int,
    acquisition: int,
    ascending: bool,
) -> StackGeometry:
    normal = np.cross(row, col)
    pixel = fov / matrix
    offsets = (np.arange(n) - (n - 1) / 2) * spacing_between
    if not ascending:
        offsets = offsets[::-1]
    planes = []
    for off in offsets:
        c = centre + off * normal
        first = c - row * pixel * (matrix - 1) / 2 - col * pixel * (matrix - 1) / 2
        planes.append(ImagePlane(first, row.copy(), col.copy(), (pixel, pixel), (matrix, matrix)))
    return StackGeometry(tuple(planes), thickness, (acquisition, acquisition))


def plan_sagittal(rng: np.random.Generator, spine: SpineAnatomy) -> tuple[StackGeometry, StackGeometry]:
    """Sagittal T2 and T1 stacks sharing slice positions (matrices may differ).

    Returns
    -------
    tuple of StackGeometry
        ``(t2, t1)``.
    """
    n = int(rng.integers(11, 18))
    thickness = float(rng.choice([3.0, 3.5, 4.0, 4.0, 4.5]))
    gap = thickness * float(rng.uniform(0.1, 0.3))
    fov = float(rng.uniform(260.0, 340.0))
    l3 = spine.vertebrae["L3"].frame.origin
    l4 = spine.vertebrae["L4"].frame.origin
    centre = 0.5 * (l3 + l4) + np.array([rng.uniform(-3.0, 3.0), rng.uniform(5.0, 30.0), rng.uniform(-15.0, 10.0)])
    rot = rotation(np.array([0.0, 0.0, 1.0]), rng.uniform(-3.0, 3.0)) @ rotation(
        np.array([0.0, 1.0, 0.0]), rng.uniform(-2.0, 2.0)
    )
    row = rot @ np.array([0.0, 1.0, 0.0])
    col = rot @ np.array([0.0, 0.0, -1.0])
    ascending = bool(rng.random() < 0.5)
    out = []
    for _ in range(2):
        matrix = _matrix(rng, (320, 384, 448, 512))
        acquisition = _acquired(matrix, _matrix(rng, (256, 288, 320, 384)), fov)
        out.append(_stack(centre, row, col, n, thickness + gap, thickness, fov, matrix, acquisition, ascending))
    return out[0], out[1]


def plan_axial_stack(
    rng: np.random.Generator,
    disc: DiscShape,
    *,
    n: int,
    thickness: float,
    gap: float,
    fov: float,
    matrix: int,
    acquisition: int,
    ascending: bool,
) -> StackGeometry:
    """One axial stack parallel to ``disc`` (up to 3 degrees off), centred on it.

    The middle slice lies within 0.6 mm of the disc's mid-plane (for an even
    count, half a slice spacing further), so the slice of maximal herniation is
    near the disc's mid-plane as on a real plan.
    """
    f = disc.frame
    # parallel to the disc (its normal may lean out of the sagittal plane when
    # the patient lies rotated), rows as close to left-right as that allows
    x = np.array([1.0, 0.0, 0.0])
    row0 = x - (x @ f.u) * f.u
    row0 /= np.linalg.norm(row0)
    col0 = np.cross(f.u, row0)
    tilt = rotation(row0, rng.uniform(-3.0, 3.0))
    col1 = tilt @ col0
    roll = rotation(col1, rng.uniform(-1.5, 1.5))
    row = roll @ row0
    col = roll @ col1
    normal = np.cross(row, col)
    centre = (
        f.origin
        + normal * rng.uniform(-0.6, 0.6)
        + col * rng.uniform(8.0, 30.0)
        + row * rng.uniform(-8.0, 8.0)
    )
    if n % 2 == 0:
        centre = centre + normal * (thickness + gap) / 2
    return _stack(centre, row, col, n, thickness + gap, thickness, fov, matrix, acquisition, ascending)


def plan_axial(rng: np.random.Generator, spine: SpineAnatomy, levels: tuple[str, ...]) -> tuple[StackGeometry, ...]:
    """The axial T2 series' stacks (one per level, shared matrix and spacing)."""
    n = int(rng.choice([4, 5, 5, 6]))
    thickness = float(rng.choice([3.0, 3.5, 4.0]))
    gap = float(rng.uniform(0.0, 1.0))
    fov = float(rng.uniform(160.0, 220.0))
    matrix = _matrix(rng, (256, 320, 384, 448, 512))
    acquisition = _acquired(matrix, _matrix(rng, (224, 256, 288, 320)), fov)
    ascending = bool(rng.random() < 0.5)
    return tuple(
        plan_axial_stack(
            rng, spine.discs[level], n=n, thickness=thickness, gap=gap, fov=fov, matrix=matrix,
            acquisition=acquisition, ascending=ascending,
        )
        for level in levels
    )
