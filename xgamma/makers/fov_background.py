"""Field-of-view background normalisation: `FoVBackgroundMaker`."""

from __future__ import annotations

import copy
import logging
import warnings

import numpy as np
import xarray as xr
from scipy.optimize import minimize

from ..datasets.core import with_values
from ..geom import WcsGeom

__all__ = ["FoVBackgroundMaker"]

log = logging.getLogger(__name__)

_METHODS = ("scale", "fit")


class FoVBackgroundMaker:
    """Normalise a dataset's IRF background to its counts outside exclusion regions.

    Parameters
    ----------
    method : {"scale", "fit"}
        ``scale``: norm = counts / background summed over the usable bins.
        ``fit``: maximise the Poisson likelihood (Cash statistic) of the
        counts for the background model ``norm x B x (E / 1 TeV)**-tilt``
        over the usable bins, with scipy.
    exclusion_mask : `xarray.DataArray`, optional
        Boolean WCS map (dims ``(y, x)`` or ``(energy, y, x)``, attr ``wcs``),
        **True where a pixel may be used**, False inside exclusion regions
        (Gammapy's convention; e.g. ``~geom.region_mask(regions)``). It may
        cover a larger grid than the dataset: it is looked up at the dataset's
        pixel centres; pixels outside it count as usable.
    fit_tilt : bool
        With ``method="fit"``, also fit the spectral tilt (frozen at 0 by default).

    Notes
    -----
    With the usable bins ``i`` and a norm-only model ``mu_i = norm x b_i``,
    the Cash statistic ``C = 2 sum_i (mu_i - n_i ln mu_i)`` has
    ``dC/dnorm = 2 sum_i (b_i - n_i / norm) = 0``, so the best fit is
    ``norm = sum_i n_i / sum_i b_i``: "fit" and "scale" agree unless the
    tilt is fitted as well.

    The result's background is multiplied by the model, its attrs hold
    ``fov_background_norm`` (and ``fov_background_tilt`` when fitted). When no
    counts (or no background) fall in the usable bins, a warning is emitted
    and the dataset is returned unchanged.
    """

    def __init__(self, method="scale", exclusion_mask=None, fit_tilt=False):
        self.method = method
        self.exclusion_mask = exclusion_mask
        self.fit_tilt = fit_tilt

    def __repr__(self):
        mask = None if self.exclusion_mask is None else "<mask>"
        return f"FoVBackgroundMaker(method={self.method!r}, exclusion_mask={mask}, fit_tilt={self.fit_tilt!r})"

    def make_mask(self, dataset) -> xr.DataArray:
        """Usable bins: ``mask_safe`` and not excluded (dims ``(energy, y, x)``)."""
        mask = dataset.mask_safe
        if self.exclusion_mask is None:
            return mask
        allowed = _lookup_mask(self.exclusion_mask, dataset.geom.to_image())
        return (mask & allowed).transpose(*mask.dims)

    def run(self, dataset, observation=None):
        """Normalise the background of ``dataset``.

        Parameters
        ----------
        dataset : `~xgamma.datasets.MapDataset`
            Dataset with ``counts``, ``background`` and ``mask_safe``.
        observation : `~xgamma.data.Observation`, optional
            Unused; accepted so that all makers share ``run(dataset, observation)``.

        Returns
        -------
        `~xgamma.datasets.MapDataset`
            Copy with the scaled background and the fitted parameters in attrs.
        """
        if self.method not in _METHODS:
            raise ValueError(f"FoVBackgroundMaker: method must be one of {_METHODS}, got {self.method!r}")
        for name in ("counts", "background"):
            if name not in dataset.data:
                raise ValueError(f"FoVBackgroundMaker needs {name!r} in dataset {dataset.name!r}")
        mask = self.make_mask(dataset).values
        counts = dataset.data["counts"].values
        background = dataset.data["background"].values
        n, b = _masked_sum(counts, mask), _masked_sum(background, mask)
        if n <= 0 or b <= 0:
            warnings.warn(
                f"FoVBackgroundMaker: dataset {dataset.name!r} has {n:g} counts and {b:g} background outside "
                f"the exclusion regions within mask_safe; background left unchanged",
                stacklevel=2,
            )
            return dataset
        norm, tilt = n / b, 0.0
        if self.method == "fit" and self.fit_tilt:
            energy = dataset.energy_axis.center.to_value("TeV")[:, None, None]
            factor = np.broadcast_to(energy, counts.shape)[mask]
            norm, tilt = _fit_norm_tilt(counts[mask], background[mask], factor, norm)
        scale = norm * dataset.energy_axis.center.to_value("TeV")[:, None, None] ** -tilt
        stored = dataset.data["background"]
        per_energy = scale[:, 0, 0].reshape([-1 if d == "energy" else 1 for d in stored.dims])
        out = type(dataset)(with_values(dataset.data, {"background": stored.values * per_energy}))  # only that replaced
        out.data.attrs = dict(copy.deepcopy(dataset.data.attrs), fov_background_norm=float(norm))
        if self.method == "fit" and self.fit_tilt:
            out.data.attrs["fov_background_tilt"] = float(tilt)
        return out


def _fit_norm_tilt(counts, background, energy, norm0):
    """Cash fit of ``norm x b x E**-tilt`` to the counts (E in TeV)."""
    log_e = np.log(energy)

    def cash(p):
        mu = p[0] * background * np.exp(-p[1] * log_e)
        return 2 * np.sum(mu - counts * np.log(np.clip(mu, 1e-300, None)))

    result = minimize(cash, x0=[norm0, 0.0], method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-8})
    if not result.success:
        log.warning("FoVBackgroundMaker: norm/tilt fit did not converge (%s)", result.message)
    return float(result.x[0]), float(result.x[1])


def _lookup_mask(mask: xr.DataArray, image: WcsGeom) -> xr.DataArray:
    """Values of a boolean WCS map at the pixel centres of ``image`` (True outside the map)."""
    if "wcs" not in mask.attrs:
        raise ValueError("exclusion_mask must be a WCS map (a DataArray with a 'wcs' attr)")
    source = WcsGeom.from_dataarray(mask).to_image()
    if source == image:
        return mask.astype(bool)
    x, y = source.coord_to_pix(image.pix_to_skycoord(*np.meshgrid(np.arange(image.npix[0]), np.arange(image.npix[1]))))
    nx, ny = source.npix
    with np.errstate(invalid="ignore"):
        ix, iy = np.floor(x + 0.5), np.floor(y + 0.5)
    inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    ix, iy = np.where(inside, ix, 0).astype(int), np.where(inside, iy, 0).astype(int)
    values = mask.astype(bool).isel(y=xr.DataArray(iy, dims=("y", "x")), x=xr.DataArray(ix, dims=("y", "x")))
    return values.where(xr.DataArray(inside, dims=("y", "x")), True).astype(bool).drop_vars(
        [c for c in values.coords if c not in values.dims], errors="ignore"
    )


def _masked_sum(values: np.ndarray, mask: np.ndarray) -> float:
    """Sum of ``values`` where ``mask`` (same shape).

    A dot product with the mask, about eight times faster than
    ``np.sum(values, where=mask)``; that masked sum itself when the product
    meets a NaN or an infinity (which a False would not clear).
    """
    total = np.einsum("i,i->", values.ravel(), mask.ravel())
    if not np.isfinite(total):
        total = np.sum(values, where=mask)
    return float(total)
