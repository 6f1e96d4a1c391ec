"""The typed result of the SIJ pipeline (what the SEG and SR encoders read; no DICOM here).

See docs/sij.md for the field list as the encoders should use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from inference.labels import SijLabel
from inference.sij.quadrants import QUADRANT_NAMES

__all__ = ["ModelInfo", "QuadrantRow", "SijMask", "SijResult"]


@dataclass(frozen=True)
class ModelInfo:
    """The weights that produced a result (from their model card)."""

    name: str
    version: str
    sha256: str
    notice: str
    synthetic: bool


@dataclass(frozen=True)
class SijMask:
    """One binary mask on the source T1 grid, with the slices it refers to.

    Attributes
    ----------
    name:
        Stable segment name: ``fat_metaplasia_left``, ``fat_metaplasia_right``, ``oedema``,
        ``sacrum``, ``ilium_left``, ``ilium_right``.
    label:
        The :class:`SijLabel` the segment comes from.
    laterality:
        ``"left"``, ``"right"`` or ``None``.
    array:
        bool (slices, rows, cols), index ``k`` is source slice ``sop_instance_uids[k]``.
    series_instance_uid, sop_instance_uids, frame_numbers:
        The source series and, per slice, the SOP Instance UID and frame number
        (``None`` for single-frame images).
    """

    name: str
    label: SijLabel
    laterality: str | None
    array: np.ndarray
    series_instance_uid: str
    sop_instance_uids: tuple[str, ...]
    frame_numbers: tuple[int | None, ...]

    @property
    def empty(self) -> bool:
        """True when no voxel is set."""
        return not bool(self.array.any())


@dataclass(frozen=True)
class QuadrantRow:
    """One slice of a SPARCC table: presence and voxel count per quadrant."""

    slice_index: int
    sop_instance_uid: str
    present: dict[str, bool]
    voxels: dict[str, int]

    @property
    def score(self) -> int:
        """Involved quadrants on this slice (0-8)."""
        return sum(self.present.values())


@dataclass(frozen=True)
class SijResult:
    """Everything the SIJ pipeline found in one study.

    Attributes
    ----------
    study_instance_uid, frame_of_reference_uid:
        Of the source T1 series.
    t1_series_instance_uid, stir_series_instance_uid:
        Source series (STIR ``None`` when none was used).
    sop_instance_uids, frame_numbers:
        Per T1 slice, in volume order (``k``).
    affine:
        4 x 4 (k, i, j, 1) -> LPS mm of the T1 grid.
    labels:
        uint8 (slices, rows, cols) :class:`SijLabel` map on the T1 grid (fat metaplasia,
        sacrum, ilia; oedema is kept apart in ``oedema`` because it may overlap FM).
    oedema:
        bool mask on the T1 grid, or ``None`` when oedema was not assessed.
    quadrants:
        int8 (slices, rows, cols), quadrant index of every FM voxel (-1 elsewhere),
        names in :data:`inference.sij.quadrants.QUADRANT_NAMES`.
    fm_presence:
        bool (slices, 8): FM presence per quadrant on every slice (the scored table is a
        window of it).
    sparcc_slice_indices:
        The five consecutive slices scored (indices into the volume).
    fm_table:
        The per-slice, per-quadrant FM table on those slices.
    sparcc_fm_score:
        0-40.
    fm_volume_ml:
        ``{"left", "right", "total"}``.
    oedema_assessed, oedema_note:
        Whether oedema was segmented (a STIR on the T1 grid was present), and why not.
    oedema_table, asas_positive_mri:
        Oedema per quadrant on the scoring slices and the ASAS positive-MRI flag; ``None``
        when oedema was not assessed.
    axspa_probability, axspa_positive, threshold:
        Calibrated probability, class at the stored threshold; ``None`` without a classifier.
    features, contributions:
        Classifier inputs by name, and per feature its contribution to the log-odds (largest first).
    model:
        The weights used (``None`` for a stub network in tests).
    """

    study_instance_uid: str
    frame_of_reference_uid: str | None
    t1_series_instance_uid: str
    stir_series_instance_uid: str | None
    sop_instance_uids: tuple[str, ...]
    frame_numbers: tuple[int | None, ...]
    affine: np.ndarray
    labels: np.ndarray
    oedema: np.ndarray | None
    quadrants: np.ndarray
    fm_presence: np.ndarray
    sparcc_slice_indices: tuple[int, ...]
    fm_table: tuple[QuadrantRow, ...]
    sparcc_fm_score: int
    fm_volume_ml: dict[str, float]
    oedema_assessed: bool
    oedema_note: str
    oedema_table: tuple[QuadrantRow, ...] | None
    asas_positive_mri: bool | None
    axspa_probability: float | None
    axspa_positive: bool | None
    threshold: float | None
    features: dict[str, float]
    contributions: dict[str, float] = field(default_factory=dict)
    model: ModelInfo | None = None

    @property
    def sparcc_sop_instance_uids(self) -> tuple[str, ...]:
        """SOP Instance UIDs of the scored slices."""
        return tuple(self.sop_instance_uids[k] for k in self.sparcc_slice_indices)

    def fm_table_dict(self) -> dict[str, dict[str, bool]]:
        """The FM table keyed like the phantoms' ``fm_table`` (SOP UID -> quadrant -> present)."""
        return {row.sop_instance_uid: dict(row.present) for row in self.fm_table}

    def masks(self) -> list[SijMask]:
        """The segments an encoder writes: FM per side, oedema when assessed, then anatomy."""
        left_quadrants = (self.quadrants >= 0) & (self.quadrants < 4)
        right_quadrants = self.quadrants >= 4
        common = (self.t1_series_instance_uid, self.sop_instance_uids, self.frame_numbers)
        out = [
            SijMask("fat_metaplasia_left", SijLabel.FAT_METAPLASIA, "left", left_quadrants, *common),
            SijMask("fat_metaplasia_right", SijLabel.FAT_METAPLASIA, "right", right_quadrants, *common),
        ]
        if self.oedema is not None:
            out.append(SijMask("oedema", SijLabel.OEDEMA, None, self.oedema.astype(bool), *common))
        out += [
            SijMask("sacrum", SijLabel.SACRUM, None, self.labels == SijLabel.SACRUM, *common),
            SijMask("ilium_left", SijLabel.ILIUM_LEFT, "left", self.labels == SijLabel.ILIUM_LEFT, *common),
            SijMask("ilium_right", SijLabel.ILIUM_RIGHT, "right", self.labels == SijLabel.ILIUM_RIGHT, *common),
        ]
        return out

    def summary(self) -> str:
        """One line a radiologist reads in three seconds."""
        vol = self.fm_volume_ml
        parts = [
            f"SIJ fat metaplasia: SPARCC-style {self.sparcc_fm_score}/40",
            f"volume L {vol['left']:.1f} mL, R {vol['right']:.1f} mL",
        ]
        if self.oedema_assessed:
            parts.append("ASAS-positive MRI" if self.asas_positive_mri else "no ASAS-positive oedema")
        else:
            parts.append(f"oedema not assessed ({self.oedema_note})")
        if self.axspa_probability is not None:
            cls = "axSpA" if self.axspa_positive else "non-axSpA"
            parts.append(f"axSpA probability {self.axspa_probability:.2f} ({cls} at {self.threshold:.2f})")
        return "; ".join(parts)


def empty_row(slice_index: int, uid: str) -> QuadrantRow:
    """A table row with nothing present (used for tests and empty studies)."""
    return QuadrantRow(slice_index, uid, {q: False for q in QUADRANT_NAMES}, {q: 0 for q in QUADRANT_NAMES})
