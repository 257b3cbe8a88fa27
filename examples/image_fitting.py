"""Image analysis: counts, background, excess and significance images of the Crab, then a morphology fit.

Covers the Gammapy "basic image exploration and fitting" tutorial: the four
H.E.S.S. Crab runs are reduced and stacked into a dataset with a single
1-10 TeV energy bin (`reduce`, the synchronous scheduler), the images are
looked at (counts, FoV-normalised background, excess, a Li & Ma-like Cash
significance in a 0.1 deg circle, compared with crab-3d.yaml's excess map),
and the Crab is fitted as a point source and as a Gaussian on top of a
fitted background norm, telling whether it is resolved.

    python examples/image_fitting.py [--data ../shared/data] [--out .]
"""

import time

import astropy.units as u
import numpy as np
from _crab import CRAB, compare, correlate, parse, parser, reference, save
from regions import CircleSkyRegion

from xgamma.axes import MapAxis
from xgamma.data import DataStore
from xgamma.datasets import Datasets, MapDataset
from xgamma.fit import Fit
from xgamma.geom import WcsGeom
from xgamma.makers import FoVBackgroundMaker, MapDatasetMaker, SafeMaskMaker, reduce
from xgamma.maps import cutout
from xgamma.modeling import (
    FoVBackgroundModel,
    GaussianSpatialModel,
    Models,
    PointSpatialModel,
    PowerLawSpectralModel,
    SkyModel,
)
from xgamma.plotting import plot_map


def image(dataset, values, name):
    """A (y, x) map of ``dataset``'s grid holding ``values``."""
    out = dataset.counts.isel(energy=0, drop=True).copy(data=values)
    out.name = name
    return out


