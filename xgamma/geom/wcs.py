"""WCS sky geometry: pixel grids on the sky, plus non-spatial axes.

Use `WcsGeom` for sky maps and cubes (counts, exposure, background ...);
use `~xgamma.geom.RegionGeom` for 1-D spectra extracted in an ON region.

A `WcsGeom` is a 2-D celestial WCS (astropy), a pixel count ``(nx, ny)`` and
an ordered list of `~xgamma.axes.MapAxis`. Its maps are DataArrays with dims
``(axis names..., "y", "x")`` made by `WcsGeom.to_dataarray`; the WCS travels in
the attr ``wcs`` as a FITS header string (see `WcsGeom.to_header_string`), so
it survives pickling, Zarr and FITS. 2-D lon/lat arrays are never stored; they
are computed on demand by `WcsGeom.get_coord`.

Pixel convention: pixel indices are 0-based and pixel ``i`` spans ``i - 0.5``
to ``i + 0.5`` (FITS pixel ``i + 1``). Angles are in degrees, solid angles in sr.
"""

from __future__ import annotations

import collections
import functools
import threading
import warnings

import astropy.units as u
import numpy as np
import xarray as xr
from astropy.coordinates import SkyCoord, UnitSphericalRepresentation
from astropy.io import fits
from astropy.wcs import WCS, WCSCOMPARE_ANCILLARY, FITSFixedWarning
from astropy.wcs.utils import wcs_to_celestial_frame

from ..axes import MapAxis
from ..units import to_value, unit_string

__all__ = ["WcsGeom", "angular_separation", "lonlat_deg", "make_dataarray"]

SPATIAL_DIMS = ("y", "x")
_CTYPE_PREFIX = {"icrs": ("RA---", "DEC--"), "galactic": ("GLON-", "GLAT-")}
_ANCILLARY_KEYS = ("DATEREF", "MJDREF", "MJDREFI", "MJDREFF", "DATE-OBS", "MJD-OBS")


# ---- small coordinate helpers (shared with region.py) ----------------------
def angular_separation(lon1, lat1, lon2, lat2):
    """Great-circle distance in deg (Vincenty formula, stable at all distances).

    Parameters
    ----------
    lon1, lat1, lon2, lat2 : float or `numpy.ndarray`
        Coordinates in deg; arrays broadcast.

    Returns
    -------
    `numpy.ndarray`
        Separation in deg, in ``[0, 180]``.
    """
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, dtype=float)) for v in (lon1, lat1, lon2, lat2))
    dlon = lon2 - lon1
    sdlon, cdlon = np.sin(dlon), np.cos(dlon)
    slat1, slat2, clat1, clat2 = np.sin(lat1), np.sin(lat2), np.cos(lat1), np.cos(lat2)
    num1 = clat2 * sdlon
    num2 = clat1 * slat2 - slat1 * clat2 * cdlon
    denominator = slat1 * slat2 + clat1 * clat2 * cdlon
    return np.degrees(np.arctan2(np.hypot(num1, num2), denominator))


def lonlat_deg(coords, frame):
    """Longitude and latitude in deg, in ``frame``, of a SkyCoord or a (lon, lat) pair.

    Parameters
    ----------
    coords : `~astropy.coordinates.SkyCoord` or tuple
        A SkyCoord in any frame (transformed to ``frame``), or ``(lon, lat)``
        already in ``frame``: Quantities, strings such as ``"83.6 deg"`` or
        plain numbers in deg.
    frame : str or `~astropy.coordinates.BaseCoordinateFrame`
        Target frame.

    Returns
    -------
    lon, lat : `numpy.ndarray`
        In deg, broadcast to a common shape.
    """
    if isinstance(coords, SkyCoord):
        name = frame if isinstance(frame, str) else frame.name
        # frames without attributes (no equinox, obstime): the same name is the same frame, nothing to transform
        same = name in ("icrs", "galactic") and coords.frame.name == name
        sph = (coords if same else coords.transform_to(frame)).represent_as(UnitSphericalRepresentation)
        return np.asarray(sph.lon.deg), np.asarray(sph.lat.deg)
    try:
        lon, lat = coords
    except (TypeError, ValueError) as err:
        kind = type(coords).__name__
        raise TypeError(f"coordinates must be a SkyCoord or a (lon, lat) pair in deg, got {kind}") from err
    return tuple(np.broadcast_arrays(np.asarray(to_value(lon, "deg", "lon")), np.asarray(to_value(lat, "deg", "lat"))))


