"""1-D reduction against the Gammapy reference analyses (crab-1d.yaml, magic-rad-max.yaml)."""

import astropy.units as u
import numpy as np
import pytest
import xarray as xr
import yaml
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion, PointSkyRegion

from xgamma.axes import MapAxis
from xgamma.data import DataStore
from xgamma.datasets.spectrum import SpectrumDataset, SpectrumDatasetOnOff
from xgamma.geom import RegionGeom, WcsGeom
from xgamma.makers.reflected import ReflectedRegionsBackgroundMaker, WobbleRegionsFinder
from xgamma.makers.safe_mask import SafeMaskMaker, energy_mask
from xgamma.makers.spectrum import SpectrumDatasetMaker

CRAB_IDS = [23523, 23526, 23559, 23592]
MAGIC_IDS = [5029747, 5029748]
KEYS = ["counts", "counts_off", "alpha", "acceptance", "acceptance_off", "excess", "sqrt_ts", "livetime", "n_fit_bins"]
TARGET = SkyCoord(83.633, 22.014, unit="deg", frame="icrs")


def crab_exclusion_mask():
    """The tutorial's mask: circle galactic (183.604, -8.708) r=0.5 deg on a 150x150 0.05 deg TAN grid."""
    geom = WcsGeom.create(skydir=TARGET, npix=(150, 150), binsz=0.05, proj="TAN", frame="icrs")
    excluded = CircleSkyRegion(SkyCoord(183.604, -8.708, unit="deg", frame="galactic"), 0.5 * u.deg)
    mask = ~geom.region_mask(excluded)
    mask.attrs["wcs"] = geom.to_header_string()
    return mask


def crab_axes():
    energy = MapAxis.from_energy_bounds("0.1 TeV", "40 TeV", 10, per_decade=True)
    energy_true = MapAxis.from_energy_bounds("0.05 TeV", "100 TeV", 20, per_decade=True, name="energy_true")
    return energy, energy_true


@pytest.fixture(scope="module")
def reference_crab(reference_dir):
    with open(reference_dir / "crab-1d.yaml") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def reference_magic(reference_dir):
    with open(reference_dir / "magic-rad-max.yaml") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def crab_observations(hess_dir):
    return DataStore.from_dir(hess_dir).get_observations(CRAB_IDS)


@pytest.fixture(scope="module")
def crab_datasets(crab_observations):
    energy, energy_true = crab_axes()
    on_region = CircleSkyRegion(TARGET, 0.11 * u.deg)
    empty = SpectrumDataset.create(RegionGeom.create(on_region, axes=[energy]), energy_true)
    maker = SpectrumDatasetMaker(containment_correction=True, selection=("counts", "exposure", "edisp"))
    background = ReflectedRegionsBackgroundMaker(exclusion_mask=crab_exclusion_mask())
    safe = SafeMaskMaker(methods=("aeff-max",), aeff_percent=10)
    out = []
    for observation in crab_observations:
        dataset = maker.run(empty.copy(name=str(observation.obs_id)), observation)
        out.append(safe.run(background.run(dataset, observation), observation))
    return out


@pytest.fixture(scope="module")
def magic_datasets(data_dir):
    observations = DataStore.from_dir(data_dir / "magic" / "rad_max" / "data").get_observations(
        MAGIC_IDS, required_irf="point-like"
    )
    energy = MapAxis.from_energy_bounds("50 GeV", "100 TeV", 5, per_decade=True)
    energy_true = MapAxis.from_energy_bounds("10 GeV", "100 TeV", 10, per_decade=True, name="energy_true")
    on_region = PointSkyRegion(SkyCoord(83.63, 22.01, unit="deg", frame="icrs"))
    empty = SpectrumDataset.create(RegionGeom.create(on_region, axes=[energy]), energy_true)
    maker = SpectrumDatasetMaker(containment_correction=False)
    background = ReflectedRegionsBackgroundMaker(region_finder=WobbleRegionsFinder(n_off_regions=3))
    safe = SafeMaskMaker(methods=("aeff-default",))
    out = []
    for observation in observations:
        dataset = safe.run(background.run(maker.run(empty, observation), observation), observation)
        data = dataset.data.copy()
        data["mask_fit"] = energy_mask(energy, "80 GeV", "20 TeV").assign_attrs(dataset.mask_safe.attrs)
        out.append(SpectrumDatasetOnOff(data))
    return observations, out


