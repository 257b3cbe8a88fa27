"""IRF classes against analytic expectations, on one-row tables written here.

No shared file has PSF_KING or BKG_2D; these tables (and 3GAUSS, BKG_3D and
EDISP variants) are built with astropy in the tests.
"""

import logging

import numpy as np
import pytest
from astropy.io import fits
from scipy.special import erf

from xgamma.axes import MapAxis
from xgamma.irf import Background2D, Background3D, EnergyDispersion2D, PSF3Gauss, PSFKing, read_irf


def write_irf(path, extname, axes, columns, header=None):
    """One-row GADF table.

    ``axes``: list of (NAME, lo, hi, unit) in FITS axis order (fastest first);
    ``columns``: name -> (array with numpy dims = reversed FITS order, unit).
    """
    cols = []
    for name, lo, hi, unit in axes:
        for suffix, values in (("LO", lo), ("HI", hi)):
            values = np.asarray(values, dtype=float)
            cols.append(fits.Column(f"{name}_{suffix}", format=f"{values.size}D", unit=unit, array=values[None]))
    for name, (array, unit) in columns.items():
        array = np.asarray(array, dtype=float)
        dim = "(" + ",".join(str(n) for n in array.shape[::-1]) + ")"
        cols.append(fits.Column(name, format=f"{array.size}D", unit=unit, dim=dim, array=array[None]))
    hdu = fits.BinTableHDU.from_columns(cols, name=extname)
    for key, value in (header or {}).items():
        hdu.header[key] = value
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)
    return path


E_EDGES = np.array([0.5, 1.0, 2.0, 4.0])  # TeV
THETA = (np.array([0.0, 1.0]), np.array([1.0, 2.0]))  # two offset bins, centres 0.5 and 1.5 deg


# ---- King ------------------------------------------------------------------------
KING_GAMMA = np.array([[2.0, 2.5, 3.0], [1.8, 2.2, 2.6]])  # (offset, energy)
KING_SIGMA = np.array([[0.10, 0.07, 0.05], [0.12, 0.09, 0.06]])  # deg


def king_density(r_deg, gamma, sigma_deg):
    r, s = np.deg2rad(r_deg), np.deg2rad(sigma_deg)
    return (1 - 1 / gamma) / (2 * np.pi * s**2) * (1 + r**2 / (2 * gamma * s**2)) ** (-gamma)


def king_containment(r_deg, gamma, sigma_deg):
    return 1 - (1 + r_deg**2 / (2 * gamma * sigma_deg**2)) ** (1 - gamma)


@pytest.fixture
def king(tmp_path):
    path = write_irf(
        tmp_path / "king.fits",
        "PSF_2D_KING",
        [("ENERG", E_EDGES[:-1], E_EDGES[1:], "TeV"), ("THETA", *THETA, "deg")],
        {"GAMMA": (KING_GAMMA, ""), "SIGMA": (KING_SIGMA, "deg")},
        {"HDUCLASS": "GADF", "HDUCLAS1": "RESPONSE", "HDUCLAS2": "RPSF", "HDUCLAS4": "PSF_KING"},
    )
    return read_irf(path, "PSF_2D_KING")


def test_king_matches_formula_at_nodes(king):
    assert isinstance(king, PSFKing)
    e = np.sqrt(E_EDGES[:-1] * E_EDGES[1:])[:, None, None]
    o = np.array([0.5, 1.5])[None, :, None]
    r = np.array([0.0, 0.03, 0.1, 0.4])[None, None, :]
    gamma, sigma = KING_GAMMA.T[:, :, None], KING_SIGMA.T[:, :, None]
    density = king.evaluate(energy_true=e, offset=o, rad=r).to_value("sr-1")
    np.testing.assert_allclose(density, king_density(r, gamma, sigma), rtol=1e-12)
    np.testing.assert_allclose(king.containment(r, e, o), king_containment(r, gamma, sigma), rtol=1e-12, atol=1e-15)


def test_king_normalisation_and_radius(king):
    gamma, sigma = KING_GAMMA[0, 1], KING_SIGMA[0, 1]
    e, o = np.sqrt(1.0 * 2.0), 0.5
    r = np.linspace(0, 5.0, 200001)
    density = king.evaluate(energy_true=e, offset=o, rad=r).to_value("sr-1")
    numeric = np.trapezoid(2 * np.pi * np.deg2rad(r) * density, np.deg2rad(r))
    assert numeric == pytest.approx(king_containment(5.0, gamma, sigma), abs=1e-6)
    assert king_containment(1e4, gamma, sigma) == pytest.approx(1, abs=1e-9)  # normalised at infinity
    fraction = np.array([0.39, 0.68, 0.95])
    expected = sigma * np.sqrt(2 * gamma * ((1 - fraction) ** (1 / (1 - gamma)) - 1))
    np.testing.assert_allclose(king.containment_radius(fraction, e, o).to_value("deg"), expected, rtol=1e-9)