def _pair(value, name, unit="deg"):
    """A scalar or a pair as two floats in ``unit``."""
    if isinstance(value, str):
        value = u.Quantity(value)
    values = np.atleast_1d(to_value(value, unit, name)).astype(float)
    if values.size == 1:
        values = np.repeat(values, 2)
    if values.shape != (2,):
        raise ValueError(f"{name} must be a scalar or a pair, got shape {values.shape}")
    return values


def _read_header(header) -> fits.Header:
    if isinstance(header, fits.Header):
        return header
    if isinstance(header, str):
        return fits.Header.fromstring(header, sep="\n" if "\n" in header else "")
    if isinstance(header, dict):
        return fits.Header(list(header.items()))
    raise TypeError(f"header must be an astropy Header, a header string or a dict, got {type(header).__name__}")


def make_dataarray(shape, dims, coords, attrs, data=None, dtype=None, name=None, chunks=None):
    """DataArray of ``shape`` (zeros when ``data`` is None), numpy- or dask-backed.

    Shared by `WcsGeom.to_dataarray` and `RegionGeom.to_dataarray`; ``chunks``
    may be a dict keyed by dim name.
    """
    if data is None:
        dtype = float if dtype is None else dtype
        if chunks is None:
            data = np.zeros(shape, dtype=dtype)
        else:
            import dask.array as dsa

            data = dsa.zeros(shape, dtype=dtype, chunks=_chunks(chunks, dims))
    else:
        if isinstance(data, u.Quantity):
            raise TypeError("pass plain values and the unit separately (data=q.value, unit=q.unit)")
        data = _with_shape(data, shape, dims)
        if dtype is not None:
            data = data.astype(dtype)
        if chunks is not None:
            import dask.array as dsa

            chunks = _chunks(chunks, dims)
            data = data.rechunk(chunks) if isinstance(data, dsa.Array) else dsa.from_array(data, chunks=chunks)
    out = xr.DataArray(data, dims=dims, coords=coords, attrs=attrs)
    out.name = name  # xarray would otherwise take a dask array's task name
    return out


def _with_shape(data, shape, dims):
    """``data`` as an array, checked to have ``shape`` (the message names the dims)."""
    if not hasattr(data, "shape"):
        data = np.asarray(data)
    if tuple(data.shape) != tuple(shape):
        described = ", ".join(f"{d}: {n}" for d, n in zip(dims, shape))
        raise ValueError(f"data shape {tuple(data.shape)} does not match the geometry ({described})")
    return data


def _chunks(chunks, dims):
    if isinstance(chunks, dict):
        unknown = set(chunks) - set(dims)
        if unknown:
            raise ValueError(f"chunks names unknown dims {sorted(unknown)}; dims are {list(dims)}")
        return {dims.index(d): c for d, c in chunks.items()}
    return chunks


# ---- the geometry -----------------------------------------------------------
def _check_axes(axes) -> tuple:
    axes = tuple(axes or ())
    names = [ax.name for ax in axes]
    if len(set(names)) != len(names) or set(names) & set(SPATIAL_DIMS):
        raise ValueError(f"axis names must be unique and not 'x' or 'y', got {names}")
    return axes


@functools.lru_cache(maxsize=8)
def _grid_cache(text, npix) -> dict:
    """The `WcsGeom._cache` shared by geometries read from the same header: a few recent grids only
    (pixel coordinates of a 500 x 500 grid take 4 MB)."""
    return {}


#: (header text, npix) -> image geometry: map attrs repeat the same few headers, parse each once
_HEADER_GEOMS: collections.OrderedDict = collections.OrderedDict()
_HEADER_GEOMS_SIZE = 256
_HEADER_GEOMS_LOCK = threading.Lock()


def _image_from_header_string(text, npix):
    with _HEADER_GEOMS_LOCK:
        geom = _HEADER_GEOMS.get((text, npix))
        if geom is not None:
            _HEADER_GEOMS.move_to_end((text, npix))
            return geom
    geom = WcsGeom._from_header(text, npix, None)
    geom.to_header_string()  # cached, and inherited by the copies `_with_axes` makes
    _remember_header(text, npix, geom)
    return geom


def _remember_header(text, npix, image):
    """Let `WcsGeom.from_header` of ``text`` return ``image`` without parsing (cutouts know their grid)."""
    with _HEADER_GEOMS_LOCK:
        _HEADER_GEOMS[(text, npix)] = image
        _HEADER_GEOMS.move_to_end((text, npix))
        while len(_HEADER_GEOMS) > _HEADER_GEOMS_SIZE:
            _HEADER_GEOMS.popitem(last=False)


