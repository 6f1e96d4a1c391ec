"""3D Slicer's reading of our SEG and SR: dcmqi (QuantitativeReporting's converters).

``scripts/viewers/check_dcmqi.py`` runs dcmqi's ``segimage2itkimage`` and
``tid1500reader`` and checks geometry, voxels, segment attributes and SR references. The
dcmqi binaries come from PyPI's ``dcmqi`` wheel, which ``scripts/viewers/check``
installs into var/viewers/py; without it these tests skip and say so.
"""

from __future__ import annotations

import importlib.util
import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydicom.dataset import Dataset

from dicom_node.results import encode_ldh, encode_sij

from tests.dicom_node.results.conftest import LumbarCase, SijCase

ROOT = Path(__file__).resolve().parents[3]
DCMQI_BIN = ROOT / "var" / "viewers" / "py" / "bin"


def _checker() -> ModuleType:
    if not (DCMQI_BIN / "segimage2itkimage").exists() or not (DCMQI_BIN / "tid1500reader").exists():
        pytest.skip("VIEWER CHECK NOT RUN: dcmqi is not installed in var/viewers/py; run scripts/viewers/check")
    spec = importlib.util.spec_from_file_location("check_dcmqi", ROOT / "scripts" / "viewers" / "check_dcmqi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(sources: Path, datasets: list[Dataset], tmp_path: Path) -> tuple[int, dict[str, Any]]:
    checker = _checker()
    files = []
    for ds in datasets:
        path = tmp_path / f"{ds.SeriesNumber}-{ds.Modality}-{ds.InstanceNumber}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(str(path))
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = checker.main(["--dcmqi-bin", str(DCMQI_BIN), "--sources", str(sources), "--work", str(tmp_path / "work"),
                           *files])
    return rc, json.loads(buf.getvalue())


def test_lumbar_seg_geometry_voxels_and_sr_in_dcmqi(lumbar: LumbarCase, tmp_path: Path) -> None:
    out = encode_ldh(lumbar.result, lumbar.axial)
    rc, report = _run(lumbar.folder / "dicom", out.datasets, tmp_path)
    assert rc == 0 and report["errors"] == [], report["errors"]
    segs = [o for o in report["objects"] if o["kind"] == "SEG"]
    assert len(segs) == 3 and {o["slices"] for o in segs} == {len(v.sop_instance_uids) for v in lumbar.axial}
    facets = {s["label"]: s["modifier"] for o in segs for s in o["segments"] if s["label"].startswith("facet")}
    assert facets == {"facet joint left": "Left", "facet joint right": "Right"}  # laterality reaches Slicer
    (sr,) = [o for o in report["objects"] if o["kind"] == "SR"]
    with_segment = [m for m in sr["measurements"] if m["segment"]]
    assert with_segment and all(m["segment"].split(" ", 1)[1] == m["tracking"] for m in with_segment)


def test_sij_seg_geometry_voxels_and_sr_in_dcmqi(sij: SijCase, tmp_path: Path) -> None:
    out = encode_sij(sij.result, [sij.t1])
    rc, report = _run(sij.folder / "dicom", out.datasets, tmp_path)
    assert rc == 0 and report["errors"] == [], report["errors"]
    (seg,) = [o for o in report["objects"] if o["kind"] == "SEG"]
    assert seg["slices"] == len(sij.t1.sop_instance_uids)
    modifiers = {s["label"]: s["modifier"] for s in seg["segments"]}
    assert modifiers["fat metaplasia left"] == "Left" and modifiers["fat metaplasia right"] == "Right"
    (sr,) = [o for o in report["objects"] if o["kind"] == "SR"]
    assert sr["procedure"] == "MRI of sacroiliac joint"
    assert {m["segment"] for m in sr["measurements"] if m["segment"]} == {
        "1:1 fat metaplasia left", "1:2 fat metaplasia right"}