def assert_matches(info, ref):
    """The reference tolerances: counts exact, counts_off/alpha exact, excess 0.1 %, sqrt_ts 0.05."""
    assert info["counts"] == ref["counts"]
    assert info["counts_off"] == ref["counts_off"]
    assert info["alpha"] == pytest.approx(ref["alpha"], rel=1e-6)  # the reference is float32-rounded
    assert info["acceptance"] == pytest.approx(ref["acceptance"], rel=1e-9)
    assert info["acceptance_off"] == pytest.approx(ref["acceptance_off"], rel=1e-6)
    assert info["excess"] == pytest.approx(ref["excess"], rel=1e-3)
    assert info["sqrt_ts"] == pytest.approx(ref["sqrt_ts"], abs=0.05)
    assert info["livetime"] == pytest.approx(ref["livetime"], rel=1e-6)
    assert info["n_fit_bins"] == ref["n_fit_bins"]


# ---- reference numbers -----------------------------------------------------
@pytest.mark.parametrize("index", range(4))
def test_crab_per_run_matches_reference(crab_datasets, reference_crab, index):
    ref = reference_crab["per_run"][index]
    dataset = crab_datasets[index]
    assert dataset.name == ref["name"]
    assert_matches(dataset.info_dict(), ref)


def test_crab_stacked_matches_reference(crab_datasets, reference_crab):
    stacked = SpectrumDatasetOnOff.from_list(crab_datasets, name="stacked")
    assert stacked.obs_ids == CRAB_IDS
    assert_matches(stacked.info_dict(), reference_crab["stacked"][0])


def test_stacking_is_associative_and_conserves_counts(crab_datasets):
    a, b, c, d = crab_datasets
    left = a.stack(b).stack(c).stack(d)
    right = a.stack(b.stack(c.stack(d)))
    for key in ("counts", "counts_off", "acceptance", "acceptance_off", "exposure", "edisp"):
        np.testing.assert_allclose(left.data[key].values, right.data[key].values, rtol=1e-12)
    # stacked background is the masked sum of the runs' alpha * counts_off
    expected = sum(ds.background.where(ds.mask_safe, 0).values for ds in crab_datasets)
    np.testing.assert_allclose(left.background.values, expected, rtol=1e-12)
    # exposure adds for runs with safe bins
    np.testing.assert_allclose(left.exposure.values, sum(ds.exposure.values for ds in crab_datasets), rtol=1e-12)


@pytest.mark.parametrize("index", range(2))
def test_magic_rad_max_per_run_matches_reference(magic_datasets, reference_magic, index):
    _, datasets = magic_datasets
    assert_matches(datasets[index].info_dict(), reference_magic["per_run"][index])


def test_magic_counts_follow_rad_max_per_event(magic_datasets):
    """ON counts recounted independently: events within the RAD_MAX bin of their own energy."""
    observations, datasets = magic_datasets
    observation, dataset = observations[0], datasets[0]
    events = observation.events.radec
    energy = observation.events.energy.to_value("TeV")
    center = dataset.geom.center_skydir
    table = observation.rad_max.data.transpose("energy", "offset")
    edges = np.append(table.energy_min.values, table.energy_max.values[-1])
    idx = np.clip(np.searchsorted(edges, energy, side="right") - 1, 0, table.sizes["energy"] - 1)
    cut = table.values[idx, 0]
    inside = center.separation(events).deg <= cut
    counts, _ = np.histogram(energy[inside], bins=dataset.energy_axis.edges.to_value("TeV"))
    np.testing.assert_array_equal(dataset.counts.values, counts)


# ---- maker physics -----------------------------------------------------------
def test_exposure_and_containment(crab_observations):
    observation = crab_observations[0]
    energy, energy_true = crab_axes()
    on_region = CircleSkyRegion(TARGET, 0.11 * u.deg)
    empty = SpectrumDataset.create(RegionGeom.create(on_region, axes=[energy]), energy_true)
    plain = SpectrumDatasetMaker(selection=("exposure",)).run(empty, observation)
    corrected = SpectrumDatasetMaker(selection=("exposure",), containment_correction=True).run(empty, observation)
    offset = TARGET.separation(observation.pointing).deg
    e = energy_true.center.to_value("TeV")
    expected = observation.aeff.evaluate(energy_true=e, offset=offset).to_value("m2") * 1e4
    expected *= observation.livetime.to_value("s")
    np.testing.assert_allclose(plain.exposure.values, expected, rtol=1e-10)
    assert plain.exposure.attrs["units"] == "cm2 s"
    ratio = corrected.exposure.values / np.where(plain.exposure.values > 0, plain.exposure.values, np.nan)
    valid = np.isfinite(ratio)
    # a 0.11 deg circle holds most, not all, of a H.E.S.S. point source
    assert np.all((ratio[valid] > 0.3) & (ratio[valid] < 1.0))
    np.testing.assert_allclose(
        ratio[valid], observation.psf.containment(0.11, energy_true=e[valid], offset=offset), rtol=1e-10
    )


