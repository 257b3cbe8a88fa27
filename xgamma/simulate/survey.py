"""Synthetic surveys made from real observations.

A `RepointedObservation` is a real observation moved to another pointing,
time and obs id: its events keep their field-of-view offsets (in the
RA/Dec-aligned frame centred on the pointing, the frame of RADEC-aligned
background models) and their energies; their times and good time intervals
shift by the same amount; the IRFs are those of the original run. It reads
the original files lazily, on the worker, like any `Observation`.

Use `synthetic_survey` to make thousands of such observations along the
Galactic plane from a handful of real runs, e.g. to measure how the
reduction scales.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord, SkyOffsetFrame

from ..data.events import EventList
from ..data.gti import GTI
from ..data.observation import Observation

__all__ = ["RepointedObservation", "synthetic_survey"]


class RepointedObservation(Observation):
    """A real observation moved to a new pointing, time and obs id.

    Parameters
    ----------
    base : `xgamma.data.Observation`
        The real observation (its files are read; nothing is copied).
    obs_id : int
        New observation id.
    pointing : `~astropy.coordinates.SkyCoord`
        New pointing direction.
    time_shift : float
        Shift of all times, in s.
    """

    def __init__(self, base, obs_id, pointing, time_shift=0.0):
        pointing = pointing.icrs
        obs_info = dict(base.obs_info, OBS_ID=int(obs_id), RA_PNT=float(pointing.ra.deg), DEC_PNT=float(pointing.dec.deg))
        super().__init__(obs_id, base.locations, obs_info, base.meta)
        self.base_obs_id = int(base.obs_id)
        self.new_pointing = pointing
        self.time_shift = float(time_shift)

    def __getstate__(self):
        return super().__getstate__() | {
            "base_obs_id": self.base_obs_id,
            "new_pointing": self.new_pointing,
            "time_shift": self.time_shift,
        }

    def _original(self) -> Observation:
        """The unmoved observation sharing this object's files."""
        return Observation(self.base_obs_id, self.locations, self.obs_info, self.meta)

    @property
    def pointing(self) -> SkyCoord:
        return self.new_pointing

    @property
    def pointing_altaz(self):
        """Unknown for a moved observation."""
        return None

    def _met(self, key):
        return super()._met(key) + self.time_shift

    @property
    def events(self) -> EventList:
        """The original events moved to the new pointing and time."""
        if "events_moved" not in self._objects:
            original_pointing = Observation.pointing.fget(self)
            events = Observation.events.fget(self)
            ds = events.ds.copy()
            offsets = SkyCoord(ds["ra"].values, ds["dec"].values, unit="deg").transform_to(
                SkyOffsetFrame(origin=original_pointing)
            )
            moved = SkyCoord(offsets.lon, offsets.lat, frame=SkyOffsetFrame(origin=self.new_pointing)).icrs
            ds["ra"] = ds["ra"].copy(data=moved.ra.deg.astype(ds["ra"].dtype))
            ds["dec"] = ds["dec"].copy(data=moved.dec.deg.astype(ds["dec"].dtype))
            ds["time"] = ds["time"] + self.time_shift
            ds.attrs = dict(ds.attrs, OBS_ID=self.obs_id, RA_PNT=float(self.new_pointing.ra.deg), DEC_PNT=float(self.new_pointing.dec.deg))
            self._objects["events_moved"] = EventList(ds)
        return self._objects["events_moved"]

    @property
    def gti(self) -> GTI:
        if "gti_moved" not in self._objects:
            ds = Observation.gti.fget(self).ds.copy()
            ds["start"] = ds["start"] + self.time_shift
            ds["stop"] = ds["stop"] + self.time_shift
            self._objects["gti_moved"] = GTI(ds)
        return self._objects["gti_moved"]

    def __repr__(self):
        return super().__repr__() + f"\n  made from observation {self.base_obs_id}, times shifted by {self.time_shift:.0f} s"


def synthetic_survey(observations, n, lon_range=(-30.0, 30.0), lat_range=(-3.0, 3.0), first_obs_id=1_000_000, seed=0):
    """Observations spread along the Galactic plane, made from real ones.

    Parameters
    ----------
    observations : sequence of `xgamma.data.Observation`
        Real runs, used in turn.
    n : int
        Number of observations to make.
    lon_range, lat_range : tuple of float
        Galactic longitude and latitude ranges (deg) of the pointings, drawn
        uniformly.
    first_obs_id : int
        Obs id of the first synthetic observation; the others follow.
    seed : int
        Random seed of the pointings.

    Returns
    -------
    list of `RepointedObservation`
        Time-shifted by one day per synthetic observation.
    """
    observations = list(observations)
    if not observations:
        raise ValueError("synthetic_survey needs at least one real observation")
    rng = np.random.default_rng(seed)
    lon = rng.uniform(*lon_range, n)
    lat = rng.uniform(*lat_range, n)
    pointings = SkyCoord(lon * u.deg, lat * u.deg, frame="galactic").icrs
    day = 86400.0
    return [
        RepointedObservation(observations[i % len(observations)], first_obs_id + i, pointings[i], time_shift=(i + 1) * day)
        for i in range(n)
    ]
