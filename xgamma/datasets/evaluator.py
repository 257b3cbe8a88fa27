"""Forward folding: predicted counts of one source in one dataset.

``npred(E, p) = Edisp[ PSF * ( exposure(E_t, p) x flux(E_t) x fraction(p) ) ]``

- `MapEvaluator` does this for a `SkyModel` on a `MapDataset`, on a cutout
  around the source (wide enough for the model and the PSF kernel).
- `SpectrumEvaluator` does it for a 1-D dataset: ``exposure x flux`` folded
  with the energy-dispersion matrix.

Everything works on NumPy arrays pulled out of the dataset once
(`FitArrays`). The parts that depend only on some parameters are cached:

1. *frame* (cutout slices, PSF kernel, energy-dispersion matrix): built
   at the node of a fixed grid (half an IRF pixel apart) nearest to the
   source, so npred is a function of the parameters alone (not of the
   order of the calls) and smooth while the source stays near one node;
2. *spatial response* ``PSF * (exposure x fraction)`` per true-energy bin:
   rebuilt when a spatial parameter changes;
3. *npred*: ``sum_t flux_t edisp[t, e] response[t]``, rebuilt when a
   spectral parameter changes (the edisp product is kept with the response,
   so a spectral fit costs one weighted sum per call).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import irfft2, next_fast_len, rfft2

from ..axes import MapAxis
from ..geom import WcsGeom

__all__ = ["FitArrays", "MapEvaluator", "SpectrumEvaluator", "edisp_kernel_from_migra", "psf_kernel"]

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


def _place_kernels(response, fraction, kernel) -> np.ndarray:
    """``fftconvolve(response, kernel, mode="same")`` for a response with few non-zero pixels."""
    _, ny, nx = response.shape
    half = kernel.shape[-1] // 2
    out = np.zeros_like(response)
    for iy, ix in zip(*np.nonzero(fraction)):  # at most MAX_PIXELS_DIRECT pixels
        y0, y1 = max(iy - half, 0), min(iy + half + 1, ny)
        x0, x1 = max(ix - half, 0), min(ix + half + 1, nx)
        placed = kernel[:, y0 - iy + half:y1 - iy + half, x0 - ix + half:x1 - ix + half]
        out[:, y0:y1, x0:x1] += response[:, iy, ix, None, None] * placed
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

    @property
    def energy_center(self) -> np.ndarray:
        return np.sqrt(self.energy_edges[:-1] * self.energy_edges[1:])


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
    """Full 2-D convolution (``fftconvolve(image, kernel, mode="full")``) per plane, kernel transform kept."""

    def __init__(self, kernel, image_shape):
        n_kernel = kernel.shape[-1]
        self._full_shape = tuple(n + n_kernel - 1 for n in image_shape)
        self._shape = tuple(next_fast_len(n, real=True) for n in self._full_shape)
        # single precision: twice as fast, and 1e-7 relative is far below Poisson noise
        self._kernel_fft = rfft2(kernel.astype(np.float32), s=self._shape, axes=(1, 2))

    def __call__(self, images) -> np.ndarray:
        spectrum = rfft2(images.astype(np.float32), s=self._shape, axes=(1, 2)) * self._kernel_fft
        full = irfft2(spectrum, s=self._shape, axes=(1, 2))
        return full[:, :self._full_shape[0], :self._full_shape[1]].astype(np.float64)


def _convolve_support(response, fraction, kernel, convolvers) -> np.ndarray:
    """``fftconvolve(response, kernel, mode="same")``, transforming only the box where the source is.

    ``convolvers`` caches an `_FFTConvolver` per box shape (it changes little as a source moves).
    """
    support = fraction if fraction.ndim == 2 else fraction.any(axis=0)
    rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
    out = np.zeros_like(response)
    if rows.size == 0:
        return out
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    sub = response[:, y0:y1, x0:x1]
    if sub.shape[1:] not in convolvers:
        convolvers[sub.shape[1:]] = _FFTConvolver(kernel, sub.shape[1:])
    full = convolvers[sub.shape[1:]](sub)
    # full[:, i, j] lands on response pixel (y0 - half + i, x0 - half + j); clip to the cutout
    half, (_, ny, nx) = kernel.shape[-1] // 2, response.shape
    top, left = y0 - half, x0 - half
    ys, xs = slice(max(top, 0), min(top + full.shape[1], ny)), slice(max(left, 0), min(left + full.shape[2], nx))
    out[:, ys, xs] = full[:, ys.start - top:ys.stop - top, xs.start - left:xs.stop - left]
    return out


class SpectrumEvaluator:
    """Predicted counts of one `SkyModel` in a 1-D dataset (energy)."""

    def __init__(self, model, arrays: FitArrays):
        self.model = model
        self.arrays = arrays
        self._key = None
        self._npred = None

    def compute_npred(self) -> np.ndarray:
        """Predicted counts per reco-energy bin (cached on the spectral parameter values)."""
        spectral = self.model.spectral_model
        key = tuple(spectral.parameters.values)
        if key != self._key:
            a = self.arrays
            flux = spectral.integral_values(a.energy_true_edges[:-1], a.energy_true_edges[1:])
            npred_true = flux * a.exposure
            self._npred = npred_true @ a.edisp if a.edisp is not None else npred_true
            self._key = key
        return self._npred


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
        self._spatial_key = self._spectral_key = None

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
        self._spatial_key = self._spectral_key = None
        self._convolvers = {}

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
    def _spatial_response(self) -> np.ndarray:
        fraction = self.model.spatial_model.integrate_geom_values(self._cutout_geom_true)
        response = self._exposure * fraction  # (energy_true, y, x)
        if self._kernel is None:
            return response
        if fraction.ndim == 2 and np.count_nonzero(fraction) <= MAX_PIXELS_DIRECT:
            return _place_kernels(response, fraction, self._kernel)
        return _convolve_support(response, fraction, self._kernel, self._convolvers)

    # --- 3. npred ---------------------------------------------------------------------------
    def compute_npred(self):
        """``(slices, npred)``: the cutout's ``{"y": slice, "x": slice}`` and counts (energy, y, x).

        None when the source does not reach the dataset.
        """
        spatial = self.model.spatial_model
        node = self._node_of(*self._position())
        if node != self._frame_node:
            self._build_frame(node)
        if self._slices is None:
            return None
        spatial_key = tuple(spatial.parameters.values)
        if spatial_key != self._spatial_key:
            self._response = self._dispersed(self._spatial_response())
            self._spatial_key, self._spectral_key = spatial_key, None
        spectral_key = tuple(self.model.spectral_model.parameters.values)
        if spectral_key != self._spectral_key:
            self._npred = self._fold(self._response)
            self._spectral_key = spectral_key
        return self._slices, self._npred

    def _dispersed(self, response) -> np.ndarray:
        """``edisp[t, e] x response[t, y, x]`` as (energy_true, energy, pixels): spectral changes are then one sum."""
        if self._edisp is None:
            return response.reshape(response.shape[0], 1, -1)
        return self._edisp[:, :, None] * response.reshape(response.shape[0], 1, -1)

    def _fold(self, dispersed) -> np.ndarray:
        a = self.arrays
        flux = self.model.spectral_model.integral_values(a.energy_true_edges[:-1], a.energy_true_edges[1:])
        # a weighted sum over the (few) true-energy bins, not a BLAS product: BLAS threads fight
        # Dask workers and each other, and this is as fast single-threaded
        npred = np.zeros(dispersed.shape[1:])
        for weight, plane in zip(np.asarray(flux, dtype=float), dispersed):
            npred += weight * plane
        ny, nx = self._cutout_shape
        return npred.reshape(-1, ny, nx)

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
