"""What is this series? Plane, weighting and body region from header tags alone.

Each answer carries its reasons, in the order the evidence was weighed, so that
routing can say why a series went (or did not go) to a pipeline. Vendors name
the same thing differently (Siemens ``t2_tse_tra``, GE ``Ax T2 FRFSE``, Philips
``T2W_TSE_TRA``); the description is read first, the sequence parameters
(EchoTime, RepetitionTime, InversionTime, ScanningSequence, ScanOptions) decide
when it is silent and are reported when they disagree.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from inference.geometry import AnatomicalPlane, classify_plane

__all__ = ["Region", "SeriesClass", "Weighting", "classify_series", "localizer_reason"]

logger = logging.getLogger(__name__)


class Weighting(str, enum.Enum):
    """Contrast weighting of a series."""

    T1 = "T1"
    T2 = "T2"
    PD = "PD"
    STIR = "STIR"  #: short-tau inversion recovery (always fat suppressed)
    UNKNOWN = "unknown"


class Region(str, enum.Enum):
    """Body region a series images, as far as the pipelines care."""

    LUMBAR_SPINE = "lumbar_spine"
    SACROILIAC_JOINTS = "sacroiliac_joints"
    OTHER = "other"  #: another region, or no evidence for either


@dataclass(frozen=True)
class SeriesClass:
    """The classifier's answer for one series (from one representative header)."""

    plane: AnatomicalPlane | None  #: ``None`` when neither geometry nor description tell
    weighting: Weighting
    fat_suppressed: bool
    region: Region
    is_localizer: bool
    plane_angle_deg: float | None = None  #: tilt from the named plane, from ImageOrientationPatient
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (for routing logs and ``route --dry-run``)."""
        return {
            "plane": self.plane.value if self.plane else None,
            "plane_angle_deg": None if self.plane_angle_deg is None else round(self.plane_angle_deg, 1),
            "weighting": self.weighting.value,
            "fat_suppressed": self.fat_suppressed,
            "region": self.region.value,
            "is_localizer": self.is_localizer,
            "reasons": list(self.reasons),
        }

    def __str__(self) -> str:
        plane = self.plane.value if self.plane else "unknown plane"
        fs = " fat-suppressed" if self.fat_suppressed and self.weighting is not Weighting.STIR else ""
        loc = " localizer" if self.is_localizer else ""
        return f"{plane} {self.weighting.value}{fs} {self.region.value}{loc}"


#: Oblique tolerance used for the plane: disc-angled axial blocks and
#: semi-coronal SIJ stacks keep their cardinal name (the tilt is a reason).
PLANE_TOLERANCE_DEG = 45.0
#: Inversion times (ms) at or below this null fat: STIR (150-250 ms at 1.5-3 T).
STIR_MAX_TI_MS = 300.0
#: Inversion times (ms) at or above this null fluid: FLAIR.
FLAIR_MIN_TI_MS = 1500.0

_T1 = re.compile(r"(?<![0-9])t1(?![0-9])")
_T2 = re.compile(r"(?<![0-9])t2(?![0-9])")
_PD = re.compile(r"(?<![a-z])pd(?:w|fs)?(?![a-z])|proton[ _-]?density")
_STIR = re.compile(r"stir|tirm")
_FLAIR = re.compile(r"flair")
_FAT_SAT = re.compile(
    r"(?:^|[^a-z]|t1|t2|pd)fs(?![a-z])|fat[ _-]?sat|fat[ _-]?supp?|spair|(?<![a-z])spir(?![a-z])"
    r"|chess|dixon[ _-]?w(?:ater)?(?![a-z])|(?<![a-z])water(?![a-z])"
)
_LOCALIZER = re.compile(
    r"locali[sz]er|(?<![a-z])loc(?![a-z])|scout|survey|tri[ _-]?pilot|3[ _-]?pl(?:ane)?(?![a-z])|aahead"
)
_PLANE_WORDS = (
    # GE writes oblique planes with an O prefix: OAx, OSag, OCor
    (AnatomicalPlane.AXIAL, re.compile(r"(?<![a-z])o?(?:ax|axial|tra|trans|transverse)(?![a-z])")),
    (AnatomicalPlane.SAGITTAL, re.compile(r"(?<![a-z])o?(?:sag|sagittal)(?![a-z])")),
    (AnatomicalPlane.CORONAL, re.compile(r"(?<![a-z])(?:o?cor|coronal|semi[ _-]?cor(?:onal)?)(?![a-z])")),
)
_LUMBAR = re.compile(
    r"lumb|(?<![a-z])l[ _-]?spine|lspine|(?<![a-z])lws(?![a-z])|(?<![a-z])ls[ _-]?spine|lumbosacral"
    r"|(?<![a-z])lss?(?![a-z])"
)
_SIJ = re.compile(
    r"sacro[ _-]?iliac|(?<![a-z])sij?s?(?![a-z])|si[ _-]?joint|(?<![a-z])isg(?![a-z])|ilio[ _-]?sacral|sig[ _-]gewricht"
)
_OTHER_PARTS = re.compile(
    r"(?<![a-z])(?:head|brain|neck|cspine|c[ _-]?spine|cervical|hws|tspine|t[ _-]?spine|thoracic|bws|knee|"
    r"shoulder|hips?|ankle|foot|wrist|hand|elbow|abdomen|liver|breast|chest|heart|cardiac|prostate|orbits?)(?![a-z])"
)
_BODY_LUMBAR = {"LSPINE", "L-SPINE", "LUMBAR", "LUMBARSPINE", "LSSPINE", "LUMBOSACRAL", "LWS", "L SPINE"}
_BODY_SIJ = {"SIJOINT", "SIJ", "SI JOINT", "SI-JOINT", "SACROILIAC", "SIJOINTS", "ISG", "SI JOINTS"}
_BODY_BOTH = {"SPINE", "TLSPINE", "SSPINE", "SACRUM", "PELVIS", "SPINE LUMBAR"}


def _text(ds: Dataset, *keywords: str) -> str:
    parts = [str(ds.get(k, "") or "") for k in keywords]
    return " ".join(p for p in parts if p).lower()


def _values(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip().upper() for v in value.split("\\") if v.strip()]
    try:
        return [str(v).strip().upper() for v in value]
    except TypeError:
        return [str(value).strip().upper()]


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, (str, int, float)):
            value = list(value)[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _nested(ds: Dataset, sequence: str, keyword: str) -> Any:
    """A value from the shared (or first per-frame) functional group of an enhanced image."""
    for groups_keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(groups_keyword)
        if groups:
            seq = groups[0].get(sequence)
            if seq and keyword in seq[0]:
                return seq[0].get(keyword)
    return None


def _parameters(ds: Dataset) -> tuple[float | None, float | None, float | None]:
    te = _number(ds.get("EchoTime"))
    if te is None:
        te = _number(_nested(ds, "MREchoSequence", "EffectiveEchoTime"))
    tr = _number(ds.get("RepetitionTime"))
    if tr is None:
        tr = _number(_nested(ds, "MRTimingAndRelatedParametersSequence", "RepetitionTime"))
    ti = _number(ds.get("InversionTime"))
    if ti is None:
        ti = _number(_nested(ds, "MRModifierSequence", "InversionTimes"))
    return te, tr, ti


def _orientation(ds: Dataset) -> list[float] | None:
    iop = ds.get("ImageOrientationPatient")
    if not iop:
        iop = _nested(ds, "PlaneOrientationSequence", "ImageOrientationPatient")
    try:
        values = [float(v) for v in iop] if iop else None
    except (TypeError, ValueError):
        return None
    return values if values is not None and len(values) == 6 else None


def _plane(ds: Dataset, series_text: str, reasons: list[str]) -> tuple[AnatomicalPlane | None, float | None]:
    worded = [plane for plane, pattern in _PLANE_WORDS if pattern.search(series_text)]
    iop = _orientation(ds)
    if iop is not None:
        try:
            result = classify_plane(iop, tolerance_deg=PLANE_TOLERANCE_DEG)
        except ValueError as exc:
            reasons.append(f"ImageOrientationPatient unusable ({exc})")
        else:
            tilt = f", tilted {result.angle_deg:.0f} deg" if result.angle_deg >= 1 else ""
            reasons.append(f"plane {result.plane.value} from ImageOrientationPatient{tilt}")
            if worded and result.nearest not in worded:
                reasons.append(f"description says {worded[0].value}; the orientation wins")
            return result.plane, result.angle_deg
    if len(worded) == 1:
        reasons.append(f"plane {worded[0].value} from the description (no usable orientation)")
        return worded[0], None
    reasons.append("plane unknown: no orientation and no plane word in the description")
    return None, None


def _weighting_from_parameters(
    te: float | None, tr: float | None, ti: float | None, inversion: bool, reasons: list[str]
) -> Weighting:
    if inversion and ti is not None and ti <= STIR_MAX_TI_MS:
        reasons.append(f"inversion recovery with short TI {ti:g} ms: STIR")
        return Weighting.STIR
    if inversion and ti is not None and ti >= FLAIR_MIN_TI_MS:
        if te is not None and te >= 60:
            reasons.append(f"inversion recovery with long TI {ti:g} ms and TE {te:g} ms: T2 FLAIR")
            return Weighting.T2
        reasons.append(f"inversion recovery with long TI {ti:g} ms and short TE: T1 FLAIR")
        return Weighting.T1
    if te is None or tr is None:
        reasons.append("weighting unknown: EchoTime or RepetitionTime missing")
        return Weighting.UNKNOWN
    if inversion and ti is not None:
        reasons.append(f"inversion recovery with TI {ti:g} ms (T1-weighted IR)")
        return Weighting.T1
    if te <= 30 and tr <= 1200:
        reasons.append(f"short TE {te:g} ms and short TR {tr:g} ms: T1")
        return Weighting.T1
    if te >= 60 and tr >= 1500:
        reasons.append(f"long TE {te:g} ms and long TR {tr:g} ms: T2")
        return Weighting.T2
    if te <= 40 and tr >= 1500:
        reasons.append(f"short TE {te:g} ms and long TR {tr:g} ms: PD")
        return Weighting.PD
    reasons.append(f"weighting unknown: TE {te:g} ms / TR {tr:g} ms fit no spin-echo pattern")
    return Weighting.UNKNOWN


def _weighting(ds: Dataset, series_text: str, reasons: list[str]) -> tuple[Weighting, bool]:
    te, tr, ti = _parameters(ds)
    scanning = set(_values(ds.get("ScanningSequence")))
    options = set(_values(ds.get("ScanOptions")))
    inversion_flag = _nested(ds, "MRModifierSequence", "InversionRecovery")
    inversion = "IR" in scanning or "IR" in options or str(inversion_flag or "").upper() == "YES"
    if not inversion and ti is not None and 0 < ti <= STIR_MAX_TI_MS:
        inversion = True
    param_reasons: list[str] = []
    from_parameters = _weighting_from_parameters(te, tr, ti, inversion, param_reasons)

    worded: Weighting | None = None
    if _STIR.search(series_text) and not _FLAIR.search(series_text):
        if ti is not None and ti >= FLAIR_MIN_TI_MS:
            reasons.append(f"description names an inversion recovery, but TI {ti:g} ms is FLAIR, not STIR")
        else:
            worded = Weighting.STIR
    elif _PD.search(series_text):
        worded = Weighting.PD
    elif _T1.search(series_text) and not _T2.search(series_text):
        worded = Weighting.T1
    elif _T2.search(series_text) and not _T1.search(series_text):
        worded = Weighting.T2
    if worded is not None:
        reasons.append(f"weighting {worded.value} from the description")
        if from_parameters not in (worded, Weighting.UNKNOWN):
            reasons.append(f"parameters suggest {from_parameters.value}: {param_reasons[-1]}")
        weighting = worded
    else:
        reasons.extend(param_reasons)
        weighting = from_parameters

    fat_cues = []
    if weighting is Weighting.STIR:
        fat_cues.append("STIR")
    if _FAT_SAT.search(series_text):
        fat_cues.append("description")
    sat_options = options & {"FS", "FAT_SAT", "FATSAT", "SP", "CHESS", "SPIR", "SPAIR", "FSS"}
    if sat_options - {"SP"}:  # SP alone is "spatial presaturation", not fat
        fat_cues.append(f"ScanOptions {'/'.join(sorted(sat_options - {'SP'}))}")
    suppression = str(ds.get("SpectrallySelectedSuppression", "") or "").upper()
    if "FAT" in suppression:
        fat_cues.append(f"SpectrallySelectedSuppression {suppression}")
    image_type = _values(ds.get("ImageType"))
    if "WATER" in image_type or "W" in image_type[2:]:
        fat_cues.append("ImageType WATER (Dixon)")
    if fat_cues:
        reasons.append("fat suppressed: " + ", ".join(fat_cues))
    return weighting, bool(fat_cues)


def _region_cues(ds: Dataset, series_text: str, plane: AnatomicalPlane | None, angle: float | None) -> Iterable[
    tuple[Region, int, str]
]:
    body = str(ds.get("BodyPartExamined", "") or "").strip().upper()
    if body:
        if body in _BODY_LUMBAR:
            yield Region.LUMBAR_SPINE, 2, f"BodyPartExamined {body}"
        elif body in _BODY_SIJ:
            yield Region.SACROILIAC_JOINTS, 2, f"BodyPartExamined {body}"
        elif body in _BODY_BOTH:
            yield Region.LUMBAR_SPINE, 1, f"BodyPartExamined {body} (lumbar or SIJ)"
            yield Region.SACROILIAC_JOINTS, 1, f"BodyPartExamined {body} (lumbar or SIJ)"
        else:
            yield Region.OTHER, 2, f"BodyPartExamined {body}"
    for text, weight, where in (
        (series_text, 3, "series description"),
        (_text(ds, "StudyDescription", "RequestedProcedureDescription", "PerformedProcedureStepDescription"), 1,
         "study description"),
    ):
        if not text:
            continue
        if _SIJ.search(text):
            yield Region.SACROILIAC_JOINTS, weight, f"{where} names the sacroiliac joints"
        if _LUMBAR.search(text):
            yield Region.LUMBAR_SPINE, weight, f"{where} names the lumbar spine"
        other = _OTHER_PARTS.search(text)
        if other is not None and not (_SIJ.search(text) or _LUMBAR.search(text)):
            yield Region.OTHER, weight, f"{where} names another region ({other.group(0)})"
    if plane is AnatomicalPlane.CORONAL and angle is not None and 10.0 <= angle <= 45.0:
        yield Region.SACROILIAC_JOINTS, 1, f"semi-coronal plane (tilted {angle:.0f} deg), as planned along the sacrum"


def _region(
    ds: Dataset, series_text: str, plane: AnatomicalPlane | None, angle: float | None, reasons: list[str]
) -> Region:
    scores = {region: 0 for region in Region}
    evidence: dict[Region, list[str]] = {region: [] for region in Region}
    for region, weight, why in _region_cues(ds, series_text, plane, angle):
        scores[region] += weight
        evidence[region].append(why)
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    (best, best_score), (_, second_score) = ranked[0], ranked[1]
    if best_score == 0:
        reasons.append("region other: no body part, description or geometry cue")
        return Region.OTHER
    if best_score == second_score:
        tied = [r.value for r, s in ranked if s == best_score]
        all_evidence = "; ".join(why for r in Region for why in evidence[r])
        reasons.append(f"region other: evidence tied between {' and '.join(tied)} ({all_evidence})")
        return Region.OTHER
    reasons.append(f"region {best.value}: " + "; ".join(evidence[best]))
    return best


def localizer_reason(header: Dataset) -> str | None:
    """Why ``header`` is a localiser (scout, survey, 3-plane), or ``None`` when it is not one.

    ImageType (or an enhanced image's FrameType) containing LOCALIZER, or the
    series description / protocol / sequence name naming a localiser.
    """
    image_type = _values(header.get("ImageType"))
    if "LOCALIZER" in image_type:
        return "ImageType LOCALIZER"
    frame_type = _values(_nested(header, "MRImageFrameTypeSequence", "FrameType"))
    if "LOCALIZER" in frame_type:
        return "FrameType LOCALIZER"
    match = _LOCALIZER.search(_text(header, "SeriesDescription", "ProtocolName", "SequenceName"))
    if match is not None:
        return f"description names a localiser ({match.group(0)!r})"
    return None


def classify_series(header: Dataset) -> SeriesClass:
    """Classify a series from one representative header (no pixel data needed).

    Parameters
    ----------
    header
        A header of the series (classic MR image, or enhanced MR with its
        functional groups). For a series of several stacks, call it once per
        stack (e.g. on ``volume.headers[0]``).

    Returns
    -------
    SeriesClass
        Plane, weighting, fat suppression, region and localiser flag, each with
        its reasons.
    """
    reasons: list[str] = []
    series_text = _text(header, "SeriesDescription", "ProtocolName", "SequenceName")
    why = localizer_reason(header)
    localizer = why is not None
    if why is not None:
        reasons.append(f"localiser: {why}")
    modality = str(header.get("Modality", "") or "")
    if modality and modality != "MR":
        reasons.append(f"modality {modality}, not MR")
    plane, angle = _plane(header, series_text, reasons)
    weighting, fat = _weighting(header, series_text, reasons)
    region = _region(header, series_text, plane, angle, reasons)
    result = SeriesClass(
        plane=plane,
        weighting=weighting,
        fat_suppressed=fat,
        region=region,
        is_localizer=localizer,
        plane_angle_deg=angle,
        reasons=reasons,
    )
    logger.debug("series %s classified as %s", header.get("SeriesInstanceUID"), result)
    return result
