"""Spectral analysis: the Crab 1-D analysis of four H.E.S.S. runs, against the reference numbers.

Covers the Gammapy "spectral analysis" tutorial with the choices of
../shared/reference/crab-1d.yaml: counts in a 0.11 deg ON circle, OFF counts
in reflected regions (one 0.5 deg circle excluded), exposure corrected for the PSF
containment, a safe energy range where the effective area exceeds 10 % of its
maximum. The four runs are fitted jointly and stacked, with a power law, a
log-parabola and a power law with exponential cut-off (WStat), and each fit is
printed beside the reference.

    python examples/spectral_analysis.py [--data ../shared/data] [--out .]
"""

import time

import astropy.units as u
import numpy as np
from _crab import CRAB, CRAB_RUNS, compare, parse, parser, reference, save
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion

from xgamma.axes import MapAxis
from xgamma.data import DataStore
from xgamma.datasets import Datasets, SpectrumDataset
from xgamma.fit import Fit
from xgamma.geom import RegionGeom, WcsGeom
from xgamma.makers import (
    ReflectedRegionsBackgroundMaker,
    SafeMaskMaker,
    SpectrumDatasetMaker,
)
from xgamma.modeling import (
    ExpCutoffPowerLawSpectralModel,
    LogParabolaSpectralModel,
    PowerLawSpectralModel,
    SkyModel,
)

SUMMARY_KEYS = ("counts", "counts_off", "alpha", "excess", "sqrt_ts", "n_fit_bins")


def exclusion_mask():
    """True where OFF regions may go: everywhere but the 0.5 deg circle the reference excludes."""
    geom = WcsGeom.create(skydir=CRAB, npix=(150, 150), binsz=0.05, proj="TAN", frame="icrs")
    star = CircleSkyRegion(SkyCoord(183.604, -8.708, unit="deg", frame="galactic"), 0.5 * u.deg)
    mask = ~geom.region_mask(star)
    mask.attrs["wcs"] = geom.to_header_string()
    return mask


def print_summary(info: dict, ref: dict | None):
    mine = "  ".join(f"{k} {info[k]:.4g}" for k in SUMMARY_KEYS)
    print(f"  {info['name']:>8}: {mine}")
    if ref:
        print(f"  {'ref':>8}: " + "  ".join(f"{k} {ref[k]:.4g}" for k in SUMMARY_KEYS))


def spectral_models() -> dict:
    """Start values of the reference fits (crab-1d.yaml, choices.start_values)."""
    amplitude = "1e-12 cm-2 s-1 TeV-1"
    return {
        "powerlaw": lambda: PowerLawSpectralModel(index=2, amplitude=amplitude, reference="1 TeV"),
        "logparabola": lambda: LogParabolaSpectralModel(alpha=2, beta=0.1, amplitude=amplitude, reference="1 TeV"),
        "ecpl": lambda: ExpCutoffPowerLawSpectralModel(index=2, lambda_="0.1 TeV-1", amplitude=amplitude,
                                                       reference="1 TeV"),
    }


def plot_counts(dataset, path):
    """Counts, OFF background and predicted counts per energy bin, with the residuals below."""
    import matplotlib.pyplot as plt

    _, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6, 5), height_ratios=(3, 1))
    mask = dataset.mask_safe.values
    energy = dataset.energy_axis
    centres, edges = energy.center.to_value("TeV"), energy.edges.to_value("TeV")
    counts = np.where(mask, dataset.counts.values, np.nan)
    top.stairs(np.where(mask, dataset.npred().values, np.nan), edges, label="npred (source + background)")
    top.stairs(np.where(mask, dataset.background.values, np.nan), edges, label="alpha x counts_off", ls="--")
    top.errorbar(centres, counts, yerr=np.sqrt(counts), fmt="o", ms=3, color="k", label="counts")
    top.set(xscale="log", yscale="log", ylabel="counts per bin")
    top.legend(fontsize="small")
    residuals = np.where(mask, dataset.residuals("diff/sqrt(model)").values, np.nan)
    bottom.plot(centres, residuals, "o", ms=3, color="k")
    bottom.axhline(0, color="grey")
    bottom.set(xlabel="Reconstructed energy [TeV]", ylabel="(n - npred) / sqrt(npred)")
    save(top, path)


