"""Rasterise a :class:`~inference.phantoms.lumbar_anatomy.SpineAnatomy` into a 3D tissue volume.

The volume is a regular LPS grid (index ``(i, j, k)`` at
``origin + spacing * (i, j, k)``), about 1 mm, one
:class:`~inference.phantoms.lumbar_tissue.Tissue` code per voxel. Parts are
painted in a fixed order, later parts over earlier ones: body habitus and
muscles, the canal and thecal sac, vertebrae, ligamentum flavum, discs; then
(:mod:`inference.phantoms.lumbar_herniation`) herniations and facet joints.

Every frame's lateral axis is the world x axis, so local coordinates separate
into ``x`` and a 2D ``(w, v)`` part: each shape costs one 3D comparison over
its bounding box only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from inference.phantoms.lumbar_anatomy import DiscShape, Frame, SpineAnatomy, VertebraShape
from inference.phantoms.lumbar_tissue import NUCLEUS_BASE, Tissue

__all__ = ["Block", "VolumeGrid", "d_shape", "paint_spine", "frame_block"]


@dataclass(frozen=True)
class VolumeGrid:
    """A regular grid in anatomy space: voxel ``(i, j, k)`` centre at ``origin + spacing * (i, j, k)``.

    The anatomy is drawn upright (its lateral axis the x axis); ``rotation``
    turns it into patient space (LPS): ``patient = rotation @ anatomy`` (about
    the origin, the centre of L3). Images sample the grid through
    :meth:`patient_to_index`.
    """

    origin: np.ndarray
    spacing: float
    shape: tuple[int, int, int]
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    @classmethod
    def covering(
        cls, lo: np.ndarray, hi: np.ndarray, spacing: float, rotation: np.ndarray | None = None
    ) -> VolumeGrid:
        """The grid covering the anatomy-space box ``lo``..``hi`` (mm)."""
        lo = np.floor(np.asarray(lo, dtype=float) / spacing) * spacing
        n = np.ceil((np.asarray(hi, dtype=float) - lo) / spacing).astype(int) + 1
        rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=float)
        return cls(lo, float(spacing), (int(n[0]), int(n[1]), int(n[2])), rot)

    def index_of(self, points: np.ndarray) -> np.ndarray:
        """Continuous voxel indices of ``(..., 3)`` anatomy-space points."""
        return (np.asarray(points, dtype=float) - self.origin) / self.spacing

    def to_anatomy(self, points: np.ndarray) -> np.ndarray:
        """``(..., 3)`` patient (LPS) points to anatomy space."""
        return np.asarray(points, dtype=float) @ self.rotation

    def patient_to_index(self, points: np.ndarray) -> np.ndarray:
        """Continuous voxel indices of ``(..., 3)`` patient (LPS) points."""
        return self.index_of(self.to_anatomy(points))


@dataclass(frozen=True)
class Block:
    """World coordinates of a sub-box of the grid, as broadcastable axes."""

    slices: tuple[slice, slice, slice]
    x: np.ndarray  #: (n, 1, 1)
    y: np.ndarray  #: (1, m, 1)
    z: np.ndarray  #: (1, 1, l)


def _block(grid: VolumeGrid, lo: np.ndarray, hi: np.ndarray) -> Block | None:
    a = np.maximum(np.floor(grid.index_of(lo)).astype(int), 0)
    b = np.minimum(np.ceil(grid.index_of(hi)).astype(int) + 1, grid.shape)
    if np.any(b <= a):
        return None
    axes = [grid.origin[d] + grid.spacing * np.arange(a[d], b[d]) for d in range(3)]
    return Block(
        (slice(a[0], b[0]), slice(a[1], b[1]), slice(a[2], b[2])),
        axes[0][:, None, None],
        axes[1][None, :, None],
        axes[2][None, None, :],
    )


def frame_block(
    grid: VolumeGrid,
    frame: Frame,
    radius: float | None = None,
    *,
    lo: tuple[float, float, float] | None = None,
    hi: tuple[float, float, float] | None = None,
) -> tuple[Block, np.ndarray, np.ndarray, np.ndarray] | None:
    """Block covering a local box of ``frame`` and the local ``x, w, v`` there.

    Either ``radius`` (a cube around the origin) or the local box corners
    ``lo``/``hi`` as ``(x, w, v)``.
    """
    if lo is None or hi is None:
        r = float(radius if radius is not None else 0.0)
        lo, hi = (-r, -r, -r), (r, r, r)
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    world = frame.to_world(corners)
    blk = _block(grid, world.min(axis=0), world.max(axis=0))
    if blk is None:
        return None
    x = blk.x - frame.origin[0]
    dy = blk.y - frame.origin[1]
    dz = blk.z - frame.origin[2]
    w = dy * frame.p[1] + dz * frame.p[2]
    v = dy * frame.u[1] + dz * frame.u[2]
    return blk, x, w, v


def d_shape(
    x: np.ndarray, w: np.ndarray, half_width: float, anterior: float, posterior: float | np.ndarray
) -> np.ndarray:
    """Normalised radius of the "D" cross-section (<= 1 inside).

    Anterior half: ellipse; posterior half: superellipse of exponent 4 (a nearly
    flat posterior margin).
    """
    xa = np.abs(x) / half_width
    ant = xa**2 + (w / anterior) ** 2
    post = np.sqrt(xa**4 + (w / posterior) ** 4)
    return np.where(w < 0, ant, post)


def disc_posterior_depth(disc: DiscShape, x: np.ndarray) -> np.ndarray:
    """Posterior semi-axis of the disc at lateral positions ``x``: flat, plus its diffuse bulge."""
    xa = np.clip(np.abs(np.asarray(x, dtype=float)) / disc.half_width, 0.0, 1.0)
    return disc.posterior_depth + disc.bulge * (1.0 - xa**2)


def disc_posterior_margin(disc: DiscShape, x: np.ndarray) -> np.ndarray:
    """``w`` of the disc's posterior margin at lateral positions ``x`` (disc frame)."""
    xa = np.clip(np.abs(np.asarray(x, dtype=float)) / disc.half_width, 0.0, 1.0)
    return disc_posterior_depth(disc, x) * (1.0 - xa**4) ** 0.25


