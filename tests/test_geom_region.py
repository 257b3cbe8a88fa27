"""RegionGeom: ON regions for 1-D spectra."""

import pickle

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from hypothesis import given, settings
from hypothesis import strategies as st
from regions import CircleAnnulusSkyRegion, CircleSkyRegion, PolygonSkyRegion, RectangleSkyRegion, Regions

from xgamma.axes import MapAxis
from xgamma.geom import RegionGeom, WcsGeom

ENERGY = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", 12)
CRAB = SkyCoord(83.633, 22.014, unit="deg")


def _events_around(center: SkyCoord, radius_deg: float, n: int, seed: int) -> SkyCoord:
    """Uniform random positions on the spherical cap of ``radius_deg`` around ``center``."""
    rng = np.random.default_rng(seed)
    cos_r = np.cos(np.radians(radius_deg))
    sep = np.degrees(np.arccos(rng.uniform(cos_r, 1, n)))
    pa = rng.uniform(0, 360, n)
    return center.directional_offset_by(pa * u.deg, sep * u.deg)


def test_circle_contains_matches_skycoord_separation():
    geom = RegionGeom.create("icrs;circle(83.633,22.014,0.11)", axes=[ENERGY])
    events = _events_around(CRAB, 0.5, 100_000, seed=0)
    inside = geom.contains(events)
    expected = events.separation(CRAB).deg < 0.11
    assert inside.dtype == bool and inside.shape == (100_000,)
    assert 1000 < expected.sum() < 99_000
    np.testing.assert_array_equal(inside, expected)
    # lon/lat arrays in the region frame, and events given in another frame
    sph = events.icrs
    np.testing.assert_array_equal(geom.contains((sph.ra.deg, sph.dec.deg)), expected)
    np.testing.assert_array_equal(geom.contains(events.galactic), expected)


@settings(max_examples=20, deadline=None)
@given(
    lon=st.floats(0, 360),
    lat=st.floats(-89, 89),
    radius=st.floats(0.01, 30),
    frame=st.sampled_from(["icrs", "galactic"]),
    seed=st.integers(0, 1000),
)
def test_circle_contains_random(lon, lat, radius, frame, seed):
    center = SkyCoord(lon, lat, unit="deg", frame=frame)
    geom = RegionGeom(CircleSkyRegion(center, radius * u.deg))
    events = _events_around(center, min(3 * radius, 180), 2000, seed).icrs
    np.testing.assert_array_equal(geom.contains(events), events.separation(center).deg < radius)


def test_annulus_and_union():
    annulus = RegionGeom(CircleAnnulusSkyRegion(CRAB, 0.2 * u.deg, 0.4 * u.deg))
    events = _events_around(CRAB, 1.0, 20_000, seed=1)
    sep = events.separation(CRAB).deg
    np.testing.assert_array_equal(annulus.contains(events), (sep >= 0.2) & (sep < 0.4))
    assert annulus.solid_angle() == pytest.approx(2 * np.pi * (np.cos(np.radians(0.2)) - np.cos(np.radians(0.4))))
    other = SkyCoord(84.2, 22.0, unit="deg")
    union = RegionGeom([CircleSkyRegion(CRAB, 0.1 * u.deg), CircleSkyRegion(other, 0.2 * u.deg)])
    expected = (sep < 0.1) | (events.separation(other).deg < 0.2)
    np.testing.assert_array_equal(union.contains(events), expected)
    # disjoint circles: the grid estimate of the union's solid angle adds up
    exact = 2 * np.pi * (2 - np.cos(np.radians(0.1)) - np.cos(np.radians(0.2)))
    assert union.solid_angle() == pytest.approx(exact, rel=5e-3)


def test_circle_solid_angle_and_center():
    geom = RegionGeom.create("galactic;circle(184.55,-5.78,2.5)")
    assert geom.solid_angle() == pytest.approx(2 * np.pi * (1 - np.cos(np.radians(2.5))), rel=1e-12)
    assert geom.frame == "galactic"
    assert geom.center_skydir.separation(SkyCoord(184.55, -5.78, unit="deg", frame="galactic")).deg < 1e-9


