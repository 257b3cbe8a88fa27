"""Spatial models: normalisation and centroid of integrate_geom at all pixel sizes, analytic profiles, YAML."""

import astropy.units as u
import numpy as np
import pytest
import yaml
from astropy.coordinates import SkyCoord

from xgamma.axes import MapAxis
from xgamma.geom import WcsGeom
from xgamma.modeling.spatial import (
    ConstantSpatialModel,
    DiskSpatialModel,
    GaussianSpatialModel,
    GeneralizedGaussianSpatialModel,
    PointSpatialModel,
    Shell2SpatialModel,
    ShellSpatialModel,
    SpatialModel,
    TemplateSpatialModel,
)

CRAB = SkyCoord(83.63, 22.01, unit="deg", frame="icrs")


def centred(cls, size, frame="icrs", **pars):
    """Model near the Crab with characteristic size ``size`` (deg)."""
    pos = CRAB.transform_to(frame)
    lon, lat = pos.spherical.lon.deg, pos.spherical.lat.deg
    return cls(frame=frame, lon_0=lon, lat_0=lat, **{k: v * size if k in SCALED else v for k, v in pars.items()})


SCALED = {"sigma", "r_0", "radius", "width"}
MODELS = {
    "point": (PointSpatialModel, {}),
    "gauss": (GaussianSpatialModel, {"sigma": 1.0}),
    "gauss-elongated": (GaussianSpatialModel, {"sigma": 1.0, "e": 0.8, "phi": 30.0}),
    "gauss-general": (GeneralizedGaussianSpatialModel, {"r_0": 1.0, "eta": 0.3}),
    "gauss-general-elongated": (GeneralizedGaussianSpatialModel, {"r_0": 1.0, "eta": 0.8, "e": 0.6, "phi": -40.0}),
    "disk": (DiskSpatialModel, {"r_0": 1.0}),
    "disk-elongated": (DiskSpatialModel, {"r_0": 1.0, "e": 0.7, "phi": 60.0, "edge_width": 0.2}),
    "shell": (ShellSpatialModel, {"radius": 1.0, "width": 0.3}),
    "shell2": (Shell2SpatialModel, {"r_0": 1.0, "eta": 0.4}),
}


def geom_for(model, binsz, proj="CAR", frame="icrs"):
    """A map centred near (not on) the model, wide enough to hold all of it."""
    width = 2.4 * max(model.evaluation_radius, 2 * binsz) + 4 * binsz
    return WcsGeom.create(skydir=SkyCoord(83.6, 22.0, unit="deg"), width=width, binsz=binsz, proj=proj, frame=frame)


def centroid_offset(fractions, geom, position):
    """Distance (deg) between the flux-weighted centroid of a map and ``position``."""
    lon, lat = np.radians(geom.get_coord())
    vec = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    mean = np.nansum(vec * np.asarray(fractions), axis=(1, 2))
    centre = SkyCoord(*mean, representation_type="cartesian", frame=geom.frame)
    return centre.separation(position).deg


# size of the model / pixel size: much smaller, comparable, much larger
REGIMES = {"small": 0.05, "comparable": 1.0, "large": 8.0}
# how close the flux centroid must be to the position, in pixels
CENTROID_TOLERANCE = {"small": 0.75, "comparable": 0.05, "large": 0.01}


@pytest.mark.parametrize("proj", ["CAR", "TAN"])
@pytest.mark.parametrize("regime", sorted(REGIMES))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_integrates_to_one_with_centroid_at_position(name, regime, proj):
    cls, pars = MODELS[name]
    size = 0.3
    model = centred(cls, size, **pars)
    binsz = size / REGIMES[regime]
    geom = geom_for(model, binsz, proj)
    fractions = model.integrate_geom(geom)
    assert fractions.dims == ("y", "x")
    assert fractions.attrs["wcs"] == geom.to_header_string()
    assert float(fractions.sum()) == pytest.approx(1.0, abs=1e-3)
    assert np.all(fractions.values >= 0)
    tolerance = 1e-3 if name == "point" else CENTROID_TOLERANCE[regime]
    assert centroid_offset(fractions, geom, CRAB) < tolerance * binsz


@pytest.mark.parametrize("name", sorted(MODELS))
def test_galactic_model_on_icrs_geom(name):
    """Position and phi are galactic; the icrs map still gets all the flux, centred on the source."""
    cls, pars = MODELS[name]
    model = centred(cls, 0.3, frame="galactic", **pars)
    assert model.frame == "galactic"
    geom = geom_for(model, 0.05, "TAN", frame="icrs")
    fractions = model.integrate_geom(geom)
    assert float(fractions.sum()) == pytest.approx(1.0, abs=1e-3)
    assert centroid_offset(fractions, geom, CRAB) < 0.01 * 0.05


