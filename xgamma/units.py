"""Unit handling at the user boundary.

Public functions accept `astropy.units.Quantity` objects or strings such as
``"1 TeV"``; they convert once, with :func:`to_value`, and hot code works on
plain floats in the canonical units below.
"""

from __future__ import annotations

import functools

import astropy.units as u
import numpy as np

__all__ = ["CANONICAL_UNITS", "quantity", "to_value", "unit_string"]

#: Canonical unit of each physical quantity used inside xgamma.
CANONICAL_UNITS = {
    "energy": u.TeV,
    "angle": u.deg,
    "time": u.s,
    "area": u.cm**2,
    "solid_angle": u.sr,
    "dnde": u.Unit("cm-2 s-1 TeV-1"),
}


def quantity(value, unit=None) -> u.Quantity:
    """Return ``value`` as a Quantity.

    Parameters
    ----------
    value : `~astropy.units.Quantity`, str, float or array-like
        ``"1 TeV"`` and ``"0.5deg"`` are parsed; a bare number takes ``unit``.
    unit : str or `~astropy.units.Unit`, optional
        Unit given to plain numbers. Without it, a plain number is dimensionless.

    Raises
    ------
    ValueError
        If a string cannot be parsed as a quantity.
    """
    if isinstance(value, u.Quantity):
        return value
    if isinstance(value, str):
        try:
            return u.Quantity(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"cannot read {value!r} as a quantity (expected e.g. '1 TeV')") from err
    if isinstance(value, (list, tuple)) and any(isinstance(v, (str, u.Quantity)) for v in value):
        return u.Quantity([quantity(v, unit) for v in value])
    return u.Quantity(value, unit if unit is not None else u.dimensionless_unscaled)


def to_value(value, unit, name: str = "value"):
    """Convert ``value`` to plain floats in ``unit``.

    Plain numbers are taken to be in ``unit`` already.

    Parameters
    ----------
    value : `~astropy.units.Quantity`, str, float or array-like
        The input.
    unit : str or `~astropy.units.Unit`
        Target unit.
    name : str
        Name of the argument, used in error messages.

    Returns
    -------
    float or `numpy.ndarray`

    Raises
    ------
    astropy.units.UnitConversionError
        If ``value`` has a unit that cannot be converted to ``unit``; the
        message names the argument and both units.
    """
    unit = u.Unit(unit)
    if isinstance(value, (str, list, tuple)):
        value = quantity(value, unit)
    if isinstance(value, u.Quantity):
        try:
            return value.to_value(unit)
        except u.UnitConversionError as err:
            raise u.UnitConversionError(
                f"{name}: cannot convert {value.unit.to_string() or 'dimensionless'} to {unit.to_string()}"
            ) from err
    return np.asarray(value, dtype=float) if np.ndim(value) else float(value)


def unit_string(unit) -> str:
    """Serialisable, astropy-parsable form of a unit (``""`` for dimensionless)."""
    try:
        return _unit_string(unit)
    except TypeError:  # unhashable input, e.g. a Quantity array
        return _unit_string.__wrapped__(unit)


@functools.lru_cache(maxsize=256)
def _unit_string(unit) -> str:  # units are immutable and their parsing slow: cached
    unit = u.Unit(unit)
    if unit == u.dimensionless_unscaled:
        return ""
    return unit.to_string()
