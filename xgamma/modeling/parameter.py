"""Model parameters: a value in a fixed unit, bounds, an error, a frozen flag.

Which one to use when:

- `Parameter`: one number of one model (``index``, ``lon_0`` ...). Its unit is
  fixed when the model declares it; values given in another unit are
  converted once, on assignment, so model evaluation runs on plain floats.
- `Parameters`: an ordered collection (a model's, or every model's of a fit)
  with lookup by name, the vector of free values the optimiser sees, and the
  covariance matrix.
- `GaussianPrior`: an optional ``((value - mu) / sigma)**2`` term added to the
  fit statistic.

Linking: two models share a parameter when they hold the *same* `Parameter`
object (``model_b.index = model_a.index``). `Parameters.unique` removes the
duplicates, so the fit sees it once.

Parameters belong to models, never to datasets: a likelihood term is a pure
function of the vector of free parameter values (`Parameters.free_values`),
so it can be evaluated in another process that holds a copy of the models.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import astropy.units as u
import numpy as np

__all__ = ["GaussianPrior", "Parameter", "Parameters"]


@dataclass(frozen=True)
class GaussianPrior:
    """Gaussian prior on one parameter: adds ``((value - mu) / sigma)**2`` to the statistic.

    ``mu`` and ``sigma`` are in the parameter's unit.
    """

    mu: float
    sigma: float

    def __post_init__(self):
        if not self.sigma > 0:
            raise ValueError(f"GaussianPrior sigma must be > 0, got {self.sigma}")

    def stat(self, value: float) -> float:
        """-2 ln of the prior density, up to a constant."""
        return ((value - self.mu) / self.sigma) ** 2

    def to_dict(self, unit: str = "") -> dict:
        """Gammapy's YAML layout: ``{type, parameters: [mu, sigma], weight}`` (``unit``: the parameter's)."""
        parameters = [{"name": key, "value": float(getattr(self, key)), "unit": unit} for key in ("mu", "sigma")]
        return {"type": "GaussianPrior", "parameters": parameters, "weight": 1.0}

    @classmethod
    def from_dict(cls, data: dict, unit: str, file_unit: str, name: str) -> GaussianPrior:
        """A prior from Gammapy's dict (``parameters`` and ``weight``) or the flat ``{mu, sigma}`` one.

        Values without a unit are in ``file_unit`` (the parameter's unit in the
        file; Gammapy evaluates priors on the value in that unit) and are
        converted to ``unit``. A ``weight`` w scales the term, as
        ``sigma / sqrt(w)`` does.
        """
        kind = data.get("type", "GaussianPrior")
        if kind != "GaussianPrior":
            raise ValueError(f"parameter {name!r}: prior type {kind!r} is not supported (only GaussianPrior)")
        if "parameters" in data:
            entries = {entry.get("name"): entry for entry in data["parameters"]}
            values = {key: (entries[key]["value"], entries[key].get("unit")) for key in ("mu", "sigma") if key in entries}
        else:
            values = {key: (data[key], None) for key in ("mu", "sigma") if key in data}
        missing = [key for key in ("mu", "sigma") if key not in values]
        if missing:
            raise ValueError(f"parameter {name!r}: GaussianPrior entry lacks {missing}: {data!r}")
        mu, sigma = (
            float(u.Quantity(float(value), entry_unit or file_unit).to_value(unit))
            for value, entry_unit in (values["mu"], values["sigma"])
        )
        weight = float(data.get("weight", 1.0))
        if not weight > 0:
            raise ValueError(f"parameter {name!r}: GaussianPrior weight must be > 0, got {weight}")
        return cls(mu, sigma / math.sqrt(weight))


def _float(value, unit: str, name: str) -> float:
    """``value`` (number, Quantity or string) as a float in ``unit``."""
    if isinstance(value, str):
        try:
            value = u.Quantity(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"parameter {name!r}: cannot read {value!r} as a quantity") from err
    if isinstance(value, u.Quantity):
        try:
            return float(value.to_value(unit))
        except u.UnitConversionError as err:
            raise u.UnitConversionError(
                f"parameter {name!r} is in {unit or 'dimensionless'!r}; got {value} which does not convert"
            ) from err
    return float(value)


class Parameter:
    """One model parameter.

    Parameters
    ----------
    name : str
        Name, unique within its model.
    value : float, `~astropy.units.Quantity` or str
        Value; a Quantity or string like ``"2 TeV"`` is converted to ``unit``.
    unit : str
        The parameter's unit (astropy-parsable); fixed for the parameter's life.
    min, max : float
        Bounds in ``unit`` (NaN: unbounded).
    frozen : bool
        Frozen parameters are not fitted.
    error : float
        1-sigma error in ``unit`` (set by the fit).
    is_norm : bool
        True for amplitude-like parameters (flux estimators rescale them).
    prior : `GaussianPrior`, optional
        Added to the fit statistic.
    scale : float
        The optimiser sees ``value / scale``; `autoscale` picks a power of ten
        so that it is of order 1.
    """

    __slots__ = ("name", "_value", "unit", "_min", "_max", "frozen", "error", "is_norm", "prior", "scale")

    def __init__(self, name, value, unit="", min=np.nan, max=np.nan, frozen=False, error=0.0,
                 is_norm=False, prior=None, scale=1.0):
        self.name = name
        u.Unit(unit or "")  # validate; keep the string as written (YAML files round-trip unchanged)
        self.unit = str(unit or "")
        self._value = _float(value, self.unit, name)
        self._min = _float(min, self.unit, name) if min is not None else np.nan
        self._max = _float(max, self.unit, name) if max is not None else np.nan
        self.frozen = bool(frozen)
        self.error = float(error)
        self.is_norm = bool(is_norm)
        self.prior = prior
        self.scale = float(scale)

    # value and bounds convert on assignment, so hot code reads plain floats
    @property
    def value(self) -> float:
        """Value in `unit` (float)."""
        return self._value

    @value.setter
    def value(self, value):
        self._value = _float(value, self.unit, self.name)

    @property
    def min(self) -> float:
        return self._min

    @min.setter
    def min(self, value):
        self._min = np.nan if value is None else _float(value, self.unit, self.name)

    @property
    def max(self) -> float:
        return self._max

    @max.setter
    def max(self, value):
        self._max = np.nan if value is None else _float(value, self.unit, self.name)

    @property
    def quantity(self) -> u.Quantity:
        """Value as a Quantity."""
        return u.Quantity(self._value, self.unit)

    @quantity.setter
    def quantity(self, value):
        self.value = value

    @property
    def factor(self) -> float:
        """What the optimiser sees: ``value / scale``."""
        return self._value / self.scale

    @factor.setter
    def factor(self, factor):
        self._value = float(factor) * self.scale

    @property
    def factor_bounds(self) -> tuple[float | None, float | None]:
        """Bounds of `factor` for the optimiser (None: unbounded)."""
        lo, hi = self._min / self.scale, self._max / self.scale
        if self.scale < 0:
            lo, hi = hi, lo
        return (None if math.isnan(lo) else lo, None if math.isnan(hi) else hi)

    def autoscale(self):
        """Choose `scale` as the power of ten of the value (1 for a zero value)."""
        value = abs(self._value)
        self.scale = 10 ** math.floor(math.log10(value)) if value > 0 and math.isfinite(value) else 1.0

    def check_limits(self):
        """Raise if the value lies outside [min, max]."""
        if self._value < self._min or self._value > self._max:
            raise ValueError(f"parameter {self.name!r} = {self._value} outside [{self._min}, {self._max}]")

    def copy(self) -> Parameter:
        return copy.copy(self)

    def to_dict(self) -> dict:
        """Gammapy-compatible YAML dict (name, value, unit, min, max, frozen, error ...)."""
        out = {
            "name": self.name,
            "value": self._value,
            "unit": self.unit,
            "min": self._min,
            "max": self._max,
            "frozen": self.frozen,
            "error": self.error,
        }
        if self.is_norm:
            out["is_norm"] = True
        if self.prior is not None:
            out["prior"] = self.prior.to_dict(self.unit)
        return out

    def update_from_dict(self, data: dict):
        """Set value, bounds, frozen, error and prior from a YAML dict (unknown keys are ignored)."""
        unit = data.get("unit", self.unit) or ""
        for key in ("value", "min", "max"):
            if key in data and data[key] is not None:
                setattr(self, key, u.Quantity(float(data[key]), unit))
        if "frozen" in data:
            self.frozen = bool(data["frozen"])
        if "error" in data:
            self.error = float(u.Quantity(float(data["error"]), unit).to_value(self.unit))
        prior = data.get("prior")
        if prior:
            self.prior = GaussianPrior.from_dict(prior, self.unit, unit, self.name)

    def __repr__(self):
        flags = " frozen" if self.frozen else ""
        unit = f" {self.unit}" if self.unit else ""
        err = f" ± {self.error:.4g}" if self.error else ""
        return f"Parameter({self.name}={self._value:.6g}{err}{unit}{flags})"


class Parameters:
    """An ordered collection of `Parameter` objects.

    Index by position or name (``pars["index"]``); names may repeat across
    models in a joint collection, in which case lookup by name returns the
    first. `covariance` (in parameter units) covers all parameters in order.
    """

    def __init__(self, parameters=(), covariance=None):
        self._parameters = list(parameters)
        n = len(self._parameters)
        self.covariance = np.zeros((n, n)) if covariance is None else np.asarray(covariance, dtype=float)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self._parameters]

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def __contains__(self, item):
        if isinstance(item, str):
            return item in self.names
        return any(p is item for p in self._parameters)

    def __getitem__(self, key):
        if isinstance(key, str):
            for par in self._parameters:
                if par.name == key:
                    return par
            raise KeyError(f"no parameter {key!r}; available: {self.names}")
        if isinstance(key, slice):
            return Parameters(self._parameters[key])
        return self._parameters[key]

    def index(self, parameter: Parameter) -> int:
        for i, par in enumerate(self._parameters):
            if par is parameter:
                return i
        raise ValueError(f"{parameter!r} is not in this collection")

    def __add__(self, other):
        return Parameters([*self._parameters, *other])

    @property
    def unique(self) -> Parameters:
        """The collection without repeated (linked) objects, first occurrence kept."""
        seen, out = set(), []
        for par in self._parameters:
            if id(par) not in seen:
                seen.add(id(par))
                out.append(par)
        return Parameters(out)

    @property
    def free(self) -> Parameters:
        """Unique parameters that are not frozen, in order."""
        return Parameters([p for p in self.unique if not p.frozen])

    @property
    def values(self) -> np.ndarray:
        return np.array([p.value for p in self._parameters], dtype=float)

    @values.setter
    def values(self, values):
        values = np.asarray(values, dtype=float)
        if values.shape != (len(self),):
            raise ValueError(f"expected {len(self)} values, got shape {values.shape}")
        for par, value in zip(self._parameters, values):
            par.value = value

    @property
    def free_values(self) -> np.ndarray:
        """Values of the free parameters (`free` order), in parameter units."""
        return self.free.values

    def set_free_values(self, values):
        """Set the free parameters from a vector (the order of `free`)."""
        self.free.values = values

    def prior_stat_sum(self) -> float:
        """Sum of the Gaussian prior terms of the unique parameters."""
        return float(sum(p.prior.stat(p.value) for p in self.unique if p.prior is not None))

    def autoscale(self):
        for par in self.unique:
            par.autoscale()

    def freeze_all(self):
        for par in self._parameters:
            par.frozen = True

    def unfreeze_all(self):
        for par in self._parameters:
            par.frozen = False

    def set_covariance_of(self, subset: Parameters, matrix):
        """Write ``matrix`` (covariance of ``subset``) into this collection's covariance and errors."""
        matrix = np.asarray(matrix, dtype=float)
        if matrix.shape != (len(subset), len(subset)):
            raise ValueError(
                f"covariance of {subset.names} must have shape {(len(subset), len(subset))}, got {matrix.shape}"
            )
        idx = [self.index(p) for p in subset]
        self.covariance[np.ix_(idx, idx)] = matrix
        for par, var in zip(subset, np.diag(matrix)):
            par.error = float(np.sqrt(var)) if var >= 0 else np.nan

    def covariance_of(self, subset: Parameters) -> np.ndarray:
        idx = [self.index(p) for p in subset]
        return self.covariance[np.ix_(idx, idx)]

    def correlation(self) -> np.ndarray:
        err = np.sqrt(np.diag(self.covariance))
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.covariance / np.outer(err, err)

    def to_table(self):
        """The parameters as an `astropy.table.Table` (name, value, unit, error, min, max, frozen)."""
        from astropy.table import Table

        rows = [(p.name, p.value, p.unit, p.error, p.min, p.max, p.frozen) for p in self._parameters]
        names = ("name", "value", "unit", "error", "min", "max", "frozen")
        return Table(rows=rows, names=names) if rows else Table(names=names)

    def copy(self) -> Parameters:
        """Independent copies of the parameters (links within the collection are kept)."""
        copies = {}
        out = [copies.setdefault(id(p), p.copy()) for p in self._parameters]
        return Parameters(out, self.covariance.copy())

    def __repr__(self):
        lines = [f"Parameters ({len(self)}, {len(self.free)} free)"]
        lines += [f"  {p!r}" for p in self._parameters]
        return "\n".join(lines)