def test_elongation_follows_position_angle_in_model_frame():
    """phi is measured east of north in the model frame: the same ellipse seen from icrs is rotated."""
    gal = CRAB.galactic
    model = GaussianSpatialModel(frame="galactic", lon_0=gal.l.deg, lat_0=gal.b.deg, sigma=0.3, e=0.9, phi=0.0)
    along_major = model(gal.l.deg, gal.b.deg + 0.3)  # galactic north: the major axis
    along_minor = model(gal.l.deg + 0.3 / np.cos(gal.b.rad), gal.b.deg)
    assert along_major / model(gal.l.deg, gal.b.deg) == pytest.approx(np.exp(-0.5), rel=1e-3)
    minor = 0.3 * np.sqrt(1 - 0.9**2)
    assert along_minor / model(gal.l.deg, gal.b.deg) == pytest.approx(np.exp(-0.5 * (0.3 / minor) ** 2), rel=1e-2)
    geom = geom_for(model, 0.02, "CAR", frame="icrs")
    fractions = model.integrate_geom(geom).values
    lon, lat = geom.get_coord()
    # second moments in icrs: the major axis is along galactic north, ~62 deg from icrs north here
    pa_galactic_north = CRAB.position_angle(SkyCoord(gal.l, gal.b + 0.01 * gal.b.unit, frame="galactic")).deg
    dx = (lon - CRAB.ra.deg) * np.cos(CRAB.dec.rad)
    dy = lat - CRAB.dec.deg
    cov = np.cov(np.stack([dx.ravel(), dy.ravel()]), aweights=fractions.ravel())
    eigval, eigvec = np.linalg.eigh(cov)
    major = eigvec[:, 1]
    pa_major = np.degrees(np.arctan2(major[0], major[1])) % 180
    assert pa_major == pytest.approx(pa_galactic_north % 180, abs=0.5)
    assert np.sqrt(eigval[1]) == pytest.approx(0.3, rel=0.01)
    assert np.sqrt(eigval[0]) == pytest.approx(0.3 * np.sqrt(1 - 0.9**2), rel=0.02)


def test_gaussian_containment_within_sigma():
    model = GaussianSpatialModel(lon_0=CRAB.ra.deg, lat_0=CRAB.dec.deg, sigma=0.5)
    geom = geom_for(model, 0.01)
    fractions = model.integrate_geom(geom)
    inside = geom.separation(CRAB) < 0.5
    assert float(fractions.where(inside).sum()) == pytest.approx(1 - np.exp(-0.5), abs=2e-3)
    # peak brightness of a 2-D Gaussian, 1 / (2 pi sigma**2)
    assert model(CRAB.ra.deg, CRAB.dec.deg) == pytest.approx(1 / (2 * np.pi * np.radians(0.5) ** 2), rel=1e-4)


def test_elongated_gaussian_peak_and_axes():
    sigma, e = 0.4, 0.6
    model = GaussianSpatialModel(lon_0=0, lat_0=0, sigma=sigma, e=e, phi=90.0)  # major axis east
    minor = sigma * np.sqrt(1 - e**2)
    peak = model(0.0, 0.0)
    assert peak == pytest.approx(1 / (2 * np.pi * np.radians(sigma) * np.radians(minor)), rel=1e-4)
    assert model(sigma, 0.0) / peak == pytest.approx(np.exp(-0.5), rel=1e-4)
    assert model(0.0, minor) / peak == pytest.approx(np.exp(-0.5), rel=1e-4)


def test_generalized_gaussian_half_is_gaussian():
    """eta = 1/2 is a Gaussian of sigma r_0 / sqrt(2)."""
    general = GeneralizedGaussianSpatialModel(lon_0=10, lat_0=5, r_0=0.6, eta=0.5)
    gauss = GaussianSpatialModel(lon_0=10, lat_0=5, sigma=0.6 / np.sqrt(2))
    lon, lat = 10 + np.linspace(-1, 1, 21), 5 + np.linspace(-0.5, 0.7, 21)
    np.testing.assert_allclose(general(lon, lat), gauss(lon, lat), rtol=1e-3)
    # exponential profile (eta = 1): peak 1 / (2 pi r_0**2 Gamma(2))
    exponential = GeneralizedGaussianSpatialModel(lon_0=0, lat_0=0, r_0=0.2, eta=1.0)
    assert exponential(0.0, 0.0) == pytest.approx(1 / (2 * np.pi * np.radians(0.2) ** 2), rel=1e-4)


