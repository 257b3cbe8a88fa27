"""WcsGeom: pixel <-> sky, solid angles, cutouts, serialisation."""

import pickle

import astropy.units as u
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xgamma.axes import MapAxis
from xgamma.geom import WcsGeom
from xgamma.maps import cutout, geom_of, lonlat

ENERGY = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", 6)


@st.composite
def geoms(draw, projs=("CAR", "TAN"), max_npix=60):
    frame = draw(st.sampled_from(["icrs", "galactic"]))
    proj = draw(st.sampled_from(projs))
    lon = draw(st.floats(0, 359.9))
    lat = draw(st.floats(-80, 80))
    binsz = draw(st.floats(0.005, 0.5))
    npix = (draw(st.integers(1, max_npix)), draw(st.integers(1, max_npix)))
    return WcsGeom.create((lon, lat), binsz=binsz, npix=npix, frame=frame, proj=proj, axes=[ENERGY])


def _gnomonic_inverse(xi_deg, eta_deg, lon0, lat0):
    """Textbook gnomonic inverse (Snyder 1987, eq. 22-14/22-16), deg in and out."""
    xi, eta = np.radians(xi_deg), np.radians(eta_deg)
    lon0, lat0 = np.radians(lon0), np.radians(lat0)
    rho = np.hypot(xi, eta)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        lat = np.where(rho == 0, lat0, np.arcsin(np.cos(c) * np.sin(lat0) + eta * np.sin(c) * np.cos(lat0) / rho))
    lon = lon0 + np.arctan2(xi * np.sin(c), rho * np.cos(lat0) * np.cos(c) - eta * np.sin(lat0) * np.sin(c))
    return np.degrees(lon) % 360, np.degrees(lat)


# ---- pixel <-> world ------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geom=geoms(), seed=st.integers(0, 2**32 - 1))
def test_pix_coord_round_trip_against_astropy(geom, seed):
    rng = np.random.default_rng(seed)
    nx, ny = geom.npix
    x, y = rng.uniform(-0.5, nx - 0.5, 500), rng.uniform(-0.5, ny - 0.5, 500)
    lon, lat = geom.pix_to_coord(x, y)
    ref = SkyCoord.from_pixel(x, y, wcs=geom.wcs, origin=0)
    mine = SkyCoord(lon, lat, unit="deg", frame=geom.frame)
    assert np.all(mine.separation(ref).deg < 1e-9)
    x2, y2 = geom.coord_to_pix((lon, lat))
    np.testing.assert_allclose(x2, x, atol=1e-7)
    np.testing.assert_allclose(y2, y, atol=1e-7)
    # SkyCoord input in another frame goes through the frame transformation
    other = mine.transform_to("galactic" if geom.frame == "icrs" else "icrs")
    x3, y3 = geom.coord_to_pix(other)
    np.testing.assert_allclose(x3, x, atol=1e-6)
    np.testing.assert_allclose(y3, y, atol=1e-6)
    assert geom.contains(other).all()


@settings(max_examples=30, deadline=None)
@given(geom=geoms())
def test_center_pixel_is_skydir(geom):
    lon0, lat0 = geom.wcs.wcs.crval
    center = geom.center_skydir
    assert center.separation(SkyCoord(lon0, lat0, unit="deg", frame=geom.frame)).deg < 1e-10
    lon, lat = geom.pix_to_coord(*geom.center_pix)
    assert abs((lon - lon0 + 180) % 360 - 180) < 1e-9 and abs(lat - lat0) < 1e-9


def test_tan_matches_textbook_gnomonic():
    geom = WcsGeom.create((120.0, -35.0), width=(6, 4), binsz=0.05, proj="TAN")
    y, x = np.indices(geom.npix[::-1], dtype=float)
    cx, cy = geom.center_pix
    lon_ref, lat_ref = _gnomonic_inverse(-0.05 * (x - cx), 0.05 * (y - cy), 120.0, -35.0)
    lon, lat = geom.get_coord()
    np.testing.assert_allclose(lat, lat_ref, atol=1e-10)
    np.testing.assert_allclose(lon, lon_ref, atol=1e-10)


