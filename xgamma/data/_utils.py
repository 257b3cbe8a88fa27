"""Private helpers shared by the data modules: headers and paths."""

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