def test_king_between_nodes_is_a_normalised_mixture(king):
    e = 1.0  # between the centres 0.707 and 1.414 TeV, halfway in log energy
    c = king.containment(0.1, e, 0.5)
    c0 = king_containment(0.1, KING_GAMMA[0, 0], KING_SIGMA[0, 0])
    c1 = king_containment(0.1, KING_GAMMA[0, 1], KING_SIGMA[0, 1])
    assert c == pytest.approx(0.5 * (c0 + c1), rel=1e-12)
    assert king.containment(1e4, e, 0.5) == pytest.approx(1, abs=1e-6)
    assert king.evaluate(energy_true=5.0, offset=0.5, rad=0).value == 0  # outside the table
    assert np.isnan(king.containment_radius(0.68, 5.0, 0.5).value)


def test_king_to_psf_table(king):
    table = king.to_psf_table()
    gamma, sigma = KING_GAMMA[1, 2], KING_SIGMA[1, 2]
    e = np.sqrt(2.0 * 4.0)
    expected = sigma * np.sqrt(2 * gamma * ((1 - 0.68) ** (1 / (1 - gamma)) - 1))
    assert table.containment_radius(0.68, e, 1.5).to_value("deg") == pytest.approx(expected, rel=2e-3)
    assert table.data.attrs["units"] == "sr-1" and table.tag == "psf_table"


# ---- triple Gauss -------------------------------------------------------------------
def test_3gauss_normalisation(tmp_path):
    shape = (2, 3)  # (offset, energy)
    params = {
        "SCALE": (np.full(shape, 1.0), "sr-1"),  # deliberately not the normalising value
        "SIGMA_1": (np.full(shape, 0.05), "deg"),
        "AMPL_2": (np.full(shape, 0.3), ""),
        "SIGMA_2": (np.full(shape, 0.1), "deg"),
        "AMPL_3": (np.full(shape, 0.05), ""),
        "SIGMA_3": (np.full(shape, 0.3), "deg"),
    }
    params["SIGMA_1"][0][1, 2] = 0.0  # an empty node (no PSF), as in CTA files
    params["AMPL_2"][0][1, 2] = params["AMPL_3"][0][1, 2] = 0.0
    path = write_irf(
        tmp_path / "g.fits",
        "PSF_2D_GAUSS",
        [("ENERG", E_EDGES[:-1], E_EDGES[1:], "TeV"), ("THETA", *THETA, "deg")],
        params,
        {"HDUCLASS": "OGIP", "HDUCLAS2": "RPSF", "HDUCLAS4": "3GAUSS"},
    )
    psf = read_irf(path, "PSF_2D_GAUSS")
    assert isinstance(psf, PSF3Gauss)
    amps, sig = np.array([1.0, 0.3, 0.05]), np.array([0.05, 0.1, 0.3])
    e = np.sqrt(1.0 * 2.0)
    r = np.linspace(0, 5.0, 200001)
    density = psf.evaluate(energy_true=e, offset=0.5, rad=r).to_value("sr-1")
    assert np.trapezoid(2 * np.pi * np.deg2rad(r) * density, np.deg2rad(r)) == pytest.approx(1, abs=1e-6)
    # GADF shape: S/pi * sum_i A_i exp(-r^2 / 2 sigma_i^2), with the norm fixed analytically
    shape_expected = np.sum(amps[:, None] * np.exp(-(r[None, ::1000] ** 2) / (2 * sig[:, None] ** 2)), axis=0)
    norm = 2 * np.pi * np.sum(amps * np.deg2rad(sig) ** 2)
    np.testing.assert_allclose(density[::1000], shape_expected / norm, rtol=1e-12)
    containment = np.sum(amps * sig**2 * (1 - np.exp(-(0.12**2) / (2 * sig**2)))) / np.sum(amps * sig**2)
    assert psf.containment(0.12, e, 0.5) == pytest.approx(containment, rel=1e-12)
    r68 = psf.containment_radius(0.68, e, 0.5)
    assert psf.containment(r68, e, 0.5) == pytest.approx(0.68, abs=1e-10)
    # the empty node has no PSF
    e_empty = np.sqrt(2.0 * 4.0)
    assert psf.evaluate(energy_true=e_empty, offset=1.5, rad=0.0).value == 0
    assert psf.containment(1.0, e_empty, 1.5) == 0
    assert np.isnan(psf.containment_radius(0.5, e_empty, 1.5).value)


