"""3-D analysis: the Crab in four H.E.S.S. runs, stacked and joint, against the reference numbers.

Covers the Gammapy "3D detailed analysis" tutorial with the choices of
../shared/reference/crab-3d.yaml: a 4 x 4 deg CAR map (0.02 deg pixels, 4
reconstructed and 10 true energy bins); each run is cut out around its
pointing and reduced with MapDatasetMaker, SafeMaskMaker (offset < 2.5 deg,
aeff > 10 % of max) and FoVBackgroundMaker (norm fitted outside 0.3 deg of
the Crab); the runs are stacked; a point source with a power law plus a FoV
background norm is fitted to the stacked dataset and to the four runs
jointly. With ``--dask`` the joint fit runs again with the datasets held on
Dask workers (`DaskDatasets`, an embedded LocalCluster or ``--scheduler``).

    python examples/analysis_3d.py [--data ../shared/data] [--out .] [--dask] [--scheduler ADDRESS]
"""

import time

import astropy.units as u
import numpy as np
from _crab import (
    CRAB,
    compare,
    correlate,
    correlation_table,
    parse,
    parser,
    reference,
    save,
)
from regions import CircleSkyRegion

from xgamma.axes import MapAxis
from xgamma.data import DataStore
from xgamma.datasets import DaskDatasets, Datasets, MapDataset, stack_datasets
from xgamma.fit import Fit
from xgamma.geom import WcsGeom
from xgamma.makers import FoVBackgroundMaker, MapDatasetMaker, SafeMaskMaker
from xgamma.maps import cutout
from xgamma.modeling import (
    FoVBackgroundModel,
    Models,
    PointSpatialModel,
    PowerLawSpectralModel,
    SkyModel,
)
from xgamma.plotting import plot_map


def crab_models(dataset_names) -> Models:
    """Point source + power law at the reference start values, one background norm per dataset."""
    spatial = PointSpatialModel(lon_0="83.63308 deg", lat_0="22.01450 deg", frame="icrs")
    spectral = PowerLawSpectralModel(index=2.702, amplitude="4.712e-11 cm-2 s-1 TeV-1", reference="1 TeV")
    return Models([SkyModel(spectral, spatial, name="crab"), *(FoVBackgroundModel(name) for name in dataset_names)])


def run_fit(datasets, title, ref):
    start = time.perf_counter()
    result = Fit().run(datasets)
    elapsed = time.perf_counter() - start
    title += f" ({elapsed:.1f} s, {result.nfev} calls, {1e3 * elapsed / result.nfev:.1f} ms per call)"
    compare(datasets.models.parameters, result.total_stat, ref, title)
    return result


def residual_significance(dataset, radius_deg=0.1):
    """(counts - npred) / sqrt(npred), both summed over energy and within ``radius_deg`` of each pixel."""
    binsz, mask = dataset.geom.binsz[0], dataset.mask_safe.values
    counts = correlate(np.where(mask, dataset.counts.values, 0).sum(0), binsz, radius_deg)
    npred = correlate(np.where(mask, dataset.npred().values, 0).sum(0), binsz, radius_deg)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(npred > 1e-3, (counts - npred) / np.sqrt(npred), np.nan)
    image = dataset.counts.isel(energy=0, drop=True).copy(data=values)
    image.name = "residual significance"
    return image


