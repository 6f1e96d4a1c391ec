"""Read our SEG and SR with dcmqi, the library behind 3D Slicer's QuantitativeReporting.

    python check_dcmqi.py --dcmqi-bin DIR --sources SRC_DIR --work DIR OBJECT.dcm ... > report.json

Slicer itself cannot run here. What Slicer does with a SEG is dcmqi's
``segimage2itkimage`` (one ITK image per group of non-overlapping segments on one
geometry, plus a meta JSON of the segment attributes); with a TID 1500 SR it is dcmqi's
``tid1500reader`` (a JSON that QuantitativeReporting turns into its measurement table).
This script runs both binaries (PyPI ``dcmqi``), then checks, against the source images
and highdicom's reading of the same SEG:

* geometry: the image's origin, spacing and directions put voxel (i, j, k) exactly on
  pixel (i, j) of the k-th source image of the stack (ImagePositionPatient,
  ImageOrientationPatient, PixelSpacing of each referenced source image);
* content: every segment's voxels equal highdicom's mask for that source image;
* attributes: label, codes, colour, tracking identifiers in dcmqi's meta JSON;
* SR: every measurement dcmqi reads that references a segment names a SEG that was
  written, a segment number it has, and the source series of that SEG.

Prints a JSON report; exit status 1 on any failed check.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom

SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
SR_CLASSES = {"1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"}
TOL_MM = 0.01  # dcmqi writes directions and origin as doubles computed from the DS strings


class NrrdError(ValueError):
    """A NRRD file this reader does not handle."""


def read_nrrd(path: Path) -> tuple[dict[str, str], np.ndarray]:
    """Read the NRRD files dcmqi writes (attached data, raw or gzip, little endian).

    Returns the header fields and the data as an array indexed ``[k, j, i]`` (slice, row,
    column), i.e. NRRD's fastest axis last.
    """
    raw = path.read_bytes()
    head, sep, body = raw.partition(b"\n\n")
    if not sep or not head.startswith(b"NRRD"):
        raise NrrdError(f"{path}: not an attached-data NRRD file")
    fields: dict[str, str] = {}
    for line in head.decode("ascii").splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip().lstrip("=").strip()
    dtypes = {"short": "<i2", "unsigned short": "<u2", "unsigned char": "u1", "uchar": "u1", "char": "i1", "int": "<i4"}
    if fields.get("type") not in dtypes:
        raise NrrdError(f"{path}: type {fields.get('type')!r} not handled")
    if fields.get("encoding") == "gzip":
        body = gzip.decompress(body)
    elif fields.get("encoding") != "raw":
        raise NrrdError(f"{path}: encoding {fields.get('encoding')!r} not handled")
    if fields.get("endian", "little") != "little":
        raise NrrdError(f"{path}: big endian not handled")
    sizes = [int(s) for s in fields["sizes"].split()]
    data = np.frombuffer(body, dtype=dtypes[fields["type"]]).reshape(sizes[::-1])
    return fields, data


def _vectors(text: str) -> np.ndarray:
    return np.array([[float(x) for x in v.strip("() ").split(",")] for v in text.split(") (")])


def nrrd_geometry(fields: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Origin (LPS) and the 3 x 3 matrix whose rows are the index axes' steps (i, j, k)."""
    if fields.get("space") not in ("left-posterior-superior", "LPS"):
        raise NrrdError(f"space {fields.get('space')!r} not handled")
    origin = _vectors(fields["space origin"])[0]
    return origin, _vectors(fields["space directions"])


