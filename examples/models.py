"""Models: spectral, spatial and temporal families, sky models, and their YAML files.

Covers the Gammapy "models" tutorial: build a model of each family,
evaluate and integrate it, combine spectra (including EBL absorption), put
them into sky models and write and read a Gammapy-format models file.

    python examples/models.py [--data ../shared/data] [--out .]
"""

import astropy.units as u
import numpy as np
from _crab import parse, parser
from astropy.time import Time

from xgamma.geom import WcsGeom
from xgamma.modeling import (
    DiskSpatialModel,
    EBLAbsorptionNormSpectralModel,
    ExpCutoffPowerLawSpectralModel,
    ExpDecayTemporalModel,
    FoVBackgroundModel,
    GaussianSpatialModel,
    LogParabolaSpectralModel,
    Models,
    PointSpatialModel,
    PowerLawSpectralModel,
    SkyModel,
)

args = parse(parser(__doc__))

# Spectral models: parameters accept numbers (in the declared unit), Quantities and strings
pwl = PowerLawSpectralModel(index=2.5, amplitude="4e-11 cm-2 s-1 TeV-1", reference="1 TeV")
ecpl = ExpCutoffPowerLawSpectralModel(index=2.2, amplitude=3e-11, lambda_=1 / (20 * u.TeV))
lp = LogParabolaSpectralModel(alpha=2.4, beta=0.1, amplitude="3.8e-11 cm-2 s-1 TeV-1", reference=1000 * u.GeV)
energy = [0.3, 1, 10, 100] * u.TeV
for model in (pwl, ecpl, lp):
    print(f"{type(model).__name__:32s} dnde at {energy}: {model(energy)}")
print(pwl.parameters.to_table())

# Integrals: the power law has a closed form, E^-2.5 from 1 TeV to infinity is amplitude * 1 TeV / 1.5
flux = pwl.integral("1 TeV", "1e6 TeV").to("cm-2 s-1")
print(f"power-law flux above 1 TeV: {flux:.4g} (analytic {4e-11 / 1.5:.4g} cm-2 s-1)")
print("cut-off power-law energy flux 1-100 TeV:", ecpl.energy_flux("1 TeV", "100 TeV").to("erg cm-2 s-1"))

# Compound models: sums and products of spectral models are spectral models
two_components = pwl + ecpl
print("sum at 1 TeV equals the sum of the parts:", two_components("1 TeV"), "=", pwl("1 TeV") + ecpl("1 TeV"))

# EBL absorption (Dominguez et al. 2011) of a source at redshift 0.3
ebl = EBLAbsorptionNormSpectralModel.read_builtin("dominguez", redshift=0.3, data_dir=args.data)
absorbed = pwl * ebl
print("absorption exp(-tau) at", energy, ":", np.round(ebl(energy).value, 4))
edges = np.geomspace(0.1, 10, 4) * u.TeV
print("absorbed flux per bin:", absorbed.integral(edges[:-1], edges[1:]).to("cm-2 s-1"))

# Spatial models: brightness in sr-1, integrated over the pixels of a geometry
gauss = GaussianSpatialModel(lon_0="83.63 deg", lat_0="22.01 deg", sigma="0.2 deg")
disk = DiskSpatialModel(lon_0=184.56, lat_0=-5.78, r_0="0.3 deg", frame="galactic")
geom = WcsGeom.create(skydir=(83.63, 22.01), width="3 deg", binsz=0.02, frame="icrs")
print("Gaussian brightness at its centre:", gauss(83.63, 22.01), "sr-1")
print(f"Gaussian containment in a 3 deg map: {float(gauss.integrate_geom(geom).sum()):.4f}")
print(f"disk (galactic frame) in the same ICRS map: {float(disk.integrate_geom(geom).sum()):.4f}")

# Temporal models: a flare decaying with a time constant of 2 days
flare = ExpDecayTemporalModel(t0="2 d", t_ref=Time("2021-03-01").mjd)
days = Time("2021-03-01").mjd + np.array([0.0, 2.0, 4.0])
print("flare norm at 0, 2, 4 days:", np.round(flare(days), 4), "(exp(0), exp(-1), exp(-2))")

# Sky models and a Models collection, written to and read from a Gammapy-format YAML file
crab = SkyModel(lp, PointSpatialModel(lon_0=83.63, lat_0=22.01), name="crab")
blazar = SkyModel(absorbed, gauss.copy(lon_0=84.5), flare, name="flaring-blazar")
models = Models([crab, blazar, FoVBackgroundModel("crab-run")])
path = args.out / "models.yaml"
models.write(path, overwrite=True)
read = Models.read(path)
print(read)
assert read.names == ["crab", "flaring-blazar", "crab-run-bkg"]
assert np.allclose(read["flaring-blazar"].spectral_model(energy).value, absorbed(energy).value)
print(f"wrote and read {path}: {len(read.parameters)} parameters, {len(read.parameters.free)} free")