def main():
    # a function, so that Dask worker processes importing this module do not rerun the analysis
    arguments = parser(__doc__)
    arguments.add_argument("--dask", action="store_true", help="also fit the runs jointly on a Dask cluster")
    arguments.add_argument("--scheduler", default=None, help="Dask scheduler address (default: embedded cluster)")
    args = parse(arguments)
    ref = reference(args.data, "crab-3d.yaml") or {}

    observations = DataStore.from_dir(args.data / "hess-dl3-dr1").select_cone(CRAB, radius="5 deg").get_observations()
    print(f"{len(observations)} observations: {[o.obs_id for o in observations]}")

    # --- the target geometry and the makers ----------------------------------------------------
    energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 4)
    energy_true = MapAxis.from_energy_bounds("0.5 TeV", "20 TeV", 10, name="energy_true")
    geom = WcsGeom.create(skydir=CRAB, width="4 deg", binsz=0.02, frame="icrs", proj="CAR", axes=[energy])
    template = MapDataset.create(geom, energy_axis_true=energy_true, name="stacked")
    exclusion = ~geom.to_image().region_mask(CircleSkyRegion(CRAB, 0.3 * u.deg))
    exclusion.attrs["wcs"] = geom.to_header_string()
    makers = [
        MapDatasetMaker(),
        SafeMaskMaker(methods=["offset-max", "aeff-max"], offset_max="2.5 deg", aeff_percent=10),
        FoVBackgroundMaker(method="fit", exclusion_mask=exclusion),
    ]

    # --- per-run reduction: cut the template around each pointing, apply the makers in turn --------------
    start = time.perf_counter()
    per_run = []
    ref_norms = ref.get("fov_background_norms_per_run", {})
    for observation in observations:
        dataset = template.cutout(observation.pointing, width="5 deg", name=str(observation.obs_id))
        for maker in makers:
            dataset = maker.run(dataset, observation)
        per_run.append(dataset)
        norm, ref_norm = dataset.data.attrs["fov_background_norm"], ref_norms.get(dataset.name, np.nan)
        print(f"  run {dataset.name}: {dataset.counts.sum().item():.0f} counts, FoV background norm {norm:.4f} "
              f"(reference {ref_norm:.4f})")
    print(f"reduced in {time.perf_counter() - start:.1f} s")

    # --- stacking into the template geometry --------------------------------------------------------
    stacked = stack_datasets(per_run, template=template)
    print(stacked)
    before = ref.get("stacked_before_fit", {})
    mask = stacked.mask_safe.values
    print(f"counts in mask_safe {stacked.counts.values[mask].sum():.0f} (reference {before.get('counts_total_in_mask_safe')}), "
          f"background {stacked.background.values[mask].sum():.1f} (reference {before.get('background_total_in_mask_safe', 0):.1f})")

    # --- stacked fit ----------------------------------------------------------------------------
    stacked.models = crab_models([stacked.name])
    fit_datasets = Datasets([stacked])
    result = run_fit(fit_datasets, "stacked fit vs reference", ref.get("fit_stacked"))
    print("correlation of the free parameters")
    print(correlation_table(result.parameters))  # the fit result keeps the covariance
    crab = fit_datasets.models["crab"]
    print(f"fitted position {crab.position.to_string('decimal', precision=4)}, "
          f"{crab.position.separation(CRAB).to(u.arcsec):.1f} from the nominal Crab position")

    # --- residuals: what the model leaves behind --------------------------------------------------
    significance = residual_significance(stacked)
    inner = cutout(significance, position=CRAB, width="2 deg")  # keeps the WCS attrs right
    print(f"residual significance (0.1 deg disk) in the central 2 deg: min {float(inner.min()):.2f}, "
          f"max {float(inner.max()):.2f}, std {float(inner.std()):.2f}")
    save(plot_map(inner, cmap="RdBu_r", vmin=-5, vmax=5), args.out / "analysis-3d-residuals.png")
    npred_image = stacked.npred().sum("energy").assign_attrs(stacked.counts.attrs).rename("npred")
    save(plot_map(npred_image, stretch="sqrt"), args.out / "analysis-3d-npred.png")

    # --- joint fit of the four runs: one background norm per run -----------------------------------
    joint = Datasets(per_run, models=crab_models([d.name for d in per_run]))
    joint_result = run_fit(joint, "joint fit vs reference (background norm of the first run shown)", ref.get("fit_joint"))
    norms = [joint.models[f"{d.name}-bkg"].spectral_model.norm for d in per_run]
    print("background norms: " + ", ".join(f"{d.name} {n.value:.3f} ± {n.error:.3f}" for d, n in zip(per_run, norms)))

    if args.dask:
        # The same joint fit with the datasets on Dask workers: one task per worker per likelihood call.
        models = crab_models([d.name for d in per_run])
        with DaskDatasets(per_run, models, scheduler=args.scheduler) as remote:
            print(remote)
            remote_result = run_fit(remote, "joint fit on Dask", ref.get("fit_joint"))
        print(f"Dask fit total_stat - local fit total_stat = {remote_result.total_stat - joint_result.total_stat:.2e}")


if __name__ == "__main__":
    main()
