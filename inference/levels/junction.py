"""Discs, the lumbosacral junction and the level count on one sagittal label map.

Pure numpy/scipy on a 2D :class:`~inference.labels.SagittalLabel` map in the
canonical display orientation: rows run cranial to caudal, columns anterior to
posterior (how SPIDER stores its slices; :mod:`inference.levels.orientation`
brings a DICOM slice there).

The rule (the same for ground-truth and predicted masks):

1. discs are the connected components of the disc class with at least
   ``min_area_mm2``, not cut by the cranial edge of the image; pieces of one
   disc (side by side across the disc plane) are joined; each gets its
   centroid, long axis and thickness (PCA in mm); a top disc centred less than
   half a segment below the edge (no room for its vertebra above) is dropped;
2. they are ordered cranial to caudal by centroid row; a short band close
   below the lowest disc, or a lowest disc with unlabelled bone (the sacrum)
   between it and the disc above, is a sacral segment (S1/S2) and is not counted;
3. the lowest disc is the lumbosacral junction (L5/S1) when a vertebra (the
   sacrum) lies below it; names are counted upwards from there: L5/S1, L4/L5,
   ..., T12/L1, T11/T12, ...;
4. warnings say what makes the count uncertain: no vertebra below the lowest
   disc or the lowest disc at the edge of the image (the field of view may not
   reach the sacrum), a rudimentary lowest disc (possible transitional vertebra),
   a gap between discs wider than 1.8 times the median (a disc may be missed),
   fewer than three discs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from inference.labels import SagittalLabel

__all__ = [
    "Disc2D",
    "LevelCount",
    "body_between",
    "count_levels",
    "cranial_partial",
    "describe_disc",
    "find_discs",
    "level_name",
    "merge_split_discs",
    "sacral_band",
    "sacral_bone",
]

logger = logging.getLogger(__name__)

#: A top disc centred less than this fraction of a segment below the top edge is not counted.
CRANIAL_FRACTION = 0.5
#: A lowest disc with less than this share of vertebra in the body above it lies inside the sacrum.
SACRAL_MAX_SHARE = 0.3

_LUMBAR_FROM_BOTTOM = ("L5/S1", "L4/L5", "L3/L4", "L2/L3", "L1/L2", "T12/L1")


def _centres_mm(discs: Sequence[Disc2D], spacing: tuple[float, float]) -> np.ndarray:
    """(n, 2) disc centroids (row, col) in mm."""
    return np.array([d.centroid for d in discs], dtype=float).reshape(-1, 2) * np.array([float(spacing[0]), float(spacing[1])])


def _gaps_mm(discs: Sequence[Disc2D], spacing: tuple[float, float]) -> np.ndarray:
    """Distances (mm) between the centres of neighbouring discs, cranial to caudal."""
    return np.linalg.norm(np.diff(_centres_mm(discs, spacing), axis=0), axis=1)


def level_name(index_from_bottom: int) -> str:
    """Name of the disc ``index_from_bottom`` discs above L5/S1 (0 = L5/S1, 5 = T12/L1, 6 = T11/T12)."""
    if index_from_bottom < 0:
        raise ValueError("index_from_bottom must be >= 0")
    if index_from_bottom < len(_LUMBAR_FROM_BOTTOM):
        return _LUMBAR_FROM_BOTTOM[index_from_bottom]
    upper = 12 - (index_from_bottom - len(_LUMBAR_FROM_BOTTOM)) - 1
    if upper < 1:
        return f"above T1 ({index_from_bottom})"
    return f"T{upper}/T{upper + 1}"


@dataclass(frozen=True)
class Disc2D:
    """One disc on a sagittal slice (pixel coordinates, canonical orientation)."""

    label: int  #: component id in :attr:`LevelCount.components`
    centroid: tuple[float, float]  #: (row, column), fractional pixels
    axis: tuple[float, float]  #: unit long axis (d row, d column), in mm units, pointing posterior
    length_mm: float  #: extent along the long axis (anterior-posterior)
    thickness_mm: float  #: extent across it (disc height)
    area_px: int
    confidence: float  #: mean network probability over the component (1.0 for reference masks)


@dataclass
class LevelCount:
    """Discs of one slice with their names counted from the lumbosacral junction."""

    discs: list[Disc2D]  #: cranial to caudal
    names: list[str]  #: same order as ``discs``
    sacrum_found: bool
    components: np.ndarray  #: int32 component map (0 = not a counted disc)
    warnings: list[str] = field(default_factory=list)

    @property
    def junction(self) -> Disc2D | None:
        """The L5/S1 disc (the lowest), or None when no disc was found."""
        return self.discs[-1] if self.discs else None


def off_column(centroids_mm: np.ndarray, lengths_mm: np.ndarray) -> np.ndarray:
    """Which discs lie off the spinal column (boolean mask).

    Fits the column (anterior-posterior position as a polynomial of the cranio-caudal
    position: a line for up to five discs, a parabola above) and removes the worst
    outlier while one deviates more than half the median disc length (at least 10 mm).
    """
    pts = np.asarray(centroids_mm, dtype=float)
    keep = np.ones(len(pts), dtype=bool)
    tol = max(10.0, 0.5 * float(np.median(lengths_mm))) if len(pts) else 0.0
    while keep.sum() >= 4:
        idx = np.flatnonzero(keep)
        degree = 2 if idx.size >= 6 else 1
        coef = np.polyfit(pts[idx, 0], pts[idx, 1], degree)
        residual = np.abs(np.polyval(coef, pts[idx, 0]) - pts[idx, 1])
        worst = int(np.argmax(residual))
        if residual[worst] <= tol:
            break
        keep[idx[worst]] = False
    return ~keep


def find_discs(
    labels: np.ndarray,
    spacing: tuple[float, float] = (1.0, 1.0),
    *,
    min_area_mm2: float = 40.0,
    probability: np.ndarray | None = None,
    min_confidence: float = 0.5,
    cranial_fraction: float = CRANIAL_FRACTION,
) -> tuple[list[Disc2D], np.ndarray]:
    """Disc components of a label map, cranial to caudal.

    Parameters
    ----------
    labels
        ``(rows, cols)`` :class:`SagittalLabel` map, canonical orientation.
    spacing
        ``(row, column)`` pixel spacing in mm (SPIDER has none: pass pixel units
        scaled as the caller documents).
    min_area_mm2
        Smaller components are noise or a disc clipped by the edge of the image.
    probability
        Optional per-pixel confidence map; its mean over a disc is the disc's confidence.
    min_confidence
        With ``probability``, components of lower mean confidence are dropped.
    cranial_fraction
        The most cranial disc is dropped when its centre lies closer to the top
        edge than this fraction of the median distance between discs
        (:func:`cranial_partial`).

    Components touching the first (cranial) row are dropped: a disc cut by the
    edge of the field of view is seen in part or not at all, in the reference
    masks as in the network's, and the names count from the caudal end anyway.
    Pieces of one disc are joined (:func:`merge_split_discs`), then components
    off the spinal column (:func:`off_column`) are dropped, and so is a top disc
    with no room for its vertebra above it (:func:`cranial_partial`).

    Returns
    -------
    tuple
        ``(discs, component map)``; the component map numbers kept discs 1..N in
        the order of the list.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"expected a 2D label map, got shape {lab.shape}")
    sr, sc = float(spacing[0]), float(spacing[1])
    raw, n = ndimage.label(lab == SagittalLabel.DISC)
    found: list[tuple[Disc2D, np.ndarray]] = []
    for comp in range(1, n + 1):
        mask = raw == comp
        if int(mask.sum()) * sr * sc < min_area_mm2 or mask[0].any():
            continue  # noise, or a disc cut by the cranial edge of the field of view
        disc = describe_disc(mask, (sr, sc), probability)
        if disc.confidence < min_confidence:
            continue
        found.append((disc, mask))
    found.sort(key=lambda item: item[0].centroid[0])
    found = merge_split_discs(found, (sr, sc), probability)
    if len(found) >= 4:
        centroids = _centres_mm([d for d, _ in found], spacing)
        outliers = off_column(centroids, np.array([d.length_mm for d, _ in found]))
        found = [item for item, out in zip(found, outliers) if not out]
    if cranial_partial([d for d, _ in found], (sr, sc), max_fraction=cranial_fraction):
        found = found[1:]
    components = np.zeros(lab.shape, dtype=np.int32)
    discs: list[Disc2D] = []
    for index, (disc, mask) in enumerate(found, start=1):
        components[mask] = index
        discs.append(
            Disc2D(index, disc.centroid, disc.axis, disc.length_mm, disc.thickness_mm, disc.area_px, disc.confidence)
        )
    return discs, components


