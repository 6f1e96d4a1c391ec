"""Series to volume: voxel arrays with their geometry in patient coordinates (LPS).

>>> volumes = load_volumes("/data/study/series_3")          # doctest: +SKIP
>>> vol = volumes[0]
>>> vol.array.shape, vol.spacing                            # doctest: +SKIP
((20, 512, 512), (4.4, 0.68, 0.68))
>>> vol.voxel_to_patient([0, 0, 0])  # == ImagePositionPatient of the first slice  # doctest: +SKIP

Index convention ``(k, i, j)`` = (slice, row, column), ``k`` increasing along the
slice normal (row direction x column direction), whatever the InstanceNumbers
say. See :mod:`inference.geometry` for the affine convention and docs/imaging.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from inference.errors import MissingSliceError, VolumeError
from inference.geometry import Plane, patient_to_voxel, plane_of_slice, voxel_to_patient
from inference.volume_frames import FrameRecord, frame_records, is_image_dataset
from inference.volume_pixels import decode_stack
from inference.volume_stacks import SortedStack, group_frames, missing_instance_numbers, sort_stack, split_runs

__all__ = [
    "InstanceHeader",
    "StackInfo",
    "Volume",
    "describe_stacks",
    "load_series_headers",
    "load_volumes",
    "read_headers",
]

logger = logging.getLogger(__name__)

Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Sequence[Dataset]

_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})


@dataclass(eq=False)
class Volume:
    """One geometrically consistent stack of slices.

    Attributes
    ----------
    array
        ``(slices, rows, columns)`` float32 modality values (rescaled,
        MONOCHROME1 inverted).
    affine
        4 x 4 mapping ``(k, i, j, 1)`` to LPS mm: column 0 the slice step,
        column 1 the row step, column 2 the column step, column 3 the centre
        of voxel ``(0, 0, 0)``.
    spacing
        ``(slice, row, column)`` spacing in mm (slice spacing measured along the
        normal between the positions, not SliceThickness).
    sop_instance_uids, frame_numbers
        Source of each slice: SOP Instance UID and 1-based frame number
        (``None`` for single-frame images).
    headers
        Per-slice datasets without pixel data, or for an enhanced image the one
        shared header (all its frames point to it).
    """

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    sop_instance_uids: list[str]
    frame_numbers: list[int | None]
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str | None
    sop_class_uid: str
    headers: list[Dataset] = field(default_factory=list)
    is_localizer: bool = False

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume.array must be (slices, rows, columns), got shape {self.array.shape}")
        if np.shape(self.affine) != (4, 4):
            raise ValueError(f"Volume.affine must be 4 x 4, got shape {np.shape(self.affine)}")
        n = self.array.shape[0]
        if len(self.sop_instance_uids) != n or len(self.frame_numbers) != n:
            raise ValueError(
                f"Volume has {n} slices but {len(self.sop_instance_uids)} SOP Instance UIDs "
                f"and {len(self.frame_numbers)} frame numbers"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(slices, rows, columns)``."""
        k, i, j = self.array.shape
        return int(k), int(i), int(j)

    @property
    def row_direction(self) -> np.ndarray:
        """Unit vector along a row (increasing column index ``j``): IOP[:3]."""
        vec = self.affine[:3, 2]
        return np.asarray(vec / np.linalg.norm(vec))

    @property
    def column_direction(self) -> np.ndarray:
        """Unit vector down a column (increasing row index ``i``): IOP[3:]."""
        vec = self.affine[:3, 1]
        return np.asarray(vec / np.linalg.norm(vec))

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal ``row_direction x column_direction`` (``k`` increases along it)."""
        vec = np.cross(self.row_direction, self.column_direction)
        return np.asarray(vec / np.linalg.norm(vec))

    @property
    def image_orientation(self) -> list[float]:
        """ImageOrientationPatient of every slice."""
        return [float(v) for v in np.concatenate([self.row_direction, self.column_direction])]

    def image_position(self, k: int) -> np.ndarray:
        """ImagePositionPatient of slice ``k``."""
        return np.asarray(voxel_to_patient(self.affine, [k, 0, 0]))

    def slice_plane(self, k: int) -> Plane:
        """The plane of slice ``k``."""
        return plane_of_slice(self.image_position(k), self.image_orientation)

    def voxel_to_patient(self, indices: Sequence[float] | np.ndarray) -> np.ndarray:
        """``(k, i, j)`` indices (``(N, 3)`` or ``(3,)``) to LPS mm."""
        return voxel_to_patient(self.affine, indices)

    def patient_to_voxel(self, points: Sequence[float] | np.ndarray) -> np.ndarray:
        """LPS points to continuous ``(k, i, j)`` indices."""
        return patient_to_voxel(self.affine, points)


@dataclass(frozen=True)
class InstanceHeader:
    """A file's path and its header (read without pixel data)."""

    path: Path
    dataset: Dataset