def test_car_on_equator_is_linear():
    geom = WcsGeom.create((10.0, 0.0), width=(20, 10), binsz=0.25, frame="galactic")
    lon, lat = geom.get_coord()
    assert geom.npix == (80, 40)
    np.testing.assert_allclose(lat[:, 0], -5 + 0.125 + 0.25 * np.arange(40), atol=1e-10)
    np.testing.assert_allclose(lon[0], (20 - 0.125 - 0.25 * np.arange(80)) % 360, atol=1e-10)


def test_create_semantics():
    geom = WcsGeom.create(SkyCoord(83.633, 22.014, unit="deg"), width="3 deg", binsz=u.Quantity(0.02, "deg"))
    assert geom.npix == (150, 150)
    assert geom.data_shape == (150, 150) and geom.dims == ("y", "x")
    np.testing.assert_allclose(geom.wcs.wcs.crpix, [75.5, 75.5])
    np.testing.assert_allclose(geom.width, (3, 3))
    galactic = WcsGeom.create(SkyCoord(83.633, 22.014, unit="deg"), width=(3, 2), binsz=0.1, frame="galactic")
    assert galactic.frame == "galactic" and galactic.npix == (30, 20)
    assert galactic.center_skydir.separation(SkyCoord(83.633, 22.014, unit="deg")).deg < 1e-9
    cube = WcsGeom.create((0, 0), width=2, binsz=0.5, axes=[ENERGY])
    assert cube.data_shape == (6, 4, 4) and cube.dims == ("energy", "y", "x")
    with pytest.raises(ValueError, match="frame"):
        WcsGeom.create((0, 0), width=1, binsz=0.1, frame="altaz")
    with pytest.raises(ValueError, match="binsz"):
        WcsGeom.create((0, 0), width=1, binsz=-0.1)


# ---- solid angle ------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    lon=st.floats(0, 360),
    lat0=st.floats(-60, 60),
    binsz=st.floats(0.01, 1.0),
    nx=st.integers(1, 200),
    ny=st.integers(1, 100),
)
def test_car_solid_angle_is_analytic_box(lon, lat0, binsz, nx, ny):
    # CRVAL at (lon, lat0): an oblique CAR whose pixels are a box in native
    # coordinates, |native lat| <= ny * binsz / 2, so the analytic box area holds.
    geom = WcsGeom.create((lon, lat0), npix=(nx, ny), binsz=binsz)
    dlon = np.radians(nx * binsz)
    half = np.radians(min(ny * binsz / 2, 90))
    expected = dlon * (np.sin(half) - np.sin(-half))
    assert float(geom.solid_angle().sum()) == pytest.approx(expected, rel=1e-6)


def test_car_solid_angle_rows_follow_latitude():
    # equatorial CAR, asymmetric lat range: 2 * dlon * (sin(lat2) - sin(lat1)) per half-width
    geom = WcsGeom.from_header(_non_oblique_header(lon0=0, lat_min=10, lat_max=40, width=10, binsz=0.5))
    omega = geom.solid_angle()
    dlon_half = np.radians(5)
    expected = 2 * dlon_half * (np.sin(np.radians(40)) - np.sin(np.radians(10)))
    assert float(omega.sum()) == pytest.approx(expected, rel=1e-6)
    lat_edges = 10 + 0.5 * np.arange(61)
    rows = np.radians(0.5) * np.diff(np.sin(np.radians(lat_edges)))
    np.testing.assert_allclose(omega.sum("x").values / omega.sizes["x"], rows, rtol=1e-9)