def _paint(vol: np.ndarray, blk: Block, mask: np.ndarray, tissue: int) -> None:
    sub = vol[blk.slices]
    sub[np.broadcast_to(mask, sub.shape)] = tissue


def _paint_vertebra(vol: np.ndarray, grid: VolumeGrid, v: VertebraShape) -> None:
    a, ba, bp, h = v.half_width, v.anterior_depth, v.posterior_depth, v.height
    f = v.frame
    got = frame_block(grid, f, lo=(-a, -ba, -h / 2), hi=(a, bp, h / 2))
    if got is not None:
        blk, x, w, vv = got
        r = d_shape(x, w, a, ba, bp)
        top = h / 2 - v.endplate_concavity * np.clip(1.0 - r, 0.0, 1.0)
        body = (r <= 1.0) & (np.abs(vv) <= top)
        c = 1.3
        inner = (d_shape(x, w, a - c, ba - c, bp - c) <= 1.0) & (np.abs(vv) <= top - c)
        _paint(vol, blk, body, Tissue.CORTEX)
        _paint(vol, blk, inner, Tissue.MARROW)

    bone = Tissue.POSTERIOR_BONE
    hw, cd = v.canal_half_width, v.canal_depth
    canal_back = bp + 1.5 + cd
    if v.is_sacral:
        if v.name == "S1":
            got = frame_block(grid, f, lo=(-a - 42.0, -ba, -h / 2 - 12.0), hi=(a + 42.0, bp + 6.0, h / 2))
            if got is not None:
                blk, x, w, vv = got
                ala = (
                    (np.abs(x) >= a - 6.0)
                    & (((np.abs(x) - a - 10.0) / 32.0) ** 2 + ((w - bp * 0.2) / (ba * 0.9)) ** 4 <= 1.0)
                    & (vv <= h / 2 - 1.0)
                    & (vv >= -h / 2 - 12.0)
                )
                _paint(vol, blk, ala, bone)
        got = frame_block(grid, f, lo=(-hw - 7.0, bp - 2.0, -h / 2 - 1.0), hi=(hw + 7.0, canal_back + 6.0, h / 2 + 1.0))
        if got is not None:
            blk, x, w, vv = got
            roof = (np.abs(x) <= hw + 6.0) & (w >= canal_back - 1.0) & (w <= canal_back + 6.0) & (
                np.abs(vv) <= h / 2 + 1.0
            )
            _paint(vol, blk, roof, bone)
            side = (np.abs(x) >= hw) & (w >= bp - 2.0) & (w <= canal_back + 2.0) & (np.abs(vv) <= h / 2)
            _paint(vol, blk, side, bone)
        return
    # pedicles and transverse processes: upper part of the body, lateral walls of the canal
    for s in (-1.0, 1.0):
        xl, xh = sorted((s * (hw - 1.0), s * (hw + 8.0 + v.transverse_length)))
        got = frame_block(grid, f, lo=(xl, bp - 3.0, h * 0.12 - 7.5), hi=(xh, bp + 13.0 + cd * 0.65, h * 0.12 + 7.5))
        if got is None:
            continue
        blk, x, w, vv = got
        ped = (((x - s * (hw + 3.5)) / 4.5) ** 2 + ((vv - h * 0.12) / 7.5) ** 2 <= 1.0) & (
            w >= bp - 3.0) & (w <= bp + 1.5 + cd * 0.65)
        _paint(vol, blk, ped, bone)
        tp_x = (x * s >= hw + 4.0) & (x * s <= hw + 8.0 + v.transverse_length)
        tp = tp_x & (((w - bp - 9.0) / 4.0) ** 2 + ((vv - h * 0.1) / 4.5) ** 2 <= 1.0)
        _paint(vol, blk, tp, bone)
    # laminae: a roof behind the canal, deepest in the midline
    got = frame_block(grid, f, lo=(-hw - 6.0, bp + 1.5 + cd * 0.7, -h / 2 - 5.0), hi=(hw + 6.0, canal_back + 6.0, h / 2 - 3.0))
    if got is not None:
        blk, x, w, vv = got
        ax = np.clip(np.abs(x) / (hw + 6.0), 0.0, 1.0)
        inner_w = bp + 1.5 + cd * (0.7 + 0.3 * (1.0 - ax))
        lam = (w >= inner_w) & (w <= inner_w + 5.5) & (vv >= -h / 2 - 5.0) & (vv <= h / 2 - 3.0)
        _paint(vol, blk, lam, bone)
    # spinous process: slopes caudally as it runs posteriorly
    base = bp + 1.5 + cd + 2.0
    sl = 0.3 * v.spinous_length
    got = frame_block(grid, f, lo=(-3.0, base, -h / 2 - 6.0 - sl), hi=(3.0, base + v.spinous_length, h * 0.3))
    if got is not None:
        blk, x, w, vv = got
        depth = w - base
        slope = 0.3 * depth
        sp = (depth >= 0.0) & (depth <= v.spinous_length) & (vv <= h * 0.3 - slope) & (vv >= -h / 2 - 6.0 - slope)
        _paint(vol, blk, sp, bone)


