"""End to end over DICOM with the local executor (SQLite): SIJ phantoms in, SEG + SR out at the PACS.

Two SIJ phantoms (held-out seeds, never trained on) are sent on loopback to a node
with the bundled weights; its results come back to a receiving pynetdicom SCP.

What is asserted, and why:

* **structure and references, exactly**: one SEG and one SR per study, in the
  source study (Study Instance UID, patient module, frame of reference); the
  routing put the coronal T1 in role ``t1`` and the STIR in ``stir``; every SEG
  frame derives from a T1 slice; every image the SR references is a T1 or STIR
  slice of the study, or the SEG; the SR carries the axSpA probability (in
  [0, 1]), its threshold and class (consistent with each other), the SPARCC FM
  score (0-40), and the research-use notice, as does the SEG;
* **against the ground truth, only where the model is expected to be right**:
  the bones (sacrum, left and right ilium) are learnt (DSC 0.8-0.95 in
  docs/sij.md), so each must overlap its phantom label (DSC >= 0.5, loose on
  purpose: the weights are being retrained); the FM segmentation misses its
  target (held-out DSC 0.78 with v0.4.0, small lesions worst), so per-lesion
  overlap is *not* checked. What is checked is the
  ordering a useful model must get right on two extreme studies: the axSpA
  phantom (SPARCC FM 17, FM in both joints) gets a higher axSpA probability and
  a higher FM score than a phantom with no fat metaplasia at all (score 0), and
  some FM is segmented in the first.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicom_node.commands._demo_pacs import ReceivingPacs
from dicom_node.commands._demo_sr import measurement_groups
from dicom_node.commands.demo import demo_settings, send_folder, study_progress
from dicom_node.server import Node
from inference.labels import SijLabel
from inference.modelcard import bundled_weights
from inference.phantoms.sij import generate_sij_study
from storage.models import Job, JobState, Study

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not bundled_weights("sij").is_file(), reason="no bundled SIJ weights (inference/weights/sij.pt)"),
]

#: held-out phantoms (docs/sij.md evaluates on seeds 5000-5039): an axSpA study with
#: FM in both joints and a STIR (SPARCC FM 17), and a study without any FM (score 0)
SEEDS = {"axspa": 5003, "clear": 5005}
BONES = {"sacrum": SijLabel.SACRUM, "ilium left": SijLabel.ILIUM_LEFT, "ilium right": SijLabel.ILIUM_RIGHT}


def wait_for(condition: Callable[[], bool], what: str, limit: float = 600.0) -> None:
    """Poll until ``condition`` holds; fail naming ``what`` after ``limit`` s (a hang guard, not a timing check)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.25)


def walk(items: Any) -> Iterator[Dataset]:
    for item in items or []:
        yield item
        yield from walk(item.get("ContentSequence"))


def name(item: Dataset) -> str:
    seq = item.get("ConceptNameCodeSequence")
    return str(seq[0].CodeMeaning) if seq else ""


def referenced_sops(ds: Dataset) -> set[str]:
    """Every ReferencedSOPInstanceUID anywhere in ``ds``."""
    found: set[str] = set()

    def visit(d: Dataset) -> None:
        for elem in d:
            if elem.keyword == "ReferencedSOPInstanceUID":
                found.add(str(elem.value))
            elif elem.VR == "SQ":
                for child in elem.value:
                    visit(child)

    visit(ds)
    return found