def _non_oblique_header(lon0, lat_min, lat_max, width, binsz):
    nx, ny = int(round(width / binsz)), int(round((lat_max - lat_min) / binsz))
    return fits.Header(
        {
            "NAXIS": 2, "NAXIS1": nx, "NAXIS2": ny, "CTYPE1": "RA---CAR", "CTYPE2": "DEC--CAR",
            "CRVAL1": lon0, "CRVAL2": 0.0, "CDELT1": -binsz, "CDELT2": binsz,
            "CRPIX1": (nx + 1) / 2, "CRPIX2": 0.5 - lat_min / binsz, "CUNIT1": "deg", "CUNIT2": "deg",
        }
    )


def test_allsky_car_is_four_pi():
    for binsz, frame in [(1.0, "galactic"), (0.5, "icrs"), (0.25, "galactic")]:
        geom = WcsGeom.create(binsz=binsz, frame=frame)
        assert geom.is_allsky
        assert float(geom.solid_angle().sum()) == pytest.approx(4 * np.pi, rel=1e-9)
    assert not WcsGeom.create((0, 0), width=10, binsz=1).is_allsky


@pytest.mark.parametrize("lat0", [89.9, 0.0, -45.0])
def test_tan_solid_angle_matches_tangent_plane_integral(lat0):
    # integral of dx dy / (1 + x^2 + y^2)^(3/2) over [-a, a] x [-b, b] (plane units of rad)
    geom = WcsGeom.create((30.0, lat0), width=(1.0, 0.6), binsz=0.01, proj="TAN")
    a, b = np.radians(0.5), np.radians(0.3)
    expected = 4 * np.arctan(a * b / np.sqrt(1 + a**2 + b**2))
    assert float(geom.solid_angle().sum()) == pytest.approx(expected, rel=1e-4)
    # a large TAN map: the exact great-circle pixels still sum to the integral
    big = WcsGeom.create((30.0, lat0), width=(60.0, 40.0), binsz=0.5, proj="TAN")
    a, b = np.radians(30), np.radians(20)
    assert float(big.solid_angle().sum()) == pytest.approx(4 * np.arctan(a * b / np.sqrt(1 + a**2 + b**2)), rel=1e-8)


def test_solid_angle_is_dataarray_in_sr():
    omega = WcsGeom.create((0, 0), width=2, binsz=0.1, proj="TAN", axes=[ENERGY]).solid_angle()
    assert omega.dims == ("y", "x") and omega.attrs["units"] == "sr"
    assert float(omega[10, 10]) == pytest.approx(np.radians(0.1) ** 2, rel=1e-4)


# ---- separation, contains, masks ----------------------------------------------------
@pytest.mark.parametrize("proj", ["CAR", "TAN"])
def test_separation_against_skycoord(proj):
    geom = WcsGeom.create((266.4, -28.9), width=(8, 6), binsz=0.1, frame="galactic", proj=proj)
    position = SkyCoord(265.0, -29.5, unit="deg", frame="icrs")
    sep = geom.separation(position)
    assert sep.dims == ("y", "x") and sep.attrs["units"] == "deg"
    y, x = np.indices(geom.npix[::-1])
    ref = geom.pix_to_skycoord(x, y).separation(position).deg
    np.testing.assert_allclose(sep.values, ref, atol=1e-10)


def test_cached_coordinates_follow_the_position_and_are_read_only():
    # pixel coordinates and offsets are cached per sky grid (shared by its cube/image variants
    # and by geometries read from the same header); a new position must not get a stale answer
    geom = WcsGeom.create((83.6, 22.0), width=3, binsz=0.1, axes=[ENERGY])
    first, second = SkyCoord(83.6, 22.0, unit="deg"), SkyCoord(84.6, 22.5, unit="deg")
    y, x = np.indices(geom.npix[::-1])
    for position in (first, second, first):
        expected = geom.pix_to_skycoord(x, y).separation(position).deg
        np.testing.assert_allclose(geom.to_image().separation(position).values, expected, atol=1e-10)
    again = WcsGeom.from_header(geom.to_header_string())
    np.testing.assert_allclose(again.separation(second).values, geom.pix_to_skycoord(x, y).separation(second).deg, atol=1e-10)
    lon, _ = geom.get_coord()
    with pytest.raises(ValueError, match="read-only"):
        lon[0, 0] = 0.0


