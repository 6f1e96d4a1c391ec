"""The segments of a lumbar (LDH) result: one SEG per axial stack, each a series of its own.

Per stack: herniated material per disc level (the slices of that level only),
and, when ``include_anatomy``, the disc per level, the dural sac and the left and
right facet joints the MSU grade was read against. Why one SEG per stack, and each
in its own SEG series (all with Series Number 9001, Instance Number = stack + 1): see
docs/results.md (angled stacks of one series have different orientations; highdicom,
dcmqi/Slicer and OHIF all build one volume per SEG, and OHIF shows only the last
instance of a SEG series).
"""

from __future__ import annotations

import logging
import highdicom as hd
import numpy as np

from dicom_node.results import codes
from dicom_node.results.identity import (
    SEG,
    ModelIdentity,
    derive_uid,
    series_number,
    stack_instance_uid,
    stack_series_uid,
)
from dicom_node.results.seg import SegmentSpec, build_seg
from dicom_node.results.sources import SourceIndex
from inference.labels import AxialLabel
from inference.ldh.result import LdhResult, StackSegmentation

__all__ = ["PIPELINE", "encode_ldh_segs", "herniation_tracking", "ldh_model", "stack_segments"]

logger = logging.getLogger(__name__)

PIPELINE = "ldh"
COLORS: dict[str, tuple[int, int, int]] = {
    "herniation": (255, 40, 40),
    "disc": (40, 150, 255),
    "dural_sac": (255, 220, 0),
    "facet_left": (0, 200, 120),
    "facet_right": (190, 70, 255),
}


def ldh_model(result: LdhResult) -> ModelIdentity:
    """The model identity of a lumbar result."""
    return ModelIdentity(result.model_name, result.model_version, result.model_sha256, result.notice)


def herniation_tracking(study_uid: str, model: ModelIdentity, level: str | None) -> tuple[str, str]:
    """Tracking ID and UID of the herniation at ``level`` (shared by the SEG segment and the SR group)."""
    name = level or "unknown level"
    return f"herniation {name}", derive_uid("tracking", study_uid, PIPELINE, model.name, model.version,
                                           model.sha256 or "", "herniation", name)


def _tracking(study_uid: str, model: ModelIdentity, what: str) -> tuple[str, str]:
    return what, derive_uid("tracking", study_uid, PIPELINE, model.name, model.version, model.sha256 or "", what)


def stack_segments(
    seg: StackSegmentation,
    study_uid: str,
    model: ModelIdentity,
    *,
    include_anatomy: bool = True,
    fractional: bool = False,
) -> list[SegmentSpec]:
    """The segments of one stack (those with no voxel are left out, except herniations of graded levels)."""
    labels = np.asarray(seg.labels)
    levels = list(seg.levels) if seg.levels else [None] * labels.shape[0]
    specs: list[SegmentSpec] = []
    hernia = labels == AxialLabel.HERNIATION
    prob = np.asarray(seg.herniation_probability, dtype=np.float32)
    for level in dict.fromkeys(levels):
        on_level = np.array([lv == level for lv in levels])[:, None, None]
        mask = hernia & on_level
        if not mask.any():
            continue
        region = (codes.DISC_CODES[level],) if level in codes.DISC_CODES else (codes.LUMBAR_SPINE,)
        tid, tuid = herniation_tracking(study_uid, model, level)
        specs.append(SegmentSpec(
            label=f"herniation {level or 'level ?'}",
            category=codes.MORPHOLOGICALLY_ABNORMAL,
            property_type=codes.DISC_HERNIATION,
            mask=np.where(on_level, prob, 0.0) if fractional else mask,
            tracking_id=tid,
            tracking_uid=tuid,
            color=COLORS["herniation"],
            anatomic_regions=region,
        ))
    if include_anatomy:
        disc = labels == AxialLabel.DISC
        for level in dict.fromkeys(levels):
            on_level = np.array([lv == level for lv in levels])[:, None, None]
            mask = disc & on_level
            if mask.any():
                ptype = codes.DISC_CODES.get(level or "", codes.LUMBAR_SPINE)
                specs.append(SegmentSpec(
                    label=f"disc {level or 'level ?'}",
                    category=codes.ANATOMICAL_STRUCTURE,
                    property_type=ptype,
                    mask=mask,
                    tracking_id=f"disc {level or 'level ?'}",
                    tracking_uid=_tracking(study_uid, model, f"disc {level}")[1],
                    color=COLORS["disc"],
                ))
        for name, value, ptype, side in (
            ("dural sac", AxialLabel.DURAL_SAC, codes.DURA_MATER, None),
            ("facet joint left", AxialLabel.FACET_LEFT, codes.JOINT, "left"),
            ("facet joint right", AxialLabel.FACET_RIGHT, codes.JOINT, "right"),
        ):
            mask = labels == value
            if not mask.any():
                continue
            tid, tuid = _tracking(study_uid, model, name)
            color = COLORS["dural_sac"] if side is None else COLORS[f"facet_{side}"]
            specs.append(SegmentSpec(
                label=name,
                category=codes.ANATOMICAL_STRUCTURE,
                property_type=ptype,
                mask=mask,
                tracking_id=tid,
                tracking_uid=tuid,
                color=color,
                anatomic_regions=(codes.LUMBAR_SPINE,),
                laterality=side,
            ))
    return specs


def encode_ldh_segs(
    result: LdhResult,
    sources: SourceIndex,
    *,
    include_anatomy: bool = True,
    fractional: bool = False,
) -> list[hd.seg.Segmentation]:
    """One SEG per axial stack that has anything to show, each in a SEG series of its own.

    Series Instance UID and SOP Instance UID are derived with the stack index; the Series
    Number is the pipeline's (9001) for every stack, Instance Number = stack + 1, and the
    Series Description names the stack.

    Raises
    ------
    ResultsInputError
        A slice whose source image was not given.
    """
    model = ldh_model(result)
    out: list[hd.seg.Segmentation] = []
    for seg in result.segmentations:
        slice_uids = [s.sop_instance_uid for s in seg.slices]
        datasets = sources.datasets(slice_uids)
        study_uid = str(datasets[0].StudyInstanceUID)
        specs = stack_segments(seg, study_uid, model, include_anatomy=include_anatomy, fractional=fractional)
        if not specs:
            logger.info("stack %d has nothing to segment; no SEG written for it", seg.stack_index)
            continue
        out.append(build_seg(
            sources=datasets,
            frame_numbers=[s.frame_number for s in seg.slices],
            segments=specs,
            model=model,
            series_instance_uid=stack_series_uid(study_uid, PIPELINE, model, SEG, seg.stack_index),
            series_number=series_number(PIPELINE, SEG),
            sop_instance_uid=stack_instance_uid(study_uid, PIPELINE, model, SEG, seg.stack_index),
            instance_number=seg.stack_index + 1,
            series_description=f"AI LDH SEG stack {seg.stack_index + 1} {model.name} {model.version} RESEARCH USE",
            content_description=f"LDH stack {seg.stack_index + 1}: {model.notice}",
            content_label="DN_LDH",
            fractional=fractional,
        ))
    return out