def test_region_average_close_to_center(crab_observations):
    observation = crab_observations[2]  # 1.5 deg offset: the acceptance varies across the region
    energy, energy_true = crab_axes()
    empty = SpectrumDataset.create(RegionGeom.create(CircleSkyRegion(TARGET, 0.11 * u.deg), axes=[energy]), energy_true)
    center = SpectrumDatasetMaker().run(empty, observation)
    average = SpectrumDatasetMaker(use_region_center=False).run(empty, observation)
    valid = (energy_true.center.to_value("TeV") > 1) & (energy_true.center.to_value("TeV") < 30)
    np.testing.assert_allclose(average.exposure.values[valid], center.exposure.values[valid], rtol=0.02)
    np.testing.assert_allclose(
        average.edisp.sum("energy").values[valid], center.edisp.sum("energy").values[valid], atol=0.02
    )
    np.testing.assert_array_equal(average.counts.values, center.counts.values)


def test_edisp_rows_are_probabilities(crab_datasets):
    edisp = crab_datasets[0].edisp
    assert edisp.dims == ("energy_true", "energy")
    rows = edisp.sum("energy").values
    assert np.all(rows <= 1 + 1e-6)
    # between 1 and 10 TeV nearly every event lands inside the 0.1-40 TeV reco range
    e = edisp.energy_true.values
    assert np.all(rows[(e > 1) & (e < 10)] > 0.95)


def test_counts_equal_independent_count(crab_datasets, crab_observations):
    observation, dataset = crab_observations[1], crab_datasets[1]
    inside = TARGET.separation(observation.events.radec).deg < 0.11
    counts, _ = np.histogram(observation.events.energy.to_value("TeV")[inside], bins=dataset.energy_axis.edges.to_value("TeV"))
    np.testing.assert_array_equal(dataset.counts.values, counts)


# ---- errors a Gammapy user expects -------------------------------------------------
def test_containment_correction_needs_full_enclosure(magic_datasets):
    observations, _ = magic_datasets
    energy = MapAxis.from_energy_bounds("50 GeV", "100 TeV", 5, per_decade=True)
    energy_true = MapAxis.from_energy_bounds("10 GeV", "100 TeV", 10, per_decade=True, name="energy_true")
    empty = SpectrumDataset.create(RegionGeom.create(PointSkyRegion(TARGET), axes=[energy]), energy_true)
    with pytest.raises(ValueError, match="full-enclosure"):
        SpectrumDatasetMaker(containment_correction=True).run(empty, observations[0])


def test_point_like_circle_must_follow_rad_max(magic_datasets):
    observations, _ = magic_datasets
    energy = MapAxis.from_energy_bounds("50 GeV", "100 TeV", 5, per_decade=True)
    energy_true = MapAxis.from_energy_bounds("10 GeV", "100 TeV", 10, per_decade=True, name="energy_true")
    empty = SpectrumDataset.create(RegionGeom.create(CircleSkyRegion(TARGET, 0.5 * u.deg), axes=[energy]), energy_true)
    with pytest.raises(ValueError, match="PointSkyRegion"):
        SpectrumDatasetMaker().run(empty, observations[0])


def test_point_region_needs_point_like(crab_observations):
    energy, energy_true = crab_axes()
    empty = SpectrumDataset.create(RegionGeom.create(PointSkyRegion(TARGET), axes=[energy]), energy_true)
    with pytest.raises(ValueError, match="CircleSkyRegion"):
        SpectrumDatasetMaker().run(empty, crab_observations[0])


def test_unknown_selection(crab_observations):
    energy, energy_true = crab_axes()
    empty = SpectrumDataset.create(RegionGeom.create(CircleSkyRegion(TARGET, 0.1 * u.deg), axes=[energy]), energy_true)
    with pytest.raises(ValueError, match="background"):
        SpectrumDatasetMaker(selection=("counts", "background")).run(empty, crab_observations[0])


