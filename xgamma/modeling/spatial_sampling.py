"""Integrating a sky brightness over the pixels of a `~xgamma.geom.WcsGeom`.

The spatial models (`xgamma.modeling.spatial`) use these helpers; call them
directly only to integrate a brightness function of your own.

- `footprint_box`: the pixel-coordinate box that holds a circle on the sky,
  so that a compact model is sampled only where it is not zero.
- `integrate_over_pixels`: midpoint rule on a regular sub-pixel grid (each
  pixel split into ``n x n`` sub-pixels with their exact solid angles),
  restricted to a box; samples are
  summed back into their parent pixels with `numpy.bincount`, in blocks of
  bounded size, never with a Python loop over pixels.
- `point_fractions`: bilinear weights of the four pixels around a sky
  position; they sum to 1 and their centroid is the position itself.

Angles are in deg, solid angles in sr.
"""

from __future__ import annotations

import numpy as np
from astropy.coordinates import SkyCoord

from ..geom.wcs import lonlat_deg

__all__ = ["footprint_box", "integrate_over_pixels", "lonlat_in_frame", "point_fractions"]

# beyond this radius (deg) a circle's outline no longer bounds its pixels reliably
_MAX_BOXED_RADIUS = 60.0
_CIRCLE_POINTS = 72
# samples evaluated at once: bounds memory whatever the map or oversampling
_BLOCK_SAMPLES = 2**20


def lonlat_in_frame(lon, lat, frame_from: str, frame_to: str):
    """Coordinates in deg moved from one celestial frame to another.

    Parameters
    ----------
    lon, lat : `numpy.ndarray`
        Coordinates in deg in ``frame_from``.
    frame_from, frame_to : str
        Frame names (``"icrs"``, ``"galactic"`` ...).

    Returns
    -------
    lon, lat : `numpy.ndarray`
        In deg in ``frame_to`` (the inputs themselves when the frames agree).
    """
    if frame_from == frame_to:
        return lon, lat
    return lonlat_deg(SkyCoord(lon, lat, unit="deg", frame=frame_from), frame_to)


def _circle_outline(lon_0, lat_0, radius, n=_CIRCLE_POINTS):
    """Points (deg) at distance ``radius`` (deg) from ``(lon_0, lat_0)`` in every direction."""
    bearing = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    lat0, lon0, dist = np.radians(lat_0), np.radians(lon_0), np.radians(radius)
    sin_lat = np.sin(lat0) * np.cos(dist) + np.cos(lat0) * np.sin(dist) * np.cos(bearing)
    lat = np.arcsin(np.clip(sin_lat, -1, 1))
    lon = lon0 + np.arctan2(np.sin(bearing) * np.sin(dist) * np.cos(lat0), np.cos(dist) - np.sin(lat0) * sin_lat)
    return np.degrees(lon), np.degrees(lat)


def footprint_box(geom, lon_0, lat_0, radius, frame: str):
    """Pixel-coordinate box of ``geom`` holding the circle of ``radius`` around a position.

    Parameters
    ----------
    geom : `~xgamma.geom.WcsGeom`
        Target geometry.
    lon_0, lat_0 : float
        Circle centre in deg in ``frame``.
    radius : float or None
        Circle radius in deg; None means the whole sky.
    frame : str
        Frame of the centre.

    Returns
    -------
    tuple of float or None
        ``(x_min, x_max, y_min, y_max)`` in 0-based pixel coordinates, within
        the map's outer edges ``-0.5 ... n - 0.5``; None when the circle
        misses the map. The whole map when the outline cannot bound the
        circle's pixels (large radius, a pole inside, outline not projectable).
    """
    nx, ny = geom.npix
    whole = (-0.5, nx - 0.5, -0.5, ny - 0.5)
    if radius is None or radius >= _MAX_BOXED_RADIUS:
        return whole
    lon_c, lat_c = lonlat_in_frame(np.atleast_1d(lon_0), np.atleast_1d(lat_0), frame, geom.frame)
    if abs(float(lat_c[0])) + radius >= 90.0:  # a pole inside: the outline does not bound the pixels
        return whole
    lon, lat = lonlat_in_frame(*_circle_outline(lon_0, lat_0, radius), frame, geom.frame)
    x, y = geom.coord_to_pix((np.append(lon, lon_c), np.append(lat, lat_c)))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return whole
    # chords between outline points cut inside the circle: pad by a little more than their sag
    pad_x, pad_y = 0.02 * np.ptp(x) + 0.5, 0.02 * np.ptp(y) + 0.5
    box = (max(x.min() - pad_x, -0.5), min(x.max() + pad_x, nx - 0.5),
           max(y.min() - pad_y, -0.5), min(y.max() + pad_y, ny - 0.5))
    if box[0] >= box[1] or box[2] >= box[3]:
        return None
    return box


#: Largest fine grid (sub-pixels) whose coordinates are kept on the geometry object.
_MAX_CACHED_SAMPLES = 2**20


def _cached_fine_grid(geom, n):
    """``(lon, lat, solid angle)`` of all sub-pixels of ``geom`` at ``n`` per pixel, kept on the geometry.

    Forward folding integrates a moving or resizing model over the same cutout
    geometry at every likelihood call; the sub-pixel coordinates only depend
    on the geometry. None when the grid would be too large to keep.
    """
    nx, ny = geom.npix
    if nx * ny * n * n > _MAX_CACHED_SAMPLES:
        return None
    cache = geom.__dict__.setdefault("_fine_grids", {})
    if n not in cache:
        fine = geom.to_image().upsample(n)
        lon, lat = fine.get_coord()
        cache[n] = (lon, lat, np.nan_to_num(fine.solid_angle().values))
    return cache[n]


