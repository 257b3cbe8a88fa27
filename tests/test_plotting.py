import sys

import matplotlib
import numpy as np
import pytest

from xgamma.axes import MapAxis
from xgamma.geom import WcsGeom
from xgamma.irf import read_irf

matplotlib.use("Agg")

RUN = "hess-dl3-dr1/data/hess_dl3_dr1_obs_id_023523.fits.gz"


def test_core_modules_do_not_import_matplotlib():
    # xgamma.geom is left out: the `regions` package imports matplotlib itself.
    import subprocess

    code = "import sys, xgamma.data, xgamma.irf, xgamma.io.zarr, xgamma.plotting; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plot_map_draws_the_map_values_in_sky_axes():
    geom = WcsGeom.create(skydir=(83.63, 22.01), width=2, binsz=0.1, frame="icrs", proj="TAN")
    values = np.arange(400.0).reshape(20, 20)
    ax = __import__("xgamma.plotting", fromlist=["plot_map"]).plot_map(geom.to_dataarray(values, unit="cm-2", name="flux"))
    image = ax.get_images()[0]
    np.testing.assert_array_equal(image.get_array(), values)
    assert ax.coords[0].get_axislabel() == "Right Ascension"


def test_plot_map_refuses_cubes_and_names_the_dim():
    from xgamma.plotting import plot_map

    axis = MapAxis.from_energy_bounds(1, 10, 2)
    geom = WcsGeom.create(skydir=(0, 0), width=1, binsz=0.1, axes=[axis])
    with pytest.raises(ValueError, match=r"\['energy'\].*isel\(energy=0\)"):
        plot_map(geom.to_dataarray())


def test_irf_plots_show_the_irf_values(data_dir):
    from xgamma import plotting

    path = data_dir / RUN
    aeff = read_irf(path, "AEFF")
    ax = plotting.plot_aeff(aeff, offset=["0.5 deg"])
    x, y = ax.lines[0].get_data()
    np.testing.assert_allclose(y, aeff.evaluate(energy_true=x, offset=0.5).to_value("cm2"))

    psf = read_irf(path, "PSF")
    ax = plotting.plot_psf_containment(psf, offset=[0])
    x, y = ax.lines[0].get_data()
    i = np.argmin(abs(x - 1.0))
    assert 0.05 < y[i] < 0.2  # H.E.S.S. r68 near 1 TeV is about 0.12 deg

    plotting.plot_edisp(read_irf(path, "EDISP"))
    ax = plotting.plot_background(read_irf(path, "BKG"))
    assert len(ax.collections) == 1
