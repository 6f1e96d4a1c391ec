"""Offline inference on a folder: studies -> series chosen per pipeline -> SEG + SR files.

Used by ``dicom-node infer``. :func:`select_series` applies the routing rules
(:mod:`dicom_node.routing`, the same decision a running node makes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from dicom_node.results import EncodedResults, ResultOptions, encode_ldh, encode_sij
from inference.volume import InstanceHeader, load_series_headers, load_volumes

__all__ = ["Pipelines", "Selection", "StudyOutcome", "find_studies", "infer_study", "select_series", "write_objects"]

logger = logging.getLogger(__name__)

#: ``(axial stacks, sagittal or None) -> LdhResult``
LdhRunner = Callable[[list[Any], Any | None], Any]
#: ``(t1, stir or None) -> SijResult``
SijRunner = Callable[[Any, Any | None], Any]


@dataclass
class Pipelines:
    """The pipelines to run (``None``: not available, with the reason in ``unavailable``)."""

    ldh: LdhRunner | None = None
    sij: SijRunner | None = None
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass
class Selection:
    """Series chosen for each pipeline in one study, with the reasons."""

    ldh_axial: str | None = None
    ldh_sagittal: str | None = None
    sij_t1: str | None = None
    sij_stir: str | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class StudyOutcome:
    """What happened to one study."""

    study_instance_uid: str
    selection: Selection
    results: dict[str, EncodedResults] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def find_studies(folder: Path) -> dict[str, dict[str, list[InstanceHeader]]]:
    """Study Instance UID -> Series Instance UID -> headers, for every DICOM file under ``folder``."""
    studies: dict[str, dict[str, list[InstanceHeader]]] = {}
    for series_uid, headers in load_series_headers(folder).items():
        study = str(headers[0].dataset.get("StudyInstanceUID", ""))
        studies.setdefault(study, {})[series_uid] = headers
    return studies


def select_series(series: dict[str, list[InstanceHeader]], rules: Sequence[Any] | None = None) -> Selection:
    """Choose the series of each pipeline by the routing rules (:mod:`dicom_node.routing`).

    Lumbar: the axial T2 lumbar series (all its stacks) and, optionally, a sagittal
    T2 lumbar series for the levels. SIJ: the (semi-)coronal T1 SIJ series and,
    optionally, a coronal STIR SIJ series. Derived objects (SEG, SR, ...) and
    localisers are ignored. ``rules``: parsed routing rules (default: the built-in ones).
    """
    from dicom_node.routing import parse_rules, route_study, series_infos

    decision = route_study(series_infos(series), rules if rules is not None else parse_rules([]))
    ldh, sij = decision.roles_of("ldh"), decision.roles_of("sij")
    return Selection(
        ldh_axial=ldh.get("axial"), ldh_sagittal=ldh.get("sagittal"),
        sij_t1=sij.get("t1"), sij_stir=sij.get("stir"), reasons=list(decision.reasons),
    )


def _volumes(headers: Sequence[InstanceHeader]) -> list[Any]:
    return load_volumes([h.path for h in headers])


def infer_study(
    study_uid: str,
    series: dict[str, list[InstanceHeader]],
    pipelines: Pipelines,
    options: ResultOptions = ResultOptions(),
) -> StudyOutcome:
    """Run the pipelines that apply to one study and encode their results.

    A pipeline that fails is recorded in ``errors`` (with its reason); the other one still runs.
    """
    sel = select_series(series)
    outcome = StudyOutcome(study_uid, sel)
    if sel.ldh_axial is not None:
        if pipelines.ldh is None:
            outcome.errors["ldh"] = pipelines.unavailable.get("ldh", "pipeline not available")
        else:
            try:
                axial = _volumes(series[sel.ldh_axial])
                sagittal = _volumes(series[sel.ldh_sagittal])[0] if sel.ldh_sagittal else None
                result = pipelines.ldh(axial, sagittal)
                outcome.results["ldh"] = encode_ldh(result, axial, options)
            except Exception as exc:  # one failing pipeline must not hide the other's results
                logger.exception("lumbar pipeline failed on study %s", study_uid)
                outcome.errors["ldh"] = f"{type(exc).__name__}: {exc}"
    if sel.sij_t1 is not None:
        if pipelines.sij is None:
            outcome.errors["sij"] = pipelines.unavailable.get("sij", "pipeline not available")
        else:
            try:
                (t1,) = _volumes(series[sel.sij_t1])[:1]
                stir = _volumes(series[sel.sij_stir])[0] if sel.sij_stir else None
                result = pipelines.sij(t1, stir)
                outcome.results["sij"] = encode_sij(result, [t1], options)
            except Exception as exc:  # as above
                logger.exception("SIJ pipeline failed on study %s", study_uid)
                outcome.errors["sij"] = f"{type(exc).__name__}: {exc}"
    return outcome


def output_name(ds: Dataset) -> str:
    """``<SeriesNumber>-<Modality>-<InstanceNumber>.dcm``, e.g. ``9001-SEG-2.dcm``."""
    return f"{int(ds.SeriesNumber)}-{ds.Modality}-{int(ds.InstanceNumber)}.dcm"


def write_objects(datasets: Sequence[Dataset], folder: Path) -> list[Path]:
    """Write ``datasets`` into ``folder`` (a re-run overwrites the same names)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / output_name(ds)
        tmp = path.with_suffix(".tmp")
        ds.save_as(tmp, enforce_file_format=True)
        tmp.replace(path)
        paths.append(path)
    return paths
