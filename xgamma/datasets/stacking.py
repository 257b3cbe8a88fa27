"""Stacking reduced datasets through additive sufficient statistics.

Stacking is done in three steps, shared by the in-memory `stack_datasets`
and the scalable Zarr path (`xgamma.makers.reduce`), so both give the same
numbers:

1. `to_sums` turns one dataset into purely additive quantities:

   - ``counts``, ``background``, ``counts_off``, ``acceptance``,
     ``acceptance_off`` and ``background_off`` = alpha x counts_off, zeroed
     outside ``mask_safe``;
   - ``exposure`` zeroed where no energy bin of the pixel is safe;
   - ``mask_safe`` / ``mask_fit`` as 0/1 integers (summed = OR);
   - ``psf`` and ``edisp`` times their weight: ``exposure_irf`` x the safe
     mask sampled on the IRF grid (``edisp`` also x the reco-energy mask),
     or for region datasets without an IRF grid the (masked) ``exposure``;
   - ``livetime``.

2. Sums of several datasets add, after placing each on the common grid
   (`place`: cutouts carry their position in their WCS).

3. `from_sums` turns the sums back into a dataset: masks are ``sum > 0``,
   ``psf`` and ``edisp`` are divided by the summed weights, and for On/Off
   data ``alpha = background_off / counts_off`` per bin (the ratio of the
   summed acceptances where a bin has no OFF counts), and
   ``acceptance_off = acceptance / alpha``.

Because step 2 is a plain sum, stacking is associative and can be split over
observations and sky tiles in any order.
"""

from __future__ import annotations

import functools

import numpy as np
import xarray as xr

__all__ = ["IRF_SPATIAL", "SPATIAL", "add_sums", "from_sums", "pixel_offset", "place", "stack_datasets", "to_sums"]

SPATIAL = ("y", "x")
IRF_SPATIAL = ("y_irf", "x_irf")
_MASKED = ("counts", "background", "counts_off", "acceptance", "acceptance_off")
_WEIGHTED = ("psf", "edisp")
#: variables of a sums dataset that are integer counts of observations
MASK_VARIABLES = ("mask_safe", "mask_fit")


def _header(attrs_wcs: str):
    from astropy.io import fits

    return fits.Header.fromstring(attrs_wcs, sep="\n")


@functools.lru_cache(maxsize=64)  # header parsing is slow; every variable of a cutout asks again
def pixel_offset(parent_wcs: str, child_wcs: str) -> tuple[int, int]:
    """Integer pixel offset ``(dy, dx)`` of a cutout in its parent grid.

    Parameters
    ----------
    parent_wcs, child_wcs : str
        FITS header strings (the ``wcs`` attrs of the two maps).

    Raises
    ------
    ValueError
        If the child is not on the parent's pixel grid (different projection,
        reference value, pixel size, or a non-integer shift).
    """
    parent, child = _header(parent_wcs), _header(child_wcs)
    for key in ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2"):
        a, b = parent.get(key), child.get(key)
        same = a == b if isinstance(a, str) else a is not None and b is not None and np.isclose(a, b, rtol=1e-10, atol=1e-12)
        if not same:
            raise ValueError(f"map is not on the target pixel grid: {key} is {b!r}, the target has {a!r}")
    shift = np.array([parent["CRPIX2"] - child["CRPIX2"], parent["CRPIX1"] - child["CRPIX1"]])
    if not np.allclose(shift, np.rint(shift), atol=1e-6):
        raise ValueError(f"map is shifted by a fraction of a pixel ({shift}) from the target grid")
    return int(np.rint(shift[0])), int(np.rint(shift[1]))


def _irf_mask(mask: xr.DataArray, data: xr.Dataset, irf_var: xr.DataArray) -> xr.DataArray:
    """``mask`` (on y, x) sampled at the IRF-grid pixel centres (nearest pixel)."""
    if not set(SPATIAL) <= set(mask.dims):
        return mask  # region dataset: no sky grid
    from ..geom import WcsGeom

    irf_geom = WcsGeom.from_header(irf_var.attrs["wcs"], npix=(irf_var.sizes["x_irf"], irf_var.sizes["y_irf"]))
    main_geom = WcsGeom.from_header(mask.attrs.get("wcs") or data["counts"].attrs["wcs"], npix=(mask.sizes["x"], mask.sizes["y"]))
    ny, nx = irf_var.sizes["y_irf"], irf_var.sizes["x_irf"]
    xs, ys = np.meshgrid(np.arange(nx), np.arange(ny))
    x, y = main_geom.coord_to_pix(irf_geom.pix_to_skycoord(xs, ys))
    ix, iy = np.rint(x).astype(int), np.rint(y).astype(int)
    inside = (ix >= 0) & (ix < mask.sizes["x"]) & (iy >= 0) & (iy < mask.sizes["y"])
    values = mask.transpose(..., "y", "x").values[..., np.clip(iy, 0, mask.sizes["y"] - 1), np.clip(ix, 0, mask.sizes["x"] - 1)]
    values = values & inside
    other = [d for d in mask.dims if d not in SPATIAL]
    return xr.DataArray(values, dims=(*other, "y_irf", "x_irf"))


