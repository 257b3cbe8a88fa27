"""Stacking reduced datasets through additive sufficient statistics.

Stacking is done in three steps, shared by the in-memory `stack_datasets`
and the scalable Zarr path (`xgamma.makers.reduce`), so both give the same
numbers:

1. `to_sums` turns one dataset into purely additive quantities:

   - ``counts``, ``background``, ``counts_off``, ``acceptance``,
     ``acceptance_off`` and ``background_off`` = alpha x counts_off, zeroed
     outside ``mask_safe``;
   - ``exposure`` zeroed where no energy bin of the pixel is safe;
   - ``mask_safe`` / ``mask_fit`` as 0/1 flags (uint8), combined with OR
     (`combine`), so that they never overflow;
   - ``psf`` and ``edisp`` times their weight: ``exposure_irf`` x the safe
     mask sampled on the IRF grid (``edisp`` also x the reco-energy mask),
     or for region datasets without an IRF grid the (masked) ``exposure``;
   - ``livetime``.

2. Sums of several datasets add (masks: OR), after placing each on the
   common grid (`place`: cutouts carry their position in their WCS).

3. `from_sums` turns the sums back into a dataset: masks are ``sum > 0``,
   ``psf`` and ``edisp`` are divided by the summed weights, and for On/Off
   data ``alpha = background_off / counts_off`` per bin (the ratio of the
   summed acceptances where a bin has no OFF counts), and
   ``acceptance_off = acceptance / alpha``.

Because step 2 is a plain sum (or OR), stacking is associative and can be
split over observations and sky tiles in any order.
"""

from __future__ import annotations

import functools

import numpy as np
import xarray as xr

__all__ = ["IRF_SPATIAL", "SPATIAL", "add_sums", "combine", "from_sums", "pixel_offset", "place", "stack_datasets", "to_sums"]

SPATIAL = ("y", "x")
IRF_SPATIAL = ("y_irf", "x_irf")
_MASKED = ("counts", "background", "counts_off", "acceptance", "acceptance_off")
_WEIGHTED = ("psf", "edisp")
#: variables of a sums dataset that are 0/1 flags (uint8), combined with OR
MASK_VARIABLES = ("mask_safe", "mask_fit")


def combine(name: str, total: np.ndarray, values: np.ndarray) -> None:
    """Add the sums ``values`` of variable ``name`` into ``total`` in place (masks: OR)."""
    if name in MASK_VARIABLES:
        np.bitwise_or(total, values, out=total)
    else:
        np.add(total, values, out=total)


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


@functools.lru_cache(maxsize=8)  # to_sums asks twice per dataset (exposure_irf and edisp)
def _irf_pixels(main_wcs: str, main_shape: tuple, irf_wcs: str, irf_shape: tuple) -> tuple:
    """``(iy, ix, inside)``: the main-grid pixel nearest to each IRF-grid pixel centre (clipped), and whether it is on the grid."""
    from ..geom import WcsGeom

    (ny, nx), (ny_irf, nx_irf) = main_shape, irf_shape
    irf_geom = WcsGeom.from_header(irf_wcs, npix=(nx_irf, ny_irf))
    main_geom = WcsGeom.from_header(main_wcs, npix=(nx, ny))
    xs, ys = np.meshgrid(np.arange(nx_irf), np.arange(ny_irf))
    x, y = main_geom.coord_to_pix(irf_geom.pix_to_skycoord(xs, ys))
    ix, iy = np.rint(x).astype(int), np.rint(y).astype(int)
    inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    return np.clip(iy, 0, ny - 1), np.clip(ix, 0, nx - 1), inside


def _irf_mask(mask: xr.Variable, var: dict, irf_name: str) -> xr.Variable:
    """``mask`` (on y, x) sampled at the IRF-grid pixel centres (nearest pixel) of ``var[irf_name]``."""
    if not set(SPATIAL) <= set(mask.dims):
        return mask  # region dataset: no sky grid
    main_wcs = var["mask_safe"].attrs.get("wcs") or var["counts"].attrs["wcs"]
    sizes, irf = mask.sizes, var[irf_name]
    iy, ix, inside = _irf_pixels(main_wcs, (sizes["y"], sizes["x"]), irf.attrs["wcs"], (irf.sizes["y_irf"], irf.sizes["x_irf"]))
    other = [d for d in mask.dims if d not in SPATIAL]
    values = mask.transpose(*other, "y", "x").values[..., iy, ix] & inside
    return xr.Variable((*other, "y_irf", "x_irf"), values)


def _zeroed(var: xr.Variable, keep: xr.Variable | None, overwrite=False) -> xr.Variable:
    """``var`` as float64, zero where ``keep`` is False (broadcast by dim name), in one pass over the data.

    With ``overwrite``, a writeable float64 array is zeroed in place by multiplying it with the mask
    (several times faster than a new array from `numpy.where`), unless it holds a NaN or an infinity,
    which a zero factor would not clear.
    """
    if keep is None:
        return var if overwrite and var.dtype == np.float64 else var.astype(float)
    if not set(keep.dims) <= set(var.dims):
        return var.astype(float).where(keep, 0.0)
    kept = keep.set_dims(var.dims).values  # size 1 on the dims keep lacks
    values = var.values
    if _writable_float(values, overwrite) and np.isfinite(values.sum()):
        values *= kept
        return xr.Variable(var.dims, values)
    return xr.Variable(var.dims, np.where(kept, values, 0.0))


