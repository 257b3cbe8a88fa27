"""Map storage: Zarr (format 3) round trips and Gammapy-layout FITS maps."""

import uuid

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
import zarr
from astropy.io import fits
from astropy.wcs import WCS

import xgamma
from xgamma.axes import MapAxis
from xgamma.geom import RegionGeom, WcsGeom
from xgamma.io.fits_map import read_map_fits, write_map_fits
from xgamma.io.zarr import XgammaVersionWarning, read_zarr, write_zarr

ENERGY = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", 5)
ENERGY_TRUE = MapAxis.from_energy_bounds("0.05 TeV", "200 TeV", 8, name="energy_true")


@pytest.fixture
def counts():
    geom = WcsGeom.create((83.633, 22.014), width=(4, 3), binsz=0.05, proj="TAN", axes=[ENERGY])
    data = np.random.default_rng(0).poisson(2.0, geom.data_shape).astype("float32")
    return geom.to_dataarray(data, name="counts")


@pytest.fixture(params=["local", "memory"])
def url(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "maps.zarr")
    return f"memory://{uuid.uuid4().hex}.zarr"


def _fermi(data_dir):
    return data_dir / "fermi-3fhl-crab" / "Fermi-LAT-3FHL_data_Fermi-LAT.fits"


# ---- Zarr ------------------------------------------------------------------------------
def test_zarr_round_trip_wcs_map(counts, url):
    write_zarr(counts, url)
    back = read_zarr(url)
    xr.testing.assert_identical(back, counts)
    assert WcsGeom.from_dataarray(back) == WcsGeom.from_dataarray(counts)
    assert back.encoding["xgamma_version"] == xgamma.__version__
    assert zarr.open_group(url, mode="r").attrs["xgamma_version"] == xgamma.__version__
    assert zarr.open_group(url, mode="r").metadata.zarr_format == 3


def test_zarr_round_trip_dask_chunked(url):
    geom = WcsGeom.create((0, 0), width=(6, 4), binsz=0.05, frame="galactic", axes=[ENERGY_TRUE])
    data = dsa.random.default_rng(2).uniform(size=geom.data_shape, chunks=(2, 40, 60))
    lazy = geom.to_dataarray(data, unit="cm2 s", name="exposure")
    write_zarr(lazy, url, group="stacked")
    back = read_zarr(url, group="stacked", chunks={})
    assert isinstance(back.data, dsa.Array)
    assert back.chunks == lazy.chunks
    xr.testing.assert_identical(back.compute(), lazy.compute())
    assert WcsGeom.from_dataarray(back) == geom


def test_zarr_round_trip_dataset(counts, url):
    geom = WcsGeom.from_dataarray(counts)
    exposure = geom.to_image().to_cube([ENERGY_TRUE]).to_dataarray(np.full((8, 60, 80), 1e10), unit="cm2 s")
    mask = geom.to_dataarray(np.ones(geom.data_shape, dtype=bool))
    on = RegionGeom.create("icrs;circle(83.633,22.014,0.11)", axes=[ENERGY]).to_dataarray(
        np.arange(5.0), unit="", name="counts_on"
    )
    ds = xr.Dataset(
        {"counts": counts, "exposure": exposure, "mask_safe": mask, "counts_on": on.rename(energy="energy_on")
         .drop_vars(["energy_min", "energy_max"])},
        attrs={"name": "crab", "obs_ids": [23523, 23526], "livetime": 3600.0},
    )
    write_zarr(ds, url)
    back = read_zarr(url)
    xr.testing.assert_identical(back, ds)
    for name in ("counts", "exposure", "mask_safe"):
        assert WcsGeom.from_dataarray(back[name]) == WcsGeom.from_dataarray(ds[name])
    assert back["mask_safe"].dtype == bool


def test_zarr_groups_in_one_store(counts, url):
    write_zarr(counts, url, group="obs/1")
    write_zarr(counts * 2, url, group="obs/2")
    np.testing.assert_array_equal(read_zarr(url, group="obs/2").values, 2 * counts.values)
    np.testing.assert_array_equal(read_zarr(url, group="obs/1").values, counts.values)


def test_zarr_mode_w_dash_refuses_and_keeps_store(counts, url):
    write_zarr(counts, url)
    with pytest.raises(FileExistsError, match="already exists") as info:
        write_zarr(counts * 0 + 7, url)
    assert url in str(info.value)
    xr.testing.assert_identical(read_zarr(url), counts)
    write_zarr(counts, url, group="g")
    with pytest.raises(FileExistsError, match="group 'g'"):
        write_zarr(counts, url, group="g")
    write_zarr(counts * 3, url, mode="w")
    np.testing.assert_array_equal(read_zarr(url).values, 3 * counts.values)


