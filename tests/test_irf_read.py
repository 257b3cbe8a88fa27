"""Every IRF HDU of every DL3 set in the shared data is read with exact values.

Expected arrays come straight from astropy; the axis order of each astropy
array is written out by hand below (FITS column-major arrays come out of
astropy reversed), and the test transposes it to the IRF's dims explicitly.
"""

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from xgamma.irf import (
    Background3D,
    EffectiveAreaTable2D,
    EnergyDispersion2D,
    PSF3Gauss,
    PSFTable,
    RadMax2D,
    read_irf,
)

HESS = "hess-dl3-dr1/data/hess_dl3_dr1_obs_id_023523.fits.gz"
CTA1DC = "cta-1dc/caldb/data/cta/1dc/bcf/South_z20_50h/irf_file.fits"
PROD5_N = "cta-caldb/Prod5-North-20deg-AverageAz-4LSTs09MSTs.180000s-v0.1.fits.gz"
PROD5_S = "cta-caldb/Prod5-South-20deg-AverageAz-14MSTs37SSTs.180000s-v0.1.fits.gz"
MAGIC = "magic/rad_max/data/20131004_05029747_DL3_CrabNebula-W0.40+035.fits"
JOINT = "joint-crab/dl3/magic/run_05029748_DL3.fits"

# (file, HDU, class, data column, dims of the astropy array, factor file unit -> evaluate unit)
TABLE_CASES = [
    (HESS, "AEFF", EffectiveAreaTable2D, "EFFAREA", ("offset", "energy_true"), 1e4),
    (HESS, "EDISP", EnergyDispersion2D, "MATRIX", ("offset", "migra", "energy_true"), 1.0),
    (HESS, "PSF", PSFTable, "RPSF", ("rad", "offset", "energy_true"), 1.0),
    # energy-slowest BKG_3D arrays hold DETX, DETY in C order (fits the empty fields: test_irf_physics.py)
    (HESS, "BKG", Background3D, "BKG", ("energy", "fov_lon", "fov_lat"), 1e6),
    (CTA1DC, "EFFECTIVE AREA", EffectiveAreaTable2D, "EFFAREA", ("offset", "energy_true"), 1e4),
    (CTA1DC, "ENERGY DISPERSION", EnergyDispersion2D, "MATRIX", ("offset", "migra", "energy_true"), 1.0),
    (CTA1DC, "BACKGROUND", Background3D, "BGD", ("energy", "fov_lon", "fov_lat"), 1e6),
    (PROD5_N, "EFFECTIVE AREA", EffectiveAreaTable2D, "EFFAREA", ("offset", "energy_true"), 1e4),
    (PROD5_N, "ENERGY DISPERSION", EnergyDispersion2D, "MATRIX", ("offset", "migra", "energy_true"), 1.0),
    # Prod5 orders its axis columns ENERG, DETX, DETY: energy is the fastest FITS axis
    (PROD5_N, "BACKGROUND", Background3D, "BKG", ("fov_lat", "fov_lon", "energy"), 1e6),
    (PROD5_S, "EFFECTIVE AREA", EffectiveAreaTable2D, "EFFAREA", ("offset", "energy_true"), 1e4),
    (PROD5_S, "BACKGROUND", Background3D, "BKG", ("fov_lat", "fov_lon", "energy"), 1e6),
    (MAGIC, "RAD_MAX", RadMax2D, "RAD_MAX", ("offset", "energy"), 1.0),
    (MAGIC, "EFFECTIVE AREA", EffectiveAreaTable2D, "EFFAREA", ("offset", "energy_true"), 1e4),
    (MAGIC, "ENERGY DISPERSION", EnergyDispersion2D, "MATRIX", ("offset", "migra", "energy_true"), 1.0),
    (JOINT, "EFFECTIVE AREA", EffectiveAreaTable2D, "EFFAREA", ("offset", "energy_true"), 1e4),
    (JOINT, "ENERGY DISPERSION", EnergyDispersion2D, "MATRIX", ("offset", "migra", "energy_true"), 1.0),
]


def _ids(cases):
    return [f"{c[0].split('/')[0]}-{c[1]}" for c in cases]


def _column(path, hdu, column):
    with fits.open(path) as hdul:
        return np.array(hdul[hdu].data[column][0], dtype=float)


def _transposed(array, astropy_dims, target_dims):
    if array.ndim < len(astropy_dims):  # a scalar THETA column drops the size-1 axis
        array = array.reshape((1,) * (len(astropy_dims) - array.ndim) + array.shape)
    return np.transpose(array, [astropy_dims.index(d) for d in target_dims])


@pytest.mark.parametrize("case", TABLE_CASES, ids=_ids(TABLE_CASES))
def test_values_at_nodes_equal_fits_column(data_dir, case):
    path, hdu, cls, column, astropy_dims, factor = case
    irf = read_irf(data_dir / path, hdu)  # class decided from the header
    assert type(irf) is cls
    expected = _transposed(_column(data_dir / path, hdu, column), astropy_dims, irf.axis_names)
    assert irf.data.dims == irf.axis_names
    np.testing.assert_array_equal(irf.data.values, expected)

    # evaluate at the nodes (bin centres / node values) gives the same numbers in canonical units
    centers = [irf.data.coords[name].values for name in irf.axis_names]
    grids = np.meshgrid(*centers, indexing="ij")
    values = irf.evaluate(**dict(zip(irf.axis_names, grids)))
    assert values.unit == irf.unit
    np.testing.assert_allclose(values.value, expected * factor, rtol=1e-12, atol=0)