def cash_significance(counts, background):
    """Signed sqrt of the Cash TS of ``counts`` over a known ``background``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = 2 * (counts * np.log(counts / background) - (counts - background))
        ts = np.where(counts > 0, ts, 2 * background)
    return np.where(background > 0, np.sign(counts - background) * np.sqrt(np.clip(ts, 0, None)), np.nan)


def plot_images(images: dict, path):
    """The images side by side, each with its own colour bar."""
    import matplotlib.pyplot as plt

    from xgamma.geom import WcsGeom

    fig = plt.figure(figsize=(5.5 * len(images), 4))
    fig.subplots_adjust(wspace=0.5)
    for i, (title, (data, stretch)) in enumerate(images.items()):
        ax = fig.add_subplot(1, len(images), i + 1, projection=WcsGeom.from_dataarray(data).wcs)
        plot_map(data, ax=ax, stretch=stretch)
        ax.set_title(title)
    save(ax, path)


def crab_models(spatial, dataset_name) -> Models:
    # One energy bin cannot measure a spectral index: fix it, fit the flux (amplitude).
    spectral = PowerLawSpectralModel(index=2.6, amplitude="4e-11 cm-2 s-1 TeV-1", reference="1 TeV")
    spectral.index.frozen = True
    return Models([SkyModel(spectral, spatial, name="crab"), FoVBackgroundModel(dataset_name)])


def main():
    args = parse(parser(__doc__))
    ref = (reference(args.data, "crab-3d.yaml") or {}).get("excess_map", {})

    # --- reduction: one 1-10 TeV bin, stacked in parallel tasks (here synchronously) -------------------------
    observations = DataStore.from_dir(args.data / "hess-dl3-dr1").select_cone(CRAB, radius="5 deg").get_observations()
    energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 1)
    energy_true = MapAxis.from_energy_bounds("0.5 TeV", "20 TeV", 10, name="energy_true")
    geom = WcsGeom.create(skydir=CRAB, width="4 deg", binsz=0.02, frame="icrs", proj="CAR", axes=[energy])
    exclusion = ~geom.to_image().region_mask(CircleSkyRegion(CRAB, 0.3 * u.deg))
    exclusion.attrs["wcs"] = geom.to_header_string()
    makers = [
        MapDatasetMaker(),
        SafeMaskMaker(methods=["offset-max"], offset_max="2.5 deg"),
        FoVBackgroundMaker(method="fit", exclusion_mask=exclusion),
    ]
    start = time.perf_counter()
    target = MapDataset.create(geom, energy_axis_true=energy_true, name="crab-image")
    dataset = reduce(observations, target, makers, cutout_width="5 deg", scheduler="sync", progress=False)
    dataset = MapDataset(dataset.data.load())
    print(f"reduced and stacked {len(observations)} runs in {time.perf_counter() - start:.1f} s")
    print(dataset)

    # --- images -----------------------------------------------------------------------------------
    mask = dataset.mask_safe.values[0]
    counts = np.where(mask, dataset.counts.values[0], 0.0)
    background = np.where(mask, dataset.background.values[0], 0.0)
    binsz = geom.binsz[0]
    n_on, b_on = correlate(counts, binsz, 0.1), correlate(background, binsz, 0.1)
    significance = image(dataset, cash_significance(n_on, b_on), "sqrt_ts")
    excess = image(dataset, n_on - b_on, "excess")
    iy, ix = np.unravel_index(np.nanargmax(significance.values), significance.shape)
    peak = dataset.geom.to_image().pix_to_coord(ix, iy)
    print(f"\ncounts {counts.sum():.0f}, background {background.sum():.1f}, excess {counts.sum() - background.sum():.1f}")
    print(f"peak significance (0.1 deg circle) {significance.values[iy, ix]:.2f} at pixel (y={iy}, x={ix}), "
          f"RA {float(peak[0]):.4f} Dec {float(peak[1]):.4f} deg, excess there {excess.values[iy, ix]:.1f}")
    if ref:
        p = ref["sqrt_ts_peak"]
        print(f"  reference (4 energy bins summed): {p['max']:.2f} at pixel (y={p['index'][1]}, x={p['index'][2]}), "
              f"RA {p['ra_deg']:.4f} Dec {p['dec_deg']:.4f} deg, excess {ref['npred_excess_peak']['max']:.1f}")
    off_source = significance.values[exclusion.values & mask]
    print(f"significance outside the exclusion: mean {np.nanmean(off_source):.2f}, std {np.nanstd(off_source):.2f}")
    images = {
        "counts": (image(dataset, counts, "counts"), "sqrt"),
        "background": (image(dataset, background, "background"), "linear"),
        "excess (0.1 deg)": (excess, "linear"),
        "significance (0.1 deg)": (significance, "linear"),
    }
    plot_images({k: (cutout(v, CRAB, "2 deg"), s) for k, (v, s) in images.items()}, args.out / "image-fitting-maps.png")

    # --- morphology fit on a 1.5 deg cutout: point source, then Gaussian -------------------------------------
    small = dataset.cutout(CRAB, width="1.5 deg", name="crab-image")
    fits = {}
    for label, spatial in (
        ("point", PointSpatialModel(lon_0="83.63 deg", lat_0="22.01 deg", frame="icrs")),
        ("gaussian", GaussianSpatialModel(lon_0="83.63 deg", lat_0="22.01 deg", sigma="0.05 deg", frame="icrs")),
    ):
        datasets = Datasets([small], models=crab_models(spatial, small.name))
        start = time.perf_counter()
        result = Fit().run(datasets)
        compare(datasets.models.parameters, result.total_stat, None,
                f"{label} source ({time.perf_counter() - start:.1f} s, success {result.success})")
        flux = datasets.models["crab"].spectral_model.integral("1 TeV", "10 TeV")
        print(f"  flux 1-10 TeV: {flux.to('cm-2 s-1'):.3e}")
        fits[label] = (result, datasets.models.copy())
    ts = fits["point"][0].total_stat - fits["gaussian"][0].total_stat
    sigma = fits["gaussian"][1]["crab"].spatial_model.sigma
    print(f"\nGaussian vs point: TS = {ts:.1f} for one more parameter; sigma = {sigma.value:.4f} ± {sigma.error:.4f} deg "
          f"({'resolved' if ts > 25 else 'not significantly resolved'} beyond the PSF)")

    # --- what is left: residual significance of the Gaussian model -----------------------------------
    small.models = fits["gaussian"][1]
    npred = correlate(np.where(small.mask_safe.values[0], small.npred().values[0], 0.0), binsz, 0.1)
    n_small = correlate(np.where(small.mask_safe.values[0], small.counts.values[0], 0.0), binsz, 0.1)
    residual = image(small, cash_significance(n_small, npred), "residual sqrt_ts")
    print(f"residual significance after the Gaussian fit: min {np.nanmin(residual.values):.2f}, "
          f"max {np.nanmax(residual.values):.2f}")
    save(plot_map(residual, cmap="RdBu_r", vmin=-5, vmax=5), args.out / "image-fitting-residuals.png")


if __name__ == "__main__":
    main()
