"""Event lists: one row per reconstructed gamma-ray candidate.

An `EventList` wraps an `xarray.Dataset` with dimension ``event``. It always
holds the variables

- ``time``: float64 seconds since the reference epoch given by the attrs
  ``MJDREFI``, ``MJDREFF`` and ``TIMESYS`` (on the variable and the dataset),
- ``ra``, ``dec``: reconstructed direction (deg),
- ``energy``: reconstructed energy (TeV),

plus every further column of the file under its lower-cased name
(``event_id``, ``detx``, ``gammaness`` ...), each with a ``units`` attr when
the column has a unit. The EVENTS header is kept in the dataset attrs
(JSON-serialisable values only), so the dataset survives Zarr and pickling.

All selections are vectorised masks and return a new `EventList` sharing
nothing mutable with the original.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from astropy import units as u
from astropy.coordinates import SkyCoord, angular_separation
from astropy.time import Time

from ..io.fits import DL3FileError
from ..units import to_value
from ._utils import header_to_dict
from .time import (
    met_to_time,
    time_ref_attrs,
    time_ref_attrs_from_time,
    time_ref_from_attrs,
    time_to_met,
)

__all__ = ["EventList", "REQUIRED_EVENT_COLUMNS"]

#: Columns every GADF EVENTS table must have.
REQUIRED_EVENT_COLUMNS = ("TIME", "RA", "DEC", "ENERGY")
# canonical units of the required columns, converted on read
_CANONICAL = {"time": "s", "ra": "deg", "dec": "deg", "energy": "TeV"}


def _bounds_mask(values, vmin, vmax):
    """``vmin <= values < vmax`` with None meaning open."""
    mask = np.ones(values.shape, dtype=bool)
    if vmin is not None:
        mask &= values >= vmin
    if vmax is not None:
        mask &= values < vmax
    return mask


class EventList:
    """A list of events backed by an `xarray.Dataset` over dimension ``event``.

    Parameters
    ----------
    ds : `xarray.Dataset`
        Must hold ``time`` (float64 s), ``ra``, ``dec`` (deg) and ``energy``
        (TeV) on dimension ``event``, and the time reference attrs.

    Examples
    --------
    >>> events = observation.events                              # doctest: +SKIP
    >>> events.select_energy("1 TeV", "10 TeV").select_offset(0, "2 deg")  # doctest: +SKIP
    """

    def __init__(self, ds: xr.Dataset):
        missing = [name for name in _CANONICAL if name not in ds]
        if missing:
            raise ValueError(f"EventList dataset lacks variable(s) {missing}; it has {list(ds.data_vars)}")
        if ds["time"].dtype != np.float64:
            raise TypeError(f"event times must be float64 seconds, got {ds['time'].dtype}")
        for key in ("MJDREFI", "MJDREFF", "TIMESYS"):
            if key not in ds.attrs:
                raise ValueError(f"EventList dataset needs the time reference attr {key!r}")
        self.ds = ds

    # ---- constructors ---------------------------------------------------
    @classmethod
    def from_hdu(cls, hdu_data, *fallback_headers, obs_id=None) -> "EventList":
        """Event list from a GADF EVENTS table read by `xgamma.io.fits.read_hdus`.

        Parameters
        ----------
        hdu_data : `xgamma.io.fits.HDUData`
            The EVENTS HDU.
        *fallback_headers : `~astropy.io.fits.Header` or dict
            Searched for time reference keywords absent from the EVENTS header.
        obs_id : int, optional
            Observation id, for error messages and the ``OBS_ID`` attr.

        Raises
        ------
        DL3FileError
            If TIME, RA, DEC or ENERGY is missing, a unit cannot be converted,
            or the time reference is missing; the message names file, HDU and
            observation.
        """
        where = f"{hdu_data.filename}[{hdu_data.name}]" + (f" (observation {obs_id})" if obs_id is not None else "")
        if hdu_data.data is None:
            raise DL3FileError(f"{where}: not a table HDU (no events)")
        missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in hdu_data.columns]
        if missing:
            raise DL3FileError(
                f"{where}: events table lacks required column(s) {missing} (has {sorted(hdu_data.columns)})"
            )
        time_attrs = time_ref_attrs(hdu_data.keywords, *fallback_headers, where=where)
        data_vars = {}
        for name, unit in hdu_data.columns.items():
            lname = name.lower()
            values = hdu_data.column(name)
            unit = unit or (time_attrs["TIMEUNIT"] if lname == "time" else "")
            if lname in _CANONICAL:
                try:
                    factor = u.Unit(unit or _CANONICAL[lname]).to(_CANONICAL[lname])
                except (ValueError, u.UnitConversionError) as err:
                    raise DL3FileError(f"{where}: column {name} has unit {unit!r}, expected {_CANONICAL[lname]}") from err
                if lname == "time":
                    values = values.astype(np.float64, copy=False)
                if factor != 1:
                    values = values * factor
                unit = _CANONICAL[lname]
            dims = ("event",) + tuple(f"{lname}_dim{i}" for i in range(1, values.ndim))
            data_vars[lname] = (dims, values, {"units": unit} if unit else {})
        time_attrs["TIMEUNIT"] = "s"
        data_vars["time"][2].update(time_attrs)
        attrs = header_to_dict(hdu_data.keywords) | time_attrs
        if obs_id is not None:
            attrs.setdefault("OBS_ID", int(obs_id))
        return cls(xr.Dataset(data_vars, attrs=attrs))

    @classmethod
    def create(cls, time, ra, dec, energy, *, reference_time=None, meta=None, **columns) -> "EventList":
        """Event list from arrays (e.g. simulated events).

        Parameters
        ----------
        time : `~astropy.time.Time` or `~astropy.units.Quantity` or array-like
            Event times; Quantities and plain numbers (s) are taken relative
            to ``reference_time``.
        ra, dec : `~astropy.units.Quantity` or array-like
            Direction (plain numbers in deg).
        energy : `~astropy.units.Quantity` or array-like
            Reconstructed energy (plain numbers in TeV).
        reference_time : `~astropy.time.Time`, optional
            MJDREF epoch, default ``2001-01-01T00:00:00`` TT.
        meta : dict, optional
            Dataset attrs (JSON-serialisable values).
        **columns : array-like or `~astropy.units.Quantity`
            Further per-event columns, stored under their lower-cased name.
        """
        ref_attrs = time_ref_attrs_from_time(reference_time)
        reference = time_ref_from_attrs(ref_attrs)
        if isinstance(time, Time):
            met = np.atleast_1d(time_to_met(time, reference))
        else:
            met = np.atleast_1d(np.asarray(to_value(time, "s", "time"), dtype=np.float64))
        data_vars = {
            "time": ("event", met, {"units": "s", **ref_attrs}),
            "ra": ("event", np.atleast_1d(to_value(ra, "deg", "ra")), {"units": "deg"}),
            "dec": ("event", np.atleast_1d(to_value(dec, "deg", "dec")), {"units": "deg"}),
            "energy": ("event", np.atleast_1d(to_value(energy, "TeV", "energy")), {"units": "TeV"}),
        }
        for name, values in columns.items():
            attrs = {"units": values.unit.to_string()} if isinstance(values, u.Quantity) else {}
            data_vars[name.lower()] = ("event", np.atleast_1d(getattr(values, "value", values)), attrs)
        return cls(xr.Dataset(data_vars, attrs={**(meta or {}), **ref_attrs}))

    # ---- views ----------------------------------------------------------
    def to_xarray(self) -> xr.Dataset:
        """The wrapped dataset."""
        return self.ds

    def __len__(self):
        return self.ds.sizes["event"]

    @property
    def columns(self) -> list:
        """Names of the per-event variables."""
        return list(self.ds.data_vars)

    @property
    def time_ref(self) -> Time:
        """Reference epoch of ``time`` (MJDREFI + MJDREFF in TIMESYS)."""
        return time_ref_from_attrs(self.ds.attrs)

    @property
    def met(self) -> np.ndarray:
        """Event times as float64 seconds since `time_ref`."""
        return self.ds["time"].values

    @property
    def time(self) -> Time:
        """Event times as `~astropy.time.Time`."""
        return met_to_time(self.met, self.time_ref)

    @property
    def energy(self) -> u.Quantity:
        """Reconstructed energies (TeV)."""
        return u.Quantity(self.ds["energy"].values, u.TeV)

    @property
    def radec(self) -> SkyCoord:
        """Reconstructed directions, ICRS."""
        return SkyCoord(self.ds["ra"].values, self.ds["dec"].values, unit="deg", frame="icrs")

    @property
    def galactic(self) -> SkyCoord:
        """Reconstructed directions, galactic."""
        return self.radec.galactic

    @property
    def pointing_radec(self) -> SkyCoord | None:
        """Pointing direction from the ``RA_PNT``/``DEC_PNT`` attrs, or None."""
        ra, dec = self.ds.attrs.get("RA_PNT"), self.ds.attrs.get("DEC_PNT")
        if ra is None or dec is None:
            return None
        return SkyCoord(float(ra), float(dec), unit="deg", frame="icrs")

    def _center(self, center):
        if center is None:
            center = self.pointing_radec
            if center is None:
                raise ValueError("no pointing position (RA_PNT/DEC_PNT attrs) on this event list; pass center=")
        center = center.icrs
        return float(center.ra.deg), float(center.dec.deg)

    def offset_from(self, center=None) -> u.Quantity:
        """Angular distance (deg) of each event from ``center`` (default: the pointing).

        Parameters
        ----------
        center : `~astropy.coordinates.SkyCoord`, optional
            Reference direction.
        """
        ra0, dec0 = np.radians(self._center(center))
        sep = angular_separation(
            np.radians(self.ds["ra"].values.astype(np.float64)),
            np.radians(self.ds["dec"].values.astype(np.float64)),
            ra0,
            dec0,
        )
        return np.degrees(sep) * u.deg

    @property
    def offset(self) -> u.Quantity:
        """Angular distance (deg) of each event from the pointing position."""
        return self.offset_from(None)

    # ---- selections -----------------------------------------------------
    def select_mask(self, mask) -> "EventList":
        """Events where the boolean ``mask`` (one value per event) is true."""
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (len(self),):
            raise ValueError(f"mask must be a boolean array of shape ({len(self)},), got {mask.dtype} {mask.shape}")
        return EventList(self.ds.isel(event=np.flatnonzero(mask)))

    def select_energy(self, energy_min=None, energy_max=None) -> "EventList":
        """Events with ``energy_min <= energy < energy_max``.

        Parameters
        ----------
        energy_min, energy_max : `~astropy.units.Quantity`, str or float, optional
            Bounds (plain numbers in TeV); None is open.
        """
        lo = None if energy_min is None else to_value(energy_min, "TeV", "energy_min")
        hi = None if energy_max is None else to_value(energy_max, "TeV", "energy_max")
        return self.select_mask(_bounds_mask(self.ds["energy"].values, lo, hi))

    def select_time(self, time_min=None, time_max=None) -> "EventList":
        """Events with ``time_min <= time < time_max``.

        Parameters
        ----------
        time_min, time_max : `~astropy.time.Time`, str, float or `~astropy.units.Quantity`, optional
            Times, ISO strings, MJD numbers (in the list's time scale) or
            Quantities of time since the reference epoch; None is open.
        """

        def met(value, name):
            if value is None:
                return None
            if isinstance(value, u.Quantity):
                return to_value(value, "s", name)
            return time_to_met(value, self.time_ref, name=name)

        return self.select_mask(_bounds_mask(self.met, met(time_min, "time_min"), met(time_max, "time_max")))

    def select_offset(self, offset_min=None, offset_max=None, center=None) -> "EventList":
        """Events with ``offset_min <= offset < offset_max`` from ``center``.

        Parameters
        ----------
        offset_min, offset_max : `~astropy.units.Quantity`, str or float, optional
            Bounds (plain numbers in deg); None is open.
        center : `~astropy.coordinates.SkyCoord`, optional
            Default: the pointing position.
        """
        lo = None if offset_min is None else to_value(offset_min, "deg", "offset_min")
        hi = None if offset_max is None else to_value(offset_max, "deg", "offset_max")
        return self.select_mask(_bounds_mask(self.offset_from(center).to_value(u.deg), lo, hi))

    def select_column(self, name, vmin=None, vmax=None) -> "EventList":
        """Events with ``vmin <= column < vmax`` for any per-event column (e.g. ``gammaness``).

        Parameters
        ----------
        name : str
            Column name (case-insensitive).
        vmin, vmax : `~astropy.units.Quantity`, str or float, optional
            Bounds, in the column's ``units`` when plain numbers.
        """
        name = name.lower()
        if name not in self.ds:
            raise KeyError(f"no column {name!r}; columns are {self.columns}")
        unit = self.ds[name].attrs.get("units", "")
        lo = None if vmin is None else to_value(vmin, unit, "vmin")
        hi = None if vmax is None else to_value(vmax, unit, "vmax")
        return self.select_mask(_bounds_mask(self.ds[name].values, lo, hi))

    def select_region(self, region) -> "EventList":
        """Events inside a sky region.

        Parameters
        ----------
        region : callable, geometry, `regions.SkyRegion` or str
            One of

            - a function of a `~astropy.coordinates.SkyCoord` (the event
              directions) returning a boolean array,
            - an object with ``contains(skycoord)`` (an xgamma geometry),
            - a ``regions`` sky region, or a DS9 region string (several
              regions are combined with "or").

        Returns
        -------
        EventList
        """
        coords = self.radec
        mask = _region_mask(region, coords)
        return self.select_mask(np.asarray(mask, dtype=bool).reshape(len(self)))

    def __repr__(self):
        n = len(self)
        obs = f"obs_id={self.ds.attrs['OBS_ID']}, " if "OBS_ID" in self.ds.attrs else ""
        if n == 0:
            return f"EventList({obs}0 events, columns={self.columns})"
        energy = self.ds["energy"].values
        met = self.met
        return (
            f"EventList({obs}{n} events, energy {energy.min():.3g} to {energy.max():.3g} TeV, "
            f"time span {met.max() - met.min():.1f} s, columns={self.columns})"
        )


def _region_mask(region, coords: SkyCoord) -> np.ndarray:
    """Boolean mask of ``coords`` inside ``region`` (see `EventList.select_region`)."""
    if isinstance(region, str):
        import regions as _regions

        parsed = _regions.Regions.parse(region, format="ds9")
        masks = [_region_mask(r, coords) for r in parsed]
        return np.logical_or.reduce(masks) if masks else np.zeros(len(coords), dtype=bool)
    try:
        import regions as _regions
    except ImportError:  # pragma: no cover - regions is a declared helper dependency
        _regions = None
    if _regions is not None and isinstance(region, _regions.SkyRegion):
        if isinstance(region, _regions.CircleSkyRegion):
            center = region.center.icrs
            sep = angular_separation(
                coords.ra.rad, coords.dec.rad, center.ra.rad, center.dec.rad
            )
            return sep <= region.radius.to_value(u.rad)
        return region.contains(coords, _local_wcs(region))
    if hasattr(region, "contains"):
        return np.asarray(region.contains(coords), dtype=bool)
    if callable(region):
        return np.asarray(region(coords), dtype=bool)
    raise TypeError(
        f"select_region needs a mask function, a geometry with contains(), a regions SkyRegion or a DS9 string; "
        f"got {type(region).__name__}"
    )


def _local_wcs(region):
    """A TAN WCS centred on a sky region, fine enough (0.001 deg) to test containment."""
    from astropy.wcs import WCS

    center = getattr(region, "center", None)
    if center is None:
        raise TypeError(f"cannot place a {type(region).__name__} without a centre on the sky; pass a mask function")
    center = center.icrs
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [center.ra.deg, center.dec.deg]
    wcs.wcs.crpix = [0.0, 0.0]
    wcs.wcs.cdelt = [-0.001, 0.001]
    return wcs
