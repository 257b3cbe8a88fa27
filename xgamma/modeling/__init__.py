"""Models: parameters, spectral, spatial and temporal models, sky models and YAML files.

Importing this package registers every model type, so ``Models.read`` can
build any of them from a Gammapy-format YAML file.
"""

from .core import Model, ModelError
from .parameter import GaussianPrior, Parameter, Parameters
from .spatial import *  # noqa: F403
from .spatial import __all__ as _spatial
from .spectral import *  # noqa: F403
from .spectral import __all__ as _spectral
from .spectral_ebl import *  # noqa: F403
from .spectral_ebl import __all__ as _spectral_ebl
from .spectral_table import *  # noqa: F403
from .spectral_table import __all__ as _spectral_table
from .temporal import *  # noqa: F403
from .temporal import __all__ as _temporal
from .sky import FoVBackgroundModel, Models, SkyModel  # noqa: E402 (needs the families above)

__all__ = [
    "FoVBackgroundModel", "GaussianPrior", "Model", "ModelError", "Models", "Parameter", "Parameters", "SkyModel",
    *_spatial, *_spectral, *_spectral_ebl, *_spectral_table, *_temporal,
]