def _iter_files(folder: Path) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def _read_without_preamble(path: Path) -> Dataset | None:
    """A dataset written without preamble and file meta (old exports), or ``None`` if it is not one."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as exc:  # noqa: BLE001 - anything that fails to parse is simply not DICOM
        logger.debug("skipping %s: not readable as DICOM (%s)", path, exc)
        return None
    if not (ds.get("SOPClassUID") and ds.get("SOPInstanceUID") and ds.get("SeriesInstanceUID")):
        logger.debug("skipping %s: not DICOM (no SOP Class, SOP Instance and Series UIDs)", path)
        return None
    logger.debug("%s has no DICOM file meta; read as a bare dataset", path)
    return ds


def read_headers(paths: Iterable[str | os.PathLike[str]]) -> list[InstanceHeader]:
    """Read the headers (no pixel data) of DICOM files, skipping anything that is not DICOM.

    Parameters
    ----------
    paths
        Files to read.

    Returns
    -------
    list[InstanceHeader]
        In the order given; non-DICOM files and DICOMDIRs are skipped (logged).
    """
    headers = []
    for raw in paths:
        path = Path(raw)
        ds: Dataset | None
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            ds = _read_without_preamble(path)
        except (EOFError, OSError, ValueError) as exc:
            logger.debug("skipping %s: not readable as DICOM (%s)", path, exc)
            continue
        if ds is None:
            continue
        if "DirectoryRecordSequence" in ds:
            logger.debug("skipping DICOMDIR %s", path)
            continue
        headers.append(InstanceHeader(path=path, dataset=ds))
    return headers


def load_series_headers(folder: str | os.PathLike[str]) -> dict[str, list[InstanceHeader]]:
    """Group the DICOM files under a folder by SeriesInstanceUID, without decoding pixels.

    Parameters
    ----------
    folder
        Walked recursively; non-DICOM files are skipped.

    Returns
    -------
    dict[str, list[InstanceHeader]]
        Series Instance UID to the headers of its instances, in path order.
    """
    root = Path(folder)
    if not root.is_dir():
        raise VolumeError(f"{root} is not a folder")
    series: dict[str, list[InstanceHeader]] = {}
    for header in read_headers(_iter_files(root)):
        uid = header.dataset.get("SeriesInstanceUID")
        if not uid:
            logger.warning("skipping %s: no SeriesInstanceUID", header.path)
            continue
        series.setdefault(str(uid), []).append(header)
    return series


def _pairs(source: Source) -> list[tuple[Dataset, Path | None]]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            files: list[str | os.PathLike[str]] = list(_iter_files(path))
        elif path.is_file():
            files = [path]
        else:
            raise VolumeError(f"{path} does not exist")
        return [(h.dataset, h.path) for h in read_headers(files)]
    items = list(source)
    if all(isinstance(item, Dataset) for item in items):
        return [(item, None) for item in items]  # type: ignore[misc]
    if any(isinstance(item, Dataset) for item in items):
        raise VolumeError("a source is either paths or datasets, not a mix of both")
    return [(h.dataset, h.path) for h in read_headers(items)]  # type: ignore[arg-type]


def _header_without_pixels(ds: Dataset) -> Dataset:
    if not any(int(tag) in _PIXEL_TAGS for tag in ds.keys()):
        return ds
    header = Dataset()
    for elem in ds:
        if int(elem.tag) not in _PIXEL_TAGS:
            header.add(elem)
    if hasattr(ds, "file_meta"):
        header.file_meta = ds.file_meta
    return header


def _number_list(numbers: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def _headers_of(records: Sequence[FrameRecord]) -> list[Dataset]:
    """Per-slice headers without pixel data, or the distinct headers of multi-frame instances."""
    header_by_dataset: dict[int, Dataset] = {}
    headers = []
    for record in records:
        key = id(record.dataset)
        if key not in header_by_dataset:
            header_by_dataset[key] = _header_without_pixels(record.dataset)
            headers.append(header_by_dataset[key])
    if not any(r.frame_index is not None for r in records):
        headers = [header_by_dataset[id(r.dataset)] for r in records]
    return headers


@dataclass(eq=False)
class StackInfo:
    """A stack as the reader would build it, without decoding pixels (for routing and dry runs).

    ``error`` holds the reason the stack cannot become a volume (the exception
    :func:`load_volumes` would raise); ``affine``, ``shape`` and ``spacing`` are
    then ``None`` and the slices are in the order they were met.
    """

    series_instance_uid: str
    sop_instance_uids: list[str]
    frame_numbers: list[int | None]
    headers: list[Dataset]
    is_localizer: bool
    affine: np.ndarray | None = None
    shape: tuple[int, int, int] | None = None
    spacing: tuple[float, float, float] | None = None
    error: VolumeError | None = None


@dataclass
class _Run:
    records: list[FrameRecord]
    stack: SortedStack | None
    error: VolumeError | None


def _records(source: Source) -> list[FrameRecord]:
    pairs = _pairs(source)
    records: list[FrameRecord] = []
    for ds, path in pairs:
        if not is_image_dataset(ds):
            logger.debug("skipping non-image instance %s (%s)", ds.get("SOPInstanceUID"), ds.get("Modality"))
            continue
        records.extend(frame_records(ds, path))
    if not records:
        logger.info("no image instances in the source (%d files/datasets)", len(pairs))
    return records


def _plan(
    records: list[FrameRecord], *, include_localizers: bool, spacing_rtol: float, spacing_atol: float
) -> list[_Run]:
    """Group, split and sort the frames into stacks; a stack that fails a check carries its error."""
    tolerances = {"spacing_rtol": spacing_rtol, "spacing_atol": spacing_atol}
    by_series: dict[str, list[FrameRecord]] = {}
    for record in records:
        by_series.setdefault(record.series_instance_uid, []).append(record)
    missing = {uid: missing_instance_numbers(members) for uid, members in by_series.items()}
    planned = []
    for group in group_frames(records, position_tolerance=spacing_atol):
        if group[0].localizer and not include_localizers:
            logger.debug("leaving out a localiser stack of %d frames", len(group))
            continue
        holes = missing[group[0].series_instance_uid]
        runs = split_runs(group, **tolerances) if holes == [] else None
        if runs is None or len(runs) == 1:
            runs = [group]
        else:
            logger.info("a stack of %d frames holds %d parallel blocks; split at the gaps", len(group), len(runs))
        for run in runs:
            try:
                planned.append(_Run(run, sort_stack(run, **tolerances), None))
            except MissingSliceError as exc:
                error = exc
                if holes:
                    error = MissingSliceError(
                        f"{exc}; InstanceNumbers {_number_list(holes)} of the series were not received"
                    )
                    error.__cause__ = exc
                planned.append(_Run(run, None, error))
            except VolumeError as exc:
                planned.append(_Run(run, None, exc))
    return planned


def describe_stacks(
    source: Source,
    *,
    include_localizers: bool = True,
    spacing_rtol: float = 0.02,
    spacing_atol: float = 0.01,
) -> list[StackInfo]:
    """The stacks :func:`load_volumes` would build, from headers only, with the reason when one would fail.

    Parameters
    ----------
    source, spacing_rtol, spacing_atol
        As for :func:`load_volumes`.
    include_localizers
        Describe localiser stacks too (the default here, unlike :func:`load_volumes`).

    Returns
    -------
    list[StackInfo]
        Pixel checks (decoding, all zeros, photometric) are not made.

    Raises
    ------
    MissingAttributeError
        When an instance lacks what is needed to place it in a stack at all.
    """
    infos = []
    for run in _plan(
        _records(source), include_localizers=include_localizers, spacing_rtol=spacing_rtol, spacing_atol=spacing_atol
    ):
        records = run.stack.records if run.stack is not None else run.records
        first = records[0]
        info = StackInfo(
            series_instance_uid=first.series_instance_uid,
            sop_instance_uids=[r.sop_instance_uid for r in records],
            frame_numbers=[r.frame_number for r in records],
            headers=_headers_of(records),
            is_localizer=first.localizer,
            error=run.error,
        )
        if run.stack is not None:
            info.affine = run.stack.affine
            info.spacing = run.stack.spacing
            info.shape = (len(records), first.rows, first.columns)
        infos.append(info)
    return infos


def _build(stack: SortedStack) -> Volume:
    array = decode_stack(stack.records)
    first = stack.records[0]
    return Volume(
        array=array,
        affine=stack.affine,
        spacing=stack.spacing,
        sop_instance_uids=[r.sop_instance_uid for r in stack.records],
        frame_numbers=[r.frame_number for r in stack.records],
        series_instance_uid=first.series_instance_uid,
        study_instance_uid=first.study_instance_uid,
        frame_of_reference_uid=first.frame_of_reference_uid,
        sop_class_uid=first.sop_class_uid,
        headers=_headers_of(stack.records),
        is_localizer=first.localizer,
    )


def load_volumes(
    source: Source,
    *,
    include_localizers: bool = False,
    spacing_rtol: float = 0.02,
    spacing_atol: float = 0.01,
) -> list[Volume]:
    """Turn the instances of a series into volumes, one per geometrically consistent stack.

    Parameters
    ----------
    source
        A folder (walked recursively), a file, a list of paths, or a list of
        pydicom datasets (with pixel data, or read from a file whose
        ``filename`` is known). Normally one series; several series give
        volumes for each.
    include_localizers
        Also return localiser stacks (ImageType / FrameType LOCALIZER, or a
        localiser named in the description).
    spacing_rtol, spacing_atol
        Tolerance of slice spacing regularity, see
        :func:`inference.volume_stacks.sort_stack`.

    Returns
    -------
    list[Volume]
        In the order their first frame was met (files are read in sorted path
        order, so the order is deterministic); empty when nothing but
        localisers (or no images) were given.

    Raises
    ------
    VolumeError
        The first stack that fails a check; the message names the
        assumption (see :mod:`inference.errors`).
    """
    records = _records(source)
    volumes = []
    for run in _plan(
        records, include_localizers=include_localizers, spacing_rtol=spacing_rtol, spacing_atol=spacing_atol
    ):
        if run.error is not None:
            logger.info("stack of %d frames refused: %s", len(run.records), run.error)
            raise run.error
        assert run.stack is not None
        try:
            volumes.append(_build(run.stack))
        except VolumeError as exc:
            logger.info("stack of %d frames refused: %s", len(run.records), exc)
            raise
    logger.info("%d volume(s) from %d frames", len(volumes), len(records), extra={"volumes": len(volumes)})
    return volumes