def check_seg(path: Path, bin_dir: Path, work: Path, sources: dict[str, pydicom.Dataset]) -> dict[str, Any]:
    """Run segimage2itkimage on one SEG and compare what it wrote with the sources."""
    errors: list[str] = []
    seg_ds = pydicom.dcmread(path)
    out = work / f"dcmqi-{path.stem}"
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(bin_dir / "segimage2itkimage"), "--inputDICOM", str(path), "--outputDirectory", str(out), "--outputType", "nrrd"],
        capture_output=True, text=True, timeout=300,
    )
    report: dict[str, Any] = {"file": path.name, "kind": "SEG", "dcmqi_rc": proc.returncode, "errors": errors}
    if proc.returncode != 0:
        errors.append(f"segimage2itkimage failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return report
    meta = json.loads((out / "meta.json").read_text())
    seg = hd.seg.segread(path)
    described = {int(s.SegmentNumber): s for s in seg_ds.SegmentSequence}

    # The k-th slice of dcmqi's image must be one source image, in order along the normal.
    frame_sources = [fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
                     for fg in seg_ds.PerFrameFunctionalGroupsSequence]
    stack = [sources[u] for u in dict.fromkeys(frame_sources)]
    iop = np.array(stack[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    stack.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, dtype=float))))
    uids = [ds.SOPInstanceUID for ds in stack]
    mask = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=False,
                                             skip_overlap_checks=True)  # (slices, rows, cols, segments)
    seg_numbers = list(seg.segment_numbers)

    segments_seen: list[dict[str, Any]] = []
    files = sorted(out.glob("*.nrrd"), key=lambda p: int(p.stem))
    if len(files) != len(meta["segmentAttributes"]):
        errors.append(f"{len(files)} NRRD files for {len(meta['segmentAttributes'])} segment groups")
    for nrrd_path, group in zip(files, meta["segmentAttributes"]):
        fields, data = read_nrrd(nrrd_path)
        origin, steps = nrrd_geometry(fields)
        if data.shape != (len(stack), int(stack[0].Rows), int(stack[0].Columns)):
            errors.append(f"{nrrd_path.name}: shape {data.shape} is not {len(stack)} x {stack[0].Rows} x {stack[0].Columns}")
            continue
        for k, ds in enumerate(stack):
            ipp = np.array(ds.ImagePositionPatient, dtype=float)
            row_dir, col_dir = np.array(ds.ImageOrientationPatient[:3], float), np.array(ds.ImageOrientationPatient[3:], float)
            dy, dx = (float(v) for v in ds.PixelSpacing)  # row spacing, column spacing
            if not np.allclose(origin + k * steps[2], ipp, atol=TOL_MM):
                errors.append(f"{nrrd_path.name} slice {k}: position {origin + k * steps[2]} != source IPP {ipp}")
            if not np.allclose(steps[0], row_dir * dx, atol=1e-4) or not np.allclose(steps[1], col_dir * dy, atol=1e-4):
                errors.append(f"{nrrd_path.name} slice {k}: in-plane axes differ from the source orientation/spacing")
        for attrs in group:
            label_id = int(attrs["labelID"])
            number = next((n for n, s in described.items() if s.SegmentLabel == attrs["SegmentLabel"]), None)
            if number is None:
                errors.append(f"dcmqi segment {attrs['SegmentLabel']!r} not in the SEG")
                continue
            s = described[number]
            expected = mask[..., seg_numbers.index(number)] > 0
            got = data == label_id
            if not np.array_equal(expected, got):
                errors.append(f"segment {number} {s.SegmentLabel!r}: dcmqi voxels differ from highdicom's mask "
                              f"({int(got.sum())} vs {int(expected.sum())})")
            want_type = s.SegmentedPropertyTypeCodeSequence[0].CodeValue
            if attrs["SegmentedPropertyTypeCodeSequence"]["CodeValue"] != want_type:
                errors.append(f"segment {number}: type code {attrs['SegmentedPropertyTypeCodeSequence']} != {want_type}")
            type_item = s.SegmentedPropertyTypeCodeSequence[0]
            want_mod = [m.CodeValue for m in type_item.get("SegmentedPropertyTypeModifierCodeSequence", [])]
            got_mod = (attrs.get("SegmentedPropertyTypeModifierCodeSequence") or {}).get("CodeValue")
            if want_mod != ([got_mod] if got_mod else []):
                errors.append(f"segment {number} {s.SegmentLabel!r}: type modifier {want_mod} read by dcmqi as {got_mod}")
            if "SegmentedPropertyTypeModifierCodeSequence" in s:
                errors.append(f"segment {number} {s.SegmentLabel!r}: type modifier beside the type code "
                              "(dcmqi ignores it there; PS3.3 nests it in the type code item)")
            if attrs.get("TrackingUniqueIdentifier") != s.TrackingUID:
                errors.append(f"segment {number}: tracking UID not carried")
            segments_seen.append({
                "number": number, "label": attrs["SegmentLabel"], "file": nrrd_path.name, "labelID": label_id,
                "voxels": int(got.sum()), "rgb": attrs.get("recommendedDisplayRGBValue"),
                "type": attrs["SegmentedPropertyTypeCodeSequence"]["CodeMeaning"],
                "modifier": (attrs.get("SegmentedPropertyTypeModifierCodeSequence") or {}).get("CodeMeaning"),
            })
    missing = set(described) - {s["number"] for s in segments_seen}
    if missing:
        errors.append(f"segments {sorted(missing)} not written by dcmqi")
    report.update({
        "slices": len(stack), "rows": int(stack[0].Rows), "columns": int(stack[0].Columns),
        "source_series": stack[0].SeriesInstanceUID, "segments": segments_seen,
        "origin": [round(float(v), 4) for v in nrrd_geometry(read_nrrd(files[0])[0])[0]] if files else None,
    })
    return report


