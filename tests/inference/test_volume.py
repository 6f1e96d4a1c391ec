"""Series -> volume: geometry round trip, sorting, splitting, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.errors import (
    DuplicateSliceError,
    EmptyVolumeError,
    InconsistentGeometryError,
    IrregularSpacingError,
    MissingAttributeError,
    MissingSliceError,
    VolumeError,
)
from inference.volume import load_series_headers, load_volumes
from tests.inference.test_volume_helpers import (
    AXIAL,
    CORONAL,
    SAGITTAL,
    make_series,
    oblique_orientation,
    random_pixels,
    read_all,
    stack_positions,
    write_stack,
)


def _voxel_centres_of_first_pixels(volume_affine: np.ndarray, n: int) -> np.ndarray:
    idx = np.column_stack([np.arange(n), np.zeros(n), np.zeros(n), np.ones(n)])
    return (idx @ volume_affine.T)[:, :3]


@pytest.mark.parametrize(
    "orientation",
    [AXIAL, SAGITTAL, CORONAL, oblique_orientation(20, 7), oblique_orientation(-35, 15)],
    ids=["axial", "sagittal", "coronal", "oblique", "oblique-neg"],
)
def test_geometry_round_trip(tmp_path: Path, orientation: tuple[float, ...]) -> None:
    paths, pixels, positions = write_stack(tmp_path, orientation=orientation, n=7, spacing=3.3)
    (volume,) = load_volumes(tmp_path)
    assert volume.shape == (7, 12, 10)
    np.testing.assert_array_equal(volume.array, pixels.astype(np.float32))
    # every voxel (0, 0) centre lands on the IPP written, within DS string precision
    np.testing.assert_allclose(_voxel_centres_of_first_pixels(volume.affine, 7), positions, atol=1e-3)
    # a voxel away from the corner: IPP + i * column step + j * row step
    iop = np.asarray(orientation)
    expected = positions[3] + 5 * 0.7 * iop[3:] + 4 * 0.8 * iop[:3]
    np.testing.assert_allclose(volume.voxel_to_patient([3, 5, 4]), expected, atol=1e-3)
    np.testing.assert_allclose(volume.patient_to_voxel(expected), [3, 5, 4], atol=1e-3)
    np.testing.assert_allclose(volume.spacing, (3.3, 0.7, 0.8), atol=1e-4)
    np.testing.assert_allclose(volume.row_direction, iop[:3], atol=1e-5)
    np.testing.assert_allclose(volume.column_direction, iop[3:], atol=1e-5)
    np.testing.assert_allclose(volume.normal, np.cross(iop[:3], iop[3:]), atol=1e-5)
    assert volume.array.dtype == np.float32


def test_sorted_along_normal_not_instance_number(tmp_path: Path) -> None:
    paths, pixels, positions = write_stack(tmp_path, n=5, reverse=True)
    (volume,) = load_volumes(read_all(paths))
    headers_z = [float(h.ImagePositionPatient[2]) for h in volume.headers]
    assert headers_z == sorted(headers_z)
    numbers = [int(h.InstanceNumber) for h in volume.headers]
    assert numbers == sorted(numbers, reverse=True)  # written backwards on purpose
    assert volume.frame_numbers == [None] * 5
    assert volume.sop_instance_uids == [h.SOPInstanceUID for h in volume.headers]
    assert all("PixelData" not in h for h in volume.headers)


def test_uids_and_sources(tmp_path: Path) -> None:
    paths, _, _ = write_stack(tmp_path, n=3)
    datasets = read_all(paths)
    for source in (tmp_path, paths, [str(p) for p in paths], datasets):
        (volume,) = load_volumes(source)  # type: ignore[arg-type]
        assert volume.series_instance_uid == datasets[0].SeriesInstanceUID
        assert volume.study_instance_uid == datasets[0].StudyInstanceUID
        assert volume.frame_of_reference_uid == datasets[0].FrameOfReferenceUID
        assert volume.sop_class_uid == datasets[0].SOPClassUID


def test_single_slice_uses_thickness(tmp_path: Path) -> None:
    write_stack(tmp_path, n=1, spacing=5.0)
    (volume,) = load_volumes(tmp_path)
    assert volume.shape[0] == 1
    assert volume.spacing[0] == pytest.approx(5.0)
    np.testing.assert_allclose(volume.affine[:3, 0], [0, 0, 5.0])


def test_splits_angled_blocks_of_one_series(tmp_path: Path) -> None:
    series = make_series(description="t2_tse_tra")
    blocks = [oblique_orientation(-15, 0), oblique_orientation(0, 0), oblique_orientation(20, 0)]
    origins = [(-20.0, -30.0, 60.0), (-20.0, -30.0, 20.0), (-20.0, -30.0, -20.0)]
    written = []
    for b, (orientation, origin) in enumerate(zip(blocks, origins)):
        pixels = random_pixels(4, seed=b)
        positions = stack_positions(orientation, 4, 4.0, origin)
        write_stack(
            tmp_path, orientation=orientation, pixels=pixels, positions=positions, n=4,
            series=series, instance_offset=4 * b,
        )
        written.append(positions)
    volumes = load_volumes(tmp_path)
    assert len(volumes) == 3
    for volume in volumes:
        match = [p for p in written if np.allclose(volume.image_position(0), p[0], atol=1e-3)]
        assert len(match) == 1
        np.testing.assert_allclose(_voxel_centres_of_first_pixels(volume.affine, 4), match[0], atol=1e-3)


def test_splits_echoes_and_drops_localizers(tmp_path: Path) -> None:
    uid = make_series().series_instance_uid
    write_stack(tmp_path / "e1", series=make_series(series_instance_uid=uid, extra={"EchoNumbers": 1}))
    write_stack(
        tmp_path / "e2",
        series=make_series(series_instance_uid=uid, echo_time=30.0, extra={"EchoNumbers": 2}),
        instance_offset=10,
    )
    write_stack(
        tmp_path / "loc", orientation=SAGITTAL, n=3,
        series=make_series(series_instance_uid=uid, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")),
        instance_offset=20,
    )
    volumes = load_volumes(tmp_path)
    assert len(volumes) == 2
    assert sorted(float(v.headers[0].EchoTime) for v in volumes) == [30.0, 95.0]
    with_loc = load_volumes(tmp_path, include_localizers=True)
    assert sum(v.is_localizer for v in with_loc) == 1


def test_acquisition_numbers_interleaved_stay_one_stack(tmp_path: Path) -> None:
    """Siemens concatenations: alternate slices carry acquisition 1 and 2."""
    paths, pixels, _ = write_stack(tmp_path, n=6, reverse=False)
    datasets = read_all(paths)
    for k, ds in enumerate(datasets):
        ds.AcquisitionNumber = 1 + k % 2
    (volume,) = load_volumes(datasets)
    np.testing.assert_array_equal(volume.array, pixels)


def test_repeated_acquisition_splits(tmp_path: Path) -> None:
    series = make_series()
    write_stack(tmp_path, series=series)
    again = make_series(series_instance_uid=series.series_instance_uid, acquisition_number=2)
    write_stack(tmp_path, series=again, instance_offset=6, pixels=random_pixels(6, seed=9))
    assert len(load_volumes(tmp_path)) == 2


def test_missing_slice_is_refused(tmp_path: Path) -> None:
    paths, _, _ = write_stack(tmp_path, n=6)
    paths[2].unlink()
    with pytest.raises(MissingSliceError, match="1 slice\\(s\\) missing") as info:
        load_volumes(tmp_path)
    assert "InstanceNumbers 3 of the series were not received" in str(info.value)


def test_planned_gap_splits_parallel_blocks(tmp_path: Path) -> None:
    """Two parallel blocks 20 mm apart, numbered 1-8 without a hole: planned, not lost."""
    positions = np.concatenate([stack_positions(AXIAL, 4, 4.0), stack_positions(AXIAL, 4, 3.0, (-20, -30, 50))])
    pixels = random_pixels(8)
    write_stack(tmp_path, n=8, positions=positions, pixels=pixels, reverse=False)
    volumes = load_volumes(tmp_path)
    assert [v.shape[0] for v in volumes] == [4, 4]
    assert [round(v.spacing[0], 3) for v in volumes] == [4.0, 3.0]
    np.testing.assert_array_equal(volumes[1].array, pixels[4:])
    np.testing.assert_allclose(volumes[1].image_position(0), [-20, -30, 50], atol=1e-3)


def test_planned_gap_with_a_lost_instance_is_refused(tmp_path: Path) -> None:
    positions = np.concatenate([stack_positions(AXIAL, 4, 4.0), stack_positions(AXIAL, 4, 4.0, (-20, -30, 39))])
    paths, _, _ = write_stack(tmp_path, n=8, positions=positions, reverse=False)
    paths[6].unlink()  # a slice of the second block never arrived
    with pytest.raises(IrregularSpacingError):
        load_volumes(tmp_path)


def test_irregular_spacing_is_refused(tmp_path: Path) -> None:
    positions = stack_positions(AXIAL, 5, 4.0)
    positions[4, 2] += 1.3  # the last gap is 5.3 mm: no run of regular slices explains it
    write_stack(tmp_path, positions=positions, n=5)
    with pytest.raises(IrregularSpacingError, match="irregular") as info:
        load_volumes(tmp_path)
    assert not isinstance(info.value, MissingSliceError)


def test_duplicate_position_is_refused(tmp_path: Path) -> None:
    positions = stack_positions(AXIAL, 4, 4.0)
    positions[2] = positions[1]
    write_stack(tmp_path, positions=positions, n=4)
    with pytest.raises(DuplicateSliceError, match="same position"):
        load_volumes(tmp_path)


def test_in_plane_drift_is_refused(tmp_path: Path) -> None:
    positions = stack_positions(AXIAL, 5, 4.0)
    positions[4, 0] += 6.0
    write_stack(tmp_path, positions=positions, n=5)
    with pytest.raises(InconsistentGeometryError, match="one line"):
        load_volumes(tmp_path)


def test_mixed_sizes_are_refused(tmp_path: Path) -> None:
    paths, _, _ = write_stack(tmp_path, n=3)
    datasets = read_all(paths)
    small = read_all(write_stack(tmp_path / "b", n=1, pixels=random_pixels(1, 6, 10))[0])[0]
    small.ImagePositionPatient = [f"{v:.6g}" for v in stack_positions(AXIAL, 4, 4.0)[3]]
    with pytest.raises(InconsistentGeometryError, match="mixed sizes"):
        load_volumes(datasets + [small])


def test_all_zero_volume_is_refused(tmp_path: Path) -> None:
    write_stack(tmp_path, n=3, pixels=np.zeros((3, 12, 10), dtype=np.uint16))
    with pytest.raises(EmptyVolumeError, match="all zeros"):
        load_volumes(tmp_path)


def test_missing_geometry_names_the_attribute(tmp_path: Path) -> None:
    paths, _, _ = write_stack(tmp_path, n=3)
    datasets = read_all(paths)
    del datasets[1].ImageOrientationPatient
    with pytest.raises(MissingAttributeError, match="ImageOrientationPatient"):
        load_volumes(datasets)


def test_errors_share_one_family() -> None:
    for error in (MissingSliceError, EmptyVolumeError, MissingAttributeError, DuplicateSliceError):
        assert issubclass(error, VolumeError)


def test_rescale_slope_intercept(tmp_path: Path) -> None:
    paths, pixels, _ = write_stack(tmp_path, n=3, reverse=False)
    datasets = read_all(paths)
    for ds in datasets:
        ds.RescaleSlope = "0.5"
        ds.RescaleIntercept = "-100"
    (volume,) = load_volumes(datasets)
    np.testing.assert_allclose(volume.array, pixels * 0.5 - 100)


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    pixels = random_pixels(3)
    paths, _, _ = write_stack(tmp_path, n=3, reverse=False, pixels=pixels)
    datasets = read_all(paths)
    for ds in datasets:
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.BitsStored = 12
        ds.HighBit = 11
    (volume,) = load_volumes(datasets)
    np.testing.assert_array_equal(volume.array, 4095.0 - pixels)
    # brightest stored value is now the darkest
    assert np.argmax(volume.array) == np.argmin(pixels)


def test_colour_is_refused(tmp_path: Path) -> None:
    from inference.errors import UnsupportedPhotometricError

    paths, _, _ = write_stack(tmp_path, n=2)
    datasets = read_all(paths)
    for ds in datasets:
        ds.PhotometricInterpretation = "PALETTE COLOR"
    with pytest.raises(UnsupportedPhotometricError, match="PALETTE COLOR"):
        load_volumes(datasets)


def test_load_series_headers_groups_a_study(tmp_path: Path) -> None:
    write_stack(tmp_path / "a", series=make_series(description="t2_tse_tra"))
    write_stack(tmp_path / "b", orientation=SAGITTAL, n=4, series=make_series(description="t2_tse_sag"))
    (tmp_path / "notes.txt").write_text("not dicom")
    series = load_series_headers(tmp_path)
    assert sorted(len(v) for v in series.values()) == [4, 6]
    for uid, headers in series.items():
        assert all(h.dataset.SeriesInstanceUID == uid for h in headers)
        assert all("PixelData" not in h.dataset for h in headers)
    # a header-only dataset is re-read from its file for pixels
    sag = next(v for v in series.values() if len(v) == 4)
    (volume,) = load_volumes([h.dataset for h in sag])
    assert volume.shape == (4, 12, 10)


def test_volume_checks_its_own_shape() -> None:
    from inference.volume import Volume

    common = dict(spacing=(1.0, 1.0, 1.0), series_instance_uid="1", study_instance_uid="2",
                  frame_of_reference_uid=None, sop_class_uid="3")
    Volume(np.zeros((2, 3, 4), np.float32), np.eye(4), sop_instance_uids=["a", "b"], frame_numbers=[None, None],
           **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 slices but 1"):
        Volume(np.zeros((2, 3, 4), np.float32), np.eye(4), sop_instance_uids=["a"], frame_numbers=[None],
               **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="4 x 4"):
        Volume(np.zeros((2, 3, 4), np.float32), np.eye(3), sop_instance_uids=["a", "b"], frame_numbers=[1, 2],
               **common)  # type: ignore[arg-type]


def test_files_without_preamble_or_file_meta(tmp_path: Path) -> None:
    """Old exports: bare implicit VR datasets, no 'DICM' prefix, no transfer syntax."""
    import pydicom

    paths, pixels, _ = write_stack(tmp_path / "src", n=3, reverse=False)
    (tmp_path / "bare").mkdir()
    for path in paths:
        ds = pydicom.dcmread(path)
        del ds.file_meta
        ds.preamble = None
        ds.save_as(tmp_path / "bare" / path.name, implicit_vr=True, little_endian=True)
    (tmp_path / "bare" / "README").write_text("these are old files\n")
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(tmp_path / "bare" / paths[0].name)  # the fixture really is preamble-less
    (volume,) = load_volumes(tmp_path / "bare")
    np.testing.assert_array_equal(volume.array, pixels)
    assert sum(len(v) for v in load_series_headers(tmp_path / "bare").values()) == 3


def test_localizer_named_only_by_its_description_is_left_out(tmp_path: Path) -> None:
    """Siemens localisers often say so only in the description, not in ImageType."""
    write_stack(tmp_path / "loc", orientation=CORONAL, n=3, series=make_series(description="localizer"))
    write_stack(tmp_path / "t2", series=make_series(description="t2_tse_tra"))
    volumes = load_volumes(tmp_path)
    assert [v.headers[0].SeriesDescription for v in volumes] == ["t2_tse_tra"]
    assert [v.is_localizer for v in load_volumes(tmp_path, include_localizers=True)] == [True, False]


def test_describe_stacks_reports_instead_of_raising(tmp_path: Path) -> None:
    from inference.volume import describe_stacks

    series = make_series(description="t2_tse_tra")
    paths, _, positions = write_stack(tmp_path / "ax", series=series, n=5, reverse=False)
    paths[2].unlink()  # lost in transfer
    write_stack(
        tmp_path / "loc", orientation=SAGITTAL, n=3,
        series=make_series(description="localizer"),
    )
    infos = describe_stacks(tmp_path)
    assert len(infos) == 2
    broken = next(i for i in infos if not i.is_localizer)
    assert isinstance(broken.error, MissingSliceError)
    assert "InstanceNumbers 3" in str(broken.error)
    assert broken.affine is None and broken.shape is None
    localizer = next(i for i in infos if i.is_localizer)
    assert localizer.error is None and localizer.shape == (3, 12, 10)
    assert [float(h.ImagePositionPatient[0]) for h in localizer.headers] == sorted(
        float(h.ImagePositionPatient[0]) for h in localizer.headers
    )[::-1]  # sagittal normal points to -x: sorted along it


def test_describe_stacks_needs_no_pixels(tmp_path: Path) -> None:
    import pydicom

    from inference.volume import describe_stacks

    paths, _, positions = write_stack(tmp_path, n=4, orientation=oblique_orientation(15, 5), spacing=3.0)
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    for ds in headers:
        ds.filename = None  # nowhere to read pixels from: load_volumes would fail
    (info,) = describe_stacks(headers)
    assert info.error is None and info.shape == (4, 12, 10)
    assert info.spacing is not None and info.spacing[0] == pytest.approx(3.0, abs=1e-3)
    assert info.affine is not None
    np.testing.assert_allclose(info.affine[:3, 3], positions[0], atol=1e-3)
    from inference.errors import PixelDataError

    with pytest.raises(PixelDataError, match="no pixel data"):
        load_volumes(headers)
