"""Encapsulated PDF report (Modality DOC) for PACS whose viewers ignore SEG and SR.

highdicom has no Encapsulated PDF class, so this one module builds the IOD with
pydicom (PS3.3 A.45.1: Patient, General Study, Encapsulated Document Series,
General Equipment, SC Equipment, Encapsulated Document, SOP Common). The PDF
itself is a one-page text document written by hand (PDF 1.4, Helvetica, no
dependency): the summary per finding, the model and its checksum, the notice.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicom_node.results.errors import ResultsEncodingError
from dicom_node.results.identity import MANUFACTURER, MODEL_NAME, SOFTWARE_VERSION, ModelIdentity

__all__ = ["ENCAPSULATED_PDF", "build_pdf", "minimal_pdf"]

logger = logging.getLogger(__name__)

ENCAPSULATED_PDF = UID("1.2.840.10008.5.1.4.1.1.104.1")
_PATIENT_STUDY = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber", "IssuerOfPatientID", "StudyDescription",
)
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _escape(text: str) -> str:
    safe = text.encode("latin-1", "replace").decode("latin-1")
    return safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _wrap(line: str, width: int = 95) -> list[str]:
    out, current = [], ""
    for word in line.split(" "):
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*out, current]


def minimal_pdf(title: str, lines: Sequence[str]) -> bytes:
    """A one-page A4 PDF with ``title`` and ``lines`` in Helvetica (long lines wrapped)."""
    body = ["BT", "/F1 14 Tf", "50 800 Td", f"({_escape(title)}) Tj", "/F1 10 Tf", "0 -24 Td"]
    for line in lines:
        for part in _wrap(line) or [""]:
            body += [f"({_escape(part)}) Tj", "0 -14 Td"]
    body.append("ET")
    stream = "\n".join(body).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def build_pdf(
    *,
    source: Dataset,
    title: str,
    lines: Sequence[str],
    model: ModelIdentity,
    series_instance_uid: str,
    series_number: int,
    sop_instance_uid: str,
    series_description: str,
) -> Dataset:
    """The Encapsulated PDF instance in the source study (patient and study copied from ``source``).

    Raises
    ------
    ResultsEncodingError
        When the source lacks its Study Instance UID.
    """
    if "StudyInstanceUID" not in source:
        raise ResultsEncodingError("the source image has no Study Instance UID")
    text = [*lines, "", f"Algorithm: {model.name} {model.version}", f"Weights sha256: {model.sha256 or 'none'}",
            f"Software: {MANUFACTURER} {SOFTWARE_VERSION}", f"NOTICE: {model.notice.upper()}"]
    document = minimal_pdf(title, text)
    length = len(document)
    if length % 2:
        document += b"\n"  # OB value of even length; trailing whitespace is allowed after %%EOF
    now = datetime.datetime.now(datetime.timezone.utc)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.SOPInstanceUID = sop_instance_uid
    ds.SpecificCharacterSet = source.get("SpecificCharacterSet", "ISO_IR 100")
    for keyword in _PATIENT_STUDY:
        if keyword in source:
            setattr(ds, keyword, source[keyword].value)
        elif keyword in _TYPE2:
            setattr(ds, keyword, None)
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = series_instance_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description[:64]
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = SOFTWARE_VERSION
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "NO"
    ds.DocumentTitle = title[:64]
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = document
    ds.EncapsulatedDocumentLength = length
    logger.info("PDF report %s (%d bytes)", sop_instance_uid, len(document))
    return ds
