"""Instrument response functions as labelled xarray objects.

Which class to use when:

- `EffectiveAreaTable2D`: effective area A(E_true, offset), evaluated in cm2.
- `EnergyDispersion2D`: migration density dP/dmu(E_true, mu, offset); build a
  reco-energy matrix with `~EnergyDispersion2D.to_edisp_kernel`.
- `PSFTable`, `PSF3Gauss`, `PSFKing`: PSF dP/dOmega in sr-1, all with
  ``containment`` and ``containment_radius``.
- `Background2D`, `Background3D`: background rate in s-1 TeV-1 sr-1;
  ``integrate_energy`` gives s-1 sr-1.
- `RadMax2D`: point-like directional cut in deg.

`load_irf` / `read_irf` pick the class from the HDU-index class or header.
"""

from .aeff import EffectiveAreaTable2D
from .background import DEFAULT_FOVALIGN, Background2D, Background3D
from .core import IRF, IRFClassError
from .edisp import EnergyDispersion2D
from .io import IRF_CLASSES, hdu_class_from_header, irf_class, load_irf, read_irf
from .psf import PSFTable
from .psf_parametric import PSF3Gauss, PSFKing
from .rad_max import RadMax2D

__all__ = [
    "IRF",
    "IRFClassError",
    "IRF_CLASSES",
    "EffectiveAreaTable2D",
    "EnergyDispersion2D",
    "PSFTable",
    "PSF3Gauss",
    "PSFKing",
    "Background2D",
    "Background3D",
    "DEFAULT_FOVALIGN",
    "RadMax2D",
    "load_irf",
    "read_irf",
    "irf_class",
    "hdu_class_from_header",
]