def test_contains_edges():
    geom = WcsGeom.create((0, 0), width=(4, 2), binsz=1.0, frame="galactic")
    lon = np.array([0.0, 1.99, 2.01, 358.5, 0.0, 0.0])
    lat = np.array([0.0, 0.0, 0.0, 0.99, 1.01, -0.99])
    np.testing.assert_array_equal(geom.contains((lon, lat)), [True, True, False, True, False, True])


def test_region_mask_circle_matches_separation():
    geom = WcsGeom.create((83.63, 22.01), width=3, binsz=0.02, proj="TAN")
    mask = geom.region_mask("icrs;circle(83.633,22.014,0.5)")
    assert mask.dims == ("y", "x") and mask.dtype == bool
    np.testing.assert_array_equal(mask.values, geom.separation((83.633, 22.014)).values < 0.5)


# ---- cutouts --------------------------------------------------------------------------
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geom=geoms(max_npix=80), fx=st.floats(0, 1), fy=st.floats(0, 1), width=st.floats(0.01, 20))
def test_cutout_is_a_slice_of_the_parent(geom, fx, fy, width):
    nx, ny = geom.npix
    position = geom.pix_to_skycoord(fx * (nx - 1), fy * (ny - 1))
    slices = geom.cutout_slices(position, width)
    small = geom.cutout(position, width)
    assert small.npix == (slices["x"].stop - slices["x"].start, slices["y"].stop - slices["y"].start)
    assert small.axes == geom.axes
    lon, lat = small.get_coord()
    plon, plat = (c[slices["y"], slices["x"]] for c in geom.get_coord())
    np.testing.assert_allclose(lat, plat, atol=1e-9)
    np.testing.assert_allclose((lon - plon + 180) % 360 - 180, 0, atol=1e-9)
    np.testing.assert_allclose(small.solid_angle(), geom.solid_angle()[slices["y"], slices["x"]], rtol=1e-9)
    # the position has the same pixel coordinates in the cutout, shifted by the slice start
    # (compare coordinates, not rounded pixels: a position on a pixel edge rounds either way)
    px, py = geom.coord_to_pix(position)
    cx, cy = small.coord_to_pix(position)
    np.testing.assert_allclose([cx + slices["x"].start, cy + slices["y"].start], [px, py], atol=1e-6)
    # its header, read back (the reader reuses the cutout's grid), and parsed afresh by astropy give the same grid
    header = small.to_header_string()
    read_back = WcsGeom.from_header(header, npix=small.npix)
    fresh = WcsGeom.from_header(fits.Header.fromstring(header, sep="\n"), npix=small.npix)
    for other in (read_back, fresh):
        np.testing.assert_allclose(other.get_coord()[1], lat, atol=1e-9)
        np.testing.assert_allclose((other.get_coord()[0] - lon + 180) % 360 - 180, 0, atol=1e-9)


def test_cutout_size_clipping_and_errors():
    geom = WcsGeom.create((83.63, 22.01), width=(10, 8), binsz=0.1, proj="TAN", axes=[ENERGY])
    inner = geom.cutout_slices((83.63, 22.01), 2.0)
    assert inner == {"y": slice(30, 50), "x": slice(40, 60)}
    edge_position = geom.pix_to_skycoord(1, 2)
    clipped = geom.cutout_slices(edge_position, 2.0)
    assert clipped["x"].start == 0 and clipped["y"].start == 0
    assert clipped["x"].stop == 1 + 10 and clipped["y"].stop == 2 + 10
    with pytest.raises(ValueError, match="does not overlap"):
        geom.cutout(SkyCoord(200, -40, unit="deg"), 2.0)
    with pytest.raises(ValueError, match="does not overlap"):
        geom.cutout((93.63, 22.01), 2.0)