def test_zarr_missing_store_or_group(counts, url):
    with pytest.raises(FileNotFoundError, match="no Zarr store") as info:
        read_zarr(url)
    assert url in str(info.value)
    write_zarr(counts, url)
    with pytest.raises(FileNotFoundError, match="group 'nope'") as info:
        read_zarr(url, group="nope")
    assert url in str(info.value)


def test_zarr_version_warning(counts, url):
    write_zarr(counts, url)
    zarr.open_group(url, mode="r+").attrs["xgamma_version"] = "0.0.1"
    with pytest.warns(XgammaVersionWarning, match="0.0.1"):
        back = read_zarr(url)
    assert "xgamma_version" not in back.attrs


def test_zarr_converts_non_json_attrs(counts, url):
    geom = WcsGeom.from_dataarray(counts)
    da = counts.copy()
    da.attrs = dict(da.attrs, header=geom.to_header(), scale=np.float32(2.5), edges=np.arange(3))
    write_zarr(da, url)
    back = read_zarr(url)
    assert WcsGeom.from_header(back.attrs["header"]) == geom.to_image()
    assert back.attrs["scale"] == 2.5 and back.attrs["edges"] == [0, 1, 2]
    with pytest.raises(TypeError, match="attr 'counts.bad'"):
        write_zarr(da.assign_attrs(bad=object()), f"{url}-2")


# ---- FITS --------------------------------------------------------------------------------
def test_fits_round_trip_energy_axis(counts, tmp_path):
    path = tmp_path / "counts.fits"
    counts = WcsGeom.from_dataarray(counts).to_dataarray(counts.values, unit="cm-2 s-1", name="counts")
    assert counts.attrs["units"] != "cm-2 s-1"  # normalised by xgamma.units.unit_string
    write_map_fits(counts, path)
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "PRIMARY_BANDS"]
        assert hdul[0].data.shape == counts.shape and hdul[0].header["BANDSHDU"] == "PRIMARY_BANDS"
        assert hdul[0].header["AXCOLS1"] == "E_MIN,E_MAX"
        bands = hdul["PRIMARY_BANDS"].data
        np.testing.assert_array_equal(bands["E_MIN"], ENERGY.edges_min.value)
        assert hdul["PRIMARY_BANDS"].columns["E_MAX"].unit == "TeV"
        world = WCS(hdul[0].header).celestial.wcs_pix2world([[3.0, 7.0]], 0)
    np.testing.assert_allclose(world[0], WcsGeom.from_dataarray(counts).pix_to_coord(3.0, 7.0), atol=1e-10)
    back = read_map_fits(path)
    xr.testing.assert_identical(back, counts.rename(None))
    assert WcsGeom.from_dataarray(back) == WcsGeom.from_dataarray(counts)
    with pytest.raises(FileExistsError):
        write_map_fits(counts, path)
    write_map_fits(counts * 2, path, overwrite=True)
    np.testing.assert_array_equal(read_map_fits(path).values, 2 * counts.values)


def test_fits_round_trip_two_axes_and_nodes(tmp_path):
    nodes = MapAxis.from_nodes([0.1, 1.0, 10.0], name="energy_true", unit="TeV", interp="log")
    rad = MapAxis.from_bounds(0, 0.5, 4, name="rad", unit="deg")
    geom = WcsGeom.create((10, 20), width=(1, 0.6), binsz=0.2, frame="galactic", axes=[nodes, rad])
    data = np.random.default_rng(3).normal(size=geom.data_shape)
    da = geom.to_dataarray(data, unit="sr-1", name="psf")
    path = tmp_path / "psf.fits"
    write_map_fits(da, path, hdu="PSF")
    with fits.open(path) as hdul:
        assert hdul["PSF"].header["AXCOLS1"] == "RAD_MIN,RAD_MAX"
        assert hdul["PSF"].header["AXCOLS2"] == "ENERGY_TRUE"
        assert len(hdul["PSF_BANDS"].data) == 12
    back = read_map_fits(path, hdu="psf")
    xr.testing.assert_identical(back, da)
    assert WcsGeom.from_dataarray(back) == geom


def test_fits_image_and_fermi_formats(tmp_path):
    geom = WcsGeom.create((0, 0), width=2, binsz=0.1)
    image = geom.to_dataarray(np.arange(400.0).reshape(20, 20), unit="")
    write_map_fits(image, tmp_path / "image.fits")
    xr.testing.assert_identical(read_map_fits(tmp_path / "image.fits"), image)
    cube = geom.to_cube([ENERGY]).to_dataarray(np.ones((5, 20, 20)))
    write_map_fits(cube, tmp_path / "ccube.fits", format="fgst-ccube")
    with fits.open(tmp_path / "ccube.fits") as hdul:
        assert hdul[0].header["BANDSHDU"] == "EBOUNDS"
        assert hdul["EBOUNDS"].columns.names == ["CHANNEL", "E_MIN", "E_MAX"]
    xr.testing.assert_identical(read_map_fits(tmp_path / "ccube.fits"), cube)


