"""TID 1500 content of an SIJ result.

* one Volumetric ROI group (TID 1411) per joint, referencing the fat-metaplasia
  segment of that side in the SEG, with its volume (mL);
* one TID 1501 group for the study: total FM volume, the SPARCC-style FM score
  (0-40), the oedema assessment (ASAS positive MRI present/absent, or "not
  assessed" with the reason), the axSpA probability, threshold and class;
* one TID 1501 group per scored slice (fat metaplasia, and oedema when assessed):
  the slice score referencing the source slice, and per quadrant present/absent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset

from dicom_node.results import codes
from dicom_node.results.identity import SR, ModelIdentity, derive_uid, instance_uid, series_number, series_uid
from dicom_node.results.seg_sij import FM_NAMES, PIPELINE, sij_model, sij_tracking
from dicom_node.results.sources import SourceIndex
from dicom_node.results.sr import algorithm_id, build_report, referenced_segment
from dicom_node.results.sr_ldh import Group, segment_lookup
from dicom_node.results.summary import sij_summary
from inference.sij.result import QuadrantRow, SijResult

__all__ = ["encode_sij_sr"]

logger = logging.getLogger(__name__)


def _tracking(study_uid: str, model: ModelIdentity, what: str) -> hd.sr.TrackingIdentifier:
    uid = derive_uid("tracking", study_uid, PIPELINE, model.name, model.version, model.sha256 or "", what)
    return hd.sr.TrackingIdentifier(uid=uid, identifier=what)


def _side_site(side: str | None) -> hd.sr.FindingSite:
    lat = {"left": codes.LEFT, "right": codes.RIGHT}.get(side or "")
    return hd.sr.FindingSite(anatomic_location=codes.SACROILIAC_JOINT, laterality=lat)


def _fm_groups(result: SijResult, model: ModelIdentity, segments: dict[str, tuple[Dataset, int]]) -> list[Group]:
    groups: list[Group] = []
    for name in FM_NAMES:
        side = name.rsplit("_", 1)[1]
        tid, tuid = sij_tracking(result.study_instance_uid, model, name)
        if tuid not in segments:
            continue
        seg, number = segments[tuid]
        volume = float(result.fm_volume_ml.get(side, 0.0))
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=tuid, identifier=tid),
            referenced_segment=referenced_segment(seg, number),
            finding_type=codes.FAT,
            finding_category=codes.TISSUE,
            algorithm_id=algorithm_id(model),
            finding_sites=[_side_site(side)],
            measurements=[hd.sr.Measurement(name=codes.FM_VOLUME, value=round(volume, 4), unit=codes.ML)],
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(
                codes.FM_QUADRANT, codes.PRESENT if volume > 0 else codes.ABSENT)],
        ))
    return groups


def _study_group(result: SijResult, model: ModelIdentity) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    measurements = [
        hd.sr.Measurement(name=codes.FM_VOLUME, value=round(float(result.fm_volume_ml.get("total", 0.0)), 4),
                          unit=codes.ML),
        hd.sr.Measurement(name=codes.SPARCC_FM_SCORE, value=float(result.sparcc_fm_score), unit=codes.SCORE),
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
                                        referenced_images=[ref])],
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
    groups: list[Group] = [*_fm_groups(result, model, segment_lookup(segs)), _study_group(result, model)]
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
        series_instance_uid=series_uid(study_uid, PIPELINE, model, SR),
        series_number=series_number(PIPELINE, SR),
        sop_instance_uid=instance_uid(study_uid, PIPELINE, model, SR),
        series_description=f"AI SIJ report {model.name} {model.version} RESEARCH USE",
    )