def test_map_cutout_keeps_wcs_attr():
    geom = WcsGeom.create((0, 0), width=(6, 4), binsz=0.1, frame="galactic", axes=[ENERGY])
    data = np.random.default_rng(1).poisson(3, geom.data_shape).astype(float)
    da = geom.to_dataarray(data, unit="", chunks={"y": 20})
    small = cutout(da, (1.0, 0.5), 1.0)
    assert isinstance(small.data, dsa.Array)
    sub_geom = geom_of(small)
    assert sub_geom == geom.cutout((1.0, 0.5), 1.0)
    slices = geom.cutout_slices((1.0, 0.5), 1.0)
    np.testing.assert_array_equal(small.values, data[:, slices["y"], slices["x"]])
    lon, lat = lonlat(small)
    assert float(np.abs(lat - 0.5).min()) < 0.1


# ---- other derived geometries ------------------------------------------------------
def test_up_and_downsample_keep_the_outer_edges():
    geom = WcsGeom.create((40, 30), width=(4, 2), binsz=0.1, proj="TAN")
    fine = geom.upsample(4)
    assert fine.npix == (160, 80) and fine.binsz == pytest.approx((0.025, 0.025))
    corners = np.array([-0.5, geom.npix[0] - 0.5]), np.array([-0.5, geom.npix[1] - 0.5])
    fine_corners = np.array([-0.5, fine.npix[0] - 0.5]), np.array([-0.5, fine.npix[1] - 0.5])
    np.testing.assert_allclose(geom.pix_to_coord(*corners), fine.pix_to_coord(*fine_corners), atol=1e-10)
    assert fine.downsample(4) == geom
    assert float(fine.solid_angle().sum()) == pytest.approx(float(geom.solid_angle().sum()), rel=1e-10)
    with pytest.raises(ValueError, match="divisible"):
        geom.downsample(3)


def test_image_and_cube():
    geom = WcsGeom.create((0, 0), width=2, binsz=0.5, axes=[ENERGY])
    image = geom.to_image()
    assert image.axes == () and image.data_shape == (4, 4) and image.is_image
    offset = MapAxis.from_bounds(0, 2, 4, name="offset", unit="deg")
    cube = image.to_cube([ENERGY, offset])
    assert cube.dims == ("energy", "offset", "y", "x")
    assert cube.to_image() == image
    sub = geom.slice_by_idx({"energy": slice(1, 3), "x": slice(1, 3)})
    assert sub.data_shape == (2, 4, 2)
    np.testing.assert_allclose(sub.axes[0].edges_min.value, ENERGY.edges_min.value[1:3])


@pytest.mark.parametrize("frame, proj, center", [("icrs", "CAR", (83.6, 22.0)), ("galactic", "TAN", (0, 0)),
                                                  ("icrs", "CAR", (329.7, -30.2))])
def test_cutout_pixel_centres_taken_from_the_parent_equal_their_own(frame, proj, center):
    geom = WcsGeom.create(skydir=center, width=(6, 4), binsz=0.02, frame=frame, proj=proj, axes=[ENERGY])
    geom.get_coord()  # known for the parent: the cutout takes a slice of them
    cut = geom.slice_by_idx({"y": slice(20, 170), "x": slice(33, 283)})
    y, x = np.indices(cut.data_shape[-2:], dtype=float)
    lon, lat = cut.pix_to_coord(x, y)  # computed from the cutout's own WCS
    np.testing.assert_array_equal(cut.get_coord()[0], lon)
    np.testing.assert_array_equal(cut.get_coord()[1], lat)
    assert np.shares_memory(cut.get_coord()[0], geom.get_coord()[0])  # taken from the parent, not recomputed
    # a grid read back from the cutout's header shares them
    again = WcsGeom.from_header(cut.to_header_string(), npix=cut.npix)
    np.testing.assert_array_equal(again.get_coord()[1], lat)
    assert not again.get_coord()[0].flags.writeable


