"""TID 1500 content of a lumbar (LDH) result: one finding per disc level.

Per level with a herniation:

* a Planar ROI group (TID 1410) on the slice the grade was read on, its region the
  herniation's bounding box as a closed SCOORD POLYLINE (what OHIF draws), with
  the finding site (disc code, laterality), MSU size and zone (private codes),
  depth, reference distance, ratio, area and confidence;
* a Volumetric ROI group (TID 1411) with the same tracking identifier referencing
  the level's herniation segment in the SEG, with its volume (what Slicer's
  QuantitativeReporting lists).

Normal levels get a group saying "herniation absent, MSU size 0", so absence is a
statement, not a gap: a Planar ROI group (TID 1410) whose region is the disc's bounding
box on the slice the level was assessed on, or a TID 1501 group when no disc pixel is
there. The region is there for OHIF 3.13.2: its SR loader reads ``coords[0]`` of every
measurement group and throws on a group without a SCOORD (docs/results.md, "Viewers").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from dicom_node.results import codes
from dicom_node.results.errors import ResultsInputError
from dicom_node.results.seg_ldh import PIPELINE, herniation_tracking, ldh_model
from dicom_node.results.sources import SourceIndex
from dicom_node.results.sr import algorithm_id, box_polyline, build_report, mask_box, referenced_segment
from dicom_node.results.summary import ldh_summary
from inference.labels import AxialLabel
from inference.ldh.result import LdhResult, LevelFinding

__all__ = ["encode_ldh_sr", "level_groups", "segment_lookup"]

logger = logging.getLogger(__name__)

Group = (
    hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
    | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
    | hd.sr.MeasurementsAndQualitativeEvaluations
)


def segment_lookup(segs: Sequence[Dataset]) -> dict[str, tuple[Dataset, int]]:
    """Tracking UID -> (SEG, segment number), first SEG wins."""
    out: dict[str, tuple[Dataset, int]] = {}
    for seg in segs:
        for item in seg.SegmentSequence:
            out.setdefault(str(item.TrackingUID), (seg, int(item.SegmentNumber)))
    return out


def _site(f: LevelFinding) -> hd.sr.FindingSite:
    side = {"left": codes.LEFT, "right": codes.RIGHT}.get(f.side or "")
    location = codes.DISC_CODES.get(f.level or "", codes.LUMBAR_SPINE)
    return hd.sr.FindingSite(anatomic_location=location, laterality=side)


def _qualitative(f: LevelFinding) -> list[hd.sr.QualitativeEvaluation]:
    items = [
        hd.sr.QualitativeEvaluation(codes.HERNIATION_PRESENCE, codes.PRESENT if f.size > 0 else codes.ABSENT),
        hd.sr.QualitativeEvaluation(codes.MSU_SIZE_NAME, codes.MSU_SIZE[f.size]),
    ]
    if f.size > 0 and f.zone in codes.MSU_ZONE:
        items.append(hd.sr.QualitativeEvaluation(codes.MSU_ZONE_NAME, codes.MSU_ZONE[f.zone]))
    method = codes.LEVEL_INFERRED if f.level_inferred else codes.LEVEL_FROM_SAGITTAL
    items.append(hd.sr.QualitativeEvaluation(codes.LEVEL_METHOD_NAME, method))
    return items


def _measurements(f: LevelFinding, image: Dataset | None, frame: int | None) -> list[hd.sr.Measurement]:
    refs = None
    if image is not None:
        refs = [hd.sr.SourceImageForMeasurement.from_source_image(image, [frame] if frame else None)]
    values = [
        (codes.HERNIATION_DEPTH, f.depth_mm, codes.MM),
        (codes.INTRAFACET_DISTANCE, f.reference_mm, codes.MM),
        (codes.HERNIATION_RATIO, f.ratio_percent, codes.PERCENT),
        (codes.HERNIATION_AREA, f.area_mm2, codes.MM2),
        (codes.MODEL_CONFIDENCE, f.confidence, codes.NO_UNITS),
    ]
    return [
        hd.sr.Measurement(name=name, value=float(round(value, 3)), unit=unit, referenced_images=refs)
        for name, value, unit in values
        if value is not None and np.isfinite(value)
    ]


def _bbox_region(f: LevelFinding, image: Dataset, frame: int | None) -> hd.sr.ImageRegion | None:
    if f.bbox is None:
        return None
    return _box(f.bbox, image, frame)


def _disc_box(f: LevelFinding, result: LdhResult) -> tuple[int, int, int, int] | None:
    """Pixel box ``(row_min, col_min, row_max, col_max)`` of the disc on the slice ``f`` was assessed on."""
    if f.slice is None:
        return None
    stack = next((s for s in result.segmentations if s.stack_index == f.slice.stack_index), None)
    if stack is None or not 0 <= f.slice.slice_index < len(stack.labels):
        return None
    return mask_box(np.asarray(stack.labels[f.slice.slice_index]) == AxialLabel.DISC)


def _box(bbox: tuple[int, int, int, int], image: Dataset, frame: int | None) -> hd.sr.ImageRegion:
    # SCOORD: (column, row); (0, 0) is the top-left corner of the top-left pixel
    data = box_polyline(bbox)
    source = hd.sr.SourceImageForRegion.from_source_image(image, [frame] if frame else None)
    return hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=data, source_image=source)


def level_groups(
    f: LevelFinding, study_uid: str, result: LdhResult, sources: SourceIndex, segments: dict[str, tuple[Dataset, int]]
) -> list[Group]:
    """The measurement groups of one disc level (see the module docstring)."""
    model = ldh_model(result)
    tid, tuid = herniation_tracking(study_uid, model, f.level)
    tracking = hd.sr.TrackingIdentifier(uid=tuid, identifier=tid)
    common = dict(
        tracking_identifier=tracking,
        finding_type=codes.DISC_HERNIATION,
        finding_category=codes.MORPHOLOGICALLY_ABNORMAL,
        algorithm_id=algorithm_id(model),
        finding_sites=[_site(f)],
    )
    image = sources.get(f.slice.sop_instance_uid) if f.slice is not None else None
    frame = f.slice.frame_number if f.slice is not None else None
    if f.size == 0:
        disc = _disc_box(f, result) if image is not None else None
        if disc is not None and image is not None:
            # the disc that was assessed, on the slice it was assessed on (OHIF needs a region)
            return [hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                **common, referenced_region=_box(disc, image, frame),  # type: ignore[arg-type]
                qualitative_evaluations=_qualitative(f))]
        return [hd.sr.MeasurementsAndQualitativeEvaluations(
            **common, qualitative_evaluations=_qualitative(f))]  # type: ignore[arg-type]
    groups: list[Group] = []
    region = _bbox_region(f, image, frame) if image is not None else None
    if region is not None:
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            **common, referenced_region=region,  # type: ignore[arg-type]
            measurements=_measurements(f, image, frame), qualitative_evaluations=_qualitative(f)))
    else:
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            **common, measurements=_measurements(f, image, frame),  # type: ignore[arg-type]
            qualitative_evaluations=_qualitative(f)))
    if tuid in segments:
        seg, number = segments[tuid]
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            **common,  # type: ignore[arg-type]
            referenced_segment=referenced_segment(seg, number),
            measurements=[hd.sr.Measurement(name=codes.HERNIATION_VOLUME, value=float(round(f.volume_mm3, 3)),
                                            unit=codes.MM3)],
        ))
    return groups


def encode_ldh_sr(result: LdhResult, sources: SourceIndex, segs: Sequence[Dataset]) -> hd.sr.EnhancedSR:
    """The TID 1500 report of a lumbar result (``segs``: its SEG instances, for segment references).

    Raises
    ------
    ResultsInputError
        A source image the result names was not given.
    """
    model = ldh_model(result)
    slice_uids = [s.sop_instance_uid for seg in result.segmentations for s in seg.slices]
    images = sources.datasets(slice_uids)
    if not images:
        raise ResultsInputError("the lumbar result names no source slice")
    study_uid = str(images[0].StudyInstanceUID)
    lookup = segment_lookup(segs)
    groups: list[Group] = []
    for finding in result.findings:
        groups.extend(level_groups(finding, study_uid, result, sources, lookup))
    if not groups:
        groups.append(_no_levels_group(study_uid, result))
    return build_report(
        pipeline=PIPELINE,
        model=model,
        groups=groups,
        source_images=images,
        evidence=[*images, *segs],
        summary=ldh_summary(result),
        study_uid=study_uid,
        title="LDH",
    )


def _no_levels_group(study_uid: str, result: LdhResult) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """A group for a study where no disc level could be read (still a statement)."""
    model = ldh_model(result)
    tid, tuid = herniation_tracking(study_uid, model, None)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=tuid, identifier=tid),
        finding_type=codes.DISC_HERNIATION,
        algorithm_id=algorithm_id(model),
        finding_sites=[hd.sr.FindingSite(codes.LUMBAR_SPINE)],
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(codes.MSU_SIZE_NAME, codes.MSU_SIZE[0])],
    )