def _zeroed(var: xr.DataArray, keep: xr.DataArray | None) -> xr.DataArray:
    """``var`` as float64, zero where ``keep`` is False (broadcast by dim name), in one pass over the data."""
    if keep is None:
        return var.astype(float)
    if not set(keep.dims) <= set(var.dims):
        return var.astype(float).where(keep, 0.0)
    shape = [var.sizes[d] if d in keep.dims else 1 for d in var.dims]
    kept = keep.transpose(*[d for d in var.dims if d in keep.dims]).values.reshape(shape)
    return var.copy(data=np.where(kept, var.values, 0.0))


def to_sums(data: xr.Dataset) -> xr.Dataset:
    """Additive sufficient statistics of one dataset (see the module docstring).

    Parameters
    ----------
    data : `xarray.Dataset`
        A reduced dataset in the layout of `xgamma.datasets.core`.

    Returns
    -------
    `xarray.Dataset`
        Same dims and attrs; variables as listed above, float64 except the
        masks (int32).
    """
    mask = data["mask_safe"].astype(bool) if "mask_safe" in data else None
    out = {}
    for name in _MASKED:
        if name in data:
            out[name] = _zeroed(data[name], mask)
    if "counts_off" in data:
        alpha = (data["acceptance"] / data["acceptance_off"]).where(data["acceptance_off"] > 0, 0.0)
        out["background_off"] = _zeroed(alpha * data["counts_off"], mask)
    mask_image = mask.any("energy") if mask is not None else None
    if "exposure" in data:
        out["exposure"] = _zeroed(data["exposure"], mask_image)
    for name in MASK_VARIABLES:
        if name in data:
            out[name] = data[name].astype(np.int32)
    if "exposure_irf" in data:
        irf_mask = _irf_mask(mask_image, data, data["exposure_irf"]) if mask_image is not None else None
        weight = out["exposure_irf"] = _zeroed(data["exposure_irf"], irf_mask)
    elif "exposure" in out:
        # region datasets: IRFs share the exposure's (only) position; the weight is stored so that
        # datasets with and without a separate exposure_irf (containment correction) stack together
        weight = out["exposure"]
        if any(name in data for name in _WEIGHTED):
            out["exposure_irf"] = weight
    if "exposure_irf" in out or "exposure" in out:
        for name in _WEIGHTED:
            if name in data:
                weighted = data[name] * weight
                if name == "edisp" and mask is not None:
                    weighted = _zeroed(weighted, _irf_mask(mask, data, data[name]))
                out[name] = weighted
    if "livetime" in data:
        out["livetime"] = data["livetime"].astype(float)
    sums = xr.Dataset(out, coords=data.coords, attrs=dict(data.attrs))
    for name, var in sums.data_vars.items():
        # variables made here take the attrs of the variable with the same grid
        source = name if name in data else {"background_off": "counts_off", "exposure_irf": "exposure"}[name]
        var.attrs = dict(data[source].attrs)
        if name in _WEIGHTED:
            var.attrs["units"] = ""  # weighted sums; units restored by from_sums
    return sums


def add_sums(a: xr.Dataset, b: xr.Dataset) -> xr.Dataset:
    """Sum of two sums datasets on the same grid (attrs and obs ids merged).

    Raises
    ------
    ValueError
        If the two hold different variables (e.g. one was reduced without
        PSF), naming them.
    """
    if set(a.data_vars) != set(b.data_vars):
        raise ValueError(
            f"cannot stack datasets with different variables: {sorted(set(a.data_vars) ^ set(b.data_vars))} "
            "are in only one of them (reduce every observation with the same maker selection)"
        )
    total = a.copy()
    for name in a.data_vars:
        total[name] = a[name] + b[name]
        total[name].attrs = a[name].attrs
    total.attrs["obs_ids"] = list(a.attrs.get("obs_ids", [])) + list(b.attrs.get("obs_ids", []))
    if "gti" in a.attrs or "gti" in b.attrs:
        total.attrs["gti"] = list(a.attrs.get("gti", [])) + list(b.attrs.get("gti", []))
    return total


