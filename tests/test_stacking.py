"""Stacking rules, checked against hand-computed expectations."""

import numpy as np
import pytest
import xarray as xr

from xgamma.axes import MapAxis
from xgamma.datasets.core import Dataset
from xgamma.datasets.stacking import add_sums, from_sums, pixel_offset, stack_datasets, to_sums
from xgamma.geom import WcsGeom
from xgamma.io.stack_store import StackStore

ENERGY = MapAxis.from_energy_edges([1, 3, 10], name="energy")
ENERGY_TRUE = MapAxis.from_energy_edges([0.5, 2, 20], name="energy_true")
RAD = MapAxis.from_edges([0, 0.1, 0.2], name="rad", unit="deg")


class Cube(Dataset):
    required = ("counts",)


def _cube(counts, exposure, psf, mask, livetime, geom, geom_irf, obs_id):
    irf = geom_irf.to_image()
    data = xr.Dataset(
        {
            "counts": geom.to_dataarray(counts, name="counts"),
            "background": geom.to_dataarray(np.full(geom.data_shape, 0.5), name="background"),
            "exposure": geom.to_image().to_cube([ENERGY_TRUE]).to_dataarray(exposure, unit="cm2 s"),
            "mask_safe": geom.to_dataarray(mask),
            "exposure_irf": irf.to_cube([ENERGY_TRUE]).to_dataarray(np.full((2, *irf.data_shape), exposure.mean()), unit="cm2 s").rename(y="y_irf", x="x_irf"),
            "psf": irf.to_cube([ENERGY_TRUE, RAD]).to_dataarray(np.broadcast_to(psf, (2, 2, *irf.data_shape)).copy(), unit="sr-1").rename(y="y_irf", x="x_irf"),
            "livetime": xr.DataArray(float(livetime), attrs={"units": "s"}),
        },
        attrs={"name": str(obs_id), "obs_ids": [obs_id]},
    )
    return Cube(data)


@pytest.fixture
def geoms():
    geom = WcsGeom.create(skydir=(0, 0), width=1.0, binsz=0.1, axes=[ENERGY])
    return geom, WcsGeom.create(skydir=(0, 0), width=1.0, binsz=0.5)


def test_counts_add_inside_masks_and_irfs_are_exposure_weighted(geoms):
    geom, geom_irf = geoms
    shape = geom.data_shape
    mask_b = np.ones(shape, bool)
    mask_b[1] = False  # second energy bin unsafe for b
    a = _cube(np.full(shape, 2.0), np.full((2, 10, 10), 100.0), 1.0, np.ones(shape, bool), 10, geom, geom_irf, 1)
    b = _cube(np.full(shape, 3.0), np.full((2, 10, 10), 300.0), 5.0, mask_b, 20, geom, geom_irf, 2)
    stacked = stack_datasets([a, b]).data
    np.testing.assert_array_equal(stacked.counts.isel(energy=0), 5.0)
    np.testing.assert_array_equal(stacked.counts.isel(energy=1), 2.0)  # b masked out
    np.testing.assert_array_equal(stacked.background.isel(energy=1), 0.5)
    assert stacked.mask_safe.all()
    np.testing.assert_array_equal(stacked.exposure, 400.0)  # b's pixels have a safe bin
    # PSF weighted by exposure: (1 x 100 + 5 x 300) / 400 = 4
    np.testing.assert_allclose(stacked.psf, 4.0)
    assert float(stacked.livetime) == 30
    assert stacked.attrs["obs_ids"] == [1, 2]


def test_stacking_is_associative(geoms):
    geom, geom_irf = geoms
    rng = np.random.default_rng(1)
    cubes = [
        _cube(rng.poisson(3, geom.data_shape).astype(float), rng.uniform(1, 9, (2, 10, 10)), rng.uniform(1, 2), rng.uniform(size=geom.data_shape) > 0.2, 5, geom, geom_irf, i)
        for i in range(3)
    ]
    one_go = stack_datasets(cubes).data
    in_steps = stack_datasets([stack_datasets(cubes[:2]), cubes[2]]).data
    for name in one_go.data_vars:
        np.testing.assert_allclose(in_steps[name], one_go[name], rtol=1e-12, err_msg=name)


