"""Zarr (format 3) storage of maps and datasets through xarray.

Use `write_zarr` / `read_zarr` for any DataArray or Dataset (every xgamma
map, region spectrum and reduced dataset), on a local path or any fsspec URL
(``memory://``, ``s3://`` ...), optionally in a group of a larger store.

What is stored:

- values, coordinates (with their attrs) and attrs, exactly; attrs that are
  not JSON-serialisable are converted first (`json_attrs`: an astropy Header
  or WCS becomes FITS header text, a unit its string, a region DS9 text ...);
- the group attrs ``xgamma_version`` and ``xgamma_object`` (``"DataArray"`` or
  ``"Dataset"``). `read_zarr` removes them from the returned object's attrs
  (the version moves to ``obj.encoding["xgamma_version"]``) and warns with
  `XgammaVersionWarning` when the store's major.minor version differs.
"""

from __future__ import annotations

import datetime
import warnings

import astropy.units as u
import numpy as np
import xarray as xr
import zarr
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from .. import __version__
from ..units import unit_string

__all__ = ["write_zarr", "read_zarr", "json_attrs", "XgammaVersionWarning"]

_DA_VAR = "__xarray_dataarray_variable__"  # xarray's own name for an unnamed DataArray
_STAMPS = ("xgamma_version", "xgamma_object")


class XgammaVersionWarning(UserWarning):
    """A store written by another major.minor version of xgamma."""


def _where(url, group):
    return f"{url!r}" + (f" group {group!r}" if group else "")


def _header_text(header: fits.Header) -> str:
    return "\n".join(str(card).rstrip() for card in header.cards)


def _json_value(value, name):
    """A JSON-serialisable form of one attr value (see `json_attrs`)."""
    from regions import Region, Regions

    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_json_value(v, name) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_value(v, name) for v in value.tolist()] if value.ndim else value.item()
    if isinstance(value, dict):
        return {str(k): _json_value(v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, fits.Header):
        return _header_text(value)
    if isinstance(value, WCS):
        return _header_text(value.to_header())
    if isinstance(value, u.Quantity):
        return f"{value.value!r} {value.unit.to_string()}" if value.isscalar else {
            "value": value.value.tolist(), "unit": value.unit.to_string()}
    if isinstance(value, u.UnitBase):
        return unit_string(value)
    if isinstance(value, Time):
        return value.isot if value.isscalar else value.isot.tolist()
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, Region):
        return Regions([value]).serialize(format="ds9")
    if isinstance(value, Regions):
        return value.serialize(format="ds9")
    raise TypeError(
        f"attr {name!r} of type {type(value).__name__} cannot be stored in Zarr; "
        "convert it to a string, number, list or dict first"
    )


def json_attrs(attrs: dict, owner: str = "") -> dict:
    """Attrs converted to JSON-serialisable values.

    Numpy scalars and arrays become numbers and lists; astropy Header and WCS
    become FITS header text (cards joined by newlines, as the ``wcs`` attr of
    maps); units their string; a scalar Quantity ``"value unit"``; an array
    Quantity ``{"value": [...], "unit": ...}``; Time ISO text; regions DS9 text.

    Raises
    ------
    TypeError
        For other types; the message names the attr.
    """
    prefix = f"{owner}." if owner else ""
    return {str(k): _json_value(v, f"{prefix}{k}") for k, v in attrs.items()}


def _to_dataset(obj) -> xr.Dataset:
    if isinstance(obj, xr.DataArray):
        ds = obj.to_dataset(name=_DA_VAR if obj.name is None else obj.name, promote_attrs=False)
        kind = "DataArray"
    elif isinstance(obj, xr.Dataset):
        ds, kind = obj.copy(deep=False), "Dataset"
    else:
        raise TypeError(f"write_zarr takes an xarray DataArray or Dataset, got {type(obj).__name__}")
    clash = set(_STAMPS) & set(ds.attrs)
    if clash:
        raise ValueError(f"attrs {sorted(clash)} are reserved for the xgamma stamp")
    for name, var in ds.variables.items():
        var.attrs = json_attrs(var.attrs, str(name))
    ds.attrs = json_attrs(ds.attrs) | {"xgamma_version": __version__, "xgamma_object": kind}
    return ds


