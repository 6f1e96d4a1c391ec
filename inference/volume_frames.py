"""One record per 2-D frame: the geometry and identity a stack needs, read from headers.

Classic single-frame images give one record each; enhanced (multi-frame) images
give one per frame, from the shared and per-frame functional groups. No pixel
data is decoded here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from pydicom.dataset import Dataset

from inference.errors import MissingAttributeError
from inference.series_classifier import localizer_reason

__all__ = ["FrameRecord", "frame_records", "is_image_dataset", "is_multiframe"]

logger = logging.getLogger(__name__)

#: Modalities that carry no image to turn into a volume.
NON_IMAGE_MODALITIES = frozenset({"SEG", "SR", "PR", "KO", "RTSTRUCT", "REG", "DOC", "RWV"})


@dataclass
class FrameRecord:
    """Geometry and identity of one 2-D frame (a slice)."""

    dataset: Dataset  #: the instance's dataset (header only when read from a file)
    path: Path | None  #: where to read the pixel data from, when not in ``dataset``
    frame_index: int | None  #: 0-based frame of a multi-frame image; ``None`` when single-frame
    position: np.ndarray  #: ImagePositionPatient (3,)
    orientation: np.ndarray  #: ImageOrientationPatient (6,)
    pixel_spacing: tuple[float, float]  #: (row spacing, column spacing)
    rows: int
    columns: int
    slice_thickness: float | None
    spacing_between_slices: float | None
    rescale: tuple[float, float]  #: (slope, intercept)
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str | None
    echo: tuple[Any, ...]  #: echo number(s) and echo time: different values never share a stack
    localizer: bool
    stack_id: str | None  #: enhanced images' StackID
    acquisition_number: int | None
    image_type: tuple[str, ...]
    temporal: tuple[Any, ...]  #: temporal position / trigger time, to tell repeated positions apart
    instance_number: int | None = None

    @property
    def frame_number(self) -> int | None:
        """1-based DICOM frame number, ``None`` for single-frame images."""
        return None if self.frame_index is None else self.frame_index + 1

    @property
    def label(self) -> str:
        """Short name of the frame for messages."""
        suffix = "" if self.frame_index is None else f" frame {self.frame_index + 1}"
        return f"{self.sop_instance_uid}{suffix}"


def is_multiframe(ds: Dataset) -> bool:
    """Whether ``ds`` is an enhanced / multi-frame image (functional groups or several frames)."""
    frames = ds.get("NumberOfFrames")
    try:
        many = frames is not None and int(frames) > 1
    except (TypeError, ValueError):
        many = False
    return many or "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds


def is_image_dataset(ds: Dataset) -> bool:
    """Whether ``ds`` looks like an image that could belong to a volume."""
    if str(ds.get("Modality", "")).upper() in NON_IMAGE_MODALITIES:
        return False
    return "Rows" in ds and "Columns" in ds


def _floats(value: Any, count: int, what: str, label: str) -> np.ndarray:
    try:
        values = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError) as exc:
        raise MissingAttributeError(f"{what} of {label} is not numeric: {value!r}") from exc
    if values.shape != (count,):
        raise MissingAttributeError(f"{what} of {label} must have {count} values, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise MissingAttributeError(f"{what} of {label} has non-finite values: {value!r}")
    return values


def _optional_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _optional_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _strings(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value.upper(),)
    try:
        return tuple(str(v).upper() for v in value)
    except TypeError:
        return (str(value).upper(),)


def _required_uid(ds: Dataset, keyword: str, label: str) -> str:
    value = ds.get(keyword)
    if not value:
        raise MissingAttributeError(f"{keyword} is missing from {label}")
    return str(value)


def _pixel_spacing(item: Dataset | None, label: str) -> tuple[float, float]:
    if item is None or "PixelSpacing" not in item or not item.PixelSpacing:
        raise MissingAttributeError(f"PixelSpacing is missing from {label}")
    spacing = _floats(item.PixelSpacing, 2, "PixelSpacing", label)
    if np.any(spacing <= 0):
        raise MissingAttributeError(f"PixelSpacing of {label} must be positive, got {list(spacing)}")
    return float(spacing[0]), float(spacing[1])


def _check_orientation(iop: np.ndarray, label: str) -> np.ndarray:
    row, col = iop[:3], iop[3:]
    if not (np.isclose(np.linalg.norm(row), 1, atol=1e-2) and np.isclose(np.linalg.norm(col), 1, atol=1e-2)):
        raise MissingAttributeError(f"ImageOrientationPatient of {label} is not two unit vectors: {list(iop)}")
    if abs(float(np.dot(row, col))) > 1e-2:
        raise MissingAttributeError(f"ImageOrientationPatient of {label} is not orthogonal: {list(iop)}")
    # renormalise: DS strings carry ~6 significant digits
    row = row / np.linalg.norm(row)
    col = col - np.dot(col, row) * row
    return np.concatenate([row, col / np.linalg.norm(col)])


def _is_localizer(*image_types: Sequence[str]) -> bool:
    return any("LOCALIZER" in t for t in image_types)


class _InstanceFields(TypedDict):
    """The :class:`FrameRecord` fields that every frame of an instance shares."""

    rows: int
    columns: int
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str | None
    acquisition_number: int | None
    instance_number: int | None


def _instance_fields(ds: Dataset, sop_uid: str, label: str) -> _InstanceFields:
    """The size, UIDs and numbers of the instance ``ds``, the same for a single- and a multi-frame image."""
    return _InstanceFields(
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        sop_instance_uid=sop_uid,
        sop_class_uid=_required_uid(ds, "SOPClassUID", label),
        series_instance_uid=_required_uid(ds, "SeriesInstanceUID", label),
        study_instance_uid=_required_uid(ds, "StudyInstanceUID", label),
        frame_of_reference_uid=str(ds.FrameOfReferenceUID) if ds.get("FrameOfReferenceUID") else None,
        acquisition_number=_optional_int(ds.get("AcquisitionNumber")),
        instance_number=_optional_int(ds.get("InstanceNumber")),
    )


def _single_frame(ds: Dataset, path: Path | None) -> FrameRecord:
    label = f"instance {ds.get('SOPInstanceUID', path)}"
    sop_uid = _required_uid(ds, "SOPInstanceUID", label)
    if "ImagePositionPatient" not in ds or not ds.ImagePositionPatient:
        raise MissingAttributeError(f"ImagePositionPatient is missing from {label}")
    if "ImageOrientationPatient" not in ds or not ds.ImageOrientationPatient:
        raise MissingAttributeError(f"ImageOrientationPatient is missing from {label}")
    slope = _optional_float(ds.get("RescaleSlope"))
    intercept = _optional_float(ds.get("RescaleIntercept"))
    image_type = _strings(ds.get("ImageType"))
    echo_numbers = _strings(ds.get("EchoNumbers"))
    echo_time = _optional_float(ds.get("EchoTime"))
    temporal = (
        _optional_int(ds.get("TemporalPositionIdentifier")),
        _optional_float(ds.get("TriggerTime")),
    )
    return FrameRecord(
        dataset=ds,
        path=path,
        frame_index=None,
        position=_floats(ds.ImagePositionPatient, 3, "ImagePositionPatient", label),
        orientation=_check_orientation(
            _floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient", label), label
        ),
        pixel_spacing=_pixel_spacing(ds, label),
        **_instance_fields(ds, sop_uid, label),
        slice_thickness=_optional_float(ds.get("SliceThickness")),
        spacing_between_slices=_optional_float(ds.get("SpacingBetweenSlices")),
        rescale=(1.0 if slope is None else slope, 0.0 if intercept is None else intercept),
        echo=(echo_numbers, None if echo_time is None else round(echo_time, 3)),
        localizer=_is_localizer(image_type) or localizer_reason(ds) is not None,
        stack_id=None,
        image_type=image_type,
        temporal=temporal,
    )


def _group_item(ds: Dataset, frame_index: int, keyword: str) -> Dataset | None:
    """First item of a functional group macro, per-frame first, then shared."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame_index < len(per_frame):
        seq = per_frame[frame_index].get(keyword)
        if seq:
            return seq[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        seq = shared[0].get(keyword)
        if seq:
            return seq[0]
    return None


def _multi_frame(ds: Dataset, path: Path | None) -> list[FrameRecord]:
    sop_uid = _required_uid(ds, "SOPInstanceUID", f"instance {path}")
    label_base = f"instance {sop_uid}"
    n_frames = _optional_int(ds.get("NumberOfFrames")) or 1
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) != n_frames:
        raise MissingAttributeError(
            f"{label_base} has NumberOfFrames {n_frames} but {len(per_frame)} per-frame functional groups"
        )
    image_type = _strings(ds.get("ImageType"))
    named_localizer = localizer_reason(ds) is not None
    records = []
    for index in range(n_frames):
        label = f"{label_base} frame {index + 1}"
        position_item = _group_item(ds, index, "PlanePositionSequence")
        orientation_item = _group_item(ds, index, "PlaneOrientationSequence")
        measures = _group_item(ds, index, "PixelMeasuresSequence")
        if position_item is None or not position_item.get("ImagePositionPatient"):
            raise MissingAttributeError(f"ImagePositionPatient (Plane Position) is missing for {label}")
        if orientation_item is None or not orientation_item.get("ImageOrientationPatient"):
            raise MissingAttributeError(f"ImageOrientationPatient (Plane Orientation) is missing for {label}")
        transform = _group_item(ds, index, "PixelValueTransformationSequence")
        slope = _optional_float(transform.get("RescaleSlope")) if transform else None
        intercept = _optional_float(transform.get("RescaleIntercept")) if transform else None
        if slope is None:
            slope = _optional_float(ds.get("RescaleSlope"))
        if intercept is None:
            intercept = _optional_float(ds.get("RescaleIntercept"))
        content = _group_item(ds, index, "FrameContentSequence")
        echo_item = _group_item(ds, index, "MREchoSequence")
        frame_type_item = _group_item(ds, index, "MRImageFrameTypeSequence")
        frame_type = _strings(frame_type_item.get("FrameType")) if frame_type_item else ()
        echo_time = _optional_float(echo_item.get("EffectiveEchoTime")) if echo_item else None
        stack_id = content.get("StackID") if content else None
        temporal = (
            _optional_int(content.get("TemporalPositionIndex")) if content else None,
            _optional_float(content.get("FrameAcquisitionNumber")) if content else None,
        )
        records.append(
            FrameRecord(
                dataset=ds,
                path=path,
                frame_index=index,
                position=_floats(position_item.ImagePositionPatient, 3, "ImagePositionPatient", label),
                orientation=_check_orientation(
                    _floats(orientation_item.ImageOrientationPatient, 6, "ImageOrientationPatient", label), label
                ),
                pixel_spacing=_pixel_spacing(measures, label),
                **_instance_fields(ds, sop_uid, label),
                slice_thickness=_optional_float(measures.get("SliceThickness")) if measures else None,
                spacing_between_slices=(
                    _optional_float(measures.get("SpacingBetweenSlices")) if measures else None
                ),
                rescale=(1.0 if slope is None else slope, 0.0 if intercept is None else intercept),
                echo=((), None if echo_time is None else round(echo_time, 3)),
                localizer=named_localizer or _is_localizer(image_type, frame_type),
                stack_id=None if stack_id in (None, "") else str(stack_id),
                image_type=frame_type or image_type,
                temporal=temporal,
            )
        )
    return records


def frame_records(ds: Dataset, path: Path | None = None) -> list[FrameRecord]:
    """The frame records of one instance.

    Parameters
    ----------
    ds
        The instance (with or without pixel data).
    path
        The file it was read from, if any (pixel data is read from there later).

    Returns
    -------
    list[FrameRecord]
        One record for a single-frame image, one per frame for a multi-frame one.

    Raises
    ------
    MissingAttributeError
        If a geometry attribute or UID the volume needs is absent or malformed.
    """
    if "Rows" not in ds or "Columns" not in ds:
        raise MissingAttributeError(f"Rows/Columns are missing from instance {ds.get('SOPInstanceUID', path)}")
    if is_multiframe(ds):
        return _multi_frame(ds, path)
    return [_single_frame(ds, path)]
