"""TID 1500 Measurement Report documents (highdicom), shared by both pipelines.

:func:`build_report` wraps the measurement groups a pipeline module made into an
Enhanced SR (no 3D coordinates are needed: image regions are SCOORD on the slice
they were read on): observer context naming the device and the algorithm,
procedure reported, image library of the source images, the plain-language
summary, the research-use notice and the weights checksum as TEXT items (TID 1500
row "Qualitative Evaluations"), and the private coding scheme declared in the
Coding Scheme Identification Sequence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from dicom_node.results import codes
from dicom_node.results.errors import ResultsEncodingError
from dicom_node.results.identity import (
    DEVICE_SERIAL_NUMBER,
    MANUFACTURER,
    SOFTWARE_VERSION,
    SR,
    ModelIdentity,
    derive_uid,
    instance_uid,
    series_number,
    series_uid,
)

__all__ = [
    "algorithm_id",
    "box_coordinates",
    "box_polyline",
    "build_report",
    "mask_box",
    "observation_context",
    "referenced_segment",
    "summary_items",
]

logger = logging.getLogger(__name__)

#: Procedure reported (CID 100 allows any imaging procedure code).
PROCEDURES: dict[str, hd.sr.CodedConcept] = {
    "ldh": hd.sr.CodedConcept("241646000", "SCT", "MRI of lumbar spine"),
    "sij": hd.sr.CodedConcept("433138003", "SCT", "MRI of sacroiliac joint"),
}


def algorithm_id(model: ModelIdentity) -> hd.sr.AlgorithmIdentification:
    """TID 4019 Algorithm Identification: name, version and the weights checksum as a parameter."""
    return hd.sr.AlgorithmIdentification(
        name=model.name[:64], version=model.version[:64], parameters=[f"weights sha256 {model.sha256 or 'none'}"]
    )


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(row_min, col_min, row_max, col_max)`` of the set pixels of a 2D mask, ``None`` when empty."""
    rows, cols = np.nonzero(np.asarray(mask))
    if rows.size == 0:
        return None
    return int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max())


def box_polyline(bbox: tuple[int, int, int, int]) -> np.ndarray:
    """Closed SCOORD POLYLINE (column, row) around the pixels of ``bbox``, on pixel corners."""
    r0, c0, r1, c1 = bbox
    x0, y0, x1, y1 = float(c0), float(r0), float(c1 + 1), float(r1 + 1)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=float)


def box_coordinates(
    bbox: tuple[int, int, int, int], image: Dataset, frame: int | None
) -> hd.sr.CoordinatesForMeasurement:
    """TID 300 "INFERRED FROM" TID 320 SCOORD: the box a measurement was made in, on ``image``.

    OHIF 3.13.2 reads the first SCOORD of a measurement group, or of its NUM items when the
    group has none, and throws when there is none (docs/results.md, "Viewers").
    """
    return hd.sr.CoordinatesForMeasurement(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=box_polyline(bbox),
        source_image=hd.sr.SourceImageForRegion.from_source_image(image, [frame] if frame else None),
    )


def observation_context(model: ModelIdentity) -> hd.sr.ObservationContext:
    """Observer: the device (dicom-node) running the named algorithm."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=derive_uid("device", MANUFACTURER, model.name, model.version, model.sha256 or ""),
        name=f"{MANUFACTURER} {model.name}"[:64],
        manufacturer_name=MANUFACTURER,
        model_name=f"{model.name} {model.version}"[:64],
        serial_number=DEVICE_SERIAL_NUMBER,
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
            observer_identifying_attributes=device,
        )
    )


def summary_items(summary: str, model: ModelIdentity) -> hd.sr.ContainerContentItem:
    """The "Qualitative Evaluations" container of TID 1500 with the summary, the notice and the checksum."""
    container = hd.sr.ContainerContentItem(
        name=codes.QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    container.ContentSequence = hd.sr.ContentSequence([
        hd.sr.TextContentItem(name=codes.SUMMARY, value=summary[:1024] or "no findings",
                              relationship_type=hd.sr.RelationshipTypeValues.CONTAINS),
        hd.sr.TextContentItem(name=codes.RESEARCH_NOTICE, value=model.notice or "research use only",
                              relationship_type=hd.sr.RelationshipTypeValues.CONTAINS),
        hd.sr.TextContentItem(name=codes.WEIGHTS_SHA256, value=model.sha256 or "none",
                              relationship_type=hd.sr.RelationshipTypeValues.CONTAINS),
    ])
    return container


def build_report(
    *,
    pipeline: str,
    model: ModelIdentity,
    groups: Sequence[
        hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
        | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
        | hd.sr.MeasurementsAndQualitativeEvaluations
    ],
    source_images: Sequence[Dataset],
    evidence: Sequence[Dataset],
    summary: str,
    study_uid: str,
    title: str,
) -> hd.sr.EnhancedSR:
    """Assemble the TID 1500 document.

    Parameters
    ----------
    groups
        At least one measurement group (normal findings are groups too).
    source_images
        The images of the image library (the source series).
    evidence
        Everything referenced (source images and the SEG instances).
    study_uid
        The study reported on: the SR's series and instance UIDs derive from it.
    title
        The report's name in its series description (``"LDH"``, ``"SIJ"``).

    Raises
    ------
    ResultsEncodingError
        highdicom refused the content.
    """
    sop_instance_uid = instance_uid(study_uid, pipeline, model, SR)
    try:
        report = hd.sr.MeasurementReport(
            observation_context=observation_context(model),
            procedure_reported=PROCEDURES[pipeline],
            imaging_measurements=list(groups),
            title=codes.IMAGING_MEASUREMENT_REPORT,
            referenced_images=list(source_images),
        )
        report[0].ContentSequence.append(summary_items(summary, model))
        sr = hd.sr.EnhancedSR(
            evidence=list(evidence),
            content=report[0],
            series_instance_uid=series_uid(study_uid, pipeline, model, SR),
            series_number=series_number(pipeline, SR),
            sop_instance_uid=sop_instance_uid,
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            is_final=False,
            is_verified=False,
            series_description=f"AI {title} report {model.name} {model.version} RESEARCH USE"[:64],
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ResultsEncodingError(f"highdicom refused the {pipeline} SR: {exc}") from exc
    sr.CodingSchemeIdentificationSequence = DicomSequence([codes.coding_scheme_item()])  # type: ignore[assignment]
    sr.SoftwareVersions = [SOFTWARE_VERSION, f"{model.name} {model.version}"[:64]]  # type: ignore[assignment]
    logger.info("SR %s: %d measurement group(s)", sop_instance_uid, len(groups))
    return sr


def referenced_segment(seg: Dataset, segment_number: int) -> hd.sr.ReferencedSegment:
    """A reference to one segment of ``seg`` with the source series it was made on.

    The source is given as the series (TID 1411 "Source series for segmentation", one
    UIDREF), as dcmqi writes it (Slicer's QuantitativeReporting reads what dcmqi writes).
    Built by hand because :meth:`hd.sr.ReferencedSegment.from_segmentation` (highdicom 0.28)
    fails on a SEG with one segment (its Segment Identification is then in the shared
    functional groups).
    """
    return hd.sr.ReferencedSegment(
        sop_class_uid=str(seg.SOPClassUID),
        sop_instance_uid=str(seg.SOPInstanceUID),
        segment_number=segment_number,
        source_series=hd.sr.SourceSeriesForSegmentation(str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)),
    )
