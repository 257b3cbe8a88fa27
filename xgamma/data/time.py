"""Mission elapsed time (MET) and its reference, as GADF defines them.

GADF times are float64 seconds since a reference epoch given by the header
keywords ``MJDREFI`` + ``MJDREFF`` (days) in the time scale ``TIMESYS``, with
``TIMEUNIT`` (default ``s``). They are never cast to float32: ten years in
seconds need float64 to keep sub-millisecond precision.

Use `time_ref_from_header` to get the reference as an astropy `~astropy.time.Time`
(built from the two MJD parts, so no precision is lost), `met_to_time` and
`time_to_met` to convert, and `time_ref_attrs` for the serialisable attrs that
xgamma puts on every time variable.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.time import Time, TimeDelta

from ..io.fits import DL3FileError

__all__ = [
    "time_ref_from_header",
    "time_ref_attrs",
    "time_ref_from_attrs",
    "time_ref_attrs_from_time",
    "met_to_time",
    "time_to_met",
]

_SCALES = {"tt", "tai", "utc", "tcb", "tcg", "tdb", "ut1"}


def _find(headers, key):
    for header in headers:
        if header is not None and key in header and header[key] is not None and str(header[key]).strip() != "":
            return header[key]
    return None


def time_ref_attrs(*headers, where: str = "") -> dict:
    """The time reference keywords of the first header(s) that give them.

    Parameters
    ----------
    *headers : `~astropy.io.fits.Header` or dict
        Searched in order, keyword by keyword (a GTI header may lack
        ``TIMESYS`` that the EVENTS header gives).
    where : str
        Description of the source (file, HDU, observation) for error messages.

    Returns
    -------
    dict
        ``MJDREFI`` (int, days), ``MJDREFF`` (float, days), ``TIMESYS``
        (lower-case astropy scale), ``TIMEUNIT`` (``"s"``), ``TIMEREF``.

    Raises
    ------
    DL3FileError
        If no header gives ``MJDREFI`` (or ``MJDREF``) or ``TIMESYS``, or the
        time system is unknown; the message names ``where``.
    """
    mjdrefi = _find(headers, "MJDREFI")
    if mjdrefi is not None:
        mjdreff = _find(headers, "MJDREFF") or 0.0
        mjdrefi, mjdreff = int(mjdrefi), float(mjdreff)
    else:
        mjdref = _find(headers, "MJDREF")
        if mjdref is None:
            raise DL3FileError(f"{where}: no time reference (MJDREFI/MJDREFF or MJDREF keywords missing)")
        mjdrefi = int(np.floor(float(mjdref)))
        mjdreff = float(mjdref) - mjdrefi
    timesys = _find(headers, "TIMESYS")
    if timesys is None:
        raise DL3FileError(f"{where}: TIMESYS keyword missing, the time scale of MJDREF is unknown")
    timesys = str(timesys).strip().lower()
    if timesys not in _SCALES:
        raise DL3FileError(f"{where}: unknown TIMESYS {timesys!r} (expected one of {sorted(_SCALES)})")
    timeunit = str(_find(headers, "TIMEUNIT") or "s").strip()
    timeref = str(_find(headers, "TIMEREF") or "LOCAL").strip().upper()
    return {"MJDREFI": mjdrefi, "MJDREFF": mjdreff, "TIMESYS": timesys, "TIMEUNIT": timeunit, "TIMEREF": timeref}


def time_ref_from_attrs(attrs) -> Time:
    """Reference epoch `~astropy.time.Time` from ``MJDREFI``/``MJDREFF``/``TIMESYS`` attrs."""
    return Time(int(attrs["MJDREFI"]), float(attrs["MJDREFF"]), format="mjd", scale=str(attrs["TIMESYS"]).lower())


def time_ref_attrs_from_time(reference_time: Time | None = None) -> dict:
    """Time reference attrs for a given epoch.

    Parameters
    ----------
    reference_time : `~astropy.time.Time`, optional
        The MJDREF epoch; default ``2001-01-01T00:00:00`` TT (MJD 51910 + 0.00074287 d,
        the H.E.S.S. and Fermi convention).

    Returns
    -------
    dict
        ``MJDREFI``, ``MJDREFF`` (days), ``TIMESYS``, ``TIMEUNIT``, ``TIMEREF``.
    """
    if reference_time is None:
        reference_time = Time("2001-01-01T00:00:00", scale="tt")
    if reference_time.scale not in _SCALES:
        raise ValueError(f"reference_time needs a standard time scale, got {reference_time.scale!r}")
    mjdrefi = int(np.floor(reference_time.mjd))
    start_of_day = Time(mjdrefi, format="mjd", scale=reference_time.scale)
    mjdreff = float((reference_time - start_of_day).to_value(u.day))
    return {"MJDREFI": mjdrefi, "MJDREFF": mjdreff, "TIMESYS": reference_time.scale, "TIMEUNIT": "s", "TIMEREF": "LOCAL"}


def time_ref_from_header(*headers, where: str = "") -> Time:
    """Reference epoch of MET from FITS header(s); see `time_ref_attrs`."""
    return time_ref_from_attrs(time_ref_attrs(*headers, where=where))


def met_to_time(met, reference: Time, unit="s") -> Time:
    """Convert MET values to `~astropy.time.Time`.

    Parameters
    ----------
    met : float or array-like
        Time since ``reference`` in ``unit`` (float64).
    reference : `~astropy.time.Time`
        The MJDREF epoch.
    unit : str
        Unit of ``met``; seconds by default.
    """
    seconds = np.asarray(met, dtype=np.float64) * u.Unit(unit).to(u.s)
    return reference + TimeDelta(seconds, format="sec")


def time_to_met(time, reference: Time, *, name: str = "time"):
    """Convert a time to float64 seconds since ``reference``.

    Parameters
    ----------
    time : `~astropy.time.Time`, str, float or array-like
        An astropy Time, an ISO string, or MJD value(s) taken to be in the
        time scale of ``reference``.
    reference : `~astropy.time.Time`
        The MJDREF epoch.
    name : str
        Argument name for error messages.

    Returns
    -------
    float or numpy.ndarray
        Seconds (float64) since ``reference``.
    """
    if not isinstance(time, Time):
        if isinstance(time, str):
            time = Time(time, scale=reference.scale)
        else:
            try:
                time = Time(np.asarray(time, dtype=np.float64), format="mjd", scale=reference.scale)
            except (TypeError, ValueError) as err:
                raise TypeError(f"{name}: expected an astropy Time, an ISO string or MJD numbers, got {time!r}") from err
    met = (time - reference).to_value(u.s)
    return float(met) if np.ndim(met) == 0 else np.asarray(met, dtype=np.float64)