def test_on_off_alpha_follows_the_summed_background():
    energy = MapAxis.from_energy_edges([1, 10, 100])
    coords = energy.to_coords()

    def onoff(on, off, acc_off, mask):
        return xr.Dataset(
            {
                "counts": ("energy", np.array(on, float)),
                "counts_off": ("energy", np.array(off, float)),
                "acceptance": ("energy", np.ones(2)),
                "acceptance_off": ("energy", np.array(acc_off, float)),
                "mask_safe": ("energy", np.array(mask)),
            },
            coords=coords,
        )

    sums = to_sums(onoff([10, 5], [120, 0], [12, 12], [True, True]))
    other = to_sums(onoff([7, 4], [30, 0], [3, 3], [True, True]))
    stacked = from_sums(sums + other)
    # bin 0: background = 120/12 + 30/3 = 20, off = 150: alpha = 2/15
    np.testing.assert_allclose(stacked.acceptance_off[0], 2 / (20 / 150))
    # bin 1 has no OFF counts: alpha = summed acceptances 2 / 15
    np.testing.assert_allclose(stacked.acceptance_off[1], 15)
    np.testing.assert_array_equal(stacked.counts, [17, 9])


def _deep_copy(dataset):
    return Cube(dataset.data.copy(deep=True))


def test_sums_made_in_place_equal_the_copied_ones(geoms):
    """``overwrite=True`` (the reduce path) gives the same sums, also where a masked pixel holds NaN or inf."""
    geom, geom_irf = geoms
    rng = np.random.default_rng(2)
    mask = rng.uniform(size=geom.data_shape) > 0.3
    mask[:, :2] = False  # rows of pixels with no safe bin: exposure zeroed there
    cube = _cube(rng.poisson(3, geom.data_shape).astype(float), rng.uniform(1, 9, (2, 10, 10)), 1.5, mask, 5, geom, geom_irf, 1)
    with_nan = _deep_copy(cube)
    with_nan.data["background"].values[~mask] = np.nan
    with_nan.data["exposure"].values[:, 0] = np.inf  # a row without a safe bin
    for dataset in (cube, with_nan):
        copied = to_sums(dataset.data)
        before = _deep_copy(dataset).data
        in_place = to_sums(dataset.data, overwrite=True)
        for name in copied.data_vars:
            np.testing.assert_array_equal(in_place[name], copied[name], err_msg=name)
        assert np.isfinite(in_place.background).all() and np.isfinite(in_place.exposure).all()
        # the arrays were reused (that is the point), not copied
        assert np.shares_memory(in_place.counts.values, dataset.data.counts.values)
        assert not before.equals(dataset.data)
    # without overwrite the input is left alone, and read-only arrays are never written
    fresh = _cube(np.ones(geom.data_shape), np.full((2, 10, 10), 2.0), 1.0, mask, 5, geom, geom_irf, 2)
    fresh.data["background"].values.flags.writeable = False
    kept = _deep_copy(fresh).data
    to_sums(fresh.data)
    xr.testing.assert_identical(fresh.data, kept)
    np.testing.assert_array_equal(to_sums(fresh.data, overwrite=True).background, np.where(mask, 0.5, 0.0))
    np.testing.assert_array_equal(fresh.data.background, kept.background)


def test_pixel_offset_requires_the_same_grid():
    geom = WcsGeom.create(skydir=(0, 0), width=2, binsz=0.1)
    cut = geom.cutout((0.3, -0.2), 0.5)
    dy, dx = pixel_offset(geom.to_header_string(), cut.to_header_string())
    np.testing.assert_allclose(cut.pix_to_coord(0, 0), geom.pix_to_coord(dx, dy))
    other = WcsGeom.create(skydir=(0, 0), width=2, binsz=0.05)
    with pytest.raises(ValueError, match="CDELT1"):
        pixel_offset(geom.to_header_string(), other.to_header_string())


