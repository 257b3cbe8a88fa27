"""Background rate models (GADF ``BKG_2D`` and ``BKG_3D``).

Background IRFs are count rates per unit observation time, reconstructed
energy and solid angle (file unit usually ``s-1 MeV-1 sr-1``). `evaluate`
returns ``s-1 TeV-1 sr-1``; `integrate_energy` / `evaluate_integrate` return
``s-1 sr-1`` (rate per solid angle in the energy bin).

Interpolation: the logarithm of the rate is interpolated multilinearly in
log energy and in linear offset / FoV coordinates. Along energy the
interpolant between two nodes is therefore the power law through them (the
rate falls by decades with energy); along offset it is geometric (halfway
between two nodes: their geometric mean). Empty (0) nodes are clipped to
float32 ``tiny``, so the rate drops steeply to 0 towards them; 0 outside
the table.
"""

from __future__ import annotations

import logging

import astropy.units as u
import numpy as np

from ..io.fits import read_irf_table
from ..units import quantity, to_value
from .aeff import _given
from .core import IRF

__all__ = ["Background2D", "Background3D", "DEFAULT_FOVALIGN"]

log = logging.getLogger(__name__)

#: Alignment assumed for BKG_3D files without ``FOVALIGN``. The GADF spec
#: says ALTAZ, but HESS DL3-DR1, CTA and Gammapy-written files are RADEC
#: aligned and Gammapy reads a missing keyword as RADEC; xgamma follows the
#: files in the wild and logs a warning.
DEFAULT_FOVALIGN = "RADEC"

_SAMPLES_PER_BIN = 16


class _Background(IRF):
    default_unit = "s-1 MeV-1 sr-1"
    output_unit = "s-1 TeV-1 sr-1"
    data_column = ("BKG", "BGD")
    values_scale = "log"

    def evaluate_integrate(self, energy_min, energy_max, **coords):
        """Rate integrated over reconstructed energy between two bounds.

        Uses the power-law (log-log) rule on 16 log-spaced sub-intervals per
        bin; exact wherever the interpolant is a power law, i.e. between
        table nodes.

        Parameters
        ----------
        energy_min, energy_max : `~astropy.units.Quantity`, str, float or array-like
            Bin bounds (plain numbers in TeV); broadcast with ``coords``.
        **coords
            The other axes (see `evaluate`).

        Returns
        -------
        `~astropy.units.Quantity`
            Rate per solid angle in ``s-1 sr-1``.
        """
        emin = np.asarray(to_value(quantity(energy_min, "TeV"), "TeV", "energy_min"), dtype=float)
        emax = np.asarray(to_value(quantity(energy_max, "TeV"), "TeV", "energy_max"), dtype=float)
        names = [n for n in self.axis_names if n != "energy"]
        other = self._parse_coords(coords, names=names) if names else []
        arrays = np.broadcast_arrays(emin, emax, *other)
        emin, emax, other = arrays[0], arrays[1], arrays[2:]
        steps = np.linspace(0.0, 1.0, _SAMPLES_PER_BIN + 1)
        energies = emin[..., None] * (emax / emin)[..., None] ** steps  # (..., n + 1)
        full = [energies] + [o[..., None] for o in other]
        values = self._evaluate(np.broadcast_arrays(*full))  # in s-1 TeV-1 sr-1
        integral = _integrate_power_law(energies, values)
        return u.Quantity(integral, "s-1 sr-1")

    def integrate_energy(self, energy_edges, **coords):
        """Rate integrated over each bin of ``energy_edges``.

        Parameters
        ----------
        energy_edges : `~astropy.units.Quantity`, str or array-like
            ``n + 1`` reconstructed-energy edges (plain numbers in TeV).
        **coords
            The other axes (see `evaluate`); their broadcast shape ``S``.

        Returns
        -------
        `~astropy.units.Quantity`
            Shape ``(n,) + S``, in ``s-1 sr-1``.
        """
        edges = np.asarray(to_value(quantity(energy_edges, "TeV"), "TeV", "energy_edges"), dtype=float)
        names = [n for n in self.axis_names if n != "energy"]
        ndim = np.broadcast(*self._parse_coords(coords, names=names)).ndim if names else 0
        shape = (-1,) + (1,) * ndim
        return self.evaluate_integrate(edges[:-1].reshape(shape), edges[1:].reshape(shape), **coords)