def _subpixel_range(lo, hi, npix, n):
    """Indices of the sub-pixels (``n`` per pixel) overlapping pixel coordinates ``[lo, hi]``."""
    start = max(int(np.floor((lo + 0.5) * n)), 0)
    stop = min(int(np.ceil((hi + 0.5) * n)), npix * n)
    return np.arange(start, stop)


def integrate_over_pixels(geom, brightness, box, oversampling: int, leading_shape=()):
    """Integral of a brightness over each pixel, by the midpoint rule on sub-pixels.

    Parameters
    ----------
    geom : `~xgamma.geom.WcsGeom`
        Target geometry (its non-spatial axes are ignored).
    brightness : callable
        ``brightness(lon, lat)`` with 1-D arrays in deg in the geometry frame,
        returning sr-1 values of shape ``leading_shape + lon.shape``.
    box : tuple of float
        ``(x_min, x_max, y_min, y_max)`` pixel coordinates outside which the
        brightness is zero (see `footprint_box`).
    oversampling : int
        Sub-pixels per pixel along each axis.
    leading_shape : tuple of int
        Extra leading dims of ``brightness`` (e.g. energies).

    Returns
    -------
    `numpy.ndarray`
        Shape ``leading_shape + (ny, nx)``: the integral over each pixel
        (dimensionless for a brightness in sr-1). Sub-pixels are the pixels of
        ``geom.upsample(oversampling)``, each with its exact solid angle.
    """
    nx, ny = geom.npix
    n = int(oversampling)
    n_lead = int(np.prod(leading_shape))
    jx = _subpixel_range(box[0], box[1], nx, n)
    jy = _subpixel_range(box[2], box[3], ny, n)
    total = np.zeros(n_lead * nx * ny)
    if jx.size == 0 or jy.size == 0:
        return total.reshape(tuple(leading_shape) + (ny, nx))
    grid = _cached_fine_grid(geom, n)
    if grid is not None and n == 1:  # one sample per pixel: nothing to sum
        window = (slice(jy[0], jy[-1] + 1), slice(jx[0], jx[-1] + 1))
        lon, lat, omega = (g[window] for g in grid)
        values = np.reshape(brightness(lon.ravel(), lat.ravel()), (n_lead,) + lon.shape) * omega
        total = total.reshape((n_lead, ny, nx))
        total[(slice(None), *window)] = np.nan_to_num(values)
        return total.reshape(tuple(leading_shape) + (ny, nx))
    if grid is not None:  # a fit's cutout: sub-pixel coordinates computed once
        lon, lat, omega = (g[jy[0]:jy[-1] + 1, jx[0]:jx[-1] + 1].ravel() for g in grid)
        sy, sx = (a.ravel() for a in np.meshgrid(jy, jx, indexing="ij"))
        values = np.reshape(brightness(lon, lat), (n_lead, sx.size)) * omega
        index = (np.arange(n_lead) * nx * ny)[:, None] + (sy // n) * nx + sx // n
        total += np.bincount(index.ravel(), weights=np.nan_to_num(values).ravel(), minlength=total.size)
        return total.reshape(tuple(leading_shape) + (ny, nx))
    fine = geom.to_image().upsample(n)
    rows_per_block = max(1, _BLOCK_SAMPLES // jx.size)
    offsets = (np.arange(n_lead) * nx * ny)[:, None]
    for start in range(0, jy.size, rows_per_block):
        rows = jy[start:start + rows_per_block]
        block = fine.slice_by_idx({"y": slice(int(rows[0]), int(rows[-1]) + 1), "x": slice(int(jx[0]), int(jx[-1]) + 1)})
        lon, lat = (c.ravel() for c in block.get_coord())
        omega = np.nan_to_num(block.solid_angle().values).ravel()
        sy, sx = (a.ravel() for a in np.meshgrid(rows, jx, indexing="ij"))
        values = np.reshape(brightness(lon, lat), (n_lead, sx.size)) * omega
        index = offsets + (sy // n) * nx + sx // n
        total += np.bincount(index.ravel(), weights=np.nan_to_num(values).ravel(), minlength=total.size)
    return total.reshape(tuple(leading_shape) + (ny, nx))


def point_fractions(geom, lon, lat):
    """Bilinear weights of the pixels around a position: a point source on ``geom``.

    The four pixels whose centres surround the position share the flux in
    proportion to their closeness, so the centroid (in pixel coordinates) is
    the position and the map changes smoothly as the position moves, which
    a fit of the position needs. Weight falling outside the map is lost.

    Parameters
    ----------
    geom : `~xgamma.geom.WcsGeom`
        Target geometry.
    lon, lat : float
        Position in deg in the geometry frame.

    Returns
    -------
    `numpy.ndarray`
        Shape ``(ny, nx)``, dimensionless fractions.
    """
    nx, ny = geom.npix
    out = np.zeros((ny, nx))
    x, y = (float(v) for v in geom.coord_to_pix((lon, lat)))
    if not (np.isfinite(x) and np.isfinite(y)):
        return out
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                           (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        if 0 <= x0 + dx < nx and 0 <= y0 + dy < ny:
            out[y0 + dy, x0 + dx] += weight
    return out