def cranial_partial(discs: list[Disc2D], spacing: tuple[float, float], *, max_fraction: float = CRANIAL_FRACTION) -> bool:
    """Whether the most cranial disc lies too close to the top edge of the image to be counted.

    A disc whose centre is less than ``max_fraction`` times the median distance
    between neighbouring discs below the top edge has (almost) none of its
    vertebral body above it in view: it is often cut by the edge, and SPIDER's
    annotators label such a disc on some patients and not on others. Names count
    from the caudal end, so leaving it out changes no other name. Needs at least
    three discs (for the median distance); ``discs`` are ordered cranial to caudal.
    """
    if len(discs) < 3 or max_fraction <= 0:
        return False
    median_gap = float(np.median(_gaps_mm(discs, spacing)))
    return bool(_centres_mm(discs[:1], spacing)[0, 0] < max_fraction * median_gap)


def describe_disc(
    mask: np.ndarray, spacing: tuple[float, float], probability: np.ndarray | None = None
) -> Disc2D:
    """Centroid, long axis (PCA in mm), length, thickness, area and mean confidence of one disc mask."""
    sr, sc = float(spacing[0]), float(spacing[1])
    rows, cols = np.nonzero(mask)
    pts = np.column_stack([rows * sr, cols * sc])
    centred = pts - pts.mean(axis=0)
    if rows.size > 2:
        eigval, eigvec = np.linalg.eigh(np.cov(centred.T))
        major = eigvec[:, int(np.argmax(eigval))]
    else:
        major = np.array([0.0, 1.0])
    if major[1] < 0:  # point posterior (increasing column)
        major = -major
    minor = np.array([-major[1], major[0]])
    along, across = centred @ major, centred @ minor
    conf = float(np.mean(probability[rows, cols])) if probability is not None else 1.0
    return Disc2D(
        label=0,
        centroid=(float(rows.mean()), float(cols.mean())),
        axis=(float(major[0]), float(major[1])),
        length_mm=float(np.ptp(along) + min(sr, sc)),
        thickness_mm=float(np.ptp(across) + min(sr, sc)),
        area_px=int(rows.size),
        confidence=conf,
    )


