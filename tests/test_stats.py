"""Fit statistics and significances against hand-computed and analytic values."""

import numpy as np
import pytest

from xgamma.stats import cash, li_ma_significance, wstat, wstat_profile_background


# ---- Li & Ma ---------------------------------------------------------------
def test_li_ma_hand_computed():
    # sqrt(2 (10 ln(11 * 10/30) + 20 ln(1.1 * 20/30))), evaluated by hand
    assert li_ma_significance(10, 20, 0.1) == pytest.approx(3.6850322319420266, rel=1e-12)
    # alpha = 0.5: sqrt(2 (100 ln(3 * 100/250) + 150 ln(1.5 * 150/250)))
    assert li_ma_significance(100, 150, 0.5) == pytest.approx(2.2036689092154997, rel=1e-12)


def test_li_ma_published_crab_run():
    # H.E.S.S. DR1 run 23523 in the Gammapy reference analysis (crab-1d.yaml)
    assert li_ma_significance(149, 112, 1 / 12) == pytest.approx(20.63309401814987, rel=1e-10)


def test_li_ma_sign_zero_and_vectorised():
    s = li_ma_significance([0, 0, 5, 10, 2], [0, 5, 0, 10, 20], [0.1, 0.1, 0.1, 1.0, 1.0])
    assert s[0] == 0 and s[3] == 0  # nothing measured; no excess
    assert s[1] < 0 and s[4] < 0  # deficits are negative
    # n_off = 0: S = sqrt(2 n_on ln((1 + a)/a))
    assert s[2] == pytest.approx(np.sqrt(2 * 5 * np.log(11)))
    assert np.all(np.isfinite(s))


def test_li_ma_large_counts_limit():
    # for large counts, S -> excess / sqrt(alpha (n_on + n_off)) (Li & Ma eq. 9 with alpha ~ 1)
    n_off, alpha = 1e6, 1.0
    n_on = n_off + 3 * np.sqrt(2 * n_off)
    approx = (n_on - alpha * n_off) / np.sqrt(alpha * (n_on + n_off))
    assert li_ma_significance(n_on, n_off, alpha) == pytest.approx(approx, rel=1e-4)


def test_li_ma_is_wstat_ts():
    n_on, n_off, alpha = np.array([12.0, 3.0, 40.0]), np.array([30.0, 50.0, 10.0]), np.array([0.2, 0.1, 0.5])
    excess = n_on - alpha * n_off
    ts = wstat(n_on, n_off, alpha, 0.0) - wstat(n_on, n_off, alpha, excess)
    np.testing.assert_allclose(np.sign(excess) * np.sqrt(ts), li_ma_significance(n_on, n_off, alpha), rtol=1e-9)


# ---- WStat -------------------------------------------------------------------
def test_profile_background_no_signal():
    # without signal, b = (n_on + n_off) / (1 + alpha)
    np.testing.assert_allclose(wstat_profile_background(10, 20, 0.5, 0), 30 / 1.5)


def test_profile_background_no_off_counts():
    # n_off = 0: b = max(C, 0) / (alpha (1 + alpha)), C = alpha n_on - (1 + alpha) mu_sig
    alpha = 0.25
    assert wstat_profile_background(10, 0, alpha, 1.0) == pytest.approx((alpha * 10 - 1.25) / (alpha * 1.25))
    assert wstat_profile_background(10, 0, alpha, 5.0) == pytest.approx(0.0)


def test_profile_background_maximises_likelihood():
    n_on, n_off, alpha, mu_sig = 7.0, 13.0, 0.3, 2.5
    b = wstat_profile_background(n_on, n_off, alpha, mu_sig)
    grid = b * np.linspace(0.9, 1.1, 201)
    stat = wstat(n_on, n_off, alpha, mu_sig, mu_bkg=grid)
    assert grid[np.argmin(stat)] == pytest.approx(b, rel=1e-3)


def test_wstat_saturated_is_zero():
    # the best signal n_on - alpha n_off >= 0 reproduces both measurements exactly
    n_on, n_off, alpha = np.array([10.0, 0.0, 5.0]), np.array([20.0, 4.0, 0.0]), np.array([0.1, 0.5, 0.2])
    mu_sig = np.maximum(n_on - alpha * n_off, 0)
    stat = wstat(n_on[[0, 2]], n_off[[0, 2]], alpha[[0, 2]], mu_sig[[0, 2]])
    np.testing.assert_allclose(stat, 0.0, atol=1e-9)


def test_wstat_formula_and_extra_terms():
    n_on, n_off, alpha, mu_sig = 10.0, 20.0, 0.1, 3.0
    b = wstat_profile_background(n_on, n_off, alpha, mu_sig)
    expected = 2 * (mu_sig + (1 + alpha) * b - n_on * np.log(mu_sig + alpha * b) - n_off * np.log(b))
    assert wstat(n_on, n_off, alpha, mu_sig, extra_terms=False) == pytest.approx(expected)
    gof = 2 * (n_on * np.log(n_on) - n_on + n_off * np.log(n_off) - n_off)
    assert wstat(n_on, n_off, alpha, mu_sig) == pytest.approx(expected + gof)


def test_wstat_zero_counts_finite():
    stat = wstat([0, 0, 3], [0, 2, 0], [0.1, 0.1, 0.1], [0.0, 1.0, 0.0])
    assert np.all(np.isfinite(stat))
    # n_on = n_off = 0: W = 2 mu_sig (the background is profiled to 0)
    assert wstat(0, 0, 0.1, 1.5) == pytest.approx(3.0)


# ---- Cash ----------------------------------------------------------------------
def test_cash_values_and_minimum():
    assert cash(5, 2.0) == pytest.approx(2 * (2 - 5 * np.log(2)))
    assert cash(0, 3.0) == pytest.approx(6.0)
    mu = np.linspace(1, 10, 901)
    assert mu[np.argmin(cash(4, mu))] == pytest.approx(4.0, abs=0.011)


def test_cash_saturated_zero_for_perfect_prediction():
    np.testing.assert_allclose(cash([0, 1, 7, 100], [0, 1, 7, 100], saturated=True), 0.0, atol=1e-9)


def test_cash_zero_prediction_is_truncated():
    value = cash(3, 0.0)
    assert np.isfinite(value) and value == pytest.approx(2 * (1e-25 - 3 * np.log(1e-25)))
