"""The segments of an SIJ result: one SEG on the semi-coronal T1 series.

Fat metaplasia left and right (always written, empty or not, so absence is
visible), bone-marrow oedema when it was assessed on a STIR on the T1 grid
(``include_oedema``), and the sacrum and ilia (``include_anatomy``).
"""

from __future__ import annotations

import logging

import highdicom as hd

from dicom_node.results import codes
from dicom_node.results.identity import SEG, ModelIdentity, derive_uid, instance_uid, series_number, series_uid
from dicom_node.results.seg import SegmentSpec, build_seg
from dicom_node.results.sources import SourceIndex
from inference.sij.result import SijMask, SijResult

__all__ = ["PIPELINE", "encode_sij_seg", "sij_model", "sij_segments", "sij_tracking"]

logger = logging.getLogger(__name__)

PIPELINE = "sij"
FM_NAMES = ("fat_metaplasia_left", "fat_metaplasia_right")
ANATOMY_NAMES = ("sacrum", "ilium_left", "ilium_right")
#: name -> (label, category, type, anatomic regions, colour)
_SEGMENTS: dict[str, tuple[str, object, object, tuple[object, ...], tuple[int, int, int]]] = {
    "fat_metaplasia_left": ("fat metaplasia left", codes.TISSUE, codes.FAT, (codes.SACROILIAC_JOINT,), (255, 140, 0)),
    "fat_metaplasia_right": ("fat metaplasia right", codes.TISSUE, codes.FAT, (codes.SACROILIAC_JOINT,),
                             (255, 215, 0)),
    "oedema": ("bone marrow oedema", codes.MORPHOLOGICALLY_ABNORMAL, codes.OEDEMA, (codes.BONE_MARROW,),
               (0, 210, 255)),
    "sacrum": ("sacrum", codes.ANATOMICAL_STRUCTURE, codes.SACRUM, (), (200, 200, 200)),
    "ilium_left": ("ilium left", codes.ANATOMICAL_STRUCTURE, codes.ILIUM, (), (120, 160, 220)),
    "ilium_right": ("ilium right", codes.ANATOMICAL_STRUCTURE, codes.ILIUM, (), (160, 120, 220)),
}


def sij_model(result: SijResult) -> ModelIdentity:
    """The model identity of an SIJ result (a stub when the result names none)."""
    if result.model is None:
        return ModelIdentity("sij-untrained", "0", None, "research use only; untrained or stub network")
    m = result.model
    return ModelIdentity(m.name, m.version, m.sha256 or None, m.notice)


def sij_tracking(study_uid: str, model: ModelIdentity, name: str) -> tuple[str, str]:
    """Tracking ID and UID of segment ``name`` (shared by the SEG and the SR)."""
    label = _SEGMENTS[name][0] if name in _SEGMENTS else name
    return label, derive_uid("tracking", study_uid, PIPELINE, model.name, model.version, model.sha256 or "", name)


def sij_segments(
    result: SijResult, model: ModelIdentity, *, include_oedema: bool = True, include_anatomy: bool = True
) -> list[tuple[SijMask, SegmentSpec]]:
    """The masks to write with their segment specifications, in segment-number order."""
    out: list[tuple[SijMask, SegmentSpec]] = []
    for mask in result.masks():
        if mask.name == "oedema" and not include_oedema:
            continue
        if mask.name in ANATOMY_NAMES and (not include_anatomy or mask.empty):
            continue
        if mask.name not in _SEGMENTS:
            logger.warning("unknown SIJ mask %s left out of the SEG", mask.name)
            continue
        label, category, ptype, regions, color = _SEGMENTS[mask.name]
        tid, tuid = sij_tracking(result.study_instance_uid, model, mask.name)
        out.append((mask, SegmentSpec(
            label=label,
            category=category,  # type: ignore[arg-type]
            property_type=ptype,  # type: ignore[arg-type]
            mask=mask.array.astype(bool),
            tracking_id=tid,
            tracking_uid=tuid,
            color=color,
            anatomic_regions=regions,  # type: ignore[arg-type]
            laterality=mask.laterality,
        )))
    return out


def encode_sij_seg(
    result: SijResult, sources: SourceIndex, *, include_oedema: bool = True, include_anatomy: bool = True
) -> hd.seg.Segmentation:
    """The SEG of an SIJ result on its T1 series.

    Raises
    ------
    ResultsInputError
        A T1 slice whose source image was not given.
    """
    model = sij_model(result)
    datasets = sources.datasets(result.sop_instance_uids)
    study_uid = result.study_instance_uid or str(datasets[0].StudyInstanceUID)
    specs = [spec for _, spec in sij_segments(result, model, include_oedema=include_oedema,
                                               include_anatomy=include_anatomy)]
    return build_seg(
        sources=datasets,
        frame_numbers=list(result.frame_numbers),
        segments=specs,
        model=model,
        series_instance_uid=series_uid(study_uid, PIPELINE, model, SEG),
        series_number=series_number(PIPELINE, SEG),
        sop_instance_uid=instance_uid(study_uid, PIPELINE, model, SEG, 0),
        instance_number=1,
        series_description=f"AI SIJ SEG {model.name} {model.version} RESEARCH USE",
        content_description=f"SIJ fat metaplasia: {model.notice}",
        content_label="DN_SIJ",
    )