@pytest.mark.parametrize("case", TABLE_CASES[:4], ids=_ids(TABLE_CASES[:4]))
def test_the_labelled_table_is_built_only_when_asked_for(data_dir, case):
    path, hdu = case[:2]
    irf = read_irf(data_dir / path, hdu)
    grids = np.meshgrid(*[axis.center for axis in irf.axes.values()], indexing="ij", sparse=True)
    before = irf.evaluate(**dict(zip(irf.axis_names, grids)))
    meta = irf.meta
    assert irf._data_array is None  # reading and evaluating need no DataArray
    # built on demand, it is what the DataArray constructor takes and gives back
    rebuilt = type(irf)(irf.data.copy())
    xr.testing.assert_identical(rebuilt.data, irf.data)
    assert rebuilt.meta == meta == irf.meta
    np.testing.assert_array_equal(rebuilt.evaluate(**dict(zip(irf.axis_names, grids))), before)


def test_axes_from_columns(data_dir):
    with fits.open(data_dir / HESS) as hdul:
        table = hdul["AEFF"].data
        e_lo, e_hi, theta = table["ENERG_LO"][0], table["ENERG_HI"][0], table["THETA_LO"][0]
    aeff = read_irf(data_dir / HESS, "AEFF")
    axes = aeff.axes
    np.testing.assert_array_equal(axes["energy_true"].edges_min.to_value("TeV"), e_lo)
    np.testing.assert_array_equal(axes["energy_true"].edges_max.to_value("TeV"), e_hi)
    np.testing.assert_allclose(aeff.data.coords["energy_true"].values, np.sqrt(e_lo.astype(float) * e_hi))
    # HESS offsets are nodes
    assert axes["offset"].is_nodes
    np.testing.assert_array_equal(axes["offset"].center.to_value("deg"), theta)
    assert axes["energy_true"].interp == "log" and axes["offset"].interp == "lin"
    # CTA offsets are bins
    assert not read_irf(data_dir / CTA1DC, "EFFECTIVE AREA").axes["offset"].is_nodes


@pytest.mark.parametrize("path", [CTA1DC, PROD5_N, PROD5_S], ids=["cta-1dc", "prod5-north", "prod5-south"])
def test_psf_3gauss_parameters_exact(data_dir, path):
    psf = read_irf(data_dir / path, "POINT SPREAD FUNCTION")
    assert isinstance(psf, PSF3Gauss)
    for column in ("SCALE", "SIGMA_1", "SIGMA_2", "SIGMA_3", "AMPL_2", "AMPL_3"):
        expected = _column(data_dir / path, "POINT SPREAD FUNCTION", column).T  # astropy: (offset, energy_true)
        np.testing.assert_array_equal(psf.data.sel(parameter=column.lower()).values, expected)
    units = dict(zip(psf.data.coords["parameter"].values, psf.data.coords["parameter_unit"].values))
    assert units["sigma_1"] == "deg"


def test_metadata(data_dir):
    aeff = read_irf(data_dir / HESS, "AEFF")
    assert aeff.data.attrs["LO_THRES"] == pytest.approx(0.870963589956081)
    assert aeff.data.attrs["HI_THRES"] == 100.0
    assert aeff.energy_thresholds[0].to_value("TeV") == pytest.approx(0.870963589956081)
    assert aeff.data.attrs["hduclas3"] == "FULL-ENCLOSURE" and not aeff.is_pointlike
    assert aeff.data.attrs["hdu"] == "AEFF" and aeff.data.attrs["filename"].endswith("023523.fits.gz")
    assert aeff.data.attrs["units"] == "m2" and str(aeff.unit) == "cm2"

    bkg = read_irf(data_dir / HESS, "BKG")
    assert bkg.fov_alignment == "RADEC" and bkg.data.attrs["FOVALIGN_ASSUMED"] is False

    joint = read_irf(data_dir / JOINT, "EFFECTIVE AREA")
    assert joint.is_pointlike
    assert joint.rad_max.to_value("deg") == pytest.approx(0.1414213)
    assert read_irf(data_dir / JOINT, "ENERGY DISPERSION").rad_max.to_value("deg") == pytest.approx(0.1414213)

    rad_max = read_irf(data_dir / MAGIC, "RAD_MAX")
    assert rad_max.is_pointlike and rad_max.rad_max is None


def test_single_offset_tables(data_dir):
    """MAGIC point-like tables have one scalar THETA bin; offset may be omitted."""
    rad_max = read_irf(data_dir / MAGIC, "RAD_MAX")
    assert rad_max.axes["offset"].nbin == 1
    column = _column(data_dir / MAGIC, "RAD_MAX", "RAD_MAX").reshape(-1)
    energy = rad_max.data.coords["energy"].values
    np.testing.assert_allclose(rad_max.evaluate(energy=energy).to_value("deg"), column, rtol=1e-12)
    # the cut is clamped, not zeroed, outside the table
    assert rad_max.evaluate(energy=1e3, offset=1.0).value == pytest.approx(column[-1])

    aeff = read_irf(data_dir / MAGIC, "EFFECTIVE AREA")
    inside = aeff.evaluate(energy_true=1.0)
    assert inside.value > 0
    assert aeff.evaluate(energy_true=1.0, offset=0.4).value == pytest.approx(inside.value)
    assert aeff.evaluate(energy_true=1.0, offset=1.0).value == 0  # outside the offset bin
