"""Fit against analytic answers: weighted least squares, Poisson counts, priors, contours, pulls.

The fit targets here are small and honest: models declared with `Parameter`
class attributes, a statistic of their current values (-2 ln L), and nothing
else, which is all the `Fit` protocol asks for.
"""

import astropy.units as u
import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.optimize import brentq
from scipy.special import xlogy

from xgamma.fit import Fit
from xgamma.modeling.core import Model
from xgamma.modeling.parameter import GaussianPrior, Parameter, Parameters

BACKENDS = ["minuit", "scipy"]


# --- fit targets ------------------------------------------------------------------
class Line(Model):
    """y = intercept + slope * x."""

    intercept = Parameter("intercept", 0.5)
    slope = Parameter("slope", 0.5)

    def __call__(self, x):
        return self.intercept.value + self.slope.value * x


class Scaled(Model):
    """Expected counts: ``norm`` times a fixed template."""

    norm = Parameter("norm", 1.0, min=0)

    def __call__(self, template):
        return self.norm.value * template


class PowerLaw(Model):
    """Expected counts ``amplitude * (energy / 1 TeV) ** -index`` per bin."""

    amplitude = Parameter("amplitude", 50.0, "TeV-1", min=0)
    index = Parameter("index", 2.0)

    def __call__(self, energy):
        return self.amplitude.value * energy ** -self.index.value


class Models:
    """The models of a fit target; one collection of their parameters (it keeps the covariance)."""

    def __init__(self, *models):
        self.models = models
        self.parameters = Parameters([par for model in models for par in model.parameters])


class Target:
    """A fit target: models and a statistic evaluated at their current parameter values."""

    def __init__(self, stat, *models):
        self.models = Models(*models)
        self._stat = stat
        self.calls = 0

    def stat_sum(self):
        self.calls += 1
        return self._stat()


def chi2_target(model, x, y, sigma):
    return Target(lambda: float(np.sum(((y - model(x)) / sigma) ** 2)), model)


def cash(counts, npred):
    """Cash statistic -2 ln L (up to a constant)."""
    return float(2 * np.sum(npred - xlogy(counts, npred)))


def poisson_target(model, counts, template):
    return Target(lambda: cash(counts, model(template)), model)


@pytest.fixture
def line_data():
    rng = np.random.default_rng(1)
    x = np.linspace(-1, 3, 12)
    sigma = rng.uniform(0.1, 0.4, x.size)
    y = 1.5 - 0.7 * x + rng.normal(0, sigma)
    return x, y, sigma


def assert_within_sigma(actual, expected, sigma, fraction=0.01):
    """Agreement to ``fraction`` of the statistical error: what a converged fit guarantees."""
    assert np.all(np.abs(np.asarray(actual) - expected) < fraction * np.asarray(sigma)), (actual, expected)


def weighted_least_squares(x, y, sigma):
    """Analytic best fit, covariance and minimum chi2 of a straight line."""
    design = np.column_stack([np.ones_like(x), x])
    fisher = design.T @ (design / sigma[:, None] ** 2)
    covariance = np.linalg.inv(fisher)
    best = covariance @ design.T @ (y / sigma**2)
    return best, covariance, float(np.sum(((y - design @ best) / sigma) ** 2))


def fitted_line(backend, data):
    """A `Line` fitted to ``data``: (fit, target, line, result)."""
    line = Line()
    target = chi2_target(line, *data)
    fit = Fit(backend=backend)
    return fit, target, line, fit.run(target)


# --- best fit and covariance ------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_line_matches_weighted_least_squares(backend, line_data):
    best, covariance, minimum = weighted_least_squares(*line_data)
    _, _, line, result = fitted_line(backend, line_data)

    assert result.success, result.message
    assert_allclose([line.intercept.value, line.slope.value], best, rtol=1e-5, atol=1e-6)
    assert_allclose(result.covariance, covariance, rtol=1e-3)
    assert_allclose(line.intercept.error, np.sqrt(covariance[0, 0]), rtol=1e-3)
    assert_allclose(result.total_stat, minimum, rtol=1e-7)
    # the result keeps its own copies, with the same numbers
    assert_allclose(result.parameters["slope"].value, best[1], rtol=1e-5)
    assert result.parameters["slope"] is not line.slope


