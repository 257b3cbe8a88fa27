"""Modelling: read a Gammapy models file, inspect and change its parameters, write it back.

Covers the Gammapy "modelling" how-to on the Fermi-LAT 3FHL Crab models:
parameters as a table, freezing, linking a parameter between two sources,
a Gaussian prior, the covariance a fit stores, and a YAML round trip that
keeps all of it.

    python examples/modelling.py [--data ../shared/data] [--out .]
"""

import numpy as np
from _crab import parse, parser

from xgamma.modeling import GaussianPrior, Models, PowerLawSpectralModel, SkyModel

args = parse(parser(__doc__))

models = Models.read(args.data / "fermi-3fhl-crab" / "Fermi-LAT-3FHL_models.yaml")
print(models)
print(models.parameters.to_table())

# One source, its parameters by name; values carry the unit the model declares
crab = models["Crab Nebula"]
spectral = crab.spectral_model
print("Crab position:", crab.position)
print("alpha =", spectral.alpha.quantity, "+/-", spectral.alpha.error)
print("reference energy:", spectral.reference.quantity.to("GeV"))
print("dnde at 100 GeV:", spectral("100 GeV"))

# Freeze the curvature; the fit then sees one parameter fewer
free_before = len(models.parameters.free)
spectral.beta.frozen = True
print(f"free parameters: {free_before} -> {len(models.parameters.free)}")

# A second source whose index is linked to a new Crab-like power law: one object, fitted once
nearby = SkyModel(PowerLawSpectralModel(index=1.9, amplitude="1e-12 cm-2 s-1 TeV-1"), name="nearby")
companion = SkyModel(PowerLawSpectralModel(amplitude="5e-13 cm-2 s-1 TeV-1"), name="companion")
companion.spectral_model.index = nearby.spectral_model.index
models.extend([nearby, companion])
nearby.spectral_model.index.value = 2.1
print("linked index of the companion follows:", companion.spectral_model.index.value)
parameters = models.parameters
print(f"{len(parameters)} parameters, {len(parameters.unique)} distinct objects, {len(parameters.free)} free")

# A Gaussian prior on the index (mu 2.0, sigma 0.2): adds ((2.1 - 2.0) / 0.2)**2 = 0.25 to the statistic
nearby.spectral_model.index.prior = GaussianPrior(mu=2.0, sigma=0.2)
print("prior term:", models.parameters.prior_stat_sum())

# A fit stores the covariance of the free parameters on the collection; errors follow the diagonal
free = parameters.free
parameters.set_covariance_of(free, np.diag((0.1 * np.abs(free.values)) ** 2))
assert models.parameters is parameters  # the same collection while the models are unchanged
print("errors from the covariance:", ", ".join(f"{par.name} {par.error:.3g}" for par in free))

# Write and read back: frozen flags, the link, the prior and the errors survive
path = args.out / "crab-models.yaml"
models.write(path, overwrite=True)
read = Models.read(path)
index_nearby, index_companion = read["nearby"].spectral_model.index, read["companion"].spectral_model.index
assert index_nearby is index_companion and index_nearby.prior == GaussianPrior(2.0, 0.2)
assert read["Crab Nebula"].spectral_model.beta.frozen
print(f"wrote {path}; links, priors and frozen flags read back")