def power_law_segments_from_log(x, log_y, log_floor=-np.inf):
    """Integral of ``y(x)`` over each segment between consecutive samples (last axis), given ``log(y)``.

    Between samples ``y`` is the power law through both end points; where an
    end point is 0 (``log_y <= log_floor``) the trapezoid rule is used instead.
    Taking the log (log-interpolated rates have it) saves a log per sample.

    Parameters
    ----------
    x : `numpy.ndarray`
        Sample positions, > 0, broadcastable to ``log_y`` (a 1-D array of
        the last axis is cheapest).
    log_y : `numpy.ndarray`
        Log of the sample values.
    log_floor : float
        ``y`` is 0 at or below this log value.

    Returns
    -------
    `numpy.ndarray`
        Shape of ``log_y`` with the last axis one shorter.

    Notes
    -----
    For ``y = y0 (x / x0)**k`` the integral from ``x0`` to ``x1`` is
    ``(x1 y1 - x0 y0) / (k + 1)`` with ``k + 1 = d / ln(x1 / x0)`` and
    ``d = ln(x1 y1) - ln(x0 y0)``: one exponential per sample, not per
    segment. Where ``|d|`` is small that difference cancels, and the series
    of ``x0 y0 ln(x1 / x0) (exp(d) - 1) / d`` is used instead.
    """
    x = np.asarray(x, dtype=float)
    log_ratio = np.log(x[..., 1:] / x[..., :-1])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_xy = log_y + np.log(x)
        zero = log_y <= log_floor  # NaN stays NaN below
        xy = np.where(zero, 0.0, np.exp(log_xy))
        d = log_xy[..., 1:] - log_xy[..., :-1]
        segments = (xy[..., 1:] - xy[..., :-1]) / d
        segments *= log_ratio
        small = np.abs(d) < _SERIES_BELOW
        if small.any():
            start = np.broadcast_to(xy[..., :-1] * log_ratio, d.shape)[small]
            segments[small] = _series_segment(start, d[small])
        # a segment with an end at 0 is no power law: trapezoid rule
        end_at_zero = zero[..., :-1] | zero[..., 1:]
        if end_at_zero.any():
            x0, x1 = (np.broadcast_to(v, d.shape)[end_at_zero] for v in (x[..., :-1], x[..., 1:]))
            y0, y1 = (np.broadcast_to(v, d.shape)[end_at_zero] for v in (xy[..., :-1], xy[..., 1:]))
            segments[end_at_zero] = _trapezoid_segment(x0, x1, y0, y1)
    return segments


def power_law_segments_by_row(x, log_y, log_floor=-np.inf):
    """`power_law_segments_from_log` with the samples along the first axis: ``log_y[i]`` at ``x[i]``.

    Same numbers, computed one pair of rows at a time: for many points
    (``log_y`` of shape ``(n, npoint)``, ``npoint`` large) the rows stay in
    the CPU cache, which makes it about twice as fast as whole-array passes.

    Parameters
    ----------
    x : `numpy.ndarray`
        The ``n`` sample positions, 1-D, > 0.
    log_y : `numpy.ndarray`
        Shape ``(n, npoint)``.
    log_floor : float
        ``y`` is 0 at or below this log value.

    Returns
    -------
    `numpy.ndarray`
        Shape ``(n - 1, npoint)``.
    """
    x = np.asarray(x, dtype=float)
    log_x = np.log(x)
    log_ratio = np.log(x[1:] / x[:-1])
    segments = np.empty((x.size - 1,) + log_y.shape[1:])
    previous = None
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in range(x.size):
            log_xy = log_y[i] + log_x[i]
            xy = np.exp(log_xy)
            zero = log_y[i] <= log_floor  # NaN stays NaN below
            has_zero = bool(zero.any())
            if has_zero:
                xy[zero] = 0.0
            if previous is not None:
                previous_log_xy, previous_xy, previous_zero, previous_has_zero = previous
                segment = segments[i - 1]
                d = np.subtract(log_xy, previous_log_xy, out=previous_log_xy)  # that row is done with
                np.subtract(xy, previous_xy, out=segment)
                segment /= d
                segment *= log_ratio[i - 1]
                small = np.flatnonzero(np.abs(d) < _SERIES_BELOW)
                if small.size:
                    segment[small] = _series_segment(previous_xy[small] * log_ratio[i - 1], d[small])
                if has_zero or previous_has_zero:  # a segment with an end at 0 is no power law
                    ends = np.flatnonzero(zero | previous_zero)
                    segment[ends] = _trapezoid_segment(x[i - 1], x[i], previous_xy[ends], xy[ends])
            previous = log_xy, xy, zero, has_zero
    return segments


def _series_segment(start, d):
    """Power-law segment from ``start = x0 y0 ln(x1 / x0)`` for small ``d`` (see `power_law_segments_from_log`)."""
    return start * (1 + d / 2 * (1 + d / 3 * (1 + d / 4)))


def _trapezoid_segment(x0, x1, xy0, xy1):
    """Trapezoid rule for a segment with an end at 0, from ``x y`` at both ends."""
    return 0.5 * (x1 - x0) * (xy0 / x0 + xy1 / x1)


