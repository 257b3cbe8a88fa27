"""The fast paths of the reduction kernels agree with the plain IRF evaluation; the IRF caches cannot go stale."""

import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord

from xgamma.axes import MapAxis
from xgamma.data import DataStore
from xgamma.geom import WcsGeom
from xgamma.irf import EffectiveAreaTable2D
from xgamma.irf.background import power_law_segments_by_row, power_law_segments_from_log
from xgamma.irf.core import LOG_FLOOR
from xgamma.makers import utils

POINTING = SkyCoord(83.6, 22.0, unit="deg")


def _aeff(values=None, n_offset=5):
    energy = MapAxis.from_energy_bounds(0.1, 100, 8, name="energy_true")
    offset = MapAxis.from_bounds(0, 2.5, n_offset, name="offset", unit="deg")
    if values is None:
        values = np.outer(energy.center.value, 1 - offset.center.value / 3) * 1e5
    coords = {**energy.to_coords(), **offset.to_coords()}
    return EffectiveAreaTable2D(xr.DataArray(values, dims=("energy_true", "offset"), coords=coords,
                                             attrs={"units": "m2"}))


def test_axes_are_cached_but_the_dict_is_a_copy():
    aeff = _aeff()
    axes = aeff.axes
    axes.pop("offset")
    assert list(aeff.axes) == ["energy_true", "offset"]
    assert aeff.axes["offset"] == MapAxis.from_coords(aeff.data, "offset")


@pytest.mark.parametrize("nan_node, n_offset", [(False, 5), (True, 5), (False, 40)])
def test_exposure_equals_evaluate_at_every_pixel(nan_node, n_offset):
    """The interpolation over offset equals `evaluate`, with the weight matrix (few finite nodes) or by gathering
    (many nodes, or a NaN node, which spoils only its neighbours)."""
    values = _aeff(n_offset=n_offset).data.values.copy()
    if nan_node:
        values[3, 2] = np.nan
    aeff = _aeff(values, n_offset)
    geom = WcsGeom.create(skydir=POINTING, width=7, binsz=0.1)  # reaches beyond the 2.5 deg table
    energy = MapAxis.from_energy_bounds(0.2, 50, 6, name="energy_true")
    exposure = utils.make_exposure(aeff, geom, POINTING, 100.0, energy)
    offset = geom.separation(POINTING).values
    expected = aeff.evaluate(energy_true=energy.center.value[:, None, None], offset=offset).to_value("cm2") * 100.0
    np.testing.assert_allclose(exposure, expected, rtol=1e-14, atol=0, equal_nan=True)
    assert np.isnan(exposure).any() == nan_node
    assert np.all(exposure[:, offset > 2.6] == 0)


def test_power_law_segments_by_row_equals_the_last_axis_form():
    """Zero ends (trapezoid), -inf, NaN and nearly flat segments (series) as in `power_law_segments_from_log`."""
    rng = np.random.default_rng(1)
    x = np.geomspace(0.3, 80, 9)
    log_y = np.log(2e-4) - 2.6 * np.log(x)[:, None] + rng.normal(0, 0.2, (1, 400))
    log_y[:, :20] = np.log(np.finfo(np.float32).tiny)  # an empty table region
    log_y[4:, 20:40] = -np.inf
    log_y[:, 40:60] = log_y[0, 40:60] - np.log(x / x[0])[:, None]  # x y constant: d = 0
    log_y[3, 60] = np.nan
    by_row = power_law_segments_by_row(x, log_y, LOG_FLOOR)
    expected = power_law_segments_from_log(x, log_y.T, LOG_FLOOR).T
    np.testing.assert_array_equal(by_row, expected)
    assert np.all(by_row[:, :20] == 0) and np.all(np.isfinite(by_row[:, 40:60]))


def test_axes_kept_from_the_file_equal_the_ones_rebuilt_from_the_coordinates(data_dir):
    # IRFs read from a file keep the axes built from its columns: they must be the axes
    # the labelled table describes (the form every other IRF rebuilds them from)
    observation = DataStore.from_dir(data_dir / "hess-dl3-dr1").get_observations([23523])[0]
    for name in ("aeff", "edisp", "psf", "bkg"):
        irf = getattr(observation, name)
        rebuilt = {dim: MapAxis.from_coords(irf.data, dim) for dim in irf.axis_names}
        assert list(irf.axes) == list(rebuilt)
        for dim, axis in irf.axes.items():
            assert axis == rebuilt[dim] and axis.unit == rebuilt[dim].unit and axis.interp == rebuilt[dim].interp
            np.testing.assert_array_equal(axis.center.value, rebuilt[dim].center.value)
            np.testing.assert_array_equal(axis.edges_min.value, rebuilt[dim].edges_min.value)


def test_analytic_psf_map_equals_direct_evaluation(data_dir):
    # the 3-Gauss PSF is made at the offset nodes and weighted per pixel: the same sum as
    # evaluating the mixture at every pixel's offset
    from xgamma.datasets.map import RAD_AXIS_DEFAULT

    observation = DataStore.from_dir(data_dir / "cta-1dc" / "index" / "gps").get_observations()[0]
    psf, pointing = observation.psf, observation.pointing
    assert "rad" not in psf.axis_names
    geom = WcsGeom.create(skydir=pointing, width=3, binsz=0.2, frame="galactic")
    energy = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", 6, name="energy_true")
    made = utils.make_psf(psf, geom, pointing, energy, RAD_AXIS_DEFAULT)
    offset = geom.separation(pointing).values[None, None]
    direct = psf.evaluate(energy_true=energy.center.to_value("TeV")[:, None, None, None], offset=offset,
                          rad=RAD_AXIS_DEFAULT.center.to_value("deg")[None, :, None, None]).to_value("sr-1")
    assert made.shape == direct.shape and direct.max() > 0
    np.testing.assert_allclose(made, direct, rtol=1e-12, atol=1e-12 * direct.max())
