"""Facet joints and posterior disc herniations drawn so that their MSU class is known.

Both are drawn in the disc's mid frame (``x`` lateral, + = patient left; ``w``
posterior; ``v`` cranial), where the geometry of the MSU rule is explicit:

* the facet joints are ellipses (superior and inferior articular processes with
  a fluid slit) clipped anteriorly at the intra-facet line ``w = w_line``, so
  their medial margins sit on that line at ``x = +-W`` (``W`` =
  ``facet_half_span``);
* the posterior disc margin is at ``w = posterior_depth`` (flat between the
  facets), so the disc-to-line distance is ``disc_to_line``;
* a herniation starts at the disc margin and reaches ``ratio * disc_to_line``
  at its tip; its lateral centre and width are chosen so that its tip (the part
  within 1 mm of the furthest point, plus 1 mm for voxel quantisation) lies in
  the intended zone (or straddles the A/B boundary for AB).

Sizes are drawn with margins from the class boundaries (see ``RATIO_RANGES``) so
that the class read from the rendered masks (:mod:`inference.phantoms.msu_truth`)
equals the intended one despite 1 mm voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.phantoms.lumbar_anatomy import DiscShape, SpineAnatomy
from inference.phantoms.lumbar_raster import VolumeGrid, disc_posterior_margin, frame_block
from inference.phantoms.lumbar_tissue import Tissue
from inference.phantoms.msu_truth import TIP_TOLERANCE_MM

__all__ = [
    "AXIAL_LEVELS",
    "HerniationPlan",
    "RATIO_RANGES",
    "facet_medial_points",
    "paint_facets",
    "paint_herniation",
    "plan_herniation",
]

#: Disc levels that get an axial stack (and may herniate).
AXIAL_LEVELS: tuple[str, ...] = ("L3/L4", "L4/L5", "L5/S1")
#: Reach as a fraction of the disc-to-line distance, per intended size.
RATIO_RANGES: dict[int, tuple[float, float]] = {1: (0.2, 0.36), 2: (0.64, 0.86), 3: (1.16, 1.4)}
#: Probability that a level is normal (size 0).
P_NORMAL = 0.28
_QUANT = 1.0  # mm: voxel + pixel quantisation allowance for the tip


@dataclass(frozen=True)
class HerniationPlan:
    """What is drawn at one disc level (size 0: nothing).

    ``centre_x`` is lateral (+ = patient left) in the disc frame, ``reach`` the
    tip's distance (mm) from the posterior disc margin, ``width`` the lateral
    extent of the base, ``half_height`` the cranio-caudal half extent, and
    ``flat_top`` selects the flat-topped profile used for AB.
    """

    level: str
    size: int
    zone: str | None
    side: str | None
    ratio: float
    reach: float
    centre_x: float
    width: float
    half_height: float
    flat_top: bool

    def intended(self) -> dict[str, object]:
        """The intended class as written to ground truth."""
        return {
            "size": self.size,
            "zone": self.zone,
            "side": self.side,
            "label": "0" if self.size == 0 else f"{self.size}-{self.zone}",
            "ratio": round(self.ratio, 3),
        }


def _profile(u: np.ndarray, flat_top: bool) -> np.ndarray:
    """Reach profile across the herniation (1 at the centre, 0 at the edges)."""
    au = np.clip(np.abs(u), 0.0, 1.0)
    if flat_top:
        return (1.0 - au**4) ** 0.25
    return 1.0 - au**1.5


def _tip_half_fraction(reach: float, flat_top: bool, drop: float) -> float:
    """Half width (fraction of the half base) where the profile is within ``drop`` mm of the top."""
    level = max(1.0 - drop / max(reach, 1e-6), 0.0)
    if flat_top:
        return float((1.0 - level**4) ** 0.25)
    return float((1.0 - level) ** (1.0 / 1.5))


def plan_herniation(rng: np.random.Generator, disc: DiscShape, *, size: int | None = None,
                    zone: str | None = None, side: str | None = None) -> HerniationPlan:
    """Draw the herniation of one level (or a normal disc).

    Parameters
    ----------
    rng
        The herniation random stream.
    disc
        The level's disc (its facet span and disc-to-line distance).
    size, zone, side
        Force the class (tests, figures); drawn when ``None``.

    Returns
    -------
    HerniationPlan
    """
    if size is None:
        size = 0 if rng.random() < P_NORMAL else int(rng.integers(1, 4))
    if size == 0:
        return HerniationPlan(disc.name, 0, None, None, 0.0, 0.0, 0.0, 0.0, 0.0, False)
    if zone is None:
        zones = ["A", "AB", "B"] + (["C"] if size < 3 else [])
        zone = str(rng.choice(zones))
    if zone == "C" and size == 3:
        raise ValueError("zone C herniations are drawn with size 1 or 2 only")
    if zone == "A":
        side = None
    elif side is None:
        side = "left" if rng.random() < 0.5 else "right"
    sign = 1.0 if side == "left" else -1.0
    lo, hi = RATIO_RANGES[size]
    ratio = float(rng.uniform(lo, hi))
    reach = ratio * disc.disc_to_line
    W = disc.facet_half_span
    flat = zone == "AB"
    tip = _tip_half_fraction(reach, flat, TIP_TOLERANCE_MM + _QUANT)
    if zone == "A":
        max_half = W / 2 - 1.5
        width = float(rng.uniform(6.0, 14.0))
        width = min(width, 2 * max_half / max(tip, 1e-6))
        room = max(W / 2 - tip * width / 2 - _QUANT - 0.2, 0.0)
        centre = float(rng.uniform(-room, room))
    elif zone == "B":
        max_half = W / 4 - _QUANT - 0.2
        width = float(rng.uniform(5.0, 12.0))
        width = max(min(width, 2 * max_half / max(tip, 1e-6)), 2.5)
        centre = sign * 0.75 * W
    elif zone == "C":
        width = float(rng.uniform(5.0, 9.0))
        half_tip = tip * width / 2
        centre = sign * (W + half_tip + _QUANT + 0.5 + rng.uniform(0.0, 2.0))
    else:  # AB
        strict = _tip_half_fraction(reach, True, TIP_TOLERANCE_MM - 0.3)
        width = max(float(rng.uniform(8.0, 13.0)), 2 * 2.5 / max(strict, 1e-6))
        centre = sign * (W / 2 + rng.uniform(-0.4, 0.4))
    half_height = max(disc.height / 2 * rng.uniform(0.75, 1.0) + (rng.uniform(0.0, 4.0) if size == 3 else 0.0), 4.0)
    return HerniationPlan(disc.name, size, zone, side, ratio, reach, centre, width, half_height, flat)


def paint_herniation(vol: np.ndarray, grid: VolumeGrid, disc: DiscShape, plan: HerniationPlan) -> None:
    """Paint ``plan`` into the tissue volume (over sac, fat and ligament; not over discs or bone)."""
    if plan.size == 0:
        return
    half = plan.width / 2
    got = frame_block(grid, disc.frame, lo=(plan.centre_x - half, 0.0, -plan.half_height),
                      hi=(plan.centre_x + half, disc.posterior_depth + plan.reach + 1.0, plan.half_height))
    if got is None:
        return
    blk, x, w, v = got
    u = (x - plan.centre_x) / (plan.width / 2)
    g = np.clip(1.0 - (np.abs(v) / plan.half_height) ** 4, 0.0, 1.0) ** 0.25
    reach = plan.reach * _profile(u, plan.flat_top) * g
    base = disc_posterior_margin(disc, x)
    mask = (np.abs(u) <= 1.0) & (w > base) & (w <= disc.posterior_depth + reach) & (np.abs(v) <= plan.half_height)
    sub = vol[blk.slices]
    full = np.broadcast_to(mask, sub.shape)
    keep = np.isin(sub, [Tissue.MARROW, Tissue.CORTEX, Tissue.ANNULUS]) | (sub >= Tissue.FACET_BONE_LEFT) & (
        sub <= Tissue.FACET_FLUID_RIGHT
    )
    sub[full & ~keep] = Tissue.HERNIATION


def facet_medial_points(disc: DiscShape) -> dict[str, tuple[float, float]]:
    """Medial margins ``(x, w)`` of the left and right facets in the disc frame."""
    line = disc.posterior_depth + disc.disc_to_line
    a = disc.facet_asymmetry / 2
    return {"left": (disc.facet_half_span, line + a), "right": (-disc.facet_half_span, line - a)}


def paint_facets(vol: np.ndarray, grid: VolumeGrid, spine: SpineAnatomy) -> None:
    """Paint the left and right facet joints of every disc level (last, over everything)."""
    for disc in spine.discs.values():
        _paint_facet_pair(vol, grid, disc)


def _paint_facet_pair(vol: np.ndarray, grid: VolumeGrid, disc: DiscShape) -> None:
    L, T = disc.facet_length, disc.facet_thickness
    beta = np.radians(disc.facet_angle_deg)
    cb, sb = np.cos(beta), np.sin(beta)
    # centre above the clip line by half the depth of the ellipse's medial extreme
    extreme = (L**2 - T**2) * sb * cb / np.sqrt(L**2 * cb**2 + T**2 * sb**2)
    m = 0.5 * extreme
    qa = cb**2 / L**2 + sb**2 / T**2
    qb = 2 * m * sb * cb * (1 / T**2 - 1 / L**2)
    qc = m**2 * sb**2 / L**2 + m**2 * cb**2 / T**2 - 1.0
    dl_medial = (-qb - np.sqrt(qb**2 - 4 * qa * qc)) / (2 * qa)
    line = disc.posterior_depth + disc.disc_to_line
    reach = disc.facet_half_span + 2 * L + 2.0
    got = frame_block(grid, disc.frame, lo=(-reach, line - 2.0, -10.0), hi=(reach, line + 2 * L + 2.0, 13.0))
    if got is None:
        return
    blk, x, w, v = got
    sub = vol[blk.slices]
    v_centre, v_half = 1.5, 10.0
    shrink = np.clip(1.0 - ((v - v_centre) / v_half) ** 4, 0.0, 1.0)
    for side, (mx, line_w) in facet_medial_points(disc).items():
        s = 1.0 if side == "left" else -1.0
        lat = s * x  # lateral, outwards
        lc = disc.facet_half_span - dl_medial
        dl = lat - lc
        dw = w - (line_w + m)
        e1 = dl * cb + dw * sb
        e2 = -dl * sb + dw * cb
        q = (e1 / L) ** 2 + (e2 / T) ** 2
        inside = (q <= shrink) & (w >= line_w) & (lat > 0)
        slit = inside & (np.abs(e2) <= 0.6)
        bone = Tissue.FACET_BONE_LEFT if side == "left" else Tissue.FACET_BONE_RIGHT
        fluid = Tissue.FACET_FLUID_LEFT if side == "left" else Tissue.FACET_FLUID_RIGHT
        sub[np.broadcast_to(inside, sub.shape)] = bone
        sub[np.broadcast_to(slit, sub.shape)] = fluid
