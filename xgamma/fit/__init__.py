"""Fitting: optimise model parameters, covariance, confidence intervals, profiles, contours.

Use `Fit` (``Fit().run(datasets)``) for a best fit with errors; its other
verbs give asymmetric intervals (`Fit.confidence`), likelihood profiles and
surfaces (`Fit.stat_profile`, `Fit.stat_surface`) and 2-D contours
(`Fit.stat_contour`). Backends: iminuit (``"minuit"``, default) and scipy.
"""

from .backends import BACKENDS
from .fit import Fit
from .result import CovarianceResult, FitResult, OptimizeResult

__all__ = ["BACKENDS", "CovarianceResult", "Fit", "FitResult", "OptimizeResult"]
