"""FoVBackgroundMaker: analytic best fit, tilt recovery, exclusion masks and empty cases."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion

from xgamma.axes import MapAxis
from xgamma.datasets.map import MapDataset
from xgamma.geom import WcsGeom
from xgamma.makers.fov_background import FoVBackgroundMaker


def _dataset(norm=1.0, tilt=0.0, seed=0):
    energy = MapAxis.from_energy_bounds(1, 100, 6)
    geom = WcsGeom.create(skydir=(10, 20), width=2, binsz=0.1, axes=[energy])
    dataset = MapDataset.create(geom, name="toy")
    background = 50.0 * energy.center.value[:, None, None] ** -1.0 * np.ones((1, 20, 20))
    dataset.data["background"].values[...] = background
    rng = np.random.default_rng(seed)
    truth = norm * background * energy.center.value[:, None, None] ** -tilt
    dataset.data["counts"].values[...] = rng.poisson(truth)
    dataset.data["mask_safe"].values[...] = True
    return dataset


@pytest.mark.parametrize("method", ["scale", "fit"])
def test_norm_is_counts_over_background(method):
    dataset = _dataset(norm=1.3)
    out = FoVBackgroundMaker(method=method).run(dataset)
    expected = dataset.counts.sum().item() / dataset.background.sum().item()
    assert out.data.attrs["fov_background_norm"] == pytest.approx(expected, rel=1e-12)
    assert out.background.sum().item() == pytest.approx(dataset.counts.sum().item())
    assert "fov_background_norm" not in dataset.data.attrs  # input untouched


def test_masked_out_nan_background_does_not_spoil_the_norm():
    dataset = _dataset(norm=0.8)
    dataset.data["mask_safe"].values[:, :, :3] = False
    dataset.data["background"].values[:, :, 0] = np.nan  # outside the safe mask
    inside = dataset.mask_safe.values
    expected = dataset.counts.values[inside].sum() / dataset.background.values[inside].sum()
    out = FoVBackgroundMaker().run(dataset)
    assert out.data.attrs["fov_background_norm"] == pytest.approx(expected, rel=1e-12)


def test_fit_with_tilt_recovers_the_injected_spectrum():
    dataset = _dataset(norm=0.8, tilt=0.2, seed=3)
    out = FoVBackgroundMaker(method="fit", fit_tilt=True).run(dataset)
    n = dataset.counts.sum().item()
    assert out.data.attrs["fov_background_norm"] == pytest.approx(0.8, abs=5 / np.sqrt(n))
    assert out.data.attrs["fov_background_tilt"] == pytest.approx(0.2, abs=0.03)
    # the fitted model conserves the total number of counts (a property of the Poisson ML fit)
    assert out.background.sum().item() == pytest.approx(n, rel=1e-4)


def test_exclusion_mask_on_a_larger_grid():
    dataset = _dataset()
    centre = SkyCoord(10, 20, unit="deg")
    dataset.data["counts"].values[:, 8:12, 8:12] += 100  # a "source" at the centre
    big = WcsGeom.create(skydir=(10, 20), width=4, binsz=0.1)
    allowed = ~big.region_mask(CircleSkyRegion(centre, 0.35 * u.deg))
    allowed.attrs["wcs"] = big.to_header_string()
    maker = FoVBackgroundMaker(exclusion_mask=allowed)
    mask = maker.make_mask(dataset).values
    assert not mask[:, 8:12, 8:12].any() and mask[:, 0, 0].all()
    norm = maker.run(dataset).data.attrs["fov_background_norm"]
    expected = dataset.counts.values[mask].sum() / dataset.background.values[mask].sum()
    assert norm == pytest.approx(expected)
    assert norm < 1.1  # the source does not leak into the norm


def test_no_counts_outside_exclusion_warns_and_keeps_background():
    dataset = _dataset()
    dataset.data["counts"].values[...] = 0
    with pytest.warns(UserWarning, match="background left unchanged"):
        out = FoVBackgroundMaker().run(dataset)
    assert out is dataset


def test_unknown_method():
    with pytest.raises(ValueError, match="method must be one of"):
        FoVBackgroundMaker(method="ring").run(_dataset())
