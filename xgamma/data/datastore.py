"""Access to a GADF DL3 data store: observation and HDU index tables.

`DataStore.from_dir` reads the two GADF index tables of a folder (local path
or any fsspec URL): the observation index (one row per observation: pointing,
times, live time ...) and the HDU index (one row per HDU: observation id, HDU
type and class, file and HDU name). Selections narrow the store down and
return a new `DataStore`, so they chain::

    store = DataStore.from_dir("hess-dl3-dr1")
    crab = store.select_cone(83.633, 22.014, "5 deg").select_required_irf("full-enclosure")
    observations = crab.get_observations()

`DataStore.get_observations` turns the selection into lazy, picklable
`~xgamma.data.Observation` objects; no event or IRF file is read until an
observation's data is accessed.

Empty results: a selection that keeps no observation returns an empty
`DataStore` and emits a `UserWarning`; `get_observations` on an empty store
returns an empty `Observations` with a warning. Asking `get_observations` for
ids that the store does not hold is an error (or a warning with
``skip_missing=True``).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import xarray as xr
from astropy import units as u
from astropy.coordinates import SkyCoord, angular_separation
from astropy.table import Table
from astropy.time import Time

from ..io.fits import DL3FileError, read_hdus
from ..units import to_value
from ._utils import (
    LOCATION_KEYWORDS,
    TIME_KEYWORDS,
    dirname,
    exists,
    is_url,
    join_path,
    json_value,
    normalise_path,
)
from .observation import (
    IRF_TYPES,
    HDULocation,
    MissingHDUError,
    Observation,
    Observations,
)
from .time import time_ref_from_header, time_to_met

__all__ = ["DataStore", "REQUIRED_IRF"]

log = logging.getLogger(__name__)

#: Named sets of required IRF types (`DataStore.select_required_irf`, `get_observations`).
REQUIRED_IRF = {
    "full-enclosure": ("aeff", "edisp", "psf", "bkg"),
    "all": ("aeff", "edisp", "psf", "bkg"),
    "point-like": ("aeff", "edisp"),
    "all-optional": (),
}
_HDU_INDEX_NAMES = ("hdu-index.fits.gz", "hdu-index.fits")
_OBS_INDEX_NAMES = ("obs-index.fits.gz", "obs-index.fits")
_HDU_COLUMNS = ("OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_DIR", "FILE_NAME", "HDU_NAME")


def _required_irf(required_irf) -> tuple:
    """Normalise ``required_irf`` to a tuple of IRF types."""
    if required_irf is None:
        return ()
    if isinstance(required_irf, str):
        key = required_irf.lower()
        if key in REQUIRED_IRF:
            return REQUIRED_IRF[key]
        required_irf = [key]
    types = tuple(str(t).lower() for t in required_irf)
    unknown = [t for t in types if t not in IRF_TYPES]
    if unknown:
        raise ValueError(
            f"unknown IRF type(s) {unknown}: use some of {list(IRF_TYPES)} or one of {list(REQUIRED_IRF)}"
        )
    return types


def _table_from_hdu(hdu) -> Table:
    """Astropy table with physical column values, units and the header as meta."""
    table = Table()
    for name, unit in hdu.columns.items():
        table[name] = hdu.column(name)
        if unit:
            try:
                table[name].unit = u.Unit(unit, parse_strict="silent")
            except ValueError:
                log.debug("%s[%s]: column %s has unparsable unit %r", hdu.filename, hdu.name, name, unit)
    table.meta = {k: v for k, v in ((k, json_value(v)) for k, v in hdu.header.items()) if v is not None and k}
    for key in ("COMMENT", "HISTORY"):
        table.meta.pop(key, None)
    return table


def _resolve(path, given, defaults, what):
    """Path of an index file: ``given`` (relative to ``path`` unless absolute) or the first default present."""
    if given is not None:
        given = str(given)
        candidate = given if is_url(given) or given.startswith("/") else join_path(path, given)
        if not exists(candidate):
            raise DL3FileError(f"{what} file not found: {candidate}")
        return normalise_path(candidate)
    for name in defaults:
        candidate = join_path(path, name)
        if exists(candidate):
            return candidate
    return None


class DataStore:
    """Observation and HDU index of a GADF DL3 data store.

    Build one with `from_dir`. Selections (`select_obs_id`, `select_cone`,
    `select_time`, `select_required_irf`) return new `DataStore` objects;
    `get_observations` returns lazy `~xgamma.data.Observations`.

    Parameters
    ----------
    hdu_table : `~astropy.table.Table`
        HDU index with columns OBS_ID, HDU_TYPE, HDU_CLASS (lower case),
        FILE_DIR, FILE_NAME, HDU_NAME and PATH (resolved file path or URL).
    obs_table : `~astropy.table.Table`
        Observation index (OBS_ID and whatever else it gives); its ``meta``
        holds the index header (MJDREFI, MJDREFF, TIMESYS ...).
    path : str, optional
        Where the store was read from (for display).

    Attributes
    ----------
    hdu_table, obs_table : `~astropy.table.Table`
    path : str
    """

    def __init__(self, hdu_table: Table, obs_table: Table, path: str | None = None):
        self.hdu_table = hdu_table
        self.obs_table = obs_table
        self.path = path

    # ---- reading ----------------------------------------------------------
    @classmethod
    def from_dir(cls, path, hdu_table_filename=None, obs_table_filename=None) -> "DataStore":
        """Read the GADF index tables of a data store.

        Parameters
        ----------
        path : str or os.PathLike
            Folder of the index files: local path or fsspec URL.
        hdu_table_filename : str, optional
            HDU index file, relative to ``path`` unless absolute; default
            ``hdu-index.fits.gz``, else ``hdu-index.fits``.
        obs_table_filename : str, optional
            Observation index file; default ``obs-index.fits.gz``, else
            ``obs-index.fits``. Without one, a minimal table (OBS_ID only) is
            built from the HDU index and a warning is logged.

        Returns
        -------
        DataStore

        Raises
        ------
        DL3FileError
            If an index file is missing or unreadable, or the HDU index lacks
            a required column; the message names the file.

        Notes
        -----
        The file of each HDU is ``BASE_DIR / FILE_DIR / FILE_NAME``, where
        ``BASE_DIR`` is the header keyword of the HDU index if present, else
        the folder of the HDU index file.
        """
        path = normalise_path(path)
        hdu_file = _resolve(path, hdu_table_filename, _HDU_INDEX_NAMES, "HDU index")
        if hdu_file is None:
            raise DL3FileError(f"no HDU index ({' or '.join(_HDU_INDEX_NAMES)}) in {path}")
        obs_file = _resolve(path, obs_table_filename, _OBS_INDEX_NAMES, "observation index")
        hdu_table = cls._read_hdu_table(hdu_file)
        if obs_file is None:
            log.warning("no observation index in %s: using the observation ids of %s only", path, hdu_file)
            obs_table = Table({"OBS_ID": np.unique(np.asarray(hdu_table["OBS_ID"]))})
        else:
            obs_table = _table_from_hdu(read_hdus(obs_file, [1])[1])
            if "OBS_ID" not in obs_table.colnames:
                raise DL3FileError(f"{obs_file}: observation index has no OBS_ID column ({obs_table.colnames})")
            obs_table.meta["FILENAME"] = obs_file
        return cls(hdu_table, obs_table, path=path)

    @staticmethod
    def _read_hdu_table(hdu_file) -> Table:
        table = _table_from_hdu(read_hdus(hdu_file, [1])[1])
        missing = [c for c in _HDU_COLUMNS if c not in table.colnames]
        if missing:
            raise DL3FileError(f"{hdu_file}: HDU index lacks column(s) {missing} (has {table.colnames})")
        for name in ("HDU_TYPE", "HDU_CLASS"):
            table[name] = np.char.lower(np.asarray(table[name], dtype=str))
        base = str(table.meta.get("BASE_DIR", "")).strip() or dirname(hdu_file)
        # resolve each distinct (FILE_DIR, FILE_NAME) once, then broadcast back
        keys = np.char.add(np.char.add(np.asarray(table["FILE_DIR"], dtype=str), "\n"), np.asarray(table["FILE_NAME"], dtype=str))
        unique, inverse = np.unique(keys, return_inverse=True)
        resolved = np.array([join_path(base, *key.split("\n")) for key in unique], dtype=object)
        table["PATH"] = resolved[inverse.ravel()].astype(str)
        table.meta["FILENAME"] = hdu_file
        table.meta["BASE_DIR"] = base
        return table

    # ---- basic properties -------------------------------------------------
    @property
    def obs_ids(self) -> np.ndarray:
        """Observation ids of the observation index (int64), in table order."""
        return np.asarray(self.obs_table["OBS_ID"], dtype=np.int64)

    @property
    def hdu_classes(self) -> list:
        """HDU classes present in the HDU index (sorted)."""
        return sorted(set(np.asarray(self.hdu_table["HDU_CLASS"], dtype=str)))

    def __len__(self):
        return len(self.obs_table)

    def __repr__(self):
        return (
            f"DataStore({len(self)} observation{'s' if len(self) != 1 else ''}, {len(self.hdu_table)} HDUs)\n"
            f"  path: {self.path}\n"
            f"  HDU classes: {', '.join(self.hdu_classes) or 'none'}"
        )

    def to_xarray(self) -> xr.Dataset:
        """The observation index as an `xarray.Dataset` over dimension ``obs_id``.

        Scalar columns only; each variable carries its ``units`` attr, and the
        index header keywords are the dataset attrs.
        """
        data_vars = {}
        for name in self.obs_table.colnames:
            col = self.obs_table[name]
            if name == "OBS_ID" or col.ndim != 1:
                continue
            unit = col.unit.to_string() if col.unit is not None else ""
            data_vars[name.lower()] = ("obs_id", np.asarray(col), {"units": unit} if unit else {})
        return xr.Dataset(data_vars, coords={"obs_id": self.obs_ids}, attrs=dict(self.obs_table.meta))

    # ---- selections ------------------------------------------------------
    def _subset(self, mask, what) -> "DataStore":
        obs_table = self.obs_table[np.asarray(mask, dtype=bool)]
        hdu_rows = np.isin(np.asarray(self.hdu_table["OBS_ID"], dtype=np.int64), np.asarray(obs_table["OBS_ID"]))
        if len(obs_table) == 0:
            warnings.warn(f"{what} selected no observation (of {len(self)}); the DataStore is empty", stacklevel=3)
        return DataStore(self.hdu_table[hdu_rows], obs_table, path=self.path)

    def select_obs_id(self, obs_id) -> "DataStore":
        """Keep the given observation ids, in the order given.

        Parameters
        ----------
        obs_id : int or iterable of int (or str)
            Ids to keep; ids absent from the store are left out with a warning.
        """
        wanted = np.atleast_1d(np.asarray(obs_id)).astype(np.int64)
        ids = self.obs_ids
        absent = wanted[~np.isin(wanted, ids)]
        if absent.size:
            warnings.warn(f"observation id(s) {absent.tolist()} not in the data store; left out", stacklevel=2)
        present = wanted[np.isin(wanted, ids)]
        order = np.argsort(ids, kind="stable")
        rows = order[np.searchsorted(ids, present, sorter=order)]
        mask = np.zeros(len(ids), dtype=bool)
        mask[rows] = True
        store = self._subset(mask, f"select_obs_id({wanted.tolist()})")
        store.obs_table = self.obs_table[rows]
        return store

    def _column_deg(self, name):
        if name not in self.obs_table.colnames:
            raise KeyError(f"the observation index has no {name} column (columns: {self.obs_table.colnames})")
        col = self.obs_table[name]
        values = np.asarray(col, dtype=np.float64)
        if col.unit is not None and col.unit != u.deg:
            values = (values * col.unit).to_value(u.deg)
        return values

    def select_cone(self, lon, lat=None, radius=None, frame="icrs") -> "DataStore":
        """Keep observations whose pointing lies within ``radius`` of a sky position.

        Parameters
        ----------
        lon, lat : `~astropy.units.Quantity`, str or float
            Centre longitude and latitude (plain numbers in deg) in ``frame``;
            or pass a `~astropy.coordinates.SkyCoord` as ``lon`` and no ``lat``.
        radius : `~astropy.units.Quantity`, str or float
            Cone radius (plain numbers in deg); the boundary is included.
        frame : {"icrs", "galactic"}
            Frame of ``lon``/``lat``. Galactic cones use the GLON_PNT/GLAT_PNT
            columns when the index has them, else RA_PNT/DEC_PNT.

        Returns
        -------
        DataStore
        """
        if radius is None:
            raise TypeError("select_cone needs a radius")
        if isinstance(lon, SkyCoord):
            center = lon
        else:
            if lat is None:
                raise TypeError("select_cone needs lat (or a SkyCoord as the first argument)")
            if frame not in ("icrs", "galactic"):
                raise ValueError(f"frame must be 'icrs' or 'galactic', got {frame!r}")
            center = SkyCoord(to_value(lon, "deg", "lon"), to_value(lat, "deg", "lat"), unit="deg", frame=frame)
        radius_deg = to_value(radius, "deg", "radius")
        use_galactic = center.frame.name == "galactic" and {"GLON_PNT", "GLAT_PNT"} <= set(self.obs_table.colnames)
        if use_galactic:
            lon0, lat0 = center.l.deg, center.b.deg
            lons, lats = self._column_deg("GLON_PNT"), self._column_deg("GLAT_PNT")
        else:
            center = center.icrs
            lon0, lat0 = center.ra.deg, center.dec.deg
            lons, lats = self._column_deg("RA_PNT"), self._column_deg("DEC_PNT")
        sep = np.degrees(angular_separation(np.radians(lons), np.radians(lats), np.radians(lon0), np.radians(lat0)))
        with np.errstate(invalid="ignore"):
            mask = sep <= radius_deg  # NaN pointings (drift scans) are never selected
        return self._subset(mask, f"select_cone({lon0:.4f}, {lat0:.4f}, {radius_deg} deg)")

    @property
    def time_ref(self) -> Time:
        """Reference epoch of the index TSTART/TSTOP columns (MJDREFI + MJDREFF, TIMESYS)."""
        return time_ref_from_header(self.obs_table.meta, where=f"observation index {self.obs_table.meta.get('FILENAME', '')}")

    def select_time(self, tstart, tstop, partial_overlap=False) -> "DataStore":
        """Keep observations inside a time range.

        Parameters
        ----------
        tstart, tstop : `~astropy.time.Time`, str or float
            Range bounds: Times, ISO strings or MJD numbers (in the index's
            TIMESYS).
        partial_overlap : bool
            If False (default, as in Gammapy), keep observations lying
            entirely inside the range; if True, keep every observation that
            overlaps it.

        Returns
        -------
        DataStore

        Notes
        -----
        Uses the TSTART/TSTOP columns (s since MJDREF of the index header),
        converted to float64.
        """
        ref = self.time_ref
        lo, hi = time_to_met(tstart, ref, name="tstart"), time_to_met(tstop, ref, name="tstop")
        start = np.asarray(self.obs_table["TSTART"], dtype=np.float64)
        stop = np.asarray(self.obs_table["TSTOP"], dtype=np.float64)
        mask = (stop > lo) & (start < hi) if partial_overlap else (start >= lo) & (stop <= hi)
        return self._subset(mask, "select_time")

    def _types_per_obs(self):
        """OBS_ID and HDU_TYPE columns of the HDU index as arrays."""
        ids = np.asarray(self.hdu_table["OBS_ID"], dtype=np.int64)
        types = np.asarray(self.hdu_table["HDU_TYPE"], dtype=str)
        return ids, types

    def select_required_irf(self, required_irf="full-enclosure") -> "DataStore":
        """Keep observations whose HDU index lists every required IRF.

        Parameters
        ----------
        required_irf : str or list of str
            IRF types among ``aeff``, ``edisp``, ``psf``, ``bkg``, ``rad_max``;
            or ``"full-enclosure"`` / ``"all"`` (aeff, edisp, psf, bkg),
            ``"point-like"`` (aeff, edisp) or ``"all-optional"`` (none).

        Returns
        -------
        DataStore
        """
        required = _required_irf(required_irf)
        ids, types = self._types_per_obs()
        mask = np.ones(len(self), dtype=bool)
        obs_ids = self.obs_ids
        for irf in required:
            mask &= np.isin(obs_ids, ids[types == irf])
        return self._subset(mask, f"select_required_irf({list(required)})")

    # ---- observations ----------------------------------------------------
    def get_observations(self, obs_id=None, required_irf="full-enclosure", skip_missing=False) -> Observations:
        """Lazy `~xgamma.data.Observation` objects of this store.

        Parameters
        ----------
        obs_id : int or iterable of int, optional
            Observation ids, in the order wanted; default all of the store.
        required_irf : str or list of str
            IRF types each observation must have (see `select_required_irf`);
            events and GTI are always required.
        skip_missing : bool
            If True, observations that cannot be used (id not in the index,
            required HDU not listed, unknown HDU class, file absent) are left
            out with a warning naming them; if False (default) the first such
            problem raises.

        Returns
        -------
        Observations

        Raises
        ------
        MissingHDUError
            An id is not in the store, a required HDU type is not listed for
            an observation, or its file does not exist; the message names the
            observation, HDU type and file.
        UnknownHDUClassError
            The index gives an HDU type or class GADF does not define.

        Notes
        -----
        Only the existence of each distinct file is checked (one cheap
        metadata call per file); no file is opened.
        """
        required = ("events", "gti") + _required_irf(required_irf)
        ids = self.obs_ids if obs_id is None else np.atleast_1d(np.asarray(obs_id)).astype(np.int64)
        if ids.size == 0:
            warnings.warn("get_observations: no observation to get (empty selection)", stacklevel=2)
            return Observations()

        problems = {}  # obs_id -> exception
        known = np.isin(ids, self.obs_ids)
        for missing in ids[~known]:
            problems[int(missing)] = MissingHDUError(
                f"observation {missing} is not in the observation index of {self.path}"
            )

        # group HDU rows by observation (vectorised: one sort, split at id changes)
        hdu_ids = np.asarray(self.hdu_table["OBS_ID"], dtype=np.int64)
        rows = np.flatnonzero(np.isin(hdu_ids, ids))
        rows = rows[np.argsort(hdu_ids[rows], kind="stable")]
        group_ids, starts = np.unique(hdu_ids[rows], return_index=True)
        groups = dict(zip(group_ids.tolist(), np.split(rows, starts[1:])))

        columns = {name: np.asarray(self.hdu_table[name], dtype=str) for name in ("HDU_TYPE", "HDU_CLASS", "PATH", "HDU_NAME")}
        file_exists = {}
        obs_rows = dict(zip(self.obs_ids.tolist(), range(len(self))))
        observations = []
        for oid in ids.tolist():
            if oid in problems:
                continue
            try:
                locations = self._locations(oid, groups.get(oid, np.array([], dtype=int)), columns, required)
                for filename in dict.fromkeys(loc.file for loc in locations.values()):
                    if filename not in file_exists:
                        file_exists[filename] = exists(filename)
                    if not file_exists[filename]:
                        hdus = ", ".join(f"{t} ({loc.hdu_name})" for t, loc in locations.items() if loc.file == filename)
                        raise MissingHDUError(f"observation {oid}: file of its {hdus} HDU(s) does not exist: {filename}")
            except DL3FileError as err:
                problems[oid] = err
                continue
            info = self._obs_info(obs_rows[oid])
            observations.append(Observation(oid, locations, obs_info=info, meta=self._index_meta()))

        if problems:
            message = "; ".join(map(str, problems.values()))
            if not skip_missing:
                first = next(iter(problems.values()))
                more = f" (and {len(problems) - 1} more problem(s): {message})" if len(problems) > 1 else ""
                raise type(first)(f"{first}{more}") from first
            warnings.warn(f"skipping {len(problems)} observation(s) {sorted(problems)}: {message}", stacklevel=2)
        if not observations:
            warnings.warn("get_observations: no observation left", stacklevel=2)
        return Observations(observations)

    def _locations(self, oid, rows, columns, required) -> dict:
        locations = {}
        for row in rows.tolist():
            location = HDULocation(*(str(columns[name][row]) for name in ("HDU_TYPE", "HDU_CLASS", "PATH", "HDU_NAME")))
            location.validate(oid)
            if location.hdu_type in locations:
                raise DL3FileError(
                    f"observation {oid}: the HDU index lists {location.hdu_type!r} twice "
                    f"({locations[location.hdu_type].file}[{locations[location.hdu_type].hdu_name}] and "
                    f"{location.file}[{location.hdu_name}])"
                )
            locations[location.hdu_type] = location
        missing = [t for t in required if t not in locations]
        if missing:
            raise MissingHDUError(
                f"observation {oid}: the HDU index lists no {', '.join(missing)} HDU "
                f"(it has {sorted(locations) or 'nothing'}; index {self.hdu_table.meta.get('FILENAME', '')})"
            )
        return locations

    def _obs_info(self, row) -> dict:
        record = self.obs_table[row]
        info = {}
        for name in self.obs_table.colnames:
            value = json_value(record[name]) if np.ndim(record[name]) == 0 else None
            if value is not None:
                info[name] = value
        return info

    def _index_meta(self) -> dict:
        meta = self.obs_table.meta
        return {k: meta[k] for k in TIME_KEYWORDS + LOCATION_KEYWORDS if k in meta}

    def get_observation(self, obs_id, required_irf="all-optional") -> Observation:
        """One observation by id (see `get_observations`; by default no IRF is required)."""
        return self.get_observations([obs_id], required_irf=required_irf)[0]