def merge_split_discs(
    found: list[tuple[Disc2D, np.ndarray]],
    spacing: tuple[float, float],
    probability: np.ndarray | None = None,
    *,
    max_offset: float = 0.3,
) -> list[tuple[Disc2D, np.ndarray]]:
    """Join neighbouring components that are pieces of one disc (sorted cranial to caudal).

    A disc is often cut in two, in the reference masks as in the network's: an
    anterior and a posterior piece side by side, or a thin bridge lost to
    partial volume. Two neighbours are one disc when the distance between their
    centroids across the disc plane (along the normal of the larger piece's long
    axis) is less than the thicker piece's thickness and less than
    ``max_offset`` times the median distance between neighbouring components (a
    disc space is about a third of a segment high), and the distance along the
    plane less than their two lengths together.
    """
    if len(found) < 3:
        return found
    items = list(found)
    merged = True
    while merged and len(items) >= 3:
        merged = False
        centres = _centres_mm([d for d, _ in items], spacing)
        segment = float(np.median(np.linalg.norm(np.diff(centres, axis=0), axis=1)))
        best: tuple[float, int] | None = None
        for i in range(len(items) - 1):
            a, b = items[i][0], items[i + 1][0]
            big = a if a.area_px >= b.area_px else b
            axis = np.array(big.axis)
            normal = np.array([axis[1], -axis[0]])
            diff = centres[i + 1] - centres[i]
            across, along = abs(float(diff @ normal)), abs(float(diff @ axis))
            limit = min(max_offset * segment, max(a.thickness_mm, b.thickness_mm))
            if across < limit and along < a.length_mm + b.length_mm:
                if best is None or across < best[0]:
                    best = (across, i)
        if best is not None:
            i = best[1]
            mask = items[i][1] | items[i + 1][1]
            items[i : i + 2] = [(describe_disc(mask, spacing, probability), mask)]
            merged = True
    return items


