"""Analytic PSFs: triple Gaussian (GADF ``PSF_3GAUSS``) and King (``PSF_KING``).

The parameters are stored per (true energy, offset) node in one DataArray
with an extra ``parameter`` dimension (coordinate ``parameter_unit`` gives
each parameter's unit, as read from the file). Between nodes the *density*
is interpolated, not the parameters: the PSF at a point is the weighted
mixture (log in energy, linear in offset) of the analytic PSFs of the
surrounding nodes. A mixture of normalised PDFs stays normalised, its
containment is the same mixture of the analytic containments, and empty
nodes (all parameters 0, as in CTA files far off axis) cannot produce
spurious intermediate widths. Outside the table the PSF is 0.

Formulas (``r`` and ``sigma`` in radians, small-angle measure):

- 3Gauss: ``dP/dOmega = [e1 + A2 e2 + A3 e3] / (2 pi (s1**2 + A2 s2**2 + A3 s3**2))``
  with ``ei = exp(-r**2 / (2 si**2))``; containment
  ``C(R) = sum_i Ai si**2 (1 - ei(R)) / sum_i Ai si**2`` (``A1 = 1``).
- King: ``dP/dOmega = (1 - 1/g) / (2 pi s**2) (1 + r**2 / (2 g s**2))**-g``;
  ``C(R) = 1 - (1 + R**2 / (2 g s**2))**(1 - g)``.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
import xarray as xr

from ..axes import MapAxis
from ..io.fits import read_irf_table
from .core import _corners, _outside, parse_unit
from .psf import _PSF, PSFTable

__all__ = ["PSF3Gauss", "PSFKing"]


class _ParametricPSF(_PSF):
    axis_names = ("energy_true", "offset")
    gadf_axes = {"ENERG": "energy_true", "THETA": "offset"}
    extra_dims = ("parameter",)
    parameters: dict = {}  # column -> (parameter name, default unit)

    @classmethod
    def from_hdu(cls, hdu_data):
        """Build the PSF from an HDU read by `xgamma.io.fits.read_hdus`."""
        table = read_irf_table(hdu_data, axes=tuple(cls.gadf_axes), data_columns=list(cls.parameters))
        arrays, units = [], []
        for column, (name, default) in cls.parameters.items():
            values, unit, dims = table.data[column]
            da = cls._dataarray(table, values, unit, dims, default, hdu_data)
            arrays.append(da)
            units.append(da.attrs["units"])
        data = xr.concat(arrays, dim="parameter", combine_attrs="drop")
        data = data.assign_coords(
            parameter=[name for name, _ in cls.parameters.values()], parameter_unit=("parameter", units)
        )
        data.attrs = dict(arrays[0].attrs, units="")
        return cls(data)

    def _params(self):
        """Parameters in internal units (sigma in rad), dict of arrays (energy_true, offset)."""
        out = {}
        units = self._data.coords["parameter_unit"].values
        for (name, unit) in zip(self._data.coords["parameter"].values, units):
            values = self._data.sel(parameter=name).values
            target = u.rad if parse_unit(unit).physical_type == "angle" else parse_unit(unit)
            out[str(name)] = values * parse_unit(unit).to(target)
        return out

    def _mixture(self, func, energy, offset, *args):
        """Weighted sum over the surrounding nodes of ``func(params_at_node, *args)``."""
        grids = self._grid()
        params = self._params()
        coords = np.broadcast_arrays(energy, offset)
        total = 0.0
        for index, weight in _corners(grids, coords):
            node = {k: v[index] for k, v in params.items()}
            total = total + weight * func(node, *args)
        return np.where(_outside(grids, coords), 0.0, total)

    def _evaluate(self, coords):
        energy, offset, rad = coords
        return self._mixture(self._density, energy, offset, np.deg2rad(rad))

    def _containment(self, rad, energy, offset):
        return self._mixture(self._node_containment, energy, offset, np.deg2rad(rad))

    def evaluate(self, energy_true=None, offset=None, rad=None):
        """PSF density.

        Parameters
        ----------
        energy_true : `~astropy.units.Quantity`, str, float or array-like
            True energy (plain numbers in TeV).
        offset : `~astropy.units.Quantity`, str, float or array-like
            FoV offset (plain numbers in deg).
        rad : `~astropy.units.Quantity`, str, float or array-like
            Distance from the true position (plain numbers in deg).

        Returns
        -------
        `~astropy.units.Quantity`
            dP/dOmega in sr-1.
        """
        coords = {"energy_true": energy_true, "offset": offset, "rad": rad}
        coords = {k: v for k, v in coords.items() if v is not None}
        return self._dispatch(self._evaluate, coords)

    def _parse_coords(self, coords, names=None):
        names = ("energy_true", "offset", "rad") if names is None else names
        return super()._parse_coords(coords, names=names)

    def _max_radius(self) -> float:
        sigmas = [v for k, v in self._params().items() if k.startswith("sigma")]
        return float(np.rad2deg(np.nanmax(sigmas))) * 50 + 1.0

    def to_psf_table(self, rad_axis: MapAxis | None = None) -> PSFTable:
        """Tabulate the PSF on a rad axis at the table's energy and offset nodes.

        Parameters
        ----------
        rad_axis : `~xgamma.axes.MapAxis`, optional
            Radial bins (name ``rad``); default 400 bins evenly spaced in
            ``r**2`` from 0 to ``5 x`` the largest sigma (deg).

        Returns
        -------
        `PSFTable`
            Values at the rad-bin centres in sr-1, metadata kept.
        """
        if rad_axis is None:
            sigmas = [v for k, v in self._params().items() if k.startswith("sigma")]
            rmax = 5 * float(np.rad2deg(np.nanmax(sigmas)))
            rad_axis = MapAxis.from_bounds(0.0, rmax, 400, name="rad", unit="deg", interp="sqrt")
        axes = self.axes
        e = axes["energy_true"].center.to_value("TeV")[:, None, None]
        o = axes["offset"].center.to_value("deg")[None, :, None]
        r = rad_axis.center.to_value("deg")[None, None, :]
        values = self._evaluate(np.broadcast_arrays(e, o, r))
        coords = {}
        for axis in (axes["energy_true"], axes["offset"], rad_axis):
            coords.update(axis.to_coords())
        attrs = dict(self.meta, units="sr-1", hdu_class="psf_table", HDUCLAS4="PSF_TABLE")
        data = xr.DataArray(values, dims=PSFTable.axis_names, coords=coords, attrs=attrs)
        return PSFTable(data)


class PSF3Gauss(_ParametricPSF):
    """Triple-Gaussian PSF (GADF ``PSF_3GAUSS``; formula in the module docstring).

    ``AMPL_2``/``AMPL_3`` are relative peak amplitudes as in the GADF formula.
    ``SCALE`` is kept in ``data`` but the density is normalised analytically
    instead: real CTA files (1DC, Prod5) carry a ``SCALE`` that does not
    normalise the GADF formula (it equals ``1 / (2 pi sigma_1[deg])``), and
    ctools likewise recomputes the norm from the sigmas and amplitudes.
    """

    tag = "psf_3gauss"
    parameters = {
        "SCALE": ("scale", "sr-1"),
        "SIGMA_1": ("sigma_1", "deg"),
        "SIGMA_2": ("sigma_2", "deg"),
        "SIGMA_3": ("sigma_3", "deg"),
        "AMPL_2": ("ampl_2", ""),
        "AMPL_3": ("ampl_3", ""),
    }

    @staticmethod
    def _terms(p):
        amplitudes = (np.ones_like(p["sigma_1"]), p["ampl_2"], p["ampl_3"])
        sigmas = (p["sigma_1"], p["sigma_2"], p["sigma_3"])
        valid = [(a > 0) & (s > 0) for a, s in zip(amplitudes, sigmas)]
        weights = [np.where(v, a * s**2, 0.0) for a, s, v in zip(amplitudes, sigmas, valid)]
        norm = sum(weights)
        return amplitudes, sigmas, valid, weights, norm

    @classmethod
    def _density(cls, p, r):
        amplitudes, sigmas, valid, _, norm = cls._terms(p)
        total = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            for a, s, v in zip(amplitudes, sigmas, valid):
                total = total + np.where(v, a * np.exp(-(r**2) / (2 * s**2)), 0.0)
            return np.where(norm > 0, total / (2 * np.pi * norm), 0.0)

    @classmethod
    def _node_containment(cls, p, r):
        _, sigmas, valid, weights, norm = cls._terms(p)
        total = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            for s, v, w in zip(sigmas, valid, weights):
                total = total + np.where(v, w * -np.expm1(-(r**2) / (2 * s**2)), 0.0)
            return np.where(norm > 0, total / norm, 0.0)


class PSFKing(_ParametricPSF):
    """King-function PSF (GADF ``PSF_KING``; formula in the module docstring).

    Nodes with ``sigma <= 0`` or ``gamma <= 1`` (not normalisable) have no PSF.
    """

    tag = "psf_king"
    parameters = {"GAMMA": ("gamma", ""), "SIGMA": ("sigma", "deg")}

    @staticmethod
    def _valid(p):
        return (p["sigma"] > 0) & (p["gamma"] > 1)

    @classmethod
    def _density(cls, p, r):
        g, s, valid = p["gamma"], p["sigma"], cls._valid(p)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = (1 - 1 / g) / (2 * np.pi * s**2) * (1 + r**2 / (2 * g * s**2)) ** (-g)
        return np.where(valid, value, 0.0)

    @classmethod
    def _node_containment(cls, p, r):
        g, s, valid = p["gamma"], p["sigma"], cls._valid(p)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = -np.expm1((1 - g) * np.log1p(r**2 / (2 * g * s**2)))
        return np.where(valid, value, 0.0)
