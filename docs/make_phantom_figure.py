"""Re-make docs/img/phantom-lumbar.png: lumbar phantom slices at each MSU class and a sagittal.

Usage (from the repository root)::

    .venv/bin/python docs/make_phantom_figure.py [--out docs/img/phantom-lumbar.png] [--work DIR]

Two phantom studies are generated with forced herniations so that every MSU size
(0-3) and zone (A, AB, B, C) appears once. Each axial tile is the slice the
ground truth was read on (the slice of maximal herniation), cropped around the
canal; the row below outlines the label masks (disc blue, herniation red, dural
sac yellow, facets green) with the intra-facet line and the measured ratio. The
last column shows the mid-sagittal T2 and T1 of the first study.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw

from inference.labels import AxialLabel
from inference.phantoms.lumbar import generate_lumbar_study

TILE = 256
COLOURS = {
    AxialLabel.DISC: (70, 130, 255),
    AxialLabel.HERNIATION: (255, 50, 50),
    AxialLabel.DURAL_SAC: (255, 220, 0),
    AxialLabel.FACET_LEFT: (0, 220, 90),
    AxialLabel.FACET_RIGHT: (0, 220, 90),
    AxialLabel.VERTEBRA: (150, 150, 150),
}
Forced = dict[str, tuple[int, str | None, str | None]]
STUDIES: tuple[tuple[int, Forced], ...] = (
    (1001, {"L3/L4": (0, None, None), "L4/L5": (1, "A", None), "L5/S1": (2, "AB", "left")}),
    (1002, {"L3/L4": (3, "B", "right"), "L4/L5": (2, "C", "left"), "L5/S1": (3, "A", None)}),
)


def _window(image: np.ndarray) -> np.ndarray:
    hi = float(np.percentile(image, 99.5)) or 1.0
    return np.clip(image / hi * 255.0, 0, 255).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return mask & ~inner


def _crop_box(labels: np.ndarray, spacing: float) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(np.isin(labels, [AxialLabel.DURAL_SAC, AxialLabel.FACET_LEFT, AxialLabel.FACET_RIGHT]))
    centre_r, centre_c = rows.mean(), cols.mean()
    half = int(round(40.0 / spacing))  # 80 mm square
    r0, c0 = int(centre_r) - half, int(centre_c) - half
    return r0, c0, r0 + 2 * half, c0 + 2 * half


def _tile(image: np.ndarray, labels: np.ndarray, spacing: float, caption: str) -> tuple[Image.Image, Image.Image]:
    box = _crop_box(labels, spacing)
    pad = max(0, -box[0], -box[1], box[2] - image.shape[0], box[3] - image.shape[1])
    img = np.pad(_window(image), pad)[box[0] + pad:box[2] + pad, box[1] + pad:box[3] + pad]
    lab = np.pad(labels, pad)[box[0] + pad:box[2] + pad, box[1] + pad:box[3] + pad]
    gray = Image.fromarray(img).convert("RGB").resize((TILE, TILE), Image.Resampling.BILINEAR)
    over = np.stack([img // 2] * 3, axis=-1)
    for value, colour in COLOURS.items():
        over[_outline(lab == value)] = colour
    overlay = Image.fromarray(over).resize((TILE, TILE), Image.Resampling.NEAREST)
    for im in (gray, overlay):
        ImageDraw.Draw(im).text((6, 4), caption, fill=(255, 255, 0))
    return gray, overlay


def _sagittal(study: Path, key: str) -> Image.Image:
    files = sorted((study / "dicom" / key).glob("IM*.dcm"))
    image = pydicom.dcmread(files[len(files) // 2]).pixel_array.astype(float)
    tile = Image.fromarray(_window(image)).convert("RGB").resize((TILE, TILE), Image.Resampling.BILINEAR)
    ImageDraw.Draw(tile).text((6, 4), f"sagittal {key[-2:].upper()}", fill=(255, 255, 0))
    return tile


def make_figure(out: Path, work: Path) -> Path:
    """Generate the studies in ``work`` and write the montage to ``out``."""
    tops: list[Image.Image] = []
    bottoms: list[Image.Image] = []
    sagittals: list[Image.Image] = []
    for seed, forced in STUDIES:
        study = generate_lumbar_study(work / f"lumbar-{seed}", seed, herniations=forced)
        truth = json.loads((study / "ground_truth.json").read_text(encoding="utf-8"))
        entry = truth["series"]["ax_t2"]
        files = sorted((study / "dicom" / "ax_t2").glob("IM*.dcm"))
        with np.load(study / entry["labels"]) as npz:
            labels, uids = npz["labels"], [str(u) for u in npz["sop_instance_uids"]]
        for disc in truth["discs"]:
            if disc["axial_stack"] is None:
                continue
            index = uids.index(disc["read_slice_sop_instance_uid"])
            ds = pydicom.dcmread(files[index])
            spacing = float(ds.PixelSpacing[0])
            m = disc.get("measurements", {})
            ratio = f" {100 * m['ratio']:.0f}%" if m.get("ratio") is not None else ""
            label = "normal (0)" if disc["msu_size"] == 0 else f"{disc['msu_size']}-{disc['zone']}"
            side = f" {disc['side']}" if disc["side"] not in (None, "central") else ""
            top, bottom = _tile(ds.pixel_array.astype(float), labels[index], spacing,
                                f"{disc['level']} {label}{side}{ratio}")
            tops.append(top)
            bottoms.append(bottom)
        if not sagittals:
            sagittals = [_sagittal(study, "sag_t2"), _sagittal(study, "sag_t1")]
    columns = len(tops) + 1
    sheet = Image.new("RGB", (columns * TILE, 2 * TILE))
    for i, (top, bottom) in enumerate(zip(tops, bottoms)):
        sheet.paste(top, (i * TILE, 0))
        sheet.paste(bottom, (i * TILE, TILE))
    sheet.paste(sagittals[0], (len(tops) * TILE, 0))
    sheet.paste(sagittals[1], (len(tops) * TILE, TILE))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "img" / "phantom-lumbar.png")
    parser.add_argument("--work", type=Path, default=None, help="keep the generated studies here")
    args = parser.parse_args()
    if args.work is not None:
        make_figure(args.out, args.work)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            make_figure(args.out, Path(tmp))
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
