"""WCS maps in the FITS layout Gammapy writes (GADF DL4 sky maps).

Use `read_map_fits` for Gammapy map files and for any HDU of a Gammapy
MapDataset file (``COUNTS``, ``EXPOSURE``, ``EDISP`` ...); use `write_map_fits`
for interchange. Zarr (`xgamma.io.zarr`) is the native storage.

Layout: an IMAGE HDU (the primary one for a single map) holds the data with
the 2-D celestial WCS in its header. FITS axis order is the reverse of numpy:
NAXIS1 is ``x``, NAXIS2 is ``y``, NAXIS3 the non-spatial axis next to ``y``
... so numpy dims are ``(axisN, ..., axis1, "y", "x")``. The keyword BANDSHDU
names a BINTABLE describing the non-spatial axes, one row per channel with the
first axis varying fastest; ``AXCOLSi`` lists the columns of axis ``i``
(``"E_MIN,E_MAX"`` for bins, a single column such as ``"ENERGY_TRUE"`` for
nodes) and ``INTERPi`` its interpolation scale. Legacy Fermi ``EBOUNDS``
(E_MIN, E_MAX) and ``ENERGIES`` (ENERGY) tables are read too.
"""

from __future__ import annotations

import io

import fsspec
import numpy as np
from astropy import units as u
from astropy.io import fits

from ..axes import MapAxis
from ..geom import WcsGeom
from ..units import unit_string

__all__ = ["read_map_fits", "write_map_fits"]

_FORMATS = ("gadf", "fgst-ccube", "fgst-template")


# ---- axes <-> bands table -----------------------------------------------------
def _axis_columns(axis: MapAxis, format: str):
    """Columns (name -> values) describing ``axis``, and its AXCOLS value."""
    if format == "fgst-template":
        return {"ENERGY": axis.center.value}, "ENERGY"
    if format == "fgst-ccube":
        return {"E_MIN": axis.edges_min.value, "E_MAX": axis.edges_max.value}, "E_MIN,E_MAX"
    centre = axis.name.upper()
    stem = "E" if axis.name == "energy" else centre
    cols = {centre: axis.center.value, f"{stem}_MIN": axis.edges_min.value, f"{stem}_MAX": axis.edges_max.value}
    return cols, centre if axis.is_nodes else f"{stem}_MIN,{stem}_MAX"


