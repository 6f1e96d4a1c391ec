"""Render SEG overlays and SR regions read back from the encoded objects (docs/img/seg-*.png).

Everything drawn comes from the DICOM objects after a write-then-read round trip:
the masks from ``hd.seg.segread`` (looked up by source SOP Instance UID, as a viewer
does), the colours from each segment's Recommended Display CIELab Value, the box
from the SR's SCOORD polyline (with its referenced source image). The readings are
the phantoms' reference labels (lumbar seed 1, SIJ seed 4), so the figure shows the
encoding, not a network's accuracy.

    .venv/bin/python docs/make_results_figures.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dicom_node.results import encode_ldh, encode_sij  # noqa: E402
from tests.dicom_node.results.conftest import lumbar_result, sij_result  # noqa: E402

OUT = ROOT / "docs" / "img"
SCALE = 2


def _gray(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [1, 99.5])
    return (np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def overlay(
    image: np.ndarray, seg: hd.seg.Segmentation, uid: str, skip: tuple[str, ...] = (), scale: int = SCALE
) -> Image.Image:
    """The source slice with every segment of ``seg`` on it blended in its recommended colour."""
    rgb = np.repeat(_gray(image)[..., None], 3, axis=-1).astype(float)
    masks = seg.get_pixels_by_source_instance([uid])[0]
    for n, desc in enumerate(seg.SegmentSequence):
        if any(desc.SegmentLabel.startswith(s) for s in skip):
            continue
        color = np.array(hd.color.CIELabColor.from_dicom_value(desc.RecommendedDisplayCIELabValue).to_rgb(clip=True))
        m = masks[..., n] > 0
        rgb[m] = 0.45 * rgb[m] + 0.55 * color
    img = Image.fromarray(rgb.astype(np.uint8)).resize((image.shape[1] * scale, image.shape[0] * scale),
                                                       Image.NEAREST)
    return img


def lumbar_figure(folder: Path) -> Path:
    axial, result = lumbar_result(folder)
    enc = encode_ldh(result, axial)
    with tempfile.TemporaryDirectory() as tmp:
        segs = []
        for ds in enc.segs:
            ds.save_as(Path(tmp) / f"{ds.InstanceNumber}.dcm", enforce_file_format=True)
            segs.append(hd.seg.segread(Path(tmp) / f"{ds.InstanceNumber}.dcm"))
        enc.sr.save_as(Path(tmp) / "sr.dcm", enforce_file_format=True)
        sr = hd.sr.srread(Path(tmp) / "sr.dcm")
    panels = []
    for group in sr.content.get_planar_roi_measurement_groups():
        region = group.roi
        uid = region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        seg = next(s for s in segs if uid in {u for _, _, u in s.get_source_image_uids()})
        vol = next(v for v in axial if uid in v.sop_instance_uids)
        img = overlay(vol.array[vol.sop_instance_uids.index(uid)], seg, uid, scale=1)
        draw = ImageDraw.Draw(img)
        pts = [(float(x), float(y)) for x, y in np.asarray(region.GraphicData).reshape(-1, 2)]
        draw.line(pts, fill=(255, 255, 255), width=2)
        qual = {q.name.meaning: q.value.meaning for q in group.get_qualitative_evaluations()}
        depth = group.get_measurements(name=hd.sr.CodedConcept("DN0030", "99DCMNODE", "x"))[0].value
        label = f"{group.finding_sites[0].value.meaning}: {qual['MSU herniation size']}, {qual['MSU herniation zone']}"
        draw.rectangle([0, 0, img.width, 30], fill=(0, 0, 0))
        draw.text((4, 2), label, fill=(255, 255, 255))
        draw.text((4, 16), f"depth {depth:.1f} mm (SEG + SR read back)", fill=(255, 255, 255))
        panels.append(img)
    return _save(panels, OUT / "seg-lumbar.png", enc.summary)


def sij_figure(folder: Path) -> Path:
    t1, result = sij_result(folder)
    enc = encode_sij(result, [t1])
    with tempfile.TemporaryDirectory() as tmp:
        enc.segs[0].save_as(Path(tmp) / "seg.dcm", enforce_file_format=True)
        seg = hd.seg.segread(Path(tmp) / "seg.dcm")
    best = max(result.fm_table, key=lambda r: r.score)
    panels = []
    for skip, title in ((("sacrum", "ilium"), "fat metaplasia (orange/yellow), oedema (cyan)"),
                        ((), "with sacrum and ilia")):
        img = overlay(t1.array[best.slice_index], seg, best.sop_instance_uid, skip)
        draw = ImageDraw.Draw(img)
        draw.rectangle([0, 0, img.width, 30], fill=(0, 0, 0))
        draw.text((4, 2), f"SPARCC slice {best.slice_index + 1}: {best.score}/8 quadrants", fill=(255, 255, 255))
        draw.text((4, 16), title, fill=(255, 255, 255))
        panels.append(img)
    return _save(panels, OUT / "seg-sij.png", enc.summary)


def _save(panels: list[Image.Image], path: Path, caption: str) -> Path:
    width = sum(p.width for p in panels) + 4 * (len(panels) - 1)
    height = max(p.height for p in panels) + 36
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    x = 0
    for p in panels:
        canvas.paste(p, (x, 0))
        x += p.width + 4
    draw = ImageDraw.Draw(canvas)
    words, line, lines = caption.split(), "", []
    for w in words:
        if len(line) + len(w) > width // 7:
            lines.append(line)
            line = ""
        line += w + " "
    lines.append(line)
    for i, text in enumerate(lines[:2]):
        draw.text((4, height - 34 + 15 * i), text, fill=(255, 255, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def main() -> None:
    from inference.phantoms.lumbar import generate_lumbar_study
    from inference.phantoms.sij import generate_sij_study

    with tempfile.TemporaryDirectory() as tmp:
        lumbar = Path(generate_lumbar_study(Path(tmp) / "lumbar-1", 1))
        sij = Path(generate_sij_study(Path(tmp) / "sij-4", 4))
        print(lumbar_figure(lumbar))
        print(sij_figure(sij))


if __name__ == "__main__":
    main()
