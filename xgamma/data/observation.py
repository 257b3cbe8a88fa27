"""Observations: lazy, picklable handles on one run's DL3 HDUs.

An `Observation` holds only small, picklable things: the observation id, its
row of the observation index as a plain dict, and where each of its HDUs
lives (file, HDU name, HDU class). Nothing is read until a property asks for
it, on whichever process (Dask worker) asks; what is read is cached on the
object, and the cache is dropped when the object is pickled, so shipping an
observation to a worker never ships event data or file handles.

Which accessor to use when:

- `Observation.events`, `Observation.gti`: the event list and good times.
- `Observation.aeff`, `edisp`, `psf`, `bkg`, `rad_max`: IRFs, built by
  `xgamma.irf.load_irf`; None when the observation has no such HDU.
- `Observation.pointing`, `tstart`, `tstop`, `ontime`, `livetime`,
  `deadtime_fraction`, `target`: header quantities (only the EVENTS header is
  read for these, not the whole file, unless it is already loaded).
- `Observation.load`: read every HDU at once, each file opened and
  decompressed once; use it before touching several HDUs of one file.
"""

from __future__ import annotations

import logging
from collections import namedtuple
from dataclasses import dataclass

import fsspec
import numpy as np
from astropy import units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.io import fits
from astropy.time import Time

from ..io.fits import DL3FileError, read_hdus
from ._utils import LOCATION_KEYWORDS, header_float
from .events import EventList
from .gti import GTI
from .time import met_to_time, time_ref_from_header

__all__ = [
    "HDU_CLASSES",
    "IRF_TYPES",
    "HDULocation",
    "MissingHDUError",
    "UnknownHDUClassError",
    "Observation",
    "Observations",
    "Target",
]

log = logging.getLogger(__name__)

#: Allowed HDU classes of each GADF HDU type (HDU index table, lower case).
HDU_CLASSES = {
    "events": ("events",),
    "gti": ("gti",),
    "aeff": ("aeff_2d",),
    "edisp": ("edisp_2d",),
    "psf": ("psf_table", "psf_3gauss", "psf_king"),
    "bkg": ("bkg_2d", "bkg_3d"),
    "rad_max": ("rad_max_2d",),
    "pointing": ("pointing",),
}
#: HDU types that are instrument response functions.
IRF_TYPES = ("aeff", "edisp", "psf", "bkg", "rad_max")

#: Name and sky position (or None) of an observation's target.
Target = namedtuple("Target", ["name", "position"])


class MissingHDUError(DL3FileError):
    """An observation lacks an HDU it needs (absent from the index, or its file is missing)."""


class UnknownHDUClassError(DL3FileError):
    """The HDU index gives an HDU type or class that GADF does not define."""


@dataclass(frozen=True)
class HDULocation:
    """Where one HDU of an observation lives.

    Attributes
    ----------
    hdu_type : str
        GADF HDU type (``events``, ``gti``, ``aeff``, ``edisp``, ``psf``,
        ``bkg``, ``rad_max``, ``pointing``).
    hdu_class : str
        GADF HDU class (``aeff_2d``, ``psf_table`` ...).
    file : str
        Absolute local path or fsspec URL.
    hdu_name : str
        EXTNAME of the HDU in ``file``.
    """

    hdu_type: str
    hdu_class: str
    file: str
    hdu_name: str

    def validate(self, obs_id=None):
        """Raise `UnknownHDUClassError` for a type/class pair GADF does not define."""
        allowed = HDU_CLASSES.get(self.hdu_type)
        if allowed is None or self.hdu_class not in allowed:
            what = f"HDU type {self.hdu_type!r}" if allowed is None else f"HDU class {self.hdu_class!r} for type {self.hdu_type!r}"
            known = sorted(HDU_CLASSES) if allowed is None else list(allowed)
            raise UnknownHDUClassError(
                f"observation {obs_id}: unknown {what} (HDU {self.hdu_name!r} in {self.file}); expected one of {known}"
            )


