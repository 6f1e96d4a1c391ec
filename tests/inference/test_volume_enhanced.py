"""Enhanced (multi-frame) MR: frames become slices through the functional groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from highdicom.legacy import LegacyConvertedEnhancedMRImage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from inference.errors import MissingAttributeError
from inference.volume import load_volumes
from tests.inference.test_volume_helpers import oblique_orientation, read_all, write_stack

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imaging"


def test_legacy_converted_enhanced_mr_matches_single_frames(tmp_path: Path) -> None:
    singles = read_all(sorted((FIXTURES / "native12").glob("*.dcm")))
    (reference,) = load_volumes(singles)
    enhanced = LegacyConvertedEnhancedMRImage(
        singles, series_instance_uid=generate_uid(), series_number=99,
        sop_instance_uid=generate_uid(), instance_number=1,
    )
    enhanced.save_as(tmp_path / "enhanced.dcm")
    (volume,) = load_volumes(tmp_path)
    np.testing.assert_array_equal(volume.array, reference.array)
    np.testing.assert_allclose(volume.affine, reference.affine, atol=1e-4)
    assert volume.sop_instance_uids == [enhanced.SOPInstanceUID] * 4
    assert sorted(volume.frame_numbers) == [1, 2, 3, 4]  # type: ignore[type-var]
    assert len(volume.headers) == 1 and "PixelData" not in volume.headers[0]
    # each slice's frame carries the position the volume says it has
    per_frame = volume.headers[0].PerFrameFunctionalGroupsSequence
    for k, frame in enumerate(volume.frame_numbers):
        assert frame is not None
        ipp = per_frame[frame - 1].PlanePositionSequence[0].ImagePositionPatient
        np.testing.assert_allclose(volume.image_position(k), [float(v) for v in ipp], atol=1e-3)


def _item(**attributes: object) -> Dataset:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def _enhanced(
    frames: list[tuple[list[float], list[float], str, float]], pixels: np.ndarray, *, photometric: str = "MONOCHROME2"
) -> Dataset:
    """A minimal enhanced MR image: per-frame (IPP, IOP, StackID, rescale slope)."""
    ds = Dataset()
    ds.SOPClassUID = pydicom.uid.EnhancedMRImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = "MR"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = pixels.shape[1:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    shared = _item(PixelMeasuresSequence=DicomSequence([_item(PixelSpacing=[0.5, 0.6], SliceThickness=3.0)]))
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    for ipp, iop, stack, slope in frames:
        per_frame.append(
            _item(
                PlanePositionSequence=DicomSequence([_item(ImagePositionPatient=ipp)]),
                PlaneOrientationSequence=DicomSequence([_item(ImageOrientationPatient=iop)]),
                FrameContentSequence=DicomSequence([_item(StackID=stack)]),
                PixelValueTransformationSequence=DicomSequence(
                    [_item(RescaleSlope=slope, RescaleIntercept=0, RescaleType="US")]
                ),
            )
        )
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def test_enhanced_two_stacks_per_frame_rescale_and_sorting() -> None:
    iop_a = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    iop_b = list(oblique_orientation(25, 0))
    normal_b = np.cross(iop_b[:3], iop_b[3:])
    frames = [
        ([0.0, 0.0, 6.0], iop_a, "1", 1.0),
        ([0.0, 0.0, 0.0], iop_a, "1", 1.0),
        ([0.0, 0.0, 3.0], iop_a, "1", 1.0),
        (list(np.array([5.0, 5.0, 40.0]) + 4 * normal_b), iop_b, "2", 2.0),
        ([5.0, 5.0, 40.0], iop_b, "2", 2.0),
    ]
    pixels = np.arange(5 * 4 * 6, dtype=np.uint16).reshape(5, 4, 6) + 1
    volumes = load_volumes([_enhanced(frames, pixels)])
    assert len(volumes) == 2
    axial = next(v for v in volumes if v.shape[0] == 3)
    oblique = next(v for v in volumes if v.shape[0] == 2)
    assert axial.frame_numbers == [2, 3, 1]  # sorted by z, not by frame number
    np.testing.assert_array_equal(axial.array, pixels[[1, 2, 0]])
    assert axial.spacing == pytest.approx((3.0, 0.5, 0.6))
    assert oblique.frame_numbers == [5, 4]
    np.testing.assert_array_equal(oblique.array, 2.0 * pixels[[4, 3]])  # per-frame slope applied
    np.testing.assert_allclose(oblique.normal, normal_b, atol=1e-6)
    np.testing.assert_allclose(oblique.affine[:3, 0], 4 * normal_b, atol=1e-6)


def test_enhanced_monochrome1() -> None:
    frames = [([0.0, 0.0, float(z)], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], "1", 1.0) for z in (0, 2)]
    pixels = np.array([[[0, 100], [4095, 7]], [[1, 2], [3, 4]]], dtype=np.uint16)
    (volume,) = load_volumes([_enhanced(frames, pixels, photometric="MONOCHROME1")])
    np.testing.assert_array_equal(volume.array, 4095.0 - pixels)


def test_enhanced_missing_plane_position_names_the_frame() -> None:
    frames = [([0.0, 0.0, float(z)], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], "1", 1.0) for z in (0, 2, 4)]
    ds = _enhanced(frames, np.ones((3, 2, 2), dtype=np.uint16))
    del ds.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence
    with pytest.raises(MissingAttributeError, match="frame 2"):
        load_volumes([ds])


def test_enhanced_and_single_frame_agree_on_an_oblique_stack(tmp_path: Path) -> None:
    orientation = oblique_orientation(-18, 9)
    paths, pixels, positions = write_stack(tmp_path, orientation=orientation, n=5, spacing=3.0)
    singles = read_all(paths)
    enhanced = LegacyConvertedEnhancedMRImage(
        singles, series_instance_uid=generate_uid(), series_number=98,
        sop_instance_uid=generate_uid(), instance_number=1,
    )
    (from_singles,) = load_volumes(singles)
    (from_enhanced,) = load_volumes([enhanced])
    np.testing.assert_array_equal(from_enhanced.array, pixels)
    np.testing.assert_allclose(from_enhanced.affine, from_singles.affine, atol=1e-4)
    np.testing.assert_allclose(from_enhanced.voxel_to_patient([[k, 0, 0] for k in range(5)]), positions, atol=1e-3)