def _paint_disc(
    vol: np.ndarray,
    grid: VolumeGrid,
    disc: DiscShape,
    lower: VertebraShape,
    upper: VertebraShape,
    nucleus_code: int,
) -> None:
    hz = disc.height / 2 + 8.0
    got = frame_block(grid, disc.frame, lo=(-disc.half_width, -disc.anterior_depth, -hz),
                      hi=(disc.half_width, disc.posterior_depth + disc.bulge, hz))
    if got is None:
        return
    blk, x, w, v = got
    r = d_shape(x, w, disc.half_width, disc.anterior_depth, disc_posterior_depth(disc, x))

    def local_v(f: Frame) -> np.ndarray:
        dy = blk.y - f.origin[1]
        dz = blk.z - f.origin[2]
        return dy * f.u[1] + dz * f.u[2]

    conc_lo = lower.endplate_concavity * np.clip(1.0 - r, 0.0, 1.0)
    conc_up = upper.endplate_concavity * np.clip(1.0 - r, 0.0, 1.0)
    above_lower = local_v(lower.frame) >= lower.height / 2 - conc_lo
    below_upper = local_v(upper.frame) <= -upper.height / 2 + conc_up
    inside = (r <= 1.0) & above_lower & below_upper
    _paint(vol, blk, inside, Tissue.ANNULUS)
    ns = disc.nucleus_scale
    flat = 1.0 - 0.5 * disc.degeneration
    nuc = (
        (x / (disc.half_width * ns)) ** 2
        + ((w + 0.1 * disc.anterior_depth) / (disc.posterior_depth * ns * 1.1)) ** 2
        + (v / max(disc.height * 0.36 * flat, 1.0)) ** 2
        <= 1.0
    ) & inside
    _paint(vol, blk, nuc, nucleus_code)


