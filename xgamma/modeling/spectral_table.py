"""Tabulated spectral models: interpolation between energy nodes.

Which one to use when:

- `TemplateSpectralModel`: a fixed spectrum given as a table (energy, dnde),
  for example from a simulation or another tool; it has no parameters, so
  multiply it by a norm model (``template * PowerLawNormSpectralModel()``) to
  fit its normalisation and tilt.
- `PiecewiseNormSpectralModel`: a free-form, dimensionless correction with one
  ``norm_i`` parameter per energy node (a "spline" norm for flux points or a
  background spectrum).

Both interpolate linearly in ``(ln E, ln value)`` by default, so each segment
between nodes is a power law; outside the nodes the end segments continue
(extrapolation). Integrals over bins are then exact sums of power-law
segment integrals, with no numerical quadrature.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.table import Table

from ..units import to_value
from .core import ModelError
from .parameter import Parameter
from .spectral import (
    DNDE_UNIT,
    ENERGY_UNIT,
    INTEGRATION_STEP,
    SpectralModel,
    integrate_log_energy,
    power_law_integral,
)

__all__ = ["LogLogTable", "PiecewiseNormSpectralModel", "TemplateSpectralModel"]


class LogLogTable:
    """A function given at energy nodes, linear in ``(ln E, ln value)`` between them.

    Parameters
    ----------
    energy : array-like
        Node energies in TeV, strictly increasing, at least two.
    values : array-like
        Values at the nodes (any unit). Zeros are raised to the smallest
        positive float so that their logarithm is finite; negative values
        give NaN (a fit stepping there sees an invalid model, not an error).
    """

    def __init__(self, energy, values):
        energy = np.asarray(energy, dtype=float)
        values = np.asarray(values, dtype=float)
        if energy.ndim != 1 or energy.size < 2 or energy.shape != values.shape:
            raise ValueError(
                f"need at least two energy nodes and one value per node; got shapes {energy.shape} and {values.shape}"
            )
        if not np.all(np.diff(energy) > 0) or energy[0] <= 0:
            raise ValueError("node energies must be positive and strictly increasing")
        self.log_energy = np.log(energy)
        self.log_values = np.where(values < 0, np.nan, np.log(np.maximum(values, np.finfo(float).tiny)))
        self.slopes = np.diff(self.log_values) / np.diff(self.log_energy)

    def _segment(self, log_energy):
        """Index of the segment used at ``log_energy`` (end segments extrapolate)."""
        index = np.searchsorted(self.log_energy, log_energy, side="right") - 1
        return np.clip(index, 0, self.slopes.size - 1)

    def _log_value(self, log_energy, segment):
        return self.log_values[segment] + self.slopes[segment] * (log_energy - self.log_energy[segment])

    def __call__(self, energy):
        """Interpolated values at ``energy`` (TeV)."""
        log_energy = np.log(np.asarray(energy, dtype=float))
        return np.exp(self._log_value(log_energy, self._segment(log_energy)))

    def _piece(self, segment, log_start, log_end, moment):
        """Integral of ``value(E) E**moment`` from ``exp(log_start)`` to ``exp(log_end)`` on one segment."""
        start = np.exp(log_start)
        integrand_start = np.exp(self._log_value(log_start, segment)) * start**moment
        return power_law_integral(integrand_start, start, np.exp(log_end), self.slopes[segment] + moment)

    def integral(self, e_min, e_max, moment=0):
        """Exact integral of ``value(E) E**moment`` over ``[e_min, e_max]`` (TeV, arrays broadcast)."""
        log_min, log_max = np.broadcast_arrays(np.log(np.asarray(e_min, float)), np.log(np.asarray(e_max, float)))
        first, last = self._segment(log_min), self._segment(log_max)
        nodes = self.log_energy
        segments = np.arange(self.slopes.size)
        whole = self._piece(segments, nodes[:-1], nodes[1:], moment)
        cumulative = np.concatenate([[0.0], np.cumsum(whole)])
        with np.errstate(over="ignore", invalid="ignore"):
            within_one = self._piece(first, log_min, log_max, moment)
            head = self._piece(first, log_min, nodes[first + 1], moment)
            tail = self._piece(last, nodes[last], log_max, moment)
            across = head + (cumulative[last] - cumulative[first + 1]) + tail
        return np.where(first == last, within_one, across)


def _node_spacing(energy) -> float:
    """Narrowest node spacing in ln(E), capped at the default numerical integration step."""
    return min(float(np.min(np.diff(np.log(energy)))), INTEGRATION_STEP)


def _quantity_entry(data, key, model):
    """A ``{"data": [...], "unit": "..."}`` entry of a model dict as a Quantity."""
    try:
        entry = data[key]
        return u.Quantity(entry["data"], entry.get("unit", ""))
    except (KeyError, TypeError) as err:
        raise ModelError(f"{model} entry needs {key!r} as {{data: [...], unit: ...}}") from err


def _quantity_dict(values, unit) -> dict:
    return {"data": np.asarray(values, dtype=float).tolist(), "unit": unit}


def _find_column(table, names, path):
    lower = {name.lower(): name for name in table.colnames}
    for name in names:
        if name in lower:
            return table[lower[name]]
    raise ModelError(f"{path}: no column named any of {names}; columns: {table.colnames}")


class TemplateSpectralModel(SpectralModel):
    """A tabulated spectrum, interpolated linearly in ``(ln E, ln dnde)``.

    Parameters
    ----------
    energy : `~astropy.units.Quantity`, str list or array-like
        Node energies (plain numbers are TeV), strictly increasing.
    values : `~astropy.units.Quantity` or array-like
        ``dnde`` at the nodes; a unit convertible to cm-2 s-1 TeV-1, or
        dimensionless (the template is then a norm model). Plain numbers are
        taken as cm-2 s-1 TeV-1.
    filename : str, optional
        File the table was read from (written to YAML with the table).

    Notes
    -----
    The model has no parameters. Outside the nodes the end segments are
    continued as power laws. Integrals are exact for the interpolated curve.
    """

    tag = ["TemplateSpectralModel", "template"]

    def __init__(self, energy, values, filename=None):
        super().__init__()
        if not isinstance(values, u.Quantity):
            values = u.Quantity(values, DNDE_UNIT)
        unit = "" if values.unit.is_equivalent(u.dimensionless_unscaled) else DNDE_UNIT
        self._dnde_unit = unit
        self.energy = np.asarray(to_value(energy, ENERGY_UNIT, "energy"), dtype=float)
        self.values = np.asarray(to_value(values, unit, "values"), dtype=float)
        if np.any(self.values < 0):
            raise ValueError("TemplateSpectralModel values must be >= 0 (they are interpolated in log)")
        self.filename = None if filename is None else str(filename)
        self._table = LogLogTable(self.energy, self.values)

    def evaluate(self, energy):
        return self._table(energy)

    def evaluate_integral(self, e_min, e_max):
        return self._table.integral(e_min, e_max, moment=0)

    def evaluate_energy_flux(self, e_min, e_max):
        return self._table.integral(e_min, e_max, moment=1)

    @property
    def integration_step(self) -> float:
        return _node_spacing(self.energy)

    @classmethod
    def read(cls, filename):
        """Read a table (FITS or ECSV) with an ``energy`` column and a ``values`` (or ``dnde``) column.

        Column units are used; columns without a unit are taken as TeV and cm-2 s-1 TeV-1.
        """
        table = Table.read(filename)
        energy = _find_column(table, ("energy",), filename)
        values = _find_column(table, ("values", "dnde"), filename)
        energy = u.Quantity(energy) if energy.unit else u.Quantity(energy, ENERGY_UNIT)
        values = u.Quantity(values) if values.unit else u.Quantity(values, DNDE_UNIT)
        return cls(energy, values, filename=filename)

    def to_dict(self, full_output=False):
        data = super().to_dict(full_output)
        data["energy"] = _quantity_dict(self.energy, ENERGY_UNIT)
        data["values"] = _quantity_dict(self.values, self._dnde_unit)
        if self.filename is not None:
            data["filename"] = self.filename
        return data

    @classmethod
    def _from_dict(cls, data):
        if "energy" not in data and "filename" in data:
            return cls.read(data["filename"])
        energy = _quantity_entry(data, "energy", "TemplateSpectralModel")
        values = _quantity_entry(data, "values", "TemplateSpectralModel")
        return cls(energy, values, filename=data.get("filename"))


class PiecewiseNormSpectralModel(SpectralModel):
    """A dimensionless correction with one free ``norm_i`` per energy node.

    Parameters
    ----------
    energy : `~astropy.units.Quantity` or array-like
        Node energies (plain numbers are TeV), strictly increasing, at least two.
    norms : array-like, optional
        Initial norms (default 1 at every node).
    interp : {"log", "lin"}
        ``"log"``: linear in ``(ln E, ln norm)`` (norms must stay > 0; exact
        integrals); ``"lin"``: linear in ``(ln E, norm)`` (allows zero and
        negative norms; integrals by `integrate_log_energy`). End segments are
        extrapolated in both cases.
    """

    tag = ["PiecewiseNormSpectralModel", "piecewise-norm"]
    _dnde_unit = ""

    def __init__(self, energy, norms=None, interp="log"):
        super().__init__()
        self.energy = np.asarray(to_value(energy, ENERGY_UNIT, "energy"), dtype=float)
        if self.energy.ndim != 1 or self.energy.size < 2:
            raise ValueError(f"PiecewiseNormSpectralModel needs at least two energy nodes, got {self.energy}")
        norms = np.ones(self.energy.size) if norms is None else np.asarray(norms, dtype=float)
        if norms.shape != self.energy.shape:
            raise ValueError(f"{norms.size} norms given for {self.energy.size} energy nodes")
        if interp not in ("log", "lin"):
            raise ValueError(f"interp must be 'log' or 'lin', got {interp!r}")
        self.interp = interp
        self._parameters = {
            f"norm_{i}": Parameter(f"norm_{i}", norm, is_norm=True) for i, norm in enumerate(norms)
        }

    @property
    def norms(self) -> np.ndarray:
        """Current norm values at the nodes."""
        return np.array([par.value for par in self._parameters.values()])

    def evaluate(self, energy, **norms):
        values = np.array([norms[f"norm_{i}"] for i in range(self.energy.size)], dtype=float)
        if self.interp == "log":
            return LogLogTable(self.energy, values)(energy)
        return self._linear(energy, values)

    def _linear(self, energy, values):
        log_nodes = np.log(self.energy)
        log_energy = np.log(np.asarray(energy, dtype=float))
        segment = np.clip(np.searchsorted(log_nodes, log_energy, side="right") - 1, 0, log_nodes.size - 2)
        slope = np.diff(values)[segment] / np.diff(log_nodes)[segment]
        return values[segment] + slope * (log_energy - log_nodes[segment])

    def _bin_integral(self, e_min, e_max, closed_form, moment):
        if self.interp == "log":
            return LogLogTable(self.energy, self.norms).integral(e_min, e_max, moment)
        return integrate_log_energy(self.dnde_values, e_min, e_max, moment, self.integration_step)

    @property
    def integration_step(self) -> float:
        return _node_spacing(self.energy)

    def to_dict(self, full_output=False):
        data = super().to_dict(full_output)
        data["energy"] = _quantity_dict(self.energy, ENERGY_UNIT)
        data["interp"] = self.interp
        return data

    @classmethod
    def _from_dict(cls, data):
        energy = _quantity_entry(data, "energy", "PiecewiseNormSpectralModel")
        model = cls(energy, interp=data.get("interp", "log"))
        model._update_parameters(data.get("parameters", []))
        return model
