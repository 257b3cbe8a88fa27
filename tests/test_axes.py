import pickle

import astropy.units as u
import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from xgamma.axes import MapAxis


def test_energy_bounds_per_decade_matches_gammapy_convention():
    # 0.1-40 TeV at 10 per decade: ceil(log10(400) * 10) = 27 bins (crab-1d reference)
    axis = MapAxis.from_energy_bounds("0.1 TeV", "40 TeV", 10, per_decade=True)
    assert axis.nbin == 27
    true = MapAxis.from_energy_bounds(0.05, 100, 20, per_decade=True, name="energy_true")
    assert true.nbin == 67
    np.testing.assert_allclose(axis.edges.to_value("TeV")[[0, -1]], [0.1, 40])
    # equal log widths
    np.testing.assert_allclose(np.diff(np.log(axis.edges.value)), np.log(400) / 27)


def test_log_centres_are_geometric():
    axis = MapAxis.from_energy_edges([1, 10, 100] * u.TeV)
    np.testing.assert_allclose(axis.center.to_value("TeV"), [np.sqrt(10), np.sqrt(1000)])
    lin = MapAxis.from_edges([0, 1, 3], name="offset", unit="deg")
    np.testing.assert_allclose(lin.center.value, [0.5, 2])


def test_unit_conversion_at_the_boundary():
    axis = MapAxis.from_energy_bounds(100 * u.GeV, "10 TeV", 2)
    np.testing.assert_allclose(axis.edges.to_value("TeV"), [0.1, 1, 10])
    with pytest.raises(u.UnitConversionError, match="energy_min"):
        MapAxis.from_energy_bounds(1 * u.deg, 10, 2)


def test_invalid_axes_are_rejected_with_the_axis_name():
    with pytest.raises(ValueError, match="'energy'.*positive"):
        MapAxis.from_edges([0, 1, 2], name="energy", unit="TeV", interp="log")
    with pytest.raises(ValueError, match="'offset'.*increasing"):
        MapAxis.from_edges([0, 2, 1], name="offset", unit="deg")
    with pytest.raises(ValueError, match="interp"):
        MapAxis.from_edges([0, 1], name="offset", unit="deg", interp="cubic")


def test_nodes_axis():
    axis = MapAxis.from_nodes([0, 0.5, 1.0] * u.deg, name="offset")
    assert axis.is_nodes
    np.testing.assert_allclose(axis.center.value, [0, 0.5, 1])
    np.testing.assert_allclose(axis.coord_to_pix([0.25, 1.0]), [0.5, 2.0])
    with pytest.raises(ValueError, match="no contiguous edges"):
        axis.edges


def test_coord_to_idx_and_pix():
    axis = MapAxis.from_energy_edges([1, 10, 100])
    np.testing.assert_array_equal(axis.coord_to_idx([0.5, 1, 9.99, 10, 99, 100, 200]), [-1, 0, 0, 1, 1, -1, -1])
    np.testing.assert_array_equal(axis.coord_to_idx([0.5, 200], clip=True), [0, 1])
    # log scale: the geometric centre is the middle of the bin
    np.testing.assert_allclose(axis.coord_to_pix([1, np.sqrt(10), 10, 100]), [-0.5, 0, 0.5, 1.5], atol=1e-12)


def test_xarray_coords_follow_the_convention_and_round_trip():
    axis = MapAxis.from_energy_bounds(1, 100, 4, name="energy_true")
    da = xr.DataArray(np.arange(4.0), dims="energy_true", coords=axis.to_coords())
    assert da.energy_true.attrs == {"units": "TeV", "interp": "log"}
    np.testing.assert_allclose(da.energy_true_min.values, axis.edges_min.value)
    assert MapAxis.from_coords(da, "energy_true") == axis
    # slicing keeps the edges aligned
    part = MapAxis.from_coords(da.isel(energy_true=slice(1, 3)), "energy_true")
    np.testing.assert_allclose(part.edges.value, axis.edges.value[1:4])
    with pytest.raises(KeyError, match="no axis 'offset'"):
        MapAxis.from_coords(da, "offset")


def test_equality_pickle_and_repr():
    axis = MapAxis.from_energy_bounds(1, 10, 3)
    assert pickle.loads(pickle.dumps(axis)) == axis
    assert MapAxis.from_energy_bounds(1000, 10000, 3, unit="GeV") == axis
    assert MapAxis.from_energy_bounds(1, 10, 4) != axis
    assert "energy" in repr(axis) and "3 bins" in repr(axis)


@given(
    lo=st.floats(1e-3, 1e2),
    ratio=st.floats(1.5, 1e4),
    nbin=st.integers(1, 50),
    values=st.lists(st.floats(0, 1), min_size=1, max_size=20),
)
def test_every_value_falls_in_the_bin_whose_edges_contain_it(lo, ratio, nbin, values):
    axis = MapAxis.from_energy_bounds(lo, lo * ratio, nbin)
    energies = lo * ratio ** np.asarray(values) * 0.999999 + lo * 1e-7
    idx = axis.coord_to_idx(energies)
    inside = idx >= 0
    assert np.all(axis.edges_min.value[idx[inside]] <= energies[inside])
    assert np.all(energies[inside] < axis.edges_max.value[idx[inside]])
    # coord_to_pix agrees with the integer index
    pix = axis.coord_to_pix(energies[inside])
    np.testing.assert_array_equal(np.floor(pix + 0.5).clip(0, nbin - 1), idx[inside])