def seg_masks(seg: Dataset) -> dict[str, dict[str, np.ndarray]]:
    """Segment label -> {source SOP Instance UID: frame mask} (read with pydicom, frame by frame)."""
    labels = {int(s.SegmentNumber): str(s.SegmentLabel) for s in seg.SegmentSequence}
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
    out: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for frame, group in zip(pixels, seg.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        source = str(group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        out[labels[number]][source] = frame > 0
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else 1.0


def test_sij_phantoms_over_dicom_seg_and_sr_back(tmp_path: Path) -> None:
    phantoms = {kind: generate_sij_study(tmp_path / "phantoms" / kind, seed) for kind, seed in SEEDS.items()}
    truth = {kind: json.loads((Path(folder) / "ground_truth.json").read_text()) for kind, folder in phantoms.items()}
    pacs = ReceivingPacs(tmp_path / "pacs").start()
    node = Node(demo_settings(tmp_path, pacs.port, quiet_seconds=1.0))
    node.start()
    try:
        sessions = node.session_factory
        assert sessions is not None
        for kind, folder in phantoms.items():
            files = sorted((Path(folder) / "dicom").rglob("*.dcm"))
            assert send_folder(files, node.address[1]) == len(files)
        uids = {kind: gt["study_instance_uid"] for kind, gt in truth.items()}
        wait_for(lambda: all(study_progress(sessions, uid)[1] for uid in uids.values()), "the SIJ results")

        findings: dict[str, dict[str, float]] = {}
        for kind, gt in truth.items():
            uid = uids[kind]
            assert study_progress(sessions, uid)[2] == []
            t1_uid = gt["series"]["cor_t1"]["series_instance_uid"]
            stir_uid = gt["series"]["cor_stir"]["series_instance_uid"]
            with sessions() as s:
                study = s.scalars(sa.select(Study).where(Study.study_instance_uid == uid)).one()
                assert study.routing is not None
                assert [(r["rule"], r["pipeline"], r["roles"]) for r in study.routing["routed"]] == [
                    ("sij", "sij", {"t1": t1_uid, "stir": stir_uid})]
                assert [(j.pipeline, j.state) for j in s.scalars(sa.select(Job).where(Job.study_id == study.id))] \
                    == [("sij", JobState.SUCCEEDED)]

            received = pacs.objects(uid)
            assert sorted(o.modality for o in received) == ["SEG", "SR"]
            seg = dcmread(next(o.path for o in received if o.modality == "SEG"))
            sr = dcmread(next(o.path for o in received if o.modality == "SR"))
            folder = Path(phantoms[kind]) / "dicom"
            t1 = [dcmread(p, stop_before_pixels=True) for p in sorted((folder / "cor_t1").glob("*.dcm"))]
            stir_sops = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                         for p in (folder / "cor_stir").glob("*.dcm")}
            t1_sops = {str(ds.SOPInstanceUID) for ds in t1}

            # in the source study, the patient module copied, on the T1's frame of reference
            for result in (seg, sr):
                assert str(result.StudyInstanceUID) == uid
                assert (result.PatientID, str(result.PatientName)) == (t1[0].PatientID, str(t1[0].PatientName))
            assert str(seg.FrameOfReferenceUID) == gt["frame_of_reference_uid"]
            assert [str(s.SeriesInstanceUID) for s in seg.ReferencedSeriesSequence] == [t1_uid]
            masks = seg_masks(seg)
            assert {src for by_sop in masks.values() for src in by_sop} <= t1_sops
            assert {"fat metaplasia left", "fat metaplasia right", "bone marrow oedema"} <= set(masks)
            assert "research use" in str(seg.ContentDescription).lower()
            assert all(s.SegmentAlgorithmName for s in seg.SegmentSequence)

            # the SR: references only this study's T1/STIR slices and the SEG; findings and the notice
            assert referenced_sops(sr) - {str(seg.SOPInstanceUID)} <= t1_sops | stir_sops
            assert str(seg.SOPInstanceUID) in referenced_sops(sr)
            notices = [str(i.TextValue) for i in walk(sr.ContentSequence)
                       if i.get("ValueType") == "TEXT" and name(i) == "Research use notice"]
            assert notices and "research use" in notices[0].lower()
            study_group = next(g for g in measurement_groups(sr)
                               if "Axial spondyloarthritis probability" in g.numbers)
            probability = study_group.numbers["Axial spondyloarthritis probability"]
            threshold = study_group.numbers["Axial spondyloarthritis decision threshold"]
            score = study_group.numbers["SPARCC SIJ fat metaplasia score"]
            assert 0.0 <= probability <= 1.0 and 0.0 < threshold < 1.0 and 0.0 <= score <= 40.0
            assert study_group.codes["Axial spondyloarthritis classification"] == (
                "axSpA" if probability >= threshold else "non-axSpA")
            fm_voxels = sum(int(m.sum()) for label in ("fat metaplasia left", "fat metaplasia right")
                            for m in masks[label].values())
            findings[kind] = {"probability": probability, "score": score, "fm_voxels": fm_voxels}

            # the bones against the phantom's labels, slice by slice (matched by SOP Instance UID)
            labels = np.load(Path(phantoms[kind]) / gt["series"]["cor_t1"]["labels"])
            for label_name, value in BONES.items():
                by_sop = masks.get(label_name, {})
                predicted = np.stack([by_sop.get(str(sop), np.zeros(labels["labels"].shape[1:], bool))
                                      for sop in labels["sop_instance_uids"]])
                score_bone = dice(predicted, labels["labels"] == value)
                assert score_bone >= 0.5, (kind, label_name, score_bone)

        # FM is weak per lesion, but the extremes must be ordered and the lesions of the axSpA study seen
        assert findings["axspa"]["fm_voxels"] > 0, findings
        assert findings["axspa"]["probability"] > findings["clear"]["probability"], findings
        assert findings["axspa"]["score"] > findings["clear"]["score"], findings
    finally:
        node.stop()
        pacs.stop()