def test_disk_is_uniform_inside_with_half_brightness_at_edge():
    r_0 = 0.5
    model = DiskSpatialModel(lon_0=0, lat_0=0, r_0=r_0, edge_width=0.01)
    # the smooth edge adds cos(r_0) pi**2 / (24 k**2) to the area / 2 pi, with slope k = 2 atanh(0.9) / width
    slope = 2 * np.arctanh(0.9) / np.radians(0.01 * r_0)
    r_rad = np.radians(r_0)
    uniform = 1 / (2 * np.pi * (1 - np.cos(r_rad) + np.cos(r_rad) * np.pi**2 / (24 * slope**2)))
    np.testing.assert_allclose(model(np.array([0.0, 0.25, 0.45]), 0.0), uniform, rtol=1e-8)
    assert model(r_0, 0.0) == pytest.approx(uniform / 2, rel=1e-6)
    edge = 0.01 * r_0
    assert model(r_0 - edge / 2, 0.0) == pytest.approx(0.95 * uniform, rel=1e-4)
    assert model(r_0 + edge / 2, 0.0) == pytest.approx(0.05 * uniform, rel=1e-4)
    geom = geom_for(model, 0.01)
    inside = geom.separation(SkyCoord(0, 0, unit="deg")) < r_0 - 0.02
    fractions = DiskSpatialModel(lon_0=0, lat_0=0, r_0=r_0).integrate_geom(geom_for(model, 0.01))
    omega = geom.solid_angle()
    np.testing.assert_allclose((fractions / omega).where(inside, drop=True).values.ravel(), uniform, rtol=1e-6)


def test_elongated_disk_is_an_ellipse():
    model = DiskSpatialModel(lon_0=0, lat_0=0, r_0=1.0, e=0.8, phi=0.0, edge_width=0.0)  # major axis north
    minor = np.sqrt(1 - 0.8**2)
    inside = model(np.array([0.0, 0.0, 0.95 * minor]), np.array([0.0, 0.95, 0.0]))
    outside = model(np.array([1.05 * minor, 0.0]), np.array([0.0, 1.05]))
    assert np.all(inside == inside[0]) and np.all(outside == 0)
    assert inside[0] == pytest.approx(1 / (np.pi * np.radians(1.0) ** 2 * minor), rel=1e-4)


def test_shell_projected_profile():
    r_in, width = 0.4, 0.1
    r_out = r_in + width
    model = ShellSpatialModel(lon_0=0, lat_0=0, radius=r_in, width=width)
    norm = 3 / (2 * np.pi * (np.radians(r_out) ** 3 - np.radians(r_in) ** 3))
    theta = np.array([0.0, 0.2, r_in, 0.45, r_out, 0.6])
    chord = np.sqrt(np.clip(r_out**2 - theta**2, 0, None)) - np.sqrt(np.clip(r_in**2 - theta**2, 0, None))
    np.testing.assert_allclose(model(theta, 0.0), norm * np.radians(chord), rtol=1e-4)
    assert model(r_in, 0.0) > model(0.0, 0.0)  # limb brightening
    shell2 = Shell2SpatialModel(lon_0=0, lat_0=0, r_0=r_out, eta=width / r_out)
    np.testing.assert_allclose(shell2(theta, 0.0), model(theta, 0.0), rtol=1e-10)


def test_point_source_fractions_are_bilinear():
    geom = WcsGeom.create(skydir=(0, 0), npix=(5, 5), binsz=0.1, proj="CAR")
    lon, lat = geom.pix_to_coord(2.25, 1.6)
    fractions = PointSpatialModel(lon_0=float(lon), lat_0=float(lat)).integrate_geom(geom).values
    expected = {(1, 2): 0.75 * 0.4, (1, 3): 0.25 * 0.4, (2, 2): 0.75 * 0.6, (2, 3): 0.25 * 0.6}
    for (y, x), value in expected.items():
        assert fractions[y, x] == pytest.approx(value, abs=1e-9)
    assert fractions.sum() == pytest.approx(1.0)


def test_model_outside_the_map_gives_zeros():
    geom = WcsGeom.create(skydir=(0, 0), width=2, binsz=0.1)
    for model in (GaussianSpatialModel(lon_0=40, lat_0=10, sigma=0.1), PointSpatialModel(lon_0=40, lat_0=10)):
        assert float(model.integrate_geom(geom).sum()) == 0.0


