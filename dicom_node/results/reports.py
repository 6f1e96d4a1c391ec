"""The Encapsulated PDF report of each pipeline: which lines it holds."""

from __future__ import annotations

from pydicom.dataset import Dataset

from dicom_node.results.errors import ResultsInputError
from dicom_node.results.identity import PDF, instance_uid, series_number, series_uid
from dicom_node.results.pdf import build_pdf
from dicom_node.results.seg_ldh import PIPELINE as LDH, ldh_model
from dicom_node.results.seg_sij import PIPELINE as SIJ, sij_model
from dicom_node.results.sources import SourceIndex
from dicom_node.results.summary import ldh_summary, short_level, sij_summary
from inference.ldh.result import LdhResult
from inference.sij.result import SijResult

__all__ = ["ldh_pdf", "sij_pdf"]


def ldh_pdf(result: LdhResult, sources: SourceIndex) -> Dataset:
    """Lumbar report: the summary, then one line per disc level with its measurements."""
    model = ldh_model(result)
    if not result.segmentations or not result.segmentations[0].slices:
        raise ResultsInputError("the lumbar result names no source slice")
    source = sources.get(result.segmentations[0].slices[0].sop_instance_uid)
    study = str(source.StudyInstanceUID)
    lines = [ldh_summary(result, with_notice=False), ""]
    for f in result.findings:
        how = "inferred from stack order" if f.level_inferred else "from the sagittal series"
        if f.size == 0:
            lines.append(f"{short_level(f.level)}: no herniation (level {how})")
        else:
            lines.append(
                f"{short_level(f.level)}: MSU {f.grade} {f.side or ''}; depth {f.depth_mm:.1f} mm of "
                f"{f.reference_mm:.1f} mm to the intra-facet line ({f.ratio_percent:.0f} %); area "
                f"{f.area_mm2:.0f} mm2; confidence {f.confidence:.2f}; level {how}")
    lines += [f"Warning: {w}" for w in result.warnings]
    return build_pdf(
        source=source, title="Lumbar disc herniation (MSU) - AI report", lines=lines, model=model,
        series_instance_uid=series_uid(study, LDH, model, PDF), series_number=series_number(LDH, PDF),
        sop_instance_uid=instance_uid(study, LDH, model, PDF),
        series_description=f"AI LDH PDF {model.name} {model.version} RESEARCH USE",
    )


def sij_pdf(result: SijResult, sources: SourceIndex) -> Dataset:
    """SIJ report: the summary, then the SPARCC table (involved quadrants per scored slice)."""
    model = sij_model(result)
    source = sources.get(result.sop_instance_uids[0])
    study = result.study_instance_uid or str(source.StudyInstanceUID)
    lines = [sij_summary(result, with_notice=False), "", "SPARCC fat metaplasia, scored slices:"]
    for row in result.fm_table:
        involved = ", ".join(q.replace("_", " ") for q, p in row.present.items() if p) or "none"
        lines.append(f"slice {row.slice_index + 1}: {row.score}/8 ({involved})")
    if result.oedema_table is not None:
        lines.append("Bone marrow oedema (STIR), scored slices:")
        for row in result.oedema_table:
            involved = ", ".join(q.replace("_", " ") for q, p in row.present.items() if p) or "none"
            lines.append(f"slice {row.slice_index + 1}: {row.score}/8 ({involved})")
    return build_pdf(
        source=source, title="Sacroiliac joints: fat metaplasia - AI report", lines=lines, model=model,
        series_instance_uid=series_uid(study, SIJ, model, PDF), series_number=series_number(SIJ, PDF),
        sop_instance_uid=instance_uid(study, SIJ, model, PDF),
        series_description=f"AI SIJ PDF {model.name} {model.version} RESEARCH USE",
    )
