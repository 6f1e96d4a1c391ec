"""3D pelvis anatomy of the SIJ phantom: sacrum, ilia, joints, soft tissue and lesions.

The anatomy lives in its own "sacral frame" (millimetres):

* ``u``: towards the patient's left (the LPS ``x`` axis when the plan is perfect),
* ``v``: cranial, along the long axis of the sacrum,
* ``w``: perpendicular to the sacrum, pointing posteriorly.

The origin is at the midline, at the level and depth of the centre of the
cartilaginous part of the sacroiliac joints. A semi-coronal slice is a plane of
constant ``w`` (up to the seeded planning error applied by the renderer).

Every structure is an implicit function of ``(u, v, w)``: the renderer evaluates
:func:`classify` at voxel centres, which gives the tissue class (for intensities)
and the bone labels, fat-metaplasia and oedema masks (for the label files). This
is pure numpy, so it is fast and deterministic.

Joint model: the joint line of each side is ``|u| = J(v, w)``. The articular
(auricular) surface is the union of two rectangles in the ``(v, w)`` plane: the
cartilaginous part (antero-inferior, narrow gap ``gap_cart``) and the ligamentous
part (postero-superior, wide gap ``gap_lig`` filled with interosseous ligament).
Outside them the gap widens quadratically with the distance to the surface, so the
bones part (sciatic notch below, alae/iliac wings above).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import IntEnum

import numpy as np

from inference.labels import SijLabel

logger = logging.getLogger(__name__)

__all__ = [
    "Lesion",
    "Rect",
    "SijAnatomy",
    "TissueMaps",
    "Tissue",
    "classify",
    "sample_anatomy",
]


class Tissue(IntEnum):
    """Tissue classes that decide the intensity of a voxel (not the label contract)."""

    AIR = 0
    FAT = 1
    MUSCLE = 2
    MARROW = 3
    CORTEX = 4
    CARTILAGE = 5
    LIGAMENT = 6
    FORAMEN = 7  #: sacral foramen: fat around a nerve root
    CSF = 8
    DISC = 9
    VESSEL = 10
    BOWEL = 11
    SCLEROSIS = 12  #: sclerotic subchondral bone


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle in the ``(v, w)`` plane (centre and half sizes, mm)."""

    v: float
    w: float
    half_v: float
    half_w: float

    def distance(self, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Euclidean distance (mm) of points to the rectangle (0 inside)."""
        dv = np.maximum(np.abs(v - self.v) - self.half_v, 0.0)
        dw = np.maximum(np.abs(w - self.w) - self.half_w, 0.0)
        return np.sqrt(dv * dv + dw * dw)


@dataclass(frozen=True)
class Lesion:
    """A subchondral lesion (fat metaplasia or oedema) against one joint surface.

    An ellipsoid with semi-axes ``r_v``, ``r_w`` along the joint and ``depth`` into
    the bone, whose centre lies on the articular surface, limited to marrow of
    ``bone`` on ``side``.
    """

    side: str  #: "left" | "right"
    bone: str  #: "iliac" | "sacral"
    v: float
    w: float
    r_v: float
    r_w: float
    depth: float
    phase: tuple[float, float, float]  #: phases of the irregular border
    intensity: float = 1.0  #: relative conspicuity (oedema on STIR)


@dataclass(frozen=True)
class SijAnatomy:
    """All seeded parameters of one pelvis (mm unless stated)."""

    joint_offset: tuple[float, float]  #: J at (v=0, w=0), (left, right)
    joint_slope: tuple[float, float]  #: dJ/dv (coronal obliquity: supero-lateral)
    joint_curve: float  #: d2J/dv2 / 2
    joint_axial: float  #: dJ/dw (< 0: the joint runs postero-medially)
    joint_wave: tuple[float, float, float]  #: undulation of the surface: amplitude, wavelength (mm), phase
    cart: Rect  #: cartilaginous part of the articular surface
    lig: Rect  #: ligamentous part
    gap_cart: float
    gap_lig: float
    k_sacral: float  #: how fast the sacral edge retreats away from the surface
    k_iliac: float  #: how fast the ilium retreats into the sciatic notch
    notch_depth: float
    iliac_crest: float
    gluteal_plane: float
    obturator: float  #: thickness of obturator internus lining the lower pelvic wall
    sacral_bend: float  #: forward curvature of the lower sacrum (1/mm)
    bowel: tuple[tuple[float, float, float, float], ...]  #: (u, v, w, radius) loops in front
    iliac_thickness: float
    sacrum_top: float  #: S1 endplate (v)
    sacrum_bottom: float
    sacrum_front_top: float  #: anterior surface depth (-w) at the S1 level
    sacrum_back_top: float
    cortex: float
    iliac_plate: float  #: iliac subchondral plate thickness relative to ``cortex``
    disc_height: float
    body_half_width: float
    subcut_fat: float
    foramina: tuple[tuple[float, float, float], ...]  #: (|u|, v, radius)
    fm: tuple[Lesion, ...]
    oedema: tuple[Lesion, ...]
    severity: float  #: the latent inflammatory burden that drove the lesion plan
    marrow_t1: float  #: relative T1 marrow signal (fattier with age)
    sclerosis: tuple[Lesion, ...] = ()  #: subchondral sclerosis (dark on both sequences; bone label)


@dataclass
class TissueMaps:
    """What :func:`classify` returns, arrays of the input shape."""

    tissue: np.ndarray  #: uint8 :class:`Tissue`
    bone: np.ndarray  #: uint8 SijLabel: BACKGROUND, SACRUM, ILIUM_LEFT, ILIUM_RIGHT
    fm: np.ndarray  #: bool, fat metaplasia
    oedema: np.ndarray  #: bool, bone-marrow oedema
    oedema_level: np.ndarray  #: float32 relative oedema conspicuity (0 outside)


QUADRANT_SIDES = ("left", "right")
QUADRANT_BONES = ("iliac", "sacral")
QUADRANT_HALVES = ("upper", "lower")


def _lesion(
    rng: np.random.Generator,
    side: str,
    bone: str,
    half: str,
    region: Rect,
    *,
    r_v: tuple[float, float],
    r_w: tuple[float, float],
    depth: tuple[float, float],
    intensity: float = 1.0,
) -> Lesion:
    """Place one lesion in the upper or lower half of ``region``."""
    lo, hi = region.v - region.half_v, region.v + region.half_v
    margin = 0.15 * (hi - lo)
    if half == "upper":
        v = rng.uniform(region.v + margin, hi - margin)
    else:
        v = rng.uniform(lo + margin, region.v - margin)
    w = rng.uniform(region.w - region.half_w + 2.0, region.w + region.half_w - 2.0)
    size_v = float(rng.uniform(*r_v))
    size_w = float(rng.uniform(*r_w))
    size_depth = float(rng.uniform(*depth))
    p0, p1, p2 = (float(p) for p in rng.uniform(0, 2 * np.pi, 3))
    return Lesion(
        side=side,
        bone=bone,
        v=float(v),
        w=float(w),
        r_v=size_v,
        r_w=size_w,
        depth=size_depth,
        phase=(p0, p1, p2),
        intensity=float(intensity),
    )


def sample_anatomy(rng: np.random.Generator) -> SijAnatomy:
    """Draw one pelvis and its lesion plan.

    The lesion plan follows a latent severity: about 40 % of pelves are
    "non-inflammatory" (rarely any oedema; sometimes a small degenerative FM
    focus, iliac and lower), the rest have a severity in [0, 1] that raises the
    chance of FM and oedema in each quadrant. The axSpA label itself is drawn
    later from the *rendered* lesion burden (see :mod:`inference.phantoms.sij_truth`).
    """
    j0 = float(rng.uniform(38.0, 48.0))
    asym = float(rng.uniform(-2.0, 2.0))
    slope = float(rng.uniform(0.22, 0.42))
    cart = Rect(
        v=float(rng.uniform(-12.0, -6.0)),
        w=float(rng.uniform(-6.0, -3.0)),
        half_v=float(rng.uniform(22.0, 30.0)),
        half_w=float(rng.uniform(9.0, 12.0)),
    )
    lig_w0 = cart.w + cart.half_w - 3.0
    lig = Rect(
        v=float(cart.v + cart.half_v * rng.uniform(0.9, 1.2)),
        w=float(lig_w0 + 9.0),
        half_v=float(rng.uniform(14.0, 20.0)),
        half_w=9.0,
    )
    # Lesion plan.
    inflammatory = rng.random() > 0.4
    severity = float(rng.uniform(0.0, 1.0)) if inflammatory else 0.0
    fm: list[Lesion] = []
    oedema: list[Lesion] = []
    for side in QUADRANT_SIDES:
        for bone in QUADRANT_BONES:
            for half in QUADRANT_HALVES:
                if inflammatory:
                    p_fm = 0.08 + 0.62 * severity
                    p_oe = 0.04 + 0.5 * severity
                else:
                    degenerative = bone == "iliac" and half == "lower"
                    p_fm = 0.12 if degenerative else 0.02
                    p_oe = 0.03
                if rng.random() < p_fm:
                    fm.append(
                        _lesion(
                            rng, side, bone, half, cart,
                            r_v=(5.0, 12.0), r_w=(3.0, 11.0), depth=(3.0, 9.0),
                        )
                    )
                if rng.random() < p_oe:
                    oedema.append(
                        _lesion(
                            rng, side, bone, half, cart,
                            r_v=(6.0, 15.0), r_w=(4.0, 12.0), depth=(4.0, 14.0),
                            intensity=float(rng.uniform(0.6, 1.0)),
                        )
                    )
    top = float(rng.uniform(32.0, 44.0))
    foramina = []
    for n, (dv, r) in enumerate(((14.0, 5.5), (34.0, 4.8), (52.0, 4.0), (67.0, 3.2))):
        foramina.append((float(rng.uniform(20.0, 25.0) - 2.0 * n), top - dv - float(rng.uniform(-2, 2)), r))
    anat = SijAnatomy(
        joint_offset=(j0 + asym / 2, j0 - asym / 2),
        joint_slope=(slope + float(rng.uniform(-0.03, 0.03)), slope + float(rng.uniform(-0.03, 0.03))),
        joint_curve=float(rng.uniform(-0.0008, 0.0008)),
        joint_axial=float(rng.uniform(-0.5, -0.25)),
        joint_wave=(float(rng.uniform(0.3, 1.2)), float(rng.uniform(20.0, 40.0)), float(rng.uniform(0, 2 * np.pi))),
        cart=cart,
        lig=lig,
        gap_cart=float(rng.uniform(1.6, 3.0)),
        gap_lig=float(rng.uniform(5.5, 9.0)),
        k_sacral=float(rng.uniform(0.02, 0.04)),
        k_iliac=float(rng.uniform(0.04, 0.08)),
        notch_depth=float(rng.uniform(30.0, 45.0)),
        iliac_crest=float(rng.uniform(85.0, 110.0)),
        gluteal_plane=float(rng.uniform(12.0, 25.0)),
        obturator=float(rng.uniform(10.0, 18.0)),
        sacral_bend=float(rng.uniform(0.003, 0.008)),
        bowel=tuple(
            (
                float(rng.uniform(-50, 50)),
                float(rng.uniform(-70, 10)),
                float(rng.uniform(-60, -30)),
                float(rng.uniform(12, 22)),
            )
            for _ in range(int(rng.integers(3, 7)))
        ),
        iliac_thickness=float(rng.uniform(24.0, 34.0)),
        sacrum_top=top,
        sacrum_bottom=float(rng.uniform(-95.0, -80.0)),
        sacrum_front_top=float(rng.uniform(20.0, 27.0)),
        sacrum_back_top=float(rng.uniform(18.0, 24.0)),
        cortex=float(rng.uniform(0.9, 1.5)),
        iliac_plate=float(rng.uniform(1.3, 2.0)),
        disc_height=float(rng.uniform(7.0, 11.0)),
        body_half_width=float(rng.uniform(150.0, 195.0)),
        subcut_fat=float(rng.uniform(10.0, 35.0)),
        foramina=tuple(foramina),
        fm=tuple(fm),
        oedema=tuple(oedema),
        severity=severity,
        marrow_t1=float(rng.uniform(0.62, 0.78)),
    )
    # Subchondral sclerosis (degenerative, mostly iliac and antero-inferior): a
    # confounder that is dark on both sequences and stays labelled as bone. Drawn
    # last so that the draws above do not depend on it.
    sclerosis: list[Lesion] = []
    for side in QUADRANT_SIDES:
        if rng.random() < (0.15 if inflammatory else 0.3):
            sclerosis.append(
                _lesion(rng, side, "iliac", "lower", cart, r_v=(8.0, 18.0), r_w=(5.0, 12.0), depth=(2.0, 5.0))
            )
    return replace(anat, sclerosis=tuple(sclerosis))


def _lesion_mask(
    lesion: Lesion, u: np.ndarray, v: np.ndarray, w: np.ndarray, depth: np.ndarray
) -> np.ndarray:
    """Points (already restricted to the lesion's bone and side) inside ``lesion``."""
    p0, p1, p2 = lesion.phase
    wobble = 1.0 + 0.18 * np.sin(v / 4.0 + p0) * np.sin(w / 3.5 + p1) + 0.1 * np.sin(u / 2.5 + p2)
    r2 = ((v - lesion.v) / lesion.r_v) ** 2 + ((w - lesion.w) / lesion.r_w) ** 2
    r2 = r2 + (depth / lesion.depth) ** 2
    return (r2 <= wobble * wobble) & (depth >= 0.0)


def _min_of(first: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """Element-wise minimum of arrays, in place in ``first`` (no stacked copy)."""
    for other in others:
        np.minimum(first, other, out=first)
    return first


def classify(anat: SijAnatomy, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> TissueMaps:
    """Tissue class, bone label and lesion masks at points of the sacral frame.

    Parameters
    ----------
    anat
        The pelvis.
    u, v, w
        Coordinates (mm, float32 or float64) of the points, any common shape.

    Returns
    -------
    TissueMaps
        Arrays of the same shape.
    """
    shape = u.shape
    au = np.abs(u)
    left = u > 0
    j0 = np.where(left, np.float32(anat.joint_offset[0]), np.float32(anat.joint_offset[1]))
    slope = np.where(left, np.float32(anat.joint_slope[0]), np.float32(anat.joint_slope[1]))
    joint = j0 + slope * v + np.float32(anat.joint_curve) * v * v + np.float32(anat.joint_axial) * w
    # Undulating (auricular) articular surface.
    amp, wavelength, phase = anat.joint_wave
    smooth_joint = joint
    joint = joint + amp * np.sin(v * np.float32(2 * np.pi / wavelength) + np.where(left, phase, -phase))
    d_cart = anat.cart.distance(v, w)
    d_lig = anat.lig.distance(v, w)
    half_gap_s = np.minimum(anat.gap_cart / 2 + anat.k_sacral * d_cart**2, anat.gap_lig / 2 + anat.k_sacral * d_lig**2)
    sac_edge = joint - half_gap_s
    # Ilium: the medial surface follows the joint; above the joint it parts slowly
    # (iliac wing), below it retreats into the greater sciatic notch, and in front
    # of / behind the articular surface it retreats with the distance in w.
    cart_low = anat.cart.v - anat.cart.half_v
    w_out = np.minimum(
        np.maximum(np.abs(w - anat.cart.w) - anat.cart.half_w, 0.0),
        np.maximum(np.abs(w - anat.lig.w) - anat.lig.half_w, 0.0),
    )
    above = np.maximum(v - (anat.lig.v + anat.lig.half_v), 0.0)
    below = np.maximum(cart_low - v, 0.0)
    notch = np.minimum(anat.k_iliac * below * below, anat.notch_depth)
    in_lig = (d_lig <= 0.0) & (d_cart > 0.0)
    half_gap_i = np.where(in_lig, anat.gap_lig / 2, anat.gap_cart / 2)
    il_med = joint + half_gap_i + 0.35 * above + notch + 0.08 * w_out * w_out
    thick = anat.iliac_thickness - 0.3 * np.clip(v - 15.0, 0.0, 50.0) + 0.5 * np.maximum(-20.0 - v, 0.0)
    il_lat = smooth_joint + anat.gap_cart / 2 + thick
    il_low = -140.0
    top, bottom = anat.sacrum_top, anat.sacrum_bottom
    t = np.clip((v - bottom) / (top - bottom), 0.0, 1.0)
    # The lower sacrum curves forwards (sacral kyphosis) out of the semi-coronal slab.
    bend = anat.sacral_bend * np.minimum(v + 15.0, 0.0) ** 2
    front = -(6.0 + (anat.sacrum_front_top - 6.0) * t) - bend  # anterior surface (w)
    back = 5.0 + (anat.sacrum_back_top - 5.0) * t - bend
    taper = 10.0 + 0.9 * (v - bottom)
    top_eff = top - 0.3 * np.maximum(au - 22.0, 0.0)  # alae slope down laterally

    tissue = np.full(shape, Tissue.FAT, dtype=np.uint8)
    bone = np.zeros(shape, dtype=np.uint8)

    # Body outline and subcutaneous fat; muscles.
    half_width = anat.body_half_width - 0.12 * v
    inner = au < half_width - anat.subcut_fat
    lateral_muscle = inner & (au > il_lat - 6.0)  # glutei
    plane = np.abs(au - (il_lat + anat.gluteal_plane)) < 1.5  # fat plane between glutei
    plane &= (v < anat.iliac_crest - 10.0) & (v > anat.cart.v - anat.cart.half_v - 60.0)
    tissue[lateral_muscle & ~plane] = Tissue.MUSCLE
    upper = inner & (v > top - 12.0) & (au < il_med + 2.0)  # psoas, iliacus, erector spinae
    plane2 = (np.abs(au - 0.55 * (smooth_joint + 25.0)) < 1.2) & (v < top + 70.0)
    tissue[upper & ~plane2] = Tissue.MUSCLE
    behind = inner & (w > back - 2.0) & (au < joint - 4.0) & (v > bottom + 15.0)  # multifidus
    tissue[behind] = Tissue.MUSCLE
    cart_low_w = v < anat.cart.v - anat.cart.half_v - 5.0
    gmax = inner & cart_low_w & (w > back + 2.0 - 0.5 * np.maximum(au - 40.0, 0.0))  # gluteus maximus
    tissue[gmax] = Tissue.MUSCLE
    piriformis = inner & (v > cart_low - 38.0) & (v < cart_low - 6.0) & (au > sac_edge - 2.0) & (
        w > front - 6.0
    ) & (w < front + 18.0)
    tissue[piriformis] = Tissue.MUSCLE
    for bu, bv, bw, br in anat.bowel:
        loop = (u - bu) ** 2 + (v - bv) ** 2 + ((w - bw) * 1.5) ** 2 < br * br
        tissue[loop & inner] = Tissue.BOWEL
    # Internal iliac vessels in front of the joints.
    vessel = ((au - (smooth_joint - 12.0)) ** 2 + (w - (front - 8.0)) ** 2 < 16.0) & (v > bottom + 30.0)
    tissue[vessel] = Tissue.VESSEL

    # L5 vertebra and the L5/S1 disc above the sacrum.
    l5_d2 = ((w - (front + 13.0)) / 15.0) ** 2
    l5_u2 = (au / 25.0) ** 2
    l5_d4 = l5_d2 * l5_d2
    body_w = l5_u2 * l5_u2 + l5_d4 < 1.0
    disc = body_w & (v >= top) & (v < top + anat.disc_height)
    tissue[disc] = Tissue.DISC
    l5 = body_w & (v >= top + anat.disc_height) & (v < top + anat.disc_height + 30.0)
    slack_l5 = np.minimum(
        25.0 * np.sqrt(np.sqrt(np.maximum(1.0 - l5_d4[l5], 0.0))) - au[l5], v[l5] - (top + anat.disc_height)
    )
    tissue[l5] = np.where(slack_l5 < anat.cortex, Tissue.CORTEX, Tissue.MARROW)

    # Joint space: cartilage (cartilaginous part) or interosseous ligament.
    in_gap = (au >= sac_edge) & (au <= il_med) & (v > bottom) & inner
    tissue[in_gap & (d_lig <= 0.0)] = Tissue.LIGAMENT
    tissue[in_gap & (d_cart <= 0.0)] = Tissue.CARTILAGE

    # Sacrum.
    sac_lim = np.minimum(sac_edge, taper)
    slack_s = _min_of(sac_lim - au, top_eff - v, v - bottom, w - front, back - w)
    sacrum = slack_s > 0
    # Ilia.
    # The iliac subchondral plate is thicker than the sacral one (as in adults).
    slack_i = _min_of(
        (au - il_med) / anat.iliac_plate, il_lat - au, v - il_low, anat.iliac_crest - v, w + 34.0, 40.0 - w
    )
    ilium = (slack_i > 0) & ~sacrum
    between = (au > il_med) & (au < il_lat) & inner & ~ilium & (tissue == Tissue.FAT)
    tissue[between] = Tissue.MUSCLE
    obturator = inner & ~ilium & (au > il_med - anat.obturator) & (au <= il_med) & (v < cart_low - 25.0)
    obturator &= (tissue == Tissue.FAT) & ~sacrum
    tissue[obturator] = Tissue.MUSCLE
    for mask, slack in ((sacrum, slack_s), (ilium, slack_i)):
        tissue[mask] = np.where(slack[mask] < anat.cortex, Tissue.CORTEX, Tissue.MARROW)
    bone[sacrum] = SijLabel.SACRUM
    bone[ilium & left] = SijLabel.ILIUM_LEFT
    bone[ilium & ~left] = SijLabel.ILIUM_RIGHT

    # Holes in the sacrum: foramina and the sacral canal (not bone).
    holes = np.zeros(shape, dtype=bool)
    for fu, fv, fr in anat.foramina:
        holes |= (au - fu) ** 2 + (v - fv) ** 2 < fr * fr
    canal_hw = 5.0 + 6.0 * t
    canal = (au / canal_hw) ** 2 + ((w - (back - 8.5)) / 4.5) ** 2 < 1.0
    canal &= v > bottom + 18.0
    holes &= sacrum
    canal &= sacrum
    tissue[holes] = Tissue.FORAMEN
    tissue[canal] = np.where(v[canal] > top - 32.0, Tissue.CSF, Tissue.FORAMEN)
    bone[holes | canal] = SijLabel.BACKGROUND
    tissue[au >= half_width] = Tissue.AIR

    # Lesions: subchondral marrow only, so each lesion stays wrapped in its bone's cortex.
    marrow = (tissue == Tissue.MARROW) & (bone != SijLabel.BACKGROUND)
    fm = np.zeros(shape, dtype=bool)
    oedema = np.zeros(shape, dtype=bool)
    oedema_level = np.zeros(shape, dtype=np.float32)
    near = marrow & (np.minimum(sac_edge - au, au - il_med) > -30.0)
    idx = np.flatnonzero(near)
    sclerosis = np.zeros(shape, dtype=bool)
    if idx.size and (anat.fm or anat.oedema or anat.sclerosis):
        uu, vv, ww = u.ravel()[idx], v.ravel()[idx], w.ravel()[idx]
        bb = bone.ravel()[idx]
        depth_s = (sac_edge.ravel()[idx] - au.ravel()[idx]).astype(np.float32)
        depth_i = (au.ravel()[idx] - il_med.ravel()[idx]).astype(np.float32)
        for lesions, out in ((anat.fm, fm), (anat.oedema, oedema), (anat.sclerosis, sclerosis)):
            flat = out.reshape(-1)
            for lesion in lesions:
                on_side = (uu > 0) if lesion.side == "left" else (uu <= 0)
                if lesion.bone == "sacral":
                    sel = on_side & (bb == SijLabel.SACRUM)
                    depth = depth_s
                else:
                    sel = on_side & (bb != SijLabel.SACRUM)
                    depth = depth_i
                hit = sel & _lesion_mask(lesion, uu, vv, ww, depth)
                flat[idx[hit]] = True
                if out is oedema:
                    lev = oedema_level.reshape(-1)
                    lev[idx[hit]] = np.maximum(lev[idx[hit]], lesion.intensity)
    tissue[sclerosis & ~fm & ~oedema] = Tissue.SCLEROSIS
    return TissueMaps(tissue=tissue, bone=bone, fm=fm, oedema=oedema, oedema_level=oedema_level)
