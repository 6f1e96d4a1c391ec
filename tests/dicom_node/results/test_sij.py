"""SIJ SEG + SR on a phantom, with and without STIR, and with no fat metaplasia at all."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicom_node.results import ResultOptions, codes, encode_sij
from inference.labels import SijLabel
from inference.sij.pipeline import analyse

from tests.dicom_node.results.conftest import SijCase, dciodvfy_errors, sij_result


def _path(ds: Dataset, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _code_items(group: Dataset) -> dict[str, str]:
    return {i.ConceptNameCodeSequence[0].CodeValue: i.ConceptCodeSequence[0].CodeValue
            for i in group.ContentSequence if i.ValueType == "CODE"}


def _num_items(group: Dataset) -> dict[str, float]:
    return {i.ConceptNameCodeSequence[0].CodeValue: float(i.MeasuredValueSequence[0].NumericValue)
            for i in group.ContentSequence if i.ValueType == "NUM"}


def _groups(sr: Dataset) -> list[Dataset]:
    imaging = [i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010"][0]
    return list(imaging.ContentSequence)


#: per joint a Planar ROI group (the region) and a Volumetric ROI group (the segment), left then right
JOINT_GROUPS = 4


def _without_region(groups: list[Dataset]) -> list[str]:
    """Tracking UIDs whose groups (merged, as OHIF 3.13.2 merges them) have no SCOORD: OHIF throws on those."""
    merged: dict[str, list[Dataset]] = {}
    for g in groups:
        uid = next(i.UID for i in g.ContentSequence if i.ValueType == "UIDREF")
        merged.setdefault(uid, []).extend(g.ContentSequence)
    return [uid for uid, items in merged.items()
            if not any(i.ValueType == "SCOORD" for i in items)
            and not any(i.ValueType == "NUM" and any(c.ValueType == "SCOORD" for c in i.get("ContentSequence", []))
                        for i in items)]


@pytest.fixture(scope="module")
def encoded(sij: SijCase):  # type: ignore[no-untyped-def]
    return encode_sij(sij.result, [sij.t1])


def test_seg_round_trip_with_stir(sij: SijCase, encoded, tmp_path: Path) -> None:
    result = sij.result
    assert result.oedema_assessed and result.sparcc_fm_score > 0
    out = encoded
    (seg_ds,) = out.segs
    seg = hd.seg.segread(_path(seg_ds, tmp_path, "seg"))
    assert seg.SeriesNumber == 9011 and seg.StudyInstanceUID == result.study_instance_uid
    uids = list(result.sop_instance_uids)
    assert {u for _, _, u in seg.get_source_image_uids()} == set(uids)
    labels = [d.SegmentLabel for d in seg.SegmentSequence]
    assert labels[:3] == ["fat metaplasia left", "fat metaplasia right", "bone marrow oedema"]
    pixels = seg.get_pixels_by_source_instance(uids).astype(bool)
    masks = {m.name: m.array for m in result.masks()}
    np.testing.assert_array_equal(pixels[..., 0], masks["fat_metaplasia_left"])
    np.testing.assert_array_equal(pixels[..., 1], masks["fat_metaplasia_right"])
    np.testing.assert_array_equal(pixels[..., 2], masks["oedema"])
    left = seg.SegmentSequence[0]
    assert left.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == codes.LEFT.value
    assert "SegmentedPropertyTypeModifierCodeSequence" not in left  # nested in the type item, not beside it
    assert dciodvfy_errors(seg_ds, tmp_path, "segv") == []


def test_sr_round_trip_with_stir(sij: SijCase, encoded, tmp_path: Path) -> None:
    result = sij.result
    out = encoded
    sr = hd.sr.srread(_path(out.sr, tmp_path, "sr"))
    assert sr.SeriesNumber == 9012
    vol = sr.content.get_volumetric_roi_measurement_groups()
    assert len(vol) == 2
    for group, side in zip(vol, ("left", "right")):
        volume = group.get_measurements(name=codes.FM_VOLUME)[0]
        assert volume.value == pytest.approx(result.fm_volume_ml[side], abs=1e-3) and volume.unit.value == "ml"
        seg_ref = group.referenced_segment
        assert seg_ref.referenced_sop_instance_uid == out.segs[0].SOPInstanceUID
        assert out.segs[0].SegmentSequence[seg_ref.referenced_segment_numbers[0] - 1].SegmentLabel == (
            f"fat metaplasia {side}")
    planar = sr.content.get_planar_roi_measurement_groups()
    masks = {m.name: m.array for m in result.masks()}
    for group, vgroup, side in zip(planar, vol, ("left", "right")):
        # the region OHIF draws: the side's FM box on the slice with most FM, same tracking UID
        assert group.tracking_uid == vgroup.tracking_uid
        fm = masks[f"fat_metaplasia_{side}"]
        k = int(np.argmax(fm.reshape(fm.shape[0], -1).sum(axis=1)))
        source = group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        assert source == result.sop_instance_uids[k]
        rows, cols = np.nonzero(fm[k])
        xs, ys = group.roi.value[:, 0], group.roi.value[:, 1]
        box = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        assert (xs.min(), ys.min(), xs.max(), ys.max()) == box
        assert _code_items(group[0])[codes.FM_QUADRANT.value] == codes.PRESENT.value
    groups = _groups(sr)
    assert _without_region(groups) == []  # every finding can be drawn by OHIF 3.13.2
    study = groups[JOINT_GROUPS]
    nums = _num_items(study)
    assert nums[codes.SPARCC_FM_SCORE.value] == result.sparcc_fm_score
    assert nums[codes.FM_VOLUME.value] == pytest.approx(result.fm_volume_ml["total"], abs=1e-3)
    asas = _code_items(study)[codes.ASAS_POSITIVE_MRI.value]
    assert asas == (codes.PRESENT if result.asas_positive_mri else codes.ABSENT).value
    slices = groups[JOINT_GROUPS + 1:]
    assert len(slices) == 2 * len(result.fm_table)  # fat metaplasia and oedema per scored slice
    for row, group in zip(result.fm_table, slices):
        assert _num_items(group)[codes.SPARCC_SLICE_SCORE.value] == row.score
        coded = _code_items(group)
        for q, present in row.present.items():
            assert coded[codes.QUADRANT_CODES[q].value] == (codes.PRESENT if present else codes.ABSENT).value
    total = sum(_num_items(g)[codes.SPARCC_SLICE_SCORE.value] for g in slices[: len(result.fm_table)])
    assert total == result.sparcc_fm_score
    assert "SPARCC" in out.summary and "research use" in out.summary.lower()
    assert dciodvfy_errors(out.sr, tmp_path, "srv") == []


def test_without_stir_oedema_is_stated_not_assessed(sij_folder: Path, tmp_path: Path) -> None:
    t1, result = sij_result(sij_folder, with_stir=False)
    out = encode_sij(result, [t1])
    assert "bone marrow oedema" not in [d.SegmentLabel for d in out.segs[0].SegmentSequence]
    sr = hd.sr.srread(_path(out.sr, tmp_path, "nostir"))
    groups = _groups(sr)
    assert _code_items(groups[JOINT_GROUPS])[codes.OEDEMA_ASSESSMENT.value] == codes.NOT_ASSESSED.value
    assert len(groups) == JOINT_GROUPS + 1 + len(result.fm_table)
    assert _without_region(groups) == []
    assert "not assessed" in out.summary
    for ds, name in ((out.segs[0], "nostir-seg"), (out.sr, "nostir-sr")):
        assert dciodvfy_errors(ds, tmp_path, name) == []


def test_no_fat_metaplasia_gives_empty_segments_and_a_zero_score(sij: SijCase, tmp_path: Path) -> None:
    r = sij.result
    labels = np.where(r.labels == SijLabel.FAT_METAPLASIA, 0, r.labels).astype(np.uint8)
    empty = analyse(labels, None, r.affine, sop_instance_uids=r.sop_instance_uids, frame_numbers=r.frame_numbers,
                    study_instance_uid=r.study_instance_uid, t1_series_instance_uid=r.t1_series_instance_uid,
                    model=r.model)
    assert empty.sparcc_fm_score == 0
    out = encode_sij(empty, [sij.t1], ResultOptions(include_anatomy=False))
    seg = hd.seg.segread(_path(out.segs[0], tmp_path, "emptyseg"))
    assert [d.SegmentLabel for d in seg.SegmentSequence] == ["fat metaplasia left", "fat metaplasia right"]
    assert not seg.get_pixels_by_source_instance(list(r.sop_instance_uids)).any()
    sr = hd.sr.srread(_path(out.sr, tmp_path, "emptysr"))
    groups = _groups(sr)
    assert _num_items(groups[JOINT_GROUPS])[codes.SPARCC_FM_SCORE.value] == 0
    for group in groups[:JOINT_GROUPS]:
        assert _code_items(group)[codes.FM_QUADRANT.value] == codes.ABSENT.value
    assert _without_region(groups) == []  # no FM: the regions are the ilia on the middle scored slice
    assert "0/40" in out.summary
    for ds, name in ((out.segs[0], "emptysegv"), (out.sr, "emptysrv")):
        assert dciodvfy_errors(ds, tmp_path, name) == []


def test_uids_follow_the_model_version(sij: SijCase, encoded) -> None:
    a = encoded
    b = encode_sij(sij.result, [sij.t1])
    assert [d.SOPInstanceUID for d in a.datasets] == [d.SOPInstanceUID for d in b.datasets]
    newer = dataclasses.replace(sij.result, model=dataclasses.replace(sij.result.model, version="9"))
    c = encode_sij(newer, [sij.t1])
    assert not {d.SOPInstanceUID for d in a.datasets} & {d.SOPInstanceUID for d in c.datasets}


def test_axspa_probability_and_class(sij: SijCase, tmp_path: Path) -> None:
    scored = dataclasses.replace(sij.result, axspa_probability=0.73, axspa_positive=True, threshold=0.5)
    out = encode_sij(scored, [sij.t1])
    study = _groups(hd.sr.srread(_path(out.sr, tmp_path, "axspa")))[JOINT_GROUPS]
    nums = _num_items(study)
    assert nums[codes.AXSPA_PROBABILITY.value] == pytest.approx(0.73)
    assert nums[codes.AXSPA_THRESHOLD.value] == pytest.approx(0.5)
    assert _code_items(study)[codes.AXSPA_CLASS_NAME.value] == codes.AXSPA_POSITIVE.value
    assert "axSpA probability 0.73 (axSpA at 0.50)" in out.summary
    assert dciodvfy_errors(out.sr, tmp_path, "axspav") == []
