"""The fit statistic seen by an optimiser: a function of the free parameters' factors.

A fit target (``datasets``) only has to offer ``datasets.models.parameters``
and ``datasets.stat_sum()`` (-2 ln L at the parameters' current values);
when it also offers ``datasets.stat_sum_at(free_values)``, a pure function of
the free parameter values, that is used instead, so a likelihood evaluated
on Dask workers never depends on state pushed into local objects.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter

import numpy as np
from astropy.table import Table

from ..modeling.parameter import Parameter, Parameters

__all__ = ["Objective", "parameter_labels"]


def parameter_labels(parameters: Parameters) -> list[str]:
    """Unique labels of ``parameters``: the name, with ``_2``, ``_3`` ... appended to repeats.

    Joint fits often hold several parameters of the same name (two spectra
    each with an ``index``); the labels tell them apart in tables and scans.
    """
    seen: Counter = Counter()
    labels = []
    for par in parameters:
        seen[par.name] += 1
        labels.append(par.name if seen[par.name] == 1 else f"{par.name}_{seen[par.name]}")
    return labels


class Objective:
    """Total statistic (-2 ln L plus Gaussian priors) of the free parameters' factors.

    The free parameters are fixed when the objective is built (the optimiser
    sees ``value / scale`` with the scales of that moment). Calling it sets the
    parameters to the given factors and returns the statistic.

    Parameters
    ----------
    datasets : object
        Fit target with ``models.parameters`` and ``stat_sum()`` (optionally
        ``stat_sum_at(free_values)``).
    store_trace : bool
        Record every evaluation (statistic and free values) for `trace`.

    Raises
    ------
    ValueError
        If no parameter is free, or the statistic is not finite at the
        starting values.
    """

    def __init__(self, datasets, store_trace: bool = False):
        self.datasets = datasets
        self.parameters: Parameters = datasets.models.parameters
        self.free: Parameters = self.parameters.free
        if not len(self.free):
            raise ValueError(
                f"all parameters are frozen, nothing to fit; parameters: {self.parameters.names}"
            )
        self.labels = parameter_labels(self.free)
        self.scales = np.array([par.scale for par in self.free])
        self.bounds = [par.factor_bounds for par in self.free]
        self.nfev = 0
        self._stat_sum_at = getattr(datasets, "stat_sum_at", None)
        self._trace = [] if store_trace else None
        self._check_start()

    @property
    def factors(self) -> np.ndarray:
        """Current factors of the free parameters."""
        return self.free.values / self.scales

    def __call__(self, factors) -> float:
        values = np.asarray(factors, dtype=float) * self.scales
        self.free.values = values
        if self._stat_sum_at is not None:
            stat = self._stat_sum_at(values)
        else:
            stat = self.datasets.stat_sum()
        total = float(stat) + self.parameters.prior_stat_sum()
        self.nfev += 1
        if self._trace is not None:
            self._trace.append((total, *values))
        return total

    def _check_start(self):
        total = self(self.factors)
        if not math.isfinite(total):
            values = ", ".join(f"{label}={par.value:g}" for label, par in zip(self.labels, self.free))
            raise ValueError(
                f"the fit statistic is {total} at the starting values ({values}); "
                "choose starting values where the model predicts positive counts"
            )

    @property
    def trace(self) -> Table | None:
        """Every evaluation as a table (``total_stat`` and one column per free parameter label)."""
        if self._trace is None:
            return None
        names = ["total_stat", *self.labels]
        return Table(rows=self._trace, names=names) if self._trace else Table(names=names)

    def index_of(self, parameter: Parameter | str) -> int:
        """Position of ``parameter`` (object, name or label) among the free parameters.

        A name shared by several free parameters selects the first; the
        labels (``index_2`` ...) select the others.

        Raises
        ------
        ValueError
            Naming the parameter, if it is not in the fit or is frozen.
        """
        if isinstance(parameter, Parameter):
            for i, par in enumerate(self.free):
                if par is parameter:
                    return i
            name, known = parameter.name, parameter in self.parameters
        else:
            if parameter in self.labels:
                return self.labels.index(parameter)
            name, known = parameter, parameter in self.parameters.names
        if known:
            raise ValueError(f"parameter {name!r} is frozen; unfreeze it to fit or scan it")
        raise ValueError(f"parameter {name!r} is not in the fit; free parameters: {self.labels}")

    @contextlib.contextmanager
    def restoring(self):
        """Context in which the free parameters may move; their values are restored on exit."""
        values = self.free.values
        try:
            yield
        finally:
            self.free.values = values
