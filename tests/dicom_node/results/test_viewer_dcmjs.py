"""OHIF's reading of our SEG and SR: scripts/viewers/check_dcmjs.mjs in Node.

The script runs OHIF 3.13.2's own SEG loader (@cornerstonejs/adapters 5.6.8 with dcmjs
0.52.0) and OHIF's SR measurement rules. It needs node and the pinned packages that
``scripts/viewers/check`` installs into var/viewers/node; without them these tests skip
and say so. Known OHIF limitations are asserted exactly, so that a change on either side
shows up here.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pytest
import torch
from pydicom.dataset import Dataset

from dicom_node.results import ResultOptions, encode_ldh, encode_sij
from inference.labels import AxialLabel
from inference.ldh.pipeline import LdhPipeline

from tests.dicom_node.results.conftest import LumbarCase, SijCase, lumbar_result

ROOT = Path(__file__).resolve().parents[3]
NODE_DIR = ROOT / "var" / "viewers" / "node"
SCRIPT = ROOT / "scripts" / "viewers" / "check_dcmjs.mjs"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("VIEWER CHECK NOT RUN: node is not installed (apt-get install nodejs npm)")
    if not (NODE_DIR / "node_modules" / "@cornerstonejs" / "adapters").is_dir():
        pytest.skip("VIEWER CHECK NOT RUN: dcmjs / @cornerstonejs/adapters not installed; run scripts/viewers/check")
    return node


def _run(sources: Path, datasets: list[Dataset], tmp_path: Path) -> dict[str, Any]:
    node = _node()
    work = tmp_path / "dcmjs"
    work.mkdir()
    (work / "node_modules").symlink_to(NODE_DIR / "node_modules")
    shutil.copy(SCRIPT, work / SCRIPT.name)
    files = []
    for ds in datasets:
        path = tmp_path / f"{ds.SeriesNumber}-{ds.Modality}-{ds.InstanceNumber}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(str(path))
    proc = subprocess.run([node, SCRIPT.name, "--sources", str(sources), *files], cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def _by_file(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["file"]: o for o in report["objects"]}


def _hd_counts(seg_ds: Dataset, tmp_path: Path) -> dict[str, dict[str, int]]:
    """Pixels per source image and segment number, as highdicom reads the SEG."""
    path = tmp_path / f"hd-{seg_ds.SOPInstanceUID}.dcm"
    seg_ds.save_as(path, enforce_file_format=True)
    seg = hd.seg.segread(path)
    uids = list(dict.fromkeys(
        fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        for fg in seg_ds.PerFrameFunctionalGroupsSequence))
    px = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=False,
                                           skip_overlap_checks=True)
    counts: dict[str, dict[str, int]] = {}
    for k, uid in enumerate(uids):
        for s, number in enumerate(seg.segment_numbers):
            n = int(np.count_nonzero(px[k, ..., s]))
            if n:
                counts.setdefault(uid, {})[str(number)] = n
    return counts


def test_lumbar_seg_and_sr_as_ohif_reads_them(lumbar: LumbarCase, tmp_path: Path) -> None:
    out = encode_ldh(lumbar.result, lumbar.axial)
    report = _run(lumbar.folder / "dicom", out.datasets, tmp_path)
    assert report["errors"] == []
    objects = _by_file(report)
    series_loaded = []
    for seg_ds in out.segs:
        seg = objects[f"9001-SEG-{seg_ds.InstanceNumber}.dcm"]
        # every frame maps to its source image; colours come out as the encoder's RGB
        assert all(f["sourceInstanceNumber"] is not None for f in seg["frames"])
        by_label = {s["label"]: s for s in seg["segments"]}
        assert by_label["dural sac"]["ohifRGB"] == [255, 220, 0]
        assert by_label["facet joint left"]["typeModifier"] == "SCT:7771000 Left"
        assert any(label.startswith("herniation ") for label in by_label)
        # OHIF's loader on the SEG's own stack puts exactly highdicom's pixels on each image
        assert seg["ohifStack"]["ok"], seg["ohifStack"]
        assert seg["ohifStack"]["pixelsPerSourceAndSegment"] == _hd_counts(seg_ds, tmp_path)
        series_loaded.append(seg["ohifSeries"]["ok"])
        if not seg["ohifSeries"]["ok"]:
            assert "oblique" in seg["ohifSeries"]["error"]
    # Each stack's SEG is a SEG series of its own, so OHIF lists all three. OHIF 3.13.2 makes
    # one display set of the three angled stacks of the source series and takes the first
    # image's orientation as the only valid one: the SEG of that stack loads, the other two
    # are refused as "oblique" (an OHIF limitation, docs/results.md "Viewers").
    assert len({ds.SeriesInstanceUID for ds in out.segs}) == len(out.segs)
    assert series_loaded == [True, False, False]
    sr = objects["9002-SR-1.dcm"]
    herniated = [g for g in sr["groups"] if g["trackingIdentifier"].startswith("herniation")]
    assert len(herniated) == sum(1 for f in lumbar.result.findings if f.size > 0)
    for group in herniated:
        if True:
            # planar and volumetric groups share the tracking UID: OHIF merges them and draws the box
            assert group["mergedGroups"] == 2 and group["geometric"]
            (coord,) = group["coords"]
            assert coord["graphicType"] == "POLYLINE" and coord["points"] == 5
            assert any(label.startswith("Herniation depth beyond posterior disc margin") for label in group["labels"])
            assert not group["ohifThrowsOnLoad"]


def test_sij_seg_loads_and_sr_limitation_is_reported(sij: SijCase, tmp_path: Path) -> None:
    out = encode_sij(sij.result, [sij.t1])
    report = _run(sij.folder / "dicom", out.datasets, tmp_path)
    assert report["errors"] == []
    objects = _by_file(report)
    seg = objects[f"9011-SEG-{out.segs[0].InstanceNumber}.dcm"]
    assert seg["ohifStack"]["ok"] and seg["ohifSeries"]["ok"]  # one coronal stack: OHIF's display set
    assert seg["ohifSeries"]["pixelsPerSourceAndSegment"] == _hd_counts(out.segs[0], tmp_path)
    labels = [s["label"] for s in seg["segments"]]
    assert labels[:2] == ["fat metaplasia left", "fat metaplasia right"]
    sr = objects[f"9012-SR-{out.sr.InstanceNumber}.dcm"]
    # OHIF 3.13.2 reads coords[0] of every measurement (groups merged by tracking UID) and
    # throws on one without a SCOORD (docs/results.md "Viewers"): every SIJ group has one now
    assert sr["groups"] and not any(g["ohifThrowsOnLoad"] for g in sr["groups"])
    joints = [g for g in sr["groups"] if g["trackingIdentifier"].startswith("fat metaplasia")]
    assert len(joints) == 2 and all(g["mergedGroups"] == 2 and g["geometric"] for g in joints)
    oedema = [g for g in sr["groups"] if g["trackingIdentifier"].startswith("SPARCC oedema slice")]
    assert oedema
    for g in oedema:  # the slice score has its region: OHIF keeps it as a label
        assert g["droppedNumLabels"] == [] and any("oedema slice score" in label for label in g["labels"])


def test_fractional_seg_loads_only_when_pseudo_binary(lumbar: LumbarCase, tmp_path: Path) -> None:
    out = encode_ldh(lumbar.result, lumbar.axial, ResultOptions(fractional=True, include_anatomy=False))
    # a graded probability map: some pixels between 0 and the maximum
    seg_ds = out.segs[0]
    pixels = np.frombuffer(seg_ds.PixelData, dtype=np.uint8).copy()
    inside = np.flatnonzero(pixels)
    assert inside.size
    pixels[inside[: inside.size // 2]] = int(seg_ds.MaximumFractionalValue) // 2
    graded = Dataset()
    graded.update(seg_ds)
    graded.file_meta = seg_ds.file_meta
    graded.PixelData = pixels.tobytes()
    graded.InstanceNumber = 99  # its own file name; UIDs do not matter to the loader
    report = _run(lumbar.folder / "dicom", [*out.segs, graded], tmp_path)
    assert report["errors"] == []
    objects = _by_file(report)
    for ds in out.segs:
        values = set(np.unique(np.frombuffer(ds.PixelData, dtype=np.uint8)).tolist())
        pseudo_binary = values <= {0, int(ds.MaximumFractionalValue)}
        assert objects[f"9001-SEG-{ds.InstanceNumber}.dcm"]["ohifStack"]["ok"] == pseudo_binary
    # a real probability map is refused by OHIF 3.13.2 ("Fractional segmentations are not yet supported")
    assert not objects["9001-SEG-99.dcm"]["ohifStack"]["ok"]
    assert "Fractional" in objects["9001-SEG-99.dcm"]["ohifStack"]["error"]
    assert any("FRACTIONAL" in line for line in report["limitations"])


def test_normal_level_groups_can_be_drawn_by_ohif(lumbar_folder: Path, tmp_path: Path) -> None:
    axial, result = lumbar_result(lumbar_folder)
    for seg in result.segmentations:  # herniated material becomes disc: a normal spine
        seg.labels[seg.labels == AxialLabel.HERNIATION] = AxialLabel.DISC
        seg.herniation_probability[:] = 0
    findings, _ = LdhPipeline(torch.nn.Identity(), use_level_finder=False).grade(axial, result.segmentations, None)
    out = encode_ldh(dataclasses.replace(result, findings=findings), axial)
    report = _run(lumbar_folder / "dicom", out.datasets, tmp_path)
    assert report["errors"] == []
    (sr,) = [o for o in report["objects"] if o["kind"] == "SR"]
    # "Disc herniation = Absent" groups are Planar ROI groups on the disc: OHIF 3.13.2 draws them
    assert sr["groups"] and not any(g["ohifThrowsOnLoad"] for g in sr["groups"])
    assert all(g["geometric"] for g in sr["groups"])
    assert all("Disc herniation = Absent" in g["codes"] for g in sr["groups"])
