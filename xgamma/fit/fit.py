"""`Fit`: optimise the models of a fit target, then errors, intervals, profiles, contours.

The fit target (``datasets``) is any object with ``models.parameters`` and
``stat_sum()`` returning -2 ln L (Cash and WStat conventions, so
``errordef`` is 1); see `xgamma.fit.objective`. Gaussian priors of the
parameters are added to the statistic here.

Every method leaves the models' parameters at the values they had when it
was called (the best fit, after `Fit.run`), except `Fit.optimize` and
`Fit.run`, which leave them at the new best fit.
"""

from __future__ import annotations

import numpy as np

from ..modeling.parameter import Parameter, Parameters
from .backends import get_backend
from .objective import Objective
from .profile import scan_values
from .result import CovarianceResult, FitResult, OptimizeResult

__all__ = ["Fit"]

_COVARIANCE_METHODS = {"minuit": "hesse", "scipy": "finite differences"}


class Fit:
    """Fit the free model parameters of ``datasets`` by minimising -2 ln L.

    Parameters
    ----------
    backend : {"minuit", "scipy"}
        Optimiser: iminuit (MIGRAD, HESSE, MINOS) or scipy (minimize,
        finite-difference Hessian, profile root finding).
    optimize_opts : dict, optional
        Options of the optimiser: for minuit ``strategy``, ``tol``,
        ``print_level``, ``ncall``, ``iterate``; for scipy ``method``,
        ``tol``, ``options``. Also used to re-optimise during scans.
    covariance_opts : dict, optional
        Options of the covariance step (minuit: ``strategy``, ``ncall`` ...;
        scipy: ``step``, the relative finite-difference step).
    confidence_opts : dict, optional
        Options of `confidence` and `stat_contour` (as ``optimize_opts``).
    store_trace : bool
        Keep every evaluation of `optimize` in ``OptimizeResult.trace``.

    Notes
    -----
    The settings are stored unchanged; they are checked when a method runs
    (an unknown backend or option is reported then, with the known ones).
    Before each step the free parameters are autoscaled, so the optimiser
    works on factors of order one; results are in parameter units.
    """

    def __init__(self, backend="minuit", optimize_opts=None, covariance_opts=None, confidence_opts=None,
                 store_trace=False):
        self.backend = backend
        self.optimize_opts = optimize_opts
        self.covariance_opts = covariance_opts
        self.confidence_opts = confidence_opts
        self.store_trace = store_trace

    def __repr__(self):
        return (
            f"Fit(backend={self.backend!r}, optimize_opts={self.optimize_opts!r}, "
            f"covariance_opts={self.covariance_opts!r}, confidence_opts={self.confidence_opts!r}, "
            f"store_trace={self.store_trace!r})"
        )

    def _start(self, datasets, store_trace=False):
        """The backend and the objective, with the free parameters autoscaled."""
        backend = get_backend(self.backend)
        datasets.models.parameters.free.autoscale()
        return backend, Objective(datasets, store_trace=store_trace)

    # --- optimisation and covariance ------------------------------------------------
    def run(self, datasets) -> FitResult:
        """Optimise, then compute the covariance; the models are left at the best fit with errors."""
        optimize_result = self.optimize(datasets)
        covariance_result = self.covariance(datasets)
        return FitResult(optimize_result, covariance_result)

    def optimize(self, datasets) -> OptimizeResult:
        """Minimise the statistic; the models are left at the best fit.

        Raises
        ------
        ValueError
            If the backend is unknown, all parameters are frozen, or the
            statistic is not finite at the starting values.
        """
        backend, objective = self._start(datasets, store_trace=self.store_trace)
        found = backend.optimize(objective, objective.factors, objective.bounds, **(self.optimize_opts or {}))
        return _optimize_result(objective, backend, found, nfev_before=0)

    def covariance(self, datasets) -> CovarianceResult:
        """Covariance of the free parameters at their current values (call after `optimize`).

        Sets ``error`` of each parameter and ``covariance`` of
        ``datasets.models.parameters`` (both zero for frozen parameters).
        """
        backend, objective = self._start(datasets)
        with objective.restoring():
            factor_matrix, success, message = backend.covariance(
                objective, objective.factors, objective.bounds, **(self.covariance_opts or {})
            )
        matrix = factor_matrix * np.outer(objective.scales, objective.scales)
        _store_covariance(objective.parameters, objective.free, matrix)
        return CovarianceResult(
            parameters=objective.parameters.copy(),
            matrix=objective.parameters.covariance.copy(),
            success=bool(success),
            message=message,
            backend=backend.name,
            method=_COVARIANCE_METHODS[backend.name],
        )

    # --- intervals, profiles, contours ----------------------------------------------
    def confidence(self, datasets, parameter: Parameter | str, sigma=1, reoptimize=True) -> dict:
        """Asymmetric ``sigma`` interval of one parameter (MINOS, or profile root finding for scipy).

        The interval ends where the statistic, minimised over the other free
        parameters (``reoptimize=True``) or with them held at their current
        values, is ``sigma**2`` above its value at the current parameters.

        Returns
        -------
        dict
            ``errp`` and ``errn`` (distances from the value up and down, in the
            parameter's unit, both positive), ``success``, ``message``, ``nfev``.
        """
        _check_sigma(sigma)
        backend, objective = self._start(datasets)
        index = objective.index_of(parameter)
        with objective.restoring():
            found = backend.confidence(
                objective, objective.factors, objective.bounds, index, sigma, reoptimize,
                **(self.confidence_opts or {}),
            )
        scale = objective.scales[index]
        return {
            "errp": float(found["errp"] * scale),
            "errn": float(found["errn"] * scale),
            "success": bool(found["success"]),
            "message": found["message"],
            "nfev": objective.nfev,
        }

    def stat_profile(self, datasets, parameter: Parameter | str, values=None, bounds=2, nvalues=11,
                     reoptimize=False) -> dict:
        """The statistic along a grid of values of one parameter.

        Parameters
        ----------
        datasets : object
            Fit target.
        parameter : `Parameter` or str
            Free parameter to scan (object, name or label).
        values : array-like or `~astropy.units.Quantity`, optional
            Values to scan (numbers in the parameter's unit); default
            ``nvalues`` values over value ± ``bounds`` errors.
        bounds : float
            Half-width of the default grid, in errors.
        nvalues : int
            Size of the default grid.
        reoptimize : bool
            Minimise over the other free parameters at each value (profile
            likelihood) instead of holding them at their current values.

        Returns
        -------
        dict
            ``"{label}_scan"`` (values), ``"stat_scan"`` (total statistic at each)
            and, if ``reoptimize``, ``"fit_results"`` (one `OptimizeResult` each).
        """
        backend, objective = self._start(datasets)
        index = objective.index_of(parameter)
        grid = scan_values(objective.free[index], values, bounds, nvalues)
        points = [self._fixed_fit(backend, objective, {index: value}, reoptimize) for value in grid]
        out = {f"{objective.labels[index]}_scan": grid, "stat_scan": np.array([stat for stat, _ in points])}
        if reoptimize:
            out["fit_results"] = [result for _, result in points]
        return out

    def stat_surface(self, datasets, x: Parameter | str, y: Parameter | str, x_values, y_values,
                     reoptimize=False) -> dict:
        """The statistic on a grid of values of two parameters.

        Returns
        -------
        dict
            ``"{x label}_scan"``, ``"{y label}_scan"`` (the values),
            ``"stat_scan"`` of shape (len(x_values), len(y_values)) and, if
            ``reoptimize``, ``"fit_results"`` (nested lists in the same order).
        """
        backend, objective = self._start(datasets)
        ix, iy = _two_indices(objective, x, y)
        x_grid = scan_values(objective.free[ix], x_values)
        y_grid = scan_values(objective.free[iy], y_values)
        points = [
            [self._fixed_fit(backend, objective, {ix: xv, iy: yv}, reoptimize) for yv in y_grid]
            for xv in x_grid
        ]
        out = {
            f"{objective.labels[ix]}_scan": x_grid,
            f"{objective.labels[iy]}_scan": y_grid,
            "stat_scan": np.array([[stat for stat, _ in row] for row in points]).reshape(len(x_grid), len(y_grid)),
        }
        if reoptimize:
            out["fit_results"] = [[result for _, result in row] for row in points]
        return out

    def stat_contour(self, datasets, x: Parameter | str, y: Parameter | str, numpoints=10, sigma=1) -> dict:
        """Points of the ``sigma`` contour of two parameters, the others profiled.

        The contour is where the statistic, minimised over the other free
        parameters, is ``sigma**2`` above its minimum, so its projection on
        each axis is the ``sigma`` interval of `confidence` (MNCONTOUR for
        minuit; root finding along rays from the best fit for scipy).

        Returns
        -------
        dict
            ``{x label: array, y label: array}`` of ``numpoints`` points in
            parameter units, ``"success"`` and ``"message"``.
        """
        _check_sigma(sigma)
        backend, objective = self._start(datasets)
        ix, iy = _two_indices(objective, x, y)
        with objective.restoring():
            points, success, message = backend.contour(
                objective, objective.factors, objective.bounds, ix, iy, numpoints, sigma,
                **(self.confidence_opts or {}),
            )
        return {
            objective.labels[ix]: points[:, 0] * objective.scales[ix],
            objective.labels[iy]: points[:, 1] * objective.scales[iy],
            "success": bool(success),
            "message": message,
        }

    def _fixed_fit(self, backend, objective, fixed_values: dict, reoptimize):
        """Statistic with the parameters ``fixed_values`` ({index: value}) fixed; others refitted if asked.

        Every point starts from the values the scan started with.
        """
        with objective.restoring():
            factors = objective.factors
            for index, value in fixed_values.items():
                factors[index] = value / objective.scales[index]
            if not reoptimize:
                return objective(factors), None
            nfev_before = objective.nfev
            fixed = [i in fixed_values for i in range(len(factors))]
            found = backend.optimize(objective, factors, objective.bounds, fixed, **(self.optimize_opts or {}))
            result = _optimize_result(objective, backend, found, nfev_before)
            return result.total_stat, result


