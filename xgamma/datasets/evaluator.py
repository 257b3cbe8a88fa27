"""Forward folding: predicted counts of one source in one dataset.

``npred(E, p) = Edisp[ PSF * ( exposure(E_t, p) x flux(E_t) x fraction(p) ) ]``

- `MapEvaluator` does this for a `SkyModel` on a `MapDataset`, on a cutout
  around the source (wide enough for the model and the PSF kernel).
- `SpectrumEvaluator` does it for a 1-D dataset: ``exposure x flux`` folded
  with the energy-dispersion matrix, times the fraction of the spatial model
  (if any) inside the ON region (no PSF: the exposure of a point source
  carries its containment correction).

Everything works on NumPy arrays pulled out of the dataset once
(`FitArrays`). The parts that depend only on some parameters are cached:

1. *frame* (cutout slices, PSF kernel, energy-dispersion matrix): built
   at the node of a fixed grid (half an IRF pixel apart) nearest to the
   source, so npred is a function of the parameters alone (not of the
   order of the calls) and smooth while the source stays near one node;
2. *spatial response* ``PSF * (exposure x fraction)`` per true-energy bin:
   rebuilt when a spatial parameter changes. Point sources place shifted
   PSF kernels; extended sources are convolved by FFT over the box they
   cover and kept in Fourier space (`_ConvolvedResponse`);
3. *npred*: ``sum_t flux_t edisp[t, e] response[t]``, rebuilt when a
   spectral parameter changes.

The Cash statistic of a map needs npred only at the fitted bins that hold
counts, plus its sum over the fitted bins (`CountedBins`,
`MapEvaluator.counted_npred`): after a spectral change that is the product
of the flux with a small (true energy, counted bins) matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.fft import fft, irfft2, next_fast_len, rfft, rfft2

from ..axes import MapAxis
from ..geom import RegionGeom, WcsGeom

__all__ = [
    "CountedBins", "CountedNpred", "FitArrays", "MapEvaluator", "SpectrumEvaluator", "edisp_kernel_from_migra", "psf_kernel",
]

#: Fraction of the PSF the convolution kernel contains (its radius is where the
#: containment reaches this value at the widest true energy).
PSF_KERNEL_CONTAINMENT = 0.999
#: Sub-pixel sampling of the PSF kernel (per axis).
PSF_KERNEL_OVERSAMPLING = 3
#: Cutouts are sized for the source radius rounded up to a step of 2**(1/4) (19 %).
RADIUS_BUCKETS_PER_OCTAVE = 4
#: Sources covering at most this many pixels (point sources: 4) are convolved by
#: placing shifted kernels, much faster than an FFT of the whole cutout.
MAX_PIXELS_DIRECT = 16


def _place_kernels(exposure, fraction, kernel) -> np.ndarray:
    """``fftconvolve(exposure * fraction, kernel, mode="same")`` for a fraction with few non-zero pixels."""
    _, ny, nx = exposure.shape
    half = kernel.shape[-1] // 2
    out = np.zeros(exposure.shape)
    for iy, ix in zip(*np.nonzero(fraction)):  # at most MAX_PIXELS_DIRECT pixels
        y0, y1 = max(iy - half, 0), min(iy + half + 1, ny)
        x0, x1 = max(ix - half, 0), min(ix + half + 1, nx)
        placed = kernel[:, y0 - iy + half:y1 - iy + half, x0 - ix + half:x1 - ix + half]
        out[:, y0:y1, x0:x1] += (exposure[:, iy, ix] * fraction[iy, ix])[:, None, None] * placed
    return out


@dataclass
class FitArrays:
    """The arrays of a dataset a likelihood needs, as plain NumPy (see `MapDataset.fit_arrays`)."""

    counts: np.ndarray  # (energy[, y, x])
    mask: np.ndarray  # bool, same shape
    exposure: np.ndarray  # (energy_true[, y, x]) cm2 s
    background: np.ndarray | None  # (energy[, y, x])
    energy_edges: np.ndarray  # TeV
    energy_true_edges: np.ndarray  # TeV
    edisp: np.ndarray | None  # (energy_true, energy[, y_irf, x_irf])
    psf: np.ndarray | None = None  # (energy_true, rad, y_irf, x_irf) sr-1
    rad_edges: np.ndarray | None = None  # deg
    geom: WcsGeom | None = None  # analysis image grid
    geom_irf: WcsGeom | None = None  # IRF image grid
    energy_axis_true: MapAxis | None = None  # for energy-dependent spatial templates
    migra_edges: np.ndarray | None = None  # set when edisp is per migra bin
    counts_off: np.ndarray | None = None  # On/Off datasets
    alpha: np.ndarray | None = None  # On/Off datasets
    region: RegionGeom | None = None  # ON region of 1-D datasets (None when the dataset has none)

    @property
    def energy_center(self) -> np.ndarray:
        return np.sqrt(self.energy_edges[:-1] * self.energy_edges[1:])


@dataclass
class CountedBins:
    """The fitted bins of a map dataset that hold counts, where the Cash statistic takes logarithms.

    With predictions that cannot be truncated (source npred >= 0, background
    >= the truncation value), ``C = C_background + 2 sum(npred_signal over
    fitted bins) - 2 sum(n ln(1 + npred_signal / background) over these
    bins)``: a few thousand bins instead of the whole cube.
    """

    mask: np.ndarray  # bool (energy, y, x): the fitted bins
    counts: np.ndarray  # counts in the counted bins
    energy: np.ndarray  # their indices along energy, y and x, in C order
    y: np.ndarray
    x: np.ndarray

    @classmethod
    def from_arrays(cls, counts, mask) -> CountedBins:
        flat = np.flatnonzero(mask & (counts > 0))
        return cls(mask, counts.ravel()[flat], *np.unravel_index(flat, counts.shape))

    @property
    def flat(self) -> np.ndarray:
        """Flat indices of the counted bins in the (energy, y, x) cube."""
        return np.ravel_multi_index((self.energy, self.y, self.x), self.mask.shape)


class CountedNpred(NamedTuple):
    """A source's predicted counts for the sparse Cash statistic (see `CountedBins`)."""

    positions: np.ndarray  # indices into the CountedBins inside the source's cutout
    values: np.ndarray  # npred there
    fitted_sum: float  # npred summed over the cutout's fitted bins
    nonnegative: bool  # npred >= 0 everywhere (no truncation possible)


