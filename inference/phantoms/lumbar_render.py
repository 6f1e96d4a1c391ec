"""MR contrast and image formation for the lumbar phantom.

From the 3D tissue volume to pixel values of one image plane:

1. tissue -> signal with a per-study T1 or T2 lookup table (CSF bright on T2 and
   dark on T1, fat bright on both, nucleus bright on T2 unless degenerated,
   muscle, annulus, ligament and cortical bone dark; flowing blood void);
2. trilinear sampling on the *acquisition* grid (coarser than the reconstructed
   matrix), averaged over three sub-planes across the slice thickness (partial
   volume), times a smooth per-tissue texture and a coil bias field;
3. complex Gaussian noise, then zero-filled Fourier interpolation to the
   reconstruction matrix (Gibbs ringing, as scanners do) and magnitude (Rician
   background), then the study's intensity scale.

Labels are never resampled from images: :func:`sample_labels` gives each output
pixel the label that fills most of what the pixel's image value averages, the
same trilinear samples of the three sub-planes (phantom generator lumbar-2; the
nearest voxel at the centre plane before, which no image shows: the two agree
on the herniation at a mean IoU of about 0.85 only, docs/ldh.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from inference.phantoms.lumbar_raster import VolumeGrid
from inference.phantoms.lumbar_tissue import N_TISSUE_CODES, NUCLEUS_BASE, Tissue

__all__ = [
    "Contrast",
    "ImagePlane",
    "StackGeometry",
    "contrast_tables",
    "render_stack",
    "sample_labels",
]

# (T2-weighted TSE, T1-weighted TSE) relative signal per tissue
_BASE: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (0.0, 0.0),
    Tissue.FAT: (0.78, 1.0),
    Tissue.MUSCLE: (0.2, 0.34),
    Tissue.VISCERA: (0.42, 0.36),
    Tissue.VESSEL: (0.04, 0.08),
    Tissue.MARROW: (0.42, 0.68),
    Tissue.CORTEX: (0.05, 0.06),
    Tissue.POSTERIOR_BONE: (0.36, 0.6),
    Tissue.ANNULUS: (0.14, 0.27),
    Tissue.NUCLEUS: (0.85, 0.38),
    Tissue.HERNIATION: (0.4, 0.33),
    Tissue.CSF: (1.0, 0.13),
    Tissue.NERVE: (0.3, 0.35),
    Tissue.EPIDURAL_FAT: (0.74, 0.92),
    Tissue.LIGAMENT: (0.12, 0.22),
    Tissue.FACET_BONE_LEFT: (0.3, 0.5),
    Tissue.FACET_BONE_RIGHT: (0.3, 0.5),
    Tissue.FACET_FLUID_LEFT: (0.7, 0.15),
    Tissue.FACET_FLUID_RIGHT: (0.7, 0.15),
    Tissue.CORD: (0.35, 0.42),
    Tissue.SACRAL_REMNANT: (0.15, 0.25),
    Tissue.ILIUM: (0.4, 0.62),
    Tissue.CORTEX_ILIUM: (0.05, 0.06),
    Tissue.EXITING_ROOT: (0.3, 0.35),
}
# amplitude of the smooth multiplicative texture per tissue
_TEXTURE: dict[Tissue, float] = {
    Tissue.MARROW: 0.22, Tissue.POSTERIOR_BONE: 0.2, Tissue.ILIUM: 0.2, Tissue.MUSCLE: 0.18, Tissue.VISCERA: 0.3,
    Tissue.FAT: 0.08, Tissue.NUCLEUS: 0.12, Tissue.ANNULUS: 0.15, Tissue.HERNIATION: 0.2,
    Tissue.EPIDURAL_FAT: 0.1,
}


@dataclass(frozen=True)
class Contrast:
    """One weighting's per-study signal tables (indexed by tissue code)."""

    name: str  #: "T1" or "T2"
    signal: np.ndarray  #: float32 (N_TISSUE_CODES,)
    texture: np.ndarray  #: float32 (N_TISSUE_CODES,)


