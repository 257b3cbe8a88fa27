"""Flux point fitting: spectral models fitted to a GADF SED (a chi2 on the points).

Takes the H.E.S.S. Crab flux points of the reference analysis
(../shared/reference/crab-1d.yaml: four runs, joint power-law reference
model), writes them as a GADF SED file in ``e2dnde`` form and reads them
back, then fits a power law and a log-parabola to the finite points (upper
limits are left out of the chi2) and compares with the reference
forward-folding fits of the counts.

    python examples/flux_point_fitting.py [--data ../shared/data] [--out .]
"""

import numpy as np
from _crab import compare, parse, parser, reference
from astropy.table import Table

from xgamma.datasets.collection import Datasets
from xgamma.datasets.flux_points import FluxPointsDataset
from xgamma.estimators import FluxPoints
from xgamma.fit import Fit
from xgamma.modeling import LogParabolaSpectralModel, PowerLawSpectralModel, SkyModel

args = parse(parser(__doc__))
ref = reference(args.data, "crab-1d.yaml")
if ref is None:
    raise SystemExit("this example builds its flux points from crab-1d.yaml, which was not found")

# The reference points as a GADF table: null entries (bins below the safe threshold) become NaN
rows = [{key: np.nan if value is None else value for key, value in row.items()}
        for row in ref["flux_points_joint_powerlaw"]["rows"]]
table = Table(rows=rows, meta={"SED_TYPE": "dnde"})
for name in table.colnames:
    if name.startswith("e_"):
        table[name].unit = "TeV"
    elif name.startswith("dnde"):
        table[name].unit = "cm-2 s-1 TeV-1"
points = FluxPoints.from_table(table)

# Round trip through a file in another SED type (e2dnde needs no reference model)
path = args.out / "crab_flux_points.fits"
points.write(path, sed_type="e2dnde", overwrite=True)
points = FluxPoints.read(path)
print(points)
print(points.to_table("e2dnde")["e_ref", "e2dnde", "e2dnde_errn", "e2dnde_errp", "is_ul"][8:])

models = {
    "powerlaw_joint": PowerLawSpectralModel(index=2.0, amplitude="1e-12 cm-2 s-1 TeV-1", reference="1 TeV"),
    "logparabola_joint": LogParabolaSpectralModel(
        amplitude="1e-12 cm-2 s-1 TeV-1", reference="1 TeV", alpha=2.0, beta=0.1
    ),
}
for key, spectral in models.items():
    dataset = FluxPointsDataset(SkyModel(spectral, name="crab"), points, name="crab-points")
    result = Fit().run(Datasets([dataset]))
    n_points = int((dataset.mask_valid & dataset.mask).sum())
    dof = n_points - len(spectral.parameters.free)
    compare(spectral.parameters, result.total_stat, ref["fits"][key],
            f"{type(spectral).__name__} fitted to {n_points} flux points (chi2 / dof = {result.total_stat:.2f} / {dof});"
            " reference: WStat fit of the counts (total_stat is not comparable)")
    residuals = dataset.residuals("diff/model").where(dataset.mask_valid)
    print("  relative residuals:", np.array2string(residuals.values[np.isfinite(residuals.values)], precision=2))