def edisp_kernel_from_migra(edisp_migra, migra_edges, energy_true_center, energy_edges) -> np.ndarray:
    """Reco-energy kernel (energy_true, energy) from probabilities per migra bin.

    The probability is spread uniformly inside each migra bin; the cumulative
    distribution is read at ``energy_edges / energy_true``.

    Parameters
    ----------
    edisp_migra : `numpy.ndarray`
        (energy_true, migra) probabilities per migra bin.
    migra_edges, energy_true_center, energy_edges : `numpy.ndarray`
        Bin edges (migra, TeV) and true-energy bin centres (TeV).
    """
    cdf = np.concatenate([np.zeros((len(edisp_migra), 1)), np.cumsum(edisp_migra, axis=1)], axis=1)
    migra_at_edges = energy_edges[None, :] / energy_true_center[:, None]
    at_edges = np.stack([np.interp(m, migra_edges, c) for m, c in zip(migra_at_edges, cdf)])
    return np.diff(at_edges, axis=1)


def psf_kernel(psf_values, rad_edges, binsz_deg, max_radius_deg=None) -> np.ndarray:
    """PSF convolution kernel on a square pixel grid, normalised to 1 per true energy.

    Parameters
    ----------
    psf_values : `numpy.ndarray`
        (energy_true, rad) PSF density in sr-1 at the rad bin centres.
    rad_edges : `numpy.ndarray`
        Edges of the rad axis, deg.
    binsz_deg : float
        Pixel size of the grid, deg.
    max_radius_deg : float, optional
        Kernel radius; default: where `PSF_KERNEL_CONTAINMENT` is reached at
        the widest energy (at most the last rad edge).

    Returns
    -------
    `numpy.ndarray`
        (energy_true, n, n) with odd ``n``; each plane sums to 1 (planes with
        no PSF are a delta function).
    """
    rad_center = 0.5 * (rad_edges[:-1] + rad_edges[1:])
    if max_radius_deg is None:
        max_radius_deg = _containment_radius(psf_values, rad_edges, PSF_KERNEL_CONTAINMENT)
    half = max(int(np.ceil(max_radius_deg / binsz_deg)), 1)
    sub = (np.arange(PSF_KERNEL_OVERSAMPLING) + 0.5) / PSF_KERNEL_OVERSAMPLING - 0.5
    offsets = (np.arange(-half, half + 1)[:, None] + sub[None, :]).ravel() * binsz_deg
    r = np.hypot(offsets[:, None], offsets[None, :])
    n = 2 * half + 1
    kernel = np.empty((len(psf_values), n, n))
    for i, values in enumerate(psf_values):  # a few tens of true-energy bins
        fine = np.interp(r, rad_center, values, right=0.0)
        fine[r > max_radius_deg] = 0.0
        kernel[i] = fine.reshape(n, PSF_KERNEL_OVERSAMPLING, n, PSF_KERNEL_OVERSAMPLING).mean(axis=(1, 3))
    total = kernel.sum(axis=(1, 2), keepdims=True)
    empty = total[:, 0, 0] <= 0
    kernel[empty] = 0.0
    kernel[empty, half, half] = 1.0
    total[empty] = 1.0
    return kernel / total


