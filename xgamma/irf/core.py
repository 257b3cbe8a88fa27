"""Common base of all IRF classes: labelled data, metadata and interpolation.

Every IRF wraps one `xarray.DataArray` (``irf.data``) whose dimensions are
xgamma axis names (``energy_true``, ``energy``, ``offset``, ``migra``,
``rad``, ``fov_lon``, ``fov_lat``) carrying `~xgamma.axes.MapAxis` coordinates
(centre, ``<name>_min``, ``<name>_max``; attrs ``units``, ``interp``). The
values are exactly the values of the FITS column, in the file's unit (attr
``units``); the header metadata travels in ``attrs`` as well, so
``to_dataarray`` / ``from_dataarray`` round-trip through Zarr.

Interpolation (`IRF.evaluate`)
------------------------------
Multilinear between table nodes, on each axis's own scale: log in energy,
linear in offset, migra, rad and FoV coordinates. Nodes are the bin centres
(geometric centres for energy) or, for node axes (``THETA_LO == THETA_HI``),
the nodes themselves; a value at a node is the table value exactly. Between
the outermost centre and the outer bin edge the outermost value is held (the
bin's value stands for the whole bin). Beyond the axis extent (outer bin edges
with a 1e-6 relative tolerance for float32 edges, or first/last node) the
result is 0; classes name the axes where they clamp to the edge value instead
(`RadMax2D`). NaN coordinates give NaN. Values are
interpolated linearly, except where a class sets ``values_scale = "log"``
(background: log of the rate, values clipped at float32 ``tiny`` so empty
nodes stay finite; results at or below that floor are returned as 0).
"""

from __future__ import annotations

import functools

import astropy.units as u
import numpy as np
import xarray as xr

from ..axes import MapAxis
from ..io.fits import DL3FileError, HDUData, read_hdus, read_irf_table
from ..units import quantity, to_value, unit_string

__all__ = ["IRF", "IRFClassError", "parse_unit", "CANONICAL_AXIS_UNITS"]

#: Unit in which plain numbers given for each axis are understood.
CANONICAL_AXIS_UNITS = {
    "energy": u.TeV,
    "energy_true": u.TeV,
    "offset": u.deg,
    "rad": u.deg,
    "fov_lon": u.deg,
    "fov_lat": u.deg,
    "migra": u.dimensionless_unscaled,
}

# GADF axis column name -> (xgamma dim, interpolation scale); energy depends on the class.
_GADF_AXIS_SCALE = {"ENERG": "log", "THETA": "lin", "MIGRA": "lin", "RAD": "lin", "DETX": "lin", "DETY": "lin"}

# Header keywords kept as metadata attrs (values are plain str/float).
_META_KEYS = ("HDUCLASS", "HDUVERS", "HDUCLAS1", "HDUCLAS2", "HDUCLAS4", "LO_THRES", "HI_THRES", "RAD_MAX", "FOVALIGN")

_TINY = float(np.finfo(np.float32).tiny)
_REL_TOL = 1e-6  # tolerance on the axis extent (edges are often float32)


class IRFClassError(DL3FileError, ValueError):
    """An IRF HDU of unknown or unsupported class (also a `ValueError`)."""


def parse_unit(text, default="") -> u.Unit:
    """Parse a FITS unit string, accepting generic, OGIP and CDS spellings.

    Parameters
    ----------
    text : str or None
        Unit string from a FITS column (``"m2"``, ``"1/s/MeV/sr"``, ``"sr^(-1)"`` ...).
    default : str
        Unit used when ``text`` is empty.

    Raises
    ------
    ValueError
        If no format can parse ``text``.
    """
    return _parse_unit((text or "").strip() or default)


@functools.lru_cache(maxsize=256)
def _parse_unit(text) -> u.Unit:
    """`parse_unit` of a non-empty string; cached, as parsing is slow and units are immutable."""
    for fmt in (None, "ogip", "cds", "fits"):
        try:
            return u.Unit(text) if fmt is None else u.Unit(text, format=fmt)
        except ValueError:
            continue
    raise ValueError(f"cannot parse unit {text!r}")


