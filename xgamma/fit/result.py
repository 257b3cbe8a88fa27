"""Results of `Fit`: what the optimiser found, the covariance, both together.

Each result holds *copies* of the fitted parameters (`Parameters`), so it
stays valid when the models move on; ``result.parameters.to_table()`` gives
the table view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from ..modeling.parameter import Parameters

__all__ = ["CovarianceResult", "FitResult", "OptimizeResult"]


_OPTIMIZER_FIELDS = ("backend", "method", "success", "message", "nfev", "total_stat")


def _summary(result, fields) -> str:
    """The result's ``fields`` one per line, then its parameters as a table."""
    width = max(len(field) for field in fields)
    lines = [type(result).__name__, *(f"  {field:<{width}} : {getattr(result, field)}" for field in fields), ""]
    lines += result.parameters.to_table().pformat(max_lines=-1, max_width=-1)
    return "\n".join(lines)


@dataclass(repr=False)
class OptimizeResult:
    """Outcome of `Fit.optimize`.

    Attributes
    ----------
    parameters : `Parameters`
        Copies of all model parameters at the best fit.
    total_stat : float
        -2 ln L plus prior terms at the best fit.
    success : bool
        Whether the optimiser reports convergence.
    message : str
        The optimiser's diagnosis.
    nfev : int
        Number of statistic evaluations.
    backend, method : str
        Optimiser used (``"minuit"``/``"migrad"``, ``"scipy"``/``"L-BFGS-B"`` ...).
    trace : `~astropy.table.Table` or None
        Every evaluation (``total_stat`` and the free parameter values) when
        the fit was configured with ``store_trace=True``.
    """

    parameters: Parameters
    total_stat: float
    success: bool
    message: str
    nfev: int
    backend: str
    method: str
    trace: Table | None = None

    def __repr__(self):
        return _summary(self, _OPTIMIZER_FIELDS)


@dataclass(repr=False)
class CovarianceResult:
    """Outcome of `Fit.covariance`.

    Attributes
    ----------
    parameters : `Parameters`
        Copies of all model parameters with ``error`` and ``covariance`` set.
    matrix : `~numpy.ndarray`
        Covariance over ``parameters`` in order, in parameter units (rows of
        frozen parameters are zero; a linked parameter repeats its row).
    success : bool
        Whether the matrix is a valid (positive definite) covariance.
    message : str
        Diagnosis.
    backend, method : str
        ``"minuit"``/``"hesse"`` or ``"scipy"``/``"finite differences"``.
    """

    parameters: Parameters
    matrix: np.ndarray
    success: bool
    message: str
    backend: str
    method: str

    def __repr__(self):
        return _summary(self, ("backend", "method", "success", "message"))


@dataclass(repr=False)
class FitResult:
    """Outcome of `Fit.run`: optimisation followed by the covariance.

    The convenience attributes read through to the two parts; ``success``
    requires both to succeed.
    """

    optimize_result: OptimizeResult
    covariance_result: CovarianceResult

    @property
    def parameters(self) -> Parameters:
        """Best-fit parameters with errors and covariance."""
        return self.covariance_result.parameters

    @property
    def covariance(self) -> np.ndarray:
        return self.covariance_result.matrix

    @property
    def success(self) -> bool:
        return self.optimize_result.success and self.covariance_result.success

    @property
    def message(self) -> str:
        if self.covariance_result.success:
            return self.optimize_result.message
        return f"{self.optimize_result.message} Covariance: {self.covariance_result.message}"

    @property
    def total_stat(self) -> float:
        return self.optimize_result.total_stat

    @property
    def nfev(self) -> int:
        return self.optimize_result.nfev

    @property
    def trace(self) -> Table | None:
        return self.optimize_result.trace

    @property
    def backend(self) -> str:
        return self.optimize_result.backend

    @property
    def method(self) -> str:
        return self.optimize_result.method

    def __repr__(self):
        return _summary(self, _OPTIMIZER_FIELDS)
