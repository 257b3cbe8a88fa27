"""Spectral models: evaluate, integrate, combine with EBL absorption, write and read YAML.

    python examples/models_spectral.py [--data ../shared/data]
"""

import argparse
import os
from pathlib import Path

import astropy.units as u
import numpy as np
import yaml

from xgamma.modeling.spectral import LogParabolaSpectralModel, PowerLawSpectralModel, SpectralModel
from xgamma.modeling.spectral_ebl import EBLAbsorptionNormSpectralModel

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", type=Path, default=Path(os.environ.get("XGAMMA_DATA", "../shared/data")))
args = parser.parse_args()

# A Crab-like power law: values and parameters accept Quantities and strings
crab = PowerLawSpectralModel(index=2.63, amplitude="3.45e-11 cm-2 s-1 TeV-1", reference="1 TeV")
print(crab)
print("dnde(1 TeV)        :", crab("1 TeV"))
print("flux(> 1 TeV)      :", crab.integral(1 * u.TeV, 1e4 * u.TeV).to("cm-2 s-1"))
print("energy flux 1-10 TeV:", crab.energy_flux("1 TeV", "10 TeV").to("erg cm-2 s-1"))

# Curvature: the local index of a log-parabola grows with energy
lp = LogParabolaSpectralModel(alpha=2.47, beta=0.104, reference="1 TeV", amplitude="3.8e-11 cm-2 s-1 TeV-1")
energy = [0.3, 1, 3, 10] * u.TeV
print("log-parabola index at", energy, ":", np.round(lp.spectral_index(energy), 3))

# A blazar at z = 0.2: power law times EBL absorption (Dominguez et al. 2011)
ebl = EBLAbsorptionNormSpectralModel.read_builtin("dominguez", redshift=0.2, data_dir=args.data)
blazar = PowerLawSpectralModel(index=2.0, amplitude="1e-11 cm-2 s-1 TeV-1") * ebl
edges = np.geomspace(0.1, 10, 5) * u.TeV
print("absorption at", edges, ":", np.round(ebl(edges).value, 4))
print("absorbed flux per bin:", blazar.integral(edges[:-1], edges[1:]))

# YAML round trip (Gammapy-compatible type and parameter names)
text = yaml.safe_dump(blazar.to_dict(), sort_keys=False)
restored = SpectralModel.from_dict(yaml.safe_load(text))
assert np.allclose(restored(edges).value, blazar(edges).value)
print(text.splitlines()[0], "... round trip OK")
