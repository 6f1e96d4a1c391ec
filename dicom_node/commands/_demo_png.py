"""Overlay PNGs for the demo: a received SEG drawn on its source slice, as a viewer would show it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from pydicom import dcmread

__all__ = ["render_overlay"]

logger = logging.getLogger(__name__)


def _gray(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [1, 99.5])
    return (np.clip((image - lo) / max(float(hi - lo), 1e-6), 0, 1) * 255).astype(np.uint8)


def render_overlay(seg_path: Path, sources: dict[str, Path], out: Path) -> Path | None:
    """Draw the SEG at ``seg_path`` on the source slice where it segments most; ``None`` if nothing to draw.

    Parameters
    ----------
    sources
        SOP Instance UID -> file of the source images (the study that was sent).
    out
        The PNG to write.
    """
    import highdicom as hd
    from PIL import Image

    seg = hd.seg.segread(seg_path)
    best: tuple[int, str] | None = None
    for _, _, source_uid in seg.get_source_image_uids():
        candidate = str(source_uid)
        if candidate not in sources:
            continue
        count = int((seg.get_pixels_by_source_instance([candidate])[0] > 0).sum())
        if count and (best is None or count > best[0]):
            best = (count, candidate)
    if best is None:
        return None
    uid = best[1]
    image = dcmread(sources[uid]).pixel_array.astype(np.float32)
    masks = seg.get_pixels_by_source_instance([uid])[0]
    rgb = np.repeat(_gray(image)[..., None], 3, axis=-1).astype(float)
    for n, desc in enumerate(seg.SegmentSequence):
        lab = getattr(desc, "RecommendedDisplayCIELabValue", None)
        colour = (np.array(hd.color.CIELabColor.from_dicom_value(lab).to_rgb(clip=True)) if lab is not None
                  else np.array([255.0, 64.0, 64.0]))
        mask = masks[..., n] > 0
        rgb[mask] = 0.45 * rgb[mask] + 0.55 * colour
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.astype(np.uint8)).save(out)
    return out