def body_below(labels: np.ndarray, disc: Disc2D, spacing: tuple[float, float]) -> tuple[float, float]:
    """Vertebra directly caudal to ``disc``: its contiguous height and the image left below the disc.

    Samples a band of half the disc's length around its centre, in 1 mm steps
    along the disc's caudal normal; a step counts as bone when at least half its
    pixels are vertebra.

    Returns
    -------
    tuple
        ``(height_mm of the vertebra run starting at the disc's lower edge,
        image extent in mm below the disc centre along the normal)``.
    """
    sr, sc = float(spacing[0]), float(spacing[1])
    r0, c0 = disc.centroid
    rr, cc = np.indices(labels.shape)
    dr, dc = (rr - r0) * sr, (cc - c0) * sc
    ax = np.array(disc.axis)
    normal = np.array([ax[1], -ax[0]])
    if normal[0] < 0:  # caudal = increasing row
        normal = -normal
    along = dr * ax[0] + dc * ax[1]
    down = dr * normal[0] + dc * normal[1]
    band = np.abs(along) <= 0.25 * disc.length_mm
    extent = float(down[band].max()) if band.any() else 0.0
    start = 0.5 * disc.thickness_mm
    height = 0.0
    step = 1.0
    bone = labels == SagittalLabel.VERTEBRA
    gap_allowed = 2.0  # mm of non-bone tolerated (endplate, partial volume)
    depth, missed = start, 0.0
    while depth < extent:
        sel = band & (down >= depth) & (down < depth + step)
        if not sel.any():
            break
        if float(np.mean(bone[sel])) >= 0.5:
            height, missed = depth + step - start, 0.0
        else:
            missed += step
            if missed > gap_allowed:
                break
        depth += step
    return height, extent


def sacral_band(
    discs: list[Disc2D], spacing: tuple[float, float], *, max_gap: float = 0.75, max_length: float = 0.7
) -> bool:
    """Whether the lowest disc looks like a band inside the sacrum (S1/S2) rather than L5/S1.

    A remnant disc between sacral segments is closer below the real L5/S1 than a
    lumbar segment is high (the S1 body is shorter) and shorter than the disc above
    it. The lowest disc is taken for such a band when, with at least four discs,
    its distance to the disc above is less than ``max_gap`` times the median
    distance between the discs above, its length is less than ``max_length`` times
    that of the disc above, and the disc above is of ordinary length (at least
    ``max_length`` times the median; a rudimentary L5/S1 stays the junction).
    Chosen on the SPIDER training patients, where it never fires on a reference
    L5/S1 (their smallest ratio of distances is 0.81, a rudimentary L5/S1).
    """
    if len(discs) < 4:
        return False
    gaps = _gaps_mm(discs, spacing)
    low, above = discs[-1], discs[-2]
    median_gap = float(np.median(gaps[:-1]))
    median_len = float(np.median([d.length_mm for d in discs[:-1]]))
    return bool(
        gaps[-1] < max_gap * median_gap
        and low.length_mm < max_length * above.length_mm
        and above.length_mm >= max_length * median_len
    )


def body_between(labels: np.ndarray, upper: Disc2D, lower: Disc2D, spacing: tuple[float, float]) -> float:
    """Share of vertebra pixels in the body between two neighbouring discs.

    Samples the middle 40 % of the line joining the two disc centres, each sample a
    row segment half as wide as the discs are long on average (the centre of the
    vertebral body, away from the endplates).
    """
    lab = np.asarray(labels)
    sc = float(spacing[1])
    (r0, c0), (r1, c1) = upper.centroid, lower.centroid
    half = 0.25 * 0.5 * (upper.length_mm + lower.length_mm) / sc
    shares = []
    for t in np.linspace(0.3, 0.7, 21):
        row = int(round(r0 + t * (r1 - r0)))
        col = c0 + t * (c1 - c0)
        cols = np.arange(int(np.floor(col - half)), int(np.ceil(col + half)) + 1)
        cols = cols[(cols >= 0) & (cols < lab.shape[1])]
        if 0 <= row < lab.shape[0] and cols.size:
            shares.append(float(np.mean(lab[row, cols] == SagittalLabel.VERTEBRA)))
    return float(np.mean(shares)) if shares else 0.0


