"""Every code the SEG and SR encoders write, in one place (CLINICAL.md section 3).

Standard concepts come from SNOMED CT (``SCT``) and DICOM (``DCM``). No standard
codes exist for the MSU size and zone, the SPARCC scores or the axSpA
probability, so those use the project's private coding scheme
:data:`PRIVATE_SCHEME` (declared in every SR's Coding Scheme Identification
Sequence by :func:`coding_scheme_item`). The private code values are a
contract: never renumber one, only add.
"""

from __future__ import annotations

from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.coding import Code

__all__ = [
    "DISC_CODES",
    "PRIVATE_SCHEME",
    "MSU_SIZE",
    "MSU_ZONE",
    "QUADRANT_CODES",
    "coding_scheme_item",
    "private",
    "sct",
    "dcm",
]

#: Coding Scheme Designator of the project's own concepts ("99" prefix: private, PS3.16 8.2).
PRIVATE_SCHEME = "99DCMNODE"
PRIVATE_SCHEME_NAME = "dicom-node private concepts"
PRIVATE_SCHEME_VERSION = "1"
PRIVATE_SCHEME_ORGANIZATION = "dicom-node project"


def sct(value: str, meaning: str) -> Code:
    """A SNOMED CT code."""
    return Code(value, "SCT", meaning)


def dcm(value: str, meaning: str) -> Code:
    """A DICOM (PS3.16) code."""
    return Code(value, "DCM", meaning)


def private(value: str, meaning: str) -> Code:
    """A code of :data:`PRIVATE_SCHEME`."""
    return Code(value, PRIVATE_SCHEME, meaning)


def coding_scheme_item() -> CodingSchemeIdentificationItem:
    """The Coding Scheme Identification Sequence item declaring :data:`PRIVATE_SCHEME`."""
    return CodingSchemeIdentificationItem(
        designator=PRIVATE_SCHEME,
        name=PRIVATE_SCHEME_NAME,
        version=PRIVATE_SCHEME_VERSION,
        responsible_organization=PRIVATE_SCHEME_ORGANIZATION,
    )


# -- segment categories (CID 7150) -----------------------------------------------------------
ANATOMICAL_STRUCTURE = sct("91723000", "Anatomical Structure")
TISSUE = sct("85756007", "Tissue")
MORPHOLOGICALLY_ABNORMAL = sct("49755003", "Morphologically Abnormal Structure")

# -- anatomy and findings (SCT) ---------------------------------------------------------------
LUMBAR_SPINE = sct("122496007", "Lumbar spine")
SACRUM = sct("54735007", "Sacrum")
ILIUM = sct("22356005", "Ilium")
SACROILIAC_JOINT = sct("39723000", "Sacroiliac joint")
BONE_MARROW = sct("14016003", "Bone marrow")
FAT = sct("55603005", "Fat")
OEDEMA = sct("79654002", "Edema")
LESION = sct("52988006", "Lesion")
JOINT = sct("39352004", "Joint")
DURA_MATER = sct("18545000", "Dura mater")
SPINAL_CSF_PATHWAY = sct("280401006", "Spinal CSF pathway")
VERTEBRAL_CANAL = sct("61853006", "Vertebral canal")
DISC_HERNIATION = sct("73589001", "Herniation of intervertebral disc")
FINDING_SITE = sct("363698007", "Finding Site")
LATERALITY = sct("272741003", "Laterality")
LEFT = sct("7771000", "Left")
RIGHT = sct("24028007", "Right")
LENGTH = sct("410668003", "Length")
AREA = sct("42798000", "Area")
VOLUME = sct("118565006", "Volume")
PRESENT = sct("52101004", "Present")
ABSENT = sct("272519000", "Absent")

#: Intervertebral disc of each level, spelt as :data:`inference.labels.DISC_LEVELS`.
DISC_CODES: dict[str, Code] = {
    "T12/L1": sct("76206002", "T12-L1 intervertebral disc"),
    "L1/L2": sct("80064006", "L1-L2 intervertebral disc"),
    "L2/L3": sct("67459009", "L2-L3 intervertebral disc"),
    "L3/L4": sct("62551000", "L3-L4 intervertebral disc"),
    "L4/L5": sct("84020006", "L4-L5 intervertebral disc"),
    "L5/S1": sct("715056000", "L5-S1 intervertebral disc"),
}

