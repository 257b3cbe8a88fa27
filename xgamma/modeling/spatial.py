"""Spatial models: sky brightness normalised to 1 over the sky.

Which one to use when:

- `PointSpatialModel`: a source much smaller than the PSF.
- `GaussianSpatialModel`: the usual extended source (optionally elongated);
  `GeneralizedGaussianSpatialModel` when the profile is peakier (``eta`` ->
  1, exponential) or flatter (``eta`` -> 0, disk-like) than a Gaussian.
- `DiskSpatialModel`: a uniform disk or ellipse with a smooth edge.
- `ShellSpatialModel` / `Shell2SpatialModel`: the projection of a uniformly
  emitting spherical shell (a supernova remnant); the first takes inner
  radius and width, the second outer radius and relative width.
- `ConstantSpatialModel`: isotropic emission (brightness in sr-1, not
  normalised).
- `TemplateSpatialModel`: a map (e.g. a diffuse emission model), optionally
  energy dependent.

Every model has a ``frame`` (``"icrs"`` or ``"galactic"``) in which its
parameters are given, ``evaluate(lon, lat, **parameters)`` on plain float deg
arrays returning the brightness in sr-1, and `SpatialModel.integrate_geom`,
the fraction of the model's flux in each pixel of a `~xgamma.geom.WcsGeom`
(what forward folding multiplies by the flux). The target geometry may be in
another frame: pixel coordinates are moved to the model frame once per call.

Elongated models use the eccentricity ``e`` (minor axis = major axis x
sqrt(1 - e**2)) and the position angle ``phi`` of the major axis, east of
north; ``sigma`` and ``r_0`` are the semi-major axes. Normalisations are
exact on the sphere (the published flat-sky ones are their small-angle limit).
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import xarray as xr
from astropy.coordinates import SkyCoord
from scipy.ndimage import map_coordinates
from scipy.special import roots_legendre

from ..geom import WcsGeom
from ..geom.wcs import angular_separation, lonlat_deg
from ..units import to_value
from .core import Model, ModelError
from .parameter import Parameter
from .spatial_sampling import (
    footprint_box,
    integrate_over_pixels,
    lonlat_in_frame,
    point_fractions,
)

__all__ = [
    "ConstantSpatialModel",
    "DiskSpatialModel",
    "GaussianSpatialModel",
    "GeneralizedGaussianSpatialModel",
    "PointSpatialModel",
    "Shell2SpatialModel",
    "ShellSpatialModel",
    "SpatialModel",
    "TemplateSpatialModel",
]

FRAMES = ("icrs", "galactic")
# sub-pixel samples per model length scale (`SpatialModel.sampling_scale`)
SAMPLES_PER_SCALE = 4
# finer than this, a model is integrated as a point source
MAX_OVERSAMPLING = 4096
# slope of the disk edge: brightness falls from 95 % to 5 % over the edge width
_EDGE_SLOPE = 2 * np.arctanh(0.9)
# directions sampled to normalise elongated models (periodic trapezoid rule)
_N_DIRECTIONS = 512
_GAUSS_LEGENDRE = roots_legendre(96)


# ---- geometry on the sphere -------------------------------------------------
def position_angle(lon_0, lat_0, lon, lat):
    """Position angle (rad, east of north) at ``(lon_0, lat_0)`` of the direction to ``(lon, lat)`` (deg)."""
    lon_0, lat_0, lon, lat = (np.radians(v) for v in (lon_0, lat_0, lon, lat))
    dlon = lon - lon_0
    return np.arctan2(np.sin(dlon) * np.cos(lat), np.cos(lat_0) * np.sin(lat) - np.sin(lat_0) * np.cos(lat) * np.cos(dlon))


def _ellipse_radius(angle_from_major, r_major, e):
    """Radius of an ellipse (semi-major ``r_major``, eccentricity ``e``) in a direction (rad from the major axis)."""
    r_minor = r_major * np.sqrt(1 - e**2)
    return r_major * r_minor / np.hypot(r_minor * np.cos(angle_from_major), r_major * np.sin(angle_from_major))


def _directional_radius(lon, lat, lon_0, lat_0, r_major, e, phi):
    """Radius (deg) of the model ellipse in the direction of each ``(lon, lat)``."""
    if e == 0:
        return r_major
    return _ellipse_radius(position_angle(lon_0, lat_0, lon, lat) - np.radians(phi), r_major, e)


def _one_minus_cos_separation(lon, lat, lon_0, lat_0):
    """``1 - cos(theta)``, theta the distance between two positions (deg), by the haversine formula.

    Exact at all distances and without the cancellation of ``1 - cos`` at
    small ones; a third of the trigonometry of `angular_separation`.
    """
    lat, lat_0 = np.radians(lat), np.radians(lat_0)
    half_dlat, half_dlon = 0.5 * (lat - lat_0), np.radians(0.5 * (np.asarray(lon) - lon_0))
    return 2 * (np.sin(half_dlat) ** 2 + np.cos(lat) * np.cos(lat_0) * np.sin(half_dlon) ** 2)


def _sky_integral(radial_integral, r_major, e):
    """Integral over the sphere of a profile whose radius depends on direction.

    ``radial_integral(R)`` (R in rad, array) is the integral of the profile
    of radius ``R`` times ``sin(theta) d theta`` over ``theta``; the result
    is its integral over directions (2 pi for a circular model).
    """
    r_major = np.radians(r_major)
    if e == 0:
        return 2 * np.pi * float(radial_integral(np.atleast_1d(r_major))[0])
    angles = np.arange(_N_DIRECTIONS) * (2 * np.pi / _N_DIRECTIONS)
    return 2 * np.pi * float(np.mean(radial_integral(_ellipse_radius(angles, r_major, e))))


def _gauss_legendre(func, lo, hi):
    """``integral_lo^hi func(t) dt`` for arrays of intervals (96-point Gauss-Legendre)."""
    nodes, weights = _GAUSS_LEGENDRE
    lo, hi = np.asarray(lo, dtype=float)[..., None], np.asarray(hi, dtype=float)[..., None]
    t = 0.5 * (hi - lo) * nodes + 0.5 * (hi + lo)
    return np.sum(weights * func(t), axis=-1) * 0.5 * (hi - lo)[..., 0]


# ---- the family base ------------------------------------------------------------
class SpatialModel(Model):
    """Base of spatial models: a brightness on the sky, in sr-1.

    Parameters
    ----------
    frame : {"icrs", "galactic"}
        Frame of the position parameters. Default ``"icrs"``.
    **parameters
        Parameter values (floats in the declared unit, Quantities or strings).
    """

    _registry = {}
    is_normalized = True  # integrates to 1 over the sky

    def __init__(self, frame="icrs", **parameters):
        if frame not in FRAMES:
            raise ValueError(f"{type(self).__name__}: frame must be one of {FRAMES}, got {frame!r}")
        self.frame = frame
        super().__init__(**parameters)

    # ---- position and extent -----------------------------------------
    @property
    def position(self) -> SkyCoord | None:
        """Centre of the model in its frame (None for models without one)."""
        if "lon_0" not in self._parameters:
            return None
        return SkyCoord(self.lon_0.value, self.lat_0.value, unit="deg", frame=self.frame)

    @position.setter
    def position(self, position):
        self.lon_0.value, self.lat_0.value = (float(v) for v in lonlat_deg(position, self.frame))

    @property
    def evaluation_radius(self) -> float | None:
        """Radius (deg) beyond which the brightness is negligible; None: the whole sky."""
        return None

    @property
    def sampling_scale(self) -> float:
        """Smallest angular scale (deg) of the brightness profile: sub-pixel sampling resolves it."""
        return np.inf

    # ---- evaluation ----------------------------------------------------
    def __call__(self, lon, lat):
        """Brightness (sr-1) at ``lon``, ``lat`` (deg, Quantities or strings) in the model frame."""
        lon, lat = np.asarray(to_value(lon, "deg", "lon")), np.asarray(to_value(lat, "deg", "lat"))
        return self.evaluate(lon, lat, **self.parameter_values)

    def _brightness_in(self, frame):
        """``brightness(lon, lat)`` taking deg coordinates in ``frame``."""
        values = self.parameter_values

        def brightness(lon, lat):
            return self.evaluate(*lonlat_in_frame(lon, lat, frame, self.frame), **values)

        return brightness

    def evaluate_geom(self, geom: WcsGeom) -> xr.DataArray:
        """Brightness at the pixel centres of ``geom``.

        Returns
        -------
        `xarray.DataArray`
            Dims ``("y", "x")``, in sr-1, with the geometry's ``wcs`` attr.
        """
        lon, lat = geom.get_coord()
        return geom.to_image().to_dataarray(self._brightness_in(geom.frame)(lon, lat), unit="sr-1")

    def integrate_geom(self, geom: WcsGeom) -> xr.DataArray:
        """Fraction of the model's flux in each pixel of ``geom``.

        Pixels are split into sub-pixels finer than `sampling_scale` (the
        midpoint rule on them), only within `evaluation_radius` of the model;
        a model finer than 1/4096 of a pixel is integrated as a point source.

        Parameters
        ----------
        geom : `~xgamma.geom.WcsGeom`
            Target geometry, in any frame and projection; its non-spatial
            axes are ignored (except by energy-dependent templates).

        Returns
        -------
        `xarray.DataArray`
            Dims ``("y", "x")`` (``("energy_true", "y", "x")`` for an
            energy-dependent template), dimensionless; sums to 1 over a
            geometry covering the whole model (value x solid angle for
            `ConstantSpatialModel`).
        """
        return geom.to_image().to_dataarray(self._integrate_pixels(geom), unit="")

    def integrate_geom_values(self, geom: WcsGeom) -> np.ndarray:
        """`integrate_geom` as a plain array, without labels (the forward folder's fast path)."""
        return self._integrate_pixels(geom)

    def _integrate_pixels(self, geom) -> np.ndarray:
        spacing = self.sampling_scale / SAMPLES_PER_SCALE
        oversampling = int(np.ceil(max(geom.binsz) / spacing)) if spacing > 0 else MAX_OVERSAMPLING + 1
        if oversampling > MAX_OVERSAMPLING:
            if geom.frame == self.frame:  # skip a SkyCoord round trip: this runs in every fit call
                return point_fractions(geom, self.lon_0.value, self.lat_0.value)
            return point_fractions(geom, *lonlat_deg(self.position, geom.frame))
        box = footprint_box(geom, self.lon_0.value, self.lat_0.value, self.evaluation_radius, self.frame)
        if box is None:
            return np.zeros(geom.npix[::-1])
        return integrate_over_pixels(geom, self._brightness_in(geom.frame), box, oversampling)

    # ---- YAML ----------------------------------------------------------
    def to_dict(self, full_output: bool = False) -> dict:
        """``{"type", "frame", "parameters"}``, as Gammapy writes a spatial model."""
        data = super().to_dict(full_output)
        return {"type": data["type"], "frame": self.frame, "parameters": data["parameters"]}

    @classmethod
    def _from_dict(cls, data: dict) -> SpatialModel:
        model = cls(frame=data.get("frame", "icrs"))
        model._update_parameters(data.get("parameters", []))
        return model


class _CentredModel(SpatialModel):
    """A model with a centre ``lon_0``, ``lat_0`` (deg, in the model frame)."""

    lon_0 = Parameter("lon_0", 0.0, "deg")
    lat_0 = Parameter("lat_0", 0.0, "deg", min=-90, max=90)


# ---- models ------------------------------------------------------------------------
class PointSpatialModel(_CentredModel):
    """A point source at ``lon_0``, ``lat_0``.

    `integrate_geom` shares the flux between the four pixels around the
    position with bilinear weights: the centroid is exact and the map varies
    smoothly with the position (see `~xgamma.modeling.spatial_sampling.point_fractions`).
    """

    tag = ["PointSpatialModel", "point"]

    @property
    def evaluation_radius(self) -> float:
        return 0.0

    @property
    def sampling_scale(self) -> float:
        return 0.0

    @staticmethod
    def evaluate(lon, lat, lon_0, lat_0):
        """Dirac delta: infinite at the position, 0 elsewhere (sr-1)."""
        at_position = angular_separation(lon, lat, lon_0, lat_0) == 0
        return np.where(at_position, np.inf, 0.0)

    def evaluate_geom(self, geom: WcsGeom) -> xr.DataArray:
        """Mean brightness in each pixel (sr-1): `integrate_geom` over the pixel solid angle."""
        fractions = self.integrate_geom(geom)
        return (fractions / geom.solid_angle()).assign_attrs(units="sr-1", wcs=fractions.attrs["wcs"])


class GaussianSpatialModel(_CentredModel):
    """Gaussian on the sphere, optionally elongated.

    ``f = N exp(-(1 - cos theta) / (2 (1 - cos sigma_eff)))``, ``theta`` the
    distance to the centre and ``sigma_eff`` the radius, in that direction,
    of the ellipse of semi-major axis ``sigma``, eccentricity ``e`` and
    position angle ``phi``. For small angles this is the 2-D Gaussian
    ``exp(-theta**2 / (2 sigma_eff**2)) / (2 pi sigma**2 sqrt(1 - e**2))``.
    """

    tag = ["GaussianSpatialModel", "gauss"]
    sigma = Parameter("sigma", 1.0, "deg", min=0)
    e = Parameter("e", 0.0, "", min=0, max=1, frozen=True)
    phi = Parameter("phi", 0.0, "deg", frozen=True)

    @property
    def evaluation_radius(self) -> float:
        return 5 * self.sigma.value  # exp(-12.5): 4e-6 of the flux lies beyond

    @property
    def sampling_scale(self) -> float:
        return self.sigma.value * np.sqrt(1 - self.e.value**2)

    @staticmethod
    def _radial_integral(radius):
        # integral of exp(-(1 - cos t) / 2a) sin t dt over [0, pi], a = 1 - cos(radius)
        a = 1 - np.cos(radius)
        return 2 * a * -np.expm1(-1 / a)

    @classmethod
    def evaluate(cls, lon, lat, lon_0, lat_0, sigma, e, phi):
        """Brightness (sr-1) at ``lon``, ``lat`` (deg); parameters in deg (``e`` dimensionless)."""
        sigma_eff = np.radians(_directional_radius(lon, lat, lon_0, lat_0, sigma, e, phi))
        norm = 1 / _sky_integral(cls._radial_integral, sigma, e)
        return norm * np.exp(-_one_minus_cos_separation(lon, lat, lon_0, lat_0) / (2 * (1 - np.cos(sigma_eff))))


class GeneralizedGaussianSpatialModel(_CentredModel):
    """Generalized Gaussian: ``f = N exp(-(theta / r_eff)**(1 / eta))``.

    ``eta = 0.5`` is a Gaussian of sigma ``r_0 / sqrt(2)``, ``eta = 1`` an
    exponential, ``eta -> 0`` a disk. ``r_eff`` is the radius, in the
    direction of the point, of the ellipse of semi-major axis ``r_0``. For
    small angles ``N = 1 / (2 pi r_0**2 sqrt(1 - e**2) eta Gamma(2 eta))``.
    """

    tag = ["GeneralizedGaussianSpatialModel", "gauss-general"]
    r_0 = Parameter("r_0", 1.0, "deg", min=0)
    eta = Parameter("eta", 0.5, "", min=0.01, max=1)
    e = Parameter("e", 0.0, "", min=0, max=1, frozen=True)
    phi = Parameter("phi", 0.0, "deg", frozen=True)

    # the profile is below exp(-40) beyond t = 40**eta radii
    _TAIL_EXPONENT = 40.0

    @property
    def evaluation_radius(self) -> float:
        return self.r_0.value * 15.0**self.eta.value  # exp(-15): < 1e-5 of the flux beyond

    @property
    def sampling_scale(self) -> float:
        # the profile falls from 1/e over a fraction ~eta of the radius
        minor = self.r_0.value * np.sqrt(1 - self.e.value**2)
        return minor * min(1.0, max(self.eta.value, 1 / 75))

    @classmethod
    def _radial_integral_for(cls, eta):
        def radial_integral(radius):
            # theta = radius * t; panels split at t = 1 where a small-eta profile drops
            t_max = np.minimum(cls._TAIL_EXPONENT**eta, np.pi / radius)
            t_mid = np.minimum(1.0, t_max)

            def integrand(t):
                return np.exp(-(t ** (1 / eta))) * np.sin(radius[:, None] * t) * radius[:, None]

            return _gauss_legendre(integrand, 0.0, t_mid) + _gauss_legendre(integrand, t_mid, t_max)

        return radial_integral

    @classmethod
    def evaluate(cls, lon, lat, lon_0, lat_0, r_0, eta, e, phi):
        """Brightness (sr-1) at ``lon``, ``lat`` (deg); ``r_0``, ``phi`` in deg."""
        theta = angular_separation(lon, lat, lon_0, lat_0)
        r_eff = _directional_radius(lon, lat, lon_0, lat_0, r_0, e, phi)
        norm = 1 / _sky_integral(cls._radial_integral_for(eta), r_0, e)
        return norm * np.exp(-((theta / r_eff) ** (1 / eta)))


def _smooth_edge(distance, width):
    """1 inside, 0 outside, falling from 0.95 to 0.05 over ``width`` around ``distance = 0``."""
    if width == 0:
        return np.where(distance <= 0, 1.0, 0.0)
    return 0.5 * (1 - np.tanh(_EDGE_SLOPE * distance / width))


class DiskSpatialModel(_CentredModel):
    """Uniform disk (or ellipse) with a smooth edge.

    ``f = N s(theta - r_eff)``: ``r_eff`` is the radius of the ellipse of
    semi-major axis ``r_0`` in the direction of the point and ``s`` falls
    from 95 % to 5 % over ``edge_width x r_0``, centred on the ellipse
    (``s = (1 - tanh(2 atanh(0.9) x / width)) / 2``).
    """

    tag = ["DiskSpatialModel", "disk"]
    r_0 = Parameter("r_0", 1.0, "deg", min=0)
    e = Parameter("e", 0.0, "", min=0, max=1, frozen=True)
    phi = Parameter("phi", 0.0, "deg", frozen=True)
    edge_width = Parameter("edge_width", 0.01, "", min=0, max=1, frozen=True)

    @property
    def evaluation_radius(self) -> float:
        return self.r_0.value * (1 + 3 * self.edge_width.value)  # edge below 3e-8 beyond

    @property
    def sampling_scale(self) -> float:
        minor = self.r_0.value * np.sqrt(1 - self.e.value**2)
        # resolve the edge; a sharp edge is sampled at 1/300 of the radius
        return float(np.clip(self.edge_width.value * self.r_0.value, minor / 75, minor))

    @staticmethod
    def _radial_integral_for(width):
        def radial_integral(radius):
            # inside radius - 12/slope the edge is 1 to 1e-10: integrate sin exactly there
            reach = 12 * width / _EDGE_SLOPE
            inner = np.clip(radius - reach, 0, np.pi)
            outer = np.clip(radius + reach, 0, np.pi)
            edge = _gauss_legendre(lambda t: _smooth_edge(t - radius[:, None], width) * np.sin(t), inner, outer)
            return 1 - np.cos(inner) + edge

        return radial_integral

    @classmethod
    def evaluate(cls, lon, lat, lon_0, lat_0, r_0, e, phi, edge_width):
        """Brightness (sr-1) at ``lon``, ``lat`` (deg); ``r_0``, ``phi`` in deg."""
        theta = angular_separation(lon, lat, lon_0, lat_0)
        r_eff = _directional_radius(lon, lat, lon_0, lat_0, r_0, e, phi)
        width = edge_width * r_0
        norm = 1 / _sky_integral(cls._radial_integral_for(np.radians(width)), r_0, e)
        return norm * _smooth_edge(theta - r_eff, width)


def _shell_profile(theta, r_in, r_out):
    """Projected thickness of a shell between radii ``r_in`` and ``r_out`` at distance ``theta`` (same unit)."""
    outer = np.sqrt(np.clip(r_out**2 - theta**2, 0, None))
    inner = np.sqrt(np.clip(r_in**2 - theta**2, 0, None))
    return outer - inner


def _ball_integral(radius):
    """Integral over the sphere (sr rad) of ``sqrt(R**2 - theta**2)`` for ``theta < R`` (R in rad).

    With ``theta = R sin(u)`` the square root disappears:
    ``2 pi R**2 integral_0^(pi/2) cos(u)**2 sin(R sin u) du``; ``2 pi R**3 / 3`` for small R.
    """
    def integrand(u):
        return np.cos(u) ** 2 * np.sin(radius * np.sin(u))

    return 2 * np.pi * radius**2 * float(_gauss_legendre(integrand, 0.0, np.pi / 2))


def _shell_brightness(theta, r_in, r_out):
    """Normalised brightness (sr-1) of a shell projection; angles in deg."""
    r_in_rad, r_out_rad = np.radians(r_in), np.radians(r_out)
    norm = 1 / (_ball_integral(r_out_rad) - _ball_integral(r_in_rad))
    return norm * _shell_profile(np.radians(theta), r_in_rad, r_out_rad)


def _shell_sampling_scale(r_in, r_out):
    """Sub-pixel scale (deg) resolving a shell's rim; at least 1/75 of its outer radius.

    The rim has square-root cusps (infinite slope), so a quarter of the width is resolved.
    """
    return float(np.clip((r_out - r_in) / 4, r_out / 75, r_out))


class ShellSpatialModel(_CentredModel):
    """Projection of a uniformly emitting spherical shell.

    Inner radius ``radius``, outer radius ``radius + width``: ``f = N
    (sqrt(r_out**2 - theta**2) - sqrt(r_in**2 - theta**2))`` (each root 0
    where its argument is negative), ``N = 3 / (2 pi (r_out**3 - r_in**3))``
    for small angles.
    """

    tag = ["ShellSpatialModel", "shell"]
    radius = Parameter("radius", 1.0, "deg", min=0)
    width = Parameter("width", 0.2, "deg", min=0)

    @property
    def evaluation_radius(self) -> float:
        return self.radius.value + self.width.value

    @property
    def sampling_scale(self) -> float:
        return _shell_sampling_scale(self.radius.value, self.radius.value + self.width.value)

    @staticmethod
    def evaluate(lon, lat, lon_0, lat_0, radius, width):
        """Brightness (sr-1) at ``lon``, ``lat`` (deg); ``radius``, ``width`` in deg."""
        return _shell_brightness(angular_separation(lon, lat, lon_0, lat_0), radius, radius + width)


class Shell2SpatialModel(_CentredModel):
    """`ShellSpatialModel` given by its outer radius ``r_0`` and relative width ``eta``.

    Inner radius ``r_0 (1 - eta)``.
    """

    tag = ["Shell2SpatialModel", "shell2"]
    r_0 = Parameter("r_0", 1.0, "deg", min=0)
    eta = Parameter("eta", 0.2, "", min=0.02, max=1)

    @property
    def evaluation_radius(self) -> float:
        return self.r_0.value

    @property
    def sampling_scale(self) -> float:
        return _shell_sampling_scale(self.r_0.value * (1 - self.eta.value), self.r_0.value)

    @staticmethod
    def evaluate(lon, lat, lon_0, lat_0, r_0, eta):
        """Brightness (sr-1) at ``lon``, ``lat`` (deg); ``r_0`` in deg."""
        return _shell_brightness(angular_separation(lon, lat, lon_0, lat_0), r_0 * (1 - eta), r_0)


class ConstantSpatialModel(SpatialModel):
    """Isotropic brightness ``value`` (sr-1), not normalised.

    `integrate_geom` gives ``value x`` pixel solid angle.
    """

    tag = ["ConstantSpatialModel", "const"]
    is_normalized = False
    value = Parameter("value", 1.0, "sr-1", frozen=True)

    @staticmethod
    def evaluate(lon, lat, value):
        """``value`` (sr-1) everywhere, broadcast to the shape of ``lon``."""
        return np.full(np.shape(lon), value, dtype=float)

    def _integrate_pixels(self, geom) -> np.ndarray:
        return self.value.value * np.nan_to_num(geom.solid_angle().values)


# ---- templates ---------------------------------------------------------------------
def _read_map(filename):
    from ..io.fits_map import (
        read_map_fits,  # the io layer imports geometry; keep this module light
    )

    return read_map_fits(filename)


class TemplateSpatialModel(SpatialModel):
    """A sky map as a spatial model, optionally energy dependent.

    Parameters
    ----------
    map : `xarray.DataArray`, str or path
        WCS map with dims ``("y", "x")`` or ``("energy_true", "y", "x")``
        (see `~xgamma.geom.WcsGeom.to_dataarray`), or a FITS map file read
        with `~xgamma.io.fits_map.read_map_fits`.
    normalize : bool
        Scale the map (each energy plane separately) so that it integrates
        to 1 over the sky. Default True. If False the map must be a
        brightness convertible to sr-1.
    filename : str, optional
        Where the map is stored: written in the YAML dict. Defaults to
        ``map`` when that is a path.

    Notes
    -----
    The brightness between pixel centres is interpolated bilinearly (flat
    beyond the outermost centres, up to the map edge, zero outside), so the
    interpolated map has exactly the integral of the pixel values. Between
    energy planes it is interpolated linearly in log(energy), which keeps
    every plane normalised; outside the energy range the end planes are used.
    """

    tag = ["TemplateSpatialModel", "template"]

    def __init__(self, map, normalize=True, filename=None):
        if isinstance(map, (str, Path)):
            filename = str(map) if filename is None else filename
            map = _read_map(map)
        self.geom = WcsGeom.from_dataarray(map).to_image()
        if self.geom.frame not in FRAMES:
            raise ValueError(f"TemplateSpatialModel: map frame {self.geom.frame!r} is not one of {FRAMES}")
        extra = [d for d in map.dims if d not in ("energy_true", "y", "x")]
        if extra:
            raise ValueError(f"TemplateSpatialModel: map dims {list(map.dims)} may add only 'energy_true' to y, x")
        super().__init__(frame=self.geom.frame)
        self.normalize = bool(normalize)
        self.filename = filename
        self.map = self._brightness_map(map)

    def _brightness_map(self, map) -> xr.DataArray:
        """The map in sr-1: normalised per energy plane, or converted."""
        values = map.astype(float)
        if self.normalize:
            total = (values * self.geom.solid_angle()).sum(dim=("y", "x"))
            if np.any(total <= 0):
                raise ValueError("TemplateSpatialModel: a map plane sums to <= 0 and cannot be normalised")
            values = values / total
        else:
            values = values * to_value(u.Quantity(1, map.attrs.get("units", "")), "sr-1", "template map")
        return values.assign_attrs(units="sr-1", wcs=map.attrs["wcs"])

    @property
    def is_energy_dependent(self) -> bool:
        return "energy_true" in self.map.dims

    @property
    def position(self) -> SkyCoord:
        """Centre of the map."""
        return self.geom.center_skydir

    @property
    def evaluation_radius(self) -> float:
        """Distance (deg) from the map centre to its farthest pixel corner."""
        nx, ny = self.geom.npix
        x, y = np.meshgrid([-0.5, (nx - 1) / 2, nx - 0.5], [-0.5, (ny - 1) / 2, ny - 0.5])
        lon, lat = self.geom.pix_to_coord(x, y)
        centre = lonlat_deg(self.position, self.frame)
        return float(np.nanmax(angular_separation(*centre, lon, lat)))

    @property
    def sampling_scale(self) -> float:
        return min(self.geom.binsz)

    def _planes_at(self, energy):
        """Map planes (sr-1) at ``energy`` (1-D, in the map's energy unit), linear in log(energy) between nodes."""
        data = self.map.transpose("energy_true", "y", "x").values
        nodes = np.log(self.map["energy_true"].values)
        if nodes.size == 1:
            return np.repeat(data, np.size(energy), axis=0)
        position = np.interp(np.log(energy), nodes, np.arange(nodes.size))
        lower = np.minimum(position.astype(int), nodes.size - 2)
        weight = (position - lower)[:, None, None]
        return (1 - weight) * data[lower] + weight * data[lower + 1]

    def evaluate(self, lon, lat, energy=None):
        """Brightness (sr-1) at ``lon``, ``lat`` (deg, map frame).

        Parameters
        ----------
        lon, lat : `numpy.ndarray`
            Coordinates in deg in the map frame.
        energy : float or array, optional
            True energies in the unit of the map's ``energy_true`` axis;
            required for an energy-dependent map.

        Returns
        -------
        `numpy.ndarray`
            Shape of ``lon`` (energy-independent map) or ``energy.shape + lon.shape``.
        """
        x, y = self.geom.coord_to_pix((lon, lat))
        nx, ny = self.geom.npix
        with np.errstate(invalid="ignore"):
            inside = (x >= -0.5) & (x <= nx - 0.5) & (y >= -0.5) & (y <= ny - 0.5)
        pix = np.stack([np.where(inside, y, 0), np.where(inside, x, 0)])
        if not self.is_energy_dependent:
            return np.where(inside, map_coordinates(self.map.values, pix, order=1, mode="nearest"), 0.0)
        if energy is None:
            raise ValueError("TemplateSpatialModel: the map is energy dependent; pass energy (true energy)")
        planes = self._planes_at(np.atleast_1d(energy))
        values = np.stack([map_coordinates(plane, pix, order=1, mode="nearest") for plane in planes])
        return np.where(inside, values, 0.0).reshape(np.shape(energy) + np.shape(lon))

    def __call__(self, lon, lat, energy=None):
        lon, lat = np.asarray(to_value(lon, "deg", "lon")), np.asarray(to_value(lat, "deg", "lat"))
        if energy is not None:
            energy = to_value(energy, self.map["energy_true"].attrs.get("units", ""), "energy")
        return self.evaluate(lon, lat, energy)

    def _target_energies(self, geom):
        """Centres of ``geom``'s energy_true axis, in the map's energy unit."""
        axes = {ax.name: ax for ax in geom.axes}
        if "energy_true" not in axes:
            raise ValueError(
                f"TemplateSpatialModel: the map is energy dependent; the target geometry needs an "
                f"'energy_true' axis (its dims are {list(geom.dims)})"
            )
        unit = self.map["energy_true"].attrs.get("units", "")
        return axes["energy_true"], axes["energy_true"].center.to_value(unit)

    def evaluate_geom(self, geom: WcsGeom) -> xr.DataArray:
        lon, lat = lonlat_in_frame(*geom.get_coord(), geom.frame, self.frame)
        if not self.is_energy_dependent:
            return geom.to_image().to_dataarray(self.evaluate(lon, lat), unit="sr-1")
        axis, energy = self._target_energies(geom)
        return geom.to_image().to_cube([axis]).to_dataarray(self.evaluate(lon, lat, energy), unit="sr-1")

    def integrate_geom(self, geom: WcsGeom) -> xr.DataArray:
        if not self.is_energy_dependent:
            return super().integrate_geom(geom)
        axis, energy = self._target_energies(geom)
        values = self._integrate(geom, energy, (energy.size,))
        return geom.to_image().to_cube([axis]).to_dataarray(values, unit="")

    def integrate_geom_values(self, geom: WcsGeom) -> np.ndarray:
        if self.is_energy_dependent:
            return self.integrate_geom(geom).values
        return self._integrate_pixels(geom)

    def _integrate_pixels(self, geom) -> np.ndarray:
        return self._integrate(geom, None, ())

    def _integrate(self, geom, energy, leading_shape):
        if geom.to_image() == self.geom:  # the map's own pixels: exact
            planes = self.map.values if energy is None else self._planes_at(energy)
            return planes * self.geom.solid_angle().values
        lon_c, lat_c = (float(v) for v in lonlat_deg(self.position, self.frame))
        box = footprint_box(geom, lon_c, lat_c, self.evaluation_radius, self.frame)
        if box is None:
            return np.zeros(tuple(leading_shape) + geom.npix[::-1])
        # the interpolated map is piecewise bilinear: two samples per map pixel resolve it
        oversampling = int(np.ceil(max(geom.binsz) * 2 / self.sampling_scale))

        def brightness(lon, lat):
            return self.evaluate(*lonlat_in_frame(lon, lat, geom.frame, self.frame), energy)

        return integrate_over_pixels(geom, brightness, box, min(oversampling, MAX_OVERSAMPLING), leading_shape)

    # ---- YAML ----------------------------------------------------------
    def to_dict(self, full_output: bool = False) -> dict:
        """``{"type", "frame", "parameters": [], "filename", "normalize"}``."""
        if self.filename is None:
            raise ModelError(
                "TemplateSpatialModel built from an array has no filename: set model.filename "
                "to the FITS file holding the map before writing the model"
            )
        data = super().to_dict(full_output)
        return {**data, "filename": str(self.filename), "normalize": self.normalize}

    @classmethod
    def _from_dict(cls, data: dict) -> TemplateSpatialModel:
        if not data.get("filename"):
            raise ModelError(f"TemplateSpatialModel entry needs a 'filename': {data!r}")
        return cls(data["filename"], normalize=data.get("normalize", True))