args = parse(parser(__doc__))
ref = reference(args.data, "crab-1d.yaml") or {}

observations = DataStore.from_dir(args.data / "hess-dl3-dr1").select_cone(CRAB, radius="5 deg").get_observations()
assert [o.obs_id for o in observations] == CRAB_RUNS, [o.obs_id for o in observations]
print(f"{len(observations)} observations: {[o.obs_id for o in observations]}")

# --- reduction: one ON/OFF spectrum per run --------------------------------------------
energy = MapAxis.from_energy_bounds("0.1 TeV", "40 TeV", 10, per_decade=True)
energy_true = MapAxis.from_energy_bounds("0.05 TeV", "100 TeV", 20, per_decade=True, name="energy_true")
on_region = CircleSkyRegion(CRAB, 0.11 * u.deg)
empty = SpectrumDataset.create(RegionGeom.create(on_region, axes=[energy]), energy_true)
makers = [
    SpectrumDatasetMaker(containment_correction=True, selection=("counts", "exposure", "edisp")),
    ReflectedRegionsBackgroundMaker(exclusion_mask=exclusion_mask()),
    SafeMaskMaker(methods=("aeff-max",), aeff_percent=10),
]
start = time.perf_counter()
per_run = []
for observation in observations:
    dataset = empty.copy(name=str(observation.obs_id))
    for maker in makers:
        dataset = maker.run(dataset, observation)
    per_run.append(dataset)
print(f"reduced {len(per_run)} runs in {time.perf_counter() - start:.1f} s "
      f"({energy.nbin} reco bins, {energy_true.nbin} true bins)")
print("\nper run, in the safe energy range (reference below each):")
for dataset, ref_run in zip(per_run, ref.get("per_run", [None] * len(per_run))):
    print_summary(dataset.info_dict(), ref_run)
    safe_min = dataset.energy_axis.edges[:-1][dataset.mask_safe.values].min()
    ref_min = ref.get("per_run_safe_energy_min_TeV", {}).get(dataset.name)
    print(f"  {'':>8}  safe energy threshold {safe_min:.3f}" + (f" (reference {ref_min:.3f} TeV)" if ref_min else ""))

# --- stacking: counts and OFF counts add, alpha becomes a per-bin average ----------------------
stacked = per_run[0]
for dataset in per_run[1:]:
    stacked = stacked.stack(dataset)
stacked = stacked.copy(name="stacked")
print()
print(stacked)
print_summary(stacked.info_dict(), ref.get("stacked", [None])[0])

# --- fits: stacked and joint, three spectral shapes --------------------------------------
collections = {"stacked": Datasets([stacked]), "joint": Datasets(per_run)}
fit = Fit()
for kind, make_model in spectral_models().items():
    for combination, datasets in collections.items():
        datasets.models = [SkyModel(make_model(), name="crab")]
        start = time.perf_counter()
        result = fit.run(datasets)
        key = f"{kind}_{combination}" if kind != "ecpl" else f"ecpl_{combination}_tutorial"
        title = f"{kind} {combination} ({time.perf_counter() - start:.2f} s, {result.nfev} calls, success {result.success})"
        compare(datasets.models.parameters, result.total_stat, ref.get("fits", {}).get(key), title)

# --- goodness of fit of the stacked power law: counts vs prediction --------------------------
stacked.models = [SkyModel(spectral_models()["powerlaw"](), name="crab")]
fit.run(Datasets([stacked]))
print(f"\nstacked power law: {int(stacked.counts.values[stacked.mask_safe.values].sum())} counts, "
      f"{stacked.npred().values[stacked.mask_safe.values].sum():.1f} predicted in the safe range")
plot_counts(stacked, args.out / "spectral-analysis-counts.png")
