"""Compressed transfer syntaxes decode through pydicom's handlers into the same volume.

The files come from tests/fixtures/imaging (made by make_fixtures.py with DCMTK
and pydicom; see the README there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEGLSNearLossless, RLELossless

from inference.volume import Volume, load_volumes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imaging"

LOSSLESS = ["jpeg_lossless", "jpegls_lossless", "jpeg2000_lossless", "rle"]
LOSSY = ["jpeg_extended"]


def _load(name: str) -> Volume:
    (volume,) = load_volumes(FIXTURES / name)
    return volume


@pytest.fixture(scope="module")
def native12() -> Volume:
    return _load("native12")


def test_native_fixture_is_a_real_stack(native12: Volume) -> None:
    assert native12.shape == (4, 32, 40)
    assert float(native12.array.max()) <= 4095
    assert np.ptp(native12.array) > 500  # not a constant image that anything would match
    first = pydicom.dcmread(sorted((FIXTURES / "native12").glob("*.dcm"))[-1])
    np.testing.assert_allclose(native12.image_position(0), [float(v) for v in first.ImagePositionPatient], atol=1e-3)


@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_codecs_decode_exactly(name: str, native12: Volume) -> None:
    volume = _load(name)
    transfer_syntax = volume.headers[0].file_meta.TransferSyntaxUID
    assert transfer_syntax.is_compressed, f"{name} fixture is not compressed"
    np.testing.assert_array_equal(volume.array, native12.array)
    np.testing.assert_allclose(volume.affine, native12.affine)
    assert volume.sop_instance_uids == native12.sop_instance_uids


@pytest.mark.parametrize("name", LOSSY)
def test_lossy_codecs_decode_closely(name: str, native12: Volume) -> None:
    volume = _load(name)
    assert volume.headers[0].file_meta.TransferSyntaxUID.is_compressed
    error = np.abs(volume.array - native12.array)
    assert float(error.mean()) < 0.02 * float(np.ptp(native12.array))
    np.testing.assert_allclose(volume.affine, native12.affine)


def test_jpeg_baseline_8_bit() -> None:
    native = _load("native8")
    volume = _load("jpeg_baseline")
    assert str(volume.headers[0].file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.50"
    assert np.ptp(native.array) > 100
    error = np.abs(volume.array - native.array)
    assert float(error.mean()) < 0.05 * float(np.ptp(native.array))


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSNearLossless])
def test_compress_at_run_time(tmp_path: Path, syntax: pydicom.uid.UID, native12: Volume) -> None:
    """Files compressed with pydicom's own encoders, in memory and from disk."""
    datasets = []
    for path in sorted((FIXTURES / "native12").glob("*.dcm")):
        ds = pydicom.dcmread(path)
        if syntax == JPEGLSNearLossless:
            ds.compress(syntax, jls_error=2)
        else:
            ds.compress(syntax)
        ds.save_as(tmp_path / path.name, enforce_file_format=True)
        datasets.append(ds)
    tolerance = 2 if syntax == JPEGLSNearLossless else 0
    for volume in (load_volumes(datasets)[0], load_volumes(tmp_path)[0]):
        np.testing.assert_allclose(volume.array, native12.array, atol=tolerance)


def test_undecodable_pixel_data_names_the_transfer_syntax(tmp_path: Path) -> None:
    from inference.errors import PixelDataError

    datasets = [pydicom.dcmread(p) for p in sorted((FIXTURES / "jpegls_lossless").glob("*.dcm"))]
    broken = bytearray(datasets[1].PixelData)
    broken[20:60] = b"\xff" * 40  # corrupt the JPEG-LS marker segments
    datasets[1].PixelData = bytes(broken)
    with pytest.raises(PixelDataError, match="JPEG-LS"):
        load_volumes(datasets)
