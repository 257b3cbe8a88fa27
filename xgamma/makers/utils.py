"""Vectorised building blocks of the map makers (no loops over events or pixels).

Which function to use when:

- `bin_events`: counts cube (energy, y, x) from an event list.
- `make_exposure`: exposure (energy_true, y, x) = aeff x livetime, in cm2 s.
- `make_background`: IRF background counts (energy, y, x) from a BKG_2D or
  BKG_3D, in either FoV alignment (`fov_coordinates`, `altaz_time_steps`).
- `make_psf`: PSF density (energy_true, rad, y, x) in sr-1.
- `make_edisp_kernel`: reco-energy migration kernel (energy_true, energy, y, x).

All take plain geometry and IRF objects, return NumPy arrays in the canonical
units stated, and never read files, so they are easy to test on their own.

FoV coordinates
---------------
``(fov_lon, fov_lat)`` are spherical coordinates with the pointing at
``(0, 0)`` (GADF "(LON, LAT)" FoV system). The GADF text fixes no sign for
``fov_lon``; xgamma follows the convention the DL3 files are made with
(Gammapy's): for ``RADEC`` alignment ``fov_lon`` grows towards increasing RA
(east) and ``fov_lat`` towards north, i.e. the astropy `SkyOffsetFrame`
centred on the pointing; for ``ALTAZ`` alignment ``fov_lat`` grows towards
the zenith and ``fov_lon`` towards *decreasing* azimuth. With that sign both
frames have the same handedness on the sky, so the ALTAZ frame is the RADEC
frame rotated by the parallactic angle (never mirrored): a radially
symmetric model gives the same map for both alignments.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import AltAz, SkyCoord

from ..irf.background import power_law_segments_by_row
from ..irf.core import CANONICAL_AXIS_UNITS, LOG_FLOOR, interpolate_scaled
from ..units import to_value

__all__ = [
    "altaz_time_steps",
    "bin_events",
    "fov_coordinates",
    "integrate_background",
    "make_background",
    "make_edisp_kernel",
    "make_edisp_migra",
    "make_exposure",
    "make_psf",
]

#: Spacing (s) of the samples used to follow the field rotation across a GTI.
_ROTATION_SAMPLING_S = 60.0


# ---- events -------------------------------------------------------------------
def bin_events(events, geom) -> np.ndarray:
    """Histogram events into a counts cube.

    Parameters
    ----------
    events : `~xgamma.data.EventList`
        Events with ``ra``, ``dec`` (deg, ICRS) and ``energy`` (TeV).
    geom : `~xgamma.geom.WcsGeom`
        Geometry with one ``energy`` axis (reconstructed energy).

    Returns
    -------
    `numpy.ndarray`
        Counts, float64, shape ``geom.data_shape`` (energy, y, x). An event
        belongs to pixel ``i`` when its pixel coordinate is in
        ``[i - 0.5, i + 0.5)`` and to energy bin ``j`` when
        ``E_min,j <= E < E_max,j``.
    """
    (axis,) = geom.axes
    ds = events.ds
    ra, dec = ds["ra"].values.astype(float), ds["dec"].values.astype(float)
    coords = (ra, dec) if geom.frame == "icrs" else SkyCoord(ra, dec, unit="deg", frame="icrs")
    x, y = geom.coord_to_pix(coords)
    nx, ny = geom.npix
    with np.errstate(invalid="ignore"):
        ix = np.floor(np.asarray(x) + 0.5)
        iy = np.floor(np.asarray(y) + 0.5)
    ie = axis.coord_to_idx(ds["energy"].values.astype(float) * u.TeV)
    valid = (ie >= 0) & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    flat = np.ravel_multi_index((ie[valid], iy[valid].astype(int), ix[valid].astype(int)), geom.data_shape)
    return np.bincount(flat, minlength=int(np.prod(geom.data_shape))).reshape(geom.data_shape).astype(float)


# ---- coordinates --------------------------------------------------------------
def _offset_lonlat(lon, lat, lon0, lat0):
    """Spherical coordinates (deg) in the frame with ``(lon0, lat0)`` at the origin.

    The rotation of astropy's `SkyOffsetFrame` (no extra rotation): longitude
    grows with ``lon``, latitude with ``lat``. Arrays broadcast.
    """
    lon, lat, lon0, lat0 = (np.radians(np.asarray(v, dtype=float)) for v in (lon, lat, lon0, lat0))
    # trigonometric functions dominate the cost: each is taken once
    dlon = lon - lon0
    cos_lat, sin_lat = np.cos(lat), np.sin(lat)
    x = cos_lat * np.cos(dlon)
    y = cos_lat * np.sin(dlon)
    cos_lat0, sin_lat0 = np.cos(lat0), np.sin(lat0)
    x_rot = x * cos_lat0 + sin_lat * sin_lat0
    z_rot = sin_lat * cos_lat0 - x * sin_lat0
    if np.all(x_rot > 0):  # within 90 deg of the origin: arctan is 3x cheaper than arctan2
        fov_lon = np.arctan(y / x_rot)
    else:
        fov_lon = np.arctan2(y, x_rot)
    return np.degrees(fov_lon), np.degrees(np.arcsin(np.clip(z_rot, -1.0, 1.0)))


def fov_coordinates(coords: SkyCoord, pointing: SkyCoord, alignment="RADEC", obstime=None, location=None):
    """FoV coordinates of sky positions (see the module docstring for the convention).

    Parameters
    ----------
    coords : `~astropy.coordinates.SkyCoord`
        Sky positions, any frame and shape ``S``.
    pointing : `~astropy.coordinates.SkyCoord`
        Pointing direction (fixed on the sky, e.g. ICRS RA_PNT/DEC_PNT).
    alignment : {"RADEC", "ALTAZ"}
        FoV alignment of the IRF.
    obstime : `~astropy.time.Time`, optional
        Times for ``ALTAZ`` (shape ``T``); the result has shape ``T + S``.
    location : `~astropy.coordinates.EarthLocation`, optional
        Observatory, required for ``ALTAZ``.

    Returns
    -------
    fov_lon, fov_lat : `numpy.ndarray`
        In deg.
    """
    alignment = str(alignment).upper()
    if alignment == "RADEC":
        c = coords.icrs
        p = pointing.icrs
        return _offset_lonlat(c.ra.deg, c.dec.deg, p.ra.deg, p.dec.deg)
    if alignment != "ALTAZ":
        raise ValueError(f"FoV alignment must be 'RADEC' or 'ALTAZ', got {alignment!r}")
    if obstime is None or location is None:
        raise ValueError("ALTAZ FoV coordinates need obstime and the observatory location")
    times = obstime.reshape(obstime.shape + (1,) * coords.ndim) if not obstime.isscalar else obstime
    frame = AltAz(obstime=times, location=location)
    altaz = coords.icrs.transform_to(frame)
    pnt = pointing.icrs.transform_to(AltAz(obstime=obstime, location=location))
    paz = pnt.az.deg.reshape(np.shape(pnt.az.deg) + (1,) * coords.ndim)
    palt = pnt.alt.deg.reshape(np.shape(pnt.alt.deg) + (1,) * coords.ndim)
    lon, lat = _offset_lonlat(altaz.az.deg, altaz.alt.deg, paz, palt)
    return -lon, lat


def altaz_time_steps(gti, pointing: SkyCoord, location, rotation_step="1 deg"):
    """Time steps over the GTI such that the FoV turns by less than ``rotation_step`` in each.

    The field rotation (parallactic angle of the pointing) is followed on a
    60 s sampling; each good time interval is cut where the accumulated
    rotation crosses a multiple of ``rotation_step``.

    Parameters
    ----------
    gti : `~xgamma.data.GTI`
        Good time intervals.
    pointing : `~astropy.coordinates.SkyCoord`
        Tracked sky position.
    location : `~astropy.coordinates.EarthLocation`
        Observatory.
    rotation_step : str, float or `~astropy.units.Quantity`
        Largest FoV rotation per step (plain numbers in deg).

    Returns
    -------
    times : `~astropy.time.Time`
        Middle of each step.
    weights : `numpy.ndarray`
        Duration of each step in s (they sum to the GTI total).
    """
    step = to_value(rotation_step, "deg", "fov_rotation_step")
    if step <= 0:
        raise ValueError(f"fov_rotation_step must be positive, got {step} deg")
    mid, durations = [], []
    for start, stop in zip(gti.met_start, gti.met_stop):  # a handful of intervals, not events
        n_fine = int(np.ceil((stop - start) / _ROTATION_SAMPLING_S)) + 1
        met = np.linspace(start, stop, max(n_fine, 2))
        angle = np.unwrap(np.radians(_north_angle(gti, met, pointing, location)))
        turned = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(np.degrees(angle))))])
        nstep = max(int(np.ceil(turned[-1] / step)), 1)
        edges = np.interp(np.linspace(0.0, turned[-1], nstep + 1), turned, met) if turned[-1] > 0 else np.linspace(
            start, stop, 2
        )
        mid.append(0.5 * (edges[1:] + edges[:-1]))
        durations.append(np.diff(edges))
    met_mid = np.concatenate(mid)
    return gti.time_ref + met_mid * u.s, np.concatenate(durations)


def _north_angle(gti, met, pointing, location):
    """Angle (deg) of celestial north in the ALTAZ FoV frame at the times ``met``."""
    times = gti.time_ref + np.asarray(met) * u.s
    north = SkyCoord(pointing.icrs.ra, pointing.icrs.dec + 0.1 * u.deg, frame="icrs")
    lon, lat = fov_coordinates(north, pointing, "ALTAZ", obstime=times, location=location)
    return np.degrees(np.arctan2(lon, lat))


# ---- background ----------------------------------------------------------------
def integrate_background(bkg, energy_edges, method="edges", **coords) -> np.ndarray:
    """Background rate integrated over reconstructed-energy bins.

    Parameters
    ----------
    bkg : `~xgamma.irf.Background2D` or `~xgamma.irf.Background3D`
        Background model.
    energy_edges : `~astropy.units.Quantity` or array-like
        ``n + 1`` reconstructed-energy edges (plain numbers in TeV).
    method : {"edges", "exact"}
        ``"edges"`` (default, Gammapy's rule, so that fitted background norms
        and statistics compare with its numbers): the power law through the
        rates at each bin's two edges. ``"exact"``: the integral of the
        interpolated table (between table nodes the interpolant is a power
        law in energy, so the power-law rule is applied on the union of the
        bin edges and the table's energy nodes); the two differ by a few
        per cent in bins wider than the table's node spacing.
    **coords : array-like
        The spatial coordinates (``offset`` or ``fov_lon``/``fov_lat``, deg),
        broadcast shape ``S``.

    Returns
    -------
    `numpy.ndarray`
        Shape ``(n,) + S``, in ``s-1 sr-1``.
    """
    edges = np.asarray(to_value(energy_edges, "TeV", "energy_edges"), dtype=float)
    if method == "edges":
        samples, segment_to_bin = edges, None  # the segments are the bins
    elif method == "exact":
        samples, segment_to_bin = _energy_segments(bkg.axes["energy"], edges)
    else:
        raise ValueError(f"background energy integration method must be 'edges' or 'exact', got {method!r}")
    log_rate, shape = _log_rate_by_sample(bkg, coords, samples)  # (nsample, npoint), log(s-1 TeV-1 sr-1)
    segments = power_law_segments_by_row(samples, log_rate, LOG_FLOOR)
    if segment_to_bin is not None:  # sum the segments of each bin (plain sums: BLAS threads cost more here)
        segments = np.stack([segments[in_bin].sum(axis=0) for in_bin in segment_to_bin.T])
    return segments.reshape((edges.size - 1,) + shape)


def _log_rate_by_sample(bkg, coords, samples):
    """Log of the background rate at the points ``coords`` for each energy sample, one row per sample.

    Returns the log rate, shape ``(nsample, npoint)`` (-inf outside the
    table), and the broadcast shape ``S`` of the points. The rows are what
    `power_law_segments_by_row` works on.
    """
    grids, table, points = _tabulate(bkg, coords, {"energy": samples})
    log_values, outside = interpolate_scaled(grids, table, points, values_scale="log")  # S + (nsample,)
    log_rate = np.ascontiguousarray(log_values.reshape(-1, samples.size).T)
    log_rate[:, outside.reshape(-1)] = -np.inf
    return log_rate, outside.shape


def _energy_segments(axis, edges):
    """Energy samples (TeV) for an integral exact for the interpolant, and the segment -> bin matrix.

    Samples are the bin edges and the table's nodes and outer edges inside
    them; ``segment_to_bin[i, j]`` is True when segment ``i`` lies in bin
    ``j`` and inside the table (the rate is 0 beyond it).
    """
    e_lo, e_hi = axis.edges_min.to_value("TeV")[0], axis.edges_max.to_value("TeV")[-1]
    table = np.concatenate([axis.center.to_value("TeV"), [e_lo, e_hi]])
    inside = (table > edges[0]) & (table < edges[-1])
    samples = np.unique(np.concatenate([edges, table[inside]]))
    seg_mid = np.sqrt(samples[1:] * samples[:-1])
    in_table = (seg_mid > e_lo) & (seg_mid < e_hi)
    which = np.searchsorted(edges, seg_mid, side="right") - 1  # bin of each segment
    segment_to_bin = (which[:, None] == np.arange(edges.size - 1)[None, :]) & in_table[:, None]
    return samples, segment_to_bin


def _tabulate(irf, coords, fixed):
    """The IRF on its own nodes of the spatial axes named in ``coords``, at every combination of ``fixed``.

    Returns the interpolation grids of the spatial axes, the table (spatial
    nodes..., fixed values...) in the IRF's output unit, and the points
    (plain arrays in canonical units) to interpolate it at. Because the
    IRF's interpolant is multilinear, interpolating this table to the points
    with the IRF's own rule equals evaluating the IRF at every point, at a
    fraction of the cost.
    """
    spatial = list(coords)
    table = _table(irf, spatial + list(fixed), fixed)  # (nodes..., fixed...)
    grids = [irf._grid()[irf.axis_names.index(name)] for name in spatial]
    points = [np.asarray(to_value(coords[name], CANONICAL_AXIS_UNITS[name], name), dtype=float) for name in spatial]
    return grids, table, points


def _table(irf, order, fixed):
    """The IRF at every combination of the ``fixed`` values and the nodes of its other axes, axes in ``order``.

    Interpolated along the fixed axes only: on a node the interpolant is the
    table value itself. Axes named in neither (single-bin axes) are dropped.
    """
    names = irf.axis_names
    table = irf._table_along(**{name: np.ravel(values) for name, values in fixed.items()})
    index = [names.index(name) for name in order]
    rest = [k for k in range(len(names)) if k not in index]
    return np.transpose(table, index + rest).reshape([table.shape[k] for k in index])


def make_background(bkg, geom, pointing, ontime, *, gti=None, location=None, rotation_step="1 deg",
                    oversampling=None, energy_integration="edges") -> np.ndarray:
    """Predicted background counts from the IRF background rate.

    ``N(E_bin, pixel) = t_obs x dOmega_pixel x integral over E_bin of R(E, fov(pixel)) dE``,
    where ``t_obs`` is the observation time (ONTIME, dead time *included*:
    GADF background rates are counts per observation time, not per livetime).

    Parameters
    ----------
    bkg : `~xgamma.irf.Background2D` or `~xgamma.irf.Background3D`
        Background rate model (s-1 TeV-1 sr-1).
    geom : `~xgamma.geom.WcsGeom`
        Target geometry with one ``energy`` axis.
    pointing : `~astropy.coordinates.SkyCoord`
        Pointing direction.
    ontime : float, str or `~astropy.units.Quantity`
        Observation time (plain numbers in s).
    gti : `~xgamma.data.GTI`, optional
        Good time intervals; needed for an ALTAZ-aligned BKG_3D.
    location : `~astropy.coordinates.EarthLocation`, optional
        Observatory; needed for an ALTAZ-aligned BKG_3D.
    rotation_step : str, float or `~astropy.units.Quantity`
        Largest FoV rotation within one ALTAZ time step (deg). Default 1 deg.
    oversampling : int, optional
        Evaluate the rate on ``oversampling**2`` sub-pixels of each pixel and
        average.
    energy_integration : {"edges", "exact"}
        How the rate is integrated over each energy bin (`integrate_background`).

    Returns
    -------
    `numpy.ndarray`
        Counts, shape ``geom.data_shape`` (energy, y, x).
    """
    (axis,) = geom.axes
    edges = axis.edges.to_value("TeV")
    factor = int(oversampling or 1)
    image = geom.to_image()
    fine = image.upsample(factor) if factor > 1 else image
    lon, lat = fine.get_coord()
    if "offset" in bkg.axis_names:
        rate = integrate_background(bkg, edges, energy_integration, offset=_offset(fine, pointing))
    elif bkg.fov_alignment == "RADEC":
        if fine.frame == "icrs":  # the pixel coordinates are RA, Dec already
            p = pointing.icrs
            fov_lon, fov_lat = _offset_lonlat(lon, lat, p.ra.deg, p.dec.deg)
        else:
            fov_lon, fov_lat = fov_coordinates(SkyCoord(lon, lat, unit="deg", frame=fine.frame), pointing, "RADEC")
        rate = integrate_background(bkg, edges, energy_integration, fov_lon=fov_lon, fov_lat=fov_lat)
    else:
        sky = SkyCoord(lon, lat, unit="deg", frame=fine.frame)
        if gti is None or location is None:
            raise ValueError("an ALTAZ-aligned BKG_3D needs the GTI and the observatory location")
        times, weights = altaz_time_steps(gti, pointing, location, rotation_step)
        fov_lon, fov_lat = fov_coordinates(sky, pointing, "ALTAZ", obstime=times, location=location)
        rate = integrate_background(bkg, edges, energy_integration, fov_lon=fov_lon, fov_lat=fov_lat)  # (E, t, y, x)
        rate = np.tensordot(weights / weights.sum(), rate, axes=([0], [1]))
    counts = rate  # a fresh array: scaled in place
    counts *= fine.solid_angle().values * to_value(ontime, "s", "ontime")
    if factor > 1:
        ne, ny, nx = counts.shape
        counts = counts.reshape(ne, ny // factor, factor, nx // factor, factor).sum(axis=(2, 4))
    return counts


# ---- exposure and reduced IRFs ---------------------------------------------------
def _offset(geom, pointing) -> np.ndarray:
    return geom.separation(pointing).values


def _interpolate_offset(irf, table, offset):
    """Interpolate ``table`` (..., noffset), on the IRF's offset nodes, linearly to the pixel ``offset`` (shape S).

    Returns shape ``(...) + S``, the makers' order, written directly: the
    small table times a matrix of interpolation weights, or (a table with a
    NaN node, or many nodes) the two nodes of every pixel gathered from each
    row. The same linear interpolation as `interpolate` (equal to rounding,
    0 beyond the offset range).
    """
    grid = irf._grid()[irf.axis_names.index("offset")]
    offset = np.asarray(offset, dtype=float)
    idx, weight, outside = grid.weights(offset.reshape(-1))
    rows = table.reshape(-1, grid.nodes.size)
    if 1 < grid.nodes.size <= _MAX_NODES_FOR_MATRIX and np.isfinite(rows).all():
        values = rows @ _offset_weights(idx, weight, grid.nodes.size)
    else:  # one node: its value everywhere; a NaN node spoils only the pixels next to it (in a product, all)
        values = rows.take(idx, axis=1)  # (rows, pixels)
        if grid.nodes.size > 1:
            # lower + w (upper - lower), with the differences taken on the small table
            step = np.diff(rows, axis=1).take(idx, axis=1)
            step *= weight
            values += step
    if not grid.clamp and outside.any():
        values[:, outside] = 0.0
    return values.reshape(table.shape[:-1] + offset.shape)


#: Most offset nodes for which `_interpolate_offset` multiplies by a dense weight matrix (nodes x pixels)
_MAX_NODES_FOR_MATRIX = 32


def _offset_weights(idx, weight, n_nodes) -> np.ndarray:
    """``(n_nodes, npixel)`` matrix of linear interpolation weights: ``1 - w`` on each pixel's lower node, ``w`` on the next.

    A table of rows times it is the interpolation of every row: one BLAS call
    writes the result, about twice as fast as gathering both nodes for every row.
    """
    npixel = idx.size
    matrix = np.zeros(n_nodes * npixel)
    pixels = np.arange(npixel)
    np.put(matrix, idx * npixel + pixels, 1.0 - weight)
    np.put(matrix, (idx + 1) * npixel + pixels, weight)
    return matrix.reshape(n_nodes, npixel)


def make_exposure(aeff, geom, pointing, livetime, energy_axis_true) -> np.ndarray:
    """Exposure ``aeff(E_true, offset of the pixel centre) x livetime``.

    Parameters
    ----------
    aeff : `~xgamma.irf.EffectiveAreaTable2D`
        Effective area.
    geom : `~xgamma.geom.WcsGeom`
        Sky grid (its own axes are ignored).
    pointing : `~astropy.coordinates.SkyCoord`
        Pointing direction.
    livetime : float, str or `~astropy.units.Quantity`
        Live time (plain numbers in s).
    energy_axis_true : `~xgamma.axes.MapAxis`
        True-energy axis; the area is taken at the bin centres.

    Returns
    -------
    `numpy.ndarray`
        Shape ``(energy_true, y, x)``, in cm2 s.
    """
    energy = energy_axis_true.center.to_value("TeV")
    table = _on_offset_nodes(aeff, energy_true=energy)  # (energy_true, offset nodes)
    exposure = _interpolate_offset(aeff, table, _offset(geom, pointing))
    exposure *= to_value(livetime, "s", "livetime")
    return exposure


def _on_offset_nodes(irf, **fixed):
    """The IRF on its offset nodes at every combination of the 1-D ``fixed`` values: shape ``(nfixed..., noffset)``."""
    return _table(irf, list(fixed) + ["offset"], fixed)


def make_psf(psf, geom, pointing, energy_axis_true, rad_axis) -> np.ndarray:
    """PSF density at each pixel's offset, at the true-energy and rad bin centres.

    Returns
    -------
    `numpy.ndarray`
        Shape ``(energy_true, rad, y, x)``, in sr-1.
    """
    energy = energy_axis_true.center.to_value("TeV")
    rad = rad_axis.center.to_value("deg")
    if "rad" not in psf.axis_names:
        # analytic PSFs: a sum over the surrounding table nodes, weighted linearly in offset; evaluated
        # at the offset nodes once, then weighted per pixel (the same sum, not 600 ms of it per cutout)
        nodes = psf.axes["offset"].center.to_value("deg")
        table = psf.evaluate(energy_true=energy[:, None, None], offset=nodes[None, None, :],
                             rad=rad[None, :, None]).to_value("sr-1")  # (energy_true, rad, offset nodes)
    else:
        table = _on_offset_nodes(psf, energy_true=energy, rad=rad)  # (energy_true, rad, offset nodes)
    return _interpolate_offset(psf, table, _offset(geom, pointing))


def _migra_cdf(edisp, energy_true):
    """Cumulative migration probability at the migra edges and offset nodes, shape ``(ntrue, noffset, nmigra + 1)``."""
    migra = edisp.axes["migra"]
    if migra.is_nodes or not migra.is_contiguous:
        raise ValueError("the energy-dispersion kernel needs a contiguous, binned migra axis")
    pdf = _table(edisp, ["energy_true", "offset", "migra"], {"energy_true": energy_true})
    cdf = np.zeros(pdf.shape[:-1] + (pdf.shape[-1] + 1,))
    np.cumsum(pdf * migra.bin_width.value, axis=-1, out=cdf[..., 1:])
    return migra.edges.value, cdf


def make_edisp_kernel(edisp, geom, pointing, energy_axis_true, energy_axis) -> np.ndarray:
    """Reco-energy migration kernel at each pixel's offset.

    Same construction as `~xgamma.irf.EnergyDispersion2D.to_edisp_kernel`
    (density normalised over migra, cumulative integral over the migra bins,
    taken at ``E_reco,edge / E_true,centre``), made at the table's offset
    nodes and interpolated linearly in offset, which is exact because the
    kernel is linear in the density.

    Returns
    -------
    `numpy.ndarray`
        Shape ``(energy_true, energy, y, x)``, dimensionless; sums over
        ``energy`` are <= 1.
    """
    e_true = energy_axis_true.center.to_value("TeV")
    e_reco = energy_axis.edges.to_value("TeV")
    edges, cdf = _migra_cdf(edisp.normalize(), e_true)
    mu = e_reco[None, :] / e_true[:, None]  # (ntrue, nreco + 1)
    pos = np.interp(mu, edges, np.arange(edges.size, dtype=float))
    low = np.clip(np.floor(pos).astype(int), 0, edges.size - 2)
    frac = (pos - low)[:, None, :]
    index = np.broadcast_to(low[:, None, :], cdf.shape[:2] + low.shape[-1:])
    cdf_lo = np.take_along_axis(cdf, index, axis=-1)
    cdf_hi = np.take_along_axis(cdf, index + 1, axis=-1)
    kernel = np.clip(np.diff(cdf_lo + frac * (cdf_hi - cdf_lo), axis=-1), 0.0, None)  # (ntrue, nnode, nreco)
    # the kernel is linear in the density, hence in offset between nodes: interpolate it like the IRF
    return _interpolate_offset(edisp, np.moveaxis(kernel, 1, -1), _offset(geom, pointing))


def make_edisp_migra(edisp, geom, pointing, energy_axis_true, migra_axis) -> np.ndarray:
    """Migration probability per migra bin at each pixel's offset (density x bin width).

    Returns
    -------
    `numpy.ndarray`
        Shape ``(energy_true, migra, y, x)``, dimensionless.
    """
    energy = energy_axis_true.center.to_value("TeV")
    migra = migra_axis.center.value
    normalized = edisp.normalize()
    table = _on_offset_nodes(normalized, energy_true=energy, migra=migra)  # (energy_true, migra, offset nodes)
    density = _interpolate_offset(normalized, table, _offset(geom, pointing))
    density *= migra_axis.bin_width.value[None, :, None, None]
    return density
