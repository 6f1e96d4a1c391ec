"""The header classifier on a table of real-world style headers (Siemens, GE, Philips)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from inference.geometry import AnatomicalPlane
from inference.series_classifier import Region, Weighting, classify_series

AX = AnatomicalPlane.AXIAL
SAG = AnatomicalPlane.SAGITTAL
COR = AnatomicalPlane.CORONAL
LUMBAR = Region.LUMBAR_SPINE
SIJ = Region.SACROILIAC_JOINTS
OTHER = Region.OTHER


def _iop(plane: str, tilt_deg: float = 0.0) -> list[float]:
    """Cardinal orientations, tilted about the patient's left-right axis."""
    t = np.radians(tilt_deg)
    if plane == "ax":
        row, col = [1, 0, 0], [0, np.cos(t), -np.sin(t)]
    elif plane == "sag":
        row, col = [0, 1, 0], [0, 0, -1]
    else:  # coronal, tilted towards axial (semi-coronal along the sacrum)
        row, col = [1, 0, 0], [0, np.sin(t), -np.cos(t)]
    return [round(float(v), 6) for v in (*row, *col)]


def _header(
    description: str,
    plane: str | None,
    te: float | None,
    tr: float | None,
    *,
    tilt: float = 0.0,
    ti: float | None = None,
    scanning: str = "SE",
    variant: str = "SK\\SP",
    options: str = "",
    body: str = "",
    study: str = "",
    image_type: str = "ORIGINAL\\PRIMARY\\M\\NORM",
    manufacturer: str = "SIEMENS",
) -> Dataset:
    ds = Dataset()
    ds.Modality = "MR"
    ds.Manufacturer = manufacturer
    ds.SeriesDescription = description
    ds.ProtocolName = description
    ds.StudyDescription = study
    ds.BodyPartExamined = body
    ds.ImageType = image_type.split("\\")
    ds.ScanningSequence = scanning.split("\\") if "\\" in scanning else scanning
    ds.SequenceVariant = variant.split("\\") if "\\" in variant else variant
    ds.ScanOptions = options.split("\\") if "\\" in options else options
    if te is not None:
        ds.EchoTime = te
    if tr is not None:
        ds.RepetitionTime = tr
    if ti is not None:
        ds.InversionTime = ti
    if plane is not None:
        ds.ImageOrientationPatient = _iop(plane, tilt)
    return ds


@dataclass(frozen=True)
class Case:
    header: Dataset
    plane: AnatomicalPlane | None
    weighting: Weighting
    fat: bool
    region: Region
    localizer: bool = False


