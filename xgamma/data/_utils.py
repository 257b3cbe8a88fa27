"""Private helpers shared by the data modules: table columns, headers, paths.

`xgamma.io.fits.read_hdus` hands back table data as a plain NumPy record
array, i.e. the *stored* FITS values: big-endian, integer columns not yet
shifted by ``TZEROn``/``TSCALn``, logical columns as the bytes ``T``/``F``,
strings as bytes. `column` turns one such field into its physical values.
"""

from __future__ import annotations

import math
import os
import posixpath

import fsspec
import numpy as np
from fsspec.core import split_protocol

# Header keywords describing table structure, not metadata.
_STRUCTURAL = ("TTYPE", "TFORM", "TUNIT", "TDIM", "TZERO", "TSCAL", "TNULL", "TDISP", "NAXIS")
_STRUCTURAL_EXACT = {"XTENSION", "BITPIX", "PCOUNT", "GCOUNT", "TFIELDS", "COMMENT", "HISTORY", "", "EXTEND", "SIMPLE"}

#: Header keywords giving the time reference (GADF general/time).
TIME_KEYWORDS = ("MJDREFI", "MJDREFF", "MJDREF", "TIMESYS", "TIMEUNIT", "TIMEREF")
#: Header keywords giving the observatory location (GADF general/coordinates).
LOCATION_KEYWORDS = ("GEOLON", "GEOLAT", "ALTITUDE")


def _column_index(header, name: str):
    """1-based FITS column number of ``name`` (case-insensitive), or None."""
    name = name.upper()
    for i in range(1, int(header.get("TFIELDS", 0)) + 1):
        if str(header.get(f"TTYPE{i}", "")).strip().upper() == name:
            return i
    return None


def column(hdu_data, name: str) -> np.ndarray:
    """Physical values of one table column, in native byte order.

    Parameters
    ----------
    hdu_data : `xgamma.io.fits.HDUData`
        A binary table HDU.
    name : str
        Column name (case-insensitive).

    Returns
    -------
    numpy.ndarray
        Native-endian values; ``TZERO``/``TSCAL`` applied to integer columns
        stored raw, logical columns as bool, strings as stripped ``str``.
    """
    data = hdu_data.data
    field = next(n for n in data.dtype.names if n.upper() == name.upper())
    values = np.asarray(data[field])
    index = _column_index(hdu_data.header, field)
    tform = str(hdu_data.header.get(f"TFORM{index}", "")).strip().upper() if index else ""
    if values.dtype.kind == "S":
        return np.char.strip(np.char.decode(values, "ascii", errors="replace"))
    if values.dtype.kind == "U":
        return np.char.strip(values)
    if tform.endswith("L") and values.dtype.kind in "iu":
        return values == ord("T")
    values = values.astype(values.dtype.newbyteorder("="), copy=False)
    if index and values.dtype.kind == "i":
        # raw stored integers: apply the FITS scaling astropy would apply
        zero = hdu_data.header.get(f"TZERO{index}", 0)
        scale = hdu_data.header.get(f"TSCAL{index}", 1)
        if scale == 1 and zero == 2 ** (8 * values.itemsize - 1):
            return values.view(values.dtype.str.replace("i", "u")) ^ np.array(zero, dtype=values.dtype.str.replace("i", "u"))
        if (zero, scale) != (0, 1):
            return values * float(scale) + float(zero)
    return values


def json_value(value):
    """A header or table value as a JSON-serialisable Python scalar, or None to drop it."""
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("ascii", errors="replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value
    return None


def header_to_dict(header) -> dict:
    """Metadata keywords of a FITS header as a dict of JSON-serialisable values.

    Table-structure keywords (``TTYPEn`` ...), comments and undefined values
    are dropped; a keyword repeated in the header keeps its first value.
    """
    out = {}
    for key, value in header.items():
        if key in _STRUCTURAL_EXACT or key.startswith(_STRUCTURAL) or key in out:
            continue
        value = json_value(value)
        if value is not None:
            out[key] = value
    return out


def header_float(header, key, default=None):
    """A header value as float (strings such as ``'1835.'`` are parsed), else ``default``."""
    if header is None or key not in header:
        return default
    try:
        value = float(header[key])
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) else default


# ---- paths --------------------------------------------------------------
def is_url(path: str) -> bool:
    return "://" in path or "::" in path


def normalise_path(path) -> str:
    """Absolute local path, or a normalised fsspec URL (``..`` resolved)."""
    path = os.fspath(path)
    protocol, rest = split_protocol(path)
    if protocol in (None, "file", "local"):
        return os.path.normpath(os.path.abspath(os.path.expanduser(rest)))
    return f"{protocol}://{posixpath.normpath(rest)}"


def join_path(base: str, *parts: str) -> str:
    """Join ``parts`` onto a local path or fsspec URL and normalise the result.

    An absolute part (``/data/...`` or a URL) replaces what precedes it.
    """
    for part in parts:
        part = str(part).strip()
        if not part:
            continue
        if is_url(part):
            base = part
            continue
        protocol, rest = split_protocol(base)
        joined = posixpath.join(rest, part) if protocol not in (None, "file", "local") else os.path.join(rest, part)
        base = f"{protocol}://{joined}" if protocol not in (None, "file", "local") else joined
    return normalise_path(base)


def dirname(path: str) -> str:
    protocol, rest = split_protocol(path)
    if protocol in (None, "file", "local"):
        return os.path.dirname(rest)
    return f"{protocol}://{posixpath.dirname(rest)}"


def exists(path: str) -> bool:
    """Whether a local path or fsspec URL exists (one cheap metadata call)."""
    fs, fs_path = fsspec.core.url_to_fs(path)
    return bool(fs.exists(fs_path))