def _bands_hdu(axes_fits, name, format) -> fits.BinTableHDU:
    """Bands table for ``axes_fits`` (FITS order: axis 1 first, varying fastest)."""
    nbins = [ax.nbin for ax in axes_fits]
    total = int(np.prod(nbins))
    columns = [fits.Column("CHANNEL", "J", array=np.arange(total))]
    header = fits.Header()
    stride = 1
    for i, (ax, n) in enumerate(zip(axes_fits, nbins), start=1):
        cols, axcols = _axis_columns(ax, format)
        for col, values in cols.items():
            values = np.tile(np.repeat(values, stride), total // (stride * n))
            columns.append(fits.Column(col, "D", unit=unit_string(ax.unit) or None, array=values))
        header[f"AXCOLS{i}"] = axcols
        header[f"INTERP{i}"] = ax.interp
        stride *= n
    return fits.BinTableHDU.from_columns(columns, header=header, name=name)


def _axis_name(column: str, bands_name: str) -> str:
    stem = column.upper().removesuffix("_MIN")
    if stem in ("E", "ENERGY"):
        return "energy_true" if bands_name == "ENERGIES" else "energy"
    if stem == "THETA":
        return "rad"
    return stem.lower()


def _axes_from_bands(table: fits.BinTableHDU, image_header, shape_fits, where) -> list:
    """Axes in FITS order (axis 1 first) from a bands table."""
    names = [c.upper() for c in table.columns.names]
    if len(table.data) != int(np.prod(shape_fits)):
        raise ValueError(
            f"{where}: bands table {table.name} has {len(table.data)} rows, the image has {shape_fits} channels"
        )
    axes, stride = [], 1
    for i, n in enumerate(shape_fits, start=1):
        axcols = table.header.get(f"AXCOLS{i}", image_header.get(f"AXCOLS{i}"))
        if axcols is None:  # legacy Fermi tables: one energy axis
            axcols = "E_MIN,E_MAX" if {"E_MIN", "E_MAX"} <= set(names) else "ENERGY"
        cols = [c.strip() for c in axcols.split(",")]
        missing = [c for c in cols if c.upper() not in names]
        if missing:
            raise ValueError(f"{where}: bands table {table.name} lacks columns {missing} (has {names})")
        name = _axis_name(cols[0], table.name)
        default_interp = "log" if name.startswith("energy") else "lin"
        interp = str(table.header.get(f"INTERP{i}", image_header.get(f"INTERP{i}", default_interp))).strip()
        unit = table.columns[cols[0]].unit or ""
        rows = np.arange(n) * stride
        values = [np.asarray(table.data[c], dtype=float)[rows] for c in cols]
        if len(values) == 2:
            axes.append(MapAxis(values[0], values[1], name=name, unit=unit, interp=interp))
        else:
            axes.append(MapAxis(values[0], values[0], name=name, unit=unit, interp=interp))
        stride *= n
    return axes


# ---- read / write ---------------------------------------------------------------
def _open(path) -> fits.HDUList:
    with fsspec.open(str(path), "rb", compression="infer") as f:
        raw = f.read()
    return fits.open(io.BytesIO(raw), memmap=False)


def _image_hdu(hdul, hdu, path):
    if hdu is None:
        for candidate in hdul:
            if candidate.is_image and candidate.header.get("NAXIS", 0) >= 2:
                return candidate
        raise ValueError(f"{path}: no image HDU (HDUs: {[h.name for h in hdul]})")
    try:
        found = hdul[hdu.upper() if isinstance(hdu, str) else hdu]
    except (KeyError, IndexError) as err:
        raise KeyError(f"{path}: no HDU {hdu!r} (HDUs: {[h.name for h in hdul]})") from err
    if not found.is_image or found.header.get("NAXIS", 0) < 2:
        raise ValueError(f"{path}: HDU {hdu!r} is not an image with at least two axes")
    return found


def _bands_table(hdul, image, path):
    candidates = [image.header.get("BANDSHDU"), f"{image.name}_BANDS", "EBOUNDS", "ENERGIES"]
    for name in candidates:
        if name and name.upper() in hdul:
            return hdul[name.upper()]
    raise ValueError(f"{path}: HDU {image.name} has non-spatial axes but no bands table (tried {candidates})")


def _units(bunit: str) -> str:
    try:
        return unit_string(u.Unit(bunit, format="fits", parse_strict="raise")) if bunit.strip() else ""
    except ValueError:
        return unit_string(u.Unit(bunit, parse_strict="silent"))


def read_map_fits(path, hdu=None):
    """Read a WCS map from FITS (Gammapy map files and MapDataset HDUs).

    Parameters
    ----------
    path : str or path-like
        Local path or fsspec URL, plain or gzip-compressed.
    hdu : str or int, optional
        Image HDU, e.g. ``"COUNTS"``; by default the first image HDU.

    Returns
    -------
    `xarray.DataArray`
        Dims ``(axisN, ..., axis1, "y", "x")`` (numpy order of the FITS image),
        axis coords from the bands table, attrs ``units`` (from BUNIT) and
        ``wcs``; named after the HDU in lower case (None for the primary HDU).

    Raises
    ------
    KeyError
        If the HDU does not exist (the message lists the file's HDUs).
    ValueError
        If the HDU is not an image or its bands table is missing or inconsistent.
    """
    hdul = _open(path)
    image = _image_hdu(hdul, hdu, path)
    data = np.asarray(image.data)
    data = data.astype(data.dtype.newbyteorder("="), copy=False)
    shape_fits = data.shape[::-1][2:]
    axes = []
    if shape_fits:
        table = _bands_table(hdul, image, path)
        axes = _axes_from_bands(table, image.header, shape_fits, f"{path} HDU {image.name}")[::-1]
    geom = WcsGeom.from_header(image.header, axes=axes, npix=(data.shape[-1], data.shape[-2]))
    name = None if image.name == "PRIMARY" else image.name.lower()
    return geom.to_dataarray(data, unit=_units(str(image.header.get("BUNIT", ""))), name=name)


def write_map_fits(da, path, overwrite=False, hdu="PRIMARY", hdu_bands=None, format="gadf") -> None:
    """Write a WCS map to FITS in Gammapy's layout.

    Parameters
    ----------
    da : `xarray.DataArray`
        WCS map (see `xgamma.geom.WcsGeom.to_dataarray`); dask data is computed.
    path : str or path-like
        Local path or fsspec URL.
    overwrite : bool
        Replace an existing file.
    hdu : str
        Name of the image HDU; ``"PRIMARY"`` (default) writes a single-map
        file, another name writes an empty primary HDU followed by the image.
    hdu_bands : str, optional
        Name of the bands table; default ``"<HDU>_BANDS"`` (``"EBOUNDS"`` for
        ``format="fgst-ccube"``, ``"ENERGIES"`` for ``"fgst-template"``).
    format : {"gadf", "fgst-ccube", "fgst-template"}
        ``"gadf"``: table with CHANNEL and, per axis, centre, ``_MIN`` and
        ``_MAX`` columns (``ENERGY``, ``E_MIN``, ``E_MAX`` for ``energy``), in
        the axis unit. ``"fgst-ccube"``: one binned energy axis in ``EBOUNDS``
        (CHANNEL, E_MIN, E_MAX). ``"fgst-template"``: one node energy axis in
        ``ENERGIES`` (CHANNEL, ENERGY).

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    ValueError
        For an unknown format or axes the Fermi formats cannot hold.
    """
    if format not in _FORMATS:
        raise ValueError(f"format must be one of {_FORMATS}, got {format!r}")
    geom = WcsGeom.from_dataarray(da)
    axes_fits = list(geom.axes[::-1])
    if format != "gadf" and len(axes_fits) != 1:
        raise ValueError(f"format {format!r} holds exactly one energy axis, the map has dims {list(da.dims)}")
    hdu = hdu.upper()
    hdu_bands = hdu_bands or {"gadf": f"{hdu}_BANDS", "fgst-ccube": "EBOUNDS", "fgst-template": "ENERGIES"}[format]
    header = geom.to_header()
    for key in ("NAXIS", "NAXIS1", "NAXIS2"):
        header.remove(key, ignore_missing=True)
    data = np.asarray(da.transpose(*geom.dims).values)
    header["WCSSHAPE"] = "(" + ",".join(str(n) for n in data.shape[::-1]) + ")"
    hdus = []
    if axes_fits:
        bands = _bands_hdu(axes_fits, hdu_bands, format)
        for key in ("AXCOLS", "INTERP"):
            for i in range(1, len(axes_fits) + 1):
                header[f"{key}{i}"] = bands.header[f"{key}{i}"]
        header["BANDSHDU"] = hdu_bands
        hdus.append(bands)
    units = da.attrs.get("units", "")
    header["BUNIT"] = u.Unit(units).to_string("fits") if units else ""
    if hdu == "PRIMARY":
        image = [fits.PrimaryHDU(data, header=header)]
    else:
        image = [fits.PrimaryHDU(), fits.ImageHDU(data, header=header, name=hdu)]
    hdul = fits.HDUList(image + hdus)
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    if fs.exists(fs_path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    with fs.open(fs_path, "wb") as f:
        hdul.writeto(f)
