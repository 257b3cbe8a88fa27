"""Good time intervals (GTI).

A `GTI` wraps an `xarray.Dataset` with dimension ``gti`` and the float64
variables ``start`` and ``stop`` (seconds since the reference epoch given by
the attrs ``MJDREFI``, ``MJDREFF`` and ``TIMESYS``). Read one from a GADF GTI
HDU with `GTI.from_hdu`, or build one with `GTI.create`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from astropy import units as u
from astropy.time import Time

from ..io.fits import DL3FileError
from .time import (
    met_to_time,
    time_ref_attrs,
    time_ref_attrs_from_time,
    time_ref_from_attrs,
    time_to_met,
)

__all__ = ["GTI"]


def _merge_intervals(start, stop):
    """Union of intervals, vectorised: sorted, overlapping or touching ones merged."""
    if start.size == 0:
        return start, stop
    order = np.argsort(start, kind="stable")
    start, stop = start[order], stop[order]
    reach = np.maximum.accumulate(stop)
    new = np.empty(start.size, dtype=bool)
    new[0] = True
    new[1:] = start[1:] > reach[:-1]
    first = np.flatnonzero(new)
    return start[first], np.maximum.reduceat(stop, first)


class GTI:
    """Good time intervals of an observation.

    Parameters
    ----------
    ds : `xarray.Dataset`
        Variables ``start`` and ``stop`` (float64, s) on dimension ``gti``,
        attrs ``MJDREFI``, ``MJDREFF``, ``TIMESYS`` (see `xgamma.data.time`).
    """

    def __init__(self, ds: xr.Dataset):
        for name in ("start", "stop"):
            if name not in ds:
                raise ValueError(f"GTI dataset needs a {name!r} variable, has {list(ds.data_vars)}")
        for key in ("MJDREFI", "MJDREFF", "TIMESYS"):
            if key not in ds.attrs:
                raise ValueError(f"GTI dataset needs the time reference attr {key!r}")
        self.ds = ds

    # ---- constructors ---------------------------------------------------
    @classmethod
    def create(cls, start, stop, reference_time=None, meta=None) -> "GTI":
        """GTI from interval bounds.

        Parameters
        ----------
        start, stop : `~astropy.time.Time`, `~astropy.units.Quantity` or array-like
            Interval bounds: Times, or durations since ``reference_time``
            (plain numbers are seconds).
        reference_time : `~astropy.time.Time`, optional
            The MJDREF epoch; defaults to ``2001-01-01T00:00:00`` TT.
        meta : dict, optional
            Extra attrs (JSON-serialisable values).
        """
        ref_attrs = time_ref_attrs_from_time(reference_time)
        reference = time_ref_from_attrs(ref_attrs)

        def to_met(value, name):
            if isinstance(value, Time):
                return np.atleast_1d(time_to_met(value, reference, name=name))
            if isinstance(value, u.Quantity):
                return np.atleast_1d(value.to_value(u.s)).astype(np.float64)
            return np.atleast_1d(np.asarray(value, dtype=np.float64))

        return cls._from_met(to_met(start, "start"), to_met(stop, "stop"), {**(meta or {}), **ref_attrs})

    @classmethod
    def _from_met(cls, start, stop, attrs) -> "GTI":
        start = np.asarray(start, dtype=np.float64)
        stop = np.asarray(stop, dtype=np.float64)
        if start.shape != stop.shape or start.ndim != 1:
            raise ValueError(f"GTI start {start.shape} and stop {stop.shape} must be 1-D of equal length")
        if np.any(stop < start):
            raise ValueError("every GTI needs stop >= start")
        var_attrs = {"units": "s", "long_name": "seconds since MJDREF"}
        ds = xr.Dataset(
            {"start": ("gti", start, dict(var_attrs)), "stop": ("gti", stop, dict(var_attrs))},
            attrs=dict(attrs),
        )
        return cls(ds)

    @classmethod
    def from_hdu(cls, hdu_data, *fallback_headers, obs_id=None) -> "GTI":
        """GTI from a GADF GTI table read by `xgamma.io.fits.read_hdus`.

        Parameters
        ----------
        hdu_data : `xgamma.io.fits.HDUData`
            The GTI HDU (columns ``START``, ``STOP``).
        *fallback_headers : `~astropy.io.fits.Header`
            Headers searched for time reference keywords missing from the GTI
            header (typically the EVENTS header).
        obs_id : int, optional
            Observation id, for error messages.

        Raises
        ------
        DL3FileError
            If a column or the time reference is missing; the message names
            file, HDU and observation.
        """
        where = f"{hdu_data.filename}[{hdu_data.name}]" + (f" (observation {obs_id})" if obs_id is not None else "")
        missing = [c for c in ("START", "STOP") if c not in hdu_data.columns]
        if missing:
            raise DL3FileError(f"{where}: GTI table lacks column(s) {missing} (has {sorted(hdu_data.columns)})")
        attrs = time_ref_attrs(hdu_data.keywords, *fallback_headers, where=where)
        start, stop = (
            hdu_data.column(name).astype(np.float64) * u.Unit(hdu_data.columns[name] or attrs["TIMEUNIT"]).to(u.s)
            for name in ("START", "STOP")
        )
        attrs["TIMEUNIT"] = "s"
        return cls._from_met(start, stop, attrs)

    # ---- properties -----------------------------------------------------
    @property
    def time_ref(self) -> Time:
        """Reference epoch (MJDREFI + MJDREFF in TIMESYS)."""
        return time_ref_from_attrs(self.ds.attrs)

    @property
    def met_start(self) -> np.ndarray:
        """Interval starts, float64 seconds since `time_ref`."""
        return self.ds["start"].values

    @property
    def met_stop(self) -> np.ndarray:
        """Interval stops, float64 seconds since `time_ref`."""
        return self.ds["stop"].values

    @property
    def time_start(self) -> Time:
        """Start of the first interval."""
        return met_to_time(self.met_start.min(), self.time_ref)

    @property
    def time_stop(self) -> Time:
        """Stop of the last interval."""
        return met_to_time(self.met_stop.max(), self.time_ref)

    @property
    def start(self) -> Time:
        """Start of every interval as `~astropy.time.Time`."""
        return met_to_time(self.met_start, self.time_ref)

    @property
    def stop(self) -> Time:
        """Stop of every interval as `~astropy.time.Time`."""
        return met_to_time(self.met_stop, self.time_ref)

    @property
    def time_delta(self) -> u.Quantity:
        """Duration of each interval (s)."""
        return (self.met_stop - self.met_start) * u.s

    @property
    def time_sum(self) -> u.Quantity:
        """Total good time (s): the sum of interval durations."""
        return float(np.sum(self.met_stop - self.met_start)) * u.s

    def __len__(self):
        return self.ds.sizes["gti"]

    def __repr__(self):
        if len(self) == 0:
            return "GTI(0 intervals)"
        return (
            f"GTI({len(self)} interval{'s' if len(self) != 1 else ''}, "
            f"{self.time_start.isot} to {self.time_stop.isot} {self.ds.attrs['TIMESYS'].upper()}, "
            f"time_sum={self.time_sum.to_value(u.s):.1f} s)"
        )

    def to_xarray(self) -> xr.Dataset:
        """The wrapped dataset."""
        return self.ds

    # ---- operations -----------------------------------------------------
    def select_time(self, time_min=None, time_max=None) -> "GTI":
        """Intervals clipped to ``[time_min, time_max]``; empty ones are dropped.

        Parameters
        ----------
        time_min, time_max : `~astropy.time.Time`, str or float, optional
            Bounds (floats are MJD in this GTI's time scale); None is open.
        """
        ref = self.time_ref
        lo = -np.inf if time_min is None else time_to_met(time_min, ref, name="time_min")
        hi = np.inf if time_max is None else time_to_met(time_max, ref, name="time_max")
        start = np.clip(self.met_start, lo, hi)
        stop = np.clip(self.met_stop, lo, hi)
        keep = stop > start
        return self._from_met(start[keep], stop[keep], self.ds.attrs)

    def union(self, other: "GTI | None" = None) -> "GTI":
        """Union of intervals: overlapping (and touching) intervals merged, sorted.

        Parameters
        ----------
        other : `GTI`, optional
            Another GTI, possibly with another reference epoch (converted to
            this one's); without it, the union of this GTI's own intervals.
        """
        start, stop = self.met_start, self.met_stop
        if other is not None:
            ref = self.time_ref
            start = np.concatenate([start, np.atleast_1d(time_to_met(other.start, ref))])
            stop = np.concatenate([stop, np.atleast_1d(time_to_met(other.stop, ref))])
        start, stop = _merge_intervals(start, stop)
        return self._from_met(start, stop, self.ds.attrs)
