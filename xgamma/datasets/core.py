"""Common behaviour of reduced (DL4) datasets.

A reduced dataset is an `xarray.Dataset`; the classes in `xgamma.datasets`
wrap one and add behaviour. The wrapped object is always reachable as
``dataset.data`` and is exactly what is stored in Zarr.

Layout (all classes)
--------------------
Dimensions are named after their `~xgamma.axes.MapAxis` (``energy`` is
reconstructed energy, ``energy_true``, ``migra``, ``rad``) and, for sky maps,
``y``/``x`` for the dataset's pixels and ``y_irf``/``x_irf`` for the coarser
grid of the reduced IRFs. Every data variable carries ``units`` in its attrs;
map variables on ``y``/``x`` carry the target WCS (``attrs["wcs"]``, a FITS
header string), those on ``y_irf``/``x_irf`` carry the IRF grid's WCS under
the same key; region (1-D) datasets carry ``attrs["region"]`` (DS9 text).

=================  ======================================  =========  ==========
variable           dims                                    units      stacking
=================  ======================================  =========  ==========
counts             (energy, [y, x])                        ""         sum (masked)
background         (energy, [y, x])                        ""         sum (masked)
exposure           (energy_true, [y, x])                   cm2 s      sum (masked)
mask_safe          (energy, [y, x]) bool                   ""         or
mask_fit           (energy, [y, x]) bool, optional         ""         or
edisp              (energy_true, energy, [y_irf, x_irf])   ""         exposure-weighted
psf                (energy_true, rad, y_irf, x_irf)        sr-1       exposure-weighted
exposure_irf       (energy_true, y_irf, x_irf)             cm2 s      sum (the weights)
counts_off         (energy, [y, x])                        ""         sum (masked)
acceptance         (energy, [y, x])                        ""         see On/Off
acceptance_off     (energy, [y, x])                        ""         see On/Off
livetime           ()                                      s          sum
=================  ======================================  =========  ==========

``edisp`` is the reco-energy kernel: the probability that an event of true
energy ``energy_true`` is reconstructed in each ``energy`` bin (rows sum to
<= 1). ``background`` holds predicted background counts per bin. Dataset
attrs: ``name`` (str), ``obs_ids`` (list of int, the observations it holds),
``gti`` (list of ``[start, stop]`` in MJD, TT scale: the good time intervals,
used to integrate temporal models; absent when unknown).
"""

from __future__ import annotations

import copy

import numpy as np
import xarray as xr

from ..io.zarr import read_zarr, write_zarr

__all__ = ["Dataset", "dataset_on_one_grid", "gti_attr", "with_values"]


def dataset_on_one_grid(arrays: dict, attrs: dict) -> xr.Dataset:
    """`xarray.Dataset` of DataArrays made on one geometry, without aligning them.

    Their axis coordinates are equal by construction, so each is taken once
    (from the first array that has it) instead of being compared across all
    arrays: the same Dataset, several times faster.
    """
    coords = {}
    for array in arrays.values():
        for name, coord in array.coords.items():
            coords.setdefault(name, coord.variable)
    return xr.Dataset({name: array.variable for name, array in arrays.items()}, coords=coords, attrs=attrs)


def with_values(data: xr.Dataset, values: dict) -> xr.Dataset:
    """Shallow copy of ``data`` with the values of some data variables replaced (same shapes).

    Dims, coords and attrs are kept; nothing is aligned or merged, which
    makes it about three times cheaper than assigning a variable.
    """
    return data.copy(data={name: values.get(name, var.data) for name, var in data.data_vars.items()})


def gti_attr(gti) -> list[list[float]]:
    """A `~xgamma.data.GTI` as the ``gti`` attr: ``[[start, stop], ...]`` in MJD (TT)."""
    start, stop = gti.start.tt.mjd, gti.stop.tt.mjd
    return [[float(a), float(b)] for a, b in zip(np.atleast_1d(start), np.atleast_1d(stop))]


class Dataset:
    """Base class: a named wrapper around one reduced `xarray.Dataset`.

    Parameters
    ----------
    data : `xarray.Dataset`
        The reduced data in the layout of this module.
    """

    #: variables a subclass requires; checked at construction
    required = ()

    def __init__(self, data: xr.Dataset):
        if not isinstance(data, xr.Dataset):
            raise TypeError(f"{type(self).__name__} wraps an xarray.Dataset, got {type(data).__name__}")
        missing = [name for name in self.required if name not in data]
        if missing:
            raise ValueError(f"{type(self).__name__}: missing variables {missing} (has {sorted(data.data_vars)})")
        self._data = data

    @property
    def data(self) -> xr.Dataset:
        """The wrapped `xarray.Dataset` (what is stored)."""
        return self._data

    @property
    def name(self) -> str:
        return str(self._data.attrs.get("name", ""))

    @property
    def obs_ids(self) -> list[int]:
        return [int(i) for i in self._data.attrs.get("obs_ids", [])]

    @property
    def gti(self):
        """Good time intervals (`~xgamma.data.GTI`) from ``attrs["gti"]``, or None."""
        intervals = self._data.attrs.get("gti")
        if not intervals:
            return None
        from astropy.time import Time

        from ..data.gti import GTI

        mjd = np.asarray(intervals, dtype=float).reshape(-1, 2)
        return GTI.create(Time(mjd[:, 0], format="mjd", scale="tt"), Time(mjd[:, 1], format="mjd", scale="tt"))

    @property
    def livetime(self) -> float:
        """Livetime in s (0 when unknown)."""
        return float(self._data["livetime"]) if "livetime" in self._data else 0.0

    def copy(self, name=None, deep=True):
        """Copy, optionally renamed."""
        data = self._data.copy(deep=deep)
        data.attrs = copy.deepcopy(dict(data.attrs))
        if name is not None:
            data.attrs["name"] = str(name)
        return type(self)(data)

    def to_zarr(self, url, group=None, mode="w-", storage_options=None):
        """Write to a Zarr store (local path or any fsspec URL)."""
        write_zarr(self._data, url, group=group, mode=mode, storage_options=storage_options)

    @classmethod
    def read(cls, url, group=None, storage_options=None, chunks=None):
        """Read a dataset written by `to_zarr`."""
        return cls(read_zarr(url, group=group, storage_options=storage_options, chunks=chunks))

    def __eq__(self, other):
        return type(self) is type(other) and self._data.identical(other._data)

    def _repr_lines(self) -> list[str]:
        lines = [f"{type(self).__name__}(name={self.name!r})"]
        if self.obs_ids:
            ids = self.obs_ids
            shown = ", ".join(map(str, ids[:6])) + (", ..." if len(ids) > 6 else "")
            lines.append(f"  observations: {len(ids)} [{shown}]")
        lines.append(f"  livetime: {self.livetime:.1f} s")
        for name, var in self._data.data_vars.items():
            dims = ", ".join(f"{d}: {n}" for d, n in zip(var.dims, var.shape))
            unit = var.attrs.get("units", "")
            lines.append(f"  {name:14s} ({dims}){' [' + unit + ']' if unit else ''}")
        return lines

    def __repr__(self):
        return "\n".join(self._repr_lines())