# ---- background ----------------------------------------------------------------------
BKG_HEADER = {"HDUCLASS": "GADF", "HDUCLAS1": "RESPONSE", "HDUCLAS2": "BKG", "HDUCLAS4": "BKG_2D"}


def _bkg_2d(tmp_path, values_fn, edges):
    theta = np.array([0.0, 0.5, 1.0, 1.5])
    centers = np.sqrt(edges[:-1] * edges[1:])
    data = values_fn(centers[None, :], theta[:, None])  # numpy dims (offset, energy)
    path = write_irf(
        tmp_path / "bkg2d.fits",
        "BACKGROUND",
        [("ENERG", edges[:-1], edges[1:], "TeV"), ("THETA", theta, theta, "deg")],
        {"BKG": (data, "s-1 MeV-1 sr-1")},
        BKG_HEADER,
    )
    return read_irf(path, "BACKGROUND")


def test_background_units_constant_rate(tmp_path):
    """2 s-1 MeV-1 sr-1 = 2e6 s-1 TeV-1 sr-1; over 1-3 TeV that is 4e6 s-1 sr-1."""
    bkg = _bkg_2d(tmp_path, lambda e, o: 2.0 + 0 * e * o, np.geomspace(0.1, 100, 31))
    assert isinstance(bkg, Background2D)
    assert bkg.evaluate(energy="1.3 TeV", offset="0.7 deg").to("s-1 TeV-1 sr-1").value == pytest.approx(2e6, rel=1e-12)
    result = bkg.integrate_energy([1.0, 3.0] * np.array(1.0), offset=0.7)
    assert result.unit == "s-1 sr-1"
    assert result.to_value("s-1 sr-1")[0] == pytest.approx(4e6, rel=1e-12)
    gev = bkg.evaluate_integrate("1000 GeV", "3 TeV", offset=0.7)
    assert gev.to_value("s-1 sr-1") == pytest.approx(4e6, rel=1e-12)


def test_background_power_law_integral_and_offset(tmp_path):
    amplitude, index = 1e-3, 2.7  # s-1 MeV-1 sr-1 at 1 TeV
    bkg = _bkg_2d(tmp_path, lambda e, o: amplitude * e**-index * (1 - o / 3), np.geomspace(0.1, 100, 31))
    edges = np.array([1.0, 3.0, 10.0])
    result = bkg.integrate_energy(edges, offset=[0.0, 0.5, 0.25])
    assert result.shape == (2, 3)
    norm = amplitude * 1e6  # s-1 TeV-1 sr-1
    expected = norm * (edges[:-1] ** (1 - index) - edges[1:] ** (1 - index)) / (index - 1)
    np.testing.assert_allclose(result[:, 0].value, expected, rtol=1e-9)
    np.testing.assert_allclose(result[:, 1].value, expected * (1 - 0.5 / 3), rtol=1e-9)
    # the log of the rate is interpolated linearly in offset: geometric mean halfway between nodes
    np.testing.assert_allclose(result[:, 2].value, expected * np.sqrt(1 - 0.5 / 3), rtol=1e-9)
    value = bkg.evaluate(energy=2.2, offset=0.0).to_value("s-1 TeV-1 sr-1")
    assert value == pytest.approx(norm * 2.2**-index, rel=1e-9)
    assert bkg.evaluate(energy=2.2, offset=1.6).value == 0  # beyond the last offset node


