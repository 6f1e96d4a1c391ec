"""Secondary Capture key images: overlay burned in, marked derived, pointing at the slice read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from dicom_node.results import ResultOptions, encode_ldh, encode_sij
from dicom_node.results.sc import patient_orientation

from tests.dicom_node.results.conftest import LumbarCase, SijCase, dciodvfy_errors


def test_lumbar_key_image_per_herniated_level(lumbar: LumbarCase, tmp_path: Path) -> None:
    out = encode_ldh(lumbar.result, lumbar.axial, ResultOptions(secondary_capture=True, include_anatomy=False))
    herniated = [f for f in lumbar.result.findings if f.size > 0 and f.slice is not None]
    assert len(out.extra) == len(herniated) > 0
    for n, (ds, f) in enumerate(zip(out.extra, herniated)):
        path = tmp_path / f"sc{n}.dcm"
        ds.save_as(path, enforce_file_format=True)
        back = pydicom.dcmread(path)
        assert back.SeriesNumber == 9004 and back.StudyInstanceUID == lumbar.axial[0].study_instance_uid
        assert list(back.ImageType) == ["DERIVED", "SECONDARY"] and back.BurnedInAnnotation == "YES"
        assert back.SourceImageSequence[0].ReferencedSOPInstanceUID == f.slice.sop_instance_uid
        assert back.PhotometricInterpretation == "RGB"
        rgb = back.pixel_array
        # the herniation is drawn red inside its box
        r0, c0, r1, c1 = f.bbox
        patch = rgb[r0 + 28: r1 + 29, c0: c1 + 1].reshape(-1, 3).astype(int)
        assert ((patch[:, 0] - patch[:, 2]) > 60).any()
        assert dciodvfy_errors(path, tmp_path, "") == []
    again = encode_ldh(lumbar.result, lumbar.axial, ResultOptions(secondary_capture=True, include_anatomy=False))
    assert [d.SOPInstanceUID for d in again.extra] == [d.SOPInstanceUID for d in out.extra]


def test_sij_key_image(sij: SijCase, tmp_path: Path) -> None:
    out = encode_sij(sij.result, [sij.t1], ResultOptions(secondary_capture=True))
    (ds,) = out.extra
    assert ds.SeriesNumber == 9014 and "RESEARCH USE" in ds.SeriesDescription
    assert np.asarray(ds.pixel_array).shape[-1] == 3
    assert dciodvfy_errors(ds, tmp_path, "scsij") == []


def test_patient_orientation_from_the_plane() -> None:
    ds = pydicom.Dataset()
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]  # axial: rows to the left, columns posterior
    assert patient_orientation(ds) == ("L", "P")
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal
    assert patient_orientation(ds) == ("L", "F")
