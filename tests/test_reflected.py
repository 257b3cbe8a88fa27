"""Reflected and wobble OFF regions, checked geometrically and by independent counting."""

import logging

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion, PointSkyRegion

from xgamma.axes import MapAxis
from xgamma.data import DataStore
from xgamma.datasets.spectrum import SpectrumDataset
from xgamma.geom import RegionGeom, WcsGeom
from xgamma.makers.reflected import (
    ReflectedRegionsBackgroundMaker,
    ReflectedRegionsFinder,
    WobbleRegionsFinder,
)
from xgamma.makers.spectrum import SpectrumDatasetMaker

TARGET = SkyCoord(83.633, 22.014, unit="deg", frame="icrs")
ON = CircleSkyRegion(TARGET, 0.11 * u.deg)


def exclusion_mask():
    geom = WcsGeom.create(skydir=TARGET, npix=(150, 150), binsz=0.05, proj="TAN", frame="icrs")
    mask = ~geom.region_mask(CircleSkyRegion(SkyCoord(183.604, -8.708, unit="deg", frame="galactic"), 0.5 * u.deg))
    mask.attrs["wcs"] = geom.to_header_string()
    return mask


@pytest.fixture(scope="module")
def observations(hess_dir):
    return DataStore.from_dir(hess_dir).get_observations([23523, 23592])


def test_reflected_regions_geometry(observations):
    pointing = observations[0].pointing
    regions, _ = ReflectedRegionsFinder().run(ON, pointing)
    assert len(regions) == 12  # reference: alpha = 1/12 for run 23523
    offset = TARGET.separation(pointing).deg
    centers = SkyCoord([r.center for r in regions])
    np.testing.assert_allclose(centers.separation(pointing).deg, offset, atol=1e-3)
    radii = np.array([r.radius.to_value("deg") for r in regions])
    np.testing.assert_allclose(radii, 0.11, rtol=2e-3)
    # no overlap between OFF regions, nor with the ON region: the angular size is measured on the
    # 0.01 deg reference pixels, so neighbours may touch by less than a pixel (as in Gammapy)
    sep = centers[:, None].separation(centers[None, :]).deg + np.eye(len(regions)) * 10
    assert np.all(sep >= 0.22 - 0.01)
    assert np.all(centers.separation(TARGET).deg > 0.22)
    # regions follow each other at increasing position angle about the pointing
    angles = np.unwrap(pointing.position_angle(centers).rad)
    assert np.all(np.abs(np.diff(angles)) > 0)


def test_exclusion_mask_removes_regions(observations):
    pointing = observations[1].pointing
    free, _ = ReflectedRegionsFinder().run(ON, pointing)
    mask = exclusion_mask()
    kept, _ = ReflectedRegionsFinder().run(ON, pointing, exclusion_mask=mask)
    assert (len(free), len(kept)) == (41, 36)  # reference run 23592: alpha = 1/36
    # no kept region contains an excluded mask pixel centre
    geom = WcsGeom.from_dataarray(mask)
    lon, lat = geom.get_coord()
    excluded = SkyCoord(lon[~mask.values], lat[~mask.values], unit="deg")
    for region in kept:
        assert np.all(region.center.separation(excluded).deg > region.radius.to_value("deg") - 0.01)


def test_pointing_inside_on_region_gives_no_region():
    regions, _ = ReflectedRegionsFinder().run(ON, TARGET.directional_offset_by(0 * u.deg, 0.05 * u.deg))
    assert regions == []


def test_reflected_finder_rejects_points_and_bad_increment():
    with pytest.raises(TypeError, match="WobbleRegionsFinder"):
        ReflectedRegionsFinder().run(PointSkyRegion(TARGET), TARGET.directional_offset_by(0 * u.deg, 0.5 * u.deg))
    with pytest.raises(ValueError, match="angle_increment"):
        ReflectedRegionsFinder(angle_increment="0 rad").run(ON, TARGET.directional_offset_by(0 * u.deg, 0.5 * u.deg))