def contrast_tables(rng: np.random.Generator, degeneration: list[float], muscle_fat: float) -> dict[str, Contrast]:
    """Per-study T1 and T2 signal tables with jittered tissue values.

    Parameters
    ----------
    rng
        The contrast random stream.
    degeneration
        Degeneration (0..1) of each disc, in the order of the nucleus codes.
    muscle_fat
        Fatty infiltration of muscle (0..1) that brightens it on both weightings.
    """
    out = {}
    for col, name in ((0, "T2"), (1, "T1")):
        signal = np.zeros(N_TISSUE_CODES, dtype=np.float32)
        texture = np.zeros(N_TISSUE_CODES, dtype=np.float32)
        for tissue, values in _BASE.items():
            signal[int(tissue)] = values[col] * rng.uniform(0.92, 1.08)
            texture[int(tissue)] = _TEXTURE.get(tissue, 0.05)
        fat = signal[Tissue.FAT]
        signal[Tissue.MUSCLE] += muscle_fat * 0.45 * (fat - signal[Tissue.MUSCLE])
        for i, deg in enumerate(degeneration):
            nucleus = signal[Tissue.NUCLEUS]
            dark = signal[Tissue.ANNULUS] * 1.3
            signal[NUCLEUS_BASE + i] = nucleus + (dark - nucleus) * deg if name == "T2" else nucleus * (1 - 0.2 * deg)
            texture[NUCLEUS_BASE + i] = texture[Tissue.NUCLEUS]
        out[name] = Contrast(name, signal, texture)
    return out


