"""Seeded 3D anatomy of the lumbar spine in patient coordinates (LPS, mm).

Pure geometry, no pixels: a chain of rigid vertebral bodies (T11 to the sacrum)
joined by wedge-shaped discs, with a lordosis, sacral slope and sizes drawn from
the seed. Every rigid part has a :class:`Frame` whose lateral axis is the
patient's left (+x); ``u`` points cranially along the part's axis and ``p``
posteriorly, perpendicular to ``u`` in the sagittal plane. Local coordinates of a
point are ``(x, w, v)``: lateral (+ left), posterior, cranial.

Soft tissue that follows the spine (dural sac, muscles, skin) uses the smooth
curves :attr:`SpineAnatomy.body_curve` and :attr:`SpineAnatomy.canal_curve`,
tabulated as functions of the world ``z`` (superior) coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

__all__ = [
    "DiscShape",
    "Frame",
    "SpineAnatomy",
    "VertebraShape",
    "build_spine",
    "frame_from_tilt",
    "rotated_spine",
]

#: Rigid bodies of the chain, cranial to caudal (S2-S5 are the fused sacrum below S1).
VERTEBRAE: tuple[str, ...] = ("T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1", "S2", "S3", "S4", "S5")
#: Mobile discs, cranial to caudal (the sacral remnants are not listed).
DISCS: tuple[str, ...] = ("T11/T12", "T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")

# nominal sizes (mm) per vertebra: body height, width (LR), depth (AP)
_BODY = {
    "T11": (22.0, 38.0, 29.0), "T12": (23.5, 40.0, 30.0), "L1": (25.0, 43.0, 31.0),
    "L2": (26.0, 45.0, 32.0), "L3": (27.0, 47.0, 33.0), "L4": (27.0, 49.0, 34.0),
    "L5": (25.5, 50.0, 34.0), "S1": (24.0, 48.0, 32.0), "S2": (20.0, 40.0, 26.0),
    "S3": (17.0, 32.0, 20.0), "S4": (14.0, 24.0, 15.0), "S5": (11.0, 16.0, 11.0),
}
# nominal disc heights at the centre (mm)
_DISC_HEIGHT = {
    "T11/T12": 6.0, "T12/L1": 7.0, "L1/L2": 8.0, "L2/L3": 9.0,
    "L3/L4": 10.0, "L4/L5": 11.0, "L5/S1": 10.0,
}
# share of the lumbar lordosis taken by each mobile disc (sums to 1)
_LORDOSIS_SHARE = {
    "T11/T12": -0.06, "T12/L1": 0.02, "L1/L2": 0.08, "L2/L3": 0.14,
    "L3/L4": 0.19, "L4/L5": 0.26, "L5/S1": 0.37,
}
# sacral kyphosis below S1 (degrees added per segment)
_SACRAL_BEND = {"S2": 6.0, "S3": 14.0, "S4": 16.0, "S5": 16.0}
_SACRAL_GAP = 2.0  # fused remnant discs between sacral segments (mm)


@dataclass(frozen=True)
class Frame:
    """A rigid frame in LPS: origin, cranial axis ``u`` and posterior axis ``p``.

    The lateral axis is always ``(1, 0, 0)`` (patient left); ``u`` and ``p`` lie
    in the sagittal plane.
    """

    origin: np.ndarray
    u: np.ndarray
    p: np.ndarray

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """``(..., 3)`` LPS points to ``(..., 3)`` local ``(x, w, v)``."""
        d = np.asarray(points, dtype=float) - self.origin
        return np.stack([d[..., 0], d @ self.p, d @ self.u], axis=-1)

    def to_world(self, local: np.ndarray) -> np.ndarray:
        """``(..., 3)`` local ``(x, w, v)`` to LPS points."""
        local = np.asarray(local, dtype=float)
        return (
            self.origin
            + local[..., 0:1] * np.array([1.0, 0.0, 0.0])
            + local[..., 1:2] * self.p
            + local[..., 2:3] * self.u
        )

    @property
    def tilt_deg(self) -> float:
        """Anterior tilt of ``u`` from the superior axis (degrees)."""
        return float(np.degrees(np.arctan2(-self.u[1], self.u[2])))


def frame_from_tilt(origin: np.ndarray, tilt_deg: float) -> Frame:
    """Frame at ``origin`` whose cranial axis leans ``tilt_deg`` anteriorly."""
    t = np.radians(tilt_deg)
    u = np.array([0.0, -np.sin(t), np.cos(t)])
    p = np.array([0.0, np.cos(t), np.sin(t)])
    return Frame(np.asarray(origin, dtype=float), u, p)


@dataclass(frozen=True)
class VertebraShape:
    """One rigid vertebra (or sacral segment) in its own frame.

    The body is a "D": a half ellipse anteriorly (semi-axes ``half_width``,
    ``anterior_depth``) and a flat-backed superellipse posteriorly
    (``posterior_depth``), between ``v = -height/2`` and ``+height/2`` with
    concave endplates.
    """

    name: str
    frame: Frame
    height: float
    half_width: float
    anterior_depth: float
    posterior_depth: float
    endplate_concavity: float
    canal_half_width: float
    canal_depth: float  #: AP depth of the bony canal behind the body (mm)
    spinous_length: float
    transverse_length: float

    @property
    def is_sacral(self) -> bool:
        return self.name.startswith("S")


@dataclass(frozen=True)
class DiscShape:
    """One mobile disc between two vertebrae, in its mid frame.

    ``frame`` sits at the disc centre with ``u`` the mean of the neighbours' axes.
    The disc fills the space between the lower vertebra's upper endplate and the
    upper vertebra's lower endplate, inside the "D" cross-section
    (``half_width``, ``anterior_depth``, ``posterior_depth``); the nucleus is a
    smaller ellipsoid inside it. ``facet_*`` place the facet joints of the level
    in the same frame: the medial margins at ``x = +-facet_half_span`` and the
    intra-facet line at ``w = posterior_depth + disc_to_line``.
    """

    name: str
    lower: str
    upper: str
    frame: Frame
    height: float
    half_width: float
    anterior_depth: float
    posterior_depth: float
    nucleus_scale: float
    degeneration: float  #: 0 healthy .. 1 dark, flattened nucleus
    disc_to_line: float
    facet_half_span: float
    facet_angle_deg: float  #: long axis of the joint from the lateral axis towards posterior
    facet_length: float
    facet_thickness: float
    facet_asymmetry: float  #: mm the left facet sits more posterior than the right
    bulge: float = 0.0  #: diffuse posterior bulge of a degenerated disc (mm, at the midline)


@dataclass
class SpineAnatomy:
    """The whole seeded anatomy; see :func:`build_spine`."""

    vertebrae: dict[str, VertebraShape]
    discs: dict[str, DiscShape]
    body_curve: np.ndarray  #: (n, 3) dense LPS points through the body centres, caudal to cranial
    canal_curve: np.ndarray  #: (n, 3) dense LPS points along the canal centre
    sac_half_width: float
    sac_depth: float
    sac_end: str  #: segment where the thecal sac ends
    conus_level: float  #: z (mm) of the conus tip
    subcutaneous_fat: float
    back_depth: float  #: canal centre to the skin of the back (mm)
    front_depth: float  #: body centre to the anterior abdominal wall (mm)
    body_half_width: float
    psoas_scale: float
    muscle_fat: float  #: fatty infiltration of the paraspinal muscles 0..1
    extras: dict[str, float] = field(default_factory=dict)

    def curve_at(self, curve: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``y`` and the anterior tilt (radians) of ``curve`` at heights ``z``."""
        zs, ys = curve[:, 2], curve[:, 1]
        y = np.interp(z, zs, ys)
        dy = np.gradient(ys, zs)
        tilt = np.arctan(-np.interp(z, zs, dy))
        return y, tilt