@pytest.mark.parametrize(
    "order", [("ENERG", "DETX", "DETY"), ("DETX", "DETY", "ENERG")], ids=["prod5-order", "hess-order"]
)
@pytest.mark.parametrize("fovalign", ["ALTAZ", "RADEC", None])
def test_background_3d_binding_and_fovalign(tmp_path, caplog, order, fovalign):
    edges = np.geomspace(0.1, 10, 6)
    detx = np.linspace(-2, 2, 5)  # 4 bins
    dety = np.linspace(-3, 3, 4)  # 3 bins: non-square, so a wrong binding cannot pass
    axes = {
        "ENERG": (edges[:-1], edges[1:], "TeV"),
        "DETX": (detx[:-1], detx[1:], "deg"),
        "DETY": (dety[:-1], dety[1:], "deg"),
    }
    centers = {
        "ENERG": np.sqrt(edges[:-1] * edges[1:]),
        "DETX": 0.5 * (detx[:-1] + detx[1:]),
        "DETY": 0.5 * (dety[:-1] + dety[1:]),
    }

    def rate(e, x, y):
        return e**-2.0 * (3 + x) * (5 + y)

    grids = np.meshgrid(*[centers[name] for name in order[::-1]], indexing="ij")  # numpy dims = reversed
    named = dict(zip(order[::-1], grids))
    data = rate(named["ENERG"], named["DETX"], named["DETY"])
    header = dict(BKG_HEADER, HDUCLAS4="BKG_3D")
    if fovalign:
        header["FOVALIGN"] = fovalign
    columns = {"BKG": (data, "s-1 MeV-1 sr-1")}
    path = write_irf(tmp_path / "bkg3d.fits", "BACKGROUND", [(n, *axes[n]) for n in order], columns, header)
    with caplog.at_level(logging.WARNING, logger="xgamma.irf"):
        bkg = read_irf(path, "BACKGROUND")
    assert isinstance(bkg, Background3D)
    assert bkg.data.dims == ("energy", "fov_lon", "fov_lat") and bkg.data.shape == (5, 4, 3)
    e, x, y = np.meshgrid(centers["ENERG"], centers["DETX"], centers["DETY"], indexing="ij")
    values = bkg.evaluate(energy=e, fov_lon=x, fov_lat=y).to_value("s-1 MeV-1 sr-1")
    np.testing.assert_allclose(values, rate(e, x, y), rtol=1e-12)
    if fovalign:
        assert bkg.fov_alignment == fovalign and bkg.data.attrs["FOVALIGN_ASSUMED"] is False
        assert "FOVALIGN" not in caplog.text
    else:
        assert bkg.fov_alignment == "RADEC" and bkg.data.attrs["FOVALIGN_ASSUMED"] is True
        assert "no FOVALIGN" in caplog.text and "bkg3d.fits" in caplog.text


# ---- energy dispersion ----------------------------------------------------------------
def test_edisp_kernel_gaussian_migration(tmp_path):
    """Gaussian migration (mean 1, sigma 0.1): kernel entries equal the erf integrals."""
    e_edges = np.geomspace(0.1, 100, 61)
    migra = np.linspace(0.2, 3.0, 1401)  # fine bins, width 0.002
    m_c = 0.5 * (migra[:-1] + migra[1:])
    sigma = 0.1
    pdf = np.exp(-0.5 * ((m_c - 1) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
    data = np.broadcast_to(pdf[None, :, None], (2, m_c.size, 60))  # (offset, migra, energy)
    path = write_irf(
        tmp_path / "edisp.fits",
        "ENERGY DISPERSION",
        [("ENERG", e_edges[:-1], e_edges[1:], "TeV"), ("MIGRA", migra[:-1], migra[1:], ""), ("THETA", *THETA, "deg")],
        {"MATRIX": (data, "")},
        {"HDUCLASS": "GADF", "HDUCLAS2": "EDISP", "HDUCLAS4": "EDISP_2D"},
    )
    edisp = read_irf(path, "ENERGY DISPERSION")
    assert isinstance(edisp, EnergyDispersion2D)
    true_axis = MapAxis.from_energy_bounds(1, 10, 5, name="energy_true")
    reco_axis = MapAxis.from_energy_bounds(0.5, 20, 12)
    kernel = edisp.to_edisp_kernel(0.5, true_axis, reco_axis, normalize=False)
    e_true = true_axis.center.to_value("TeV")[:, None]
    lo = reco_axis.edges.to_value("TeV")[None, :-1] / e_true
    hi = reco_axis.edges.to_value("TeV")[None, 1:] / e_true
    expected = 0.5 * (erf((hi - 1) / (np.sqrt(2) * sigma)) - erf((lo - 1) / (np.sqrt(2) * sigma)))
    np.testing.assert_allclose(kernel.values, expected, atol=2e-5)
    np.testing.assert_allclose(kernel.sum("energy"), 1, atol=1e-6)
    assert kernel.coords["energy"].attrs["units"] == "TeV"
    np.testing.assert_allclose(kernel.energy_min.values, reco_axis.edges_min.to_value("TeV"))