@pytest.mark.parametrize("backend", BACKENDS)
def test_poisson_norm_mle_and_error(backend):
    template = np.array([3.0, 10.0, 25.0, 12.0])
    counts = np.array([5, 14, 21, 16])
    model = Scaled()
    result = Fit(backend=backend).run(poisson_target(model, counts, template))
    n, t = counts.sum(), template.sum()

    assert result.success, result.message
    assert_within_sigma(model.norm.value, n / t, np.sqrt(n) / t)
    assert_allclose(model.norm.error, np.sqrt(n) / t, rtol=2e-3)  # relative error 1/sqrt(N)


@pytest.mark.parametrize("backend", BACKENDS)
def test_models_left_at_best_fit_with_covariance(backend, line_data):
    _, target, _, result = fitted_line(backend, line_data)
    parameters = target.models.parameters

    assert_allclose(parameters.values, result.parameters.values)
    assert_allclose(parameters.covariance_of(parameters), result.covariance)
    assert parameters["slope"].error > 0


def test_backends_agree_on_power_law():
    energy = np.geomspace(1, 30, 10)
    counts = np.random.default_rng(7).poisson(80 * energy**-2.3)
    results = {}
    for backend in BACKENDS:
        model = PowerLaw()
        results[backend] = Fit(backend=backend).run(poisson_target(model, counts, energy))
    minuit, scipy = results["minuit"], results["scipy"]

    assert minuit.success and scipy.success
    errors = np.sqrt(np.diag(minuit.covariance))
    assert_within_sigma(scipy.parameters.values, minuit.parameters.values, errors)
    assert_allclose(scipy.covariance, minuit.covariance, rtol=2e-2)
    assert_allclose(scipy.total_stat, minuit.total_stat, rtol=0, atol=1e-3)