def _containment_radius(psf_values, rad_edges, fraction) -> float:
    """Largest radius (deg) over true energies at which ``fraction`` of the PSF is contained."""
    ring_area = np.pi * (np.radians(rad_edges[1:]) ** 2 - np.radians(rad_edges[:-1]) ** 2)
    cumulative = np.cumsum(psf_values * ring_area, axis=1)
    total = cumulative[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        reached = cumulative >= fraction * total
    index = np.where(total[:, 0] > 0, reached.argmax(axis=1), 0)
    return float(rad_edges[1:][index].max())


class _FFTConvolver:
    """2-D convolution by FFT of images of one shape, plane by plane, the kernel's transform kept.

    Single precision: twice as fast, and 1e-7 relative is far below Poisson noise.
    """

    def __init__(self, kernel, image_shape):
        n_kernel = kernel.shape[-1]
        self.half = n_kernel // 2
        self._image_shape = tuple(image_shape)
        self.full_shape = tuple(n + n_kernel - 1 for n in image_shape)
        self._shape = tuple(next_fast_len(n, real=True) for n in self.full_shape)
        self._kernel_fft = rfft2(kernel.astype(np.float32), s=self._shape, axes=(1, 2))

    def transform(self, exposure, fraction) -> np.ndarray:
        """The convolution of ``exposure x fraction`` (image-shaped) in Fourier space."""
        image = np.empty((len(exposure), *self._image_shape), dtype=np.float32)
        np.multiply(exposure, fraction, out=image, casting="same_kind")
        # one axis at a time: the rows of zero padding are not transformed along x
        spectra = fft(rfft(image, n=self._shape[1], axis=2), n=self._shape[0], axis=1, overwrite_x=True)
        spectra *= self._kernel_fft
        return spectra

    def inverse(self, spectra, overwrite=False) -> np.ndarray:
        """``fftconvolve(..., mode="full")`` per plane (float32) from `transform` (or a sum of its planes)."""
        full = irfft2(spectra, s=self._shape, axes=(1, 2), overwrite_x=overwrite)
        return full[:, :self.full_shape[0], :self.full_shape[1]]


class _PlanesResponse:
    """A spatial response held as its planes, (energy_true, pixels)."""

    has_planes = True

    def __init__(self, planes):
        self._planes = planes

    def planes(self) -> np.ndarray:
        return self._planes

    def fold(self, weights) -> np.ndarray:
        """``weights @ planes``: (energy, pixels) for ``weights`` (energy, energy_true)."""
        return weights @ self._planes


class _ConvolvedResponse:
    """``PSF * (exposure x fraction)`` of an extended source, kept in Fourier space.

    npred is ``weights @ planes`` with a few reco energies: summing the
    transforms first (`fold`) transforms back those few planes, not one per
    true energy. The planes themselves (`planes`) are transformed back only
    when asked (a second spectrum folded at the same position).
    """

    def __init__(self, convolver, spectra, corner, cutout_shape, nonnegative):
        self._convolver, self._spectra, self._nonnegative = convolver, spectra, nonnegative
        self._cutout_shape = cutout_shape
        self._planes = None
        # full[:, i, j] lands on pixel (y0 - half + i, x0 - half + j) of the cutout; clipped to the cutout
        (y0, x0), (ny, nx) = corner, cutout_shape
        top, left = y0 - convolver.half, x0 - convolver.half
        ys = slice(max(top, 0), min(top + convolver.full_shape[0], ny))
        xs = slice(max(left, 0), min(left + convolver.full_shape[1], nx))
        self._target = (slice(None), ys, xs)
        self._source = (slice(None), slice(ys.start - top, ys.stop - top), slice(xs.start - left, xs.stop - left))

    @property
    def has_planes(self) -> bool:
        return self._planes is not None

    def planes(self) -> np.ndarray:
        if self._planes is None:
            self._planes = self._placed(self._convolver.inverse(self._spectra), clip=self._nonnegative)
        return self._planes

    def fold(self, weights) -> np.ndarray:
        """``weights @ planes`` (see `_PlanesResponse.fold`), summed before the inverse transform."""
        # real weights: a real product on the (re, im) pairs, a quarter of the complex one's work
        pairs = self._spectra.reshape(len(self._spectra), -1).view(np.float32)
        spectra = (weights.astype(np.float32) @ pairs).view(np.complex64)
        full = self._convolver.inverse(spectra.reshape(len(weights), *self._spectra.shape[1:]), overwrite=True)
        return self._placed(full, clip=self._nonnegative and weights.min() >= 0)

    def _placed(self, full, clip) -> np.ndarray:
        """Planes of the full convolution on the cutout's pixels, float64; with ``clip``
        (the exact result is >= 0) negative values, float32 rounding, are set to 0."""
        out = np.zeros((len(full), *self._cutout_shape))
        if clip:
            np.maximum(full[self._source], 0, out=out[self._target])
        else:
            out[self._target] = full[self._source]
        return out.reshape(len(full), -1)


def _convolve_support(exposure, fraction, kernel, convolvers, nonnegative=False):
    """``fftconvolve(exposure * fraction, kernel, mode="same")`` as a `_ConvolvedResponse` (pixels flattened).

    Only the box where the source is gets transformed. ``convolvers`` caches an
    `_FFTConvolver` per box shape (it changes little as a source moves).
    ``nonnegative``: exposure, fraction and kernel are >= 0, and so is the exact result.
    """
    support = fraction if fraction.ndim == 2 else fraction.any(axis=0)
    rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
    if rows.size == 0:
        return _PlanesResponse(np.zeros((len(exposure), exposure[0].size)))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box_shape = (y1 - y0, x1 - x0)
    if box_shape not in convolvers:
        convolvers[box_shape] = _FFTConvolver(kernel, box_shape)
    convolver = convolvers[box_shape]
    spectra = convolver.transform(exposure[:, y0:y1, x0:x1], fraction[..., y0:y1, x0:x1])
    return _ConvolvedResponse(convolver, spectra, (y0, x0), exposure.shape[1:], nonnegative)


class SpectrumEvaluator:
    """Predicted counts of one `SkyModel` in a 1-D dataset (energy)."""

    def __init__(self, model, arrays: FitArrays):
        self.model = model
        self.arrays = arrays
        self._key = None
        self._npred = None
        self._fraction_key = None
        self._fraction = 1.0
        self._region_grid = None

    def compute_npred(self) -> np.ndarray:
        """Predicted counts per reco-energy bin (cached on the spectral and spatial parameter values)."""
        spectral, spatial = self.model.spectral_model, self.model.spatial_model
        key = (tuple(spectral.parameters.values), None if spatial is None else tuple(spatial.parameters.values))
        if key != self._key:
            a = self.arrays
            flux = spectral.integral_values(a.energy_true_edges[:-1], a.energy_true_edges[1:])
            npred_true = flux * a.exposure * self.spatial_fraction()
            self._npred = npred_true @ a.edisp if a.edisp is not None else npred_true
            self._key = key
        return self._npred

    def spatial_fraction(self):
        """Fraction of the spatial model's flux inside the ON region (1 without a spatial model or region).

        The model is integrated over the pixels of a grid about 400 pixels
        across the region and summed over the pixels whose centre is inside.
        A point source gives 1 inside and 0 outside; an energy-dependent
        template gives one fraction per true-energy bin.
        """
        spatial, region = self.model.spatial_model, self.arrays.region
        if spatial is None or region is None:
            return 1.0
        key = tuple(spatial.parameters.values)
        if key != self._fraction_key:
            if self._region_grid is None:  # the region never changes: grid and mask made once
                grid = region.to_wcs_geom()
                if self.arrays.energy_axis_true is not None:
                    grid = grid.to_cube([self.arrays.energy_axis_true])
                self._region_grid = grid, grid.region_mask(list(region.regions)).values
            grid, inside = self._region_grid
            self._fraction = (spatial.integrate_geom_values(grid) * inside).sum(axis=(-2, -1))
            self._fraction_key = key
        return self._fraction


class MapEvaluator:
    """Predicted counts of one `SkyModel` (with a spatial model) on a `MapDataset`.

    `compute_npred` returns ``(slices, npred)``: the cutout's pixel slices in
    the dataset and the predicted counts (energy, y, x) inside it.
    """

    def __init__(self, model, arrays: FitArrays):
        if model.spatial_model is None:
            raise ValueError(f"model {model.name!r} has no spatial model; a MapDataset needs one")
        self.model = model
        self.arrays = arrays
        self._frame_node = None
        self._grid = None
        # parameter values the cached products were made for; versions tell the products apart
        self._spatial_key = self._flux_key = None
        self._spatial_version = self._flux_version = 0
        self._npred_key = None
        # counted-bin products and what they were made for: "frame" (node), "columns" (spatial
        # version), "npred" and "first" (spatial and flux versions; "first": the first flux at a position)
        self._counted_for, self._counted_keys = None, {}

    # --- 1. frame: cutout, PSF kernel and edisp at the grid node nearest the source -------------
    def _node_step(self) -> float:
        """Spacing of the frame nodes in analysis pixels: half an IRF pixel (at least one pixel)."""
        a = self.arrays
        irf_pix = a.geom_irf.binsz[0] if a.geom_irf is not None else a.geom.binsz[0]
        return max(0.5 * irf_pix / a.geom.binsz[0], 1.0)

    def _node_of(self, lon, lat) -> tuple[int, int, int | None]:
        """Frame node: grid position nearest the source, and the bucket of its radius."""
        if self._grid is None:  # geometry numbers, read once: this runs at every likelihood call
            geom = self.arrays.geom
            self._grid = (geom.wcs, self._node_step(), float(np.mean(geom.binsz)))
        wcs, step, binsz = self._grid
        x, y = (float(v) for v in wcs.wcs_world2pix(lon, lat, 0))
        radius = self.model.evaluation_radius
        # the cutout must grow with the source (a size fit); buckets keep npred a function of the parameters
        bucket = None if radius is None else int(np.ceil(RADIUS_BUCKETS_PER_OCTAVE * np.log2(max(radius, binsz) / binsz)))
        return int(np.rint(x / step)), int(np.rint(y / step)), bucket

    def _build_frame(self, node):
        a, geom = self.arrays, self.arrays.geom
        step = self._node_step()
        lon, lat = (float(v) for v in geom.pix_to_coord(node[0] * step, node[1] * step))
        binsz = float(np.mean(geom.binsz))
        self._frame_node = node
        self._kernel = None if a.psf is None else psf_kernel(self._irf_at(a.psf, lon, lat), a.rad_edges, binsz)
        self._edisp = self._edisp_at(lon, lat)
        if self._edisp is None:  # without energy dispersion every reco-energy bin gets all true energies
            self._edisp = np.ones((len(a.exposure), len(a.counts)))
        kernel_radius = 0.0 if self._kernel is None else (self._kernel.shape[-1] // 2) * binsz
        if node[2] is None:  # diffuse models (templates, constant): the whole map
            self._slices = {"y": slice(0, geom.npix[1]), "x": slice(0, geom.npix[0])}
        else:
            radius = binsz * 2.0 ** (node[2] / RADIUS_BUCKETS_PER_OCTAVE) if node[2] > 0 else 0.0
            # the source is within half a step of the node: widen by a step, plus two pixels
            width = 2 * (radius + kernel_radius) + (step + 4) * binsz
            try:
                self._slices = geom.cutout_slices((lon, lat), width)
            except ValueError:  # the source and its PSF halo miss this dataset
                self._slices = None
                return
        self._cutout_geom_true = geom.slice_by_idx(self._slices).to_cube([a.energy_axis_true])
        self._exposure = a.exposure[:, self._slices["y"], self._slices["x"]]
        self._cutout_shape = self._exposure.shape[1:]
        self._convolvers = {}
        self._frame_nonnegative = bool(self._exposure.min() >= 0 and self._edisp.min() >= 0
                                       and (self._kernel is None or self._kernel.min() >= 0))

    def _irf_at(self, irf_map, lon, lat) -> np.ndarray:
        """An IRF map (..., y_irf, x_irf) at the source, interpolated bilinearly between IRF pixels."""
        geom_irf = self.arrays.geom_irf
        x, y = (float(v) for v in geom_irf.coord_to_pix((lon, lat)))
        nx, ny = geom_irf.npix
        x, y = np.clip(x, 0, nx - 1), np.clip(y, 0, ny - 1)
        x0, y0 = min(int(x), nx - 2) if nx > 1 else 0, min(int(y), ny - 2) if ny > 1 else 0
        fx, fy = (x - x0) if nx > 1 else 0.0, (y - y0) if ny > 1 else 0.0
        x1, y1 = min(x0 + 1, nx - 1), min(y0 + 1, ny - 1)
        return ((1 - fy) * ((1 - fx) * irf_map[..., y0, x0] + fx * irf_map[..., y0, x1])
                + fy * ((1 - fx) * irf_map[..., y1, x0] + fx * irf_map[..., y1, x1]))

    def _edisp_at(self, lon, lat) -> np.ndarray | None:
        a = self.arrays
        if a.edisp is None:
            return None
        matrix = a.edisp
        if matrix.ndim == 4:
            matrix = self._irf_at(matrix, lon, lat)
        if a.migra_edges is not None:
            e_true = np.sqrt(a.energy_true_edges[:-1] * a.energy_true_edges[1:])
            matrix = edisp_kernel_from_migra(matrix, a.migra_edges, e_true, a.energy_edges)
        return matrix

    # --- 2. spatial response ----------------------------------------------------------------
    def _update_spatial(self) -> bool:
        """Frame and spatial response for the current spatial parameters; False if the source misses the dataset."""
        key = tuple(self.model.spatial_model.parameters.values)
        if key != self._spatial_key:  # the frame node is a function of the spatial parameters too
            node = self._node_of(*self._position())
            if node != self._frame_node:
                self._build_frame(node)
            if self._slices is not None:
                self._response, self._nonnegative = self._spatial_response()
            self._spatial_key = key
            self._spatial_version += 1
        return self._slices is not None

    def _spatial_response(self):
        """``PSF * (exposure x fraction)`` (a `_PlanesResponse` or `_ConvolvedResponse`), and whether it is >= 0."""
        fraction = self.model.spatial_model.integrate_geom_values(self._cutout_geom_true)
        nonnegative = self._frame_nonnegative and bool(fraction.min() >= 0)
        n_true = len(self._exposure)
        if self._kernel is None:
            response = _PlanesResponse((self._exposure * fraction).reshape(n_true, -1))
        elif fraction.ndim == 2 and np.count_nonzero(fraction) <= MAX_PIXELS_DIRECT:
            response = _PlanesResponse(_place_kernels(self._exposure, fraction, self._kernel).reshape(n_true, -1))
        else:
            response = _convolve_support(self._exposure, fraction, self._kernel, self._convolvers, nonnegative)
        return response, nonnegative

    def _flux(self) -> np.ndarray:
        """Integral flux per true-energy bin (cm-2 s-1), cached on the spectral parameters."""
        spectral = self.model.spectral_model
        key = tuple(spectral.parameters.values)
        if key != self._flux_key:
            edges = self.arrays.energy_true_edges
            self._flux_values = np.asarray(spectral.integral_values(edges[:-1], edges[1:]), dtype=float)
            self._flux_key = key
            self._flux_version += 1
        return self._flux_values

    # --- 3. npred ---------------------------------------------------------------------------
    def compute_npred(self):
        """``(slices, npred)``: the cutout's ``{"y": slice, "x": slice}`` and counts (energy, y, x).

        None when the source does not reach the dataset.
        """
        if not self._update_spatial():
            return None
        return self._slices, self._folded(self._flux()).reshape(-1, *self._cutout_shape)

    def _folded(self, flux) -> np.ndarray:
        """npred (energy, cutout pixels): the response folded with the flux and the energy dispersion."""
        key = (self._spatial_version, self._flux_version)
        if key != self._npred_key:
            self._npred = self._response.fold((self._edisp * flux[:, None]).T)
            self._npred_key = key
        return self._npred

    def counted_npred(self, counted: CountedBins) -> CountedNpred | None:
        """Predicted counts at the counted bins of the cutout and their sum over its fitted bins.

        What the Cash statistic needs (see `CountedBins`). A new position folds
        the response once; further spectra at the same position cost the product
        of the flux with a (true energy, counted bins) matrix. For extended
        sources the two ways agree to the FFT's float32 rounding (1e-7 of npred).
        None when the source does not reach the dataset.
        """
        if not self._update_spatial():
            return None
        flux = self._flux()
        if counted is not self._counted_for:  # another mask: nothing cached applies
            self._counted_for, self._counted_keys = counted, {}
        keys = self._counted_keys
        if keys.get("frame") != self._frame_node:
            self._bins_in_frame = self._counted_in_frame(counted)
            keys["frame"] = self._frame_node
        key = (self._spatial_version, self._flux_version)
        if keys.get("npred") != key:
            if keys.get("first") is None or keys["first"][0] != self._spatial_version:
                keys["first"] = key  # the first spectrum folded at this position
            values, fitted_sum = self._counted_values(flux, fold=keys["first"] == key)
            nonnegative = self._nonnegative and bool(flux.min() >= 0)
            self._counted = CountedNpred(self._bins_in_frame[0], values, fitted_sum, nonnegative)
            keys["npred"] = key
        return self._counted

    def _counted_in_frame(self, counted: CountedBins):
        """The counted bins in the cutout: ``(positions in counted, reco-energy indices, cutout pixels, fitted)``.

        ``fitted`` is the cutout's fitted-bin mask as floats (energy, pixels), None when all are fitted.
        """
        ys, xs = self._slices["y"], self._slices["x"]
        positions = np.flatnonzero((counted.y >= ys.start) & (counted.y < ys.stop)
                                   & (counted.x >= xs.start) & (counted.x < xs.stop))
        pixels = (counted.y[positions] - ys.start) * self._cutout_shape[1] + counted.x[positions] - xs.start
        fitted = counted.mask[:, ys, xs].reshape(len(counted.mask), -1)
        return positions, counted.energy[positions], pixels, None if fitted.all() else fitted.astype(float)

    def _counted_values(self, flux, fold) -> tuple[np.ndarray, float]:
        """npred at the counted bins of the cutout and its sum over the fitted bins.

        With ``fold`` (and no planes at hand) from the folded npred; otherwise
        from the planes per true energy, kept for the next spectrum.
        """
        _, energy, pixels, fitted = self._bins_in_frame
        if fold and not self._response.has_planes:
            npred = self._folded(flux)
            return npred[energy, pixels], float(npred.sum() if fitted is None else np.vdot(fitted, npred))
        if self._counted_keys.get("columns") != self._spatial_version:
            planes = self._response.planes()
            # edisp[t, e] x response[t, p] at the counted bins, and summed over the fitted bins
            columns = self._edisp[:, energy] * planes[:, pixels]
            per_energy = planes.sum(axis=1)[:, None] if fitted is None else planes @ fitted.T
            self._columns = columns, (self._edisp * per_energy).sum(axis=1)
            self._counted_keys["columns"] = self._spatial_version
        columns, fitted_sum = self._columns
        return flux @ columns, float(flux @ fitted_sum)

    def _position(self) -> tuple[float, float]:
        """Source position (deg) in the dataset's frame (a template's: its map centre); the
        dataset's map centre for diffuse models."""
        spatial = self.model.spatial_model
        if not hasattr(spatial, "lon_0"):  # templates (the centre of their map), diffuse models (the dataset's)
            position = spatial.position if spatial.evaluation_radius is not None else None
            c = (position if position is not None else self.arrays.geom.center_skydir).transform_to(self.arrays.geom.frame)
            return float(c.spherical.lon.deg), float(c.spherical.lat.deg)
        lon, lat = float(spatial.lon_0.value), float(spatial.lat_0.value)
        frame = spatial.frame
        if frame == self.arrays.geom.frame:
            return lon, lat
        from astropy.coordinates import SkyCoord

        c = SkyCoord(lon, lat, unit="deg", frame=frame).transform_to(self.arrays.geom.frame)
        return float(c.spherical.lon.deg), float(c.spherical.lat.deg)
