"""Grids of parameter values for likelihood profiles and surfaces."""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np

from ..modeling.parameter import Parameter

__all__ = ["scan_values"]


def scan_values(parameter: Parameter, values=None, bounds=2, nvalues=11) -> np.ndarray:
    """Values of ``parameter`` to scan, as floats in its unit.

    Parameters
    ----------
    parameter : `Parameter`
        The scanned parameter (its value and error centre the default grid).
    values : array-like, `~astropy.units.Quantity` or None
        Explicit values (plain numbers are in the parameter's unit).
        Default: ``nvalues`` values evenly spaced over value ± ``bounds`` errors.
    bounds : float
        Half-width of the default grid, in units of the parameter's error.
    nvalues : int
        Number of values of the default grid.

    Raises
    ------
    ValueError
        If no values are given and the parameter has no finite positive error.
    """
    if values is not None:
        if isinstance(values, u.Quantity):
            return np.atleast_1d(values.to_value(parameter.unit)).astype(float)
        return np.atleast_1d(np.asarray(values, dtype=float))
    if not (math.isfinite(parameter.error) and parameter.error > 0):
        raise ValueError(
            f"parameter {parameter.name!r} has no error to set the scan range "
            f"(error={parameter.error}); run Fit.covariance first or pass values"
        )
    half_width = bounds * parameter.error
    return np.linspace(parameter.value - half_width, parameter.value + half_width, nvalues)