def sacral_bone(
    labels: np.ndarray,
    discs: list[Disc2D],
    spacing: tuple[float, float],
    *,
    max_share: float = SACRAL_MAX_SHARE,
    min_share: float = 0.6,
    canal_reach: float = 1.0,
) -> bool:
    """Whether the lowest disc lies in bone that is not labelled vertebra: a band inside the sacrum.

    SPIDER labels the lumbar vertebrae but not the sacrum, and the network learnt
    to leave the sacrum unlabelled; a disc-like band it finds between sacral
    segments therefore has no vertebra between it and the real L5/S1 above, while
    a real L5/S1 has the L5 body there. The lowest disc is taken for such a band
    when, with at least four discs, the vertebra share of the body above it
    (:func:`body_between`) is below ``max_share`` while the median share of the
    bodies higher up is at least ``min_share`` (the slice does show labelled
    vertebrae), and the spinal canal reaches down to within ``canal_reach``
    median segments of it (a midline slice: a lateral slice shows neither canal
    nor bodies low down). Phantoms label the sacrum as vertebra: the rule never
    fires there.
    """
    if len(discs) < 4:
        return False
    lab = np.asarray(labels)
    shares = [body_between(lab, discs[i], discs[i + 1], spacing) for i in range(len(discs) - 1)]
    if shares[-1] >= max_share or float(np.median(shares[:-1])) < min_share:
        return False
    segment = float(np.median(_gaps_mm(discs, spacing)))
    lowest_row_mm = float(_centres_mm(discs[-1:], spacing)[0, 0])
    canal_rows = np.flatnonzero((lab == SagittalLabel.CANAL).any(axis=1))
    if canal_rows.size == 0:
        return False
    return bool(canal_rows.max() * float(spacing[0]) >= lowest_row_mm - canal_reach * segment)


def count_levels(
    labels: np.ndarray,
    spacing: tuple[float, float] = (1.0, 1.0),
    *,
    min_area_mm2: float = 40.0,
    probability: np.ndarray | None = None,
) -> LevelCount:
    """Find the discs of a slice, its lumbosacral junction, and name every disc.

    See the module docstring for the rule and the warnings.
    """
    lab = np.asarray(labels)
    discs, components = find_discs(lab, spacing, min_area_mm2=min_area_mm2, probability=probability)
    warnings: list[str] = []
    if not discs:
        return LevelCount([], [], False, components, ["no disc found on the sagittal slice"])
    for _ in range(2):  # one or two sacral bands (S1/S2, S2/S3)
        if not (sacral_band(discs, spacing) or sacral_bone(lab, discs, spacing)):
            break
        band = discs.pop()
        components[components == band.label] = 0
        warnings.append(
            "a short disc-like band close below the lowest disc was taken for a sacral segment (S1/S2) and not "
            "counted; check the junction"
        )
    names = [level_name(len(discs) - 1 - i) for i in range(len(discs))]
    lowest = discs[-1]
    gaps = _gaps_mm(discs, spacing)
    segment_mm = float(np.median(gaps)) if gaps.size else 3.5 * lowest.thickness_mm
    height, extent = body_below(lab, lowest, spacing)
    # The sacrum below L5/S1 is either unlabelled (SPIDER's masks) or one block taller than a
    # lumbar body (phantoms label it as vertebra); a body of lumbar height that ends, with
    # image below it, means the lowest disc may not be L5/S1.
    lumbar_like = 0.35 * segment_mm <= height < 1.1 * segment_mm and extent > height + 0.5 * segment_mm
    sacrum = not lumbar_like
    if extent < 0.8 * segment_mm:
        sacrum = False
        warnings.append(
            "the lowest disc is near the bottom edge of the image: the field of view may not reach the sacrum; "
            "levels are counted from the lowest visible disc"
        )
    elif lumbar_like:
        warnings.append(
            f"a vertebral body of lumbar height ({height:.0f} vs {segment_mm:.0f} per segment) lies below the lowest "
            "disc: the lowest disc may not be L5/S1 (transitional vertebra or a missed disc), check the count"
        )
    if len(discs) >= 3:
        others = discs[:-1]
        med_len = float(np.median([d.length_mm for d in others]))
        med_area = float(np.median([d.area_px for d in others]))
        if lowest.length_mm < 0.5 * med_len and lowest.area_px < 0.3 * med_area:
            warnings.append("the lowest disc is rudimentary: possible transitional lumbosacral vertebra, check the count")
        median_gap = segment_mm
        for i, gap in enumerate(gaps):
            if gap > 1.8 * median_gap:
                warnings.append(
                    f"gap of {gap:.0f} between {names[i]} and {names[i + 1]} is {gap / median_gap:.1f}x the median: "
                    "a disc may be missing, names above it may be off by one"
                )
    else:
        warnings.append(f"only {len(discs)} disc(s) visible: fewer than three, the count is uncertain")
    return LevelCount(discs, names, sacrum, components, warnings)