@dataclass(frozen=True)
class ImagePlane:
    """Geometry of one image: first pixel centre, direction cosines, spacing, size."""

    position: np.ndarray  #: ImagePositionPatient (3,)
    row_dir: np.ndarray  #: along a row (increasing column index)
    col_dir: np.ndarray  #: down a column (increasing row index)
    spacing: tuple[float, float]  #: (row spacing, column spacing) as DICOM PixelSpacing
    shape: tuple[int, int]  #: (rows, columns)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)

    def points(self, shape: tuple[int, int] | None = None, offset: float = 0.0) -> np.ndarray:
        """``(rows, cols, 3)`` LPS centres of a grid over this plane's field of view.

        ``shape`` samples the same field of view with another matrix (its first
        sample at this plane's first pixel centre, as a zero-filled DFT wants);
        ``offset`` moves along the normal (mm).
        """
        origin, dr, dc = self._axes(shape, offset)
        rows, cols = self.shape if shape is None else shape
        r = np.arange(rows, dtype=float)[:, None, None]
        c = np.arange(cols, dtype=float)[None, :, None]
        return origin + c * dc + r * dr

    def _axes(self, shape: tuple[int, int] | None, offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows, cols = self.shape if shape is None else shape
        step_r = self.spacing[0] * self.shape[0] / rows
        step_c = self.spacing[1] * self.shape[1] / cols
        return self.position + offset * self.normal, self.col_dir * step_r, self.row_dir * step_c

    def grid_indices(
        self, grid: VolumeGrid, shape: tuple[int, int] | None = None, offset: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Continuous indices into ``grid`` of the samples of :meth:`points`, one array per axis."""
        origin, dr, dc = self._axes(shape, offset)
        rows, cols = self.shape if shape is None else shape
        r = np.arange(rows, dtype=np.float32)[:, None]
        c = np.arange(cols, dtype=np.float32)[None, :]
        o = grid.patient_to_index(origin)
        dr = grid.to_anatomy(dr) / grid.spacing
        dc = grid.to_anatomy(dc) / grid.spacing
        return tuple(np.float32(o[d]) + r * np.float32(dr[d]) + c * np.float32(dc[d]) for d in range(3))  # type: ignore[return-value]


@dataclass(frozen=True)
class StackGeometry:
    """Parallel image planes of one stack and how they were acquired."""

    planes: tuple[ImagePlane, ...]
    thickness: float
    acquisition: tuple[int, int]  #: acquired matrix (rows, columns) before zero filling


def sample_labels(
    tissue: np.ndarray, grid: VolumeGrid, plane: ImagePlane, table: np.ndarray, thickness: float = 0.0
) -> np.ndarray:
    """Label image of ``plane``: per pixel, the label covering most of what the pixel shows.

    The image value of a pixel is the mean of trilinear samples of the tissue
    signal on three sub-planes across the slice (:func:`render_stack`). The label
    is the one with the largest weight among the same samples' eight neighbouring
    voxels (trilinear weights, the three sub-planes weighted equally): the
    boundary an annotator draws on the image, where the partial volume is half
    one tissue and half the other. Ties go to the lower label value.

    Parameters
    ----------
    tissue
        The 3D tissue volume on ``grid``.
    grid
        Its grid.
    plane
        Output image geometry.
    table
        Tissue code -> label value lookup (:mod:`inference.phantoms.lumbar_tissue`).
    thickness
        Slice thickness (mm); 0 samples the centre plane alone.

    Returns
    -------
    numpy.ndarray
        ``plane.shape`` uint8 labels (0 outside the volume).
    """
    offsets = (-thickness / 3, 0.0, thickness / 3) if thickness > 0 else (0.0,)
    labels: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for off in offsets:
        lab, w = _corner_labels(tissue, grid, plane.grid_indices(grid, None, off), table)
        labels += lab
        weights += w
    corners = np.stack(labels)
    first = corners[0]
    mixed = (corners != first).any(axis=0)
    out = first.copy()
    if mixed.any():
        n = int(table.max()) + 1
        pix = np.flatnonzero(mixed)
        where = np.arange(pix.size)
        score = np.zeros(n * pix.size, dtype=np.float64)
        for lab_c, w_c in zip(labels, weights):
            score += np.bincount(
                lab_c.reshape(-1)[pix].astype(np.int64) * pix.size + where,
                weights=w_c.reshape(-1)[pix],
                minlength=n * pix.size,
            )
        out.reshape(-1)[pix] = np.argmax(score.reshape(n, pix.size), axis=0)
    return out


def _corner_labels(
    tissue: np.ndarray, grid: VolumeGrid, idx: tuple[np.ndarray, np.ndarray, np.ndarray], table: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Labels of the eight voxels around each sample (0 outside the grid) and their trilinear weights."""
    # per axis: the lower and upper neighbour (clipped flat offset, inside flag, weight)
    axes = []
    for d in range(3):
        low = np.floor(idx[d])
        frac = (idx[d] - low).astype(np.float32)
        low_i = low.astype(np.int64)
        stride = int(np.prod(grid.shape[d + 1:]))
        sides = []
        for i, w in ((low_i, 1.0 - frac), (low_i + 1, frac)):
            inside = (i >= 0) & (i < grid.shape[d])
            sides.append((np.clip(i, 0, grid.shape[d] - 1) * stride, inside, w))
        axes.append(sides)
    flat_tissue = tissue.reshape(-1)
    labels, weights = [], []
    for fx, ix, wx in axes[0]:
        for fy, iy, wy in axes[1]:
            fxy, ixy, wxy = fx + fy, ix & iy, wx * wy
            for fz, iz, wz in axes[2]:
                lab = table[flat_tissue[fxy + fz]]
                labels.append(np.where(ixy & iz, lab, 0).astype(np.uint8))
                weights.append(wxy * wz)
    return labels, weights


def _nearest_codes(
    tissue: np.ndarray, grid: VolumeGrid, idx: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Tissue code of the nearest voxel of each sample and whether it lies inside the grid."""
    inside = np.ones(idx[0].shape, dtype=bool)
    flat = np.zeros(idx[0].shape, dtype=np.int64)
    for d in range(3):
        i = np.rint(idx[d]).astype(np.int64)
        inside &= (i >= 0) & (i < grid.shape[d])
        np.clip(i, 0, grid.shape[d] - 1, out=i)
        flat = flat * grid.shape[d] + i
    return tissue.reshape(-1)[flat], inside


@dataclass(frozen=True)
class Appearance:
    """Study-wide image formation parameters (noise, bias, texture field, scale)."""

    snr: float
    scale: float
    bias_centre: np.ndarray
    bias_gradient: np.ndarray  #: per 100 mm along x, y, z (log scale)
    bias_curvature: np.ndarray  #: per (100 mm)^2 along x, y, z (log scale)
    texture_field: np.ndarray  #: coarse random field, (nx, ny, nz)
    texture_origin: np.ndarray
    texture_spacing: float
    filter_strength: float  #: k-space apodisation (0 none .. 1 strong)


def draw_appearance(rng: np.random.Generator, grid: VolumeGrid, centre: np.ndarray) -> Appearance:
    """Draw noise level, bias field and texture for one study."""
    spacing = 5.0
    extent = np.array(grid.shape) * grid.spacing
    n = np.ceil(extent / spacing).astype(int) + 3
    field = rng.standard_normal(tuple(n)).astype(np.float32)
    field = ndimage.gaussian_filter(field, 1.0)
    field /= max(float(field.std()), 1e-6)
    return Appearance(
        snr=float(rng.uniform(14.0, 40.0)),
        scale=float(rng.uniform(700.0, 3200.0)),
        bias_centre=np.asarray(centre, dtype=float),
        bias_gradient=np.array([rng.normal(0.0, 0.08), rng.uniform(0.25, 0.8), rng.normal(0.0, 0.1)]),
        bias_curvature=-np.array([rng.uniform(0.05, 0.4), rng.uniform(0.0, 0.2), rng.uniform(0.05, 0.3)]),
        texture_field=field,
        texture_origin=grid.origin - spacing,
        texture_spacing=spacing,
        filter_strength=float(rng.uniform(0.0, 1.0)),
    )


def _bias(app: Appearance, points: np.ndarray) -> np.ndarray:
    d = (points - app.bias_centre) / 100.0
    return np.exp(d @ app.bias_gradient + (d * d) @ app.bias_curvature)


def render_stack(
    tissue: np.ndarray,
    grid: VolumeGrid,
    signal_volume: np.ndarray,
    contrast: Contrast,
    stack: StackGeometry,
    app: Appearance,
    rng: np.random.Generator,
) -> np.ndarray:
    """Pixel values (float, before rounding) of every plane of ``stack``.

    Parameters
    ----------
    tissue
        Tissue volume (for the per-tissue texture amplitude).
    grid
        The volumes' grid.
    signal_volume
        ``contrast.signal[tissue]`` as float32, precomputed once per contrast.
    contrast
        The weighting's tables.
    stack
        Planes to render and their acquisition matrix.
    app
        Study-wide appearance.
    rng
        Noise stream of this series.

    Returns
    -------
    numpy.ndarray
        ``(slices, rows, cols)`` float32, already multiplied by the study's scale.
    """
    acq = stack.acquisition
    out = []
    for plane in stack.planes:
        acc = np.zeros(acq, dtype=np.float32)
        for off in (-stack.thickness / 3, 0.0, stack.thickness / 3):
            idx = np.stack([a.ravel() for a in plane.grid_indices(grid, acq, off)])
            acc += ndimage.map_coordinates(signal_volume, idx, order=1, mode="nearest").reshape(acq)
        acc /= 3.0
        # texture: smooth field times the tissue's amplitude
        centre = plane.grid_indices(grid, acq)
        codes, _ = _nearest_codes(tissue, grid, centre)
        scale = grid.spacing / app.texture_spacing
        shift = (grid.origin - app.texture_origin) / app.texture_spacing
        tidx = np.stack([(centre[d] * scale + shift[d]).ravel() for d in range(3)])
        field = ndimage.map_coordinates(app.texture_field, tidx, order=1, mode="nearest").reshape(acq)
        acc *= np.clip(1.0 + contrast.texture[codes] * field, 0.2, None)
        acc *= _bias(app, plane.points(acq)).astype(np.float32)
        sigma = 1.0 / app.snr
        noisy = acc + rng.normal(0.0, sigma, acq) + 1j * rng.normal(0.0, sigma, acq)
        out.append(np.abs(_zero_fill(noisy, plane.shape, app.filter_strength)))
    return (np.stack(out) * app.scale).astype(np.float32)


def _zero_fill(image: np.ndarray, shape: tuple[int, int], strength: float) -> np.ndarray:
    """Fourier interpolation of a complex image to ``shape`` with mild apodisation."""
    k = np.fft.fftshift(np.fft.fft2(image))
    ra, ca = image.shape
    wr = np.hanning(ra + 2)[1:-1] ** (0.35 * strength)
    wc = np.hanning(ca + 2)[1:-1] ** (0.35 * strength)
    k *= wr[:, None] * wc[None, :]
    rows, cols = shape
    big = np.zeros(shape, dtype=complex)
    r0 = rows // 2 - ra // 2
    c0 = cols // 2 - ca // 2
    big[r0:r0 + ra, c0:c0 + ca] = k
    return np.fft.ifft2(np.fft.ifftshift(big)) * (rows * cols) / (ra * ca)