def test_large_model_on_allsky_map():
    model = GaussianSpatialModel(frame="galactic", lon_0=30, lat_0=70, sigma=15.0)
    geom = WcsGeom.create(binsz=1.0, frame="icrs")
    assert float(model.integrate_geom(geom).sum()) == pytest.approx(1.0, abs=1e-3)


def test_constant_model_is_value_times_solid_angle():
    model = ConstantSpatialModel(value="2 sr-1")
    assert not model.is_normalized
    geom = WcsGeom.create(binsz=2.0)
    integral = model.integrate_geom(geom)
    np.testing.assert_allclose(integral.values, 2 * geom.solid_angle().values)
    assert float(integral.sum()) == pytest.approx(2 * 4 * np.pi, rel=1e-9)
    assert u.Unit(model.evaluate_geom(geom).attrs["units"]) == u.Unit("sr-1")


def test_evaluate_geom_gives_brightness_at_pixel_centres():
    model = GaussianSpatialModel(lon_0=83.63, lat_0=22.01, sigma=0.3)
    geom = geom_for(model, 0.05, "TAN")
    brightness = model.evaluate_geom(geom)
    lon, lat = geom.get_coord()
    np.testing.assert_allclose(brightness.values, model(lon, lat))
    assert u.Unit(brightness.attrs["units"]) == u.Unit("sr-1")
    # a finely pixelised model: integral is brightness x solid angle
    np.testing.assert_allclose(model.integrate_geom(geom), brightness * geom.solid_angle(), rtol=2e-3, atol=1e-7)


# ---- templates ----------------------------------------------------------
@pytest.fixture(scope="module")
def iem_path(data_dir):
    return data_dir / "fermi-3fhl-crab" / "Fermi-LAT-3FHL_iem.fits"


def test_template_energy_dependent_is_normalised_per_energy(iem_path):
    model = TemplateSpatialModel(iem_path)
    assert model.is_energy_dependent and model.frame == "galactic"
    energy = MapAxis.from_energy_bounds("100 GeV", "1 TeV", 3, name="energy_true")
    own = model.geom.to_cube([energy])  # the template's own pixels
    fractions = model.integrate_geom(own)
    assert fractions.dims == ("energy_true", "y", "x")
    np.testing.assert_allclose(fractions.sum(dim=("y", "x")), 1.0, rtol=1e-9)
    # another frame, projection and pixel size, covering the template
    centre = model.position.icrs
    other = WcsGeom.create(skydir=centre, width=(14, 12), binsz=0.05, proj="TAN", frame="icrs", axes=[energy])
    fractions = model.integrate_geom(other)
    np.testing.assert_allclose(fractions.sum(dim=("y", "x")), 1.0, atol=1e-3)
    assert centroid_offset(fractions.isel(energy_true=0), other, model_centroid(model, 0)) < 0.01


def model_centroid(model, plane):
    """Flux centroid of the template's own pixels at the first target energy (100-215 GeV bin centre)."""
    energy = MapAxis.from_energy_bounds("100 GeV", "1 TeV", 3, name="energy_true")
    fractions = model.integrate_geom(model.geom.to_cube([energy])).isel(energy_true=plane)
    lon, lat = np.radians(model.geom.get_coord())
    vec = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    mean = np.sum(vec * fractions.values, axis=(1, 2))
    return SkyCoord(*mean, representation_type="cartesian", frame="galactic")


def test_template_interpolates_log_energy_between_planes(iem_path):
    model = TemplateSpatialModel(iem_path)
    nodes = model.map["energy_true"].values
    lon, lat = model.geom.pix_to_coord(np.array([10.0, 20.0]), np.array([5.0, 17.0]))
    at_nodes = model.evaluate(lon, lat, nodes[[3, 4]])
    np.testing.assert_allclose(at_nodes[:, 0], model.map.values[[3, 4], 5, 10], rtol=1e-6)
    middle = model.evaluate(lon, lat, np.sqrt(nodes[3] * nodes[4]))
    np.testing.assert_allclose(middle, 0.5 * (at_nodes[0] + at_nodes[1]), rtol=1e-6)
    with pytest.raises(ValueError, match="energy_true"):
        model.integrate_geom(model.geom)