def test_rectangle_and_polygon():
    box = RegionGeom(RectangleSkyRegion(CRAB, width=0.6 * u.deg, height=0.4 * u.deg))
    # small box: tangent-plane area equals width * height to second order
    assert box.solid_angle() == pytest.approx(np.radians(0.6) * np.radians(0.4), rel=1e-4)
    # on a TAN grid centred on the box, pixels inside are |dx| < 0.3 deg, |dy| < 0.2 deg
    geom = WcsGeom.create(CRAB, width=1.0, binsz=0.01, proj="TAN")
    y, x = np.indices(geom.npix[::-1])
    cx, cy = geom.center_pix
    expected = (np.abs(x - cx) * 0.01 < 0.3) & (np.abs(y - cy) * 0.01 < 0.2)
    np.testing.assert_array_equal(box.contains(geom.pix_to_skycoord(x, y)), expected)
    vertices = geom.pix_to_skycoord(cx + np.array([-30, 30, 30, -30]), cy + np.array([-20, -20, 20, 20]))
    polygon = RegionGeom(PolygonSkyRegion(vertices))
    inner = (np.abs(x - cx) < 29.5) & (np.abs(y - cy) < 19.5)
    assert polygon.contains(geom.pix_to_skycoord(x, y))[inner].all()
    assert polygon.solid_angle() == pytest.approx(box.solid_angle(), rel=1e-3)
    mask = geom.region_mask(box.regions[0])
    # the mask's exact TAN pixels differ from the flat-sky area by (a^2 + b^2) / 2 ~ 2e-5
    assert float(geom.solid_angle().where(mask, 0).sum()) == pytest.approx(box.solid_angle(), rel=1e-4)


def test_ds9_round_trip_and_dataarray():
    geom = RegionGeom.create("icrs;circle(83.633,22.014,0.11)", axes=[ENERGY])
    text = geom.to_region_string()
    (region,) = Regions.parse(text, format="ds9")
    assert isinstance(region, CircleSkyRegion)
    assert region.center.separation(CRAB).deg < 1e-9 and region.radius.to_value("deg") == pytest.approx(0.11)
    assert RegionGeom.create(text, axes=[ENERGY]) == geom
    da = geom.to_dataarray(unit="cm2 s", name="exposure")
    assert da.dims == ("energy",) and da.shape == (12,)
    assert da.attrs["region"] == text and da.attrs["units"] == u.Unit("cm2 s").to_string()
    assert RegionGeom.from_dataarray(da) == geom
    lazy = geom.to_dataarray(np.arange(12.0), chunks={"energy": 4})
    assert lazy.chunks == ((4, 4, 4),)
    with pytest.raises(ValueError, match="energy: 12"):
        geom.to_dataarray(np.zeros(11))
    with pytest.raises(ValueError, match="cannot parse"):
        RegionGeom.create("icrs;blob(1,2,3)")


def test_pickle_and_equality():
    geom = RegionGeom(CircleSkyRegion(CRAB, 0.2 * u.deg), axes=[ENERGY])
    back = pickle.loads(pickle.dumps(geom))
    assert back == geom and back.axes == (ENERGY,)
    assert back != geom.to_image()
    assert geom != RegionGeom(CircleSkyRegion(CRAB, 0.3 * u.deg), axes=[ENERGY])
    box = RegionGeom(RectangleSkyRegion(CRAB, 1 * u.deg, 2 * u.deg, angle=30 * u.deg))
    assert pickle.loads(pickle.dumps(box)) == box


def test_repr_and_wcs_geom():
    geom = RegionGeom.create("icrs;circle(83.633,22.014,0.5)", axes=[ENERGY])
    text = repr(geom)
    assert "circle(83.63300000,22.01400000,0.50000000)" in text and "energy: 12" in text
    wcs_geom = geom.to_wcs_geom(binsz=0.01)
    assert wcs_geom.projection == "TAN"
    np.testing.assert_allclose(wcs_geom.width, (1.0, 1.0), atol=0.03)
    assert wcs_geom.center_skydir.separation(CRAB).deg < 1e-6
