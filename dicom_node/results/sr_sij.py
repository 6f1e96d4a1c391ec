"""TID 1500 content of an SIJ result.

* one Volumetric ROI group (TID 1411) per joint, referencing the fat-metaplasia
  segment of that side in the SEG, with its volume (mL);
* one TID 1501 group for the study: total FM volume, the SPARCC-style FM score
  (0-40), the oedema assessment (ASAS positive MRI present/absent, or "not
  assessed" with the reason), the axSpA probability, threshold and class;
* one TID 1501 group per scored slice (fat metaplasia, and oedema when assessed):
  the slice score referencing the source slice, and per quadrant present/absent.

Every finding has an image region, because OHIF 3.13.2 throws on loading an SR with a
measurement group (merged by tracking UID) that has no SCOORD (docs/results.md,
"Viewers"): each joint's Volumetric ROI group has a Planar ROI group (TID 1410) beside
it with the same tracking identifier, its region the box of that side's FM on the slice
with most of it (the side's ilium on the middle scored slice when there is no FM), and
FM present/absent; TID 1410/1411 take no coordinates inside a measurement. The SPARCC
scores of the TID 1501 groups are "INFERRED FROM" (TID 300 / TID 320 SCOORD) the box of
the sacrum and ilia on each slice scored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from dicom_node.results import codes
from dicom_node.results.identity import ModelIdentity, derive_uid
from dicom_node.results.seg_sij import FM_NAMES, PIPELINE, sij_model, sij_tracking
from dicom_node.results.sources import SourceIndex
from dicom_node.results.sr import (
    algorithm_id,
    box_coordinates,
    box_polyline,
    build_report,
    mask_box,
    referenced_segment,
)
from dicom_node.results.sr_ldh import Group, segment_lookup
from dicom_node.results.summary import sij_summary
from inference.labels import SijLabel
from inference.sij.result import QuadrantRow, SijResult

__all__ = ["encode_sij_sr"]

logger = logging.getLogger(__name__)


def _tracking(study_uid: str, model: ModelIdentity, what: str) -> hd.sr.TrackingIdentifier:
    uid = derive_uid("tracking", study_uid, PIPELINE, model.name, model.version, model.sha256 or "", what)
    return hd.sr.TrackingIdentifier(uid=uid, identifier=what)


def _side_site(side: str | None) -> hd.sr.FindingSite:
    lat = {"left": codes.LEFT, "right": codes.RIGHT}.get(side or "")
    return hd.sr.FindingSite(anatomic_location=codes.SACROILIAC_JOINT, laterality=lat)


def _slice_box(
    result: SijResult, sources: SourceIndex, k: int, box: tuple[int, int, int, int] | None
) -> hd.sr.CoordinatesForMeasurement:
    """``box`` on T1 slice ``k`` (the whole slice when ``None``)."""
    image = sources.get(result.sop_instance_uids[k])
    if box is None:
        box = (0, 0, int(image.Rows) - 1, int(image.Columns) - 1)
    return box_coordinates(box, image, result.frame_numbers[k])


def _joints_box(result: SijResult, sources: SourceIndex, k: int) -> hd.sr.CoordinatesForMeasurement:
    """The sacrum and both ilia on T1 slice ``k``: the region its quadrants were scored in."""
    bones = np.isin(result.labels[k], (SijLabel.SACRUM, SijLabel.ILIUM_LEFT, SijLabel.ILIUM_RIGHT))
    return _slice_box(result, sources, k, mask_box(bones))


def _fm_region(result: SijResult, sources: SourceIndex, side: str) -> hd.sr.ImageRegion:
    """The side's FM on the slice with most of it; without FM, the side's ilium on the middle scored slice."""
    masks = {m.name: m.array for m in result.masks()}
    fm = masks[f"fat_metaplasia_{side}"]
    counts = fm.reshape(fm.shape[0], -1).sum(axis=1)
    if counts.max(initial=0) > 0:
        k = int(np.argmax(counts))
        box = mask_box(fm[k])
    else:
        scored = result.sparcc_slice_indices or (fm.shape[0] // 2,)
        k = int(scored[len(scored) // 2])
        box = mask_box(masks[f"ilium_{side}"][k])
    image = sources.get(result.sop_instance_uids[k])
    if box is None:
        box = (0, 0, int(image.Rows) - 1, int(image.Columns) - 1)
    frame = result.frame_numbers[k]
    return hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=box_polyline(box),
        source_image=hd.sr.SourceImageForRegion.from_source_image(image, [frame] if frame else None),
    )


def _fm_groups(
    result: SijResult, model: ModelIdentity, segments: dict[str, tuple[Dataset, int]], sources: SourceIndex
) -> list[Group]:
    groups: list[Group] = []
    for name in FM_NAMES:
        side = name.rsplit("_", 1)[1]
        tid, tuid = sij_tracking(result.study_instance_uid, model, name)
        if tuid not in segments:
            continue
        seg, number = segments[tuid]
        volume = float(result.fm_volume_ml.get(side, 0.0))
        common = dict(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=tuid, identifier=tid),
            finding_type=codes.FAT,
            finding_category=codes.TISSUE,
            algorithm_id=algorithm_id(model),
            finding_sites=[_side_site(side)],
        )
        presence = [hd.sr.QualitativeEvaluation(codes.FM_QUADRANT, codes.PRESENT if volume > 0 else codes.ABSENT)]
        # the region OHIF draws (it merges the two groups by their tracking UID)
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            **common, referenced_region=_fm_region(result, sources, side),  # type: ignore[arg-type]
            qualitative_evaluations=presence))
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            **common,  # type: ignore[arg-type]
            referenced_segment=referenced_segment(seg, number),
            measurements=[hd.sr.Measurement(name=codes.FM_VOLUME, value=round(volume, 4), unit=codes.ML)],
            qualitative_evaluations=presence,
        ))
    return groups


def _study_group(
    result: SijResult, model: ModelIdentity, sources: SourceIndex
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    scored = [_joints_box(result, sources, int(k)) for k in result.sparcc_slice_indices]
    measurements = [
        hd.sr.Measurement(name=codes.FM_VOLUME, value=round(float(result.fm_volume_ml.get("total", 0.0)), 4),
                          unit=codes.ML),
        hd.sr.Measurement(name=codes.SPARCC_FM_SCORE, value=float(result.sparcc_fm_score), unit=codes.SCORE,
                          referenced_coordinates=scored or [_joints_box(result, sources, len(result.labels) // 2)]),
    ]
    qualitative: list[hd.sr.QualitativeEvaluation] = []
    if result.oedema_assessed and result.asas_positive_mri is not None:
        qualitative.append(hd.sr.QualitativeEvaluation(
            codes.ASAS_POSITIVE_MRI, codes.PRESENT if result.asas_positive_mri else codes.ABSENT))
    else:
        qualitative.append(hd.sr.QualitativeEvaluation(codes.OEDEMA_ASSESSMENT, codes.NOT_ASSESSED))
    if result.axspa_probability is not None:
        measurements.append(hd.sr.Measurement(
            name=codes.AXSPA_PROBABILITY, value=round(float(result.axspa_probability), 4), unit=codes.NO_UNITS))
        if result.threshold is not None:
            measurements.append(hd.sr.Measurement(
                name=codes.AXSPA_THRESHOLD, value=round(float(result.threshold), 4), unit=codes.NO_UNITS))
        qualitative.append(hd.sr.QualitativeEvaluation(
            codes.AXSPA_CLASS_NAME, codes.AXSPA_POSITIVE if result.axspa_positive else codes.AXSPA_NEGATIVE))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(result.study_instance_uid, model, "SIJ assessment"),
        finding_type=codes.SACROILIAC_JOINT,
        algorithm_id=algorithm_id(model),
        finding_sites=[_side_site(None)],
        measurements=measurements,
        qualitative_evaluations=qualitative,
    )


def _slice_group(
    row: QuadrantRow, kind: str, result: SijResult, model: ModelIdentity, sources: SourceIndex
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    fm = kind == "fat metaplasia"
    k = result.sop_instance_uids.index(row.sop_instance_uid)
    frame = result.frame_numbers[k]
    image = sources.get(row.sop_instance_uid)
    ref = hd.sr.SourceImageForMeasurement.from_source_image(image, [frame] if frame else None)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(result.study_instance_uid, model, f"SPARCC {kind} slice {row.slice_index + 1}"),
        finding_type=codes.FAT if fm else codes.OEDEMA,
        algorithm_id=algorithm_id(model),
        finding_sites=[_side_site(None)],
        measurements=[hd.sr.Measurement(name=codes.SPARCC_SLICE_SCORE if fm else codes.SPARCC_OEDEMA_SLICE_SCORE,
                                        value=float(row.score), unit=codes.SCORE,
                                        referenced_images=[ref],
                                        referenced_coordinates=[_joints_box(result, sources, k)])],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(codes.QUADRANT_CODES[q], codes.PRESENT if present else codes.ABSENT)
            for q, present in row.present.items()
        ],
    )


def encode_sij_sr(result: SijResult, sources: SourceIndex, segs: Sequence[Dataset]) -> hd.sr.EnhancedSR:
    """The TID 1500 report of an SIJ result (``segs``: its SEG, for segment references).

    Raises
    ------
    ResultsInputError
        A T1 slice whose source image was not given.
    """
    model = sij_model(result)
    images = sources.datasets(result.sop_instance_uids)
    study_uid = result.study_instance_uid or str(images[0].StudyInstanceUID)
    groups: list[Group] = [
        *_fm_groups(result, model, segment_lookup(segs), sources),
        _study_group(result, model, sources),
    ]
    groups += [_slice_group(row, "fat metaplasia", result, model, sources) for row in result.fm_table]
    if result.oedema_table is not None:
        groups += [_slice_group(row, "oedema", result, model, sources) for row in result.oedema_table]
    return build_report(
        pipeline=PIPELINE,
        model=model,
        groups=groups,
        source_images=images,
        evidence=[*images, *segs],
        summary=sij_summary(result),
        study_uid=study_uid,
        title="SIJ",
    )