def _optimize_result(objective, backend, found, nfev_before) -> OptimizeResult:
    """The result of one optimisation; leaves the parameters at the factors found."""
    total_stat = objective(found.factors)
    return OptimizeResult(
        parameters=objective.parameters.copy(),
        total_stat=total_stat,
        success=bool(found.success),
        message=found.message,
        nfev=objective.nfev - nfev_before,
        backend=backend.name,
        method=found.method,
        trace=objective.trace,
    )


def _store_covariance(parameters: Parameters, free: Parameters, matrix):
    """Write the free parameters' covariance into ``parameters`` (frozen: 0) and set the errors (frozen: 0)."""
    parameters.covariance = np.zeros((len(parameters),) * 2)
    for par in parameters:
        if par.frozen:
            par.error = 0.0  # not fitted: an error from an earlier fit would contradict the covariance
    parameters.set_covariance_of(free, matrix)
    # a linked parameter appears several times: every occurrence gets the same row
    covariance = parameters.covariance
    for i, par in enumerate(parameters):
        first = parameters.index(par)
        if first != i:
            covariance[i, :] = covariance[first, :]
            covariance[:, i] = covariance[:, first]


def _two_indices(objective, x, y):
    ix, iy = objective.index_of(x), objective.index_of(y)
    if ix == iy:
        raise ValueError(f"x and y are the same parameter ({objective.labels[ix]!r}); choose two")
    return ix, iy


def _check_sigma(sigma):
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
