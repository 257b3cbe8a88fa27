"""Helpers for maps stored as DataArrays.

A WCS map is a DataArray with dims ``(axes..., "y", "x")`` and a ``wcs``
attr; a region map has only axis dims and a ``region`` attr (see
`xgamma.geom`). Use these helpers instead of slicing ``y``/``x`` by hand, which
would leave a stale ``wcs`` attr behind.
"""

from __future__ import annotations

import xarray as xr

from .geom import RegionGeom, WcsGeom

__all__ = ["geom_of", "cutout", "lonlat"]


def geom_of(obj) -> WcsGeom | RegionGeom:
    """Geometry of a map: `WcsGeom` when it has a ``wcs`` attr, `RegionGeom` for ``region``.

    Raises
    ------
    ValueError
        If the object carries neither attr.
    """
    if "wcs" in obj.attrs:
        return WcsGeom.from_dataarray(obj)
    if "region" in obj.attrs:
        return RegionGeom.from_dataarray(obj)
    raise ValueError(f"not a map: neither a 'wcs' nor a 'region' attr (attrs: {sorted(obj.attrs)})")


def cutout(da: xr.DataArray, position, width) -> xr.DataArray:
    """Cut a WCS map around ``position``, keeping its ``wcs`` attr correct.

    Parameters
    ----------
    da : `xarray.DataArray`
        WCS map (numpy- or dask-backed; stays lazy).
    position : `~astropy.coordinates.SkyCoord` or tuple
        Cutout centre (``(lon, lat)`` in deg in the map frame).
    width : float, str, `~astropy.units.Quantity` or pair
        Cutout width in deg.

    Returns
    -------
    `xarray.DataArray`
        The slice ``da.isel(geom.cutout_slices(position, width))`` with the
        cutout's WCS in its attrs.
    """
    geom = WcsGeom.from_dataarray(da)
    slices = geom.cutout_slices(position, width)
    out = da.isel(slices)
    out.attrs = dict(da.attrs, wcs=geom.slice_by_idx(slices).to_header_string())
    return out


def lonlat(da: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Longitude and latitude (deg, in the map frame) of every pixel centre, dims ``("y", "x")``."""
    lon, lat = WcsGeom.from_dataarray(da).get_coord()
    return (
        xr.DataArray(lon, dims=("y", "x"), attrs={"units": "deg"}),
        xr.DataArray(lat, dims=("y", "x"), attrs={"units": "deg"}),
    )