#: Below this ``|d|`` (see `power_law_segments_from_log`) the segment integral uses a
#: series (truncation error ``d**4 / 120``) instead of a difference (rounding error ``~1e-16 / d``).
_SERIES_BELOW = 1e-3


def _integrate_power_law(x, y):
    """Integral of y(x) >= 0 over the samples along the last axis, power law between samples."""
    with np.errstate(divide="ignore"):
        log_y = np.log(np.maximum(y, 0.0))  # -inf (no power law) where y is 0
    return power_law_segments_from_log(x, log_y).sum(axis=-1)


class Background2D(_Background):
    """Background rate versus reconstructed energy and FoV offset (radially symmetric).

    Parameters
    ----------
    data : `xarray.DataArray`
        Dims ``energy``, ``offset``.
    """

    tag = "bkg_2d"
    axis_names = ("energy", "offset")
    gadf_axes = {"ENERG": "energy", "THETA": "offset"}

    def evaluate(self, energy=None, offset=None):
        """Background rate.

        Parameters
        ----------
        energy : `~astropy.units.Quantity`, str, float or array-like
            Reconstructed energy (plain numbers in TeV).
        offset : `~astropy.units.Quantity`, str, float or array-like
            FoV offset (plain numbers in deg).

        Returns
        -------
        `~astropy.units.Quantity`
            Rate in ``s-1 TeV-1 sr-1``.
        """
        return super().evaluate(**_given(energy=energy, offset=offset))


class Background3D(_Background):
    """Background rate versus reconstructed energy and FoV coordinates.

    ``DETX`` becomes ``fov_lon`` and ``DETY`` ``fov_lat``. Arrays stored
    with energy as the slowest axis (numpy axis 0, as in the H.E.S.S. DR1 and
    CTA 1DC files) hold the FoV axes in the order DETX, DETY of the spec's
    recommended axis order, not in the reverse of the column order: the
    H.E.S.S. empty-field runs fit this orientation far better (see
    ``tests/test_irf_physics.py``), and Gammapy reads them the same way. The FoV
    alignment (``attrs['FOVALIGN']``: ``RADEC`` or ``ALTAZ``) is taken from
    the header; when it is missing, `DEFAULT_FOVALIGN` (RADEC) is assumed,
    ``attrs['FOVALIGN_ASSUMED']`` is set to True and a warning is logged.

    Parameters
    ----------
    data : `xarray.DataArray`
        Dims ``energy``, ``fov_lon``, ``fov_lat``.
    """

    tag = "bkg_3d"
    axis_names = ("energy", "fov_lon", "fov_lat")
    gadf_axes = {"ENERG": "energy", "DETX": "fov_lon", "DETY": "fov_lat"}

    @classmethod
    def from_hdu(cls, hdu_data):
        table = read_irf_table(hdu_data, axes=tuple(cls.gadf_axes), data_columns=[cls.data_column])
        (values, unit, dims), = table.data.values()
        if dims[0] == "ENERG" and table.axes["DETX"][0].size == table.axes["DETY"][0].size:
            dims = ("ENERG", "DETX", "DETY")  # C order of the recommended axis order (see the class docstring)
        return cls._from_table(table, values, unit, dims, hdu_data)

    @classmethod
    def _meta_from_header(cls, hdu_data) -> dict:
        meta = super()._meta_from_header(hdu_data)
        if "FOVALIGN" in meta:
            meta["FOVALIGN"] = meta["FOVALIGN"].upper()
            meta["FOVALIGN_ASSUMED"] = False
        else:
            log.warning(
                "%s[%s]: BKG_3D has no FOVALIGN keyword; assuming %s (GADF default would be ALTAZ)",
                hdu_data.filename,
                hdu_data.name,
                DEFAULT_FOVALIGN,
            )
            meta["FOVALIGN"] = DEFAULT_FOVALIGN
            meta["FOVALIGN_ASSUMED"] = True
        return meta

    @property
    def fov_alignment(self) -> str:
        """``RADEC`` or ``ALTAZ``."""
        return self._attrs.get("FOVALIGN", DEFAULT_FOVALIGN)

    def evaluate(self, energy=None, fov_lon=None, fov_lat=None):
        """Background rate.

        Parameters
        ----------
        energy : `~astropy.units.Quantity`, str, float or array-like
            Reconstructed energy (plain numbers in TeV).
        fov_lon, fov_lat : `~astropy.units.Quantity`, str, float or array-like
            FoV coordinates in the `fov_alignment` frame (plain numbers in deg).

        Returns
        -------
        `~astropy.units.Quantity`
            Rate in ``s-1 TeV-1 sr-1``.
        """
        return super().evaluate(**_given(energy=energy, fov_lon=fov_lon, fov_lat=fov_lat))
