"""Fitting: best fit, covariance, MINOS intervals, likelihood profiles and contours.

Covers the Gammapy "fitting" tutorial on the joint-Crab OGIP spectra: the
four H.E.S.S. runs are fitted jointly with a log-parabola (WStat), then the
parameter errors are looked at in every way `xgamma.fit.Fit` offers:

- ``Fit.run``: MIGRAD then HESSE; results table, covariance and correlation;
- ``Fit.confidence``: asymmetric (MINOS) intervals;
- ``Fit.stat_profile``: the statistic along one parameter, the others
  profiled (refitted) or held fixed;
- ``Fit.stat_contour``: 1 and 2 sigma contours of two parameters (MNCONTOUR).

Finally all five instruments (Fermi-LAT, MAGIC, H.E.S.S., VERITAS, FACT) are
fitted together and the H.E.S.S.-only and joint contours are drawn together.

    python examples/fitting.py [--data ../shared/data] [--out .]
"""

import time
from pathlib import Path

import numpy as np
from _crab import compare, correlation_table, parse, parser, reference, save

from xgamma.datasets import SpectrumDatasetOnOff
from xgamma.datasets.collection import Datasets
from xgamma.fit import Fit
from xgamma.modeling import LogParabolaSpectralModel, SkyModel

INSTRUMENTS = ("fermi", "magic", "hess", "veritas", "fact")


def read_spectra(folder: Path, instrument: str) -> list:
    """The OGIP spectra of one instrument, named ``<instrument>_<file stem>``."""
    paths = sorted((folder / instrument).glob("pha_*.fits"))
    return [SpectrumDatasetOnOff.read(p, name=f"{instrument}_{p.stem.removeprefix('pha_')}") for p in paths]


def crab_model() -> SkyModel:
    """The reference start values (joint-crab.yaml); ln-based LogParabola at 1 TeV."""
    spectral = LogParabolaSpectralModel(amplitude="3.8e-11 cm-2 s-1 TeV-1", alpha=2.5, beta=0.1, reference="1 TeV")
    return SkyModel(spectral, name="crab")


def plot_profiles(profiles: dict, name: str, path: Path):
    """Delta statistic against one parameter, one curve per kind of profile."""
    import matplotlib.pyplot as plt

    ax = plt.figure(figsize=(5, 4)).add_subplot()
    for label, profile in profiles.items():
        stat = profile["stat_scan"]
        ax.plot(profile[f"{name}_scan"], stat - stat.min(), marker=".", label=label)
    ax.axhline(1, color="grey", ls=":", label="1 sigma")
    ax.set(xlabel=name, ylabel="Delta stat (-2 ln L)")
    ax.legend()
    save(ax, path)


def plot_contours(contours: dict, x: str, y: str, path: Path):
    """Closed contour lines of ``y`` against ``x``; ``contours`` maps a label to a `Fit.stat_contour` result."""
    import matplotlib.pyplot as plt

    ax = plt.figure(figsize=(5, 4)).add_subplot()
    for label, contour in contours.items():
        xs, ys = np.append(contour[x], contour[x][0]), np.append(contour[y], contour[y][0])
        ax.plot(xs, ys, label=label)
    ax.set(xlabel=x, ylabel=y)
    ax.legend(fontsize="small")
    save(ax, path)


args = parse(parser(__doc__))
spectra = args.data / "joint-crab" / "spectra"
ref = reference(args.data, "joint-crab.yaml")
ref_fits = ref["fits"] if ref else {}

# --- the H.E.S.S. runs: four OGIP spectra (PHA + ARF + RMF + BKG) -----------------
hess = Datasets(read_spectra(spectra, "hess"))
print(hess)
for dataset in hess:
    info = dataset.info_dict()
    print(f"  {info['name']}: counts {info['counts']}, counts_off {info['counts_off']}, alpha {info['alpha']:.4f}, "
          f"excess {info['excess']:.1f}, sqrt_ts {info['sqrt_ts']:.1f}, livetime {info['livetime']:.0f} s")

# --- best fit and covariance -------------------------------------------------------
hess.models = [crab_model()]
fit = Fit()  # minuit (MIGRAD, HESSE, MINOS); Fit(backend="scipy") works the same way
start = time.perf_counter()
result = fit.run(hess)
print(f"\nfit in {time.perf_counter() - start:.2f} s")
print(result)
compare(hess.models.parameters, result.total_stat, ref_fits.get("logparabola_hess"), "H.E.S.S. log-parabola vs reference")

print(f"\ncovariance ({result.covariance_result.method}, valid: {result.covariance_result.success})")
free = hess.models.parameters.free
print(np.array2string(hess.models.parameters.covariance_of(free), precision=3))
print("correlation")
print(correlation_table(hess.models.parameters))

# --- asymmetric errors: MINOS --------------------------------------------------------
print("\nMINOS 1 sigma intervals (HESSE error for comparison)")
for par in free:
    interval = fit.confidence(hess, par.name, sigma=1)
    print(f"  {par.name:<10} {par.value:.4g}  -{interval['errn']:.3g} +{interval['errp']:.3g}   "
          f"(hesse ± {par.error:.3g}, {interval['message']})")

# --- likelihood profile of alpha: profiled vs. the others held fixed ----------------------
profiles = {
    "others refitted": fit.stat_profile(hess, "alpha", bounds=3, nvalues=13, reoptimize=True),
    "others fixed": fit.stat_profile(hess, "alpha", bounds=3, nvalues=13, reoptimize=False),
}
print("\nprofile of alpha: Delta stat (others refitted / fixed)")
scan = profiles["others refitted"]["alpha_scan"]
for i, value in enumerate(scan):
    deltas = [p["stat_scan"][i] - result.total_stat for p in profiles.values()]
    print(f"  alpha = {value:.3f}: {deltas[0]:7.3f} / {deltas[1]:7.3f}")
plot_profiles(profiles, "alpha", args.out / "fitting-profile-alpha.png")

# --- contours: the 1 and 2 sigma regions of (alpha, beta), amplitude profiled --------------
contours = {}
for sigma in (1, 2):
    contour = fit.stat_contour(hess, "alpha", "beta", numpoints=12, sigma=sigma)
    contours[f"H.E.S.S. {sigma} sigma"] = contour
    print(f"\n{sigma} sigma contour ({contour['message']}): alpha in [{contour['alpha'].min():.3f}, "
          f"{contour['alpha'].max():.3f}], beta in [{contour['beta'].min():.3f}, {contour['beta'].max():.3f}]")

# --- all five instruments together ----------------------------------------------------
joint = Datasets([d for instrument in INSTRUMENTS for d in read_spectra(spectra, instrument)])
joint.models = [crab_model()]
start = time.perf_counter()
joint_result = fit.run(joint)
print(f"\njoint fit of {len(joint)} spectra in {time.perf_counter() - start:.2f} s, success: {joint_result.success}")
compare(joint.models.parameters, joint_result.total_stat, ref_fits.get("logparabola_joint"), "joint log-parabola vs reference")
contours["joint 1 sigma"] = fit.stat_contour(joint, "alpha", "beta", numpoints=12, sigma=1)
plot_contours(contours, "alpha", "beta", args.out / "fitting-contours.png")
