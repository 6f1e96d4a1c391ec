"""Pure geometry of DICOM slices and volumes: numpy in, numpy out.

Conventions (the same everywhere in :mod:`inference`):

* Patient coordinates are DICOM's LPS, in millimetres: +x towards the patient's
  left, +y posterior, +z superior (head).
* ImageOrientationPatient (IOP) holds the *row direction* (along a row, i.e. with
  increasing column index ``j``) then the *column direction* (down a column, i.e.
  with increasing row index ``i``).
* ImagePositionPatient (IPP) is the centre of the first transmitted voxel.
* A volume index is ``(k, i, j)``: slice, row, column; the 4 x 4 affine maps the
  homogeneous index ``(k, i, j, 1)`` to ``(x, y, z, 1)`` in LPS. Its column 0 is
  the slice step vector, column 1 the row step (column direction x row
  spacing), column 2 the column step (row direction x column spacing), column 3
  the position of voxel ``(0, 0, 0)``.
* The slice normal is ``row direction x column direction``; volumes are sorted so
  that ``k`` increases along it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from highdicom.spatial import create_affine_matrix_from_attributes

__all__ = [
    "AnatomicalPlane",
    "Plane",
    "PlaneClassification",
    "SliceProjection",
    "affine_from_slice",
    "angle_between_deg",
    "classify_plane",
    "normal_from_orientation",
    "patient_to_pixel",
    "patient_to_voxel",
    "pixel_to_patient",
    "plane_of_slice",
    "project_to_slices",
    "signed_distance",
    "voxel_to_patient",
]

ArrayLike = Sequence[float] | np.ndarray


class AnatomicalPlane(str, enum.Enum):
    """The anatomical plane a slice lies in (named by its normal in LPS)."""

    AXIAL = "axial"  #: normal along the superior-inferior (z) axis
    SAGITTAL = "sagittal"  #: normal along the left-right (x) axis
    CORONAL = "coronal"  #: normal along the anterior-posterior (y) axis
    OBLIQUE = "oblique"  #: further than the tolerance from every cardinal plane


_AXIS_PLANES = (AnatomicalPlane.SAGITTAL, AnatomicalPlane.CORONAL, AnatomicalPlane.AXIAL)


def _orientation(image_orientation: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    iop = np.asarray(image_orientation, dtype=float).reshape(-1)
    if iop.shape != (6,):
        raise ValueError(f"ImageOrientationPatient must have 6 values, got {iop.shape[0]}")
    row_dir, col_dir = iop[:3], iop[3:]
    for name, vec in (("row", row_dir), ("column", col_dir)):
        norm = np.linalg.norm(vec)
        if not np.isclose(norm, 1.0, atol=1e-3):
            raise ValueError(f"ImageOrientationPatient {name} cosine is not a unit vector (norm {norm:.4f})")
    if abs(float(np.dot(row_dir, col_dir))) > 1e-3:
        raise ValueError("ImageOrientationPatient row and column cosines are not orthogonal")
    return row_dir / np.linalg.norm(row_dir), col_dir / np.linalg.norm(col_dir)


def normal_from_orientation(image_orientation: ArrayLike) -> np.ndarray:
    """Unit slice normal ``row direction x column direction`` of an IOP.

    Parameters
    ----------
    image_orientation
        The six ImageOrientationPatient values.

    Returns
    -------
    numpy.ndarray
        ``(3,)`` unit vector in LPS.

    Raises
    ------
    ValueError
        If the cosines are not two orthogonal unit vectors.
    """
    row_dir, col_dir = _orientation(image_orientation)
    normal = np.cross(row_dir, col_dir)
    return normal / np.linalg.norm(normal)


def affine_from_slice(
    image_position: ArrayLike,
    image_orientation: ArrayLike,
    pixel_spacing: ArrayLike,
    slice_step: ArrayLike | float = 1.0,
) -> np.ndarray:
    """The ``(k, i, j)`` affine of a slice (or of a stack starting at that slice).

    Parameters
    ----------
    image_position
        ImagePositionPatient of the slice with index ``k = 0``.
    image_orientation
        ImageOrientationPatient.
    pixel_spacing
        DICOM PixelSpacing: ``(row spacing, column spacing)`` in mm.
    slice_step
        Either the distance between slices in mm along the normal, or the full
        slice step vector (3 values) when it is known from the positions.

    Returns
    -------
    numpy.ndarray
        4 x 4 affine mapping ``(k, i, j, 1)`` to LPS.
    """
    _orientation(image_orientation)  # validate
    step = np.asarray(slice_step, dtype=float)
    scalar = float(step) if step.ndim == 0 else 1.0
    affine = create_affine_matrix_from_attributes(
        image_position=[float(v) for v in image_position],
        image_orientation=[float(v) for v in image_orientation],
        pixel_spacing=[float(v) for v in pixel_spacing],
        spacing_between_slices=abs(scalar) if scalar != 0 else 1.0,
        index_convention="DR",
        slices_first=True,
        # with (slice, down, right) indices, "left handed" puts +k along row x column
        handedness="LEFT_HANDED",
    )
    if step.ndim == 0 and scalar < 0:
        affine[:3, 0] = -affine[:3, 0]
    elif step.ndim == 1:
        if step.shape != (3,):
            raise ValueError(f"slice_step must be a number or 3 values, got shape {step.shape}")
        affine[:3, 0] = step
    return affine


def voxel_to_patient(affine: np.ndarray, indices: ArrayLike) -> np.ndarray:
    """Map ``(k, i, j)`` indices (``(N, 3)`` or ``(3,)``, may be fractional) to LPS mm."""
    idx = np.asarray(indices, dtype=float)
    flat = np.atleast_2d(idx)
    out = flat @ np.asarray(affine, dtype=float)[:3, :3].T + np.asarray(affine, dtype=float)[:3, 3]
    return out.reshape(idx.shape)


def patient_to_voxel(affine: np.ndarray, points: ArrayLike) -> np.ndarray:
    """Map LPS points (``(N, 3)`` or ``(3,)``) to continuous ``(k, i, j)`` indices."""
    pts = np.asarray(points, dtype=float)
    flat = np.atleast_2d(pts)
    inverse = np.linalg.inv(np.asarray(affine, dtype=float))
    out = flat @ inverse[:3, :3].T + inverse[:3, 3]
    return out.reshape(pts.shape)


def pixel_to_patient(
    pixels: ArrayLike,
    image_position: ArrayLike,
    image_orientation: ArrayLike,
    pixel_spacing: ArrayLike,
) -> np.ndarray:
    """Map ``(i, j)`` = (row, column) pixel indices of one slice to LPS mm.

    Parameters
    ----------
    pixels
        ``(N, 2)`` or ``(2,)`` row and column indices (fractional allowed;
        ``(0, 0)`` is the centre of the first pixel).
    image_position, image_orientation, pixel_spacing
        The slice's IPP, IOP and PixelSpacing.

    Returns
    -------
    numpy.ndarray
        ``(N, 3)`` or ``(3,)`` points.
    """
    pix = np.asarray(pixels, dtype=float)
    flat = np.atleast_2d(pix)
    if flat.shape[1] != 2:
        raise ValueError(f"pixels must be (N, 2) row/column indices, got shape {pix.shape}")
    idx = np.column_stack([np.zeros(len(flat)), flat])
    affine = affine_from_slice(image_position, image_orientation, pixel_spacing)
    out = voxel_to_patient(affine, idx)
    return out.reshape(pix.shape[:-1] + (3,))


def patient_to_pixel(
    points: ArrayLike,
    image_position: ArrayLike,
    image_orientation: ArrayLike,
    pixel_spacing: ArrayLike,
) -> np.ndarray:
    """Map LPS points onto a slice: ``(row, column, signed distance in mm)``.

    The distance is measured along the slice normal (``row x column``), positive
    on the side the normal points to.
    """
    pts = np.asarray(points, dtype=float)
    affine = affine_from_slice(image_position, image_orientation, pixel_spacing, 1.0)
    kij = np.atleast_2d(patient_to_voxel(affine, pts))
    out = np.column_stack([kij[:, 1], kij[:, 2], kij[:, 0]])  # k is in mm: unit step along normal
    return out.reshape(pts.shape)


@dataclass(frozen=True)
class Plane:
    """A plane in patient space: a point on it and its unit normal."""

    point: np.ndarray
    normal: np.ndarray

    def __post_init__(self) -> None:
        normal = np.asarray(self.normal, dtype=float).reshape(3)
        norm = np.linalg.norm(normal)
        if norm == 0:
            raise ValueError("a plane needs a non-zero normal")
        object.__setattr__(self, "normal", normal / norm)
        object.__setattr__(self, "point", np.asarray(self.point, dtype=float).reshape(3))


def plane_of_slice(image_position: ArrayLike, image_orientation: ArrayLike) -> Plane:
    """The plane of a slice: its IPP and its normal ``row x column``."""
    return Plane(point=np.asarray(image_position, dtype=float), normal=normal_from_orientation(image_orientation))


def signed_distance(points: ArrayLike, plane: Plane) -> np.ndarray:
    """Signed distance (mm) of points to a plane, positive on the normal's side.

    Returns a scalar array for one point ``(3,)`` and ``(N,)`` for ``(N, 3)``.
    """
    pts = np.asarray(points, dtype=float)
    return np.asarray((pts - plane.point) @ plane.normal)


def angle_between_deg(a: ArrayLike, b: ArrayLike) -> float:
    """Angle in degrees between two directions, ignoring their sign (0-90)."""
    va = np.asarray(a, dtype=float)
    vb = np.asarray(b, dtype=float)
    cos = abs(float(np.dot(va, vb))) / (np.linalg.norm(va) * np.linalg.norm(vb))
    return float(np.degrees(np.arccos(np.clip(cos, 0.0, 1.0))))


@dataclass(frozen=True)
class PlaneClassification:
    """Which anatomical plane a slice lies in, and how far it is tilted from it."""

    plane: AnatomicalPlane  #: ``nearest``, or OBLIQUE when ``angle_deg`` exceeds the tolerance
    nearest: AnatomicalPlane  #: the closest cardinal plane, never OBLIQUE
    angle_deg: float  #: angle between the slice normal and that plane's normal


def classify_plane(orientation_or_normal: ArrayLike, tolerance_deg: float = 45.0) -> PlaneClassification:
    """Classify a slice as axial, sagittal, coronal or oblique.

    Parameters
    ----------
    orientation_or_normal
        Either the six IOP values or a 3-vector normal.
    tolerance_deg
        Largest tilt (degrees between the slice normal and the cardinal axis)
        still called by the cardinal plane's name. Lumbar axial stacks are
        angled along each disc (often 10-30 degrees) and SIJ "semi-coronal"
        stacks along the sacrum (20-40 degrees), so the default is generous;
        pass a small value to ask "is this a pure plane?".

    Returns
    -------
    PlaneClassification
    """
    vec = np.asarray(orientation_or_normal, dtype=float).reshape(-1)
    if vec.shape == (6,):
        normal = normal_from_orientation(vec)
    elif vec.shape == (3,):
        normal = vec / np.linalg.norm(vec)
    else:
        raise ValueError(f"expected 6 IOP values or a 3-vector normal, got {vec.shape[0]} values")
    axis = int(np.argmax(np.abs(normal)))
    nearest = _AXIS_PLANES[axis]
    angle = float(np.degrees(np.arccos(np.clip(abs(float(normal[axis])), 0.0, 1.0))))
    plane = nearest if angle <= tolerance_deg else AnatomicalPlane.OBLIQUE
    return PlaneClassification(plane=plane, nearest=nearest, angle_deg=angle)


@dataclass(frozen=True)
class SliceProjection:
    """Points projected onto the slice grid of a volume (one row per point)."""

    slice_index: np.ndarray  #: ``(N,)`` int: nearest slice, clipped to the volume
    row: np.ndarray  #: ``(N,)`` float row index within that slice
    column: np.ndarray  #: ``(N,)`` float column index within that slice
    distance_mm: np.ndarray  #: ``(N,)`` signed distance of the point to that slice's plane
    inside: np.ndarray  #: ``(N,)`` bool: within the slice's pixel matrix and ``max_distance_mm``


def project_to_slices(
    points: ArrayLike,
    affine: np.ndarray,
    shape: Sequence[int],
    max_distance_mm: float | None = None,
) -> SliceProjection:
    """Project LPS points (e.g. disc centres found on a sagittal series) onto another volume's slices.

    Parameters
    ----------
    points
        ``(N, 3)`` or ``(3,)`` LPS points.
    affine
        The target volume's ``(k, i, j)`` affine.
    shape
        The target volume's ``(slices, rows, columns)``.
    max_distance_mm
        Points further than this from their nearest slice plane are marked not
        ``inside`` (``None``: half the distance between slices).

    Returns
    -------
    SliceProjection
    """
    affine = np.asarray(affine, dtype=float)
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    n_slices, rows, columns = (int(v) for v in shape)
    kij = np.atleast_2d(patient_to_voxel(affine, pts))
    k = np.clip(np.rint(kij[:, 0]), 0, n_slices - 1).astype(int)
    row_step, col_step = affine[:3, 1], affine[:3, 2]
    normal = np.cross(col_step, row_step)  # row direction x column direction
    normal /= np.linalg.norm(normal)
    origins = voxel_to_patient(affine, np.column_stack([k, np.zeros_like(k), np.zeros_like(k)]))
    relative = pts - origins
    distance = relative @ normal
    # in-plane coordinates of the foot of the perpendicular on slice k
    row = (relative @ row_step) / float(np.dot(row_step, row_step))
    col = (relative @ col_step) / float(np.dot(col_step, col_step))
    if max_distance_mm is None:
        step = affine[:3, 0]
        max_distance_mm = 0.5 * abs(float(np.dot(step, normal))) if n_slices > 1 else 0.5 * float(np.linalg.norm(step))
    inside = (
        (np.abs(distance) <= max_distance_mm + 1e-9)
        & (row >= -0.5)
        & (row <= rows - 0.5)
        & (col >= -0.5)
        & (col <= columns - 0.5)
    )
    return SliceProjection(slice_index=k, row=row, column=col, distance_mm=distance, inside=inside)