def test_stack_store_never_counts_an_observation_twice(tmp_path, geoms):
    geom, geom_irf = geoms
    cube = _cube(np.ones(geom.data_shape), np.full((2, 10, 10), 10.0), 1.0, np.ones(geom.data_shape, bool), 7, geom, geom_irf, 5)
    store = StackStore.create(str(tmp_path / "s.zarr"), cube.data, {"test": 1}, tile_size=(4, 4), irf_tile_size=(1, 1))
    pieces = store.split(to_sums(cube.data))
    assert len([t for t in pieces if t.layer == "main"]) == 9  # 10 x 10 pixels in 4 x 4 tiles
    for tile, piece in pieces.items():
        assert store.update_tile(tile, [(5, piece)]) == [5]
        assert store.update_tile(tile, [(5, piece)]) == []  # already held
    # a task that died after writing its slot but before its ledger leaves the tile unchanged
    tile, piece = next(iter(pieces.items()))
    slot, _ = store.ledger(tile)
    store._group("sums", mode="r+")["counts"][(1 - slot, *tile.index(("energy", "y", "x")))] = 99.0
    assert store.update_tile(tile, [(6, piece)]) == [6]
    np.testing.assert_array_equal(store.read_sums(tile).counts, 2.0)
    # re-opening with another configuration is refused
    with pytest.raises(ValueError, match="another configuration"):
        StackStore.create(str(tmp_path / "s.zarr"), cube.data, {"test": 2})


def test_masks_are_flags_combined_with_or_that_never_overflow(tmp_path, geoms):
    """260 observations safe in the same bin: the summed flag stays 1 (a uint8 count would wrap to 4)."""
    geom, geom_irf = geoms
    mask = np.zeros(geom.data_shape, bool)
    mask[0] = True
    cube = _cube(np.ones(geom.data_shape), np.full((2, 10, 10), 10.0), 1.0, mask, 7, geom, geom_irf, 5)
    sums = to_sums(cube.data)
    assert sums.mask_safe.dtype == np.uint8
    total = sums
    for _ in range(259):
        total = add_sums(total, sums)
    np.testing.assert_array_equal(total.mask_safe, mask.astype(np.uint8))
    np.testing.assert_array_equal(total.counts.isel(energy=0), 260.0)
    # the store combines the same way: 260 pieces of one tile, in one update and in another
    store = StackStore.create(str(tmp_path / "s.zarr"), cube.data, {"test": 1}, tile_size=(10, 10), irf_tile_size=(2, 2))
    tile, piece = next((t, p) for t, p in store.split(sums).items() if t.layer == "main")
    store.update_tile(tile, [(obs_id, piece) for obs_id in range(130)])
    store.update_tile(tile, [(obs_id, piece) for obs_id in range(130, 260)])
    stored = store.read_sums(tile)
    np.testing.assert_array_equal(stored.mask_safe, mask.astype(np.uint8))
    np.testing.assert_array_equal(stored.counts.isel(energy=0), 260.0)
    assert from_sums(stored).mask_safe.values.tolist() == mask.tolist()


def test_stack_store_tiles_are_as_equal_as_possible(tmp_path, geoms):
    geom, geom_irf = geoms
    cube = _cube(np.ones(geom.data_shape), np.full((2, 10, 10), 10.0), 1.0, np.ones(geom.data_shape, bool), 7, geom, geom_irf, 5)
    # 10 pixels with tiles of at most 6: two tiles of 5, not 6 + 4 (Zarr pads an edge chunk to full size)
    store = StackStore.create(str(tmp_path / "s.zarr"), cube.data, {"test": 1}, tile_size=(6, 6), irf_tile_size=(16, 16))
    assert store.tile_size["main"] == (5, 5)
    assert [(t.y, t.x) for t in store.tiles("main")] == [
        (slice(0, 5), slice(0, 5)), (slice(0, 5), slice(5, 10)), (slice(5, 10), slice(0, 5)), (slice(5, 10), slice(5, 10))
    ]
    assert store.tile_size["irf"] == (geom_irf.npix[1], geom_irf.npix[0])  # smaller than the limit: one tile
    for tile, piece in store.split(to_sums(cube.data)).items():
        store.update_tile(tile, [(5, piece)])
    np.testing.assert_array_equal(store.read_sums().counts, 1.0)