def test_template_from_dataarray_matches_gaussian():
    """A template made from a Gaussian's own map reproduces it on another grid."""
    gauss = GaussianSpatialModel(lon_0=83.63, lat_0=22.01, sigma=0.4)
    grid = geom_for(gauss, 0.02, "CAR")
    template = TemplateSpatialModel(gauss.evaluate_geom(grid) * 7.0)  # any scale: normalised
    target = geom_for(gauss, 0.1, "TAN")
    np.testing.assert_allclose(template.integrate_geom(target), gauss.integrate_geom(target), atol=2e-4)
    assert float(template.integrate_geom(target).sum()) == pytest.approx(1.0, abs=1e-3)


# ---- YAML ------------------------------------------------------------------
ALL_MODELS = {**MODELS, "const": (ConstantSpatialModel, {"value": 3.0})}


@pytest.mark.parametrize("name", sorted(ALL_MODELS))
def test_yaml_round_trip(name):
    cls, pars = ALL_MODELS[name]
    model = centred(cls, 0.3, frame="galactic", **pars) if cls is not ConstantSpatialModel else cls(**pars)
    for par in model.parameters:
        par.error = 0.02
    data = yaml.safe_load(yaml.safe_dump(model.to_dict(), sort_keys=False))
    assert list(data)[:2] == ["type", "frame"] and data["type"] == cls.tag[0]
    read = SpatialModel.from_dict(data)
    assert type(read) is cls and read.frame == model.frame
    for a, b in zip(read.parameters, model.parameters):
        assert (a.name, a.value, a.unit, a.frozen, a.error, a.min, a.max) == pytest.approx(
            (b.name, b.value, b.unit, b.frozen, b.error, b.min, b.max), nan_ok=True
        )
    lon, lat = model.parameters["lon_0"].value if "lon_0" in model.parameters.names else 0.0, 0.0
    lon = lon + np.linspace(-0.4, 0.4, 9)
    lat = (model.parameters["lat_0"].value if "lat_0" in model.parameters.names else 0.0) + np.linspace(-0.3, 0.3, 9)
    np.testing.assert_allclose(read(lon, lat), model(lon, lat))


def test_yaml_round_trip_template(iem_path):
    model = TemplateSpatialModel(iem_path)
    data = yaml.safe_load(yaml.safe_dump(model.to_dict(), sort_keys=False))
    assert data["filename"] == str(iem_path) and data["normalize"] is True and data["frame"] == "galactic"
    read = SpatialModel.from_dict({**data, "type": "template"})
    np.testing.assert_allclose(read.map.values, model.map.values)
    with pytest.raises(Exception, match="filename"):
        TemplateSpatialModel(model.map).to_dict()


def test_reads_gammapy_point_entry():
    entry = {"type": "PointSpatialModel", "frame": "icrs", "parameters": [
        {"name": "lon_0", "value": 83.633, "unit": "deg"}, {"name": "lat_0", "value": 22.0199, "unit": "deg"}]}
    model = SpatialModel.from_dict(entry)
    assert model.position.separation(SkyCoord(83.633, 22.0199, unit="deg")).deg < 1e-9


def test_gaussian_distance_term_matches_the_great_circle_distance():
    """``1 - cos(theta)`` by the haversine formula equals it from `angular_separation` (up to its cancellation)."""
    from xgamma.geom.wcs import angular_separation
    from xgamma.modeling.spatial import _one_minus_cos_separation

    rng = np.random.default_rng(4)
    lon, lat = rng.uniform(0, 360, 1000), np.degrees(np.arcsin(rng.uniform(-1, 1, 1000)))
    expected = 1 - np.cos(np.radians(angular_separation(lon, lat, 10.0, -30.0)))
    np.testing.assert_allclose(_one_minus_cos_separation(lon, lat, 10.0, -30.0), expected, rtol=0, atol=4e-15)
    # at 1 arcsec: theta**2 / 2 to 1e-12 (the cosine form is exact to 1e-8 only there)
    theta = np.radians(1 / 3600)
    assert _one_minus_cos_separation(83.0 + 1 / 3600, 0.0, 83.0, 0.0) == pytest.approx(theta**2 / 2, rel=1e-12)


def test_one_sample_per_pixel_is_the_brightness_times_the_pixel_solid_angle():
    geom = WcsGeom.create(skydir=CRAB, width=2, binsz=0.05, frame="icrs")
    model = centred(GaussianSpatialModel, 0.3, sigma=1.0)  # sampling scale 0.3 deg: one sample per 0.05 deg pixel
    fractions = model.integrate_geom_values(geom)
    lon, lat = geom.get_coord()
    expected = model(lon, lat) * geom.solid_angle().values
    inside = fractions > 0  # within the evaluation radius
    assert inside.sum() > 0.5 * inside.size
    np.testing.assert_allclose(fractions[inside], expected[inside], rtol=1e-12)
