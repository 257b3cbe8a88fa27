"""Models: parameters, spectral, spatial and temporal models, sky models and YAML files."""

from .core import Model, ModelError
from .parameter import GaussianPrior, Parameter, Parameters

__all__ = ["GaussianPrior", "Model", "ModelError", "Parameter", "Parameters"]
