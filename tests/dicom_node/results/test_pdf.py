"""Encapsulated PDF report: valid IOD, in the source study, a PDF Ghostscript reads with the findings in it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pydicom

from dicom_node.results import ResultOptions, encode_ldh, encode_sij
from dicom_node.results.pdf import ENCAPSULATED_PDF, minimal_pdf

from tests.conftest import require_program
from tests.dicom_node.results.conftest import LumbarCase, SijCase, dciodvfy_errors


def pdf_text(document: bytes, tmp_path: Path) -> str:
    gs = require_program("gs")
    path = tmp_path / "report.pdf"
    path.write_bytes(document)
    proc = subprocess.run([gs, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=txtwrite", "-sOutputFile=-",
                           str(path)], capture_output=True, text=True, timeout=60, check=True)
    return " ".join(proc.stdout.split())


def test_minimal_pdf_escapes_and_wraps(tmp_path: Path) -> None:
    doc = minimal_pdf("T (1)", ["a\\b (c) " + "word " * 40])
    assert doc.startswith(b"%PDF-1.4") and doc.rstrip().endswith(b"%%EOF")
    text = pdf_text(doc, tmp_path)
    assert "T (1)" in text and "a\\b (c)" in text and text.count("word") == 40


def test_lumbar_pdf(lumbar: LumbarCase, tmp_path: Path) -> None:
    out = encode_ldh(lumbar.result, lumbar.axial, ResultOptions(pdf=True, include_anatomy=False))
    (ds,) = out.extra
    path = tmp_path / "pdf.dcm"
    ds.save_as(path, enforce_file_format=True)
    back = pydicom.dcmread(path)
    assert back.SOPClassUID == ENCAPSULATED_PDF and back.Modality == "DOC" and back.SeriesNumber == 9003
    assert back.StudyInstanceUID == lumbar.axial[0].study_instance_uid
    assert back.PatientID == lumbar.axial[0].headers[0].PatientID
    document = bytes(back.EncapsulatedDocument)[: back.EncapsulatedDocumentLength]
    text = pdf_text(document, tmp_path)
    first = next(f for f in lumbar.result.findings if f.size > 0)
    assert f"MSU {first.grade}" in text and "RESEARCH USE ONLY" in text
    assert lumbar.result.model_sha256 in text
    assert dciodvfy_errors(path, tmp_path, "") == []


def test_sij_pdf(sij: SijCase, tmp_path: Path) -> None:
    out = encode_sij(sij.result, [sij.t1], ResultOptions(pdf=True))
    (ds,) = out.extra
    assert ds.SeriesNumber == 9013
    text = pdf_text(bytes(ds.EncapsulatedDocument)[: ds.EncapsulatedDocumentLength], tmp_path)
    assert f"SPARCC-style {sij.result.sparcc_fm_score}/40" in text and "slice" in text
    assert dciodvfy_errors(ds, tmp_path, "pdfsij") == []