def _paint_sacral_remnants(vol: np.ndarray, grid: VolumeGrid, spine: SpineAnatomy) -> None:
    names = [n for n in spine.vertebrae if spine.vertebrae[n].is_sacral]
    for upper_name, lower_name in zip(names[:-1], names[1:]):
        up, lo = spine.vertebrae[upper_name], spine.vertebrae[lower_name]
        f = up.frame
        centre = f.origin - f.u * (up.height / 2 + 1.0)
        frame = Frame(centre, f.u, f.p)
        got = frame_block(grid, frame, lo=(-lo.half_width, -lo.anterior_depth, -1.5),
                          hi=(lo.half_width, lo.posterior_depth, 1.5))
        if got is None:
            continue
        blk, x, w, v = got
        shape = (d_shape(x, w, lo.half_width - 1.0, lo.anterior_depth - 1.0, lo.posterior_depth - 1.0) <= 1.0) & (
            np.abs(v) <= 1.2
        )
        _paint(vol, blk, shape, Tissue.SACRAL_REMNANT)


def _paint_flavum(vol: np.ndarray, grid: VolumeGrid, disc: DiscShape, sac_back: float) -> None:
    half = disc.facet_half_span
    line = disc.posterior_depth + disc.disc_to_line
    got = frame_block(grid, disc.frame, lo=(-half - 1.0, line, -9.0), hi=(half + 1.0, sac_back + 4.5, 9.0))
    if got is None:
        return
    blk, x, w, v = got
    ax = np.clip(np.abs(x) / half, 0.0, 1.0)
    inner = line + (sac_back - line + 0.7) * (1.0 - ax**2)
    band = (np.abs(x) <= half + 1.0) & (w >= inner) & (w <= inner + 3.0) & (np.abs(v) <= 9.0)
    _paint(vol, blk, band, Tissue.LIGAMENT)


def _sheared(
    vol: np.ndarray,
    grid: VolumeGrid,
    tissue: int,
    x0: float | np.ndarray,
    a: float | np.ndarray,
    yc: np.ndarray,
    b: float | np.ndarray,
    *,
    n: int = 2,
    zmask: np.ndarray | None = None,
    only_inside: bool = False,
    y_min: np.ndarray | None = None,
) -> None:
    """Paint a tube whose cross-section at each height ``z`` is a superellipse.

    ``a`` (lateral semi-axis) may vary with ``z``; ``yc`` (centre) and ``b``
    (AP semi-axis) are per ``z`` slice of the grid. Only the bounding box is
    evaluated. ``only_inside`` keeps air outside the body as it is; ``y_min``
    (per ``z``) cuts the tube anterior to it.
    """
    nz = grid.shape[2]
    a_z = np.broadcast_to(np.asarray(a, dtype=float), (nz,))
    x0_z = np.broadcast_to(np.asarray(x0, dtype=float), (nz,))
    b_z = np.broadcast_to(np.asarray(b, dtype=float), (nz,))
    keep = np.ones(nz, dtype=bool) if zmask is None else np.asarray(zmask, dtype=bool)
    keep = keep & (a_z > 0) & (b_z > 0)
    if not keep.any():
        return
    ks = np.nonzero(keep)[0]
    k0, k1 = int(ks[0]), int(ks[-1]) + 1
    x_lo = float((x0_z - a_z)[k0:k1].min())
    x_hi = float((x0_z + a_z)[k0:k1].max())
    y_lo = float((yc - b_z)[k0:k1].min())
    y_hi = float((yc + b_z)[k0:k1].max())
    o, h = grid.origin, grid.spacing
    i0 = max(int(np.floor((x_lo - o[0]) / h)), 0)
    i1 = min(int(np.ceil((x_hi - o[0]) / h)) + 1, grid.shape[0])
    j0 = max(int(np.floor((y_lo - o[1]) / h)), 0)
    j1 = min(int(np.ceil((y_hi - o[1]) / h)) + 1, grid.shape[1])
    if i1 <= i0 or j1 <= j0:
        return
    x = (o[0] + h * np.arange(i0, i1))[:, None, None]
    y = (o[1] + h * np.arange(j0, j1))[None, :, None]
    sl = slice(k0, k1)
    a_s = np.where(keep[sl], a_z[sl], np.inf)[None, None, :]
    b_s = np.where(keep[sl], b_z[sl], np.inf)[None, None, :]
    tx = (((x - x0_z[sl][None, None, :]) / a_s) ** 2).astype(np.float32)
    ty = (((y - yc[sl][None, None, :]) / b_s) ** 2).astype(np.float32)
    if n == 4:
        tx, ty = tx * tx, ty * ty
    mask = (tx + ty) <= 1.0
    sub = vol[i0:i1, j0:j1, sl]
    if y_min is not None:
        mask = mask & (y >= y_min[sl][None, None, :])
    if only_inside:
        mask = mask & (sub != Tissue.AIR)
    sub[mask] = tissue


