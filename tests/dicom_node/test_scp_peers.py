"""Independent peers (DCMTK storescu/echoscu) and concurrent associations against ``serve``."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.conftest import require_program
from tests.dicom_node.serve_harness import (
    ServeProcess,
    audit,
    dcmtk_env,
    indexed,
    make_instance,
)



def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=dcmtk_env(), capture_output=True, text=True, timeout=300)


@pytest.mark.integration
def test_dcmtk_echoscu_and_storescu(shared_node: ServeProcess, tmp_path: Path) -> None:
    echoscu = require_program("echoscu")
    storescu = require_program("storescu")
    port = str(shared_node.port)
    assert _run([echoscu, "-aec", "DICOM_NODE", "127.0.0.1", port]).returncode == 0
    # a wrong called AE is rejected (echoscu fails), and the node still answers
    assert _run([echoscu, "-aec", "SOMEONE_ELSE", "127.0.0.1", port]).returncode != 0

    data = tmp_path / "series"
    data.mkdir()
    study, series = generate_uid(), generate_uid()
    sent = []
    for i in range(20):
        ds = make_instance(study, series, i + 1)
        ds.save_as(data / f"{i:03d}.dcm", enforce_file_format=True)
        sent.append(ds.SOPInstanceUID)
    result = _run([storescu, "-aec", "DICOM_NODE", "+sd", "127.0.0.1", port, str(data)])
    assert result.returncode == 0, result.stderr
    # compressed transfer syntaxes are stored as received (JPEG-LS, RLE proposed explicitly)
    jls = get_testdata_file("MR_small_jpeg_ls_lossless.dcm")
    rle = get_testdata_file("MR_small_RLE.dcm")
    assert _run([storescu, "-aec", "DICOM_NODE", "-xt", "127.0.0.1", port, jls]).returncode == 0
    assert _run([storescu, "-aec", "DICOM_NODE", "-xr", "127.0.0.1", port, rle]).returncode == 0

    rows = indexed(shared_node)
    assert set(sent) <= set(rows)
    # both test files are derived from MR_small: one SOP Instance UID, kept as two versions
    # (the JPEG-LS one first, unless another test of this session sent MR_small before)
    uid = pydicom.dcmread(jls, stop_before_pixels=True).SOPInstanceUID
    assert uid == pydicom.dcmread(rle, stop_before_pixels=True).SOPInstanceUID
    assert rows[uid][2] >= 2
    for path, sha256, _ in [rows[u] for u in [*sent, uid]]:
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha256
    stored = pydicom.dcmread(rows[uid][0])
    assert stored.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
    assert stored.PixelData == pydicom.dcmread(rle).PixelData  # RLE fragments as received
    assert _run([echoscu, "-aec", "DICOM_NODE", "127.0.0.1", port]).returncode == 0


@pytest.mark.integration
def test_four_concurrent_associations_400_instances(
    shared_node: ServeProcess, tmp_path: Path
) -> None:
    """Four storescu processes at once, 100 instances each, into one study (4 series)."""
    storescu = require_program("storescu")
    study = generate_uid()
    sent: dict[str, Path] = {}
    folders = []
    for n in range(4):
        folder = tmp_path / f"series{n}"
        folder.mkdir()
        series = generate_uid()
        for i in range(100):
            ds = make_instance(study, series, i + 1, seed=n * 1000)
            path = folder / f"{i:03d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            sent[ds.SOPInstanceUID] = path
        folders.append(folder)
    procs = [
        subprocess.Popen(
            [storescu, "-aec", "DICOM_NODE", "+sd", "127.0.0.1", str(shared_node.port), str(f)],
            env=dcmtk_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for f in folders
    ]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], outputs
    rows = indexed(shared_node)
    assert set(sent) <= set(rows)  # all indexed, each once (the UID is the key)
    for uid in sent:
        path, sha256, version = rows[uid]
        data = Path(path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha256
        assert version == 1
        stored = pydicom.dcmread(path)
        assert stored.PixelData == pydicom.dcmread(sent[uid]).PixelData
    stores = [
        e for e in audit(shared_node, kind="store") if e.study_uid == study and e.outcome == "0x0000"
    ]
    assert len(stores) == 400
    assert len({e.peer for e in stores}) == 4  # four associations, four peer ports
