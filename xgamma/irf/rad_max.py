"""Energy-dependent directional cut of point-like IRFs (GADF ``RAD_MAX_2D``)."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import xarray as xr

from ..axes import MapAxis
from ..units import quantity
from .aeff import _given
from .core import IRF

__all__ = ["RadMax2D"]


class RadMax2D(IRF):
    """Maximum angular distance (theta cut) versus reconstructed energy and offset.

    Interpolation is log in energy and linear in offset and value. Outside the
    table the cut of the nearest edge is used (a cut has no meaningful 0), so
    a single-offset table applies at every offset.

    Parameters
    ----------
    data : `xarray.DataArray`
        Dims ``energy`` (reconstructed), ``offset``; values in deg.
    """

    tag = "rad_max_2d"
    axis_names = ("energy", "offset")
    gadf_axes = {"ENERG": "energy", "THETA": "offset"}
    data_column = ("RAD_MAX",)
    default_unit = "deg"
    output_unit = "deg"
    clamp_axes = ("energy", "offset")

    def evaluate(self, energy=None, offset=None):
        """Directional cut at the given reconstructed energies and offsets.

        Parameters
        ----------
        energy : `~astropy.units.Quantity`, str, float or array-like
            Reconstructed energy (plain numbers in TeV).
        offset : `~astropy.units.Quantity`, str, float or array-like
            FoV offset (plain numbers in deg); may be omitted for a
            single-offset table.

        Returns
        -------
        `~astropy.units.Quantity`
            Cut radius in deg.
        """
        return super().evaluate(**_given(energy=energy, offset=offset))

    @classmethod
    def from_irf(cls, irf: IRF) -> "RadMax2D":
        """Constant cut from the header ``RAD_MAX`` of a point-like IRF.

        Parameters
        ----------
        irf : IRF
            A point-like IRF whose header carries ``RAD_MAX`` (deg), e.g. the
            effective area of the joint-crab MAGIC files.

        Returns
        -------
        RadMax2D
            One bin in energy and offset (clamped, so valid everywhere),
            metadata of ``irf`` with ``hdu_class = rad_max_2d``.

        Raises
        ------
        ValueError
            If ``irf`` has no ``RAD_MAX`` header value.
        """
        if irf.rad_max is None:
            where = f"{irf.data.attrs.get('filename', '')}[{irf.data.attrs.get('hdu', '')}]"
            raise ValueError(f"{where}: no RAD_MAX header keyword; point-like data need it or a RAD_MAX_2D HDU")
        energy = next(a for a in irf.axes.values() if a.name.startswith("energy"))
        offset = irf.axes.get("offset")
        offset = offset.squash() if offset else None
        return cls.from_constant(irf.rad_max, energy.copy(name="energy").squash(), offset, irf.meta)

    @classmethod
    def from_constant(cls, rad_max, energy_axis: MapAxis | None = None, offset_axis: MapAxis | None = None, meta=None):
        """A cut that is the same at all energies and offsets.

        Parameters
        ----------
        rad_max : `~astropy.units.Quantity`, str or float
            The cut (plain numbers in deg).
        energy_axis, offset_axis : `~xgamma.axes.MapAxis`, optional
            Single-bin axes recorded as the table's range; default 0.01-100
            TeV and 0-10 deg.
        meta : dict, optional
            Metadata attrs to keep.

        Returns
        -------
        RadMax2D
        """
        value = quantity(rad_max, u.deg).to_value(u.deg)
        energy_axis = energy_axis or MapAxis([0.01], [100.0], name="energy", unit="TeV", interp="log")
        offset_axis = offset_axis or MapAxis([0.0], [10.0], name="offset", unit="deg")
        coords = energy_axis.to_coords() | offset_axis.to_coords()
        attrs = dict(meta or {}, units="deg", hdu_class=cls.tag, hduclas3="POINT-LIKE")
        attrs.setdefault("RAD_MAX", float(value))
        data = xr.DataArray(np.full((1, 1), value), dims=cls.axis_names, coords=coords, attrs=attrs)
        return cls(data)