def test_to_variable_checks_the_shape_and_names_the_grid():
    geom = WcsGeom.create((0, 0), width=2, binsz=0.5, axes=[ENERGY])
    var = geom.to_variable(np.ones(geom.data_shape), unit="cm2 s", spatial=("y_irf", "x_irf"))
    assert var.dims == ("energy", "y_irf", "x_irf") and var.attrs["units"] == "cm2 s"
    assert WcsGeom.from_header(var.attrs["wcs"], npix=(4, 4)) == geom.to_image()
    with pytest.raises(ValueError, match=r"does not match the geometry \(energy: 6, y: 4, x: 4\)"):
        geom.to_variable(np.ones((3, 4, 5)))


# ---- serialisation ------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(geom=geoms())
def test_header_pickle_and_dataarray_round_trip(geom):
    assert WcsGeom.from_header(geom.to_header(), axes=geom.axes) == geom
    assert WcsGeom.from_header(geom.to_header_string(), axes=geom.axes) == geom
    assert pickle.loads(pickle.dumps(geom)) == geom
    da = geom.to_dataarray(unit="cm-2 s-1", name="flux")
    assert da.dims == geom.dims and da.shape == geom.data_shape
    assert isinstance(da.attrs["wcs"], str)
    assert set(da.coords) == {"energy", "energy_min", "energy_max"}
    assert WcsGeom.from_dataarray(da) == geom


def test_header_keeps_full_precision():
    geom = WcsGeom.create((83.63312345678912, 22.123456789012345), width=1, binsz=0.0123456789012345)
    back = WcsGeom.from_header(geom.to_header_string())
    np.testing.assert_array_equal(back.wcs.wcs.crval, geom.wcs.wcs.crval)
    np.testing.assert_array_equal(back.wcs.wcs.cdelt, geom.wcs.wcs.cdelt)


def test_equality_detects_differences():
    geom = WcsGeom.create((0, 0), width=2, binsz=0.1, axes=[ENERGY])
    assert geom != WcsGeom.create((0, 0), width=2, binsz=0.1)
    assert geom != WcsGeom.create((0, 0.1), width=2, binsz=0.1, axes=[ENERGY])
    assert geom != WcsGeom.create((0, 0), width=2, binsz=0.1, frame="galactic", axes=[ENERGY])
    assert geom != WcsGeom.create((0, 0), width=2, binsz=0.1, proj="TAN", axes=[ENERGY])
    assert geom != WcsGeom.create((0, 0), width=2.2, binsz=0.1, axes=[ENERGY])


def test_to_dataarray_data_and_chunks():
    geom = WcsGeom.create((0, 0), width=(3, 2), binsz=0.1, axes=[ENERGY])
    data = np.arange(np.prod(geom.data_shape), dtype=float).reshape(geom.data_shape)
    da = geom.to_dataarray(data, unit=u.Unit("TeV-1"))
    assert da.attrs["units"] == u.Unit("TeV-1").to_string()
    np.testing.assert_array_equal(da.values, data)
    lazy = geom.to_dataarray(dsa.from_array(data, chunks=(2, 10, 10)))
    assert lazy.chunks == ((2, 2, 2), (10, 10), (10, 10, 10))
    assert lazy.name is None
    zeros = geom.to_dataarray(chunks={"energy": 3}, dtype="float32")
    assert zeros.chunks[0] == (3, 3) and zeros.dtype == np.float32
    with pytest.raises(ValueError, match=r"energy: 6, y: 20, x: 30"):
        geom.to_dataarray(data.reshape(6, 30, 20))
    with pytest.raises(ValueError, match="no 'wcs' attr"):
        WcsGeom.from_dataarray(xr.DataArray(data, dims=geom.dims))


def test_repr_shows_the_essentials():
    text = repr(WcsGeom.create((83.63, 22.01), width=(5, 4), binsz=0.02, proj="TAN", axes=[ENERGY]))
    for part in ("icrs", "TAN", "83.6300 deg, 22.0100 deg", "5 x 4 deg", "0.02 x 0.02 deg", "250 x 200 pix", "energy"):
        assert part in text
