"""Overlay PNGs of what the two viewer paths read from our SEG (and SR), side by side.

    python render_overlays.py --case lumbar --work var/viewers/work --out docs/viewers/lumbar-overlay.png

Left: OHIF's reading. The labelmap that OHIF 3.13.2's loader (@cornerstonejs/adapters
``createFromDICOMSegBuffer``) put on the source image, dumped by ``check_dcmjs.mjs --dump``,
in the colours OHIF derives from each segment's CIELab value, plus the SR's SCOORD box as
OHIF's SR handler reads it. Right: Slicer's reading. The slice of dcmqi
``segimage2itkimage``'s volumes that falls on that source image, in dcmqi's RGB. The
source image is shown under both. Inputs are what ``scripts/viewers/check`` leaves in
var/viewers/work.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent


def _dcmqi_module() -> Any:
    spec = importlib.util.spec_from_file_location("check_dcmqi", HERE / "check_dcmqi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _grey(ds: pydicom.Dataset) -> np.ndarray:
    px = ds.pixel_array.astype(float)
    lo, hi = np.percentile(px, [1, 99.5])
    return np.clip((px - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)


def _blend(grey: np.ndarray, masks: list[tuple[np.ndarray, tuple[int, int, int]]], alpha: float = 0.5) -> np.ndarray:
    """Fill at ``alpha`` and a solid one-pixel outline, as OHIF draws labelmaps by default."""
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(float)
    for mask, colour in masks:
        c = np.array(colour, dtype=float)
        rgb[mask] = (1 - alpha) * rgb[mask] + alpha * c
        edge = mask & ~(np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1))
        rgb[edge] = c
    return rgb.clip(0, 255).astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def render(case: str, work: Path, out: Path, sop_uid: str | None = None) -> dict[str, Any]:
    """Render one two-panel PNG; returns what was drawn (for the caption)."""
    dcmqi = _dcmqi_module()
    report = json.loads((work / f"dcmjs-{case}.json").read_text())
    sources: dict[str, pydicom.Dataset] = {}
    for p in sorted((work / f"src-{case}").rglob("*.dcm")):
        ds = pydicom.dcmread(p)
        sources[ds.SOPInstanceUID] = ds
    segs = [o for o in report["objects"] if o["kind"] == "SEG"]
    srs = [o for o in report["objects"] if o["kind"] == "SR"]
    boxes = [(g["trackingIdentifier"], c) for sr in srs for g in sr["groups"] for c in g["coords"]]

    if sop_uid is None:
        if boxes:  # lumbar: the slice the first herniation was read on (its SR box)
            sop_uid = boxes[0][1]["referencedSOPInstanceUID"]
        else:  # SIJ: the slice with most fat metaplasia (segments 1, 2) in OHIF's labelmap
            counts = segs[0]["ohifStack"]["pixelsPerSourceAndSegment"]
            sop_uid = max(counts, key=lambda u: sum(v for k, v in counts[u].items() if k in ("1", "2")))
    seg = next(s for s in segs if any(f["referencedSOPInstanceUID"] == sop_uid for f in s["frames"]))
    src = sources[sop_uid]
    grey = _grey(src)
    colours = {s["number"]: tuple(s["ohifRGB"]) for s in seg["segments"]}

    # OHIF: labelmap layer(s) dumped by check_dcmjs.mjs; value = segment number
    ohif_masks = []
    for layer in sorted((work / f"ohif-{case}" / seg["file"]).glob(f"{sop_uid}.*.u8")):
        lab = np.frombuffer(layer.read_bytes(), dtype=np.uint8).reshape(grey.shape)
        for number in sorted(set(np.unique(lab)) - {0}):
            ohif_masks.append((lab == number, colours[int(number)]))
    ohif_masks.sort(key=lambda m: -int(m[0].sum()))  # big structures first, lesions on top
    left = _blend(grey, ohif_masks)

    # Slicer: the dcmqi volumes of this SEG, slice k = this source image
    qdir = work / f"dcmqi-{case}" / f"dcmqi-{Path(seg['file']).stem}"
    meta = json.loads((qdir / "meta.json").read_text())
    stack = [sources[u] for u in dict.fromkeys(f["referencedSOPInstanceUID"] for f in seg["frames"])]
    iop = np.array(stack[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    stack.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, dtype=float))))
    k = [ds.SOPInstanceUID for ds in stack].index(sop_uid)
    slicer_masks = []
    for nrrd, group in zip(sorted(qdir.glob("*.nrrd"), key=lambda p: int(p.stem)), meta["segmentAttributes"]):
        _, data = dcmqi.read_nrrd(nrrd)
        for attrs in group:
            slicer_masks.append((data[k] == int(attrs["labelID"]), tuple(attrs["recommendedDisplayRGBValue"])))
    slicer_masks.sort(key=lambda m: -int(m[0].sum()))
    right = _blend(grey, slicer_masks)

    # crop both panels to the labelled region (plus margin), same box
    union = np.zeros_like(grey, dtype=bool)
    for m, _ in ohif_masks + slicer_masks:
        union |= m
    rows, cols = np.nonzero(union) if union.any() else (np.array([0, grey.shape[0] - 1]), np.array([0, grey.shape[1] - 1]))
    pad = 24
    r0, r1 = max(rows.min() - pad, 0), min(rows.max() + pad, grey.shape[0] - 1)
    c0, c1 = max(cols.min() - pad, 0), min(cols.max() + pad, grey.shape[1] - 1)
    size = 440
    scale = size / max(r1 - r0 + 1, c1 - c0 + 1)

    def panel(arr: np.ndarray, draw_boxes: bool) -> Image.Image:
        img = Image.fromarray(arr[r0:r1 + 1, c0:c1 + 1]).resize(
            (round((c1 - c0 + 1) * scale), round((r1 - r0 + 1) * scale)), Image.NEAREST)
        if draw_boxes:
            d = ImageDraw.Draw(img)
            for name, c in boxes:
                if c["referencedSOPInstanceUID"] != sop_uid:
                    continue
                pts = np.array(c["graphicData"], dtype=float).reshape(-1, 2)  # (column, row) pixel coordinates
                xy = [((x - c0) * scale, (y - r0) * scale) for x, y in pts]
                d.line(xy, fill=(255, 255, 255), width=2)
                d.text((xy[0][0], max(xy[0][1] - 16, 0)), name, fill=(255, 255, 255), font=_font(13))
        return img

    a, b = panel(left, True), panel(right, False)
    head = 44
    foot = 22 + 16 * ((len(seg["segments"]) + 2) // 3)
    canvas = Image.new("RGB", (a.width + b.width + 12, max(a.height, b.height) + head + foot), (16, 16, 24))
    canvas.paste(a, (0, head))
    canvas.paste(b, (a.width + 12, head))
    d = ImageDraw.Draw(canvas)
    f, fs = _font(15), _font(12)
    d.text((4, 4), "OHIF 3.13.2 SEG loader", fill=(230, 230, 230), font=f)
    d.text((a.width + 16, 4), "Slicer: dcmqi 1.5.7 volume", fill=(230, 230, 230), font=f)
    inst = int(src.InstanceNumber)
    sub = f"{seg['file']}, source image {inst}" + (", SR box white" if boxes else "")
    d.text((4, 24), sub, fill=(170, 170, 170), font=fs)
    d.text((a.width + 16, 24), f"slice {k} of {len(stack)} = source image {inst}", fill=(170, 170, 170), font=fs)
    y = head + max(a.height, b.height) + 6
    for i, s in enumerate(seg["segments"]):
        x = 4 + (i % 3) * ((canvas.width - 8) // 3)
        yy = y + 16 * (i // 3)
        d.rectangle((x, yy + 2, x + 11, yy + 13), fill=tuple(s["ohifRGB"]))
        d.text((x + 16, yy), s["label"], fill=(220, 220, 220), font=fs)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, optimize=True)
    return {"seg": seg["file"], "source_instance": inst, "slice": k, "boxes": [n for n, c in boxes if c["referencedSOPInstanceUID"] == sop_uid]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["lumbar", "sij"], required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sop", help="source SOP Instance UID to show (default: see module doc)")
    args = parser.parse_args()
    print(json.dumps(render(args.case, args.work, args.out, args.sop)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
