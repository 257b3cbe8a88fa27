"""3-D On/Off datasets: `MapDatasetOnOff`.

Which one to use when:

- `~xgamma.datasets.MapDataset`: the background is a model (the IRF
  background, possibly renormalised by `~xgamma.makers.FoVBackgroundMaker`);
  fit with the Cash statistic.
- `MapDatasetOnOff`: the background of every pixel is measured in OFF
  pixels (e.g. a ring around it, `~xgamma.makers.RingBackgroundMaker`):
  ``background = alpha * counts_off`` with ``alpha = acceptance /
  acceptance_off``; significances are Li & Ma's, fits use WStat.

Layout: the variables of `MapDataset` (see `xgamma.datasets.core`) except
``background``, plus

=================  ===================  =====  ======================================
variable           dims                 units  meaning
=================  ===================  =====  ======================================
counts_off         (energy, y, x)       ""     OFF counts of each ON pixel
acceptance         (energy, y, x)       ""     expected background counts in the pixel
acceptance_off     (energy, y, x)       ""     expected background in its OFF region
=================  ===================  =====  ======================================

They stack with the rules of `xgamma.datasets.stacking`: counts, counts_off
and acceptance add inside each ``mask_safe``, and the stacked
``acceptance_off`` is such that ``alpha = sum(alpha_i counts_off_i) /
sum(counts_off_i)``, i.e. the stacked background is the sum of the
backgrounds.

Images and correlated maps
--------------------------
`MapDatasetOnOff.to_image` sums over the energy axis (inside the safe
mask) with the same rules; `MapDatasetOnOff.correlate` sums counts, OFF
counts and backgrounds over a disk around every pixel, so that ``sqrt_ts``
of the result is the Li & Ma significance of a circular ON region of that
radius centred on each pixel (what Gammapy's ``ExcessMapEstimator`` calls
the correlation radius).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.signal import fftconvolve

from ..geom import WcsGeom
from ..geom.wcs import angular_separation
from ..stats import li_ma_significance
from ..units import to_value
from .fitting import OnOffFitMixin
from .map import MapDataset
from .stacking import from_sums, stack_datasets, to_sums

__all__ = ["MapDatasetOnOff"]

_ONOFF = ("counts_off", "acceptance", "acceptance_off")
#: additive variables of `to_sums` that are summed over an image or a kernel
_ADDITIVE = ("counts", "counts_off", "acceptance", "acceptance_off", "background_off")


# ---- flat-sky kernels (shared with xgamma.makers.ring) ----------------------
def _pixel_scale(geom: WcsGeom) -> tuple[float, float]:
    """Angular size of one pixel step along ``x`` and ``y`` at the map centre, deg."""
    cx, cy = geom.center_pix
    lon, lat = geom.pix_to_coord(np.array([cx - 0.5, cx + 0.5, cx, cx]), np.array([cy, cy, cy - 0.5, cy + 0.5]))
    dx = float(angular_separation(lon[0], lat[0], lon[1], lat[1]))
    dy = float(angular_separation(lon[2], lat[2], lon[3], lat[3]))
    return dx, dy


def _annulus_kernel(geom: WcsGeom, r_in: float, r_out: float) -> np.ndarray:
    """Kernel (y, x) of ones where ``r_in <= r <= r_out`` (deg), zeros elsewhere.

    ``r`` is the flat-sky distance between pixel centres,
    ``hypot(dx * i, dy * j)`` with the pixel sizes ``dx``, ``dy`` at the map
    centre (`_pixel_scale`); ``r_in = 0`` gives a disk. The kernel has an odd
    number of pixels along both axes, centred on its middle pixel.
    """
    dx, dy = _pixel_scale(geom)
    kx, ky = int(np.floor(r_out / dx + 1e-9)), int(np.floor(r_out / dy + 1e-9))
    iy, ix = np.mgrid[-ky : ky + 1, -kx : kx + 1]
    r = np.hypot(ix * dx, iy * dy)
    tol = 1e-9 * max(dx, dy)  # radii falling exactly on pixel centres count as inside
    return ((r >= r_in - tol) & (r <= r_out + tol)).astype(float)


def _kernel_sum_numpy(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over the kernel footprint around each pixel of the last two axes.

    FFT convolution (`scipy.signal.fftconvolve`, ``mode="same"``; the kernels
    are point-symmetric, so convolution and correlation agree), vectorised
    over the leading axes. Round-off is cleaned: results below ``1e-11`` of
    the plane's summed ``|values|`` become 0, non-negative input gives
    non-negative output, and integer-valued input gives integers (the exact
    sum of integers).
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0 or not kernel.any():
        return np.zeros_like(values)
    out = fftconvolve(values, kernel.reshape((1,) * (values.ndim - 2) + kernel.shape), mode="same", axes=(-2, -1))
    tol = 1e-11 * np.abs(values).sum(axis=(-2, -1), keepdims=True)
    out[np.abs(out) <= tol] = 0.0
    if values.min() >= 0:
        np.clip(out, 0.0, None, out=out)
    if np.array_equal(values, np.rint(values)):
        np.rint(out, out=out)
    return out


def _kernel_sum(da: xr.DataArray, kernel: np.ndarray) -> xr.DataArray:
    """`_kernel_sum_numpy` over the named core dims ``(y, x)``; other dims are looped over.

    Dask-backed input stays lazy when ``y`` and ``x`` are single chunks
    (xarray raises otherwise, naming the dimension to rechunk).
    """
    out = xr.apply_ufunc(
        _kernel_sum_numpy, da.astype(float), kwargs={"kernel": kernel},
        input_core_dims=[["y", "x"]], output_core_dims=[["y", "x"]],
        dask="parallelized", output_dtypes=[float],
    )
    out = out.transpose(*da.dims)
    out.attrs = dict(da.attrs)
    return out


def _map_attrs(da: xr.DataArray, template: xr.DataArray, name: str, units: str = "") -> xr.DataArray:
    da = da.rename(name)
    da.attrs = {"units": units, "wcs": template.attrs["wcs"]}
    return da


class MapDatasetOnOff(OnOffFitMixin, MapDataset):
    """Binned 3-D dataset with OFF counts measured for every pixel (WStat / Li & Ma).

    Build one with `from_map_dataset` (e.g. from a
    `~xgamma.makers.RingBackgroundMaker`) or an empty one with `create`.

    Parameters
    ----------
    data : `xarray.Dataset`
        Variables of `MapDataset` (``background`` is not used) plus
        ``counts_off``, ``acceptance`` and ``acceptance_off`` (energy, y, x),
        dimensionless; see the module docstring.
    """

    required = MapDataset.required + ("counts",) + _ONOFF

    # ---- construction ----------------------------------------------------------
    @classmethod
    def create(cls, geom, energy_axis_true=None, migra_axis=None, rad_axis=None, binsz_irf=0.2, name=None,
               edisp="kernel") -> MapDatasetOnOff:
        """Empty On/Off dataset: zero counts and OFF counts, acceptances 1, no bin safe.

        Parameters are those of `MapDataset.create`. A neutral start for
        stacking (`stack`, `xgamma.datasets.stack_datasets` with
        ``template=``).

        Returns
        -------
        MapDatasetOnOff
        """
        base = MapDataset.create(geom, energy_axis_true=energy_axis_true, migra_axis=migra_axis, rad_axis=rad_axis,
                                 binsz_irf=binsz_irf, name=name, edisp=edisp)
        ones = xr.ones_like(base.counts)
        return cls.from_map_dataset(base, counts_off=xr.zeros_like(base.counts), acceptance=ones, acceptance_off=ones)

    @classmethod
    def from_map_dataset(cls, dataset: MapDataset, counts_off, acceptance, acceptance_off, mask_safe=None,
                         name=None) -> MapDatasetOnOff:
        """On/Off dataset from a `MapDataset` and per-pixel OFF measurements.

        Parameters
        ----------
        dataset : `~xgamma.datasets.MapDataset`
            Gives counts, exposure, IRF maps, mask and livetime; its
            ``background`` variable is dropped (the On/Off background is
            ``alpha * counts_off``).
        counts_off, acceptance, acceptance_off : `xarray.DataArray` or array-like
            Dimensionless, dims ``(energy, y, x)`` (a DataArray is matched by
            dim names, an array must broadcast to the counts' shape).
        mask_safe : `xarray.DataArray` or array-like of bool, optional
            Replacement safe mask (default: the dataset's).
        name : str, optional
            Name of the result (default: the dataset's).

        Returns
        -------
        MapDatasetOnOff

        Raises
        ------
        ValueError
            If an input has other dims or a shape that does not match the counts.
        """
        if "counts" not in dataset.data:
            raise ValueError(f"{cls.__name__}.from_map_dataset: dataset {dataset.name!r} has no 'counts'")
        data = dataset.data.drop_vars("background", errors="ignore").copy()
        template = dataset.counts
        inputs = {"counts_off": counts_off, "acceptance": acceptance, "acceptance_off": acceptance_off}
        if mask_safe is not None:
            inputs["mask_safe"] = mask_safe
        for key, values in inputs.items():
            dtype = bool if key == "mask_safe" else float
            values = _as_array_like(values, template, key, dtype)
            var = template.copy(data=values)
            var.attrs = {"units": "", "wcs": template.attrs["wcs"]}
            data[key] = var
        if name is not None:
            data.attrs["name"] = str(name)
        return cls(data)

    # ---- On/Off quantities --------------------------------------------------------
    @property
    def counts_off(self) -> xr.DataArray:
        """OFF counts of every pixel (energy, y, x)."""
        return self._data["counts_off"]

    @property
    def acceptance(self) -> xr.DataArray:
        """Expected background counts in every ON pixel (energy, y, x), dimensionless."""
        return self._data["acceptance"]

    @property
    def acceptance_off(self) -> xr.DataArray:
        """Expected background counts in the OFF region of every pixel (energy, y, x)."""
        return self._data["acceptance_off"]

    @property
    def alpha(self) -> xr.DataArray:
        """``acceptance / acceptance_off`` per bin (0 where ``acceptance_off`` is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = (self.acceptance / self.acceptance_off.where(self.acceptance_off > 0)).fillna(0.0)
        return _map_attrs(alpha, self.counts, "alpha")

    @property
    def background(self) -> xr.DataArray:
        """Background counts of every pixel, ``alpha * counts_off`` (energy, y, x)."""
        return _map_attrs(self.alpha * self.counts_off, self.counts, "background")

    @property
    def excess(self) -> xr.DataArray:
        """``counts - alpha * counts_off`` per bin (energy, y, x)."""
        return _map_attrs(self.counts - self.background, self.counts, "excess")

    @property
    def sqrt_ts(self) -> xr.DataArray:
        """Signed Li & Ma (1983, eq. 17) significance of every bin, in Gaussian sigmas.

        NaN where ``alpha`` is 0 (no OFF measurement). Pixels are
        independent ON regions of one pixel each; see `correlate` for the
        significance of larger ON regions.
        """
        alpha = self.alpha
        sqrt_ts = xr.apply_ufunc(
            li_ma_significance, self.counts, self.counts_off, alpha.where(alpha > 0),
            dask="parallelized", output_dtypes=[float],
        )
        return _map_attrs(sqrt_ts.transpose(*self.counts.dims), self.counts, "sqrt_ts")

    def info_dict(self, in_safe_data_range=True) -> dict:
        """Summary numbers summed over the safe bins, defined as in Gammapy.

        ``alpha`` of the sum is the summed background over the summed OFF
        counts, ``sum(alpha_i n_off_i) / sum(n_off_i)``; ``acceptance`` is
        summed and ``acceptance_off = acceptance / alpha``; ``excess =
        counts - background`` and ``sqrt_ts`` is the Li & Ma (eq. 17)
        significance of the summed counts with that alpha. Pixels' OFF
        regions overlap, so for a sum over many pixels this treats shared
        OFF counts as independent (as Gammapy does): use it for an ON region
        of a few pixels, or see `correlate`.

        Parameters
        ----------
        in_safe_data_range : bool
            Sum over the ``mask_safe`` bins only (default) or over all bins.

        Returns
        -------
        dict
            ``name``, ``counts``, ``counts_off``, ``background``, ``alpha``,
            ``acceptance``, ``acceptance_off``, ``excess``, ``sqrt_ts``
            (sigmas), ``exposure_min``/``exposure_max`` (cm2 s), ``livetime``
            (s), ``n_bins`` (bins summed), ``obs_ids``.
        """
        mask = self.mask_safe if in_safe_data_range else xr.ones_like(self.mask_safe, dtype=bool)

        def total(da):
            return float(da.where(mask, 0.0).sum())

        counts, counts_off = total(self.counts), total(self.counts_off)
        background, acceptance = total(self.background), total(self.acceptance)
        if counts_off > 0:
            alpha = background / counts_off
        else:
            safe_alpha = self.alpha.where(mask & (self.acceptance_off > 0))
            alpha = float(safe_alpha.mean()) if bool(safe_alpha.notnull().any()) else float("nan")
        exposure = self.exposure.values if self.exposure is not None else np.array([np.nan])
        return {
            "name": self.name,
            "counts": counts,
            "counts_off": counts_off,
            "background": background,
            "alpha": alpha,
            "acceptance": acceptance,
            "acceptance_off": acceptance / alpha if alpha > 0 else float("nan"),
            "excess": counts - background,
            "sqrt_ts": float(li_ma_significance(counts, counts_off, alpha)) if alpha > 0 else float("nan"),
            "exposure_min": float(np.nanmin(exposure)) if exposure.size else float("nan"),
            "exposure_max": float(np.nanmax(exposure)) if exposure.size else float("nan"),
            "livetime": self.livetime,
            "n_bins": int(mask.sum()),
            "obs_ids": self.obs_ids,
        }

    # ---- reductions -------------------------------------------------------------------
    def to_image(self, name=None) -> MapDatasetOnOff:
        """Sum over the reconstructed-energy axis inside the safe mask.

        Counts, OFF counts and acceptances are summed over the safe energy
        bins of each pixel and the summed background ``alpha_i x
        counts_off_i`` sets the image's alpha (the stacking rules of
        `xgamma.datasets.stacking`), so the image's background is the sum of
        the bins' backgrounds. ``mask_safe`` becomes "safe in any bin",
        ``edisp`` the probability of landing in the safe reco range;
        exposure and PSF are kept.

        Parameters
        ----------
        name : str, optional
            Name of the image dataset (default: this dataset's).

        Returns
        -------
        MapDatasetOnOff
            One ``energy`` bin spanning the whole axis.
        """
        sums = to_sums(self._data)
        squashed = self.energy_axis.squash().to_coords()
        summed = {}
        for key, var in sums.data_vars.items():
            if "energy" in var.dims:
                reduced = var.sum("energy").expand_dims("energy", axis=var.dims.index("energy"))
                reduced.attrs = dict(var.attrs)
                summed[key] = reduced
            else:
                summed[key] = var
        coords = {k: v for k, v in sums.coords.items() if "energy" not in v.dims}
        image_sums = xr.Dataset(summed, coords=coords | squashed, attrs=dict(sums.attrs))
        data = from_sums(image_sums, units=self._irf_units())
        return self._wrap(data, name)

    def correlate(self, radius, name=None) -> MapDatasetOnOff:
        """Sum counts, OFF counts and backgrounds over a disk around every pixel.

        Every additive variable (counts, counts_off, acceptance and the
        background ``alpha x counts_off``, each zeroed outside ``mask_safe``)
        is summed over the pixels within ``radius`` of each pixel (a flat-sky
        disk with the pixel size at the map centre, by FFT convolution per
        energy bin), and alpha is the summed background over the summed OFF
        counts. The result's ``sqrt_ts`` and ``excess`` are then those of a
        circular ON region of ``radius`` centred on each pixel: a
        significance map (Gammapy's ``ExcessMapEstimator`` with
        ``correlation_radius``). ``mask_safe``, exposure and IRFs are kept.

        Parameters
        ----------
        radius : float, str or `~astropy.units.Quantity`
            Correlation radius, deg (plain numbers in deg).
        name : str, optional
            Name of the result (default: this dataset's).

        Returns
        -------
        MapDatasetOnOff
            Neighbouring pixels are correlated; OFF counts shared by the
            rings of several ON pixels are counted once per pixel (as in
            Gammapy).
        """
        radius_deg = to_value(radius, "deg", "radius")
        if not radius_deg >= 0:
            raise ValueError(f"correlate: radius must be >= 0 deg, got {radius!r}")
        kernel = _annulus_kernel(self.geom.to_image(), 0.0, radius_deg)
        sums = to_sums(self._data)
        for key in _ADDITIVE:
            if key in sums:
                sums[key] = _kernel_sum(sums[key], kernel)
        data = from_sums(sums, units=self._irf_units())
        data["mask_safe"] = self.mask_safe
        return self._wrap(data, name)

    def _irf_units(self) -> dict:
        return {key: self._data[key].attrs.get("units", "") for key in ("psf", "edisp") if key in self._data}

    def _wrap(self, data: xr.Dataset, name) -> MapDatasetOnOff:
        data.attrs = dict(self._data.attrs) | ({"name": str(name)} if name is not None else {})
        for key in _ONOFF:
            data[key].attrs = {"units": "", "wcs": self.counts.attrs["wcs"]}
        return type(self)(data)

    def stack(self, other: MapDatasetOnOff) -> MapDatasetOnOff:
        """Stack ``other`` into this dataset's geometry (see `xgamma.datasets.stacking`).

        Counts, OFF counts and acceptances add inside each ``mask_safe``;
        the stacked ``alpha`` is ``sum(alpha_i n_off_i) / sum(n_off_i)`` so
        the backgrounds add; exposure adds, IRFs are exposure-weighted,
        masks are OR-ed. ``other`` may be a cutout of this grid.

        Returns
        -------
        MapDatasetOnOff
        """
        if not isinstance(other, MapDatasetOnOff):
            raise TypeError(f"cannot stack {type(other).__name__} onto MapDatasetOnOff (run a background maker first)")
        if self.energy_axis != other.energy_axis:
            raise ValueError(f"cannot stack {other.name!r} onto {self.name!r}: energy axes differ "
                             f"({other.energy_axis} / {self.energy_axis})")
        same_grid = self.counts.sizes == other.counts.sizes and self.counts.attrs["wcs"] == other.counts.attrs["wcs"]
        stacked = stack_datasets([self, other], template=None if same_grid else self)
        stacked.data.attrs["name"] = self.name or "stacked"
        return stacked

    def _repr_lines(self) -> list[str]:
        lines = super()._repr_lines()
        info = self.info_dict()
        lines.insert(3, f"  counts_off: {info['counts_off']:.0f}, alpha: {info['alpha']:.4g} (in mask_safe)")
        return lines

    def __repr__(self):
        return "\n".join(self._repr_lines())


def _as_array_like(values, template: xr.DataArray, key: str, dtype) -> np.ndarray:
    """``values`` as an array of the template's shape, DataArrays matched by dim names."""
    if isinstance(values, xr.DataArray):
        if set(values.dims) - set(template.dims):
            raise ValueError(f"{key} has dims {values.dims}, expected a subset of {template.dims}")
        values = values.broadcast_like(template).transpose(*template.dims)
        if values.shape != template.shape:
            raise ValueError(f"{key} has shape {values.shape} for dims {values.dims}, the counts have {template.shape}")
        return np.asarray(values.values, dtype=dtype).copy()
    values = np.asarray(values, dtype=dtype)
    try:
        return np.broadcast_to(values, template.shape).copy()
    except ValueError:
        raise ValueError(f"{key} has shape {values.shape}, which does not broadcast to the counts' shape "
                         f"{template.shape} (dims {template.dims})") from None