CASES: dict[str, Case] = {
    # Siemens
    "siemens t2_tse_tra": Case(
        _header("t2_tse_tra", "ax", 96, 4000, tilt=12, variant="SK\\SP\\OSP", options="PFP\\SAT1",
                body="LSPINE", study="MRT LWS"),
        AX, Weighting.T2, False, LUMBAR),
    "siemens t2_tse_sag": Case(
        _header("t2_tse_sag", "sag", 89, 3000, body="LSPINE", study="MRT LWS"), SAG, Weighting.T2, False, LUMBAR),
    "siemens t1_tse_sag": Case(
        _header("t1_tse_sag", "sag", 9.6, 550, body="LSPINE", study="MRT LWS"), SAG, Weighting.T1, False, LUMBAR),
    "siemens t2_tirm_cor (STIR)": Case(
        _header("t2_tirm_cor", "cor", 56, 4000, tilt=30, ti=150, scanning="SE\\IR", options="IR",
                body="PELVIS", study="MRT ISG"),
        COR, Weighting.STIR, True, SIJ),
    "siemens t1_tse_cor of SIJ": Case(
        _header("t1_tse_cor", "cor", 12, 650, tilt=25, body="SACRUM", study="MRI sacroiliac joints"),
        COR, Weighting.T1, False, SIJ),
    "siemens t2_tse_fs_sag": Case(
        _header("t2_tse_fs_sag", "sag", 80, 3500, options="FS", body="LSPINE"), SAG, Weighting.T2, True, LUMBAR),
    # GE
    "ge Ax T2 FRFSE": Case(
        _header("Ax T2 FRFSE", "ax", 102, 4200, tilt=8, variant="SK\\OSP", options="FAST_GEMS\\FC",
                body="LSPINE", study="MR L SPINE W/O", manufacturer="GE MEDICAL SYSTEMS"),
        AX, Weighting.T2, False, LUMBAR),
    "ge Sag T1 FSE": Case(
        _header("Sag T1 FSE", "sag", 10, 600, options="FAST_GEMS", body="LSPINE", study="MR L SPINE W/O",
                manufacturer="GE MEDICAL SYSTEMS"),
        SAG, Weighting.T1, False, LUMBAR),
    "ge Cor STIR": Case(
        _header("Cor STIR", "cor", 42, 5000, tilt=20, ti=150, scanning="IR", body="PELVIS", study="MR SI JOINTS",
                manufacturer="GE MEDICAL SYSTEMS"),
        COR, Weighting.STIR, True, SIJ),
    "ge Sag T2 FS": Case(
        _header("Sag T2 FRFSE FS", "sag", 85, 3800, options="FAST_GEMS\\FS", body="SPINE", study="MR LUMBAR SPINE",
                manufacturer="GE MEDICAL SYSTEMS"),
        SAG, Weighting.T2, True, LUMBAR),
    # Philips
    "philips T2W_TSE_TRA": Case(
        _header("T2W_TSE_TRA", "ax", 120, 3500, tilt=15, body="LSPINE", study="MR Lumbar spine",
                manufacturer="Philips"),
        AX, Weighting.T2, False, LUMBAR),
    "philips sT1W_TSE": Case(
        _header("sT1W_TSE", "sag", 8, 500, body="SPINE", study="MR LWS nativ", manufacturer="Philips"),
        SAG, Weighting.T1, False, LUMBAR),
    "philips STIR_COR": Case(
        _header("STIR_COR", "cor", 60, 3000, tilt=30, ti=165, scanning="SE\\IR", body="SIJOINT",
                study="MR SI-gewrichten", manufacturer="Philips"),
        COR, Weighting.STIR, True, SIJ),
    "philips T2W_SPAIR_TRA": Case(
        _header("T2W_SPAIR_TRA", "ax", 100, 3000, body="LSPINE", manufacturer="Philips"),
        AX, Weighting.T2, True, LUMBAR),
    # localisers
    "siemens localizer": Case(
        _header("localizer", "sag", 5, 8.6, scanning="GR", body="LSPINE", study="MRT LWS"),
        SAG, Weighting.T1, False, LUMBAR, localizer=True),
    "ge 3-plane loc": Case(
        _header("3-plane loc", "cor", 1.6, 5.0, scanning="GR", body="LSPINE",
                image_type="ORIGINAL\\PRIMARY\\LOCALIZER", manufacturer="GE MEDICAL SYSTEMS"),
        COR, Weighting.T1, False, LUMBAR, localizer=True),
    "philips Survey": Case(
        _header("Survey", "ax", 4.6, 11, scanning="GR", body="SPINE", study="MR lumbar spine", manufacturer="Philips"),
        AX, Weighting.T1, False, LUMBAR, localizer=True),
    # only the parameters decide the weighting
    "no words, long TE/TR": Case(_header("Series 5", "sag", 100, 4000, body="LSPINE"), SAG, Weighting.T2, False,
                                 LUMBAR),
    "no words, short TE/TR": Case(_header("Series 6", "sag", 12, 500, body="LSPINE"), SAG, Weighting.T1, False,
                                  LUMBAR),
    "no words, short TE long TR": Case(_header("Ax FSE", "ax", 25, 3000, body="LSPINE"), AX, Weighting.PD, False,
                                       LUMBAR),
    "no words, short TI": Case(_header("Cor IR", "cor", 40, 4500, tilt=30, ti=160, scanning="IR",
                                       study="MR sacroiliac"),
                               COR, Weighting.STIR, True, SIJ),
    "no words, FLAIR TI": Case(_header("Ax IR", "ax", 120, 9000, ti=2500, scanning="SE\\IR", body="HEAD"),
                               AX, Weighting.T2, False, OTHER),
    "no words, TI without IR flag": Case(_header("Series 9", "cor", 30, 4000, ti=170, body="SIJOINT"),
                                         COR, Weighting.STIR, True, SIJ),
    # other regions and missing evidence
    "cervical sagittal": Case(_header("t2_tse_sag", "sag", 90, 3000, body="CSPINE"), SAG, Weighting.T2, False,
                              OTHER),
    "brain": Case(_header("Ax T2 FLAIR", "ax", 120, 9000, ti=2500, scanning="IR", body="HEAD", study="MR BRAIN"),
                  AX, Weighting.T2, False, OTHER),
    "siemens dixon water sag": Case(
        _header("t2_tse_dixon_sag_W", "sag", 78, 3800, body="LSPINE", image_type="DERIVED\\PRIMARY\\DIXON\\WATER"),
        SAG, Weighting.T2, True, LUMBAR),
    "philips PD_SPAIR_COR of SIJ": Case(
        _header("PD_SPAIR_COR", "cor", 30, 2500, tilt=25, body="PELVIS", study="MR ISG", manufacturer="Philips"),
        COR, Weighting.PD, True, SIJ),
    "canon T2 FSE SAG": Case(
        _header("T2 FSE SAG", "sag", 100, 3500, body="LSPINE", manufacturer="CANON_MEC"), SAG, Weighting.T2, False,
        LUMBAR),
    "ge Sag STIR": Case(
        _header("Sag STIR", "sag", 42, 4000, ti=150, scanning="IR", body="LSPINE", manufacturer="GE MEDICAL SYSTEMS"),
        SAG, Weighting.STIR, True, LUMBAR),
    "SIJ series in a lumbar study": Case(
        _header("t2_tirm_cor_ISG", "cor", 60, 4000, tilt=30, ti=150, scanning="SE\\IR", body="LSPINE",
                study="MRT LWS"),
        COR, Weighting.STIR, True, SIJ),
    "siemens brain scout": Case(
        _header("AAHead_Scout_32ch-head-coil", "sag", 1.4, 3.2, scanning="GR", body="HEAD"), SAG, Weighting.T1,
        False, OTHER, localizer=True),
    "nothing at all": Case(_header("Series 1", "ax", None, None), AX, Weighting.UNKNOWN, False, OTHER),
}


