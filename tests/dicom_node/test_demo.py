"""``dicom-node demo`` end to end: phantoms over DICOM into a node, SEG/SR back in a PACS.

This is also the local-executor end-to-end test over DICOM (SQLite): the lumbar
findings read back from the SR the PACS received must match the phantom's ground
truth, and nothing the demo started may still run afterwards.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from pathlib import Path

from pydicom import dcmread

from dicom_node.commands._demo_sr import lumbar_rows, sij_rows
from dicom_node.commands.demo import run_demo
from inference.modelcard import bundled_weights


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_demo_brings_results_back_and_stops_everything(tmp_path: Path) -> None:
    before = {t.ident for t in threading.enumerate()}
    out = io.StringIO()
    lines: list[str] = []
    studies = run_demo(tmp_path, out=out, progress=lines.append, timeout=600)
    text = out.getvalue()

    by_kind = {s.kind: s for s in studies}
    lumbar = by_kind["lumbar"]
    assert lumbar.done and not lumbar.errors, lumbar.status
    pacs_files = sorted((tmp_path / "pacs" / lumbar.study_uid).glob("*.dcm"))
    modalities = sorted(dcmread(p, stop_before_pixels=True).Modality for p in pacs_files)
    assert "SR" in modalities and "SEG" in modalities
    sr = next(dcmread(p) for p in pacs_files if dcmread(p, stop_before_pixels=True).Modality == "SR")
    assert str(sr.StudyInstanceUID) == lumbar.study_uid

    pngs = sorted((tmp_path / "pacs" / lumbar.study_uid).glob("*.png"))
    assert pngs and all(str(p) in text for p in pngs)
    truth = json.loads((lumbar.folder / "ground_truth.json").read_text())
    herniated = {d["level"]: d["msu_size"] for d in truth["discs"] if d["msu_size"]}
    graded = {level: grade for level, grade, _ in lumbar_rows(sr) if grade.startswith("MSU")}
    assert set(graded) == set(herniated)
    for level, size in herniated.items():
        assert graded[level].startswith(f"MSU {size}-"), (level, graded[level], size)
        assert graded[level] in text

    sij = by_kind["sij"]
    assert sij.done
    if bundled_weights("sij").is_file():
        assert not sij.errors
        sij_sr = [dcmread(p) for p in (tmp_path / "pacs" / sij.study_uid).glob("*.dcm")
                  if dcmread(p, stop_before_pixels=True).Modality == "SR"]
        assert len(sij_sr) == 1 and sij_rows(sij_sr[0])
    else:  # the SIJ weights are not bundled yet: the job is dead with that reason, shown to the user
        assert any("sij.pt" in e for e in sij.errors)
        assert "sij.pt" in text

    assert any("done" in line for line in lines)
    # nothing left running: the node's threads are gone and its ports are closed
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not [t for t in left if t.name.startswith(("job-worker", "delivery", "study-assembler"))]
    ports = [int(line.split("127.0.0.1:")[1].split(",")[0].split()[0]) for line in lines if "receiving PACS" in line]
    assert ports and _refused(ports[0])