def _paint_soft_tissue(vol: np.ndarray, grid: VolumeGrid, spine: SpineAnatomy) -> None:
    """Habitus, muscles, vessels, canal and thecal sac: tubes sheared along the spine curves."""
    zz = grid.origin[2] + grid.spacing * np.arange(grid.shape[2])
    yb, _ = spine.curve_at(spine.body_curve, zz)
    yc, tilt_c = spine.curve_at(spine.canal_curve, zz)
    vert = spine.vertebrae
    l3 = vert["L3"]
    y_front = float(l3.frame.origin[1] - spine.front_depth)
    y_back = yc + spine.back_depth
    mid = 0.5 * (y_front + y_back)
    half_ap = 0.5 * (y_back - y_front)
    big = spine.body_half_width
    fat = spine.subcutaneous_fat
    body_depth = l3.anterior_depth

    _sheared(vol, grid, Tissue.FAT, 0.0, big, mid, half_ap, n=4)
    # viscera: the anterior abdomen inside the subcutaneous fat
    v_back = yb - body_depth - 18.0
    v_front = y_front + fat
    _sheared(vol, grid, Tissue.VISCERA, 0.0, big - fat - 10.0, 0.5 * (v_back + v_front),
             0.5 * (v_back - v_front), n=4, only_inside=True)
    # paraspinal muscles (erector spinae + multifidus), behind the laminae
    z_l1 = vert["L1"].frame.origin[2]
    z_s2 = vert["S2"].frame.origin[2]
    taper = np.clip((zz - z_s2) / max(z_l1 - z_s2, 1.0), 0.0, 1.0)
    es_w = 22.0 + 8.0 * taper
    es_h = np.full_like(zz, (spine.back_depth - fat - 12.0) / 2.0)
    for s in (-1.0, 1.0):
        _sheared(vol, grid, Tissue.MUSCLE, s * (5.0 + 24.0), es_w, yc + 12.0 + es_h, es_h, n=4,
                 only_inside=True, y_min=yc + 9.0)
    # psoas: grows caudally, lateral to the bodies
    z_l5 = vert["L5"].frame.origin[2]
    z_t12 = vert["T12"].frame.origin[2]
    grow = np.clip((z_t12 - zz) / max(z_t12 - z_l5, 1.0), 0.0, 1.2)
    r_ps = np.where(grow > 0.02, (5.0 + 15.0 * grow) * spine.psoas_scale, 0.0)
    for s in (-1.0, 1.0):
        _sheared(vol, grid, Tissue.MUSCLE, s * (l3.half_width + 4.0 + 9.0 * spine.psoas_scale), r_ps,
                 yb - 4.0, r_ps * 0.85)
        _sheared(vol, grid, Tissue.MUSCLE, s * (l3.half_width + 45.0), 17.0, yb + 22.0, np.full_like(zz, 8.0),
                 zmask=zz > z_l5, only_inside=True)
    # aorta and IVC above L4, iliac vessels diverging below
    z_bif = vert["L4"].frame.origin[2]
    yv = yb - body_depth - 11.0
    above = zz >= z_bif
    _sheared(vol, grid, Tissue.VESSEL, 10.0, 10.0, yv, np.full_like(zz, 10.0), zmask=above)
    _sheared(vol, grid, Tissue.VESSEL, -17.0, 12.0, yv, np.full_like(zz, 8.5), zmask=above)
    drop = np.clip(z_bif - zz, 0.0, None)
    below = (~above) & (drop < 70.0)
    for s in (-1.0, 1.0):
        _sheared(vol, grid, Tissue.VESSEL, s * (10.0 + 0.55 * drop), 6.5, yv, np.full_like(zz, 6.5), zmask=below)

    # canal: epidural fat, thecal sac with CSF, cauda equina, conus
    cos_c = np.cos(tilt_c)
    sac_half_ap = spine.sac_depth / 2 / cos_c
    hw = spine.sac_half_width
    z_end = vert[spine.sac_end].frame.origin[2] + vert[spine.sac_end].height / 2
    has_sac = zz >= z_end
    # the sacral canal ends at the sacral hiatus (S4)
    in_canal = zz >= vert["S4"].frame.origin[2]
    narrow = np.where(has_sac, 1.0, 0.7)
    _sheared(vol, grid, Tissue.EPIDURAL_FAT, 0.0, (hw + 3.0) * narrow, yc, (sac_half_ap + 2.0) * narrow,
             zmask=in_canal)
    _sheared(vol, grid, Tissue.CSF, 0.0, hw, yc, sac_half_ap, zmask=has_sac)
    cord_r = np.clip((zz - spine.conus_level) / 15.0, 0.0, 1.0) * 4.5
    _sheared(vol, grid, Tissue.CORD, 0.0, cord_r, yc + 1.0, cord_r * 0.8 / cos_c, zmask=has_sac)
    below_conus = has_sac & (zz < spine.conus_level)
    roots = spine.extras
    for i in range(int(roots.get("n_roots", 0))):
        rr = roots[f"root{i}_r"]
        _sheared(vol, grid, Tissue.NERVE, roots[f"root{i}_x"] * hw, rr,
                 yc + roots[f"root{i}_w"] * sac_half_ap, rr / cos_c, zmask=below_conus)
    for s in (-1.0, 1.0):
        _sheared(vol, grid, Tissue.EXITING_ROOT, s * hw * 0.45, 1.5, yc, 1.5 / cos_c, zmask=~has_sac & in_canal)
        # traversing roots in their sleeves, in the lateral recesses beside the sac
        _sheared(vol, grid, Tissue.EXITING_ROOT, s * (hw + 1.6), 1.4, yc - 0.35 * sac_half_ap, 1.4 / cos_c,
                 zmask=below_conus)