def test_stack_store_adds_summed_pieces_and_refuses_a_partly_held_one(tmp_path, geoms):
    geom, geom_irf = geoms
    cube = _cube(np.ones(geom.data_shape), np.full((2, 10, 10), 10.0), 1.0, np.ones(geom.data_shape, bool), 7, geom, geom_irf, 5)
    store = StackStore.create(str(tmp_path / "s.zarr"), cube.data, {"test": 1}, tile_size=(10, 10), irf_tile_size=(16, 16))
    (tile, piece), = [(t, p) for t, p in store.split(to_sums(cube.data)).items() if t.layer == "main"]
    doubled = {name: (where, 2 * values) for name, (where, values) in piece.items()}  # observations 5 and 6 summed
    assert store.update_tile(tile, [((5, 6), doubled)]) == [5, 6]
    np.testing.assert_array_equal(store.read_sums(tile).counts, 2.0)
    assert store.update_tile(tile, [((5, 6), doubled), (7, piece)]) == [7]  # the held pair is skipped
    with pytest.raises(RuntimeError, match="holds observations \\[6\\] but not \\[8\\]"):
        store.update_tile(tile, [((6, 8), doubled)])
    np.testing.assert_array_equal(store.read_sums(tile).counts, 3.0)  # the refused update wrote nothing


def test_from_sums_divides_only_by_positive_weights():
    weight = np.array([[2.0, 0.0, -1.0, np.nan, 4.0]] * 2)
    psf = np.array([[1.0, 1.0, 1.0, 1.0, np.nan]] * 2)
    sums = xr.Dataset({"exposure_irf": (("energy_true", "x_irf"), weight), "psf": (("energy_true", "x_irf"), psf)})
    stacked = from_sums(sums)
    expected = (sums.psf / sums.exposure_irf.where(sums.exposure_irf > 0)).fillna(0.0)  # the rule, in xarray
    np.testing.assert_array_equal(stacked.psf.values, expected.values)
    np.testing.assert_array_equal(stacked.psf.values[0], [0.5, 0, 0, 0, 0])
    assert stacked.psf.attrs["units"] == "sr-1"


def test_stack_store_from_create_equals_reopened_pickled_and_from_sums(tmp_path, geoms):
    import pickle

    geom, geom_irf = geoms
    cube = _cube(np.ones(geom.data_shape), np.full((2, 10, 10), 10.0), 2.0, np.ones(geom.data_shape, bool), 7, geom, geom_irf, 5)
    created = StackStore.create(str(tmp_path / "s.zarr"), cube.data, {"test": 1}, tile_size=(4, 4), irf_tile_size=(1, 1))
    reopened = StackStore(created.url)
    for attr in ("attrs", "tile_size", "arrays", "wcs"):
        assert getattr(created, attr) == getattr(reopened, attr), attr
    assert {g: {n: m.to_dict() for n, m in a.items()} for g, a in created._metadata.items()} == {
        g: {n: m.to_dict() for n, m in a.items()} for g, a in reopened._metadata.items()
    }
    # a copy sent to a worker opens the arrays from the metadata it carries
    sent = pickle.loads(pickle.dumps(created))
    for tile, piece in created.split(to_sums(cube.data)).items():
        assert sent.update_tile(tile, [(5, piece)]) == [5]
    sent.record_obs_ids()
    stacked, expected = created.read().load(), from_sums(created.read_sums())
    for name in expected.data_vars:  # the tiles' stacked product is from_sums of the sums
        np.testing.assert_array_equal(stacked[name].values, expected[name].values.astype(stacked[name].dtype), err_msg=name)
    assert stacked.attrs["obs_ids"] == [5]