def _meta_value(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return str(value).strip()


# ---------------------------------------------------------------------------
# interpolation kernel
# ---------------------------------------------------------------------------
class _AxisGrid:
    """One axis prepared for interpolation, in canonical units."""

    def __init__(self, axis: MapAxis, clamp: bool):
        factor = axis.unit.to(CANONICAL_AXIS_UNITS.get(axis.name, axis.unit))
        self.name = axis.name
        self.log = axis.interp == "log"
        centers = axis.center.value * factor
        self.nodes = np.log(centers) if self.log else centers
        self.spacing = np.diff(self.nodes)
        self.lo = axis.edges_min.value[0] * factor
        self.hi = axis.edges_max.value[-1] * factor
        self.clamp = clamp

    def weights(self, x):
        """Lower node index, weight of the upper node (NaN for NaN ``x``), and outside mask."""
        x = np.asarray(x, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            scaled = np.log(x) if self.log else x
            tol = _REL_TOL * max(abs(self.lo), abs(self.hi), 1e-12)
            outside = (x < self.lo - tol) | (x > self.hi + tol)
        n = self.nodes.size
        if n == 1:
            return np.zeros(x.shape, dtype=int), np.zeros(x.shape), outside
        clipped = np.clip(scaled, self.nodes[0], self.nodes[-1])  # NaN stays NaN, so its weight is NaN
        idx = np.clip(np.searchsorted(self.nodes, clipped, side="right") - 1, 0, n - 2)
        weight = (clipped - self.nodes[idx]) / self.spacing[idx]
        return idx, weight, outside


def _corners(grids, coords):
    """Yield ``(index tuple, weight)`` for the ``2**ndim`` cell corners.

    ``coords`` are plain arrays already broadcast to one shape.
    """
    parts = [grid.weights(c) for grid, c in zip(grids, coords)]
    ndim = len(grids)
    for corner in range(2**ndim):
        index, weight = [], 1.0
        for k, (idx, w, _) in enumerate(parts):
            upper = (corner >> k) & 1
            if grids[k].nodes.size == 1:
                if upper:
                    break
                index.append(idx)
                continue
            index.append(idx + upper)
            weight = weight * (w if upper else 1.0 - w)
        else:
            yield tuple(index), weight
    return


def _outside(grids, coords):
    mask = np.zeros(np.shape(coords[0]), dtype=bool)
    for grid, c in zip(grids, coords):
        if not grid.clamp:
            mask |= grid.weights(c)[2]
    return mask


def interpolation_matrix(grids, coords):
    """Multilinear interpolation as a sparse matrix: ``values at coords = matrix @ table``.

    Parameters
    ----------
    grids : list of `_AxisGrid`
        The table's leading axes.
    coords : list of `numpy.ndarray`
        One coordinate array per grid, already broadcast to one shape ``S``.

    Returns
    -------
    matrix : `scipy.sparse.csr_matrix`
        Shape ``(prod(S), prod(table nodes))``; each row holds the ``2**ndim``
        corner weights of one point (NaN for NaN coordinates, 0 outside the
        table on non-clamped axes). Only the corners are stored, so a NaN
        table node spoils only the points next to it.
    outside : `numpy.ndarray`
        Bool, shape ``S``: points beyond the table extent (non-clamped axes).
    """
    import scipy.sparse

    shape = np.shape(coords[0])
    sizes = [grid.nodes.size for grid in grids]
    strides = [int(np.prod(sizes[k + 1 :])) for k in range(len(sizes))]  # C order
    n_columns = int(np.prod(sizes))
    index_type = np.int32 if n_columns < 2**31 else np.int64  # scipy's own choice: no conversion copy
    outside = np.zeros(shape, dtype=bool)
    columns, weights = np.zeros(shape, dtype=index_type), []
    corner_offsets = [0]
    for grid, c, stride in zip(grids, coords, strides):
        idx, w, out = grid.weights(c)
        if not grid.clamp:
            outside |= out
        columns += (idx * stride).astype(index_type, copy=False)
        if grid.nodes.size > 1:  # lower and upper node
            corner_offsets = [o + upper * stride for o in corner_offsets for upper in (0, 1)]
            weights = [x for weight in weights or [1.0] for x in (weight * (1.0 - w), weight * w)]
    n_points, n_corners = columns.size, len(weights) or 1
    data = np.empty((n_points, n_corners))
    for k, w in enumerate(weights or [1.0]):
        data[:, k] = np.ravel(w)
    if outside.any():
        data[outside.ravel()] = 0.0
    index = np.ravel(columns)[:, None] + np.array(corner_offsets, dtype=index_type)[None, :]
    indptr = np.arange(0, n_corners * n_points + 1, n_corners, dtype=index_type)
    matrix = scipy.sparse.csr_matrix((data.ravel(), index.ravel(), indptr), shape=(n_points, n_columns))
    return matrix, outside


def _varying_dims(coords):
    """For coordinates forming an outer product, the one dim along which each varies.

    ``None`` for a constant coordinate; returns None altogether when a
    coordinate varies along several dims or two along the same one (then
    there is no outer-product structure to exploit). Broadcast views (zero
    strides) are recognised, so ``np.broadcast_arrays`` of 1-D profiles
    qualifies.
    """
    dims = []
    for c in coords:
        varying = [d for d, (n, step) in enumerate(zip(c.shape, c.strides)) if n > 1 and step != 0]
        if len(varying) > 1:
            return None
        dims.append(varying[0] if varying else None)
    used = [d for d in dims if d is not None]
    return dims if len(set(used)) == len(used) else None


def _interpolate_outer(grids, table, coords, dims):
    """Multilinear interpolation on an outer product of 1-D coordinates, one axis after the other.

    Multilinear interpolation is a product of 1-D linear interpolations, so
    interpolating the table along each axis in turn gives the same values
    (to rounding) at a cost set by the output size, not by ``2**ndim`` times it.
    """
    shape = coords[0].shape
    outside = np.zeros(shape, dtype=bool)
    result = table
    for k, (grid, c, d) in enumerate(zip(grids, coords, dims)):
        line = c.reshape(-1)[:1] if d is None else c[tuple(slice(None) if j == d else 0 for j in range(c.ndim))]
        matrix, out = interpolation_matrix([grid], [line])
        moved = np.moveaxis(result, k, 0)
        flat = matrix @ moved.reshape(moved.shape[0], -1)
        result = np.moveaxis(flat.reshape((line.size,) + moved.shape[1:]), 0, k)
        if not grid.clamp:
            outside |= out.reshape([-1 if j == d else 1 for j in range(len(shape))]) if d is not None else out[0]
    # axis k of ``result`` goes to output dim dims[k]; constant coordinates leave none
    trailing = result.shape[len(grids) :]
    kept = [k for k, d in enumerate(dims) if d is not None]
    result = result.reshape([result.shape[k] for k in kept] + list(trailing))
    order = sorted(range(len(kept)), key=lambda i: dims[kept[i]])
    result = result.transpose(order + list(range(len(kept), result.ndim)))
    placed = [shape[j] if j in dims else 1 for j in range(len(shape))]
    return np.broadcast_to(result.reshape(placed + list(trailing)), shape + trailing), outside


def interpolate_scaled(grids, values, coords, values_scale="lin"):
    """Multilinear interpolation on the values' own scale (log of the values for ``"log"``).

    Returns
    -------
    result : `numpy.ndarray`
        Shape ``S`` + the trailing dims of ``values`` beyond the grid axes; for
        ``values_scale="log"`` the interpolated *logarithm* (values clipped at
        float32 ``tiny`` first). Points outside the table are not filled here:
        see ``outside``. May be a read-only broadcast view.
    outside : `numpy.ndarray`
        Bool, shape ``S``.
    """
    coords = np.broadcast_arrays(*[np.asarray(c, dtype=float) for c in coords])
    table = np.log(np.clip(values, _TINY, None)) if values_scale == "log" else np.asarray(values)
    dims = _varying_dims(coords)
    if dims is not None:
        return _interpolate_outer(grids, table, coords, dims)
    trailing = table.shape[len(grids) :]
    matrix, outside = interpolation_matrix(grids, coords)
    flat = matrix @ table.reshape(matrix.shape[1], -1)
    return flat.reshape(coords[0].shape + trailing), outside


def interpolate(grids, values, coords, values_scale="lin", fill_value=0.0):
    """Multilinear interpolation of ``values`` (dims in the order of ``grids``).

    Trailing dims of ``values`` beyond the grid axes are carried along.
    """
    result, outside = interpolate_scaled(grids, values, coords, values_scale)
    if values_scale == "log":
        result = exp_above_floor(result)
    outside = outside.reshape(outside.shape + (1,) * (result.ndim - outside.ndim))
    return np.where(outside, fill_value, result)


def interpolate_along(grids, values, coords, values_scale="lin"):
    """`interpolate` along some axes of the table only, on its own nodes along the others.

    On a node the interpolant is the table value itself, so this equals
    `interpolate` on the outer product of ``coords`` and the other axes'
    nodes (for finite values), without the work on those axes.

    Parameters
    ----------
    grids : list of `_AxisGrid`
        One per axis of ``values``.
    values : `numpy.ndarray`
        The table.
    coords : dict
        Axis index -> 1-D coordinates (plain, canonical units).

    Returns
    -------
    `numpy.ndarray`
        ``values`` with each axis in ``coords`` replaced by its coordinates;
        0 beyond the table along non-clamped axes.
    """
    table = np.log(np.clip(values, _TINY, None)) if values_scale == "log" else np.asarray(values)
    outside = np.zeros([1] * table.ndim, dtype=bool)
    for k, c in sorted(coords.items()):  # same order (and so rounding) as `_interpolate_outer`
        c = np.asarray(c, dtype=float).reshape(-1)
        matrix, out = interpolation_matrix([grids[k]], [c])
        moved = np.moveaxis(table, k, 0)
        flat = matrix @ moved.reshape(moved.shape[0], -1)
        table = np.moveaxis(flat.reshape((c.size,) + moved.shape[1:]), 0, k)
        if not grids[k].clamp:
            outside = outside | out.reshape([-1 if j == k else 1 for j in range(table.ndim)])
    if values_scale == "log":
        table = exp_above_floor(table)
    return np.where(outside, 0.0, table)


#: Log of the smallest log-interpolated value kept: at or below it the value is 0
#: (empty table nodes are clipped to float32 ``tiny`` so that their log is finite).
LOG_FLOOR = float(np.log(2 * _TINY))


def exp_above_floor(log_values):
    """``exp(log_values)``, 0 at or below `LOG_FLOOR` (NaN stays NaN)."""
    with np.errstate(invalid="ignore"):
        return np.where(log_values <= LOG_FLOOR, 0.0, np.exp(log_values))


# ---------------------------------------------------------------------------
# base class
# ---------------------------------------------------------------------------
class IRF:
    """Base class of the IRF classes; see the module docstring for conventions.

    Parameters
    ----------
    data : `xarray.DataArray`
        Values with dims ``axis_names`` (any order; transposed by name) and
        MapAxis coordinates, attrs ``units`` plus metadata.

    Attributes
    ----------
    tag : str
        HDU-index class (``aeff_2d`` ...).
    axis_names : tuple of str
        Dimension names in canonical order.
    output_unit : str
        Unit of `evaluate`'s result.
    """

    tag = ""
    axis_names: tuple = ()
    gadf_axes: dict = {}  # GADF axis column -> xgamma dim
    data_column: tuple = ()  # column name and its aliases
    default_unit = ""  # unit of the data column when the file gives none
    output_unit = ""
    values_scale = "lin"
    clamp_axes: tuple = ()
    extra_dims: tuple = ()  # non-axis dims of ``data`` (parametric PSFs)

    def __init__(self, data: xr.DataArray):
        if not isinstance(data, xr.DataArray):
            raise TypeError(f"{type(self).__name__} needs an xarray.DataArray, got {type(data).__name__}")
        expected = set(self.axis_names) | set(self.extra_dims)
        if set(data.dims) != expected:
            raise ValueError(
                f"{type(self).__name__}: data dims {list(data.dims)} do not match the expected "
                f"{list(self.axis_names) + list(self.extra_dims)}"
            )
        for name in self.axis_names:
            if name not in data.coords:
                raise ValueError(f"{type(self).__name__}: dimension {name!r} has no coordinate")
        order = (*self.axis_names, *self.extra_dims)
        data = (data if data.dims == order else data.transpose(*order)).copy(deep=False)
        data.attrs = dict(data.attrs)
        if "units" not in data.attrs:
            data.attrs["units"] = self.default_unit
        data.attrs.setdefault("hdu_class", self.tag)
        self._data_array, self._parts = data, None
        # derived from the axes only, which are fixed at construction (the table values are not cached)
        self._grids = None
        self._axes = None

    @classmethod
    def _from_parts(cls, values, attrs: dict, axes: dict):
        """The IRF of a table (dims in `axis_names` order), its attrs and its axes (dim name -> `MapAxis`).

        The labelled `data` is built only when asked for: the makers need the
        numbers and axes only, and building a DataArray per IRF and
        observation costs more than reading its table.
        """
        irf = cls.__new__(cls)
        attrs = dict(attrs)
        attrs.setdefault("units", cls.default_unit)
        attrs.setdefault("hdu_class", cls.tag)
        irf._data_array, irf._parts = None, (values, attrs)
        irf._axes = {name: axes[name] for name in cls.axis_names}
        irf._grids = None
        return irf

    @property
    def _data(self) -> xr.DataArray:
        if self._data_array is None:
            values, attrs = self._parts
            coords = {}
            for name in self.axis_names:
                coords.update(self._axes[name].to_coords())
            self._data_array, self._parts = xr.DataArray(values, dims=self.axis_names, coords=coords, attrs=attrs), None
        return self._data_array

    @property
    def _values(self) -> np.ndarray:
        """The table values (dims in `axis_names` order), without building `data`."""
        return self._parts[0] if self._data_array is None else self._data_array.values

    @property
    def _attrs(self) -> dict:
        """The attrs of `data`, without building it."""
        return self._parts[1] if self._data_array is None else self._data_array.attrs

    # ---- reading --------------------------------------------------------
    @classmethod
    def from_hdu(cls, hdu_data: HDUData):
        """Build the IRF from an HDU read by `xgamma.io.fits.read_hdus`.

        Raises
        ------
        DL3FileError
            If an axis or data column is missing or shapes disagree; the
            message names the file, HDU and column.
        """
        table = read_irf_table(hdu_data, axes=tuple(cls.gadf_axes), data_columns=[cls.data_column])
        (values, unit, dims), = table.data.values()
        return cls._from_table(table, values, unit, dims, hdu_data)

    @classmethod
    def _from_table(cls, table, values, unit, dims, hdu_data):
        """The IRF of one data column, its axes kept as built from the file (not rebuilt from coordinates)."""
        axes = cls._axes_from_table(table, hdu_data)
        values = cls._in_axis_order(values, dims)
        attrs = cls._table_attrs(unit, cls.default_unit, hdu_data)
        return cls._from_parts(values, attrs, {axis.name: axis for axis in axes.values()})

    @classmethod
    def read(cls, path, hdu):
        """Read the IRF from HDU ``hdu`` of the FITS file ``path`` (local or fsspec URL)."""
        return cls.from_hdu(read_hdus(path, [hdu])[hdu])

    @classmethod
    def _axes_from_table(cls, table, hdu_data) -> dict:
        axes = {}
        for gadf, name in cls.gadf_axes.items():
            lo, hi, unit = table.axes[gadf]
            unit = parse_unit(unit, unit_string(CANONICAL_AXIS_UNITS[name]))
            interp = _GADF_AXIS_SCALE[gadf]
            try:
                if np.all(lo == hi):
                    axis = MapAxis.from_nodes(lo, name=name, unit=unit, interp=interp)
                else:
                    axis = MapAxis(lo, hi, name=name, unit=unit, interp=interp)
            except ValueError as err:
                raise DL3FileError(f"{hdu_data.filename}[{hdu_data.name}]: bad {gadf} axis: {err}") from err
            axes[gadf] = axis
        return axes

    @classmethod
    def _dataarray(cls, table, values, unit, dims, default_unit, hdu_data) -> xr.DataArray:
        coords = {}
        for axis in cls._axes_from_table(table, hdu_data).values():
            coords.update(axis.to_coords())
        attrs = cls._table_attrs(unit, default_unit, hdu_data)
        return xr.DataArray(cls._in_axis_order(values, dims), dims=cls.axis_names, coords=coords, attrs=attrs)

    @classmethod
    def _in_axis_order(cls, values, dims) -> np.ndarray:
        """A table with dims in the file's order (GADF names ``dims``) as a view in `axis_names` order."""
        file_dims = [cls.gadf_axes[d] for d in dims]
        return np.transpose(values, [file_dims.index(name) for name in cls.axis_names])

    @classmethod
    def _table_attrs(cls, unit, default_unit, hdu_data) -> dict:
        try:
            attrs = {"units": unit_string(parse_unit(unit, default_unit))}
        except ValueError as err:
            raise DL3FileError(f"{hdu_data.filename}[{hdu_data.name}]: {err}") from err
        return attrs | cls._meta_from_header(hdu_data)

    @classmethod
    def _meta_from_header(cls, hdu_data) -> dict:
        header = hdu_data.keywords
        meta = {"hdu_class": cls.tag, "filename": str(hdu_data.filename), "hdu": str(hdu_data.name)}
        meta["hduclas3"] = str(header.get("HDUCLAS3", "FULL-ENCLOSURE")).strip().upper()
        for key in _META_KEYS:
            if key in header:
                meta[key] = _meta_value(header[key])
        return meta

    # ---- xarray form ----------------------------------------------------
    @property
    def data(self) -> xr.DataArray:
        """The labelled table (file values, file unit in ``attrs['units']``)."""
        return self._data

    def to_dataarray(self) -> xr.DataArray:
        """A copy of `data`, the form stored in Zarr."""
        return self._data.copy()

    @classmethod
    def from_dataarray(cls, data: xr.DataArray):
        """Rebuild an IRF from `to_dataarray` output.

        Called on `IRF` itself, the class is chosen from ``attrs['hdu_class']``.
        """
        if cls is IRF:
            from .io import irf_class

            cls = irf_class(data.attrs.get("hdu_class"))
        return cls(data.copy())

    # ---- properties -----------------------------------------------------
    @property
    def axes(self) -> dict:
        """Dict of `MapAxis` by dimension name, in canonical order."""
        if self._axes is None:  # rebuilding them from the coordinates is slow and the makers ask often
            self._axes = {name: MapAxis.from_coords(self._data, name) for name in self.axis_names}
        return dict(self._axes)

    @property
    def unit(self) -> u.Unit:
        """Unit of `evaluate`'s output."""
        return parse_unit(self.output_unit)  # cached: the makers ask for it per evaluation

    @property
    def meta(self) -> dict:
        """Header metadata (``attrs`` without ``units``)."""
        return {k: v for k, v in self._attrs.items() if k != "units"}

    @property
    def is_pointlike(self) -> bool:
        """True for point-like IRFs (``HDUCLAS3 = POINT-LIKE``)."""
        return self._attrs.get("hduclas3", "").upper() == "POINT-LIKE"

    @property
    def rad_max(self):
        """Header ``RAD_MAX`` of a point-like IRF as a Quantity in deg, or None."""
        value = self._attrs.get("RAD_MAX")
        return None if value is None else u.Quantity(value, "deg")

    @property
    def energy_thresholds(self):
        """``(LO_THRES, HI_THRES)`` in TeV (each None when absent)."""
        lo, hi = self._attrs.get("LO_THRES"), self._attrs.get("HI_THRES")
        return (None if lo is None else lo * u.TeV, None if hi is None else hi * u.TeV)

    # ---- evaluation -----------------------------------------------------
    def _grid(self):
        if self._grids is None:
            axes = self.axes
            self._grids = [_AxisGrid(axes[n], n in self.clamp_axes) for n in self.axis_names]
        return self._grids

    def _parse_coords(self, coords: dict, names=None):
        """Coordinates as plain float arrays in canonical units, broadcast.

        Missing single-bin axes default to their centre.
        """
        names = self.axis_names if names is None else names
        unknown = set(coords) - set(names)
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.evaluate: unknown coordinate(s) {sorted(unknown)}; axes are {list(names)}"
            )
        values = []
        for name in names:
            if name not in coords:
                axis = MapAxis.from_coords(self._data, name) if name in self._data.coords else None
                if axis is not None and axis.nbin == 1:
                    values.append(axis.center.to_value(CANONICAL_AXIS_UNITS[name])[0])
                    continue
                raise TypeError(f"{type(self).__name__}.evaluate: missing coordinate {name!r} (axes are {list(names)})")
            unit = CANONICAL_AXIS_UNITS[name]
            values.append(to_value(quantity(coords[name], unit), unit, name))
        return np.broadcast_arrays(*[np.asarray(v, dtype=float) for v in values])

    def _values_factor(self) -> float:
        return parse_unit(self._attrs.get("units", "")).to(self.unit)

    def _table_along(self, **coords):
        """The table in `unit`, interpolated at ``coords`` along the axes named there, on its nodes along the others.

        ``coords`` are 1-D plain arrays in canonical units; axes keep the
        `axis_names` order (see `interpolate_along`).
        """
        along = {self.axis_names.index(name): c for name, c in coords.items()}
        values = interpolate_along(self._grid(), self._values, along, values_scale=self.values_scale)
        return values * self._values_factor()

    def _evaluate(self, coords):
        """Interpolated values in `output_unit` as plain floats."""
        values = interpolate(self._grid(), self._values, coords, values_scale=self.values_scale)
        return values * self._values_factor()

    def evaluate(self, **coords):
        """Interpolate the IRF at the given coordinates.

        Parameters
        ----------
        **coords : `~astropy.units.Quantity`, str, float, array-like or `xarray.DataArray`
            One value (or array) per axis name in `axis_names`; plain numbers are
            in canonical units (TeV, deg). Arrays broadcast like NumPy; when
            any input is a DataArray they broadcast by dimension name and the
            result is a DataArray. An axis with a single bin may be omitted.

        Returns
        -------
        `~astropy.units.Quantity` or `xarray.DataArray`
            Values in `unit`; 0 outside the table.
        """
        return self._dispatch(self._evaluate, coords)

    def _dispatch(self, func, coords):
        if not any(isinstance(v, xr.DataArray) for v in coords.values()):
            return u.Quantity(np.asarray(func(self._parse_coords(coords))), self.unit)
        arrays = {k: v for k, v in coords.items() if isinstance(v, xr.DataArray)}
        broadcast = xr.broadcast(*arrays.values())
        plain = dict(coords)
        for (key, original), b in zip(arrays.items(), broadcast):
            unit = original.attrs.get("units") or None
            plain[key] = b.values * u.Unit(unit) if unit is not None else b.values
        values = func(self._parse_coords(plain))
        template = broadcast[0]
        return xr.DataArray(values, dims=template.dims, coords=template.coords, attrs={"units": unit_string(self.unit)})

    # ---- dunder ---------------------------------------------------------
    def __getstate__(self):
        return {"data": self._data}

    def __setstate__(self, state):
        self.__init__(state["data"])

    def __repr__(self):
        axes = "\n".join(f"    {axis!r}" for axis in self.axes.values())
        unit = self._data.attrs.get("units", "") or "dimensionless"
        where = ""
        if "filename" in self._data.attrs:
            where = f"  source: {self._data.attrs['filename']}[{self._data.attrs.get('hdu', '')}]\n"
        kind = self._data.attrs.get("hduclas3", "")
        return (
            f"{type(self).__name__} ({self.tag}, {kind})\n"
            f"  axes:\n{axes}\n"
            f"  data unit: {unit}; evaluate unit: {unit_string(self.unit) or 'dimensionless'}\n{where}"
        ).rstrip("\n")