def _edit_cards(text: str, values: dict) -> str:
    """Header text (cards joined by newlines) with the cards of ``values`` replaced (appended when absent)."""
    lines = text.split("\n")
    where = {line[:8].rstrip(): k for k, line in enumerate(lines)}
    for key, value in values.items():
        if key in where:
            card = fits.Card.fromstring(lines[where[key]])  # keeps its comment
            card.value = value
            lines[where[key]] = str(card).rstrip()
        else:
            lines.append(str(fits.Card(key, value)).rstrip())
    return "\n".join(lines)


class WcsGeom:
    """Sky pixel grid (2-D celestial WCS) with optional non-spatial axes.

    Build one with `WcsGeom.create`, `WcsGeom.from_header` or
    `WcsGeom.from_dataarray`. A geometry is immutable: methods return new ones.

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS`
        Celestial WCS; a WCS with more axes is reduced to its celestial part.
    npix : tuple of int
        ``(nx, ny)``, the number of pixels along lon-like and lat-like axes.
    axes : list of `~xgamma.axes.MapAxis`, optional
        Non-spatial axes, outermost first: the map dims are
        ``(axes[0].name, ..., "y", "x")``.
    """

    __hash__ = None

    def __init__(self, wcs, npix, axes=None):
        if not wcs.has_celestial:
            raise ValueError(f"WcsGeom needs a celestial WCS, got CTYPE {list(wcs.wcs.ctype)}")
        wcs = wcs.celestial if wcs.naxis != 2 else wcs.deepcopy()
        wcs.wcs.set()
        nx, ny = (int(n) for n in npix)
        if nx < 1 or ny < 1:
            raise ValueError(f"npix must be positive, got {(nx, ny)}")
        self._wcs, self._npix, self._axes = wcs, (nx, ny), _check_axes(axes)
        #: results that depend on the sky grid only, shared with the copies `_with_axes` makes
        self._cache = {}
        self._frame = wcs_to_celestial_frame(wcs)

    # ---- constructors -----------------------------------------------------
    @classmethod
    def create(cls, skydir=None, width=None, binsz=0.5, frame="icrs", proj="CAR", axes=None, npix=None):
        """Geometry centred on ``skydir``, Gammapy-style.

        ``npix = round(width / binsz)`` per axis; the reference pixel (CRPIX)
        is the map centre and CRVAL is ``skydir`` (so a CAR map away from the
        equator is an oblique CAR, exactly as Gammapy writes it).

        Parameters
        ----------
        skydir : `~astropy.coordinates.SkyCoord` or tuple, optional
            Map centre; a ``(lon, lat)`` pair is in deg in ``frame``. Default
            ``(0, 0)``.
        width : float, str, `~astropy.units.Quantity` or pair, optional
            Map width in deg, ``w`` or ``(w_lon, w_lat)``. With neither
            ``width`` nor ``npix``, the whole sky ``(360, 180)`` deg.
        binsz : float, str, `~astropy.units.Quantity` or pair
            Pixel size in deg. Default 0.5 deg.
        frame : {"icrs", "galactic"}
            Celestial frame.
        proj : str
            Three-letter FITS projection code, e.g. ``"CAR"``, ``"TAN"``, ``"AIT"``.
        axes : list of `~xgamma.axes.MapAxis`, optional
            Non-spatial axes, outermost first.
        npix : int or pair, optional
            Number of pixels ``(nx, ny)``, instead of ``width``.

        Returns
        -------
        WcsGeom
        """
        if frame not in _CTYPE_PREFIX:
            raise ValueError(f"frame must be one of {sorted(_CTYPE_PREFIX)}, got {frame!r}")
        proj = str(proj).upper()
        if len(proj) != 3:
            raise ValueError(f"proj must be a three-letter FITS projection code, got {proj!r}")
        lon, lat = (0.0, 0.0) if skydir is None else (float(v) for v in lonlat_deg(skydir, frame))
        binsz = _pair(binsz, "binsz")
        if np.any(binsz <= 0):
            raise ValueError(f"binsz must be positive, got {binsz} deg")
        if npix is None:
            width = _pair((360.0, 180.0) if width is None else width, "width")
            npix = np.rint(width / binsz).astype(int)
        npix = np.broadcast_to(np.asarray(npix, dtype=int), (2,))
        if np.any(npix < 1):
            raise ValueError(f"width / binsz gives {tuple(npix)} pixels; need at least one along each axis")
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = [f"{p}{proj}" for p in _CTYPE_PREFIX[frame]]
        wcs.wcs.crval = [lon, lat]
        wcs.wcs.cdelt = [-binsz[0], binsz[1]]
        wcs.wcs.crpix = (npix + 1) / 2.0
        wcs.wcs.cunit = ["deg", "deg"]
        if frame == "icrs":
            wcs.wcs.radesys = "ICRS"
        return cls(wcs, npix, axes)

    @classmethod
    def from_header(cls, header, axes=None, npix=None):
        """Geometry from a FITS header.

        Parameters
        ----------
        header : `~astropy.io.fits.Header`, str or dict
            Header with a celestial WCS; a string holds 80-character cards,
            optionally separated by newlines (the ``wcs`` attr of a map).
        axes : list of `~xgamma.axes.MapAxis`, optional
            Non-spatial axes.
        npix : pair of int, optional
            ``(nx, ny)``; default from NAXIS1 and NAXIS2.
        """
        if isinstance(header, str):
            # map attrs repeat the same few headers: parse each once
            image = _image_from_header_string(header, None if npix is None else tuple(int(n) for n in npix))
            geom = image._with_axes(axes)
            geom._cache = _grid_cache(header, npix and tuple(int(n) for n in npix))
            return geom
        return cls._from_header(header, npix, axes)

    @classmethod
    def _from_header(cls, header, npix, axes):
        header = _read_header(header)
        if npix is None:
            if "NAXIS1" not in header or "NAXIS2" not in header:
                raise ValueError("header has no NAXIS1/NAXIS2: pass npix=(nx, ny)")
            npix = (header["NAXIS1"], header["NAXIS2"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header)
        return cls(wcs, npix, axes)

    def _with_axes(self, axes) -> "WcsGeom":
        """The same sky grid (WCS object and cached header/coordinates shared, never mutated) with other axes."""
        geom = object.__new__(WcsGeom)
        geom.__dict__.update(self.__dict__)
        geom._axes = _check_axes(axes)
        return geom

    @classmethod
    def from_dataarray(cls, da):
        """Geometry of a WCS map (a DataArray with dims ``(..., "y", "x")`` and a ``wcs`` attr).

        Raises
        ------
        ValueError
            If the ``wcs`` attr or the ``y``/``x`` dims are missing.
        """
        if "wcs" not in da.attrs:
            raise ValueError(f"not a WCS map: no 'wcs' attr (attrs: {sorted(da.attrs)})")
        missing = [d for d in SPATIAL_DIMS if d not in da.dims]
        if missing:
            raise ValueError(f"not a WCS map: dims {list(da.dims)} lack {missing}")
        axes = [MapAxis.from_coords(da, d) for d in da.dims if d not in SPATIAL_DIMS]
        return cls.from_header(da.attrs["wcs"], axes=axes, npix=(da.sizes["x"], da.sizes["y"]))

    # ---- properties -------------------------------------------------------
    @property
    def wcs(self) -> WCS:
        """The 2-D celestial `~astropy.wcs.WCS` (shared: do not modify it)."""
        return self._wcs

    @property
    def npix(self) -> tuple[int, int]:
        """``(nx, ny)``."""
        return self._npix

    @property
    def axes(self) -> tuple[MapAxis, ...]:
        return self._axes

    @property
    def dims(self) -> tuple[str, ...]:
        """Dims of the maps: ``(axis names..., "y", "x")``."""
        return tuple(ax.name for ax in self._axes) + SPATIAL_DIMS

    @property
    def data_shape(self) -> tuple[int, ...]:
        """Shape of the maps, in the order of `dims`."""
        return tuple(ax.nbin for ax in self._axes) + self._npix[::-1]

    @property
    def frame(self) -> str:
        """Name of the celestial frame (``"icrs"``, ``"galactic"``, ``"fk5"`` ...)."""
        return self._frame.name

    @property
    def projection(self) -> str:
        return self._wcs.wcs.ctype[0][-3:]

    @property
    def binsz(self) -> tuple[float, float]:
        """Pixel size ``(lon, lat)`` at the reference pixel, deg."""
        scale = np.abs(self._wcs.wcs.get_cdelt() * np.diag(self._wcs.wcs.get_pc()))
        return tuple(float(v) for v in scale)

    @property
    def width(self) -> tuple[float, float]:
        """Map width ``(lon, lat)`` in deg: ``npix * binsz``."""
        return tuple(float(n * b) for n, b in zip(self._npix, self.binsz))

    @property
    def center_pix(self) -> tuple[float, float]:
        """0-based pixel coordinates ``(x, y)`` of the map centre."""
        return ((self._npix[0] - 1) / 2.0, (self._npix[1] - 1) / 2.0)

    @property
    def center_skydir(self) -> SkyCoord:
        """Sky position of the map centre."""
        lon, lat = self.pix_to_coord(*self.center_pix)
        return SkyCoord(lon, lat, unit="deg", frame=self._frame)

    @property
    def is_allsky(self) -> bool:
        """True for a CAR map spanning 360 x 180 deg."""
        return self.projection == "CAR" and bool(np.allclose(self.width, (360.0, 180.0), rtol=1e-6))

    @property
    def is_image(self) -> bool:
        return not self._axes

    # ---- pixel <-> world ----------------------------------------------------
    def pix_to_coord(self, x, y):
        """Sky coordinates of 0-based pixel positions.

        Parameters
        ----------
        x, y : float or array-like
            Pixel coordinates (broadcast together).

        Returns
        -------
        lon, lat : `numpy.ndarray`
            In deg in the geometry frame, lon in ``[0, 360)``; NaN outside the
            projection's domain.
        """
        lon, lat = self._wcs.wcs_pix2world(np.asarray(x, dtype=float), np.asarray(y, dtype=float), 0)
        return np.mod(lon, 360.0), lat

    def pix_to_skycoord(self, x, y) -> SkyCoord:
        """Like `pix_to_coord`, as a SkyCoord in the geometry frame."""
        lon, lat = self.pix_to_coord(x, y)
        return SkyCoord(lon, lat, unit="deg", frame=self._frame)

    def coord_to_pix(self, coords):
        """0-based pixel positions of sky coordinates.

        Parameters
        ----------
        coords : `~astropy.coordinates.SkyCoord` or tuple
            SkyCoord in any frame, or ``(lon, lat)`` in deg in the geometry frame.

        Returns
        -------
        x, y : `numpy.ndarray`
            Fractional pixel coordinates; NaN where the projection is undefined.
        """
        lon, lat = lonlat_deg(coords, self._frame)
        return self._wcs.wcs_world2pix(lon, lat, 0)

    def contains(self, coords):
        """Boolean array: which coordinates fall in a map pixel.

        Parameters
        ----------
        coords : `~astropy.coordinates.SkyCoord` or tuple
            As for `coord_to_pix`.
        """
        x, y = self.coord_to_pix(coords)
        nx, ny = self._npix
        with np.errstate(invalid="ignore"):
            return (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)

    def get_coord(self):
        """Longitude and latitude of every pixel centre.

        Returns
        -------
        lon, lat : `numpy.ndarray`
            Shape ``(ny, nx)``, deg, in the geometry frame.
        """
        if "coord" not in self._cache:  # the grid never changes; the makers ask several times
            y, x = np.indices(self._npix[::-1], dtype=float)
            lon, lat = self.pix_to_coord(x, y)
            lon.flags.writeable = lat.flags.writeable = False
            self._cache["coord"] = lon, lat
        return self._cache["coord"]

    def separation(self, position) -> xr.DataArray:
        """Angular distance of every pixel centre to ``position``.

        Parameters
        ----------
        position : `~astropy.coordinates.SkyCoord` or tuple
            A single sky position (``(lon, lat)`` in deg in the geometry frame).

        Returns
        -------
        `xarray.DataArray`
            Dims ``("y", "x")``, in deg.
        """
        lon0, lat0 = lonlat_deg(position, self._frame)
        position = (float(lon0), float(lat0))
        # the makers ask for the offset from the pointing several times: keep the last position's
        last, values = self._cache.get("separation", (None, None))
        if last != position:
            lon, lat = self.get_coord()
            values = angular_separation(lon0, lat0, lon, lat)
            values.flags.writeable = False
            self._cache["separation"] = position, values
        return xr.DataArray(values, dims=SPATIAL_DIMS, attrs={"units": "deg"})

    def solid_angle(self) -> xr.DataArray:
        """Solid angle of every pixel, from its exact boundary.

        Notes
        -----
        For CAR with a diagonal PC matrix a pixel is a box in native spherical
        coordinates, so its solid angle is ``dphi * (sin(theta2) - sin(theta1))``,
        exact also for oblique CAR (the native-to-celestial rotation keeps
        areas). Otherwise the pixel is the spherical quadrilateral through its
        four corners, summed from two triangles (Van Oosterom & Strackee 1983);
        exact for TAN, whose straight pixel edges are great circles, and a
        close approximation for other projections. Pixels with a corner outside
        the projection's domain get NaN.

        Returns
        -------
        `xarray.DataArray`
            Dims ``("y", "x")``, in sr.
        """
        nx, ny = self._npix
        pc = self._wcs.wcs.get_pc()
        if self.projection == "CAR" and pc[0, 1] == 0 and pc[1, 0] == 0:
            cdelt, crpix = self._wcs.wcs.get_cdelt() * np.diag(pc), self._wcs.wcs.crpix
            phi = np.radians((np.arange(nx + 1) + 0.5 - crpix[0]) * cdelt[0])
            theta = np.radians(np.clip((np.arange(ny + 1) + 0.5 - crpix[1]) * cdelt[1], -90, 90))
            omega = np.abs(np.diff(np.sin(theta)))[:, None] * np.abs(np.diff(phi))[None, :]
        else:
            ye, xe = np.indices((ny + 1, nx + 1), dtype=float) - 0.5
            lon, lat = np.radians(self._wcs.wcs_pix2world(xe, ye, 0))
            vec = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)
            c00, c01, c10, c11 = vec[:-1, :-1], vec[:-1, 1:], vec[1:, :-1], vec[1:, 1:]
            omega = _triangle_solid_angle(c00, c01, c11) + _triangle_solid_angle(c00, c11, c10)
        return xr.DataArray(omega, dims=SPATIAL_DIMS, attrs={"units": "sr"})

    def region_mask(self, regions) -> xr.DataArray:
        """Boolean image: pixel centres inside any of ``regions``.

        Parameters
        ----------
        regions : `~regions.SkyRegion`, list, `~regions.Regions` or str
            Sky regions (a str is DS9 text). Circles use the exact great-circle
            distance; other shapes are tested in this map's pixel space.

        Returns
        -------
        `xarray.DataArray`
            Dims ``("y", "x")``, bool.
        """
        from .region import RegionGeom

        lon, lat = self.get_coord()
        sky = SkyCoord(lon, lat, unit="deg", frame=self._frame)
        inside = RegionGeom.create(regions).contains(sky, wcs=self._wcs)
        return xr.DataArray(inside, dims=SPATIAL_DIMS)

    # ---- derived geometries ----------------------------------------------
    def cutout_slices(self, position, width) -> dict[str, slice]:
        """Pixel slices of the cutout of ``width`` around ``position``.

        The cutout is ``round(width / binsz)`` pixels wide, centred as close
        as the parent grid allows, and clipped at the map edges.

        Parameters
        ----------
        position : `~astropy.coordinates.SkyCoord` or tuple
            Cutout centre (``(lon, lat)`` deg in the geometry frame).
        width : float, str, `~astropy.units.Quantity` or pair
            Cutout width in deg, ``w`` or ``(w_lon, w_lat)``.

        Returns
        -------
        dict
            ``{"y": slice, "x": slice}`` for ``DataArray.isel``.

        Raises
        ------
        ValueError
            If the cutout does not overlap the map.
        """
        lon, lat = (float(v) for v in lonlat_deg(position, self._frame))
        where = f"({lon:.4f}, {lat:.4f}) deg {self.frame}"
        x, y = (float(v) for v in self.coord_to_pix((lon, lat)))
        npix_cut = np.maximum(np.rint(_pair(width, "width") / np.array(self.binsz)).astype(int), 1)
        slices = {}
        for dim, pos, n, n_parent in zip(("x", "y"), (x, y), npix_cut, self._npix):
            if not np.isfinite(pos):
                raise ValueError(
                    f"cutout around {where} does not overlap the map: it cannot be projected in {self.projection}"
                )
            lo = int(np.ceil(pos - n / 2.0))
            lo_clip, hi_clip = max(lo, 0), min(lo + n, n_parent)
            if hi_clip <= lo_clip:
                raise ValueError(
                    f"cutout around {where} (pixel x={x:.1f}, y={y:.1f}) of width {tuple(npix_cut)} pix "
                    f"does not overlap the map of npix {self._npix}"
                )
            slices[dim] = slice(int(lo_clip), int(hi_clip))
        return {"y": slices["y"], "x": slices["x"]}

    def cutout(self, position, width) -> "WcsGeom":
        """Geometry of the cutout (on the parent pixel grid); see `cutout_slices`."""
        return self.slice_by_idx(self.cutout_slices(position, width))

    def slice_by_idx(self, slices) -> "WcsGeom":
        """Sub-geometry from index slices, e.g. ``{"y": slice(2, 10), "energy": slice(0, 3)}``.

        Slices must have step 1; the result's pixels are exactly the parent's.
        """
        unknown = set(slices) - set(self.dims)
        if unknown:
            raise ValueError(f"cannot slice unknown dims {sorted(unknown)}; dims are {list(self.dims)}")
        norm = {}
        for dim, n in zip(self.dims, self.data_shape):
            start, stop, step = slices.get(dim, slice(None)).indices(n)
            if step != 1 or stop <= start:
                raise ValueError(f"slice for {dim!r} must have step 1 and select pixels, got {slices[dim]}")
            norm[dim] = (start, stop)
        wcs = self._wcs.deepcopy()
        wcs.wcs.crpix = wcs.wcs.crpix - np.array([norm["x"][0], norm["y"][0]])
        npix = (norm["x"][1] - norm["x"][0], norm["y"][1] - norm["y"][0])
        axes = [
            MapAxis(ax.edges_min.value[slice(*norm[ax.name])], ax.edges_max.value[slice(*norm[ax.name])],
                    name=ax.name, unit=ax.unit, interp=ax.interp)
            for ax in self._axes
        ]
        geom = WcsGeom(wcs, npix, axes)
        # the child's header differs from ours only by CRPIX and NAXIS: edit, don't rebuild
        text = _edit_cards(self.to_header_string(), {
            "NAXIS1": npix[0], "NAXIS2": npix[1], "CRPIX1": float(wcs.wcs.crpix[0]), "CRPIX2": float(wcs.wcs.crpix[1]),
        })
        geom._keep_header_string(text)
        if "coord" in self._cache:
            # the pixel centres are the parent's (known already, e.g. for many cutouts of one target), shared
            # with the grids `from_header` reads from this text
            lon, lat = self._cache["coord"]
            y, x = slice(*norm["y"]), slice(*norm["x"])
            geom._cache = _grid_cache(text, npix)
            geom._cache.setdefault("coord", (lon[y, x], lat[y, x]))
        return geom

    def to_image(self) -> "WcsGeom":
        """The same sky grid without non-spatial axes."""
        return self._with_axes([])

    def to_cube(self, axes) -> "WcsGeom":
        """The same sky grid with ``axes`` added after the existing ones."""
        return self._with_axes(list(self._axes) + list(axes))

    def upsample(self, factor: int) -> "WcsGeom":
        """Pixels ``factor`` times smaller; the map's outer edges are unchanged."""
        return self._rebin(int(factor), 1 / int(factor))

    def downsample(self, factor: int) -> "WcsGeom":
        """Pixels ``factor`` times larger; ``npix`` must be divisible by ``factor``."""
        factor = int(factor)
        if any(n % factor for n in self._npix):
            raise ValueError(f"npix {self._npix} is not divisible by the downsampling factor {factor}")
        return self._rebin(1 / factor, factor)

    def _rebin(self, npix_factor, cdelt_factor):
        wcs = self._wcs.deepcopy()
        wcs.wcs.cdelt = wcs.wcs.cdelt * cdelt_factor
        wcs.wcs.crpix = (wcs.wcs.crpix - 0.5) / cdelt_factor + 0.5
        npix = tuple(int(round(n * npix_factor)) for n in self._npix)
        return WcsGeom(wcs, npix, self._axes)

    # ---- serialisation --------------------------------------------------------
    def to_header(self) -> fits.Header:
        """FITS header of the sky grid: NAXIS1/2 and the celestial WCS keywords.

        Floating-point keywords are written with full double precision.
        """
        header = fits.Header([("NAXIS", 2), ("NAXIS1", self._npix[0]), ("NAXIS2", self._npix[1])])
        header.update(self._wcs.to_header())
        for key in _ANCILLARY_KEYS:
            header.remove(key, ignore_missing=True)
        exact = {"CRPIX": self._wcs.wcs.crpix, "CRVAL": self._wcs.wcs.crval, "CDELT": self._wcs.wcs.cdelt}
        for stem, values in exact.items():
            for i, value in enumerate(values, start=1):
                if f"{stem}{i}" in header:
                    header[f"{stem}{i}"] = float(value)
        return header

    def to_header_string(self) -> str:
        """`to_header` as text: FITS cards, trailing blanks removed, joined by newlines.

        This is the form stored in the ``wcs`` attr of every WCS map.
        """
        if "_header_string" not in self.__dict__:  # the grid never changes: build it once
            self._keep_header_string("\n".join(str(card).rstrip() for card in self.to_header().cards))
        return self._header_string

    def _keep_header_string(self, text: str) -> None:
        self._header_string = text
        # maps made on this grid name it by this text: reading them back needs no WCS parsing
        _remember_header(text, tuple(int(n) for n in self._npix), self.to_image())

    def to_dataarray(self, data=None, unit="", name=None, dtype=None, chunks=None) -> xr.DataArray:
        """A map on this geometry.

        Parameters
        ----------
        data : array-like or `dask.array.Array`, optional
            Values of shape `data_shape`; zeros when omitted. Never reshaped.
        unit : str or `~astropy.units.Unit`
            Stored as the ``units`` attr.
        name : str, optional
            Name of the DataArray.
        dtype : data-type, optional
            Cast ``data`` to it; new arrays default to float64.
        chunks : int, tuple, dict or "auto", optional
            Make the result dask-backed with these chunks (a dict may be keyed
            by dim name, e.g. ``{"energy": 1, "y": 500}``).

        Returns
        -------
        `xarray.DataArray`
            Dims `dims`; axis coords from `MapAxis.to_coords`; attrs ``units``
            and ``wcs`` (the `to_header_string` text).
        """
        coords = {}
        for ax in self._axes:
            coords.update(ax.to_coords())
        attrs = {"units": unit_string(unit), "wcs": self.to_header_string()}
        return make_dataarray(self.data_shape, self.dims, coords, attrs, data, dtype, name, chunks)

    def to_variable(self, data, unit="", spatial=SPATIAL_DIMS) -> xr.Variable:
        """A map on this geometry as a bare `xarray.Variable`: no coordinates, so no indexes to build.

        What datasets are assembled from when their coordinates are already
        at hand (the makers take them from the template dataset).

        Parameters
        ----------
        data : array-like
            Values of shape `data_shape`, used as they are (not copied).
        unit : str or `~astropy.units.Unit`
            Stored as the ``units`` attr; the ``wcs`` attr names the grid.
        spatial : tuple of str
            Names of the two sky dims (``("y_irf", "x_irf")`` on IRF grids).
        """
        dims = self.dims[: -len(SPATIAL_DIMS)] + tuple(spatial)
        data = _with_shape(data, self.data_shape, dims)
        return xr.Variable(dims, data, {"units": unit_string(unit), "wcs": self.to_header_string()})

    def __getstate__(self):
        return {"header": self.to_header_string(), "npix": self._npix, "axes": self._axes}

    def __setstate__(self, state):
        geom = WcsGeom.from_header(state["header"], axes=state["axes"], npix=state["npix"])
        self.__dict__.update(geom.__dict__)

    def __eq__(self, other):
        if not isinstance(other, WcsGeom):
            return NotImplemented
        return (
            self._npix == other._npix
            and self._axes == other._axes
            and bool(self._wcs.wcs.compare(other._wcs.wcs, cmp=WCSCOMPARE_ANCILLARY, tolerance=1e-10))
        )

    def __repr__(self):
        center = self.center_skydir.represent_as(UnitSphericalRepresentation)
        axes = ", ".join(repr(ax) for ax in self._axes) or "none"
        shape = ", ".join(f"{d}: {n}" for d, n in zip(self.dims, self.data_shape))
        return (
            "WcsGeom\n"
            f"    frame      : {self.frame}\n"
            f"    projection : {self.projection}\n"
            f"    center     : {center.lon.deg:.4f} deg, {center.lat.deg:.4f} deg\n"
            f"    width      : {self.width[0]:.4g} x {self.width[1]:.4g} deg\n"
            f"    binsz      : {self.binsz[0]:.4g} x {self.binsz[1]:.4g} deg\n"
            f"    npix       : {self._npix[0]} x {self._npix[1]} pix\n"
            f"    axes       : {axes}\n"
            f"    data shape : ({shape})"
        )


def _triangle_solid_angle(a, b, c):
    """Solid angle (sr) of spherical triangles with unit-vector corners ``(..., 3)``.

    Van Oosterom & Strackee (1983), with the triple product taken on corner
    differences to keep precision for tiny triangles.
    """
    triple = _dot(a, np.cross(b - a, c - a))
    denom = 1 + _dot(a, b) + _dot(b, c) + _dot(c, a)
    return 2 * np.arctan2(np.abs(triple), denom)


def _dot(p, q):
    """Row-wise dot product of ``(..., 3)`` arrays."""
    return np.einsum("...i,...i->...", p, q)