def _weighted(var: xr.Variable, weight: xr.Variable, overwrite=False) -> xr.Variable:
    """``var * weight`` (broadcast by dim name, ``var``'s dims first), in place with ``overwrite``."""
    values = var.values
    if set(weight.dims) <= set(var.dims) and _writable_float(values, overwrite):
        values *= weight.set_dims(var.dims).values
        return xr.Variable(var.dims, values)
    return var * weight


def _writable_float(values, overwrite) -> bool:
    return overwrite and isinstance(values, np.ndarray) and values.dtype == np.float64 and values.flags.writeable


def to_sums(data: xr.Dataset, overwrite=False) -> xr.Dataset:
    """Additive sufficient statistics of one dataset (see the module docstring).

    Parameters
    ----------
    data : `xarray.Dataset`
        A reduced dataset in the layout of `xgamma.datasets.core`.
    overwrite : bool
        Let the sums reuse (and change) the dataset's writeable float64
        arrays instead of copying them: for a dataset used only to be
        stacked, such as each observation's in `xgamma.makers.reduce`. Its
        arrays must not be shared with anything else.

    Returns
    -------
    `xarray.Dataset`
        Same dims and attrs; variables as listed above, float64 except the
        masks (uint8).
    """
    # on bare Variables: broadcasting by dim name without DataArray coordinate alignment (same grid)
    var = {name: data[name].variable for name in data.data_vars}
    mask = var["mask_safe"].astype(bool) if "mask_safe" in var else None
    out = {}
    if "counts_off" in var:  # before counts_off is zeroed in place
        alpha = (var["acceptance"] / var["acceptance_off"]).where(var["acceptance_off"] > 0, 0.0)
        out["background_off"] = _zeroed(alpha * var["counts_off"], mask, overwrite=True)  # a new array
    for name in _MASKED:
        if name in var:
            out[name] = _zeroed(var[name], mask, overwrite)
    mask_image = mask.any("energy") if mask is not None else None
    if "exposure" in var:
        out["exposure"] = _zeroed(var["exposure"], mask_image, overwrite)
    for name in MASK_VARIABLES:
        if name in var:
            out[name] = var[name].astype(bool).astype(np.uint8)  # 0/1, one byte per bin
    if "exposure_irf" in var:
        irf_mask = _irf_mask(mask_image, var, "exposure_irf") if mask_image is not None else None
        weight = out["exposure_irf"] = _zeroed(var["exposure_irf"], irf_mask, overwrite)
    elif "exposure" in out:
        # region datasets: IRFs share the exposure's (only) position; the weight is stored so that
        # datasets with and without a separate exposure_irf (containment correction) stack together
        weight = out["exposure"]
        if any(name in var for name in _WEIGHTED):
            out["exposure_irf"] = weight
    if "exposure_irf" in out or "exposure" in out:
        for name in _WEIGHTED:
            if name in var:
                weighted = _weighted(var[name], weight, overwrite)
                if name == "edisp" and mask is not None:
                    weighted = _zeroed(weighted, _irf_mask(mask, var, name), overwrite=True)  # ours either way
                out[name] = weighted
    if "livetime" in var:
        out["livetime"] = var["livetime"].astype(float)
    variables = {}
    for name, values in out.items():
        # variables made here take the attrs of the variable with the same grid
        source = name if name in var else {"background_off": "counts_off", "exposure_irf": "exposure"}[name]
        attrs = dict(var[source].attrs, **({"units": ""} if name in _WEIGHTED else {}))  # weighted sums: units restored by from_sums
        variables[name] = xr.Variable(values.dims, values.data, attrs)
    return xr.Dataset(variables, coords=data.coords, attrs=dict(data.attrs))


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
        total[name] = (a[name] | b[name]) if name in MASK_VARIABLES else a[name] + b[name]
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
    changed = stacked_variables({name: var.variable for name, var in sums.data_vars.items()})
    out = sums.copy()
    for name, var in changed.items():
        attrs = {"units": ""} if name == "acceptance_off" else dict(sums[name].attrs)
        if name in _WEIGHTED:
            attrs["units"] = units[name]
        out[name] = xr.Variable(var.dims, var.data, attrs)
    return out.drop_vars("background_off") if "counts_off" in sums else out


def stacked_variables(sums: dict) -> dict:
    """The variables of `from_sums` that differ from the sums (no attrs), from name -> `xarray.Variable`.

    ``background_off`` is among the sums only; the others are unchanged. On
    bare Variables (dims broadcast by name, no coordinates), so that a Zarr
    store tile is stacked without building a Dataset.
    """
    out = {}
    for name in MASK_VARIABLES:
        if name in sums:
            out[name] = sums[name] > 0
    weight = sums["exposure_irf"] if "exposure_irf" in sums else sums.get("exposure")
    if weight is not None:
        for name in _WEIGHTED:
            if name in sums:
                out[name] = _ratio(sums[name], weight)
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
        out["acceptance_off"] = _ratio(sums["acceptance"], alpha)
    return out


def _ratio(num: xr.Variable, den: xr.Variable) -> xr.Variable:
    """``(num / den.where(den > 0)).fillna(0)`` without the NaN-filled intermediate copies."""
    dims = (*num.dims, *(d for d in den.dims if d not in num.dims))  # xarray's order of broadcast dims
    n, d = num.set_dims(dims).values, den.set_dims(dims).values
    # at least a float, as den.where() makes it
    ratio = np.zeros(np.broadcast_shapes(n.shape, d.shape), dtype=np.result_type(n.dtype, d.dtype, np.float16))
    np.divide(n, d, out=ratio, where=d > 0)
    ratio[np.isnan(ratio)] = 0.0
    return xr.Variable(dims, ratio)


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
