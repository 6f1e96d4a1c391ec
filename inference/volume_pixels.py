"""Decode the pixel data of a sorted stack of frames into a float32 array.

Decoding goes through pydicom's pixel handlers (native, RLE, JPEG baseline and
lossless, JPEG-LS, JPEG 2000 with the pylibjpeg / pyjpegls plug-ins), then:
rescale slope and intercept, and MONOCHROME1 inverted so that a higher value is
always brighter. Colour images are refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from inference.errors import EmptyVolumeError, PixelDataError, UnsupportedPhotometricError
from inference.volume_frames import FrameRecord

__all__ = ["decode_stack"]

logger = logging.getLogger(__name__)

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _has_pixels(ds: Dataset) -> bool:
    return any(keyword in ds for keyword in _PIXEL_KEYWORDS)


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return f"{uid} ({uid.name})" if uid is not None else "unknown transfer syntax"


def _check_photometric(ds: Dataset, label: str) -> str:
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if samples != 1:
        raise UnsupportedPhotometricError(f"{label} has {samples} samples per pixel; only greyscale is supported")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise UnsupportedPhotometricError(
            f"{label} has photometric interpretation {photometric or '(none)'}; "
            "only MONOCHROME1 and MONOCHROME2 are supported"
        )
    return photometric


def _load_full(record: FrameRecord) -> Dataset:
    """The instance with its pixel data (re-read from the file when only the header is held)."""
    ds = record.dataset
    if _has_pixels(ds):
        _ensure_transfer_syntax(ds)
        return ds
    source = record.path
    if source is None and isinstance(getattr(ds, "filename", None), str):
        source = Path(ds.filename)
    if source is None:
        raise PixelDataError(f"instance {record.sop_instance_uid} has no pixel data and no file to read it from")
    try:
        full = pydicom.dcmread(source, force=True)  # force: files without preamble were accepted as headers
    except Exception as exc:  # noqa: BLE001 - any read failure is reported with its cause
        raise PixelDataError(f"cannot re-read {source} for its pixel data: {exc}") from exc
    if not _has_pixels(full):
        raise PixelDataError(f"instance {record.sop_instance_uid} ({source}) has no pixel data")
    _ensure_transfer_syntax(full)
    return full


def _ensure_transfer_syntax(ds: Dataset) -> None:
    """Give a dataset read without file meta the (uncompressed) transfer syntax it was read in."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        return
    implicit, little = ds.original_encoding
    if implicit is None:
        return
    if implicit:
        syntax = ImplicitVRLittleEndian
    else:
        syntax = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    if meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    logger.debug("instance %s has no TransferSyntaxUID; decoding as %s", ds.get("SOPInstanceUID"), syntax.name)


def _invert_monochrome1(raw: np.ndarray, ds: Dataset) -> np.ndarray:
    """Invert stored values within their range, so that MONOCHROME1 reads like MONOCHROME2."""
    values = raw.astype(np.float64)
    if raw.dtype.kind == "f":
        return -values
    bits = int(ds.get("BitsStored", raw.dtype.itemsize * 8) or raw.dtype.itemsize * 8)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -1.0 - values  # min + max of a two's complement range is -1
    return float(2**bits - 1) - values


def decode_stack(records: Sequence[FrameRecord]) -> np.ndarray:
    """Decode frames (already in volume order) into a ``(slices, rows, columns)`` float32 array.

    Parameters
    ----------
    records
        Frames of one stack, sorted along the normal.

    Returns
    -------
    numpy.ndarray
        Modality values (after rescale), MONOCHROME1 inverted.

    Raises
    ------
    PixelDataError
        If an instance has no pixel data, fails to decode, or decodes to the
        wrong shape.
    UnsupportedPhotometricError
        For colour images.
    EmptyVolumeError
        If every stored value is zero, or every voxel has one value.
    """
    if not records:
        raise PixelDataError("no frames to decode")
    rows, columns = records[0].rows, records[0].columns
    out = np.empty((len(records), rows, columns), dtype=np.float32)
    cache: dict[int, tuple[Dataset, np.ndarray]] = {}
    raw_nonzero = False
    for k, record in enumerate(records):
        label = f"instance {record.label}"
        key = id(record.dataset)
        if key not in cache:
            ds = _load_full(record)
            photometric = _check_photometric(ds, label)
            try:
                pixels = ds.pixel_array
            except Exception as exc:  # noqa: BLE001 - decoder errors have many types
                raise PixelDataError(
                    f"cannot decode the pixel data of {label} ({_transfer_syntax(ds)}): {exc}"
                ) from exc
            pixels = np.asarray(pixels)
            if photometric == "MONOCHROME1":
                logger.debug("inverting MONOCHROME1 instance %s", record.sop_instance_uid)
            cache = {key: (ds, pixels)}  # keep one instance at a time in memory
        ds, pixels = cache[key]
        frame = pixels
        if record.frame_index is not None:
            if pixels.ndim == 3:
                if record.frame_index >= pixels.shape[0]:
                    raise PixelDataError(
                        f"{label}: pixel data holds {pixels.shape[0]} frames, frame {record.frame_number} is missing"
                    )
                frame = pixels[record.frame_index]
            elif record.frame_index != 0:
                raise PixelDataError(f"{label}: pixel data holds one frame, frame {record.frame_number} is missing")
        if frame.shape != (rows, columns):
            raise PixelDataError(f"{label} decodes to shape {frame.shape}, expected {(rows, columns)}")
        raw_nonzero = raw_nonzero or bool(np.any(frame))
        if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
            values = _invert_monochrome1(frame, ds)
        else:
            values = frame.astype(np.float64)
        slope, intercept = record.rescale
        out[k] = values * slope + intercept
        if not np.any(frame):
            logger.warning("slice %d (%s) decodes to all zeros", k, record.label)
    if not raw_nonzero:
        raise EmptyVolumeError(
            f"the stack of {len(records)} slices of series {records[0].series_instance_uid} decodes to all zeros"
        )
    if not np.all(np.isfinite(out)):
        raise PixelDataError(f"series {records[0].series_instance_uid} decodes to non-finite values")
    if float(out.max()) == float(out.min()):
        raise EmptyVolumeError(
            f"every voxel of the stack of series {records[0].series_instance_uid} has the value {float(out.min())}"
        )
    return out