# ---- dataset behaviour --------------------------------------------------------------
def test_create_layout():
    energy, energy_true = crab_axes()
    geom = RegionGeom.create("icrs;circle(83.633,22.014,0.11)", axes=[energy])
    dataset = SpectrumDataset.create(geom, energy_true, name="empty")
    data = dataset.data
    assert data["counts"].dims == ("energy",) and data["counts"].sizes["energy"] == 27
    assert data["exposure"].dims == ("energy_true",) and data["exposure"].sizes["energy_true"] == 67
    assert data["edisp"].dims == ("energy_true", "energy")
    assert data["exposure"].attrs["units"] == "cm2 s" and data["livetime"].attrs["units"] == "s"
    assert data["mask_safe"].dtype == bool and not bool(data["mask_safe"].any())  # neutral for stacking
    for name in ("counts", "exposure", "mask_safe", "edisp"):
        assert "circle" in data[name].attrs["region"]
    assert dataset.geom == geom
    with pytest.raises(ValueError, match="energy"):
        SpectrumDataset.create(RegionGeom.create(geom.region), energy_true)


def test_on_off_alpha_and_excess():
    energy, energy_true = crab_axes()
    base = SpectrumDataset.create(RegionGeom.create(CircleSkyRegion(TARGET, 0.1 * u.deg), axes=[energy]), energy_true)
    counts = np.arange(27.0)
    data = base.data.copy(deep=True)
    data["counts"].values[:] = counts
    data["mask_safe"].values[:] = True
    on_off = SpectrumDatasetOnOff.from_spectrum_dataset(
        SpectrumDataset(data), counts_off=np.full(27, 8.0), acceptance=np.ones(27), acceptance_off=np.full(27, 4.0)
    )
    np.testing.assert_allclose(on_off.alpha.values, 0.25)
    np.testing.assert_allclose(on_off.background.values, 2.0)
    np.testing.assert_allclose(on_off.excess.values, counts - 2.0)
    info = on_off.info_dict()
    assert info["counts"] == counts.sum() and info["alpha"] == pytest.approx(0.25)
    assert info["acceptance_off"] == pytest.approx(4 * 27)
    assert "SpectrumDatasetOnOff" in repr(on_off)


def test_zarr_round_trip(crab_datasets, tmp_path):
    dataset = crab_datasets[0]
    dataset.to_zarr(str(tmp_path / "crab.zarr"))
    back = SpectrumDatasetOnOff.read(str(tmp_path / "crab.zarr"))
    assert back.info_dict() == dataset.info_dict()
    xr.testing.assert_allclose(back.data["edisp"], dataset.data["edisp"])


def test_npred_counts_the_spatial_model_flux_inside_the_on_region():
    """1-D npred holds the part of the source inside the ON region (a circle of radius R = 0.2 deg):
    a centred Gaussian gives 1 - exp(-R^2 / 2 sigma^2) of a point source's, a centred disk of radius
    2R a quarter (the area ratio), a point source outside nothing; a model without spatial part all."""
    from xgamma.modeling import (
        DiskSpatialModel,
        GaussianSpatialModel,
        PointSpatialModel,
        PowerLawSpectralModel,
        SkyModel,
    )

    energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
    energy_true = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 6, name="energy_true")
    centre = SkyCoord(83.63, 22.01, unit="deg")
    dataset = SpectrumDataset.create(RegionGeom.create(CircleSkyRegion(centre, 0.2 * u.deg), axes=[energy]), energy_true)
    dataset.data["exposure"][:] = 1e15
    dataset.data["edisp"][:] = np.repeat(np.eye(3), 2, axis=0)  # two true bins into each reco bin
    dataset.data["mask_safe"][:] = True

    def npred(spatial):
        dataset.models = [SkyModel(PowerLawSpectralModel(), spatial, name="source")]
        return dataset.npred_signal_values()

    point = npred(PointSpatialModel(lon_0=centre.ra, lat_0=centre.dec, frame="icrs"))
    assert point.sum() > 100
    np.testing.assert_allclose(npred(None), point, rtol=1e-12)
    gaussian = npred(GaussianSpatialModel(lon_0=centre.ra, lat_0=centre.dec, sigma="0.1 deg", frame="icrs"))
    np.testing.assert_allclose(gaussian, point * (1 - np.exp(-2.0)), rtol=3e-3)
    disk = npred(DiskSpatialModel(lon_0=centre.ra, lat_0=centre.dec, r_0="0.4 deg", frame="icrs"))
    np.testing.assert_allclose(disk, point * (1 - np.cos(np.radians(0.2))) / (1 - np.cos(np.radians(0.4))), rtol=3e-3)
    outside = npred(PointSpatialModel(lon_0=centre.ra.deg + 1, lat_0=centre.dec.deg, frame="icrs"))
    np.testing.assert_array_equal(outside, 0.0)
