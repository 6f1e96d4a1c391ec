"""Rewrite a lumbar study so that each axial stack, and each stack's SEG, is its own series.

    python split_stacks.py --sources SRC_DIR --results OUT_DIR --dest DIR

An experiment for the OHIF check (docs/results.md, "Viewers"): OHIF 3.13.2 makes one
display set of a series whose stacks are differently angled and refuses a SEG oblique to
its first image, so on such a source it shows only the first stack's SEG. This writes the
source layout of a plan acquired as separate series: a new study (new Study Instance UID,
so it does not mix with the original), the axial stacks as three series, each SEG
(already a series of its own, Series Number 9001, its description naming the stack)
referencing its stack's new series, the SR's references updated. Pixel data and geometry
are unchanged; every object gets new UIDs (Orthanc finds instances by SOP UID). It is not
what ``dicom-node infer`` writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid


def _walk(ds: Dataset, mapping: dict[str, str]) -> None:
    """Replace every UI value found in ``mapping``, recursively."""
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.value in mapping:
            elem.value = mapping[elem.value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--dest", type=Path, required=True)
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)

    results = [pydicom.dcmread(p) for p in sorted(args.results.rglob("*.dcm"))]
    segs = [ds for ds in results if ds.Modality == "SEG"]
    axial_series = segs[0].ReferencedSeriesSequence[0].SeriesInstanceUID
    stack_of: dict[str, int] = {}  # source SOP Instance UID -> stack (SEG) index
    for k, seg in enumerate(segs):
        for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence:
            stack_of[item.ReferencedSOPInstanceUID] = k

    study_map: dict[str, str] = {}
    source_map: dict[str, str] = {}  # old -> new SOP Instance UID (the source images)
    stack_series = [generate_uid() for _ in segs]
    for path in sorted(args.sources.rglob("*")):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path)
        except pydicom.errors.InvalidDicomError:
            continue
        study_map.setdefault(ds.StudyInstanceUID, generate_uid())
        ds.StudyInstanceUID = study_map[ds.StudyInstanceUID]
        old_sop = ds.SOPInstanceUID
        # new SOP Instance UIDs too: Orthanc's DICOMweb finds an instance by its SOP UID alone,
        # so the same UIDs in two studies on one server would make it answer 404
        source_map[old_sop] = ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        if ds.SeriesInstanceUID == axial_series:
            k = stack_of[old_sop]
            ds.SeriesInstanceUID = stack_series[k]
            ds.SeriesNumber = int(ds.SeriesNumber) * 10 + k + 1
            ds.SeriesDescription = f"{ds.SeriesDescription} stack {k + 1}"
        ds.save_as(args.dest / f"src-{ds.SOPInstanceUID}.dcm", enforce_file_format=True)

    sop_map: dict[str, str] = {}  # old -> new SOP Instance UID (the SEGs)
    series_of = {source_map[u]: stack_series[k] for u, k in stack_of.items()}  # new SOP -> its new series
    for k, seg in enumerate(segs):
        _walk(seg, {**study_map, **source_map, axial_series: stack_series[k]})
        seg.SeriesInstanceUID = generate_uid()
        sop_map[seg.SOPInstanceUID] = generate_uid()
        seg.SOPInstanceUID = seg.file_meta.MediaStorageSOPInstanceUID = sop_map[seg.SOPInstanceUID]
        series_of[seg.SOPInstanceUID] = seg.SeriesInstanceUID
        seg.save_as(args.dest / f"seg-{k + 1}.dcm", enforce_file_format=True)
    for sr in (ds for ds in results if ds.Modality == "SR"):
        _walk(sr, {**study_map, **source_map, **sop_map})
        # evidence: regroup the referenced instances by their new series
        for study in sr.get("CurrentRequestedProcedureEvidenceSequence", []):
            items = []
            for series in study.ReferencedSeriesSequence:
                groups: dict[str, list[Dataset]] = {}
                for ref in series.ReferencedSOPSequence:
                    uid = series_of.get(ref.ReferencedSOPInstanceUID, series.SeriesInstanceUID)
                    groups.setdefault(uid, []).append(ref)
                for uid, refs in groups.items():
                    item = Dataset()
                    item.SeriesInstanceUID = uid
                    item.ReferencedSOPSequence = refs
                    items.append(item)
            study.ReferencedSeriesSequence = items
        sr.SOPInstanceUID = sr.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        sr.save_as(args.dest / "sr.dcm", enforce_file_format=True)
    print(next(iter(study_map.values())))


if __name__ == "__main__":
    main()