def _exists(url, group, storage_options) -> bool:
    kwargs = {"storage_options": storage_options} if storage_options else {}
    try:
        zarr.open_group(store=url, path=group or "", mode="r", **kwargs)
    except zarr.errors.ContainsArrayError:
        return True
    except (FileNotFoundError, KeyError, zarr.errors.NodeTypeValidationError):
        return False
    return True


def write_zarr(obj, url, group=None, mode="w-", storage_options=None) -> None:
    """Write a DataArray or Dataset to a Zarr (format 3) store.

    Parameters
    ----------
    obj : `xarray.DataArray` or `xarray.Dataset`
        What to store; dask-backed data is written chunk by chunk with its
        dask chunks as Zarr chunks.
    url : str or path-like
        Local path or fsspec URL (``memory://maps.zarr``, ``s3://...``).
    group : str, optional
        Group inside the store (e.g. ``"obs/23523"``); the store's root by default.
    mode : {"w-", "w", "a", "r+"}
        ``"w-"`` (default) refuses to replace an existing store or group;
        ``"w"`` replaces it; ``"a"`` and ``"r+"`` as in `xarray.Dataset.to_zarr`.
    storage_options : dict, optional
        Passed to fsspec for remote URLs.

    Raises
    ------
    FileExistsError
        With ``mode="w-"`` when the store or group exists; nothing is written.
    TypeError
        For an attr that cannot be made JSON-serialisable.
    """
    ds = _to_dataset(obj)
    url = str(url)
    if mode == "w-" and _exists(url, group, storage_options):
        raise FileExistsError(f"Zarr store {_where(url, group)} already exists; use mode='w' to overwrite it")
    try:
        ds.to_zarr(url, group=group, mode=mode, zarr_format=3, consolidated=False, storage_options=storage_options)
    except FileExistsError as err:
        raise FileExistsError(f"Zarr store {_where(url, group)} already exists; use mode='w' to overwrite it") from err


def _check_version(version, url, group):
    if version is None:
        return
    if str(version).split(".")[:2] != __version__.split(".")[:2]:
        warnings.warn(
            f"Zarr store {_where(url, group)} was written by xgamma {version}, this is xgamma {__version__}",
            XgammaVersionWarning,
            stacklevel=3,
        )


def read_zarr(url, group=None, storage_options=None, chunks=None):
    """Read what `write_zarr` wrote.

    Parameters
    ----------
    url : str or path-like
        Local path or fsspec URL.
    group : str, optional
        Group inside the store.
    storage_options : dict, optional
        Passed to fsspec for remote URLs.
    chunks : dict, int, "auto" or None
        ``None`` (default): lazily indexed numpy-backed variables, loaded on
        access; ``{}``: dask arrays with the store's chunks; otherwise as in
        `xarray.open_zarr`.

    Returns
    -------
    `xarray.DataArray` or `xarray.Dataset`
        The kind that was written (a store not written by xgamma is read as
        a Dataset).

    Raises
    ------
    FileNotFoundError
        If there is no store or group at ``url``; the message names both.
    """
    url = str(url)
    try:
        ds = xr.open_dataset(
            url, engine="zarr", group=group, chunks=chunks, consolidated=False, storage_options=storage_options
        )
    except FileNotFoundError as err:
        raise FileNotFoundError(f"no Zarr store at {_where(url, group)}: {err}") from err
    version = ds.attrs.pop("xgamma_version", None)
    kind = ds.attrs.pop("xgamma_object", "Dataset")
    _check_version(version, url, group)
    if kind == "DataArray":
        (name,) = ds.data_vars
        out = ds[name]
        out.name = None if name == _DA_VAR else name
    else:
        out = ds
    out.encoding["xgamma_version"] = version
    return out
