"""`FluxPointsDataset`: fit spectral models to flux points with a chi2.

Use it for a spectral fit when only flux points are at hand (published
SEDs, catalogue points, points from another instrument), alone or in a
joint fit with reduced datasets (`Datasets([spectrum_dataset,
flux_points_dataset])`). When the counts and IRFs are available, fitting
them (`SpectrumDatasetOnOff`, `MapDataset`) is better: flux points carry
the reference model's assumptions and lose the Poisson nature of the data.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..estimators.points import FluxPoints

__all__ = ["FluxPointsDataset"]

_STAT_TYPES = ("chi2",)


class FluxPointsDataset:
    """Flux points with models: a chi2 between measured and model ``dnde``.

    Parameters
    ----------
    models : `~xgamma.modeling.Models`, list or `~xgamma.modeling.SkyModel`, optional
        The dataset keeps the sky models that apply to ``name`` and uses
        their spectral models (spatial and temporal parts are ignored).
    data : `~xgamma.estimators.FluxPoints`
        The measured points.
    mask_fit : array-like of bool or `xarray.DataArray`, optional
        Points used in the fit (dimension ``energy``); default all.
    mask_safe : array-like of bool or `xarray.DataArray`, optional
        Points that are valid at all; default all.
    name : str
        Dataset name (unique within `Datasets`).
    stat_type : {"chi2"}
        The fit statistic; see Notes.

    Notes
    -----
    With ``stat_type="chi2"`` the statistic of point ``i`` is

        ``chi2_i = ((dnde_i - model(e_ref_i)) / sigma_i) ** 2``

    where ``sigma_i`` is chosen by the sign of the residual when the points
    carry asymmetric errors: ``dnde_errn`` if the point lies above the model
    (the model is reached by going down from the measurement), ``dnde_errp``
    if it lies below. Points without finite asymmetric errors use
    ``dnde_err``. (Gammapy uses ``dnde_err`` throughout, and the mean of
    ``dnde_errp`` and ``dnde_errn`` without it; the choice by the side is
    the usual treatment of asymmetric errors, e.g. Barlow 2003,
    arXiv:physics/0306138, section 3, in its simplest form.)

    Upper limits (``is_ul``), points with a non-finite ``dnde`` and points
    without a finite positive ``sigma`` do not enter the chi2. ``stat_sum``
    adds the points in ``mask_safe & mask_fit``.
    """

    def __init__(self, models=None, data: FluxPoints | None = None, mask_fit=None, mask_safe=None, name="",
                 stat_type="chi2"):
        if not isinstance(data, FluxPoints):
            raise TypeError(f"FluxPointsDataset {name!r}: data must be FluxPoints, got {type(data).__name__}")
        if stat_type not in _STAT_TYPES:
            raise ValueError(f"FluxPointsDataset {name!r}: stat_type must be one of {_STAT_TYPES}, got {stat_type!r}")
        self._data = data
        self.name = str(name)
        self.stat_type = stat_type
        self.mask_safe = mask_safe
        self.mask_fit = mask_fit
        self.models = models

    @property
    def data(self) -> FluxPoints:
        """The measured points."""
        return self._data

    # --- models -----------------------------------------------------------------------------
    @property
    def models(self):
        """The sky models that apply to this dataset (`~xgamma.modeling.Models`), or None."""
        return self._models

    @models.setter
    def models(self, models):
        from ..modeling import Models

        self._models = None if models is None else Models(models).select(datasets_names=[self.name], tag="SkyModel")

    # --- masks ----------------------------------------------------------------------------------
    @property
    def mask_safe(self) -> xr.DataArray:
        """Points that are valid at all (bool on ``energy``)."""
        return self._mask_safe

    @mask_safe.setter
    def mask_safe(self, mask):
        self._mask_safe = self._as_mask(mask, "mask_safe")
        self._cache = None

    @property
    def mask_fit(self) -> xr.DataArray:
        """Points used in the fit (bool on ``energy``)."""
        return self._mask_fit

    @mask_fit.setter
    def mask_fit(self, mask):
        self._mask_fit = self._as_mask(mask, "mask_fit")
        self._cache = None

    @property
    def mask(self) -> xr.DataArray:
        """``mask_safe & mask_fit``."""
        return self.mask_safe & self.mask_fit

    def _as_mask(self, mask, label) -> xr.DataArray:
        template = self.data.dnde.reset_coords(drop=True).rename(label).assign_attrs(units="")
        if mask is None:
            return xr.ones_like(template, dtype=bool)
        values = np.asarray(mask.transpose("energy").values if isinstance(mask, xr.DataArray) else mask, dtype=bool)
        if values.shape != template.shape:
            raise ValueError(
                f"FluxPointsDataset {self.name!r}: {label} has shape {values.shape}, the points {template.shape} "
                "(one entry per point on 'energy')"
            )
        return template.copy(data=values)

    @property
    def mask_valid(self) -> xr.DataArray:
        """Points that can enter the chi2: finite ``dnde``, not an upper limit, a finite positive error."""
        data = self.data.data
        err, errp, errn = _errors(data)
        has_sigma = (_positive(errp) & _positive(errn)) | _positive(err)
        valid = np.isfinite(data["dnde"].values) & ~data["is_ul"].values & has_sigma
        return self._like_points(valid, "mask_valid", "")

    # --- predictions -----------------------------------------------------------------------------
    def flux_pred_values(self) -> np.ndarray:
        """Model ``dnde`` at ``e_ref`` (cm-2 s-1 TeV-1, NumPy), summed over the sky models."""
        e_ref = self._arrays()[0]
        total = np.zeros(e_ref.shape)
        for model in self.models or []:
            total = total + model.spectral_model.dnde_values(e_ref)
        return total

    def flux_pred(self) -> xr.DataArray:
        """Model ``dnde`` at ``e_ref`` (cm-2 s-1 TeV-1), labelled like the points."""
        return self._like_points(self.flux_pred_values(), "flux_pred", self.data.dnde.attrs["units"])

    def residuals(self, method="diff") -> xr.DataArray:
        """Measured minus model ``dnde``.

        Parameters
        ----------
        method : {"diff", "diff/model"}
            ``dnde - model`` (cm-2 s-1 TeV-1) or ``(dnde - model) / model`` (dimensionless).

        Returns
        -------
        `xarray.DataArray`
            On ``energy``; NaN where ``dnde`` is not finite.
        """
        model = self.flux_pred_values()
        diff = self.data.dnde.values - model
        if method == "diff":
            return self._like_points(diff, "residuals", self.data.dnde.attrs["units"])
        if method == "diff/model":
            with np.errstate(divide="ignore", invalid="ignore"):
                return self._like_points(diff / model, "residuals", "")
        raise ValueError(f"method must be 'diff' or 'diff/model', got {method!r}")

    def _like_points(self, values, name, units) -> xr.DataArray:
        return self.data.dnde.copy(data=np.asarray(values)).rename(name).assign_attrs(units=units)

    # --- statistic ---------------------------------------------------------------------------------
    def _arrays(self):
        """Energies, measured values, both error choices and the usable points as NumPy, built once (masks reset it)."""
        if self.__dict__.get("_cache") is None:
            err, errp, errn = _errors(self.data.data)
            asymmetric = _positive(errp) & _positive(errn)
            sigma_above = np.where(asymmetric, errn, err)  # the point lies above the model
            sigma_below = np.where(asymmetric, errp, err)
            valid = self.mask_valid.values
            self._cache = (self.data.e_ref.values, self.data.dnde.values, sigma_above, sigma_below, valid, valid & self.mask.values)
        return self._cache

    def stat_array(self) -> np.ndarray:
        """chi2 per point (NaN where a point cannot enter it: see `mask_valid`); no fit mask applied."""
        _, dnde, sigma_above, sigma_below, valid, _ = self._arrays()
        diff = dnde - self.flux_pred_values()
        sigma = np.where(diff > 0, sigma_above, sigma_below)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(valid, (diff / sigma) ** 2, np.nan)

    def stat_sum(self) -> float:
        """Sum of the chi2 over the valid points in ``mask_safe & mask_fit`` (errordef 1)."""
        *_, used = self._arrays()
        return float(self.stat_array()[used].sum())

    def __repr__(self):
        used = self._arrays()[-1]
        models = "none" if not self.models else ", ".join(self.models.names)
        stat = f"{self.stat_sum():.4g}" if self.models else "n/a"
        return "\n".join([
            f"FluxPointsDataset {self.name!r} (stat_type={self.stat_type!r})",
            f"  points: {len(self.data)}, in the fit: {int(used.sum())}, upper limits: {int(self.data.is_ul.sum())}",
            f"  models: {models}",
            f"  stat_sum: {stat}",
        ])


def _errors(data: xr.Dataset):
    """``dnde_err``, ``dnde_errp``, ``dnde_errn`` as NumPy (all NaN when a column is missing)."""
    missing = np.full(data.sizes["energy"], np.nan)
    return tuple(data[name].values if name in data else missing for name in ("dnde_err", "dnde_errp", "dnde_errn"))


def _positive(error: np.ndarray) -> np.ndarray:
    """True where ``error`` is finite and positive."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(error) & (error > 0)
