"""Optimiser backends: iminuit (the default) and scipy (the fallback).

Which one to use when:

- ``"minuit"``: MIGRAD to optimise, HESSE for the covariance, MINOS for
  asymmetric errors and MNCONTOUR for 2-D contours. The reference for
  likelihood fits in the field; use it unless iminuit is unavailable.
- ``"scipy"``: `scipy.optimize.minimize` (L-BFGS-B by default) to optimise,
  a finite-difference Hessian for the covariance, and root finding on the
  (profile) likelihood for confidence intervals and contours.

Both work on a function of a vector of factors (``value / scale``, of order
one after autoscaling) that returns -2 ln L, so ``errordef`` is 1 and a
``sigma`` interval is where the statistic rises by ``sigma**2``.
All numbers going in and out of a backend are in factor units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize
from scipy.stats import chi2

__all__ = ["BACKENDS", "BackendFit", "MinuitBackend", "ScipyBackend", "get_backend"]


@dataclass
class BackendFit:
    """What an optimiser found (factors of all free parameters, fixed ones included)."""

    factors: np.ndarray
    success: bool
    message: str
    method: str


def _check_options(options: dict, allowed: set, what: str) -> dict:
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"unknown {what} option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return options


def _all_fixed(factors, fixed, method) -> BackendFit | None:
    """The trivial result when nothing is left to optimise, else None."""
    if fixed is not None and all(fixed):
        return BackendFit(np.array(factors, dtype=float), True, "all parameters fixed", method)
    return None


class MinuitBackend:
    """iminuit: MIGRAD, HESSE, MINOS, MNCONTOUR.

    Options (``optimize_opts``, ``covariance_opts``, ``confidence_opts``):
    ``strategy`` (0, 1, 2), ``tol`` (EDM goal factor), ``print_level``,
    ``ncall`` (call limit) and, for MIGRAD, ``iterate``.
    """

    name = "minuit"
    _options = frozenset({"strategy", "tol", "print_level", "ncall"})

    def _minuit(self, function, factors, bounds, fixed=None, options=None):
        from iminuit import Minuit

        options = dict(options or {})
        minuit = Minuit(function, np.array(factors, dtype=float))
        minuit.errordef = 1  # the statistic is -2 ln L, not -ln L
        minuit.limits = bounds
        if fixed is not None:
            minuit.fixed = list(fixed)
        for key in ("strategy", "tol", "print_level"):
            if key in options:
                setattr(minuit, key, options[key])
        return minuit

    def _migrad(self, function, factors, bounds, fixed=None, options=None):
        options = _check_options(dict(options or {}), self._options | {"iterate"}, "minuit")
        minuit = self._minuit(function, factors, bounds, fixed, options)
        kwargs = {key: options[key] for key in ("ncall", "iterate") if key in options}
        minuit.migrad(**kwargs)
        return minuit

    def optimize(self, function, factors, bounds, fixed=None, **options) -> BackendFit:
        trivial = _all_fixed(factors, fixed, "migrad")
        if trivial:
            return trivial
        minuit = self._migrad(function, factors, bounds, fixed, options)
        fmin = minuit.fmin
        return BackendFit(np.array(minuit.values), fmin.is_valid, _fmin_message(fmin), "migrad")

    def covariance(self, function, factors, bounds, **options):
        """HESSE at ``factors``; returns (matrix, success, message)."""
        _check_options(options, self._options, "minuit covariance")
        minuit = self._minuit(function, factors, bounds, options=options)
        minuit.hesse(ncall=options.get("ncall"))
        if minuit.covariance is None:
            return np.full((len(factors),) * 2, np.nan), False, "HESSE failed"
        fmin = minuit.fmin
        success = fmin.has_covariance and fmin.has_posdef_covar and not fmin.hesse_failed
        message = "HESSE successful" if success else "HESSE failed or matrix not positive definite"
        return np.array(minuit.covariance), bool(success), message

    def confidence(self, function, factors, bounds, index, sigma, reoptimize, **options) -> dict:
        """MINOS interval of parameter ``index`` (others profiled unless ``reoptimize`` is False)."""
        fixed = None if reoptimize else [i != index for i in range(len(factors))]
        minuit = self._migrad(function, factors, bounds, fixed, options)
        name = minuit.parameters[index]
        # iminuit reads cl >= 1 as a number of sigma (exact level sigma**2); below 1 as a probability
        cl = float(sigma) if sigma >= 1 else chi2(1).cdf(sigma**2)
        minuit.minos(name, cl=cl, ncall=options.get("ncall"))
        merror = minuit.merrors[name]
        message = "MINOS successful" if merror.is_valid else _minos_problem(merror)
        return {"errp": merror.upper, "errn": -merror.lower, "success": merror.is_valid, "message": message}

    def contour(self, function, factors, bounds, ix, iy, numpoints, sigma, **options):
        """MNCONTOUR points (n, 2) where the profiled statistic is ``sigma**2`` above its minimum."""
        minuit = self._migrad(function, factors, bounds, options=options)
        names = minuit.parameters
        # chi2(2).cdf(sigma**2) makes iminuit's 2-D level exactly sigma**2
        try:
            points = minuit.mncontour(names[ix], names[iy], cl=chi2(2).cdf(sigma**2), size=numpoints)
        except RuntimeError as err:
            return np.full((numpoints, 2), np.nan), False, f"MNCONTOUR failed: {err}"
        if len(points) > numpoints and np.allclose(points[0], points[-1]):
            points = points[:-1]  # iminuit closes the curve; callers get numpoints distinct points
        return np.asarray(points), True, "MNCONTOUR successful"


def _fmin_message(fmin) -> str:
    if fmin.is_valid:
        return "Optimization terminated successfully."
    problems = {
        "has_reached_call_limit": "call limit reached",
        "is_above_max_edm": "EDM above goal",
        "has_parameters_at_limit": "parameters at limit",
    }
    found = [text for attr, text in problems.items() if getattr(fmin, attr)]
    return "MIGRAD did not converge" + (f" ({', '.join(found)})" if found else "")


def _minos_problem(merror) -> str:
    flags = {
        "at_lower_limit": "at lower limit",
        "at_upper_limit": "at upper limit",
        "at_lower_max_fcn": "call limit on lower side",
        "at_upper_max_fcn": "call limit on upper side",
        "lower_new_min": "new minimum found below",
        "upper_new_min": "new minimum found above",
    }
    found = [text for attr, text in flags.items() if getattr(merror, attr)]
    return "MINOS failed" + (f" ({', '.join(found)})" if found else "")


class ScipyBackend:
    """scipy: `scipy.optimize.minimize`, finite-difference Hessian, profile root finding.

    Options: ``method`` (default ``"L-BFGS-B"``), ``tol`` and ``options``
    (passed to `scipy.optimize.minimize`); ``step`` (relative finite-difference
    step of the Hessian, default 1e-3, in factor units: scaled by each
    parameter's scale).
    """

    name = "scipy"
    _options = frozenset({"method", "tol", "options", "step"})

    def optimize(self, function, factors, bounds, fixed=None, **options) -> BackendFit:
        _check_options(options, self._options, "scipy")
        method = options.get("method", "L-BFGS-B")
        trivial = _all_fixed(factors, fixed, method)
        if trivial:
            return trivial
        x = np.array(factors, dtype=float)
        varied = ~np.asarray(fixed, dtype=bool) if fixed is not None else np.ones(len(x), dtype=bool)
        # measured from the start, the statistic is of order its changes, so scipy's
        # relative tolerances act like absolute ones (as MIGRAD's EDM goal does)
        offset = function(x)

        def restricted(sub):
            full = x.copy()
            full[varied] = sub
            return function(full) - offset

        varied_bounds = [bound for bound, keep in zip(bounds, varied) if keep]
        result = scipy.optimize.minimize(
            restricted,
            x[varied],
            method=method,
            # unbounded problems pass None, so methods without bounds (BFGS ...) stay quiet
            bounds=varied_bounds if any(bound != (None, None) for bound in varied_bounds) else None,
            tol=options.get("tol"),
            options=options.get("options"),
        )
        x[varied] = result.x
        return BackendFit(x, bool(result.success), str(result.message), method)

    def covariance(self, function, factors, bounds, **options):
        """Twice the inverse Hessian at ``factors``; returns (matrix, success, message)."""
        _check_options(options, self._options, "scipy covariance")
        hessian = numerical_hessian(function, factors, bounds, options.get("step", 1e-3))
        if not np.all(np.isfinite(hessian)):
            return np.full_like(hessian, np.nan), False, "statistic not finite near the best fit"
        try:
            # -2 ln L = chi2-like: covariance = (H / 2)^-1
            matrix = np.linalg.inv(hessian / 2)
        except np.linalg.LinAlgError:
            return np.full_like(hessian, np.nan), False, "Hessian is singular"
        if np.any(np.linalg.eigvalsh((matrix + matrix.T) / 2) <= 0):
            return matrix, False, "Hessian is not positive definite (not at a minimum?)"
        return matrix, True, "finite-difference Hessian inverted"

    def _profile(self, function, factors, bounds, fixed_at: dict, reoptimize, options) -> float:
        """The statistic with parameters ``fixed_at`` ({index: factor}), the others refitted if asked."""
        x = np.array(factors, dtype=float)
        for i, value in fixed_at.items():
            x[i] = value
        if reoptimize:
            fixed = [i in fixed_at for i in range(len(x))]
            x = self.optimize(function, x, bounds, fixed, **options).factors
        return function(x)

    def confidence(self, function, factors, bounds, index, sigma, reoptimize, **options) -> dict:
        """Where the (profile) statistic crosses its minimum + ``sigma**2``, by Brent root finding."""
        x0 = np.array(factors, dtype=float)
        level = function(x0) + sigma**2
        step = _curvature_step(function, x0, bounds, index, options.get("step", 1e-3)) * sigma

        def excess(value):
            return self._profile(function, x0, bounds, {index: value}, reoptimize, options) - level

        low, high = bounds[index]
        upper, upper_ok = _crossing(excess, x0[index], step, high)
        lower, lower_ok = _crossing(excess, x0[index], -step, low)
        success = upper_ok and lower_ok
        message = "profile crossings found" if success else "no crossing within the parameter bounds"
        return {"errp": upper - x0[index], "errn": x0[index] - lower, "success": success, "message": message}

    def contour(self, function, factors, bounds, ix, iy, numpoints, sigma, **options):
        """Points where the profiled statistic is ``sigma**2`` above its minimum, found along rays."""
        x0 = np.array(factors, dtype=float)
        level = function(x0) + sigma**2
        hessian = numerical_hessian(function, x0, bounds, options.get("step", 1e-3))
        try:
            shape = np.linalg.cholesky(np.linalg.inv(hessian / 2)[np.ix_([ix, iy], [ix, iy])])
        except np.linalg.LinAlgError:
            return np.full((numpoints, 2), np.nan), False, "Hessian not positive definite"
        points, success = [], True
        # rays through the error ellipse: for a Gaussian statistic the crossing is at t = sigma
        for angle in np.linspace(0, 2 * np.pi, numpoints, endpoint=False):
            direction = shape @ np.array([np.cos(angle), np.sin(angle)])

            def excess(t, direction=direction):
                at = {ix: x0[ix] + t * direction[0], iy: x0[iy] + t * direction[1]}
                return self._profile(function, x0, bounds, at, True, options) - level

            limit = _ray_limit(x0[[ix, iy]], direction, [bounds[ix], bounds[iy]])
            t, ok = _crossing(excess, 0.0, sigma, limit)
            success &= ok
            points.append(x0[[ix, iy]] + t * direction)
        message = "contour crossings found" if success else "some rays hit a parameter bound"
        return np.array(points), success, message


def numerical_hessian(function, factors, bounds, step=1e-3) -> np.ndarray:
    """Central finite-difference Hessian of ``function`` at ``factors``.

    The step of parameter i is ``step * max(|x_i|, 1)``, shrunk so that the
    stencil stays inside the bounds.
    """
    x0 = np.array(factors, dtype=float)
    n = len(x0)
    h = np.array([_inside_step(x0[i], step * max(abs(x0[i]), 1.0), bounds[i]) for i in range(n)])

    def at(*shifts):
        x = x0.copy()
        for i, sign in shifts:
            x[i] += sign * h[i]
        return function(x)

    f0 = function(x0)
    hessian = np.empty((n, n))
    for i in range(n):
        hessian[i, i] = (at((i, 1)) - 2 * f0 + at((i, -1))) / h[i] ** 2
        for j in range(i):
            value = at((i, 1), (j, 1)) - at((i, 1), (j, -1)) - at((i, -1), (j, 1)) + at((i, -1), (j, -1))
            hessian[i, j] = hessian[j, i] = value / (4 * h[i] * h[j])
    return hessian


def _inside_step(x, h, bound):
    low, high = bound
    room = min(x - low if low is not None else np.inf, high - x if high is not None else np.inf)
    return min(h, room / 2) if room > 0 else h


def _curvature_step(function, x0, bounds, index, step) -> float:
    """1-sigma estimate of parameter ``index`` with the others fixed, from the local curvature."""
    h = _inside_step(x0[index], step * max(abs(x0[index]), 1.0), bounds[index])
    plus, minus = x0.copy(), x0.copy()
    plus[index] += h
    minus[index] -= h
    curvature = (function(plus) - 2 * function(x0) + function(minus)) / h**2
    return float(np.sqrt(2 / curvature)) if curvature > 0 else h * 100


def _ray_limit(origin, direction, bounds) -> float:
    """Largest t > 0 keeping ``origin + t * direction`` inside ``bounds`` (inf if unbounded)."""
    limit = np.inf
    for x, d, (low, high) in zip(origin, direction, bounds):
        if d > 0 and high is not None:
            limit = min(limit, (high - x) / d)
        elif d < 0 and low is not None:
            limit = min(limit, (low - x) / d)
    return limit


def _crossing(excess, start, step, limit, max_doublings=30):
    """Root of ``excess`` between ``start`` (where it is negative) and ``limit``, moving by ``step``.

    The bracket doubles until ``excess`` turns positive; returns (root, True),
    or (limit, False) when the limit is reached first.
    """
    direction = np.sign(step)
    limit = direction * np.inf if limit is None else limit
    inner, outer = start, start + step
    for _ in range(max_doublings):
        at_limit = direction * (outer - limit) >= 0
        if at_limit:
            outer = limit
        if excess(outer) >= 0:
            root = scipy.optimize.brentq(excess, min(inner, outer), max(inner, outer), xtol=1e-10, rtol=1e-10)
            return float(root), True
        if at_limit:
            return float(limit), False
        inner, outer = outer, start + 2 * (outer - start)
    return float(outer), False


BACKENDS = {backend.name: backend for backend in (MinuitBackend, ScipyBackend)}


def get_backend(name: str):
    """A backend instance by name; the error lists the known names."""
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ValueError(f"unknown fit backend {name!r}; known backends: {sorted(BACKENDS)}") from None
