"""DICOM-SEG encoder (highdicom): one SEG instance per source stack.

A SEG written here references every source frame of its stack, in the stack's
slice order, with empty frames kept (``omit_empty_frames=False``) so that viewers
that assume one SEG frame per source frame line up. Segments carry SNOMED CT
category/type/anatomic region codes, a tracking ID and UID, the algorithm
identification (name, version, family, weights checksum) and a recommended
display colour. Binary by default; ``fractional=True`` writes FRACTIONAL
PROBABILITY where a probability map is given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code

from dicom_node.results import codes
from dicom_node.results.errors import ResultsEncodingError, ResultsInputError
from dicom_node.results.identity import (
    DEVICE_SERIAL_NUMBER,
    MANUFACTURER,
    MODEL_NAME,
    SOFTWARE_VERSION,
    ModelIdentity,
)

__all__ = ["SegmentSpec", "algorithm_identification", "build_seg"]

logger = logging.getLogger(__name__)


@dataclass
class SegmentSpec:
    """One segment to write.

    Attributes
    ----------
    label
        Segment Label (short, shown by viewers), e.g. ``"herniation L4/L5"``.
    category, property_type
        SNOMED CT Segmented Property Category and Type.
    mask
        ``(slices, rows, cols)`` bool mask, or float 0-1 probabilities.
    tracking_id, tracking_uid
        Tracking identifier and UID (the SR's measurement group uses the same ones).
    color
        Recommended display colour, RGB 0-255.
    anatomic_regions
        Anatomic Region codes.
    laterality
        ``"left"``, ``"right"`` or ``None`` (written as a type modifier).
    """

    label: str
    category: Code
    property_type: Code
    mask: np.ndarray
    tracking_id: str
    tracking_uid: str
    color: tuple[int, int, int]
    anatomic_regions: tuple[Code, ...] = ()
    laterality: str | None = None


def algorithm_identification(model: ModelIdentity) -> hd.AlgorithmIdentificationSequence:
    """Algorithm name, version, family (Artificial Intelligence) and the weights checksum."""
    parameters = {"weights_sha256": model.sha256 or "none", "notice": model.notice}
    return hd.AlgorithmIdentificationSequence(
        name=model.name[:64],
        family=codes.ARTIFICIAL_INTELLIGENCE,
        version=model.version[:64],
        source=MANUFACTURER,
        parameters=parameters,
    )


def _frame_array(mask: np.ndarray, sources: Sequence[Dataset], frame_numbers: Sequence[int | None]) -> np.ndarray:
    """Place the stack's slices on the frames of the source datasets.

    Single-frame sources: one SEG frame per source image, in stack order. One
    multi-frame source: the mask is spread over all its frames (frames not in
    the stack stay empty).
    """
    if all(f is None for f in frame_numbers):
        return mask
    if len(sources) != 1:
        raise ResultsInputError("a stack of frames from several multi-frame images cannot be written as one SEG")
    n_frames = int(sources[0].get("NumberOfFrames", 1))
    out = np.zeros((n_frames, *mask.shape[1:]), dtype=mask.dtype)
    for k, frame in enumerate(frame_numbers):
        if frame is None or not 1 <= frame <= n_frames:
            raise ResultsInputError(f"slice {k} names frame {frame} of a {n_frames}-frame image")
        out[frame - 1] = mask[k]
    return out


def _description(number: int, spec: SegmentSpec, model: ModelIdentity) -> hd.seg.SegmentDescription:
    desc = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=spec.label[:64],
        segmented_property_category=spec.category,
        segmented_property_type=spec.property_type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm_identification(model),
        tracking_uid=spec.tracking_uid,
        tracking_id=spec.tracking_id[:64],
        anatomic_regions=list(spec.anatomic_regions) or None,
        display_color=hd.color.CIELabColor.from_rgb(*spec.color),
    )
    side = {"left": codes.LEFT, "right": codes.RIGHT}.get(spec.laterality or "")
    if side is not None:
        # PS3.3 Segment Description Macro: the modifier sits inside the type code's item
        # (>Segmented Property Type Modifier Code Sequence). One level up, dciodvfy calls it
        # "not present in standard DICOM IOD" and dcmqi (Slicer) drops the laterality.
        desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = DicomSequence(
            [hd.sr.CodedConcept.from_code(side)]
        )
    return desc


def build_seg(
    *,
    sources: Sequence[Dataset],
    frame_numbers: Sequence[int | None],
    segments: Sequence[SegmentSpec],
    model: ModelIdentity,
    series_instance_uid: str,
    series_number: int,
    sop_instance_uid: str,
    instance_number: int,
    series_description: str,
    content_description: str,
    content_label: str,
    fractional: bool = False,
) -> hd.seg.Segmentation:
    """Encode the segments of one stack as a SEG.

    Parameters
    ----------
    sources
        Source image datasets, one per slice in stack order (single-frame), or the one
        multi-frame image the slices are frames of.
    frame_numbers
        Per slice, its frame number in a multi-frame source (``None`` for single-frame).
    segments
        At least one; all masks ``(slices, rows, cols)`` with ``slices == len(frame_numbers)``.
    fractional
        Write FRACTIONAL (PROBABILITY, 8 bit) instead of BINARY.

    Raises
    ------
    ResultsInputError
        No segment, or masks that do not fit the sources.
    ResultsEncodingError
        highdicom refused the object.
    """
    if not segments:
        raise ResultsInputError("a SEG needs at least one segment")
    n = len(frame_numbers)
    shape = segments[0].mask.shape
    for spec in segments:
        if spec.mask.shape != shape or spec.mask.ndim != 3 or spec.mask.shape[0] != n:
            raise ResultsInputError(f"segment {spec.label!r} mask {spec.mask.shape} does not fit {n} slices {shape}")
    rows, cols = int(sources[0].Rows), int(sources[0].Columns)
    if shape[1:] != (rows, cols):
        raise ResultsInputError(f"masks are {shape[1:]}, source images {rows} x {cols}")
    if fractional:
        stacked = np.stack([np.clip(np.asarray(s.mask, dtype=np.float32), 0.0, 1.0) for s in segments], axis=-1)
    else:
        stacked = np.stack([np.asarray(s.mask) > 0.5 if s.mask.dtype.kind == "f" else s.mask.astype(bool)
                            for s in segments], axis=-1)
    pixels = _frame_array(stacked, sources, frame_numbers)
    descriptions = [_description(i + 1, spec, model) for i, spec in enumerate(segments)]
    seg_type = hd.seg.SegmentationTypeValues.FRACTIONAL if fractional else hd.seg.SegmentationTypeValues.BINARY
    try:
        seg = hd.seg.Segmentation(
            source_images=list(sources),
            pixel_array=pixels,
            segmentation_type=seg_type,
            segment_descriptions=descriptions,
            series_instance_uid=series_instance_uid,
            series_number=series_number,
            sop_instance_uid=sop_instance_uid,
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL_NAME,
            software_versions=SOFTWARE_VERSION,
            device_serial_number=DEVICE_SERIAL_NUMBER,
            fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY if fractional else None,
            content_description=content_description[:64],
            content_label=content_label[:16],
            content_creator_name="dicom-node^AI",
            series_description=series_description[:64],
            omit_empty_frames=False,
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ResultsEncodingError(f"highdicom refused the SEG {series_description!r}: {exc}") from exc
    logger.info("SEG %s: %d segment(s) on %d frame(s)", sop_instance_uid, len(segments), pixels.shape[0])
    return seg