def test_read_gammapy_dataset_counts(data_dir):
    path = _fermi(data_dir)
    counts = read_map_fits(path, hdu="COUNTS")
    with fits.open(path) as hdul:
        raw = hdul["COUNTS"].data
        bands = hdul["COUNTS_BANDS"].data
        header = hdul["COUNTS"].header
    assert counts.dims == ("energy", "y", "x") and counts.shape == raw.shape
    assert float(counts.sum()) == float(raw.sum()) > 0
    np.testing.assert_array_equal(counts.values, raw)
    np.testing.assert_array_equal(counts["energy_min"].values, bands["E_MIN"].astype(float))
    np.testing.assert_array_equal(counts["energy_max"].values, bands["E_MAX"].astype(float))
    assert counts["energy"].attrs["units"] == "TeV" and counts["energy"].attrs["interp"] == "log"
    geom = WcsGeom.from_dataarray(counts)
    assert geom.frame == "galactic" and geom.projection == "CAR" and geom.npix == (50, 40)
    ref = WCS(header).celestial
    np.testing.assert_allclose(geom.pix_to_coord(12.0, 30.0), ref.wcs_pix2world(12.0, 30.0, 0), atol=1e-10)


def test_read_gammapy_dataset_other_hdus(data_dir):
    path = _fermi(data_dir)
    exposure = read_map_fits(path, hdu="EXPOSURE")
    assert exposure.dims == ("energy_true", "y", "x") and exposure.attrs["units"] == "cm2 s"
    edisp = read_map_fits(path, hdu="EDISP")
    with fits.open(path) as hdul:
        bands = hdul["EDISP_BANDS"].data
        raw = hdul["EDISP"].data
    assert edisp.dims == ("energy_true", "energy", "y", "x")
    np.testing.assert_array_equal(edisp["energy_min"].values, bands["E_MIN"][:5].astype(float))
    np.testing.assert_array_equal(edisp["energy_true_min"].values, bands["ENERGY_TRUE_MIN"][::5].astype(float))
    np.testing.assert_array_equal(edisp.values, raw)
    psf = read_map_fits(path, hdu="PSF")
    assert psf.dims == ("energy_true", "rad", "y", "x")
    assert psf["energy_true"].attrs["units"] == "GeV"
    assert (psf["rad_min"].values == psf["rad"].values).all()  # node axes


def test_read_gammapy_map_files(data_dir):
    iem_path = data_dir / "fermi-3fhl-crab" / "Fermi-LAT-3FHL_iem.fits"
    iem = read_map_fits(iem_path)
    with fits.open(iem_path) as hdul:
        raw, energies = hdul[0].data, hdul["PRIMARY_BANDS"].data["ENERGY_TRUE"]
        ref = WCS(hdul[0].header).celestial
    assert iem.dims == ("energy_true", "y", "x") and iem.name is None
    np.testing.assert_array_equal(iem["energy_true"].values, energies.astype(float))
    assert float(iem.astype(float).sum()) == pytest.approx(float(raw.astype(float).sum()), rel=1e-12)
    assert iem.attrs["units"] == "1 / (MeV s sr cm2)"
    geom = WcsGeom.from_dataarray(iem)
    np.testing.assert_allclose(geom.pix_to_coord(5.0, 9.0), ref.wcs_pix2world(5.0, 9.0, 0), atol=1e-10)
    mask_path = data_dir / "joint-crab" / "exclusion" / "exclusion_mask_crab.fits.gz"
    mask = read_map_fits(mask_path)
    with fits.open(mask_path) as hdul:
        raw = hdul[0].data
    assert mask.dims == ("y", "x")
    np.testing.assert_array_equal(mask.values, raw)
    assert WcsGeom.from_dataarray(mask).center_skydir.icrs.ra.deg == pytest.approx(83.633)


def test_read_map_errors(data_dir):
    with pytest.raises(KeyError, match="NOPE"):
        read_map_fits(_fermi(data_dir), hdu="NOPE")
    with pytest.raises(ValueError, match="not an image"):
        read_map_fits(_fermi(data_dir), hdu="GTI")


def test_fits_to_zarr_round_trip(data_dir, url):
    counts = read_map_fits(_fermi(data_dir), hdu="COUNTS")
    write_zarr(counts, url)
    back = read_zarr(url)
    xr.testing.assert_identical(back, counts)
    assert WcsGeom.from_dataarray(back) == WcsGeom.from_dataarray(counts)
