"""Which slices become Secondary Capture key images, and what is drawn on them."""

from __future__ import annotations

import logging

import highdicom as hd
import numpy as np

from dicom_node.results.identity import SC, instance_uid, series_number, series_uid
from dicom_node.results.sc import KeyImage, build_sc
from dicom_node.results.seg_ldh import COLORS as LDH_COLORS
from dicom_node.results.seg_ldh import PIPELINE as LDH, ldh_model
from dicom_node.results.seg_sij import PIPELINE as SIJ, sij_model
from dicom_node.results.sources import SourceIndex
from dicom_node.results.summary import short_level
from inference.labels import AxialLabel
from inference.ldh.result import LdhResult
from inference.sij.result import SijResult

__all__ = ["ldh_key_images", "sij_key_images"]

logger = logging.getLogger(__name__)

_LDH_LAYERS = (
    (AxialLabel.DISC, LDH_COLORS["disc"]),
    (AxialLabel.DURAL_SAC, LDH_COLORS["dural_sac"]),
    (AxialLabel.FACET_LEFT, LDH_COLORS["facet_left"]),
    (AxialLabel.FACET_RIGHT, LDH_COLORS["facet_right"]),
    (AxialLabel.HERNIATION, LDH_COLORS["herniation"]),
)


def ldh_key_images(result: LdhResult, sources: SourceIndex) -> list[hd.sc.SCImage]:
    """One key image per herniated level, on the slice its grade was read on."""
    model = ldh_model(result)
    keys: list[KeyImage] = []
    for f in result.findings:
        if f.size == 0 or f.slice is None:
            continue
        seg = next(s for s in result.segmentations if s.stack_index == f.slice.stack_index)
        labels = np.asarray(seg.labels[f.slice.slice_index])
        side = f" {f.side}" if f.side in ("left", "right") else ""
        caption = (f"{short_level(f.level)}: MSU {f.grade}{side}, depth {f.depth_mm:.1f} mm "
                   f"({f.ratio_percent:.0f} %){' level inferred' if f.level_inferred else ''}")
        keys.append(KeyImage(
            source=sources.get(f.slice.sop_instance_uid),
            pixels=sources.pixels(f.slice.sop_instance_uid),
            layers=[(labels == value, color) for value, color in _LDH_LAYERS],
            box=f.bbox,
            caption=caption,
        ))
    if not keys:
        return []
    study = str(keys[0].source.StudyInstanceUID)
    return build_sc(
        keys,
        model=model,
        series_instance_uid=series_uid(study, LDH, model, SC),
        series_number=series_number(LDH, SC),
        sop_instance_uids=[instance_uid(study, LDH, model, SC, n) for n in range(len(keys))],
        series_description=f"AI LDH key images {model.name} {model.version} RESEARCH USE",
    )


def sij_key_images(result: SijResult, sources: SourceIndex) -> list[hd.sc.SCImage]:
    """One key image: the scored slice with most involved quadrants (the first scored slice if none)."""
    if not result.fm_table:
        return []
    model = sij_model(result)
    row = max(result.fm_table, key=lambda r: r.score)
    k = row.slice_index
    masks = {m.name: m for m in result.masks()}
    layers = [(masks["fat_metaplasia_left"].array[k], (255, 140, 0)),
              (masks["fat_metaplasia_right"].array[k], (255, 215, 0))]
    if "oedema" in masks:
        layers.append((masks["oedema"].array[k], (0, 210, 255)))
    key = KeyImage(
        source=sources.get(row.sop_instance_uid),
        pixels=sources.pixels(row.sop_instance_uid),
        layers=layers,
        box=None,
        caption=f"SPARCC FM {result.sparcc_fm_score}/40; this slice {row.score}/8 (image right = patient left)",
    )
    study = result.study_instance_uid or str(key.source.StudyInstanceUID)
    return build_sc(
        [key],
        model=model,
        series_instance_uid=series_uid(study, SIJ, model, SC),
        series_number=series_number(SIJ, SC),
        sop_instance_uids=[instance_uid(study, SIJ, model, SC, 0)],
        series_description=f"AI SIJ key images {model.name} {model.version} RESEARCH USE",
    )
