"""Small series built in code for the volume tests (helpers, no tests; named so this module is mine)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from inference.phantoms.dicomio import PhantomSeries, PhantomStudy, deterministic_uid, write_mr_series

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def oblique_orientation(tilt_deg: float = 20.0, yaw_deg: float = 7.0) -> tuple[float, ...]:
    """An axial orientation tilted about the left-right axis, then yawed (like an angled disc block)."""
    t, y = np.radians(tilt_deg), np.radians(yaw_deg)
    row = np.array([np.cos(y), np.sin(y), 0.0])
    col = np.array([-np.sin(y) * np.cos(t), np.cos(y) * np.cos(t), -np.sin(t)])
    col -= np.dot(col, row) * row
    col /= np.linalg.norm(col)
    return tuple(float(v) for v in np.concatenate([row, col]))


def make_study(seed: str = "s") -> PhantomStudy:
    return PhantomStudy(
        study_instance_uid=deterministic_uid(seed, "study"),
        frame_of_reference_uid=deterministic_uid(seed, "for"),
        patient_id="PH0001",
        patient_name="Phantom^Test",
        patient_birth_date="19700101",
        patient_sex="O",
        study_date="20240102",
        study_time="101500",
        accession_number="ACC1",
        study_description="MRI lumbar spine",
    )


def make_series(seed: str = "s", description: str = "t2_tse_tra", **kwargs: object) -> PhantomSeries:
    defaults: dict[str, object] = dict(
        series_instance_uid=deterministic_uid(seed, "series", description),
        series_number=3,
        series_description=description,
        body_part_examined="LSPINE",
        echo_time=95.0,
        repetition_time=3500.0,
    )
    defaults.update(kwargs)
    return PhantomSeries(**defaults)  # type: ignore[arg-type]


def stack_positions(
    orientation: Sequence[float], n: int, spacing: float, origin: Sequence[float] = (-20.0, -30.0, 15.0)
) -> np.ndarray:
    """IPPs of ``n`` slices, ``spacing`` apart along the orientation's normal."""
    iop = np.asarray(orientation, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    return np.asarray(origin, dtype=float) + np.arange(n)[:, None] * spacing * normal


def random_pixels(n: int, rows: int = 12, columns: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 4000, size=(n, rows, columns)).astype(np.uint16)


def write_stack(
    out_dir: Path,
    *,
    orientation: Sequence[float] = AXIAL,
    n: int = 6,
    spacing: float = 4.0,
    pixel_spacing: tuple[float, float] = (0.7, 0.8),
    pixels: np.ndarray | None = None,
    positions: np.ndarray | None = None,
    series: PhantomSeries | None = None,
    study: PhantomStudy | None = None,
    instance_offset: int = 0,
    reverse: bool = True,
) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Write a stack; returns (paths, pixels in normal order, positions in normal order).

    ``reverse`` writes the slices in descending order along the normal, so
    that InstanceNumber order differs from the order the reader must produce.
    """
    pixels = random_pixels(n) if pixels is None else pixels
    positions = stack_positions(orientation, n, spacing) if positions is None else positions
    order = slice(None, None, -1) if reverse else slice(None)
    paths = write_mr_series(
        out_dir,
        pixels[order],
        positions=positions[order],
        orientation=orientation,
        pixel_spacing=pixel_spacing,
        slice_thickness=spacing,
        study=study or make_study(),
        series=series or make_series(),
        instance_offset=instance_offset,
    )
    return paths, pixels, positions


def read_all(paths: Sequence[Path]) -> list[Dataset]:
    return [pydicom.dcmread(p) for p in paths]
