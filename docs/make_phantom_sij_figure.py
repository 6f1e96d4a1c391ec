"""Re-make docs/img/phantom-sij.png: slices of one SIJ phantom study.

Run from the repository root: ``.venv/bin/python docs/make_phantom_sij_figure.py [--seed N]``.

Top row: the 5 SPARCC slices of the semi-coronal T1 (as written to DICOM).
Middle row: the same slices with the fat-metaplasia label in red and each
slice's quadrant table below it (I/S: iliac/sacral, U/L: upper/lower; the
patient's right is on the image's left, as radiologists read it).
Bottom row: the STIR of the same slices with the oedema label in yellow.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw

from inference.labels import SijLabel
from inference.phantoms.sij import generate_sij_study

logger = logging.getLogger(__name__)

OUT = Path(__file__).resolve().parent / "img" / "phantom-sij.png"
TILE = 240


def _window(image: np.ndarray, percentile: float) -> np.ndarray:
    top = float(np.percentile(image, percentile)) or 1.0
    return np.asarray(np.clip(image / top * 255.0, 0, 255).astype(np.uint8))


def _crop(labels: np.ndarray) -> tuple[slice, slice]:
    """A square crop centred on the sacrum, wide enough for both joints and some ilium."""
    rows, cols = np.nonzero(labels == SijLabel.SACRUM)
    if rows.size == 0:
        return slice(None), slice(None)
    half = int(0.95 * (cols.max() - cols.min()))
    centre_r, centre_c = int(rows.mean()), int(cols.mean())
    half = min(half, labels.shape[0] // 2, labels.shape[1] // 2)
    r0 = min(max(centre_r - half, 0), labels.shape[0] - 2 * half)
    c0 = min(max(centre_c - half, 0), labels.shape[1] - 2 * half)
    return slice(r0, r0 + 2 * half), slice(c0, c0 + 2 * half)


def _series(study: Path, key: str) -> tuple[list[str], np.ndarray]:
    datasets = [pydicom.dcmread(p) for p in sorted((study / "dicom" / key).glob("IM*.dcm"))]
    datasets.sort(key=lambda ds: int(ds.InstanceNumber))
    return [ds.SOPInstanceUID for ds in datasets], np.stack([ds.pixel_array for ds in datasets]).astype(float)


def _tile(gray: np.ndarray, overlay: np.ndarray | None, colour: tuple[int, int, int]) -> Image.Image:
    rgb = np.stack([gray] * 3, axis=-1)
    if overlay is not None:
        rgb[overlay] = (0.35 * rgb[overlay] + 0.65 * np.array(colour)).astype(np.uint8)
    return Image.fromarray(rgb).resize((TILE, TILE), Image.Resampling.BILINEAR)


def make_figure(seed: int, out: Path) -> Path:
    """Generate the study of ``seed`` in a temporary folder and draw the figure to ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        study = generate_sij_study(Path(tmp) / "study", seed)
        truth = json.loads((study / "ground_truth.json").read_text(encoding="utf-8"))
        uids, t1 = _series(study, "cor_t1")
        labels = np.load(study / "labels" / "cor_t1.npz")["labels"]
        has_stir = (study / "dicom" / "cor_stir").is_dir()
        if has_stir:
            _, stir = _series(study, "cor_stir")
            stir_labels = np.load(study / "labels" / "cor_stir.npz")["labels"]
    indices = [uids.index(uid) for uid in truth["sparcc_slices"]]
    rows = 3 if has_stir else 2
    text_h = 64
    canvas = Image.new("RGB", (TILE * len(indices), rows * TILE + text_h + 28), "black")
    draw = ImageDraw.Draw(canvas)
    crop = _crop(labels[indices[2]])
    for col, k in enumerate(indices):
        gray = _window(t1[k], 99.5)[crop]
        canvas.paste(_tile(gray.copy(), None, (0, 0, 0)), (col * TILE, 0))
        fm = labels[k][crop] == SijLabel.FAT_METAPLASIA
        canvas.paste(_tile(gray.copy(), fm, (255, 40, 40)), (col * TILE, TILE))
        if has_stir:
            sgray = _window(stir[k], 99.8)[crop]
            oedema = stir_labels[k][crop] == SijLabel.OEDEMA
            canvas.paste(_tile(sgray, oedema, (255, 220, 0)), (col * TILE, 2 * TILE))
        table = truth["fm_table"][uids[k]]
        y0 = rows * TILE + 4
        heads = ("IU", "IL", "SU", "SL")
        for n, head in enumerate(heads):
            draw.text((col * TILE + 60 + 34 * n, y0), head, fill="gray")
        for line, side in enumerate(("right", "left")):
            draw.text((col * TILE + 8, y0 + 16 * (line + 1)), side, fill="gray")
            for n, (bone, half) in enumerate(
                (("iliac", "upper"), ("iliac", "lower"), ("sacral", "upper"), ("sacral", "lower"))
            ):
                mark = "X" if table[f"{side}_{bone}_{half}"] else "."
                draw.text((col * TILE + 64 + 34 * n, y0 + 16 * (line + 1)), mark, fill="white")
    summary = (
        f"seed {seed}  SPARCC FM score {truth['sparcc_fm_score']}/40  FM volume "
        f"{truth['fm_volume_ml']['total']:.2f} mL  axSpA {truth['axspa']} "
        f"(p={truth['axspa_probability_true']:.2f})  ASAS MRI {truth['asas_positive_mri']}"
    )
    draw.text((6, rows * TILE + text_h + 8), summary, fill="white")
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, optimize=True)
    return out


def main() -> None:
    """Command line: ``--seed`` and ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    make_figure(args.seed, args.out)


if __name__ == "__main__":
    main()
