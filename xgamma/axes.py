"""Binned axes and their xarray form.

A `MapAxis` is one binned, non-spatial axis (energy, offset, migra, rad, time,
...). On xarray objects it becomes a dimension ``name`` carrying three
coordinates on that dimension:

- ``name``: bin centre (geometric centre for ``interp="log"``),
- ``name_min`` and ``name_max``: the bin edges,

and the centre coordinate's attrs hold ``units`` and ``interp``. Slicing a
DataArray along the dimension therefore keeps its edges aligned, and
`MapAxis.from_coords` rebuilds the axis from any such object.

Axes read from files that give node values rather than bins (for example
``THETA_LO == THETA_HI``) are "node" axes: their centres are the nodes, and
``name_min``/``name_max`` equal the nodes.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
import xarray as xr

from .units import quantity, to_value, unit_string

__all__ = ["MapAxis", "STANDARD_AXIS_NAMES"]

STANDARD_AXIS_NAMES = ("energy", "energy_true", "migra", "offset", "rad", "fov_lon", "fov_lat", "time")
_INTERP = ("log", "lin", "sqrt")


def _centers(lo, hi, interp):
    if interp == "log":
        return np.sqrt(lo * hi)
    if interp == "sqrt":
        return ((np.sqrt(lo) + np.sqrt(hi)) / 2) ** 2
    return (lo + hi) / 2


class MapAxis:
    """A named, binned axis with a unit and an interpolation scale.

    Build one with `from_edges`, `from_bounds`, `from_energy_bounds`,
    `from_energy_edges` or `from_nodes`, or recover one from an xarray object
    with `from_coords`.

    Parameters
    ----------
    edges_min, edges_max : array-like
        Lower and upper bound of each bin, in ``unit``. For node axes both are
        the node values.
    name : str
        Dimension name (``energy``, ``energy_true``, ``offset`` ...).
    unit : str or `~astropy.units.Unit`
        Unit of the axis values.
    interp : {"log", "lin", "sqrt"}
        Scale used for bin centres and interpolation.
    """

    def __init__(self, edges_min, edges_max, *, name, unit="", interp="lin"):
        if interp not in _INTERP:
            raise ValueError(f"axis {name!r}: interp must be one of {_INTERP}, got {interp!r}")
        lo = np.atleast_1d(np.asarray(edges_min, dtype=float))
        hi = np.atleast_1d(np.asarray(edges_max, dtype=float))
        if lo.shape != hi.shape or lo.ndim != 1:
            raise ValueError(f"axis {name!r}: edges_min {lo.shape} and edges_max {hi.shape} must be 1-D of equal length")
        if np.any(hi < lo):
            raise ValueError(f"axis {name!r}: every bin needs edges_max >= edges_min")
        if lo.size > 1 and not (np.all(np.diff(lo) > 0) and np.all(np.diff(hi) > 0)):
            raise ValueError(f"axis {name!r}: bins must be strictly increasing")
        if interp == "log" and np.any(lo <= 0):
            raise ValueError(f"axis {name!r}: a log axis needs strictly positive edges")
        self._lo, self._hi = lo, hi
        self.name = str(name)
        self.unit = u.Unit(unit)
        self.interp = interp

    # ---- constructors -------------------------------------------------
    @classmethod
    def from_edges(cls, edges, *, name, unit=None, interp="lin"):
        """Axis from ``nbin + 1`` contiguous edges (a Quantity or numbers in ``unit``)."""
        edges = quantity(edges, unit)
        if unit is not None:
            edges = edges.to(unit)
        values = np.asarray(edges.value, dtype=float)
        if values.ndim != 1 or values.size < 2:
            raise ValueError(f"axis {name!r}: need at least two edges, got {values.size}")
        if np.any(np.diff(values) <= 0):
            raise ValueError(f"axis {name!r}: edges must be strictly increasing, got {values}")
        return cls(values[:-1], values[1:], name=name, unit=edges.unit, interp=interp)

    @classmethod
    def from_bounds(cls, lo, hi, nbin, *, name, unit=None, interp="lin"):
        """Axis of ``nbin`` equal bins between ``lo`` and ``hi`` on the ``interp`` scale."""
        lo_q = quantity(lo, unit)
        unit = lo_q.unit if unit is None else u.Unit(unit)
        lo_v, hi_v = to_value(lo_q, unit, "lo"), to_value(quantity(hi, unit), unit, "hi")
        if interp == "log":
            edges = np.geomspace(lo_v, hi_v, int(nbin) + 1)
        elif interp == "sqrt":
            edges = np.linspace(np.sqrt(lo_v), np.sqrt(hi_v), int(nbin) + 1) ** 2
        else:
            edges = np.linspace(lo_v, hi_v, int(nbin) + 1)
        return cls.from_edges(edges, name=name, unit=unit, interp=interp)

    @classmethod
    def from_energy_bounds(cls, energy_min, energy_max, nbin, *, per_decade=False, unit="TeV", name="energy"):
        """Log-spaced energy axis.

        Parameters
        ----------
        energy_min, energy_max : `~astropy.units.Quantity` or str or float
            Axis bounds (plain numbers are in ``unit``).
        nbin : int
            Number of bins in total, or per decade when ``per_decade`` is true
            (then the total is ``ceil(decades * nbin)``, as Gammapy does).
        per_decade : bool
            Interpret ``nbin`` per decade.
        unit : str
            Unit of the axis, TeV by default.
        name : {"energy", "energy_true"}
            Reconstructed or true energy.
        """
        emin = to_value(quantity(energy_min, unit), unit, "energy_min")
        emax = to_value(quantity(energy_max, unit), unit, "energy_max")
        if not 0 < emin < emax:
            raise ValueError(f"axis {name!r}: need 0 < energy_min < energy_max, got {emin} and {emax} {unit}")
        if per_decade:
            nbin = int(np.ceil(np.log10(emax / emin) * nbin))
        return cls.from_bounds(emin, emax, nbin, name=name, unit=unit, interp="log")

    @classmethod
    def from_energy_edges(cls, edges, *, unit="TeV", name="energy"):
        """Log energy axis from explicit edges."""
        return cls.from_edges(quantity(edges, unit).to(unit), name=name, unit=unit, interp="log")

    @classmethod
    def from_nodes(cls, nodes, *, name, unit=None, interp="lin"):
        """Node axis: values at points rather than bins (edges equal the nodes)."""
        nodes = quantity(nodes, unit)
        values = np.atleast_1d(np.asarray(nodes.value, dtype=float))
        return cls(values, values, name=name, unit=nodes.unit, interp=interp)

    @classmethod
    def from_coords(cls, obj, name):
        """Rebuild the axis ``name`` from an xarray DataArray or Dataset."""
        if name not in obj.coords:
            raise KeyError(f"no axis {name!r} on this object; its dims are {list(obj.dims)}")
        attrs = obj.coords[name].attrs
        lo_name, hi_name = f"{name}_min", f"{name}_max"
        if lo_name in obj.coords and hi_name in obj.coords:
            lo, hi = obj.coords[lo_name].values, obj.coords[hi_name].values
        else:
            lo = hi = obj.coords[name].values
        return cls(lo, hi, name=name, unit=attrs.get("units", ""), interp=attrs.get("interp", "lin"))

    # ---- properties ---------------------------------------------------
    @property
    def nbin(self) -> int:
        return self._lo.size

    @property
    def is_nodes(self) -> bool:
        """True when the axis holds node values rather than bins."""
        return bool(np.all(self._lo == self._hi))

    @property
    def is_contiguous(self) -> bool:
        return bool(np.allclose(self._lo[1:], self._hi[:-1], rtol=1e-6, atol=0))

    @property
    def edges_min(self) -> u.Quantity:
        return self._lo * self.unit

    @property
    def edges_max(self) -> u.Quantity:
        return self._hi * self.unit

    @property
    def edges(self) -> u.Quantity:
        """The ``nbin + 1`` contiguous edges.

        Raises
        ------
        ValueError
            For node axes and axes with gaps between bins.
        """
        if self.is_nodes or not self.is_contiguous:
            raise ValueError(f"axis {self.name!r} has no contiguous edges (node axis or gaps between bins)")
        return np.append(self._lo, self._hi[-1]) * self.unit

    @property
    def center(self) -> u.Quantity:
        """Bin centres (geometric mean of the edges for log axes; nodes for node axes)."""
        return _centers(self._lo, self._hi, self.interp) * self.unit

    @property
    def bin_width(self) -> u.Quantity:
        return (self._hi - self._lo) * self.unit

    @property
    def bounds(self) -> u.Quantity:
        return u.Quantity([self._lo[0], self._hi[-1]], self.unit)

    # ---- coordinate <-> index ------------------------------------------
    def _scale(self, values):
        values = np.asarray(values, dtype=float)
        if self.interp == "log":
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.log(values)
        if self.interp == "sqrt":
            return np.sqrt(values)
        return values

    def coord_to_pix(self, coord):
        """Fractional pixel coordinate (bin ``i`` spans ``i - 0.5`` to ``i + 0.5``).

        Interpolates on the axis scale; for binned axes the bin edges are the
        anchors, for node axes the nodes are. Values outside extrapolate.
        """
        coord = self._scale(to_value(coord, self.unit, self.name))
        if self.is_nodes:
            nodes = self._scale(self._lo)
            pix = np.arange(self.nbin, dtype=float)
        else:
            nodes = self._scale(np.append(self._lo, self._hi[-1]))
            pix = np.arange(self.nbin + 1, dtype=float) - 0.5
        if nodes.size == 1:
            return np.zeros_like(coord, dtype=float)
        out = np.interp(coord, nodes, pix)
        # linear extrapolation on both sides
        lo_slope = (pix[1] - pix[0]) / (nodes[1] - nodes[0])
        hi_slope = (pix[-1] - pix[-2]) / (nodes[-1] - nodes[-2])
        out = np.where(coord < nodes[0], pix[0] + (coord - nodes[0]) * lo_slope, out)
        return np.where(coord > nodes[-1], pix[-1] + (coord - nodes[-1]) * hi_slope, out)

    def coord_to_idx(self, coord, clip=False):
        """Integer bin index of each value; ``-1`` outside the axis unless ``clip``."""
        coord = np.asarray(to_value(coord, self.unit, self.name), dtype=float)
        idx = np.searchsorted(self._hi, coord, side="right")
        inside = (idx < self.nbin) & (coord >= self._lo[np.clip(idx, 0, self.nbin - 1)])
        if clip:
            return np.clip(idx, 0, self.nbin - 1)
        return np.where(inside, idx, -1)

    # ---- xarray ---------------------------------------------------------
    def to_coords(self) -> dict[str, xr.Variable]:
        """Coordinates for ``xr.DataArray(..., coords=axis.to_coords())``."""
        attrs = {"units": unit_string(self.unit), "interp": self.interp}
        edge_attrs = {"units": unit_string(self.unit)}
        return {
            self.name: xr.Variable(self.name, _centers(self._lo, self._hi, self.interp), attrs),
            f"{self.name}_min": xr.Variable(self.name, self._lo.copy(), edge_attrs),
            f"{self.name}_max": xr.Variable(self.name, self._hi.copy(), edge_attrs),
        }

    def copy(self, **changes) -> "MapAxis":
        """Copy with some of ``name``, ``unit``, ``interp`` changed (values kept)."""
        kwargs = dict(name=self.name, unit=self.unit, interp=self.interp) | changes
        return MapAxis(self._lo, self._hi, **kwargs)

    def squash(self) -> "MapAxis":
        """Single-bin axis spanning the whole range."""
        return MapAxis([self._lo[0]], [self._hi[-1]], name=self.name, unit=self.unit, interp=self.interp)

    def __eq__(self, other):
        if not isinstance(other, MapAxis):
            return NotImplemented
        if (self.name, self.interp, self.nbin) != (other.name, other.interp, other.nbin):
            return False
        try:
            factor = other.unit.to(self.unit)
        except u.UnitConversionError:
            return False
        return bool(
            np.allclose(self._lo, other._lo * factor, rtol=1e-6, atol=0)
            and np.allclose(self._hi, other._hi * factor, rtol=1e-6, atol=0)
        )

    def __hash__(self):
        return hash((self.name, self.interp, self.nbin))

    def __len__(self):
        return self.nbin

    def __repr__(self):
        kind = "nodes" if self.is_nodes else "bins"
        unit = unit_string(self.unit) or "dimensionless"
        return (
            f"MapAxis(name={self.name!r}, {self.nbin} {kind}, "
            f"{self._lo[0]:.4g} to {self._hi[-1]:.4g} {unit}, interp={self.interp!r})"
        )
