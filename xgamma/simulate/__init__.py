"""Simulated and synthetic data: observations made from real runs, fake datasets."""

from .survey import RepointedObservation, synthetic_survey

__all__ = ["RepointedObservation", "synthetic_survey"]
