"""Effective area versus true energy and FoV offset (GADF ``AEFF_2D``)."""

from __future__ import annotations

from .core import IRF

__all__ = ["EffectiveAreaTable2D"]


class EffectiveAreaTable2D(IRF):
    """Effective area table A(E_true, offset).

    ``data`` keeps the file values and unit (usually m2); `evaluate` returns
    cm2, the canonical area unit. Interpolation is log in true energy, linear
    in offset and linear in the area; 0 outside the energy and offset range.
    Header ``LO_THRES``/``HI_THRES`` (TeV, safe range) and, for point-like
    files, ``RAD_MAX`` (deg) are kept in ``data.attrs``.

    Parameters
    ----------
    data : `xarray.DataArray`
        Dims ``energy_true``, ``offset``.

    Examples
    --------
    >>> aeff.evaluate(energy_true="1 TeV", offset="0.5 deg")  # doctest: +SKIP
    <Quantity 6.3e+08 cm2>
    """

    tag = "aeff_2d"
    axis_names = ("energy_true", "offset")
    gadf_axes = {"ENERG": "energy_true", "THETA": "offset"}
    data_column = ("EFFAREA",)
    default_unit = "m2"
    output_unit = "cm2"

    def evaluate(self, energy_true=None, offset=None):
        """Effective area at the given true energies and offsets.

        Parameters
        ----------
        energy_true : `~astropy.units.Quantity`, str, float or array-like
            True energy (plain numbers in TeV).
        offset : `~astropy.units.Quantity`, str, float or array-like
            FoV offset (plain numbers in deg); may be omitted for a
            single-offset (point-like) table.

        Returns
        -------
        `~astropy.units.Quantity`
            Effective area in cm2, broadcast shape of the inputs (a DataArray
            if any input is one).
        """
        return super().evaluate(**_given(energy_true=energy_true, offset=offset))


def _given(**coords):
    return {k: v for k, v in coords.items() if v is not None}
