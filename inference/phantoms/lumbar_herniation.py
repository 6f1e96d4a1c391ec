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
    "paint_facet_pair",
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


def _reach_profile(dx: np.ndarray, plan: HerniationPlan) -> np.ndarray:
    """Reach (mm) at lateral offset ``dx`` from the herniation's centre.

    A parabola ``reach - k dx^2`` (its top is round, so 1 mm voxels lose
    little of the tip; its sides fall fast, so the tip is narrow), or for AB a
    flat-topped superellipse that straddles the A/B boundary.
    """
    half = plan.width / 2
    if plan.flat_top:
        u = np.clip(np.abs(dx) / half, 0.0, 1.0)
        return plan.reach * (1.0 - u**4) ** 0.25
    k = plan.reach / half**2
    return np.clip(plan.reach - k * dx**2, 0.0, None)


def _tip_half_width(reach: float, half: float, drop: float) -> float:
    """Half width of the parabola's part within ``drop`` mm of its top."""
    return half * float(np.sqrt(min(drop / max(reach, 1e-6), 1.0)))


def plan_herniation(rng: np.random.Generator, disc: DiscShape, *, size: int | None = None,
                    zone: str | None = None, side: str | None = None) -> HerniationPlan:
    """Draw the herniation of one level (or a normal disc) for a forced or drawn class.

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
    drop = TIP_TOLERANCE_MM + _QUANT
    # largest base half width whose tip stays within `room` of its centre
    def fit(half: float, room: float) -> float:
        return min(half, room / max(np.sqrt(min(drop / reach, 1.0)), 1e-6))

    if zone == "A":
        half = fit(float(rng.uniform(3.0, 7.0)), W / 2 - _QUANT - 0.3)
        room = max(W / 2 - _QUANT - 0.3 - _tip_half_width(reach, half, drop), 0.0)
        centre = float(rng.uniform(-room, room))
    elif zone == "B":
        half = max(fit(float(rng.uniform(2.5, 6.5)), W / 4 - _QUANT - 0.3), 1.5)
        centre = sign * 0.75 * W
    elif zone == "C":
        half = float(rng.uniform(2.5, 5.0))
        centre = sign * (W + _tip_half_width(reach, half, drop) + _QUANT + 0.5 + rng.uniform(0.0, 2.0))
    else:  # AB: flat top wide enough that the part within the tolerance crosses W/2
        level = max(1.0 - (TIP_TOLERANCE_MM - 0.3) / reach, 0.0)
        strict = (1.0 - level**4) ** 0.25
        half = max(float(rng.uniform(4.0, 6.5)), 2.5 / max(strict, 1e-6))
        centre = sign * (W / 2 + rng.uniform(-0.4, 0.4))
    width = 2 * half
    flat = zone == "AB"
    half_height = max(disc.height / 2 * rng.uniform(0.8, 1.0) + (rng.uniform(0.0, 2.0) if size == 3 else 0.0), 4.5)
    return HerniationPlan(disc.name, size, zone, side, ratio, reach, centre, width, half_height, flat)


def paint_herniation(
    vol: np.ndarray, grid: VolumeGrid, disc: DiscShape, plan: HerniationPlan
) -> tuple[slice, slice, slice] | None:
    """Paint ``plan`` into the tissue volume (over sac, fat and ligament; not over discs or bone).

    Returns
    -------
    tuple of slice or None
        The block of the volume that was evaluated (``None`` for a normal disc).
    """
    if plan.size == 0:
        return None
    half = plan.width / 2
    got = frame_block(grid, disc.frame, lo=(plan.centre_x - half, 0.0, -plan.half_height),
                      hi=(plan.centre_x + half, disc.posterior_depth + plan.reach + 1.0, plan.half_height))
    if got is None:
        return None
    blk, x, w, v = got
    dx = x - plan.centre_x
    # elliptic cranio-caudal profile: the area peaks clearly on the disc's mid-plane
    g = np.sqrt(np.clip(1.0 - (v / plan.half_height) ** 2, 0.0, 1.0))
    reach = _reach_profile(dx, plan) * g
    base = disc_posterior_margin(disc, x)
    mask = (np.abs(dx) <= plan.width / 2) & (w > base) & (w <= disc.posterior_depth + reach) & (
        np.abs(v) <= plan.half_height
    )
    sub = vol[blk.slices]
    full = np.broadcast_to(mask, sub.shape)
    keep = np.isin(sub, [Tissue.MARROW, Tissue.CORTEX, Tissue.ANNULUS]) | (sub >= Tissue.FACET_BONE_LEFT) & (
        sub <= Tissue.FACET_FLUID_RIGHT
    )
    sub[full & ~keep] = Tissue.HERNIATION
    return blk.slices


def facet_medial_points(disc: DiscShape) -> dict[str, tuple[float, float]]:
    """Medial margins ``(x, w)`` of the left and right facets in the disc frame."""
    line = disc.posterior_depth + disc.disc_to_line
    a = disc.facet_asymmetry / 2
    return {"left": (disc.facet_half_span, line + a), "right": (-disc.facet_half_span, line - a)}


def paint_facets(vol: np.ndarray, grid: VolumeGrid, spine: SpineAnatomy) -> None:
    """Paint the left and right facet joints of every disc level (last, over everything)."""
    for disc in spine.discs.values():
        paint_facet_pair(vol, grid, disc)


def paint_facet_pair(vol: np.ndarray, grid: VolumeGrid, disc: DiscShape) -> None:
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