def test_wobble_positions():
    pointing = TARGET.directional_offset_by(30 * u.deg, 0.4 * u.deg)
    regions, _ = WobbleRegionsFinder(n_off_regions=3).run(PointSkyRegion(TARGET), pointing)
    assert len(regions) == 3
    centers = SkyCoord([r.center for r in regions])
    np.testing.assert_allclose(centers.separation(pointing).deg, 0.4, atol=1e-4)
    angle_on = pointing.position_angle(TARGET).deg
    steps = np.sort((pointing.position_angle(centers).deg - angle_on) % 360)
    np.testing.assert_allclose(steps, [90, 180, 270], atol=0.05)


def test_wobble_overlapping_circles_give_none(caplog):
    pointing = TARGET.directional_offset_by(0 * u.deg, 0.4 * u.deg)
    with caplog.at_level(logging.WARNING):
        regions, _ = WobbleRegionsFinder(n_off_regions=5).run(CircleSkyRegion(TARGET, 0.3 * u.deg), pointing)
    assert regions == [] and "overlap" in caplog.text


def test_counts_off_equal_independent_count(observations):
    observation = observations[0]
    energy = MapAxis.from_energy_bounds("0.1 TeV", "40 TeV", 10, per_decade=True)
    energy_true = MapAxis.from_energy_bounds("0.05 TeV", "100 TeV", 20, per_decade=True, name="energy_true")
    empty = SpectrumDataset.create(RegionGeom.create(ON, axes=[energy]), energy_true)
    dataset = SpectrumDatasetMaker(selection=("counts",)).run(empty, observation)
    maker = ReflectedRegionsBackgroundMaker()
    on_off = maker.run(dataset, observation)
    regions, wcs = maker.find_off_regions(dataset, observation)
    np.testing.assert_allclose(on_off.acceptance.values, 1.0)
    np.testing.assert_allclose(on_off.acceptance_off.values, len(regions))
    # recount with the regions package, one region at a time
    events = observation.events.radec
    inside = np.zeros(len(events), dtype=bool)
    for region in regions:
        inside |= region.contains(events, wcs)
    expected, _ = np.histogram(observation.events.energy.to_value("TeV")[inside], bins=energy.edges.to_value("TeV"))
    np.testing.assert_array_equal(on_off.counts_off.values, expected)
    assert "circle" in on_off.counts_off.attrs["regions_off"]


def test_no_off_region_warns(observations, caplog):
    observation = observations[0]
    energy = MapAxis.from_energy_bounds("0.1 TeV", "40 TeV", 5, per_decade=True)
    energy_true = MapAxis.from_energy_bounds("0.05 TeV", "100 TeV", 5, per_decade=True, name="energy_true")
    empty = SpectrumDataset.create(RegionGeom.create(ON, axes=[energy]), energy_true)
    dataset = SpectrumDatasetMaker(selection=("counts",)).run(empty, observation)
    geom = WcsGeom.create(skydir=observation.pointing, width=4, binsz=0.05, proj="TAN")
    everything_excluded = geom.to_dataarray(data=np.zeros((80, 80), dtype=bool))
    with caplog.at_level(logging.WARNING):
        on_off = ReflectedRegionsBackgroundMaker(exclusion_mask=everything_excluded).run(dataset, observation)
    assert "no OFF region" in caplog.text
    assert np.all(on_off.acceptance_off.values == 0) and not on_off.mask_safe.any()


def test_bad_exclusion_mask(observations):
    energy = MapAxis.from_energy_bounds("0.1 TeV", "40 TeV", 5, per_decade=True)
    energy_true = MapAxis.from_energy_bounds("0.05 TeV", "100 TeV", 5, per_decade=True, name="energy_true")
    empty = SpectrumDataset.create(RegionGeom.create(ON, axes=[energy]), energy_true)
    geom = WcsGeom.create(skydir=TARGET, width=4, binsz=0.05, proj="TAN")
    with pytest.raises(ValueError, match="booleans"):
        ReflectedRegionsBackgroundMaker(exclusion_mask=geom.to_dataarray()).run(empty, observations[0])