@pytest.mark.parametrize("name", list(CASES))
def test_classify_table(name: str) -> None:
    case = CASES[name]
    result = classify_series(case.header)
    summary = f"{result} / reasons: {result.reasons}"
    assert result.plane is case.plane, summary
    assert result.weighting is case.weighting, summary
    assert result.fat_suppressed is case.fat, summary
    assert result.region is case.region, summary
    assert result.is_localizer is case.localizer, summary
    assert result.reasons, "every answer carries its reasons"


def test_reasons_name_the_evidence() -> None:
    result = classify_series(CASES["siemens t2_tirm_cor (STIR)"].header)
    text = " | ".join(result.reasons)
    assert "ImageOrientationPatient" in text and "tilted 30 deg" in text
    assert "STIR" in text
    assert "ISG" in text.upper() or "sacroiliac" in text
    assert str(result) == "coronal STIR sacroiliac_joints"


def test_description_wins_but_conflict_is_reported() -> None:
    result = classify_series(_header("t1_tse_sag", "sag", 100, 4000, body="LSPINE"))
    assert result.weighting is Weighting.T1
    assert any("parameters suggest T2" in r for r in result.reasons)


def test_orientation_wins_over_description() -> None:
    result = classify_series(_header("t2_tse_sag", "ax", 100, 4000, body="LSPINE"))
    assert result.plane is AX
    assert any("description says sagittal" in r for r in result.reasons)


@pytest.mark.parametrize(
    ("description", "plane"),
    [("Sag T1 FSE", SAG), ("OCor T1 FSE", COR), ("OAx T2 FRFSE", AX), ("t1_tse_cor_obl", COR),
     ("T2W_TSE_TRA", AX), ("t2_tse_tra_p2", AX), ("semi-coronal STIR", COR)],
)
def test_plane_from_description_without_orientation(description: str, plane: AnatomicalPlane) -> None:
    result = classify_series(_header(description, None, 10, 600, body="LSPINE"))
    assert result.plane is plane and result.plane_angle_deg is None


def test_no_plane_without_orientation_or_words() -> None:
    assert classify_series(_header("Series 2", None, 10, 600)).plane is None


def test_tirm_with_flair_ti_is_not_stir() -> None:
    result = classify_series(_header("t2_tirm_tra_dark-fluid", "ax", 110, 9000, ti=2500, scanning="SE\\IR",
                                     body="HEAD"))
    assert result.weighting is Weighting.T2
    assert not result.fat_suppressed


def test_enhanced_mr_header() -> None:
    ds = Dataset()
    ds.Modality = "MR"
    ds.SeriesDescription = "Series 11"
    ds.BodyPartExamined = "LSPINE"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    shared = Dataset()
    orientation = Dataset()
    orientation.ImageOrientationPatient = _iop("sag")
    shared.PlaneOrientationSequence = DicomSequence([orientation])
    echo = Dataset()
    echo.EffectiveEchoTime = 95.0
    shared.MREchoSequence = DicomSequence([echo])
    timing = Dataset()
    timing.RepetitionTime = 3500.0
    shared.MRTimingAndRelatedParametersSequence = DicomSequence([timing])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    result = classify_series(ds)
    assert (result.plane, result.weighting, result.region) == (SAG, Weighting.T2, LUMBAR)


def test_dixon_water_is_fat_suppressed() -> None:
    header = _header("t2_tse_dixon_sag_W", "sag", 80, 3500, body="LSPINE",
                     image_type="DERIVED\\PRIMARY\\DIXON\\WATER")
    result = classify_series(header)
    assert result.fat_suppressed
    assert any("WATER" in r for r in result.reasons)


def test_tied_region_evidence_is_other() -> None:
    result = classify_series(_header("t2_tse_sag", "sag", 90, 3000, body="SPINE"))
    assert result.region is OTHER
    assert any("tied" in r for r in result.reasons)


def test_as_dict_is_json_ready() -> None:
    import json

    result = classify_series(CASES["ge Cor STIR"].header)
    data = json.loads(json.dumps(result.as_dict()))
    assert data["plane"] == "coronal" and data["weighting"] == "STIR" and data["region"] == "sacroiliac_joints"
    assert data["plane_angle_deg"] == pytest.approx(20.0, abs=0.1)
    assert data["reasons"] == result.reasons
