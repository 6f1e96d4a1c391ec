"""Write phantom volumes as MR Image Storage series with realistic headers.

Deterministic: every UID, date and time comes from the caller (and so from the
phantom's seed), never from the clock, so the same seed gives the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage, PYDICOM_IMPLEMENTATION_UID

__all__ = ["PhantomStudy", "PhantomSeries", "deterministic_uid", "write_mr_series"]

#: UID root used for every phantom UID (pydicom's documented example root is
#: for pydicom's own generation; we derive ours from it with a hash suffix).
UID_PREFIX = "1.2.826.0.1.3680043.8.498."


def deterministic_uid(*parts: object) -> str:
    """A valid UID (<= 64 chars) derived from ``parts`` (same parts, same UID)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    number = str(int(digest, 16))
    return (UID_PREFIX + number)[:64].rstrip(".")


@dataclass(frozen=True)
class PhantomStudy:
    """Patient and study level attributes shared by all series of one phantom study."""

    study_instance_uid: str
    frame_of_reference_uid: str
    patient_id: str
    patient_name: str
    patient_birth_date: str  # YYYYMMDD
    patient_sex: str  # M, F, O
    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS
    accession_number: str
    study_description: str
    study_id: str = "1"
    referring_physician: str = ""
    institution_name: str = "dicom-node phantom site"
    manufacturer: str = "SIEMENS"
    model_name: str = "Phantom 1.5T"
    field_strength: float = 1.5
    patient_weight: float | None = None


@dataclass(frozen=True)
class PhantomSeries:
    """Series level attributes (sequence parameters in the scanner's own words)."""

    series_instance_uid: str
    series_number: int
    series_description: str
    body_part_examined: str
    echo_time: float
    repetition_time: float
    scanning_sequence: str = "SE"
    sequence_variant: str = "SK\\SP"
    scan_options: str = ""
    mr_acquisition_type: str = "2D"
    inversion_time: float | None = None
    echo_train_length: int | None = None
    flip_angle: float = 90.0
    protocol_name: str | None = None
    sequence_name: str | None = None
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "OTHER")
    patient_position: str = "HFS"
    acquisition_number: int = 1
    extra: dict[str, object] = field(default_factory=dict)


def _ds_str(value: float) -> str:
    """A DS string of at most 16 characters."""
    text = f"{value:.6g}"
    if len(text) > 16:
        text = f"{value:.8e}"[:16]
    return text


def write_mr_series(
    out_dir: Path,
    pixels: np.ndarray,
    *,
    positions: np.ndarray,
    orientation: Sequence[float],
    pixel_spacing: tuple[float, float],
    slice_thickness: float,
    study: PhantomStudy,
    series: PhantomSeries,
    instance_offset: int = 0,
) -> list[Path]:
    """Write one MR series, a file per slice, and return the paths.

    Parameters
    ----------
    out_dir
        Directory to write to (created); files are named ``IM<number>.dcm``.
    pixels
        ``(n_slices, rows, columns)`` unsigned 16-bit (or castable) values.
    positions
        ``(n_slices, 3)`` ImagePositionPatient of each slice (LPS, mm): the
        centre of the first transmitted voxel of the slice.
    orientation
        ImageOrientationPatient: row direction cosine (along a row, increasing
        column index) then column direction cosine (increasing row index).
    pixel_spacing
        ``(row spacing, column spacing)`` in mm, as DICOM PixelSpacing.
    slice_thickness
        SliceThickness in mm.
    instance_offset
        Added to InstanceNumber (several stacks in one series).
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 3:
        raise ValueError(f"pixels must be (slices, rows, columns), got shape {pixels.shape}")
    positions = np.asarray(positions, dtype=float)
    if positions.shape != (pixels.shape[0], 3):
        raise ValueError(f"positions must be ({pixels.shape[0]}, 3), got {positions.shape}")
    data = np.clip(np.rint(pixels), 0, 65535).astype(np.uint16)
    out_dir.mkdir(parents=True, exist_ok=True)
    row_dir = np.asarray(orientation[:3], dtype=float)
    col_dir = np.asarray(orientation[3:], dtype=float)
    normal = np.cross(row_dir, col_dir)
    paths = []
    for index, (plane, ipp) in enumerate(zip(data, positions)):
        number = instance_offset + index + 1
        sop_uid = deterministic_uid(series.series_instance_uid, "sop", number)
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = list(series.image_type)
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study.study_date
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = study.study_time
        ds.AccessionNumber = study.accession_number
        ds.Modality = "MR"
        ds.Manufacturer = study.manufacturer
        ds.InstitutionName = study.institution_name
        ds.ReferringPhysicianName = study.referring_physician
        ds.StudyDescription = study.study_description
        ds.SeriesDescription = series.series_description
        ds.ManufacturerModelName = study.model_name
        ds.PatientName = study.patient_name
        ds.PatientID = study.patient_id
        ds.PatientBirthDate = study.patient_birth_date
        ds.PatientSex = study.patient_sex
        if study.patient_weight is not None:
            ds.PatientWeight = _ds_str(study.patient_weight)
        ds.BodyPartExamined = series.body_part_examined
        ds.ScanningSequence = series.scanning_sequence
        ds.SequenceVariant = series.sequence_variant
        ds.ScanOptions = series.scan_options
        ds.MRAcquisitionType = series.mr_acquisition_type
        if series.sequence_name:
            ds.SequenceName = series.sequence_name
        ds.SliceThickness = _ds_str(slice_thickness)
        ds.RepetitionTime = _ds_str(series.repetition_time)
        ds.EchoTime = _ds_str(series.echo_time)
        if series.inversion_time is not None:
            ds.InversionTime = _ds_str(series.inversion_time)
        ds.NumberOfAverages = "1"
        ds.MagneticFieldStrength = _ds_str(study.field_strength)
        ds.EchoTrainLength = series.echo_train_length  # type 2: empty when unknown
        ds.FlipAngle = _ds_str(series.flip_angle)
        ds.ProtocolName = series.protocol_name or series.series_description
        ds.PatientPosition = series.patient_position
        ds.StudyInstanceUID = study.study_instance_uid
        ds.SeriesInstanceUID = series.series_instance_uid
        ds.StudyID = study.study_id
        ds.SeriesNumber = series.series_number
        ds.AcquisitionNumber = series.acquisition_number
        ds.InstanceNumber = number
        ds.ImagePositionPatient = [_ds_str(v) for v in ipp]
        ds.ImageOrientationPatient = [_ds_str(v) for v in orientation]
        ds.FrameOfReferenceUID = study.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds_str(float(np.dot(ipp, normal)))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(plane.shape[0]), int(plane.shape[1])
        ds.PixelSpacing = [_ds_str(pixel_spacing[0]), _ds_str(pixel_spacing[1])]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        hi = int(plane.max())
        center = max(hi // 2, 1)
        ds.WindowCenter = center
        ds.WindowWidth = max(2 * center, 2)
        ds.PixelData = plane.tobytes()
        for keyword, value in series.extra.items():
            setattr(ds, keyword, value)

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = UID(sop_uid)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "DICOM_NODE_PH"
        ds.file_meta = meta
        path = out_dir / f"IM{number:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def read_back(path: Path) -> Dataset:
    """Read a written file (used by tests)."""
    return pydicom.dcmread(path)