# -- DICOM (DCM) -------------------------------------------------------------------------------
FINDING = dcm("121071", "Finding")
SUMMARY = dcm("121111", "Summary")
IMAGING_MEASUREMENT_REPORT = dcm("126000", "Imaging Measurement Report")
ARTIFICIAL_INTELLIGENCE = dcm("113117", "Artificial Intelligence")  # CID 7162 algorithm family
MR_PROCEDURE = sct("113091000", "Magnetic resonance imaging")
QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")

# -- private concepts (99DCMNODE): stable values, never renumbered ------------------------------
MSU_SIZE_NAME = private("DN0001", "MSU herniation size")
MSU_ZONE_NAME = private("DN0002", "MSU herniation zone")
MSU_SIZE: dict[int, Code] = {
    0: private("DN0010", "MSU size 0 (no herniation)"),
    1: private("DN0011", "MSU size 1"),
    2: private("DN0012", "MSU size 2"),
    3: private("DN0013", "MSU size 3"),
}
MSU_ZONE: dict[str, Code] = {
    "A": private("DN0020", "MSU zone A"),
    "AB": private("DN0021", "MSU zone AB"),
    "B": private("DN0022", "MSU zone B"),
    "C": private("DN0023", "MSU zone C"),
}
HERNIATION_DEPTH = private("DN0030", "Herniation depth beyond posterior disc margin")
INTRAFACET_DISTANCE = private("DN0031", "Posterior disc margin to intra-facet line distance")
HERNIATION_RATIO = private("DN0032", "Herniation depth ratio")
HERNIATION_AREA = private("DN0033", "Herniation area on the slice read")
HERNIATION_VOLUME = private("DN0034", "Herniation volume")
MODEL_CONFIDENCE = private("DN0035", "Model confidence")
LEVEL_METHOD_NAME = private("DN0040", "Disc level assignment")
LEVEL_FROM_SAGITTAL = private("DN0041", "Level cross-referenced on sagittal series")
LEVEL_INFERRED = private("DN0042", "Level inferred from axial stack order")
SIDE_CENTRAL = private("DN0043", "Central")
HERNIATION_PRESENCE = private("DN0044", "Disc herniation")

SPARCC_FM_SCORE = private("DN0100", "SPARCC SIJ fat metaplasia score")
SPARCC_SLICE_SCORE = private("DN0101", "SPARCC fat metaplasia slice score")
FM_VOLUME = private("DN0102", "Fat metaplasia volume")
FM_QUADRANT = private("DN0103", "Fat metaplasia in quadrant")
OEDEMA_QUADRANT = private("DN0104", "Bone marrow oedema in quadrant")
SPARCC_OEDEMA_SLICE_SCORE = private("DN0105", "SPARCC bone marrow oedema slice score")
ASAS_POSITIVE_MRI = private("DN0110", "ASAS positive MRI")
OEDEMA_ASSESSMENT = private("DN0111", "Bone marrow oedema assessment")
NOT_ASSESSED = private("DN0112", "Not assessed")
AXSPA_PROBABILITY = private("DN0120", "Axial spondyloarthritis probability")
AXSPA_CLASS_NAME = private("DN0121", "Axial spondyloarthritis classification")
AXSPA_POSITIVE = private("DN0122", "axSpA")
AXSPA_NEGATIVE = private("DN0123", "non-axSpA")
AXSPA_THRESHOLD = private("DN0124", "Axial spondyloarthritis decision threshold")
RESEARCH_NOTICE = private("DN0200", "Research use notice")
WEIGHTS_SHA256 = private("DN0201", "Model weights SHA-256")

#: SIJ quadrant names (:data:`inference.sij.quadrants.QUADRANT_NAMES`) to codes.
QUADRANT_CODES: dict[str, Code] = {
    name: private(f"DN013{i}", name.replace("_", " "))
    for i, name in enumerate(
        (
            "left_iliac_upper",
            "left_iliac_lower",
            "left_sacral_upper",
            "left_sacral_lower",
            "right_iliac_upper",
            "right_iliac_lower",
            "right_sacral_upper",
            "right_sacral_lower",
        )
    )
}

# -- units (UCUM) ------------------------------------------------------------------------------
MM = Code("mm", "UCUM", "millimeter")
MM2 = Code("mm2", "UCUM", "square millimeter")
MM3 = Code("mm3", "UCUM", "cubic millimeter")
ML = Code("ml", "UCUM", "milliliter")
PERCENT = Code("%", "UCUM", "percent")
NO_UNITS = Code("1", "UCUM", "no units")
SCORE = Code("{score}", "UCUM", "score")
