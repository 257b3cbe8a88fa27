"""Poisson fit statistics and significances for counting experiments.

Which one to use when:

- `cash`: counts with a known (modelled) background, e.g. a `MapDataset`
  or a `SpectrumDataset` with an IRF background: ``-2 ln L`` of Poisson
  counts ``n_on`` given the prediction ``mu_on`` (signal + background).
- `wstat`: ON/OFF measurements where the background is only known through
  OFF counts (`SpectrumDatasetOnOff`): the background in each bin is
  profiled out (`wstat_profile_background`).
- `li_ma_significance`: the classic ON/OFF detection significance
  (Li & Ma 1983, eq. 17); it equals ``sign * sqrt(TS)`` of `wstat` with and
  without a free signal.

All functions are vectorised (NumPy broadcasting), accept plain numbers or
arrays, and are guarded so that empty bins (``n = 0``) and zero predictions
give finite, correct limits instead of NaN. Returned values are plain
``float64`` arrays (0-d arrays for scalar input).

Additive constants (so ``total_stat`` values compare with Gammapy's)
--------------------------------------------------------------------
- `cash` returns ``2 * (mu - n ln mu)``: the Cash (1979) statistic *without*
  the ``n ln n - n`` saturation term. This is the convention of Gammapy's
  ``cash`` (and of XSPEC's ``cstat`` before its own saturation term is
  added): its minimum is not zero for a perfect fit. Pass ``saturated=True``
  to add ``2 * (n ln n - n)`` (the Baker & Cousins 1984 likelihood-ratio
  form, 0 for a perfect fit, about chi2-distributed).
- `wstat` returns, by default, the W statistic of the XSPEC manual (Arnaud,
  appendix "Poisson data with Poisson background") *with* the
  goodness-of-fit terms ``2 * (n_on ln n_on - n_on + n_off ln n_off - n_off)``
  added, which is exactly Gammapy's ``wstat(..., extra_terms=True)``: 0 for
  a saturated model, about chi2-distributed. ``extra_terms=False`` drops them.

References
----------
- Cash, W. 1979, ApJ 228, 939: "Parameter estimation in astronomy through
  application of the likelihood ratio".
- Baker, S. & Cousins, R. D. 1984, NIM 221, 437: "Clarification of the use
  of chi-square and likelihood functions in fits to histograms".
- Li, T.-P. & Ma, Y.-Q. 1983, ApJ 272, 317: "Analysis methods for results in
  gamma-ray astronomy".
- Arnaud, K. et al., XSPEC manual, appendix B "Statistics in XSPEC"
  (W statistic, profile background).
"""

from __future__ import annotations

import numpy as np

__all__ = ["TRUNCATION_VALUE", "cash", "li_ma_significance", "wstat", "wstat_profile_background"]

#: Predictions below this value are replaced by it inside logarithms (as Gammapy does),
#: so a zero prediction for a non-empty bin gives a large but finite statistic.
TRUNCATION_VALUE = 1e-25


def _arrays(*values):
    return [np.asarray(v, dtype=float) for v in values]


def _xlogy(x, y):
    """``x * log(y)`` with the limit 0 where ``x == 0`` (no warnings)."""
    x, y = np.broadcast_arrays(*_arrays(x, y))
    out = np.zeros(x.shape)
    nonzero = x != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out[nonzero] = x[nonzero] * np.log(y[nonzero])
    return out


def cash(n_on, mu_on, saturated=False, truncation_value=TRUNCATION_VALUE):
    """Cash statistic ``-2 ln L`` for Poisson counts (up to a constant).

    Parameters
    ----------
    n_on : float or array-like
        Observed counts (dimensionless, >= 0).
    mu_on : float or array-like
        Predicted counts (dimensionless, >= 0); values below
        ``truncation_value`` are replaced by it.
    saturated : bool
        Add the saturation term ``2 (n ln n - n)`` so that a perfect
        prediction gives 0 (Baker & Cousins 1984). Default False: Gammapy's
        and Cash's convention ``2 (mu - n ln mu)``.
    truncation_value : float
        Smallest prediction used in the logarithm. Default 1e-25.

    Returns
    -------
    `numpy.ndarray`
        Statistic per bin (broadcast shape of the inputs), dimensionless.

    Notes
    -----
    ``C = 2 (mu - n ln mu)`` (Cash 1979, eq. 6, times 2 so that differences
    are chi2-distributed and errordef is 1).
    """
    n_on, mu_on = _arrays(n_on, mu_on)
    mu = np.maximum(mu_on, truncation_value)
    stat = 2 * (mu - _xlogy(n_on, mu))
    if saturated:
        stat = stat + 2 * (_xlogy(n_on, n_on) - n_on)
    return stat


