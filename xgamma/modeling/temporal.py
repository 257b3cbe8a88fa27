"""Temporal models: a dimensionless norm of the flux as a function of time.

Which one to use when:

- `ConstantTemporalModel`: a steady source (the default of a sky model).
- `LinearTemporalModel`, `PowerLawTemporalModel`, `SineTemporalModel`:
  slow trends and periodic modulation.
- `ExpDecayTemporalModel`, `GaussianTemporalModel`,
  `GeneralizedGaussianTemporalModel`: flares (the last with separate rise
  and decay times).
- `LightCurveTemplateTemporalModel`: a measured or simulated light curve,
  linearly interpolated between its nodes.

Times are MJD floats in the model's time ``scale`` (``"utc"`` by default);
public methods also take `~astropy.time.Time`. Durations are in days.
`TemporalModel.integral` gives, for each interval, the integral of the model
divided by the *total* duration of all intervals given together (so a
constant model gives ``duration_i / total``, summing to 1); `integrate_gti`
is the mean of the model over an observation's good time intervals, the
factor forward folding multiplies the flux by. Every model has a closed-form
antiderivative, so integrals are exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table
from astropy.time import Time
from scipy.special import erf, gamma, gammainc

from .core import Model, ModelError
from .parameter import Parameter

__all__ = [
    "ConstantTemporalModel",
    "ExpDecayTemporalModel",
    "GaussianTemporalModel",
    "GeneralizedGaussianTemporalModel",
    "LightCurveTemplateTemporalModel",
    "LinearTemporalModel",
    "PowerLawTemporalModel",
    "SineTemporalModel",
    "TemporalModel",
    "integrate_gti",
]

# 2000-01-01, the usual reference of t_ref
_MJD_2000 = 51544.0
_SECONDS_PER_DAY = 86400.0


def _t_ref(frozen=True):
    return Parameter("t_ref", _MJD_2000, "d", frozen=frozen)


class TemporalModel(Model):
    """Base of temporal models.

    Parameters
    ----------
    scale : str
        Time scale of the MJD values (``"utc"``, ``"tt"`` ...). Default ``"utc"``.
    **parameters
        Parameter values; ``t_ref`` is an MJD in days.
    """

    _registry = {}

    def __init__(self, scale="utc", **parameters):
        self.scale = str(scale)
        super().__init__(**parameters)

    def _mjd(self, time) -> np.ndarray:
        """``time`` (Time, or MJD floats in `scale`) as MJD floats in `scale`."""
        if isinstance(time, Time):
            return np.asarray(getattr(time, self.scale).mjd, dtype=float)
        return np.asarray(time, dtype=float)

    def __call__(self, time):
        """Norm at ``time`` (`~astropy.time.Time` or MJD floats in `scale`)."""
        return self.evaluate(self._mjd(time), **self.parameter_values)

    def integral(self, t_min, t_max):
        """Integral of the model over each interval, divided by the total duration.

        Parameters
        ----------
        t_min, t_max : `~astropy.time.Time` or array of float
            Interval bounds (MJD in `scale` for floats).

        Returns
        -------
        `numpy.ndarray`
            Dimensionless, one value per interval; their sum is the mean of
            the model over the intervals.
        """
        t_min, t_max = np.broadcast_arrays(np.atleast_1d(self._mjd(t_min)), np.atleast_1d(self._mjd(t_max)))
        total = np.sum(t_max - t_min)
        if not total > 0:
            raise ValueError(f"{type(self).__name__}.integral: the intervals have total duration {total} d")
        values = self.parameter_values
        return (self.antiderivative(t_max, **values) - self.antiderivative(t_min, **values)) / total

    # ---- YAML ----------------------------------------------------------
    def to_dict(self, full_output: bool = False) -> dict:
        """``{"type", "parameters", "scale"}``."""
        return {**super().to_dict(full_output), "scale": self.scale}

    @classmethod
    def _from_dict(cls, data: dict) -> TemporalModel:
        model = cls(scale=data.get("scale", "utc"))
        model._update_parameters(data.get("parameters", []))
        return model


def integrate_gti(model: TemporalModel, gti) -> float:
    """Mean of a temporal model over good time intervals, weighted by their durations.

    Parameters
    ----------
    model : `TemporalModel`
        The model.
    gti : `~xgamma.data.GTI`
        Good time intervals.

    Returns
    -------
    float
        ``sum_i integral_{GTI_i} f dt / sum_i duration_i`` (dimensionless;
        1 for a constant model).
    """
    if len(gti) == 0:
        raise ValueError("integrate_gti: the GTI has no intervals")
    return float(np.sum(model.integral(gti.start, gti.stop)))


class ConstantTemporalModel(TemporalModel):
    """Norm 1 at all times."""

    tag = ["ConstantTemporalModel", "const"]

    @staticmethod
    def evaluate(time):
        return np.ones_like(time, dtype=float)

    @staticmethod
    def antiderivative(time):
        return np.asarray(time, dtype=float)


class LinearTemporalModel(TemporalModel):
    """``f = alpha + beta (t - t_ref)``; ``beta`` in d-1."""

    tag = ["LinearTemporalModel", "linear"]
    alpha = Parameter("alpha", 1.0, "")
    beta = Parameter("beta", 0.0, "d-1")
    t_ref = _t_ref()

    @staticmethod
    def evaluate(time, alpha, beta, t_ref):
        return alpha + beta * (time - t_ref)

    @staticmethod
    def antiderivative(time, alpha, beta, t_ref):
        dt = time - t_ref
        return alpha * dt + 0.5 * beta * dt**2


class ExpDecayTemporalModel(TemporalModel):
    """``f = exp(-(t - t_ref) / t0)``; ``t0`` in d."""

    tag = ["ExpDecayTemporalModel", "exp-decay"]
    t0 = Parameter("t0", 1.0, "d")
    t_ref = _t_ref()

    @staticmethod
    def evaluate(time, t0, t_ref):
        return np.exp(-(time - t_ref) / t0)

    @staticmethod
    def antiderivative(time, t0, t_ref):
        return -t0 * np.exp(-(time - t_ref) / t0)


class GaussianTemporalModel(TemporalModel):
    """``f = exp(-(t - t_ref)**2 / (2 sigma**2))``; ``sigma`` in d."""

    tag = ["GaussianTemporalModel", "gauss"]
    t_ref = _t_ref(frozen=False)
    sigma = Parameter("sigma", 1.0, "d")

    @staticmethod
    def evaluate(time, t_ref, sigma):
        return np.exp(-0.5 * ((time - t_ref) / sigma) ** 2)

    @staticmethod
    def antiderivative(time, t_ref, sigma):
        return sigma * np.sqrt(np.pi / 2) * erf((time - t_ref) / (np.sqrt(2) * sigma))


class GeneralizedGaussianTemporalModel(TemporalModel):
    """Flare with separate rise and decay: ``f = exp(-(|t - t_ref| / tau)**(1 / eta) / 2)``.

    ``tau = t_rise`` before ``t_ref`` and ``t_decay`` after (days); ``eta =
    1/2`` is a Gaussian of sigma ``tau``, ``eta = 1`` exponential wings.
    """

    tag = ["GeneralizedGaussianTemporalModel", "gengauss"]
    t_ref = _t_ref(frozen=False)
    t_rise = Parameter("t_rise", 1.0, "d")
    t_decay = Parameter("t_decay", 1.0, "d")
    eta = Parameter("eta", 0.5, "")

    @staticmethod
    def evaluate(time, t_ref, t_rise, t_decay, eta):
        dt = time - t_ref
        tau = np.where(dt < 0, t_rise, t_decay)
        return np.exp(-0.5 * (np.abs(dt) / tau) ** (1 / eta))

    @staticmethod
    def antiderivative(time, t_ref, t_rise, t_decay, eta):
        # integral_0^x exp(-(u / tau)**(1/eta) / 2) du = tau 2**eta Gamma(eta + 1) P(eta, (x / tau)**(1/eta) / 2)
        dt = time - t_ref
        tau = np.where(dt < 0, t_rise, t_decay)
        wing = tau * 2**eta * gamma(eta + 1) * gammainc(eta, 0.5 * (np.abs(dt) / tau) ** (1 / eta))
        return np.sign(dt) * wing


class PowerLawTemporalModel(TemporalModel):
    """``f = ((t - t_ref) / t0)**alpha`` after ``t_ref``, 0 before; ``t0`` in d."""

    tag = ["PowerLawTemporalModel", "powerlaw"]
    alpha = Parameter("alpha", 1.0, "")
    t_ref = _t_ref()
    t0 = Parameter("t0", 1.0, "d", frozen=True)

    @staticmethod
    def evaluate(time, alpha, t_ref, t0):
        x = (time - t_ref) / t0
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, np.abs(x) ** alpha, 0.0)

    @staticmethod
    def antiderivative(time, alpha, t_ref, t0):
        x = np.maximum((time - t_ref) / t0, 0.0)
        with np.errstate(divide="ignore"):
            if alpha == -1:
                return t0 * np.log(x)
            return t0 * x ** (alpha + 1) / (alpha + 1)


class SineTemporalModel(TemporalModel):
    """``f = 1 + amp sin(omega (t - t_ref))``; ``omega`` in rad/d."""

    tag = ["SineTemporalModel", "sinus"]
    amp = Parameter("amp", 1.0, "")
    omega = Parameter("omega", 1.0, "rad / d")
    t_ref = _t_ref()

    @staticmethod
    def evaluate(time, amp, omega, t_ref):
        return 1 + amp * np.sin(omega * (time - t_ref))

    @staticmethod
    def antiderivative(time, amp, omega, t_ref):
        dt = time - t_ref
        return dt - amp / omega * np.cos(omega * dt)


class LightCurveTemplateTemporalModel(TemporalModel):
    """A tabulated light curve, linear between nodes, 0 outside them.

    Parameters
    ----------
    time : `~astropy.time.Time` or array of float
        Node times (MJD in ``scale`` for floats), increasing.
    norm : array of float
        Norm at each node (dimensionless).
    filename : str, optional
        File holding the table (written in the YAML dict).
    scale : str
        Time scale of the MJD values. Default ``"utc"``.

    Notes
    -----
    Files (FITS or ECSV, `read`/`write`) hold the columns ``TIME`` and
    ``NORM``; ``TIME`` is counted from the MJD ``MJDREFI + MJDREFF`` of the
    table header in the column unit (seconds if none), or, without MJDREF,
    is the MJD itself in days. A ``TIMESYS`` keyword gives the scale.
    """

    tag = ["LightCurveTemplateTemporalModel", "template"]

    def __init__(self, time, norm, filename=None, scale="utc"):
        super().__init__(scale=scale)
        self.time = self._mjd(time).ravel()
        self.norm = np.asarray(norm, dtype=float).ravel()
        if self.time.shape != self.norm.shape or self.time.size < 2:
            raise ValueError(f"light curve needs >= 2 nodes and as many norms: time {self.time.shape}, norm {self.norm.shape}")
        if np.any(np.diff(self.time) <= 0):
            raise ValueError("light curve node times must increase strictly")
        self.filename = filename
        # integral of the curve from the first node to each node (trapezoids are exact for linear segments)
        self._cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (self.norm[1:] + self.norm[:-1]) * np.diff(self.time))])

    def evaluate(self, time):
        return np.interp(time, self.time, self.norm, left=0.0, right=0.0)

    def antiderivative(self, time):
        time = np.clip(np.asarray(time, dtype=float), self.time[0], self.time[-1])
        i = np.clip(np.searchsorted(self.time, time, side="right") - 1, 0, self.time.size - 2)
        dt = time - self.time[i]
        slope = (self.norm[i + 1] - self.norm[i]) / (self.time[i + 1] - self.time[i])
        return self._cumulative[i] + self.norm[i] * dt + 0.5 * slope * dt**2

    @classmethod
    def read(cls, filename, format=None) -> LightCurveTemplateTemporalModel:
        """Read a ``TIME``, ``NORM`` table (FITS or ECSV; see the class notes)."""
        table = Table.read(str(filename), format=format)
        missing = [c for c in ("TIME", "NORM") if c not in table.colnames]
        if missing:
            raise ModelError(f"{filename}: light-curve table lacks columns {missing} (has {table.colnames})")
        meta = {k.upper(): v for k, v in table.meta.items()}
        scale = str(meta.get("TIMESYS", "utc")).lower()
        column = table["TIME"]
        if isinstance(column, Time):
            mjd = getattr(column, scale).mjd
        elif "MJDREFI" in meta:
            days = column.quantity.to_value("d") if column.unit else np.asarray(column, dtype=float) / _SECONDS_PER_DAY
            mjd = float(meta["MJDREFI"]) + float(meta.get("MJDREFF", 0.0)) + days
        else:
            mjd = column.quantity.to_value("d") if column.unit else np.asarray(column, dtype=float)
        return cls(mjd, np.asarray(table["NORM"], dtype=float), filename=str(filename), scale=scale)

    def write(self, filename, overwrite=False, format=None):
        """Write the nodes as a table: ``TIME`` in s since ``MJDREFI`` (the first node's day), ``NORM``."""
        mjdref = float(np.floor(self.time[0]))
        table = Table({"TIME": (self.time - mjdref) * _SECONDS_PER_DAY, "NORM": self.norm})
        table["TIME"].unit = "s"
        table.meta.update({"MJDREFI": int(mjdref), "MJDREFF": 0.0, "TIMESYS": self.scale})
        table.write(str(filename), overwrite=overwrite, format=format)
        self.filename = str(filename)

    def to_dict(self, full_output: bool = False) -> dict:
        """``{"type", "parameters": [], "scale", "filename"}``."""
        if self.filename is None:
            raise ModelError("LightCurveTemplateTemporalModel has no filename: call write(filename) first")
        return {**super().to_dict(full_output), "filename": str(self.filename)}

    @classmethod
    def _from_dict(cls, data: dict) -> LightCurveTemplateTemporalModel:
        if not data.get("filename"):
            raise ModelError(f"LightCurveTemplateTemporalModel entry needs a 'filename': {data!r}")
        return cls.read(Path(data["filename"]))