# --- priors, frozen and linked parameters -----------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_prior_gives_weighted_mean(backend):
    # a constant (slope frozen at 0) measured at 1.0 ± 0.2, prior 2.0 ± 0.1
    line = Line(slope=0.0)
    line.slope.frozen = True
    line.intercept.prior = GaussianPrior(mu=2.0, sigma=0.1)
    result = Fit(backend=backend).run(chi2_target(line, np.zeros(1), np.array([1.0]), np.array([0.2])))
    weights = np.array([1 / 0.2**2, 1 / 0.1**2])

    assert_allclose(line.intercept.value, np.average([1.0, 2.0], weights=weights), rtol=1e-5)
    assert_allclose(line.intercept.error, 1 / np.sqrt(weights.sum()), rtol=1e-3)
    # the prior is part of the reported statistic
    assert_allclose(result.total_stat, ((1.0 - 1.8) / 0.2) ** 2 + ((1.8 - 2.0) / 0.1) ** 2, rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frozen_parameter_is_held(backend, line_data):
    x, y, sigma = line_data
    line = Line(slope=-0.7)
    line.slope.frozen = True
    result = Fit(backend=backend).run(chi2_target(line, x, y, sigma))
    weights = sigma**-2

    assert line.slope.value == -0.7
    assert_allclose(line.intercept.value, np.average(y + 0.7 * x, weights=weights), rtol=1e-5)
    assert_allclose(line.intercept.error, weights.sum() ** -0.5, rtol=1e-3)
    assert np.all(result.covariance[1] == 0) and np.all(result.covariance[:, 1] == 0)


def test_parameter_frozen_after_a_fit_loses_its_error(line_data):
    """Errors follow the covariance: a parameter frozen for the next fit reports error 0, not the old one."""
    x, y, sigma = line_data
    line = Line()
    target = chi2_target(line, x, y, sigma)
    Fit().run(target)
    assert line.slope.error > 0
    line.slope.frozen = True
    result = Fit().run(target)
    assert line.slope.error == 0 and result.parameters["slope"].error == 0
    assert line.intercept.error == pytest.approx(np.sqrt(result.covariance[0, 0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_linked_parameter_is_fitted_once(backend):
    # two histograms sharing one norm: the MLE is the ratio of the totals
    first, second = Scaled(), Scaled()
    second.norm = first.norm
    counts_a, template_a = np.array([12, 30]), np.array([10.0, 20.0])
    counts_b, template_b = np.array([7, 4, 9]), np.array([5.0, 5.0, 5.0])
    target = Target(
        lambda: cash(counts_a, first(template_a)) + cash(counts_b, second(template_b)), first, second
    )
    fit = Fit(backend=backend, store_trace=True)
    result = fit.run(target)
    n, t = counts_a.sum() + counts_b.sum(), template_a.sum() + template_b.sum()

    assert len(result.parameters) == 2 and len(result.parameters.free) == 1
    assert result.optimize_result.trace.colnames == ["total_stat", "norm"]
    assert_within_sigma(first.norm.value, n / t, np.sqrt(n) / t)
    assert_allclose(result.covariance, np.full((2, 2), n / t**2), rtol=3e-3)


# --- confidence intervals, profiles, contours -------------------------------------
def poisson_interval(n, t, sigma):
    """Exact likelihood interval of the norm of a Poisson count n with template t."""

    def excess(norm):
        return cash(n, norm * t) - cash(n, n) - sigma**2

    best = n / t
    return brentq(excess, best, 10 * best) - best, best - brentq(excess, 1e-9, best)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sigma", [1, 2])
def test_confidence_matches_exact_poisson_interval(backend, sigma):
    model = Scaled()
    target = poisson_target(model, np.array([5.0]), np.array([2.0]))
    fit = Fit(backend=backend)
    best = fit.optimize(target).parameters["norm"].value
    interval = fit.confidence(target, "norm", sigma=sigma)
    errp, errn = poisson_interval(5.0, 2.0, sigma)

    assert interval["success"], interval["message"]
    assert interval["errp"] > interval["errn"]  # a Poisson interval is skewed upwards
    assert_allclose([interval["errp"], interval["errn"]], [errp, errn], rtol=1e-3)
    assert model.norm.value == best  # restored to the best fit


@pytest.mark.parametrize("backend", BACKENDS)
def test_confidence_at_a_bound_is_flagged(backend):
    # no counts: the best norm is its lower bound 0, where no lower crossing exists
    model = Scaled()
    target = poisson_target(model, np.array([0.0]), np.array([2.0]))
    fit = Fit(backend=backend)
    fit.optimize(target)
    interval = fit.confidence(target, "norm")

    assert model.norm.value == pytest.approx(0, abs=1e-6)
    assert not interval["success"]
    assert "limit" in interval["message"] or "bound" in interval["message"]
    if backend == "scipy":
        assert interval["errp"] == pytest.approx(0.25)  # 2 * norm * t rises by 1 at norm = 1 / (2 t)


@pytest.mark.parametrize("backend", BACKENDS)
def test_confidence_with_and_without_reoptimizing(backend, line_data):
    _, covariance, _ = weighted_least_squares(*line_data)
    fit, target, _, _ = fitted_line(backend, line_data)
    profiled = fit.confidence(target, "intercept", reoptimize=True)
    conditional = fit.confidence(target, "intercept", reoptimize=False)

    assert_allclose([profiled["errp"], profiled["errn"]], np.sqrt(covariance[0, 0]), rtol=1e-3)
    conditional_error = 1 / np.sqrt(np.linalg.inv(covariance)[0, 0])
    assert_allclose([conditional["errp"], conditional["errn"]], conditional_error, rtol=1e-3)


@pytest.mark.parametrize("sigma", [0.5, 9])
def test_minos_interval_of_many_sigma(line_data, sigma):
    """A linear model's interval is exactly sigma errors wide (9 sigma: beyond chi2(1).cdf's float range)."""
    _, covariance, _ = weighted_least_squares(*line_data)
    fit, target, _, _ = fitted_line("minuit", line_data)
    interval = fit.confidence(target, "intercept", sigma=sigma)
    assert_allclose([interval["errp"], interval["errn"]], sigma * np.sqrt(covariance[0, 0]), rtol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stat_profile_is_the_analytic_parabola(backend, line_data):
    best, covariance, minimum = weighted_least_squares(*line_data)
    fit, target, line, result = fitted_line(backend, line_data)

    conditional = fit.stat_profile(target, "slope", nvalues=5, bounds=3)
    profiled = fit.stat_profile(target, line.slope, values=[-0.9, -0.7, -0.5], reoptimize=True)

    values = conditional["slope_scan"]
    assert_allclose(values[[0, -1]], best[1] + np.array([-3, 3]) * np.sqrt(covariance[1, 1]), rtol=1e-3)
    fisher = np.linalg.inv(covariance)
    # conditional: the other parameter held at its best fit; profile: minimised over it
    expected = minimum + fisher[1, 1] * (values - best[1]) ** 2
    assert_allclose(conditional["stat_scan"], expected, rtol=0, atol=1e-4)
    expected = minimum + (profiled["slope_scan"] - best[1]) ** 2 / covariance[1, 1]
    assert_allclose(profiled["stat_scan"], expected, rtol=0, atol=1e-4)
    assert [r.parameters["slope"].value for r in profiled["fit_results"]] == [-0.9, -0.7, -0.5]
    assert_allclose(target.models.parameters.values, result.parameters.values)  # restored


@pytest.mark.parametrize("backend", BACKENDS)
def test_stat_surface_is_the_analytic_quadratic_form(backend, line_data):
    best, covariance, minimum = weighted_least_squares(*line_data)
    fit, target, _, _ = fitted_line(backend, line_data)
    surface = fit.stat_surface(target, "intercept", "slope", [1.3, 1.5, 1.7], [-0.8, -0.7])

    grid = np.stack(np.meshgrid(surface["intercept_scan"], surface["slope_scan"], indexing="ij"), axis=-1)
    delta = grid - best
    expected = minimum + np.einsum("...i,ij,...j->...", delta, np.linalg.inv(covariance), delta)
    assert surface["stat_scan"].shape == (3, 2)
    assert_allclose(surface["stat_scan"], expected, rtol=1e-6)


def gaussian_2d_target(mean, covariance):
    """chi2 = (p - mean)^T C^-1 (p - mean): its sigma contour is an exact ellipse."""
    line = Line(intercept=mean[0] + 0.3, slope=mean[1] - 0.2)
    inverse = np.linalg.inv(covariance)

    def stat():
        delta = np.array([line.intercept.value, line.slope.value]) - mean
        return float(delta @ inverse @ delta)

    return Target(stat, line)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sigma", [1, 2])
def test_contour_is_the_analytic_ellipse(backend, sigma):
    mean, covariance = np.array([1.0, -2.0]), np.array([[0.04, -0.03], [-0.03, 0.09]])
    target = gaussian_2d_target(mean, covariance)
    fit = Fit(backend=backend)
    fit.optimize(target)
    contour = fit.stat_contour(target, "intercept", "slope", numpoints=12, sigma=sigma)

    assert contour["success"], contour["message"]
    points = np.column_stack([contour["intercept"], contour["slope"]]) - mean
    assert points.shape == (12, 2)
    level = np.einsum("ni,ij,nj->n", points, np.linalg.inv(covariance), points)
    assert_allclose(level, sigma**2, rtol=2e-3)
    # the contour's extent along each axis is the sigma error
    assert_allclose(np.abs(points).max(axis=0), sigma * np.sqrt(np.diag(covariance)), rtol=0.1)


# --- pulls --------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_pulls_of_simulated_spectra(backend):
    truth = {"amplitude": 60.0, "index": 2.2}
    energy = np.geomspace(1, 20, 8)
    rng = np.random.default_rng(42)
    pulls = []
    for _ in range(100):
        counts = rng.poisson(truth["amplitude"] * energy ** -truth["index"])
        model = PowerLaw()
        result = Fit(backend=backend).run(poisson_target(model, counts, energy))
        assert result.success, result.message
        pulls.append([(model.parameters[name].value - true) / model.parameters[name].error
                      for name, true in truth.items()])
    pulls = np.array(pulls)

    # 100 samples: the mean is known to about 0.1, the width to about 0.07
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.3), pulls.mean(axis=0)
    assert np.all(np.abs(pulls.std(axis=0) - 1) < 0.2), pulls.std(axis=0)


# --- protocol, results, bad input ----------------------------------------------------
def test_stat_sum_at_is_preferred():
    """A target offering the pure ``stat_sum_at(free_values)`` is evaluated through it."""
    line = Line()

    class PureTarget:
        def __init__(self):
            self.models = Models(line)
            self.seen = []

        def stat_sum(self):
            raise AssertionError("stat_sum must not be called when stat_sum_at exists")

        def stat_sum_at(self, values):
            self.seen.append(np.array(values))
            intercept, slope = values
            return (intercept - 1.0) ** 2 / 0.01 + (slope - 2.0) ** 2 / 0.04

    target = PureTarget()
    result = Fit().run(target)
    assert_allclose(result.parameters.values, [1.0, 2.0], rtol=1e-6)
    assert_allclose(np.sqrt(np.diag(result.covariance)), [0.1, 0.2], rtol=1e-3)
    assert len(target.seen) >= result.nfev > 0


def test_config_is_stored_verbatim_and_repr():
    options = {"strategy": 2}
    fit = Fit(backend="scipy", optimize_opts=options, store_trace=True)
    assert fit.optimize_opts is options and fit.backend == "scipy" and fit.store_trace is True
    assert "backend='scipy'" in repr(fit)


def test_result_reprs_and_trace(line_data):
    target = chi2_target(Line(), *line_data)
    result = Fit(store_trace=True).run(target)
    trace = result.trace

    assert trace.colnames == ["total_stat", "intercept", "slope"]
    assert len(trace) == result.nfev
    assert_allclose(trace["total_stat"].min(), result.total_stat, rtol=1e-9)
    for text in (repr(result), repr(result.optimize_result), repr(result.covariance_result)):
        assert "success" in text and "intercept" in text and "slope" in text
    assert "migrad" in repr(result) and "hesse" in repr(result.covariance_result)
    assert list(result.parameters.to_table()["name"]) == ["intercept", "slope"]


def test_units_accepted_in_scan_values():
    target = chi2_target(PowerLaw(), np.geomspace(1, 10, 4), np.array([50.0, 10.0, 3.0, 1.0]),
                         np.ones(4))
    fit = Fit()
    fit.optimize(target)
    profile = fit.stat_profile(target, "amplitude", values=u.Quantity([0.05, 0.06], "GeV-1"))
    assert_allclose(profile["amplitude_scan"], [50.0, 60.0])


def test_unknown_backend_lists_known_ones(line_data):
    with pytest.raises(ValueError, match=r"unknown fit backend 'nlopt'.*\['minuit', 'scipy'\]"):
        Fit(backend="nlopt").run(chi2_target(Line(), *line_data))


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_option_lists_allowed_ones(backend, line_data):
    with pytest.raises(ValueError, match=r"unknown .*option.*\['bogus'\].*allowed"):
        Fit(backend=backend, optimize_opts={"bogus": 1}).optimize(chi2_target(Line(), *line_data))


def test_bad_parameters_are_named(line_data):
    line = Line()
    line.slope.frozen = True
    target = chi2_target(line, *line_data)
    fit = Fit()
    fit.optimize(target)

    with pytest.raises(ValueError, match="'index' is not in the fit; free parameters: \\['intercept'\\]"):
        fit.confidence(target, "index")
    with pytest.raises(ValueError, match="'slope' is frozen"):
        fit.stat_profile(target, line.slope, values=[0.0])
    with pytest.raises(ValueError, match="'amplitude' is not in the fit"):
        fit.confidence(target, PowerLaw().amplitude)
    with pytest.raises(ValueError, match="same parameter"):
        fit.stat_contour(target, "intercept", line.intercept)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        fit.confidence(target, "intercept", sigma=0)


def test_all_frozen_is_an_error(line_data):
    line = Line()
    line.freeze()
    with pytest.raises(ValueError, match="all parameters are frozen.*intercept"):
        Fit().run(chi2_target(line, *line_data))


def test_non_finite_start_names_the_values():
    model = Scaled(norm=-1.0)
    model.norm.min = np.nan  # no bound: the starting value gives log of a negative prediction
    starting_values = r"statistic is nan at the starting values \(norm=-1\)"
    with np.errstate(invalid="ignore"), pytest.raises(ValueError, match=starting_values):
        Fit().optimize(poisson_target(model, np.array([3, 4]), np.array([1.0, 1.0])))


def test_profile_without_error_asks_for_covariance(line_data):
    target = chi2_target(Line(), *line_data)
    fit = Fit()
    fit.optimize(target)
    with pytest.raises(ValueError, match="'slope' has no error.*Fit.covariance"):
        fit.stat_profile(target, "slope")


def test_repeated_names_get_labels():
    first, second = Scaled(), Scaled()
    counts, template = np.array([20, 40]), np.array([10.0, 10.0])
    target = Target(lambda: cash(counts[:1], first(template[:1])) + cash(counts[1:], second(template[1:])),
                    first, second)
    fit = Fit()
    fit.run(target)
    assert_within_sigma([first.norm.value, second.norm.value], [2.0, 4.0], np.sqrt([20, 40]) / 10)
    profile = fit.stat_profile(target, "norm_2", values=[4.0])
    assert list(profile) == ["norm_2_scan", "stat_scan"]
