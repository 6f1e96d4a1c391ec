"""Secondary Capture key images with the overlay burned in (for PACS whose viewers ignore SEG/SR).

One RGB image per key slice (lumbar: the slice each herniated level was read on;
SIJ: the scored slice with most involved quadrants): the source slice, the
segments blended in their recommended colours, the herniation box, and two lines
of text (the finding and the research-use notice). Marked DERIVED\\SECONDARY with
Burned In Annotation YES and a Source Image Sequence pointing at the slice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from dicom_node.results.errors import ResultsEncodingError
from dicom_node.results.identity import MANUFACTURER, SOFTWARE_VERSION, ModelIdentity

__all__ = ["KeyImage", "build_sc", "render_overlay"]

logger = logging.getLogger(__name__)

TEXT_ROWS = 28


@dataclass
class KeyImage:
    """What one key image shows.

    Attributes
    ----------
    source
        The source slice's dataset (header is enough).
    pixels
        Its 2D pixel array.
    layers
        ``(mask, rgb colour)`` pairs blended over the image.
    box
        ``(row_min, col_min, row_max, col_max)`` to outline, or ``None``.
    caption
        The finding, one short line.
    """

    source: Dataset
    pixels: np.ndarray
    layers: list[tuple[np.ndarray, tuple[int, int, int]]]
    box: tuple[int, int, int, int] | None
    caption: str


def render_overlay(key: KeyImage, notice: str) -> np.ndarray:
    """RGB uint8 ``(rows + 2 * TEXT_ROWS, cols, 3)``: caption band, image with overlays, notice band."""
    image = np.asarray(key.pixels, dtype=np.float32)
    lo, hi = np.percentile(image, [1.0, 99.5])
    gray = np.clip((image - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0) * 255.0
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    for mask, color in key.layers:
        m = np.asarray(mask, dtype=bool)
        rgb[m] = 0.45 * rgb[m] + 0.55 * np.asarray(color, dtype=np.float32)
    canvas = Image.new("RGB", (image.shape[1], image.shape[0] + 2 * TEXT_ROWS), (0, 0, 0))
    canvas.paste(Image.fromarray(rgb.astype(np.uint8)), (0, TEXT_ROWS))
    draw = ImageDraw.Draw(canvas)
    if key.box is not None:
        r0, c0, r1, c1 = key.box
        draw.rectangle([c0 - 1, r0 - 1 + TEXT_ROWS, c1 + 1, r1 + 1 + TEXT_ROWS], outline=(255, 255, 255))
    draw.text((3, 3), key.caption[:120], fill=(255, 255, 255))
    draw.text((3, image.shape[0] + TEXT_ROWS + 3), notice.upper()[:120], fill=(255, 255, 0))
    return np.asarray(canvas, dtype=np.uint8)


def patient_orientation(source: Dataset) -> tuple[str, str]:
    """Patient Orientation (row, column direction letters) from the source's Image Orientation (Patient)."""
    iop = source.get("ImageOrientationPatient")
    if iop is None and "SharedFunctionalGroupsSequence" in source:
        iop = source.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
    if iop is None:
        return ("L", "P")
    letters = (("R", "L"), ("A", "P"), ("F", "H"))  # negative, positive along LPS x, y, z

    def letter(v: np.ndarray) -> str:
        axis = int(np.argmax(np.abs(v)))
        return letters[axis][int(v[axis] > 0)]

    values = np.asarray([float(x) for x in iop])
    return (letter(values[:3]), letter(values[3:]))


def build_sc(
    keys: Sequence[KeyImage],
    *,
    model: ModelIdentity,
    series_instance_uid: str,
    series_number: int,
    sop_instance_uids: Sequence[str],
    series_description: str,
) -> list[hd.sc.SCImage]:
    """One Secondary Capture per key image, in the source study.

    Raises
    ------
    ResultsEncodingError
        highdicom refused an image.
    """
    out: list[hd.sc.SCImage] = []
    for n, (key, uid) in enumerate(zip(keys, sop_instance_uids)):
        pixels = render_overlay(key, f"{model.notice} - {model.name} {model.version} {model.checksum_text}")
        try:
            sc = hd.sc.SCImage.from_ref_dataset(
                ref_dataset=key.source,
                pixel_array=pixels,
                photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
                bits_allocated=8,
                coordinate_system=hd.CoordinateSystemNames.PATIENT,
                series_instance_uid=series_instance_uid,
                series_number=series_number,
                sop_instance_uid=uid,
                instance_number=n + 1,
                manufacturer=MANUFACTURER,
                patient_orientation=patient_orientation(key.source),
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                series_description=series_description[:64],
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise ResultsEncodingError(f"highdicom refused the key image {n + 1}: {exc}") from exc
        sc.ImageType = ["DERIVED", "SECONDARY"]
        sc.BurnedInAnnotation = "YES"
        if "Laterality" not in sc:  # type 2C; dciodvfy asks for it on SC (paired or unknown body part)
            sc.add_new("Laterality", "CS", None)
        sc.SoftwareVersions = SOFTWARE_VERSION
        sc.DerivationDescription = f"overlay of {model.name} {model.version} results"[:1024]
        ref = Dataset()
        ref.ReferencedSOPClassUID = key.source.SOPClassUID
        ref.ReferencedSOPInstanceUID = key.source.SOPInstanceUID
        sc.SourceImageSequence = DicomSequence([ref])
        out.append(sc)
    logger.info("%d key image(s) in series %s", len(out), series_instance_uid)
    return out