def _smooth_curve(points: np.ndarray, n: int = 400) -> np.ndarray:
    """Dense points of a curve through ``points`` (sorted by z), linear then smoothed."""
    order = np.argsort(points[:, 2])
    pts = points[order]
    z = np.linspace(pts[0, 2], pts[-1, 2], n)
    y = np.interp(z, pts[:, 2], pts[:, 1])
    kernel = np.hanning(31)
    kernel /= kernel.sum()
    y_pad = np.pad(y, len(kernel) // 2, mode="reflect", reflect_type="odd")
    y_smooth = np.convolve(y_pad, kernel, mode="valid")
    return np.stack([np.zeros(n), y_smooth, z], axis=1)


def build_spine(rng: np.random.Generator) -> SpineAnatomy:
    """Draw one spine: sizes, lordosis, sacral slope, canal and body habitus.

    Parameters
    ----------
    rng
        The anatomy's random stream (same stream, same anatomy).

    Returns
    -------
    SpineAnatomy
        Origin of the LPS frame: the centre of L3's body is near ``(0, 0, 0)``.
    """
    size = rng.uniform(0.9, 1.1)
    sac_depth = rng.uniform(13.0, 17.0) * size
    sac_half_width = rng.uniform(7.5, 10.0) * size
    sacral_slope = rng.uniform(32.0, 50.0)
    lordosis = sacral_slope + rng.uniform(2.0, 20.0)
    disc_scale = rng.uniform(0.85, 1.15)

    tilts: dict[str, float] = {"S1": sacral_slope}
    names = list(VERTEBRAE)
    s1 = names.index("S1")
    # cranial of S1: subtract each disc's share of the lordosis
    for i in range(s1 - 1, -1, -1):
        disc = f"{names[i]}/{names[i + 1]}"
        share = _LORDOSIS_SHARE[disc] + rng.normal(0.0, 0.02)
        tilts[names[i]] = tilts[names[i + 1]] - share * lordosis
    for name in names[s1 + 1:]:
        prev = names[names.index(name) - 1]
        tilts[name] = min(tilts[prev] + _SACRAL_BEND[name] * rng.uniform(0.8, 1.3), 80.0)

    degeneration = {d: float(np.clip(rng.beta(1.3, 3.0) + (0.15 if d in ("L4/L5", "L5/S1") else 0.0), 0, 1))
                    for d in DISCS}
    heights = {
        d: _DISC_HEIGHT[d] * disc_scale * rng.uniform(0.9, 1.1) * (1.0 - 0.35 * degeneration[d])
        for d in DISCS
    }

    vert: dict[str, VertebraShape] = {}
    frames: dict[str, Frame] = {}
    body_dims = {n: tuple(v * size * rng.uniform(0.96, 1.04) for v in _BODY[n]) for n in names}

    def make_vertebra(name: str, frame: Frame) -> VertebraShape:
        h, w, d = body_dims[name]
        canal_hw = sac_half_width + rng.uniform(2.5, 4.5)
        return VertebraShape(
            name=name,
            frame=frame,
            height=h,
            half_width=w / 2,
            anterior_depth=d * 0.55,
            posterior_depth=d * 0.45,
            endplate_concavity=rng.uniform(0.8, 2.0) if not name.startswith("S") else 0.5,
            canal_half_width=canal_hw,
            canal_depth=sac_depth + rng.uniform(3.0, 6.0) if name[0] in "TL" or name == "S1" else 10.0,
            spinous_length=rng.uniform(26.0, 34.0) * size if name[0] in "TL" else 8.0,
            transverse_length=(20.0 if name == "L3" else 15.0) * size if name[0] in "TL" else 0.0,
        )

    # S1 body centre placed so that L3 lands near the origin afterwards
    frames["S1"] = frame_from_tilt(np.zeros(3), tilts["S1"])
    vert["S1"] = make_vertebra("S1", frames["S1"])
    discs: dict[str, DiscShape] = {}
    for i in range(s1 - 1, -1, -1):
        lower, upper = names[i + 1], names[i]
        disc_name = f"{upper}/{lower}"
        lf = frames[lower]
        top = lf.origin + lf.u * body_dims[lower][0] / 2
        tu = frame_from_tilt(np.zeros(3), tilts[upper])
        mid_u = lf.u + tu.u
        mid_u /= np.linalg.norm(mid_u)
        mid_tilt = float(np.degrees(np.arctan2(-mid_u[1], mid_u[2])))
        dh = heights[disc_name]
        centre = top + mid_u * dh / 2
        bottom_upper = top + mid_u * dh
        frames[upper] = frame_from_tilt(bottom_upper + tu.u * body_dims[upper][0] / 2, tilts[upper])
        vert[upper] = make_vertebra(upper, frames[upper])
        lw = min(body_dims[lower][1], body_dims[upper][1]) / 2 + rng.uniform(0.5, 2.0)
        ld = min(body_dims[lower][2], body_dims[upper][2])
        # the thecal sac reaches a little beyond the intra-facet line
        disc_to_line = sac_depth + 1.5 - rng.uniform(1.0, 4.0)
        discs[disc_name] = DiscShape(
            name=disc_name,
            lower=lower,
            upper=upper,
            frame=frame_from_tilt(centre, mid_tilt),
            height=dh,
            half_width=lw,
            anterior_depth=ld * 0.55 + rng.uniform(0.5, 1.5),
            posterior_depth=ld * 0.45 + rng.uniform(0.3, 1.2),
            nucleus_scale=rng.uniform(0.5, 0.62),
            degeneration=degeneration[disc_name],
            disc_to_line=disc_to_line,
            facet_half_span=rng.uniform(10.5, 13.0) * size,
            facet_angle_deg=rng.uniform(45.0, 65.0) - (8.0 if disc_name == "L5/S1" else 0.0),
            facet_length=rng.uniform(8.0, 10.5) * size,
            facet_thickness=rng.uniform(4.5, 6.0) * size,
            facet_asymmetry=rng.normal(0.0, 0.8),
            bulge=round(2.2 * degeneration[disc_name] ** 1.5, 3),
        )
    for name in names[s1 + 1:]:
        above = frames[names[names.index(name) - 1]]
        f = frame_from_tilt(np.zeros(3), tilts[name])
        mid_u = above.u + f.u
        mid_u /= np.linalg.norm(mid_u)
        bottom = above.origin - above.u * body_dims[names[names.index(name) - 1]][0] / 2
        top = bottom - mid_u * _SACRAL_GAP
        frames[name] = frame_from_tilt(top - f.u * body_dims[name][0] / 2, tilts[name])
        vert[name] = make_vertebra(name, frames[name])

    # move L3's centre to the origin (keeps the sacrum at negative z), then
    # turn the spine about the left-right axis so that the L1-S1 chord is
    # nearly vertical, as it lies on the table (supine)
    shift = -frames["L3"].origin
    chord = frames["L1"].origin - frames["S1"].origin
    lean = float(np.degrees(np.arctan2(-chord[1], chord[2])))
    turn = rng.uniform(-4.0, 6.0) - lean
    vert = {n: _moved_vertebra(v, shift, turn) for n, v in vert.items()}
    discs = {n: _moved_disc(d, shift, turn) for n, d in discs.items()}

    body_pts = np.array([v.frame.origin for v in vert.values()])
    body_curve = _smooth_curve(body_pts)
    canal_pts = []
    for v in vert.values():
        canal_pts.append(v.frame.origin + v.frame.p * (v.posterior_depth + 1.5 + sac_depth / 2))
    for d in discs.values():
        canal_pts.append(d.frame.origin + d.frame.p * (d.posterior_depth + 1.5 + sac_depth / 2))
    canal_curve = _smooth_curve(np.array(canal_pts))
    l1, l2 = vert["L1"].frame.origin, vert["L2"].frame.origin
    fat = rng.uniform(6.0, 38.0)
    return SpineAnatomy(
        vertebrae=vert,
        discs=discs,
        body_curve=body_curve,
        canal_curve=canal_curve,
        sac_half_width=sac_half_width,
        sac_depth=sac_depth,
        sac_end="S2",
        conus_level=float(l1[2] + rng.uniform(-0.6, 0.4) * (l1[2] - l2[2])),
        subcutaneous_fat=fat,
        back_depth=rng.uniform(42.0, 58.0) * size + fat,
        front_depth=rng.uniform(110.0, 170.0),
        body_half_width=rng.uniform(140.0, 185.0),
        psoas_scale=rng.uniform(0.8, 1.25),
        muscle_fat=float(rng.beta(1.5, 5.0)),
        extras=_cauda_equina(rng),
    )


def _cauda_equina(rng: np.random.Generator) -> dict[str, float]:
    """Positions of the cauda equina roots in the sac (normalised; dorsal when supine)."""
    n = int(rng.integers(8, 14))
    out: dict[str, float] = {"n_roots": float(n)}
    for i in range(n):
        out[f"root{i}_x"] = float(rng.uniform(-0.65, 0.65))
        out[f"root{i}_w"] = float(rng.uniform(0.15, 0.7))
        out[f"root{i}_r"] = float(rng.uniform(0.7, 1.2))
    return out


def rotated_spine(spine: SpineAnatomy, rotation: np.ndarray) -> SpineAnatomy:
    """``spine`` turned by ``rotation`` about the origin (for planning and ground truth in patient space).

    Only frames and curves are turned; the shapes' parameters stay. The
    raster code assumes upright frames, so draw the upright anatomy and sample
    it through :class:`~inference.phantoms.lumbar_raster.VolumeGrid.rotation`.
    """
    rot = np.asarray(rotation, dtype=float)

    def turn(f: Frame) -> Frame:
        return Frame(rot @ f.origin, rot @ f.u, rot @ f.p)

    return replace(
        spine,
        vertebrae={n: replace(v, frame=turn(v.frame)) for n, v in spine.vertebrae.items()},
        discs={n: replace(d, frame=turn(d.frame)) for n, d in spine.discs.items()},
        body_curve=spine.body_curve @ rot.T,
        canal_curve=spine.canal_curve @ rot.T,
    )


def _moved_frame(f: Frame, shift: np.ndarray, turn_deg: float) -> Frame:
    """``f`` translated by ``shift`` then turned by ``turn_deg`` about the x axis (adds to its tilt)."""
    t = np.radians(turn_deg)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(t), -np.sin(t)], [0.0, np.sin(t), np.cos(t)]])
    return Frame(rot @ (f.origin + shift), rot @ f.u, rot @ f.p)


def _moved_vertebra(v: VertebraShape, shift: np.ndarray, turn_deg: float) -> VertebraShape:
    return replace(v, frame=_moved_frame(v.frame, shift, turn_deg))


def _moved_disc(d: DiscShape, shift: np.ndarray, turn_deg: float) -> DiscShape:
    return replace(d, frame=_moved_frame(d.frame, shift, turn_deg))