def wstat_profile_background(n_on, n_off, alpha, mu_sig):
    """Background that maximises the ON/OFF likelihood for a given signal.

    Parameters
    ----------
    n_on, n_off : float or array-like
        ON and OFF counts (>= 0).
    alpha : float or array-like
        Exposure ratio ON/OFF (``acceptance / acceptance_off``, > 0).
    mu_sig : float or array-like
        Predicted signal counts in the ON region.

    Returns
    -------
    `numpy.ndarray`
        ``mu_bkg``, the profiled background counts *in the OFF region*
        (the ON background is ``alpha * mu_bkg``).

    Notes
    -----
    Setting the derivative of the Poisson likelihood of ON
    (``mu_sig + alpha mu_bkg``) and OFF (``mu_bkg``) counts to zero gives
    the quadratic ``alpha (1 + alpha) b^2 - C b - n_off mu_sig = 0`` with
    ``C = alpha (n_on + n_off) - (1 + alpha) mu_sig``, whose positive root is
    ``b = (C + sqrt(C^2 + 4 alpha (1 + alpha) n_off mu_sig)) / (2 alpha (1 + alpha))``
    (XSPEC manual, appendix B). It covers the corner cases of the manual:
    ``n_off = 0`` gives ``b = max(C, 0) / (alpha (1 + alpha))``.
    """
    n_on, n_off, alpha, mu_sig = _arrays(n_on, n_off, alpha, mu_sig)
    c = alpha * (n_on + n_off) - (1 + alpha) * mu_sig
    d = np.sqrt(c**2 + 4 * alpha * (alpha + 1) * n_off * mu_sig)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (c + d) / (2 * alpha * (alpha + 1))


def wstat(n_on, n_off, alpha, mu_sig, mu_bkg=None, extra_terms=True):
    """W statistic: ``-2 ln L`` of ON/OFF counts with the background profiled out.

    Parameters
    ----------
    n_on, n_off : float or array-like
        ON and OFF counts (>= 0).
    alpha : float or array-like
        Exposure ratio ON/OFF (> 0).
    mu_sig : float or array-like
        Predicted signal counts in the ON region.
    mu_bkg : float or array-like, optional
        OFF-region background counts; default `wstat_profile_background`.
    extra_terms : bool
        Add ``2 (n_on ln n_on - n_on + n_off ln n_off - n_off)`` so that the
        saturated model gives 0 (Gammapy's default, XSPEC's W). Default True.

    Returns
    -------
    `numpy.ndarray`
        Statistic per bin (broadcast shape of the inputs), dimensionless.

    Notes
    -----
    ``W = 2 [mu_sig + (1 + alpha) mu_bkg - n_on ln(mu_sig + alpha mu_bkg)
    - n_off ln(mu_bkg)]`` plus the goodness-of-fit terms (XSPEC manual,
    appendix B; Cash 1979). ``n ln(...)`` is taken as 0 where ``n = 0``.
    """
    n_on, n_off, alpha, mu_sig = _arrays(n_on, n_off, alpha, mu_sig)
    if mu_bkg is None:
        mu_bkg = wstat_profile_background(n_on, n_off, alpha, mu_sig)
    mu_bkg = np.asarray(mu_bkg, dtype=float)
    stat = 2 * (mu_sig + (1 + alpha) * mu_bkg - _xlogy(n_on, mu_sig + alpha * mu_bkg) - _xlogy(n_off, mu_bkg))
    if extra_terms:
        stat = stat + 2 * (_xlogy(n_on, n_on) - n_on + _xlogy(n_off, n_off) - n_off)
    return stat


def li_ma_significance(n_on, n_off, alpha):
    """Signed ON/OFF detection significance of Li & Ma (1983), eq. 17.

    Parameters
    ----------
    n_on, n_off : float or array-like
        ON and OFF counts (>= 0).
    alpha : float or array-like
        Exposure ratio ON/OFF (> 0).

    Returns
    -------
    `numpy.ndarray`
        Significance in Gaussian sigmas, positive for an excess
        (``n_on > alpha n_off``), negative for a deficit.

    Notes
    -----
    ``S = sqrt(2) sqrt(n_on ln[(1 + alpha)/alpha * n_on/(n_on + n_off)]
    + n_off ln[(1 + alpha) n_off/(n_on + n_off)])``, with a term taken as 0
    where its count is 0, and 0 when both counts are 0. ``S^2`` equals the
    difference of `wstat` without signal and with the best-fit signal
    ``n_on - alpha n_off``.
    """
    n_on, n_off, alpha = np.broadcast_arrays(*_arrays(n_on, n_off, alpha))
    total = n_on + n_off
    with np.errstate(divide="ignore", invalid="ignore"):
        term_on = _xlogy(n_on, (1 + alpha) / alpha * n_on / total)
        term_off = _xlogy(n_off, (1 + alpha) * n_off / total)
    ts = np.clip(2 * (term_on + term_off), 0, None)
    return np.sign(n_on - alpha * n_off) * np.sqrt(ts)
