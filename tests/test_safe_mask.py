"""SafeMaskMaker: each method on synthetic datasets with a known answer, and the reference minima."""

from types import SimpleNamespace

import astropy.units as u
import numpy as np
import pytest
import xarray as xr
import yaml
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion

from xgamma.axes import MapAxis
from xgamma.data import DataStore
from xgamma.datasets.core import Dataset
from xgamma.datasets.spectrum import SpectrumDataset, SpectrumDatasetOnOff
from xgamma.geom import RegionGeom, WcsGeom
from xgamma.makers.safe_mask import SafeMaskMaker, energy_mask
from xgamma.makers.spectrum import SpectrumDatasetMaker

TARGET = SkyCoord(83.633, 22.014, unit="deg", frame="icrs")
ENERGY = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", 10, per_decade=True)  # edges 10**(k/10)
ENERGY_TRUE = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", 20, per_decade=True, name="energy_true")
LIVETIME = 1000.0


def first_safe_edge(dataset):
    mask = dataset.mask_safe.values
    return dataset.energy_axis.edges_min.to_value("TeV")[mask].min() if mask.any() else None


def aeff_curve(energy):
    """A(E) = 1e9 cm2 x min((E / 1 TeV)^2, 1): a power law below 1 TeV (exact under log-log interpolation)."""
    return 1e9 * np.minimum(energy**2, 1.0)


def spectrum_dataset():
    dataset = SpectrumDataset.create(RegionGeom.create(CircleSkyRegion(TARGET, 0.1 * u.deg), axes=[ENERGY]), ENERGY_TRUE)
    data = dataset.data.copy(deep=True)
    data["exposure"].values[:] = aeff_curve(ENERGY_TRUE.center.to_value("TeV")) * LIVETIME
    data["livetime"] = data["livetime"].copy(data=LIVETIME)
    return SpectrumDataset(data)


def map_dataset():
    """A 3-D dataset in the shared layout (dims energy, y, x) wrapped by the base class."""
    geom = WcsGeom.create(skydir=TARGET, npix=(5, 5), binsz=0.5, proj="TAN", axes=[ENERGY])
    geom_true = WcsGeom.create(skydir=TARGET, npix=(5, 5), binsz=0.5, proj="TAN", axes=[ENERGY_TRUE])
    e_true = ENERGY_TRUE.center.to_value("TeV")
    exposure = np.empty(geom_true.data_shape)
    exposure[:] = (aeff_curve(e_true / 2) * LIVETIME)[:, None, None]  # elsewhere: threshold at twice the energy
    exposure[:, 2, 2] = aeff_curve(e_true) * LIVETIME  # the centre pixel
    background = np.empty(geom.data_shape)
    background[:] = np.exp(-0.5 * ((np.arange(ENERGY.nbin) - 7) / 3.0) ** 2)[:, None, None]
    data = xr.Dataset(
        {
            "counts": geom.to_dataarray(),
            "exposure": geom_true.to_dataarray(data=exposure, unit="cm2 s"),
            "background": geom.to_dataarray(data=background),
            "mask_safe": geom.to_dataarray(data=np.ones(geom.data_shape, dtype=bool)),
            "livetime": xr.DataArray(LIVETIME, attrs={"units": "s"}),
        },
        attrs={"name": "map", "obs_ids": [1]},
    )
    return Dataset(data), geom


# ---- aeff-max ------------------------------------------------------------------
def test_aeff_max_spectrum():
    # 20 %: A reaches 0.2 max at E = sqrt(0.2) = 0.447 TeV; the next reco edge is 10**-0.3 = 0.501 TeV
    out = SafeMaskMaker(methods=["aeff-max"], aeff_percent=20).run(spectrum_dataset())
    assert first_safe_edge(out) == pytest.approx(10**-0.3)
    assert out.mask_safe.values[ENERGY.edges_min.to_value("TeV") >= 0.5].all()
    # 50 %: E = 0.707 TeV -> first edge 10**-0.1 = 0.794 TeV
    out = SafeMaskMaker(methods=["aeff-max"], aeff_percent=50).run(spectrum_dataset())
    assert first_safe_edge(out) == pytest.approx(10**-0.1)


def test_aeff_max_map_uses_position():
    dataset, geom = map_dataset()
    out = SafeMaskMaker(methods=["aeff-max"], aeff_percent=20).run(dataset)  # default: map centre (pixel 2, 2)
    mask = out.data["mask_safe"]
    assert mask.dims == ("energy", "y", "x")
    lows = ENERGY.edges_min.to_value("TeV")
    assert lows[mask.values[:, 0, 0]].min() == pytest.approx(10**-0.3)
    # away from the centre the threshold is twice as high: 0.894 TeV -> edge 1 TeV
    off_center = geom.pix_to_skycoord(0, 0)
    out = SafeMaskMaker(methods=["aeff-max"], aeff_percent=20, position=off_center).run(dataset)
    assert lows[out.data["mask_safe"].values[:, 3, 4]].min() == pytest.approx(1.0)


