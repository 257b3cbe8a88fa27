"""MapDataset: template layout, geometry, cutout, summary and storage round-trips."""

import pickle

import astropy.units as u
import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord

from xgamma.axes import MapAxis
from xgamma.datasets.core import with_values
from xgamma.datasets.map import MapDataset
from xgamma.geom import WcsGeom


@pytest.fixture(scope="module")
def template():
    energy = MapAxis.from_energy_bounds(1, 10, 4)
    energy_true = MapAxis.from_energy_bounds(0.5, 20, 10, name="energy_true")
    geom = WcsGeom.create(skydir=(83.633, 22.014), width=4, binsz=0.02, frame="icrs", proj="CAR", axes=[energy])
    return MapDataset.create(geom, energy_axis_true=energy_true, name="crab")


def test_create_layout_follows_the_reference_defaults(template):
    data = template.data
    assert data["counts"].shape == (4, 200, 200)
    assert data["exposure"].shape == (10, 200, 200)
    assert data["psf"].dims == ("energy_true", "rad", "y_irf", "x_irf")
    assert data["psf"].shape == (10, 66, 20, 20)
    assert data["edisp"].dims == ("energy_true", "energy", "y_irf", "x_irf")
    assert data["edisp"].shape == (10, 4, 20, 20)
    assert data["exposure_irf"].shape == (10, 20, 20)
    rad = MapAxis.from_coords(data, "rad")
    assert rad.bounds.to_value("deg") == pytest.approx([0, 0.66])
    assert data["mask_safe"].dtype == bool and not data["mask_safe"].any()
    assert data["exposure"].attrs["units"] == "cm2 s" and u.Unit(data["psf"].attrs["units"]) == u.Unit("sr-1")
    assert template.name == "crab" and template.livetime == 0


def test_irf_grid_shares_centre_frame_and_projection(template):
    geom, irf = template.geom, template.geom_irf
    assert irf.binsz == pytest.approx((0.2, 0.2))
    assert irf.frame == geom.frame and irf.projection == geom.projection
    assert irf.center_skydir.separation(geom.center_skydir).deg < 1e-8
    assert template.energy_axis.nbin == 4 and template.energy_axis_true.nbin == 10


def test_create_with_migra_edisp():
    geom = WcsGeom.create(skydir=(0, 0), width=2, binsz=0.1, axes=[MapAxis.from_energy_bounds(1, 10, 2)])
    dataset = MapDataset.create(geom, edisp="migra", binsz_irf=0.5)
    assert dataset.edisp.dims == ("energy_true", "migra", "y_irf", "x_irf")
    assert dataset.edisp.shape == (2, 48, 4, 4)
    with pytest.raises(ValueError, match="edisp must be one of"):
        MapDataset.create(geom, edisp="matrix")


def test_cutout_slices_both_grids_consistently(template):
    position = SkyCoord(85.25, 22.01, unit="deg")
    cut = template.cutout(position, width=5)
    # trimmed at the parent edge in RA, full height in Dec
    assert cut.counts.shape == (4, 200, 150)
    assert cut.psf.shape[-2:] == (20, 15)
    # every cutout pixel is the parent pixel at the same sky position, on both grids
    for grid_parent, grid_cut in ((template.geom, cut.geom), (template.geom_irf, cut.geom_irf)):
        sky = grid_cut.pix_to_skycoord(np.array([0, 7]), np.array([0, 11]))
        x, y = grid_parent.coord_to_pix(sky)
        assert np.allclose(x - np.rint(x), 0, atol=1e-6) and np.allclose(y - np.rint(y), 0, atol=1e-6)
    parent = template.geom.to_image()
    assert cut.geom.to_image() == parent.cutout(position, 5)


def test_mask_image_and_info_dict():
    geom = WcsGeom.create(skydir=(0, 0), width=1, binsz=0.5, axes=[MapAxis.from_energy_bounds(1, 10, 2)])
    dataset = MapDataset.create(geom, name="toy")
    dataset.data["counts"][:] = 3.0
    dataset.data["background"][:] = 1.0
    dataset.data["mask_safe"][1] = True
    dataset.data["livetime"] = xr.DataArray(10.0, attrs={"units": "s"})
    assert dataset.mask_image.values.all() and dataset.mask_image.dims == ("y", "x")
    info = dataset.info_dict()
    assert info["counts"] == 12 and info["background"] == 4 and info["excess"] == 8
    assert info["n_bins"] == 4 and info["counts_rate"] == pytest.approx(1.2)
    # Cash significance of n=12 over b=4
    assert info["sqrt_ts"] == pytest.approx(np.sqrt(2 * (12 * np.log(3) - 8)))
    assert "toy" in repr(dataset) and "sqrt_ts" in repr(dataset)


def _filled(template):
    dataset = template.copy(name="filled")
    rng = np.random.default_rng(1)
    for name in ("counts", "background", "exposure", "psf", "edisp", "exposure_irf"):
        dataset.data[name].values[...] = rng.random(dataset.data[name].shape)
    dataset.data["mask_safe"].values[..., 10:50] = True
    dataset.data.attrs["obs_ids"] = [23523]
    return dataset


def test_pickle_round_trip(template):
    dataset = _filled(template)
    assert pickle.loads(pickle.dumps(dataset)) == dataset


@pytest.mark.parametrize("where", ["local", "memory"])
def test_zarr_round_trip(template, tmp_path, where):
    dataset = _filled(template)
    url = str(tmp_path / "ds.zarr") if where == "local" else f"memory://xgamma-test-map-dataset-{id(tmp_path)}.zarr"
    dataset.to_zarr(url)
    back = MapDataset.read(url)
    xr.testing.assert_identical(back.data, dataset.data)
    assert back == dataset
    assert back.geom == dataset.geom and back.geom_irf == dataset.geom_irf


def test_with_values_replaces_only_the_given_values():
    geom = WcsGeom.create(skydir=(0, 0), width=1, binsz=0.5, axes=[MapAxis.from_energy_bounds(1, 10, 2)])
    dataset = MapDataset.create(geom, name="a")
    new = np.full(geom.data_shape, 3.0)
    out = with_values(dataset.data, {"counts": new})
    assert out.counts.values is new and (dataset.counts.values == 0).all()
    assert out.counts.attrs == dataset.counts.attrs and out.attrs == dataset.data.attrs
    assert out.background.values is dataset.background.values  # the others are shared, not copied
    xr.testing.assert_identical(out.drop_vars("counts"), dataset.data.drop_vars("counts"))
