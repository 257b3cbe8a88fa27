"""Estimators and their results: flux points (light curves, maps and profiles come later).

Which one to use when:

- `FluxPoints`: a measured spectrum (SED) read from a GADF file, built from
  a table, or produced by an estimator; convert between SED types, write it,
  or fit it with `xgamma.datasets.flux_points.FluxPointsDataset`.
"""

from .points import SED_TYPES, FluxPoints

__all__ = ["SED_TYPES", "FluxPoints"]