def from_sums(sums: xr.Dataset, units: dict | None = None) -> xr.Dataset:
    """Reduced dataset from (summed) sufficient statistics.

    Parameters
    ----------
    sums : `xarray.Dataset`
        Output of `to_sums` or a sum of such outputs.
    units : dict, optional
        Units of ``psf``/``edisp`` (default ``sr-1`` and ``""``).
    """
    units = {"psf": "sr-1", "edisp": ""} | dict(units or {})
    out = sums.copy()
    for name in MASK_VARIABLES:
        if name in sums:
            out[name] = sums[name] > 0
            out[name].attrs = dict(sums[name].attrs)
    weight = sums["exposure_irf"] if "exposure_irf" in sums else sums.get("exposure")
    if weight is not None:
        for name in _WEIGHTED:
            if name in sums:
                out[name] = (sums[name] / weight.where(weight > 0)).fillna(0.0)
                out[name].attrs = dict(sums[name].attrs, units=units[name])
    if "counts_off" in sums:
        off, background_off = sums["counts_off"], sums["background_off"]
        # a bin without OFF counts: in a spectrum, the average alpha of all its bins (Gammapy's rule);
        # in a map, the ratio of the summed acceptances of that bin, which stays local so that
        # stacking tile by tile (the Zarr store) gives the same numbers as stacking whole maps
        fallback = sums["acceptance"] / sums["acceptance_off"].where(sums["acceptance_off"] > 0)
        total_off = float(off.sum())
        if not set(SPATIAL) & set(off.dims) and total_off > 0:
            fallback = float(background_off.sum()) / total_off
        alpha = (background_off / off.where(off > 0)).fillna(fallback)
        out["acceptance_off"] = (sums["acceptance"] / alpha.where(alpha > 0)).fillna(0.0)
        out["acceptance_off"].attrs = {"units": ""}
        out = out.drop_vars("background_off")
    return out


def place(sums: xr.Dataset, template: xr.Dataset) -> xr.Dataset:
    """Embed cutout sums into zeros of the template's full grid.

    Parameters
    ----------
    sums : `xarray.Dataset`
        Sums of a cutout (its map variables carry the cutout's WCS).
    template : `xarray.Dataset`
        Dataset on the target grid (only shapes, coords and WCS attrs used).

    Returns
    -------
    `xarray.Dataset`
        The sums on the template grid, zero outside the cutout.
    """
    out = {}
    for name, var in sums.data_vars.items():
        target = template["counts_off" if name == "background_off" else name]
        spatial = next((dims for dims in (SPATIAL, IRF_SPATIAL) if set(dims) <= set(var.dims)), None)
        full = np.zeros(target.shape, dtype=var.dtype)
        if spatial is None:
            full[...] = var.transpose(*target.dims).values
        else:
            dy, dx = pixel_offset(target.attrs["wcs"], var.attrs["wcs"])
            index = tuple(
                slice(dy, dy + var.sizes[d]) if d == spatial[0] else slice(dx, dx + var.sizes[d]) if d == spatial[1] else slice(None)
                for d in target.dims
            )
            full[index] = var.transpose(*target.dims).values
        out[name] = xr.DataArray(full, dims=target.dims, attrs=dict(var.attrs, **({"wcs": target.attrs["wcs"]} if "wcs" in target.attrs else {})))
    return xr.Dataset(out, coords=template.coords, attrs=dict(sums.attrs))


def stack_datasets(datasets, template=None):
    """Stack datasets (in memory) with the rules of this module.

    Parameters
    ----------
    datasets : sequence of `xgamma.datasets.Dataset`
        Datasets on the same grid, or cutouts of ``template``'s grid.
    template : `xgamma.datasets.Dataset`, optional
        Dataset defining the target grid; default: the first dataset's.

    Returns
    -------
    `xgamma.datasets.Dataset`
        Of the type of the first dataset, named after the template (or
        ``"stacked"``), holding all observation ids.

    Raises
    ------
    ValueError
        If ``datasets`` is empty or a dataset is not on the target grid.
    """
    datasets = list(datasets)
    if not datasets:
        raise ValueError("stack_datasets: nothing to stack (empty list of datasets)")
    target = (template or datasets[0]).data
    total = None
    for dataset in datasets:
        sums = to_sums(dataset.data)
        if template is not None:
            sums = place(sums, target)
        total = sums if total is None else add_sums(total, sums)
    stacked = from_sums(total, units=_irf_units(datasets[0].data))
    stacked.attrs["name"] = (template.name if template is not None else "") or "stacked"
    return type(datasets[0])(stacked)


def _irf_units(data: xr.Dataset) -> dict:
    return {name: data[name].attrs.get("units", "") for name in _WEIGHTED if name in data}