# ---- edisp-bias ------------------------------------------------------------------
def test_edisp_bias_known_threshold():
    true_axis = ENERGY.copy(name="energy_true")
    dataset = SpectrumDataset.create(RegionGeom.create(CircleSkyRegion(TARGET, 0.1 * u.deg), axes=[ENERGY]), true_axis)
    # true axis = reco axis (10/decade); below 1 TeV events land 2 bins higher (bias 10**0.2 - 1 = 0.585), above on the diagonal
    kernel = np.zeros((ENERGY.nbin, ENERGY.nbin))
    for i in range(ENERGY.nbin):  # builds the synthetic input matrix, not a loop over events
        kernel[i, min(i + 2, ENERGY.nbin - 1) if i < 10 else i] = 1.0
    data = dataset.data.copy(deep=True)
    data["edisp"].values[:] = kernel
    dataset = SpectrumDataset(data)
    out = SafeMaskMaker(methods=["edisp-bias"], bias_percent=10).run(dataset)
    # the bias drops from 0.585 (true bin 9) to 0 (bin 10): linear in log E, it crosses 0.1 at
    e = ENERGY.center.to_value("TeV")
    frac = (10**0.2 - 1 - 0.1) / (10**0.2 - 1)
    e_true = np.exp(np.log(e[9]) + frac * (np.log(e[10]) - np.log(e[9])))
    lows = ENERGY.edges_min.to_value("TeV")
    assert first_safe_edge(out) == pytest.approx(lows[lows >= 1.1 * e_true].min())


# ---- offset-max ---------------------------------------------------------------------
def test_offset_max_spectrum_and_map():
    pointing = TARGET.directional_offset_by(0 * u.deg, 0.5 * u.deg)
    observation = SimpleNamespace(pointing=pointing, obs_id=1)
    near = SafeMaskMaker(methods=["offset-max"], offset_max="0.6 deg").run(spectrum_dataset(), observation)
    far = SafeMaskMaker(methods=["offset-max"], offset_max="0.4 deg").run(spectrum_dataset(), observation)
    assert near.mask_safe.all() and not far.mask_safe.any()
    dataset, geom = map_dataset()
    out = SafeMaskMaker(methods=["offset-max"], offset_max="1 deg").run(dataset, observation)
    lon, lat = geom.get_coord()
    expected = SkyCoord(lon, lat, unit="deg").separation(pointing).deg < 1.0
    mask = out.data["mask_safe"].values
    assert np.all(mask == expected[None, :, :]) and 0 < expected.sum() < expected.size


# ---- bkg-peak -------------------------------------------------------------------------
def test_bkg_peak_spectrum_and_map():
    dataset, _ = map_dataset()  # background peaks in reco bin 7
    out = SafeMaskMaker(methods=["bkg-peak"]).run(dataset)
    np.testing.assert_array_equal(out.data["mask_safe"].values[:, 1, 1], np.arange(ENERGY.nbin) > 7)
    spec = spectrum_dataset()
    on_off = SpectrumDatasetOnOff.from_spectrum_dataset(
        spec, counts_off=np.exp(-0.5 * ((np.arange(ENERGY.nbin) - 4) / 2.0) ** 2) * 100, acceptance=1, acceptance_off=5
    )
    out = SafeMaskMaker(methods=["bkg-peak"]).run(on_off)
    np.testing.assert_array_equal(out.mask_safe.values, np.arange(ENERGY.nbin) > 4)


# ---- aeff-default and reference minima ------------------------------------------------
@pytest.fixture(scope="module")
def crab_observations(hess_dir):
    return DataStore.from_dir(hess_dir).get_observations([23523, 23526, 23559, 23592])


def test_aeff_default(crab_observations):
    observation = crab_observations[0]
    lo, hi = observation.aeff.energy_thresholds
    out = SafeMaskMaker().run(spectrum_dataset(), observation)
    np.testing.assert_array_equal(out.mask_safe.values, energy_mask(ENERGY, lo, hi).values)
    assert first_safe_edge(out) >= lo.to_value("TeV") > first_safe_edge(out) / 10**0.1


def test_reference_safe_energy_minima(crab_observations, reference_dir):
    with open(reference_dir / "crab-1d.yaml") as f:
        reference = yaml.safe_load(f)["per_run_safe_energy_min_TeV"]
    energy = MapAxis.from_energy_bounds("0.1 TeV", "40 TeV", 10, per_decade=True)
    energy_true = MapAxis.from_energy_bounds("0.05 TeV", "100 TeV", 20, per_decade=True, name="energy_true")
    empty = SpectrumDataset.create(RegionGeom.create(CircleSkyRegion(TARGET, 0.11 * u.deg), axes=[energy]), energy_true)
    maker = SpectrumDatasetMaker(containment_correction=True, selection=("exposure",))
    safe = SafeMaskMaker(methods=["aeff-max"], aeff_percent=10)
    for observation in crab_observations:
        out = safe.run(maker.run(empty, observation), observation)
        assert first_safe_edge(out) == pytest.approx(reference[str(observation.obs_id)], rel=1e-9)


def test_idempotent_and_combined(crab_observations):
    observation = crab_observations[0]
    maker = SafeMaskMaker(methods=["aeff-default", "aeff-max"], aeff_percent=20)
    once = maker.run(spectrum_dataset(), observation)
    twice = maker.run(once, observation)
    np.testing.assert_array_equal(once.mask_safe.values, twice.mask_safe.values)
    default = SafeMaskMaker().run(spectrum_dataset(), observation).mask_safe.values
    aeff_max = SafeMaskMaker(methods=["aeff-max"], aeff_percent=20).run(spectrum_dataset()).mask_safe.values
    np.testing.assert_array_equal(once.mask_safe.values, default & aeff_max)


# ---- errors ------------------------------------------------------------------------------
def test_unknown_method_lists_known_ones():
    with pytest.raises(ValueError, match="aeff-default.*bkg-peak"):
        SafeMaskMaker(methods=["aeff-min"]).run(spectrum_dataset())


def test_position_and_fixed_offset_exclusive():
    with pytest.raises(ValueError, match="mutually exclusive"):
        SafeMaskMaker(methods=["aeff-max"], position=TARGET, fixed_offset="0.5 deg").run(spectrum_dataset())


def test_observation_required():
    with pytest.raises(ValueError, match="needs the observation"):
        SafeMaskMaker(methods=["offset-max"]).run(spectrum_dataset())