def _read_header(location: HDULocation, obs_id) -> fits.Header:
    """Read just one HDU's header (streams, so a gzip file is decompressed only up to it)."""
    try:
        with fsspec.open(location.file, "rb") as f:
            with fits.open(f, memmap=False, lazy_load_hdus=True) as hdul:
                return hdul[location.hdu_name].header.copy()
    except FileNotFoundError as err:
        raise MissingHDUError(f"observation {obs_id}: {location.hdu_type} file not found: {location.file}") from err
    except KeyError as err:
        raise MissingHDUError(
            f"observation {obs_id}: {location.file} has no HDU {location.hdu_name!r} ({location.hdu_type})"
        ) from err
    except (OSError, ValueError, TypeError, EOFError) as err:
        raise DL3FileError(
            f"observation {obs_id}: cannot read header of {location.file}[{location.hdu_name}] "
            f"({location.hdu_type}): {type(err).__name__}: {err}"
        ) from err


def _finite(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


class Observation:
    """One observation: lazy access to its events, GTI, pointing and IRFs.

    Usually obtained from `xgamma.data.DataStore.get_observations`.

    Parameters
    ----------
    obs_id : int
        Observation id.
    locations : dict
        Maps HDU type to `HDULocation`.
    obs_info : dict, optional
        The observation's row of the observation index (plain Python values).
    meta : dict, optional
        Keywords of the observation index header (time reference, observatory
        location), used when a file's own header lacks them.

    Notes
    -----
    Reading happens on first access and is cached. Pickling keeps only the
    parameters above (the cache is dropped), so an `Observation` is cheap to
    send to a Dask worker, which then reads the files itself.
    """

    def __init__(self, obs_id, locations, obs_info=None, meta=None):
        self.obs_id = int(obs_id)
        self.locations = dict(locations)
        self.obs_info = dict(obs_info or {})
        self.meta = dict(meta or {})
        self._init_cache()

    def _init_cache(self):
        self._hdus = {}  # hdu_type -> HDUData, read but not yet turned into an object
        self._headers = {}  # hdu_type -> fits.Header
        self._objects = {}  # hdu_type -> EventList, GTI, IRF ...

    # ---- pickling: never ship the cache ----------------------------------
    def __getstate__(self):
        state = {"obs_id": self.obs_id, "locations": self.locations, "obs_info": self.obs_info, "meta": self.meta}
        if "pointing" in self._objects:
            # two numbers, and the first thing a worker asks for (to cut the target): not re-read there
            pointing = self._objects["pointing"]
            state["pointing_radec"] = (float(pointing.ra.deg), float(pointing.dec.deg))
        return state

    def __setstate__(self, state):
        state = dict(state)
        radec = state.pop("pointing_radec", None)
        self.__dict__.update(state)
        self._init_cache()
        if radec is not None:
            self._objects["pointing"] = SkyCoord(radec[0], radec[1], unit="deg", frame="icrs")

    # ---- reading ----------------------------------------------------------
    @property
    def available_hdus(self) -> list:
        """HDU types listed for this observation (``events``, ``gti``, ``aeff`` ...)."""
        return list(self.locations)

    @property
    def available_irfs(self) -> list:
        """IRF types listed for this observation."""
        return [t for t in self.locations if t in IRF_TYPES]

    @property
    def is_loaded(self) -> bool:
        """Whether every HDU has been read."""
        return all(t in self._hdus or t in self._objects for t in self.locations)

    def _location(self, hdu_type) -> HDULocation:
        try:
            return self.locations[hdu_type]
        except KeyError:
            raise MissingHDUError(
                f"observation {self.obs_id} has no {hdu_type!r} HDU (available: {self.available_hdus})"
            ) from None

    def _read(self, hdu_types):
        """Read the HDUs of ``hdu_types`` not read yet, opening each file once.

        Every other HDU of the same files is read too: decompressing the file
        is the cost, so one access to a run's file pays for all its HDUs.
        """
        wanted = [t for t in hdu_types if t not in self._hdus and t not in self._objects]
        files = {self._location(t).file for t in wanted}
        wanted += [
            t for t, loc in self.locations.items()
            if loc.file in files and t not in wanted and t not in self._hdus and t not in self._objects
        ]
        by_file = {}
        for hdu_type in wanted:
            location = self._location(hdu_type)
            by_file.setdefault(location.file, []).append(location)
        for filename, locations in by_file.items():
            names = list(dict.fromkeys(loc.hdu_name for loc in locations))
            try:
                hdus = read_hdus(filename, names)
            except DL3FileError as err:
                types = ", ".join(f"{loc.hdu_type} HDU {loc.hdu_name!r}" for loc in locations)
                cls = MissingHDUError if "not found" in str(err) or "no HDU" in str(err) else DL3FileError
                raise cls(f"observation {self.obs_id} ({types}): {err}") from err
            for location in locations:
                hdu = hdus[location.hdu_name]
                self._hdus[location.hdu_type] = hdu
                self._headers[location.hdu_type] = hdu.keywords

    def load(self) -> "Observation":
        """Read every HDU of this observation into memory, each file opened once.

        The event list, GTI and every IRF the observation has are built at
        once, so later access costs nothing.

        Returns
        -------
        Observation
            ``self``, for chaining.

        Raises
        ------
        DL3FileError
            If a file or HDU cannot be read; the message names observation,
            file and HDU.
        """
        self._read(list(self.locations))
        if "events" in self.locations:
            self.events  # noqa: B018 - build and cache
        if "gti" in self.locations:
            self.gti  # noqa: B018
        for irf_type in IRF_TYPES:
            if irf_type in self.locations:
                getattr(self, irf_type)
        return self

    def clear_cache(self):
        """Forget everything read so far."""
        self._init_cache()

    def _get(self, hdu_type, build):
        if hdu_type not in self._objects:
            self._read([hdu_type])
            hdu = self._hdus[hdu_type]
            self._objects[hdu_type] = build(hdu)
            self._hdus.pop(hdu_type, None)  # the object replaces the raw table
        return self._objects[hdu_type]

    def _header(self, hdu_type):
        """Header values of one HDU (a mapping keyword -> value), read alone if the HDU is not loaded."""
        if hdu_type not in self._headers:
            self._headers[hdu_type] = _read_header(self._location(hdu_type), self.obs_id)
        return self._headers[hdu_type]

    def _lookup(self, key, hdu_type="events"):
        """A keyword from the HDU's header, else from the observation index row."""
        if hdu_type in self.locations:
            header = self._header(hdu_type)
            if key in header and header[key] is not None and str(header[key]).strip() != "":
                return header[key]
        return self.obs_info.get(key)

    # ---- events and time ------------------------------------------------
    @property
    def events(self) -> EventList:
        """The event list (`EventList`)."""
        return self._get("events", lambda hdu: EventList.from_hdu(hdu, self.meta, obs_id=self.obs_id))

    def _build_gti(self, hdu):
        header = hdu.keywords
        complete = "TIMESYS" in header and ("MJDREFI" in header or "MJDREF" in header)
        fallbacks = [] if complete or "events" not in self.locations else [self._header("events")]
        return GTI.from_hdu(hdu, *fallbacks, self.meta, obs_id=self.obs_id)

    @property
    def gti(self) -> GTI:
        """Good time intervals (`GTI`).

        Without a GTI HDU, one interval from the EVENTS header TSTART to TSTOP.
        """
        if "gti" not in self.locations:
            if "gti" not in self._objects:
                log.info("observation %s has no GTI HDU: using TSTART-TSTOP of the EVENTS header", self.obs_id)
                ref = self.time_ref
                self._objects["gti"] = GTI.create(self.tstart, self.tstop, reference_time=ref)
            return self._objects["gti"]
        return self._get("gti", self._build_gti)

    @property
    def time_ref(self) -> Time:
        """Reference epoch of MET (MJDREFI + MJDREFF in TIMESYS)."""
        headers = [self._header("events")] if "events" in self.locations else []
        return time_ref_from_header(*headers, self.meta, where=f"observation {self.obs_id}")

    def _met(self, key):
        value = _finite(self._lookup(key))
        if value is None:
            raise DL3FileError(f"observation {self.obs_id}: no {key} in the EVENTS header or the observation index")
        return value

    @property
    def tstart(self) -> Time:
        """Start of the observation (TSTART), as `~astropy.time.Time`."""
        return met_to_time(self._met("TSTART"), self.time_ref)

    @property
    def tstop(self) -> Time:
        """End of the observation (TSTOP), as `~astropy.time.Time`."""
        return met_to_time(self._met("TSTOP"), self.time_ref)

    @property
    def tmid(self) -> Time:
        """Middle of the observation."""
        start = self._met("TSTART")
        return met_to_time(start + 0.5 * (self._met("TSTOP") - start), self.time_ref)

    @property
    def ontime(self) -> u.Quantity:
        """Total good time including dead time (ONTIME, s); the GTI sum when absent."""
        value = _finite(self._lookup("ONTIME"))
        if value is None:
            return self.gti.time_sum
        return value * u.s

    @property
    def livetime(self) -> u.Quantity:
        """Dead-time corrected observing time (LIVETIME, s); ONTIME * DEADC when absent."""
        value = _finite(self._lookup("LIVETIME"))
        if value is None:
            deadc = _finite(self._lookup("DEADC"))
            if deadc is None:
                raise DL3FileError(f"observation {self.obs_id}: neither LIVETIME nor DEADC is given")
            return self.ontime * deadc
        return value * u.s

    @property
    def deadc(self) -> float:
        """Dead-time correction factor DEADC = LIVETIME / ONTIME."""
        value = _finite(self._lookup("DEADC"))
        if value is None:
            return float((self.livetime / self.ontime).decompose())
        return value

    @property
    def deadtime_fraction(self) -> float:
        """Fraction of ONTIME the instrument was dead: ``1 - DEADC``."""
        return 1.0 - self.deadc

    # ---- pointing and target -------------------------------------------
    def _pointing_table_mean(self, lon_col, lat_col):
        """Mean direction (deg) of the POINTING HDU columns, or None."""
        if "pointing" not in self.locations:
            return None

        def build(hdu):
            return hdu

        hdu = self._get("pointing", build)
        if lon_col not in hdu.columns or lat_col not in hdu.columns:
            return None
        lon = np.radians(hdu.column(lon_col).astype(float))
        lat = np.radians(hdu.column(lat_col).astype(float))
        xyz = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)]).mean(axis=1)
        return float(np.degrees(np.arctan2(xyz[1], xyz[0])) % 360), float(np.degrees(np.arctan2(xyz[2], np.hypot(*xyz[:2]))))

    def _direction(self, lon_key, lat_key):
        lon, lat = _finite(self._lookup(lon_key)), _finite(self._lookup(lat_key))
        if lon is not None and lat is not None:
            return lon, lat
        return self._pointing_table_mean(lon_key, lat_key)

    @property
    def pointing(self) -> SkyCoord:
        """Pointing direction (ICRS).

        From RA_PNT/DEC_PNT of the EVENTS header, else of the observation
        index, else the mean of the POINTING HDU.
        """
        if "pointing" not in self._objects:  # asked for by every maker: built once
            radec = self._direction("RA_PNT", "DEC_PNT")
            if radec is None:
                raise DL3FileError(
                    f"observation {self.obs_id}: no RA_PNT/DEC_PNT in the EVENTS header, the observation index "
                    f"or a POINTING HDU"
                )
            self._objects["pointing"] = SkyCoord(radec[0], radec[1], unit="deg", frame="icrs")
        return self._objects["pointing"]

    @property
    def observatory_location(self) -> EarthLocation | None:
        """Observatory position from GEOLON/GEOLAT (deg) and ALTITUDE (m), or None."""
        sources = [self._header("events")] if "events" in self.locations else []
        sources += [self.meta, self.obs_info]
        values = {}
        for key in LOCATION_KEYWORDS:
            values[key] = next((v for v in (header_float(s, key) for s in sources) if v is not None), None)
        if values["GEOLON"] is None or values["GEOLAT"] is None:
            return None
        return EarthLocation.from_geodetic(
            values["GEOLON"] * u.deg, values["GEOLAT"] * u.deg, (values["ALTITUDE"] or 0.0) * u.m
        )

    @property
    def pointing_altaz(self) -> SkyCoord | None:
        """Mean pointing in horizontal coordinates (ALT_PNT/AZ_PNT), or None when not given.

        The frame carries the observatory location and the middle of the
        observation as obstime when those are known.
        """
        altaz = self._direction("AZ_PNT", "ALT_PNT")
        if altaz is None:
            return None
        try:
            obstime = self.tmid
        except DL3FileError:
            obstime = None
        frame = AltAz(location=self.observatory_location, obstime=obstime)
        return SkyCoord(az=altaz[0] * u.deg, alt=altaz[1] * u.deg, frame=frame)

    @property
    def target(self) -> Target:
        """Observed object: ``Target(name, position)``; position (ICRS) is None without RA_OBJ/DEC_OBJ."""
        name = self._lookup("OBJECT")
        name = str(name).strip() if name is not None else None
        radec = (_finite(self._lookup("RA_OBJ")), _finite(self._lookup("DEC_OBJ")))
        position = SkyCoord(*radec, unit="deg", frame="icrs") if None not in radec else None
        return Target(name, position)

    # ---- IRFs -------------------------------------------------------------
    def _irf(self, hdu_type):
        if hdu_type not in self.locations:
            return None
        from ..irf import load_irf

        location = self.locations[hdu_type]

        def build(hdu):
            try:
                return load_irf(hdu, location.hdu_class)
            except Exception as err:
                raise DL3FileError(
                    f"observation {self.obs_id}: cannot build {hdu_type} ({location.hdu_class}) from "
                    f"{location.file}[{location.hdu_name}]: {err}"
                ) from err

        return self._get(hdu_type, build)

    @property
    def aeff(self):
        """Effective area (`xgamma.irf.EffectiveAreaTable2D`), or None if the observation has none."""
        return self._irf("aeff")

    @property
    def edisp(self):
        """Energy dispersion (`xgamma.irf.EnergyDispersion2D`), or None."""
        return self._irf("edisp")

    @property
    def psf(self):
        """Point spread function (`xgamma.irf.PSFTable`, `PSF3Gauss` or `PSFKing`), or None."""
        return self._irf("psf")

    @property
    def bkg(self):
        """Background model (`xgamma.irf.Background2D` or `Background3D`), or None."""
        return self._irf("bkg")

    @property
    def rad_max_value(self) -> float | None:
        """Constant directional cut (deg): the RAD_MAX keyword of a point-like effective area, or None."""
        if "aeff" not in self.locations:
            return None
        return header_float(self._header("aeff"), "RAD_MAX")

    @property
    def rad_max(self):
        """Energy-dependent directional cut (`xgamma.irf.RadMax2D`), or None.

        From the RAD_MAX HDU; without one, a constant table (one energy bin and
        one offset bin spanning the effective area's axes; RadMax2D clamps to
        the edge value outside them) holding the RAD_MAX keyword of a
        point-like effective area (see also `rad_max_value`).
        """
        if "rad_max" in self.locations:
            return self._irf("rad_max")
        if "rad_max" in self._objects:
            return self._objects["rad_max"]
        value = self.rad_max_value
        if value is None:
            return None
        self._objects["rad_max"] = _constant_rad_max(value, self.aeff)
        return self._objects["rad_max"]

    @property
    def is_point_like(self) -> bool:
        """Whether the effective area is point-like (HDUCLAS3 = POINT-LIKE)."""
        if "aeff" not in self.locations:
            return False
        return str(self._header("aeff").get("HDUCLAS3", "")).strip().upper() == "POINT-LIKE"

    # ---- display ---------------------------------------------------------
    def _cached_value(self, key):
        header = self._headers.get("events")
        if header is not None and key in header:
            return header[key]
        return self.obs_info.get(key)

    def __repr__(self):
        ra, dec = _finite(self._cached_value("RA_PNT")), _finite(self._cached_value("DEC_PNT"))
        livetime = _finite(self._cached_value("LIVETIME"))
        pointing = f"ra={ra:.3f} deg, dec={dec:.3f} deg" if None not in (ra, dec) else "unknown (not read yet)"
        live = f"{livetime:.1f} s" if livetime is not None else "unknown (not read yet)"
        loaded = [t for t in self.locations if t in self._objects or t in self._hdus]
        lines = [
            f"Observation(obs_id={self.obs_id})",
            f"  pointing (icrs): {pointing}",
            f"  livetime: {live}",
            f"  HDUs: {', '.join(f'{t} ({loc.hdu_class})' for t, loc in self.locations.items())}",
            f"  loaded: {', '.join(loaded) if loaded else 'nothing'}",
        ]
        return "\n".join(lines)