def _paint_ilia(vol: np.ndarray, grid: VolumeGrid, spine: SpineAnatomy) -> None:
    """Iliac wings beside L5-S2: curved plates from the sacroiliac joints running anterolaterally."""
    s1 = spine.vertebrae["S1"]
    f = s1.frame
    top = 45.0 + spine.extras.get("iliac_crest", 0.0)
    for s in (-1.0, 1.0):
        xl, xh = sorted((s * (s1.half_width + 12.0), s * 125.0))
        got = frame_block(grid, f, lo=(xl, -70.0, -70.0), hi=(xh, 45.0, top))
        if got is None:
            continue
        blk, x, w, v = got
        lat = s * x - (s1.half_width + 16.0)  # 0 at the sacroiliac joint, outwards
        # plate centreline: posterior at the joint, sweeping anteriorly as it runs laterally
        centre_w = 28.0 - 0.9 * lat - 0.004 * lat**2
        thick = 6.0 + 5.0 * np.exp(-lat / 25.0)
        plate = (lat >= 0.0) & (lat <= 95.0) & (np.abs(w - centre_w) <= thick) & (v <= top - 0.25 * lat) & (
            v >= -55.0 + 0.2 * lat
        )
        cortex = plate & (np.abs(w - centre_w) > thick - 1.3)
        _paint(vol, blk, plate, Tissue.ILIUM)
        _paint(vol, blk, cortex, Tissue.CORTEX_ILIUM)


def paint_spine(grid: VolumeGrid, spine: SpineAnatomy) -> np.ndarray:
    """The tissue volume of ``spine`` on ``grid``, without herniations and facets.

    Parameters
    ----------
    grid
        Target grid (about 1 mm).
    spine
        The anatomy.

    Returns
    -------
    numpy.ndarray
        ``grid.shape`` uint8 array of :class:`~inference.phantoms.lumbar_tissue.Tissue` codes.
    """
    vol = np.zeros(grid.shape, dtype=np.uint8)
    _paint_soft_tissue(vol, grid, spine)
    _paint_ilia(vol, grid, spine)
    for v in spine.vertebrae.values():
        _paint_vertebra(vol, grid, v)
    _paint_sacral_remnants(vol, grid, spine)
    for index, disc in enumerate(spine.discs.values()):
        sac_back = disc.posterior_depth + 1.5 + spine.sac_depth
        _paint_flavum(vol, grid, disc, sac_back)
        _paint_disc(
            vol, grid, disc, spine.vertebrae[disc.lower], spine.vertebrae[disc.upper], NUCLEUS_BASE + index
        )
    return vol
