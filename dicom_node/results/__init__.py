"""Results as DICOM: SEG masks and TID 1500 Structured Reports (see docs/results.md).

>>> objects = encode_ldh(result, axial_volumes)          # doctest: +SKIP
>>> for ds in objects.datasets: ds.save_as(...)           # doctest: +SKIP

Everything goes into the source study with derived UIDs (a re-run of the same model
replaces its objects) and fixed Series Numbers (:mod:`dicom_node.results.identity`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from config.settings import ResultSettings
from dicom_node.results.errors import ResultsEncodingError, ResultsError, ResultsInputError
from dicom_node.results.keyimages import ldh_key_images, sij_key_images
from dicom_node.results.reports import ldh_pdf, sij_pdf
from dicom_node.results.seg_ldh import encode_ldh_segs
from dicom_node.results.seg_sij import encode_sij_seg
from dicom_node.results.sources import SourceIndex
from dicom_node.results.sr_ldh import encode_ldh_sr
from dicom_node.results.sr_sij import encode_sij_sr
from dicom_node.results.summary import ldh_summary, sij_summary
from inference.ldh.result import LdhResult
from inference.sij.result import SijResult

__all__ = [
    "EncodedResults",
    "ResultOptions",
    "ResultsEncodingError",
    "ResultsError",
    "ResultsInputError",
    "encode_ldh",
    "encode_sij",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResultOptions:
    """What to write besides the herniation / fat-metaplasia segments and the SR.

    Attributes
    ----------
    fractional
        Lumbar herniation segments as FRACTIONAL (probability) instead of BINARY.
    include_anatomy
        Disc, dural sac and facet joints (lumbar); sacrum and ilia (SIJ).
    include_oedema
        The SIJ oedema segment, when oedema was assessed.
    secondary_capture
        Also write Secondary Capture key images with the overlay burned in (needs the
        source pixels: pass volumes, or datasets with Pixel Data).
    pdf
        Also write an Encapsulated PDF report (Modality DOC).
    """

    fractional: bool = False
    include_anatomy: bool = True
    include_oedema: bool = True
    secondary_capture: bool = False
    pdf: bool = False

    @classmethod
    def from_settings(cls, settings: ResultSettings) -> ResultOptions:
        """The options the configuration's ``results:`` section asks for."""
        return cls(**settings.model_dump())


@dataclass
class EncodedResults:
    """The objects made from one pipeline result.

    Attributes
    ----------
    segs
        SEG instances (lumbar: one per axial stack with anything to show).
    sr
        The TID 1500 report.
    summary
        The plain-language summary (also in the SR).
    extra
        Optional objects (PDF, Secondary Capture) when enabled.
    """

    segs: list[Dataset]
    sr: Dataset
    summary: str
    extra: list[Dataset] = field(default_factory=list)

    @property
    def datasets(self) -> list[Dataset]:
        """All objects: SEGs, the SR, then the extras."""
        return [*self.segs, self.sr, *self.extra]


def encode_ldh(result: LdhResult, sources: Iterable[Any], options: ResultOptions = ResultOptions()) -> EncodedResults:
    """SEG(s) and SR of a lumbar result.

    Parameters
    ----------
    result
        The lumbar pipeline's result.
    sources
        The axial source images: :class:`inference.volume.Volume` objects or pydicom datasets.

    Raises
    ------
    ResultsInputError
        A slice of the result whose source image is not among ``sources``.
    ResultsEncodingError
        highdicom refused an object.
    """
    index = SourceIndex(sources)
    segs = encode_ldh_segs(result, index, include_anatomy=options.include_anatomy, fractional=options.fractional)
    sr = encode_ldh_sr(result, index, segs)
    extra: list[Dataset] = list(ldh_key_images(result, index)) if options.secondary_capture else []
    if options.pdf:
        extra.append(ldh_pdf(result, index))
    return EncodedResults(segs=list(segs), sr=sr, summary=ldh_summary(result), extra=extra)


def encode_sij(result: SijResult, sources: Iterable[Any], options: ResultOptions = ResultOptions()) -> EncodedResults:
    """SEG and SR of an SIJ result (``sources``: the T1 volume or its datasets).

    Raises
    ------
    ResultsInputError
        A T1 slice whose source image is not among ``sources``.
    ResultsEncodingError
        highdicom refused an object.
    """
    index = SourceIndex(sources)
    seg = encode_sij_seg(result, index, include_oedema=options.include_oedema, include_anatomy=options.include_anatomy)
    sr = encode_sij_sr(result, index, [seg])
    extra: list[Dataset] = list(sij_key_images(result, index)) if options.secondary_capture else []
    if options.pdf:
        extra.append(sij_pdf(result, index))
    return EncodedResults(segs=[seg], sr=sr, summary=sij_summary(result), extra=extra)