def _constant_rad_max(value, aeff):
    """A `xgamma.irf.RadMax2D` holding one cut ``value`` (deg) over the range of ``aeff``'s axes."""
    import xarray as xr

    from ..axes import MapAxis
    from ..irf import RadMax2D

    axes = aeff.axes
    energy, offset = axes["energy_true"], axes["offset"]
    coords = {
        **MapAxis(energy.edges_min[:1].value, energy.edges_max[-1:].value, name="energy", unit=energy.unit, interp="log").to_coords(),
        **MapAxis(offset.edges_min[:1].value, offset.edges_max[-1:].value, name="offset", unit=offset.unit).to_coords(),
    }
    data = xr.DataArray(
        np.full((1, 1), float(value)),
        dims=("energy", "offset"),
        coords=coords,
        attrs={"units": "deg", "RAD_MAX": float(value), "hduclas3": "POINT-LIKE", "source": "RAD_MAX keyword of the effective area"},
    )
    return RadMax2D(data)


class Observations:
    """An ordered, list-like collection of `Observation` objects.

    Index by position (``obs[0]``), by slice or list of positions (a new
    `Observations`), or by observation id given as a string (``obs["23523"]``,
    as in Gammapy). Picklable; pickling ships no loaded data.

    Parameters
    ----------
    observations : iterable of `Observation`, optional
    """

    def __init__(self, observations=None):
        self._observations = list(observations or [])

    @property
    def ids(self) -> list:
        """Observation ids (int), in order."""
        return [obs.obs_id for obs in self._observations]

    def __len__(self):
        return len(self._observations)

    def __iter__(self):
        return iter(self._observations)

    def __getitem__(self, key):
        if isinstance(key, str):
            return self.by_id(int(key))
        if isinstance(key, slice):
            return Observations(self._observations[key])
        if isinstance(key, (list, tuple, np.ndarray)):
            return Observations([self._observations[int(i)] for i in key])
        return self._observations[key]

    def by_id(self, obs_id) -> Observation:
        """The observation with id ``obs_id``."""
        for obs in self._observations:
            if obs.obs_id == int(obs_id):
                return obs
        raise KeyError(f"no observation {obs_id} in {self.ids}")

    def append(self, observation: Observation):
        """Add one observation at the end."""
        self._observations.append(observation)

    def __eq__(self, other):
        if not isinstance(other, Observations):
            return NotImplemented
        return self.ids == other.ids

    def __repr__(self):
        ids = self.ids
        shown = ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")
        return f"Observations({len(ids)} observation{'s' if len(ids) != 1 else ''}: [{shown}])"