def check_sr(path: Path, bin_dir: Path, work: Path, segs: dict[str, pydicom.Dataset],
             sources: dict[str, pydicom.Dataset]) -> dict[str, Any]:
    """Run tid1500reader and resolve what it read."""
    errors: list[str] = []
    out = work / f"dcmqi-{path.stem}.json"
    proc = subprocess.run([str(bin_dir / "tid1500reader"), "--inputDICOM", str(path), "--outputMetadata", str(out)],
                          capture_output=True, text=True, timeout=300)
    report: dict[str, Any] = {"file": path.name, "kind": "SR", "dcmqi_rc": proc.returncode, "errors": errors}
    if proc.returncode != 0 or not out.exists():
        errors.append(f"tid1500reader failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return report
    doc = json.loads(out.read_text())
    sr = pydicom.dcmread(path)
    groups = [item for c in sr.ContentSequence if c.ConceptNameCodeSequence[0].CodeValue == "126010"
              for item in c.ContentSequence]
    if len(doc.get("Measurements", [])) != len(groups):
        errors.append(f"dcmqi read {len(doc.get('Measurements', []))} measurement groups, the SR has {len(groups)}")
    for uid in doc.get("imageLibrary", []):
        if uid not in sources:
            errors.append(f"image library entry {uid} is not a source image")
    rows = []
    for m in doc.get("Measurements", []):
        row = {"tracking": m.get("TrackingIdentifier"), "finding": (m.get("Finding") or {}).get("CodeMeaning"),
               "site": (m.get("FindingSite") or {}).get("CodeMeaning"), "items": len(m.get("measurementItems", [])),
               "segment": None}
        if "segmentationSOPInstanceUID" in m:
            seg_uid = m["segmentationSOPInstanceUID"]
            number = int(m.get("ReferencedSegment", -1))
            seg = segs.get(seg_uid)
            if seg is None:
                errors.append(f"{row['tracking']}: references SEG {seg_uid}, not among the objects")
            else:
                labels = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
                if number not in labels:
                    errors.append(f"{row['tracking']}: segment {number} not in SEG {seg_uid}")
                row["segment"] = f"{seg.InstanceNumber}:{number} {labels.get(number)}"
                if m.get("SourceSeriesForImageSegmentation") != seg.ReferencedSeriesSequence[0].SeriesInstanceUID:
                    errors.append(f"{row['tracking']}: source series for segmentation is not the SEG's source series")
        rows.append(row)
    report.update({"measurements": rows, "procedure": (doc.get("procedureReported") or {}).get("CodeMeaning"),
                   "observer": doc.get("observerContext", {}).get("DeviceObserverName"),
                   "image_library": len(doc.get("imageLibrary", []))})
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dcmqi-bin", type=Path, required=True, help="folder with segimage2itkimage, tid1500reader")
    parser.add_argument("--sources", type=Path, action="append", required=True, help="folder of source images")
    parser.add_argument("--work", type=Path, required=True, help="folder for dcmqi's outputs")
    parser.add_argument("objects", type=Path, nargs="+")
    args = parser.parse_args(argv)
    sources: dict[str, pydicom.Dataset] = {}
    for folder in args.sources:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                try:
                    ds = pydicom.dcmread(p, stop_before_pixels=True)
                except Exception:  # noqa: BLE001 - not DICOM (labels, JSON): skip
                    continue
                if "Rows" in ds and ds.get("Modality") not in ("SEG", "SR"):
                    sources[ds.SOPInstanceUID] = ds
    datasets = {p: pydicom.dcmread(p) for p in args.objects}
    segs = {ds.SOPInstanceUID: ds for ds in datasets.values() if ds.SOPClassUID == SEG_CLASS}
    reports = []
    for p, ds in datasets.items():
        if ds.SOPClassUID == SEG_CLASS:
            reports.append(check_seg(p, args.dcmqi_bin, args.work, sources))
        elif ds.SOPClassUID in SR_CLASSES:
            reports.append(check_sr(p, args.dcmqi_bin, args.work, segs, sources))
    errors = [f"{r['file']}: {e}" for r in reports for e in r["errors"]]
    json.dump({"objects": reports, "errors": errors}, sys.stdout, indent=1)
    sys.stdout.write("\n")
    for e in errors:
        print(f"ERROR: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
