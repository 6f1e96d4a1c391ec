"""Lumbar SEG + SR on a multi-stack phantom: round trips, dciodvfy, references, identity, empty results."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicom_node.results import ResultOptions, ResultsInputError, codes, encode_ldh
from dicom_node.results.summary import ldh_summary, short_level
from inference.labels import AxialLabel
from inference.ldh.pipeline import LdhPipeline

from tests.dicom_node.results.conftest import LumbarCase, dciodvfy_errors, lumbar_result


def _write_read(ds: Dataset, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def encoded(lumbar: LumbarCase):  # type: ignore[no-untyped-def]
    return encode_ldh(lumbar.result, lumbar.axial)


def test_one_seg_per_stack_referencing_every_source_frame(lumbar: LumbarCase, encoded, tmp_path: Path) -> None:
    assert len(lumbar.axial) == 3 and len(encoded.segs) == 3  # the phantom's three angled stacks
    src = lumbar.axial[0].headers[0]
    for seg_ds, volume, seg_result in zip(encoded.segs, lumbar.axial, lumbar.result.segmentations):
        seg = hd.seg.segread(_write_read(seg_ds, tmp_path, f"seg{seg_ds.InstanceNumber}"))
        # same study, patient module copied
        assert seg.StudyInstanceUID == src.StudyInstanceUID and seg.PatientID == src.PatientID
        assert seg.PatientName == src.PatientName
        assert seg.SeriesNumber == 9001 and seg.Modality == "SEG"
        # every source frame, in stack order, each referenced
        uids = list(volume.sop_instance_uids)
        assert seg.NumberOfFrames == len(uids) * len(seg.SegmentSequence)
        referenced = {u for _, _, u in seg.get_source_image_uids()}
        assert referenced == set(uids)
        labels = [d.SegmentLabel for d in seg.SegmentSequence]
        assert any(lb.startswith("herniation") for lb in labels)
        assert {"dural sac", "facet joint left", "facet joint right"} <= set(labels)
        pixels = seg.get_pixels_by_source_instance(uids)
        for n, desc in enumerate(seg.SegmentSequence):
            assert desc.SegmentAlgorithmType == "AUTOMATIC"
            assert desc.SegmentAlgorithmName == lumbar.result.model_name
            assert desc.TrackingUID and desc.TrackingID and hasattr(desc, "RecommendedDisplayCIELabValue")
            if desc.SegmentLabel.startswith("herniation"):
                level = desc.SegmentLabel.split()[1]
                on_level = np.array([lv == level for lv in seg_result.levels])[:, None, None]
                expected = (seg_result.labels == AxialLabel.HERNIATION) & on_level
                np.testing.assert_array_equal(pixels[..., n].astype(bool), expected)
                assert desc.AnatomicRegionSequence[0].CodeValue == codes.DISC_CODES[level].value
            if desc.SegmentLabel == "facet joint left":
                np.testing.assert_array_equal(pixels[..., n].astype(bool), seg_result.labels == AxialLabel.FACET_LEFT)
        assert "research use" in seg.ContentDescription.lower()
        algo = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
        assert algo.AlgorithmVersion == lumbar.result.model_version
        assert lumbar.result.model_sha256 in algo.AlgorithmParameters
        assert dciodvfy_errors(seg_ds, tmp_path, f"v{seg_ds.InstanceNumber}") == []


def test_each_stack_seg_is_a_series_of_its_own(lumbar: LumbarCase, encoded) -> None:
    """OHIF shows only the last instance of a SEG series: one SEG series per angled stack."""
    series = [seg.SeriesInstanceUID for seg in encoded.segs]
    assert len(set(series)) == len(encoded.segs) == 3
    assert encoded.sr.SeriesInstanceUID not in series
    for k, seg in enumerate(encoded.segs):
        assert seg.SeriesNumber == 9001 and seg.InstanceNumber == k + 1
        assert seg.SeriesDescription.startswith(f"AI LDH SEG stack {k + 1} ")
        # each SEG references one source series (the stacks' series) and only its stack's images
        assert len(seg.ReferencedSeriesSequence) == 1


def test_sr_round_trip_per_level(lumbar: LumbarCase, encoded, tmp_path: Path) -> None:
    sr = hd.sr.srread(_write_read(encoded.sr, tmp_path, "sr"))
    assert sr.StudyInstanceUID == lumbar.axial[0].study_instance_uid and sr.SeriesNumber == 9002
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == codes.PRIVATE_SCHEME
    herniated = [f for f in lumbar.result.findings if f.size > 0]
    planar = sr.content.get_planar_roi_measurement_groups()
    volumetric = sr.content.get_volumetric_roi_measurement_groups()
    assert len(planar) == len(herniated) == len(volumetric)
    seg_uids = {s.SOPInstanceUID: s for s in encoded.segs}
    for f, group, vgroup in zip(herniated, planar, volumetric):
        assert group.finding_sites[0].value == codes.DISC_CODES[f.level]
        qual = {q.name.value: q.value.value for q in group.get_qualitative_evaluations()}
        assert qual[codes.MSU_SIZE_NAME.value] == codes.MSU_SIZE[f.size].value
        assert qual[codes.MSU_ZONE_NAME.value] == codes.MSU_ZONE[f.zone].value
        depth = group.get_measurements(name=codes.HERNIATION_DEPTH)[0]
        assert depth.value == pytest.approx(f.depth_mm, abs=1e-3) and depth.unit.value == "mm"
        ratio = group.get_measurements(name=codes.HERNIATION_RATIO)[0]
        assert ratio.value == pytest.approx(f.ratio_percent, abs=1e-3)
        region = group.roi
        assert region.value_type == hd.sr.ValueTypeValues.SCOORD
        assert region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == f.slice.sop_instance_uid
        # the volumetric group resolves to the herniation segment of that level
        ref = vgroup.reference_type
        assert ref == hd.sr.CodedConcept("121191", "DCM", "Referenced Segment")
        assert group.tracking_uid == vgroup.tracking_uid
        seg_ref = vgroup.referenced_segment
        seg_ds = seg_uids[seg_ref.referenced_sop_instance_uid]
        label = seg_ds.SegmentSequence[seg_ref.referenced_segment_numbers[0] - 1].SegmentLabel
        assert label == f"herniation {f.level}"
    text = [i for i in sr.ContentSequence[-1].ContentSequence if i.ValueType == "TEXT"]
    assert text[0].TextValue == encoded.summary and "MSU" in encoded.summary
    assert any("research use" in t.TextValue.lower() for t in text)
    assert any(t.TextValue == lumbar.result.model_sha256 for t in text)
    assert dciodvfy_errors(encoded.sr, tmp_path, "srv") == []


def test_rerun_keeps_uids_new_version_changes_them(lumbar: LumbarCase, encoded) -> None:
    again = encode_ldh(lumbar.result, lumbar.axial)
    assert [d.SOPInstanceUID for d in again.datasets] == [d.SOPInstanceUID for d in encoded.datasets]
    assert again.sr.SeriesInstanceUID == encoded.sr.SeriesInstanceUID
    newer = encode_ldh(dataclasses.replace(lumbar.result, model_version="2.0"), lumbar.axial)
    old = {d.SOPInstanceUID for d in encoded.datasets} | {d.SeriesInstanceUID for d in encoded.datasets}
    assert not old & ({d.SOPInstanceUID for d in newer.datasets} | {d.SeriesInstanceUID for d in newer.datasets})


def test_fractional_seg(lumbar: LumbarCase, tmp_path: Path) -> None:
    out = encode_ldh(lumbar.result, lumbar.axial, ResultOptions(fractional=True, include_anatomy=False))
    seg = hd.seg.segread(_write_read(out.segs[0], tmp_path, "frac"))
    assert seg.SegmentationType == "FRACTIONAL" and seg.SegmentationFractionalType == "PROBABILITY"
    assert all(d.SegmentLabel.startswith("herniation") for d in seg.SegmentSequence)
    assert dciodvfy_errors(out.segs[0], tmp_path, "fracv") == []


def test_missing_source_image_is_an_input_error(lumbar: LumbarCase) -> None:
    with pytest.raises(ResultsInputError, match="not among"):
        encode_ldh(lumbar.result, lumbar.axial[:1])


def test_no_herniation_anywhere_still_gives_a_valid_sr(lumbar_folder: Path, tmp_path: Path) -> None:
    axial, result = lumbar_result(lumbar_folder)
    for seg in result.segmentations:  # herniated material becomes disc: a normal spine
        seg.labels[seg.labels == AxialLabel.HERNIATION] = AxialLabel.DISC
        seg.herniation_probability[:] = 0
    findings, _ = LdhPipeline(__import__("torch").nn.Identity(), use_level_finder=False).grade(
        axial, result.segmentations, None)
    result = dataclasses.replace(result, findings=findings)
    assert findings and all(f.size == 0 for f in findings)
    out = encode_ldh(result, axial, ResultOptions(include_anatomy=False))
    assert out.segs == []  # nothing to segment
    sr = hd.sr.srread(_write_read(out.sr, tmp_path, "empty"))
    groups = sr.content[0].ContentSequence
    assert "No disc herniation" in out.summary
    imaging = [i for i in groups if i.ConceptNameCodeSequence[0].CodeValue == "126010"][0]
    assert len(imaging.ContentSequence) == len(findings)
    for group in imaging.ContentSequence:
        values = {i.ConceptNameCodeSequence[0].CodeValue: i for i in group.ContentSequence if i.ValueType == "CODE"}
        assert values[codes.HERNIATION_PRESENCE.value].ConceptCodeSequence[0].CodeValue == codes.ABSENT.value
        assert values[codes.MSU_SIZE_NAME.value].ConceptCodeSequence[0].CodeValue == codes.MSU_SIZE[0].value
    # a normal level is a Planar ROI group on the disc it was assessed on (OHIF 3.13.2 needs a region)
    planar = sr.content.get_planar_roi_measurement_groups()
    assert len(planar) == len(findings)
    for f, group in zip(findings, planar):
        source = group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        assert source == f.slice.sop_instance_uid
        stack = next(s for s in result.segmentations if s.stack_index == f.slice.stack_index)
        rows, cols = np.nonzero(stack.labels[f.slice.slice_index] == AxialLabel.DISC)
        xs, ys = group.roi.value[:, 0], group.roi.value[:, 1]
        assert (xs.min(), ys.min(), xs.max(), ys.max()) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        assert group.finding_sites[0].value == codes.DISC_CODES[f.level]
    assert dciodvfy_errors(out.sr, tmp_path, "emptyv") == []


def test_summary_reads_in_three_seconds(lumbar: LumbarCase) -> None:
    assert short_level("L4/L5") == "L4/5" and short_level("L5/S1") == "L5/S1" and short_level(None) == "level ?"
    text = ldh_summary(lumbar.result, with_notice=False)
    first = [f for f in lumbar.result.findings if f.size > 0][0]
    side = f" {first.side}" if first.side in ("left", "right") else ""
    assert text.startswith(f"{short_level(first.level)}: MSU {first.grade}{side} (depth {first.depth_mm:.1f} mm")


def test_dciodvfy_check_can_fail(encoded, tmp_path: Path) -> None:
    broken = encoded.sr.copy()
    del broken.CompletionFlag  # type 1 in the SR Document General module
    assert dciodvfy_errors(broken, tmp_path, "broken") != []
