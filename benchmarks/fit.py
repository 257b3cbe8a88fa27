"""Model evaluation and fits: npred + statistic per call, reference fits, distributed joint fit.

Three measurements, all in one run, on the H.E.S.S. DL3 DR1 Crab runs
23523, 23526, 23559 and 23592 reduced as in ``reference/crab-3d.yaml`` and
``reference/crab-1d.yaml``:

1. Statistic per call (``dataset.stat_sum()``, which forward-folds the
   models first) on the stacked Crab 3-D dataset (4 x 200 x 200 counts, 10
   true-energy bins) with its FoV background model and 1 point source, 10
   point sources (fixed pseudo-random positions within 1.5 deg of the Crab)
   or 1 Gaussian (sigma 0.2 deg), in the modes of ``performance.yaml:
   model_evaluation_on_crab_3d_stacked``:

   - ``fresh``: new models attached (so new evaluators), first call;
   - ``cached``: nothing changed since the last call;
   - ``spectral``: the index of one source changed;
   - ``spatial``: ``lon_0`` of one source changed (by a few mdeg, as in a fit);
   - ``spatial_all`` (10 sources): every source moved.

   Median over repeats. The same is given for ``npred_values()`` (the full
   predicted-counts cube) followed by ``stat_sum()``, for information.
2. Wall time of ``Fit().run`` (MIGRAD + HESSE) for the Crab 1-D PowerLaw fits
   (stacked and joint, WStat) and the Crab 3-D fits (stacked and joint of
   the 4 runs), with the optimiser's ``nfev``, the total number of
   likelihood calls (covariance included) and the time per call
   (``time / nfev``, the reference's definition); median over repeats.
3. A joint 3-D fit over 100 per-run datasets (the 4 Crab runs, each copied
   25 times and faked with its own seed from the Crab best fit, so the copies
   are statistically independent; FoV background norms frozen at the truth,
   the 4 source parameters free), fitted locally (`Datasets`) and with
   `DaskDatasets` on a ``LocalCluster(n_workers=2, threads_per_worker=1,
   processes=True)`` started by `xgamma.cluster.get_client` (so with the
   worker settings of ``deploy/README.md``): wall times, their ratio, the
   round trip of an empty task per worker (the floor of a distributed call)
   and the largest relative difference between the two best fits.

Targets (issue 4, ``performance.yaml: targets_for_xgamma``): npred + statistic
per call at most 1/3 of the reference tool's figure (``ratio <= 0.33``).
Fit times are compared with ``crab-1d.yaml: reference_timings_s`` and
``crab-3d.yaml: fit_stacked/fit_joint`` (no stated target).

Usage::

    python benchmarks/fit.py [--data PATH] [--reference PATH] [--json benchmarks/results/fit.json]
        [--repeat 15] [--fit-repeat 3] [--n-joint 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import astropy.units as u
import numpy as np
import yaml
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion

from xgamma.axes import MapAxis
from xgamma.cluster import get_client
from xgamma.data import DataStore
from xgamma.datasets import MapDataset, SpectrumDataset, stack_datasets
from xgamma.datasets.collection import DaskDatasets, Datasets
from xgamma.fit import Fit
from xgamma.fit.objective import parameter_labels
from xgamma.geom import RegionGeom, WcsGeom
from xgamma.makers import (
    FoVBackgroundMaker,
    MapDatasetMaker,
    ReflectedRegionsBackgroundMaker,
    SafeMaskMaker,
    SpectrumDatasetMaker,
)
from xgamma.modeling import (
    FoVBackgroundModel,
    GaussianSpatialModel,
    Models,
    PointSpatialModel,
    PowerLawSpectralModel,
    SkyModel,
)

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(os.environ.get("XGAMMA_DATA", HERE.parent.parent / "shared" / "data"))
DEFAULT_REFERENCE = HERE.parent.parent / "shared" / "reference"
CRAB_IDS = [23523, 23526, 23559, 23592]
CRAB = SkyCoord(83.633, 22.014, unit="deg", frame="icrs")
SCENARIOS = {"one_point_source": 1, "ten_point_sources": 10, "one_gaussian_0.2deg": 1}


# ---- datasets ------------------------------------------------------------------------------------
def crab_3d_datasets(observations):
    """Per-run and stacked Crab 3-D datasets (crab-3d.yaml choices)."""
    energy = MapAxis.from_energy_bounds(1, 10, 4)
    energy_true = MapAxis.from_energy_bounds(0.5, 20, 10, name="energy_true")
    geom = WcsGeom.create(skydir=CRAB, width=4, binsz=0.02, frame="icrs", proj="CAR", axes=[energy])
    template = MapDataset.create(geom, energy_axis_true=energy_true, name="stacked")
    exclusion = ~template.geom.to_image().region_mask(CircleSkyRegion(CRAB, 0.3 * u.deg))
    exclusion.attrs["wcs"] = template.geom.to_header_string()
    makers = [
        MapDatasetMaker(),
        SafeMaskMaker(methods=["offset-max", "aeff-max"], offset_max="2.5 deg"),
        FoVBackgroundMaker(method="fit", exclusion_mask=exclusion),
    ]
    per_run = []
    for observation in observations:
        dataset = template.cutout(observation.pointing, width="5 deg", name=str(observation.obs_id))
        for maker in makers:
            dataset = maker.run(dataset, observation)
        per_run.append(dataset)
    return per_run, stack_datasets(per_run, template=template)


def crab_1d_datasets(observations):
    """Per-run and stacked Crab 1-D ON/OFF datasets (crab-1d.yaml choices: reflected regions, WStat)."""
    energy = MapAxis.from_energy_bounds("0.1 TeV", "40 TeV", 10, per_decade=True)
    energy_true = MapAxis.from_energy_bounds("0.05 TeV", "100 TeV", 20, per_decade=True, name="energy_true")
    on_region = CircleSkyRegion(CRAB, 0.11 * u.deg)
    empty = SpectrumDataset.create(RegionGeom.create(on_region, axes=[energy]), energy_true)
    exclusion_geom = WcsGeom.create(skydir=CRAB, npix=(150, 150), binsz=0.05, proj="TAN", frame="icrs")
    excluded = CircleSkyRegion(SkyCoord(183.604, -8.708, unit="deg", frame="galactic"), 0.5 * u.deg)
    exclusion = ~exclusion_geom.region_mask(excluded)
    exclusion.attrs["wcs"] = exclusion_geom.to_header_string()
    maker = SpectrumDatasetMaker(containment_correction=True, selection=("counts", "exposure", "edisp"))
    background = ReflectedRegionsBackgroundMaker(exclusion_mask=exclusion)
    safe = SafeMaskMaker(methods=("aeff-max",), aeff_percent=10)
    per_run = []
    for observation in observations:
        dataset = maker.run(empty.copy(name=str(observation.obs_id)), observation)
        per_run.append(safe.run(background.run(dataset, observation), observation))
    stacked = per_run[0]
    for dataset in per_run[1:]:
        stacked = stacked.stack(dataset)
    return per_run, stacked.copy(name="stacked")


# ---- models --------------------------------------------------------------------------------------
def crab_3d_models(dataset_names, frozen_background=False):
    """The crab-3d.yaml start model: a point source and one FoV background norm per dataset."""
    spatial = PointSpatialModel(lon_0="83.63308 deg", lat_0="22.01450 deg", frame="icrs")
    spectral = PowerLawSpectralModel(index=2.702, amplitude="4.712e-11 cm-2 s-1 TeV-1", reference="1 TeV")
    backgrounds = [FoVBackgroundModel(name) for name in dataset_names]
    if frozen_background:
        for model in backgrounds:
            model.spectral_model.norm.frozen = True
    return Models([SkyModel(spectral, spatial, name="crab"), *backgrounds])


def source_positions(n):
    """``n`` fixed positions: the Crab first, the others pseudo-random within 1.5 deg of it."""
    rng = np.random.default_rng(42)
    radius = 1.5 * np.sqrt(rng.uniform(0, 1, n))
    angle = rng.uniform(0, 2 * np.pi, n)
    radius[0] = 0.0
    lon = CRAB.ra.deg + radius * np.cos(angle) / np.cos(CRAB.dec.radian)
    lat = CRAB.dec.deg + radius * np.sin(angle)
    return list(zip(lon, lat))


def scenario_models(scenario, dataset_name):
    """Sources of one evaluation scenario plus the dataset's FoV background model."""
    n = SCENARIOS[scenario]
    sources = []
    for i, (lon, lat) in enumerate(source_positions(n)):
        if scenario.startswith("one_gaussian"):
            spatial = GaussianSpatialModel(lon_0=f"{lon} deg", lat_0=f"{lat} deg", sigma="0.2 deg", frame="icrs")
        else:
            spatial = PointSpatialModel(lon_0=f"{lon} deg", lat_0=f"{lat} deg", frame="icrs")
        amplitude = 4.7e-11 if i == 0 else 2e-12
        spectral = PowerLawSpectralModel(index=2.6, amplitude=f"{amplitude} cm-2 s-1 TeV-1", reference="1 TeV")
        sources.append(SkyModel(spectral, spatial, name=f"source-{i}"))
    return Models([*sources, FoVBackgroundModel(dataset_name)])


# ---- 1. npred + statistic per call ---------------------------------------------------------------
class Timings:
    """Wall and CPU seconds of repeated calls; medians and minimum in ms."""

    def __init__(self):
        self.wall, self.cpu = [], []

    def time(self, function, *args):
        wall, cpu = time.perf_counter(), time.process_time()
        function(*args)
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)

    def summary(self) -> dict:
        return {
            "median_ms": 1e3 * statistics.median(self.wall),
            "min_ms": 1e3 * min(self.wall),
            "cpu_median_ms": 1e3 * statistics.median(self.cpu),
        }


def time_modes(dataset, scenario, repeat, with_npred_map=False) -> dict:
    """Timings (`Timings.summary`) of each evaluation mode for one scenario.

    With ``with_npred_map`` a call is ``npred_values()`` then ``stat_sum()``,
    otherwise ``stat_sum()`` alone.
    """

    def call():
        if with_npred_map:
            dataset.npred_values()
        return dataset.stat_sum()

    def timed(prepare):
        timings = Timings()
        for k in range(repeat):
            prepare(k)
            timings.time(call)
        return timings.summary()

    def attach_and_call(models):
        dataset.models = models
        call()

    fresh = Timings()
    for models in [scenario_models(scenario, dataset.name) for _ in range(max(3, repeat // 3))]:
        fresh.time(attach_and_call, models)
    results = {"fresh": fresh.summary()}

    sources = [m for m in dataset.models if isinstance(m, SkyModel)]
    index = sources[-1].spectral_model.index

    def shift(models_to_move, k):
        step = 0.002 * (1 if k % 2 else -1)  # small steps, as a fit's gradient makes
        for model in models_to_move:
            model.spatial_model.lon_0.value += step

    results["cached"] = timed(lambda k: None)
    results["spectral"] = timed(lambda k: setattr(index, "value", 2.6 + 0.01 * (k % 2 + 1)))
    results["spatial"] = timed(lambda k: shift(sources[-1:], k))
    if len(sources) > 1:
        results["spatial_all"] = timed(lambda k: shift(sources, k))
    dataset.models = None
    return results


def model_evaluation(stacked, reference, repeat) -> dict:
    out = {}
    print(f"  {'':33s} {'median':>8s} {'min':>8s} {'cpu':>8s} {'+npred':>8s} {'reference':>9s}  ratio")
    for scenario in SCENARIOS:
        stat = time_modes(stacked, scenario, repeat)
        full = time_modes(stacked, scenario, repeat, with_npred_map=True)
        out[scenario] = {}
        for mode, timings in stat.items():
            reference_ms = 1e3 * reference[scenario][mode]
            figures = out[scenario][mode] = {
                "stat_sum_ms": timings["median_ms"],
                "stat_sum_min_ms": timings["min_ms"],
                "stat_sum_cpu_ms": timings["cpu_median_ms"],
                "npred_map_and_stat_sum_ms": full[mode]["median_ms"],
                "reference_ms": reference_ms,
                "ratio": timings["median_ms"] / reference_ms,
                "ratio_min": timings["min_ms"] / reference_ms,
                "ratio_npred_map_and_stat_sum": full[mode]["median_ms"] / reference_ms,
            }
            print(f"  {scenario:20s} {mode:12s} {figures['stat_sum_ms']:8.3f} {figures['stat_sum_min_ms']:8.3f} "
                  f"{figures['stat_sum_cpu_ms']:8.3f} {figures['npred_map_and_stat_sum_ms']:8.3f} "
                  f"{reference_ms:9.3f}  {figures['ratio']:.3f}")
    return out


# ---- 2. reference fits ---------------------------------------------------------------------------
class CountingTarget:
    """A fit target that counts likelihood calls and forwards them to ``datasets``."""

    def __init__(self, datasets):
        self.datasets = datasets
        self.calls = 0

    @property
    def models(self):
        return self.datasets.models

    def stat_sum(self):
        self.calls += 1
        return self.datasets.stat_sum()

    def stat_sum_at(self, free_values):
        self.calls += 1
        return self.datasets.stat_sum_at(free_values)


def timed_fit(datasets) -> dict:
    """``Fit().run`` on ``datasets`` (models attached): wall time, nfev, calls, best fit."""
    target = CountingTarget(datasets)
    start = time.perf_counter()
    result = Fit().run(target)
    seconds = time.perf_counter() - start
    free = datasets.models.parameters.free
    if not result.success:
        raise RuntimeError(f"fit failed: {result}")
    return {
        "time_s": seconds,
        "nfev": int(result.nfev),
        "calls": target.calls,
        "time_per_call_s": seconds / result.nfev,
        "total_stat": float(result.total_stat),
        "values": dict(zip(parameter_labels(free), (float(par.value) for par in free))),
    }


def median_fit(make_datasets, repeat) -> dict:
    """The run with the median wall time among ``repeat`` fits from the same start."""
    runs = sorted((timed_fit(make_datasets()) for _ in range(repeat)), key=lambda run: run["time_s"])
    run = runs[len(runs) // 2]
    run["all_time_s"] = [r["time_s"] for r in runs]
    return run


def reference_fits(crab_1d, crab_3d, crab_1d_ref, crab_3d_ref, repeat) -> dict:
    per_run_1d, stacked_1d = crab_1d
    per_run_3d, stacked_3d = crab_3d

    def powerlaw_1d(datasets):
        def make():
            spectral = PowerLawSpectralModel(index=2, amplitude="1e-12 cm-2 s-1 TeV-1", reference="1 TeV")
            return Datasets(datasets, models=[SkyModel(spectral, name="crab")])

        return make

    def point_3d(datasets):
        return lambda: Datasets(datasets, models=crab_3d_models([d.name for d in datasets]))

    timings_1d, fits_1d = crab_1d_ref["reference_timings_s"], crab_1d_ref["fits"]
    # name: (datasets factory, reference seconds, reference nfev, reference total_stat, repeats)
    cases = {
        "crab_1d_powerlaw_stacked": (powerlaw_1d([stacked_1d]), timings_1d["fit_powerlaw_stacked_s"]["median_s"],
                                     None, fits_1d["powerlaw_stacked"]["total_stat"], repeat),
        "crab_1d_powerlaw_joint": (powerlaw_1d(per_run_1d), timings_1d["fit_powerlaw_joint_s"]["median_s"],
                                   None, fits_1d["powerlaw_joint"]["total_stat"], repeat),
        "crab_3d_stacked": (point_3d([stacked_3d]), crab_3d_ref["fit_stacked"]["time_s"],
                            crab_3d_ref["fit_stacked"]["nfev"], crab_3d_ref["fit_stacked"]["total_stat"], repeat),
        "crab_3d_joint": (point_3d(per_run_3d), crab_3d_ref["fit_joint"]["time_s"], crab_3d_ref["fit_joint"]["nfev"],
                          crab_3d_ref["fit_joint"]["total_stat"], max(1, repeat - 1)),
    }
    out = {}
    for name, (make, reference_s, reference_nfev, reference_stat, n) in cases.items():
        run = median_fit(make, n)
        run["reference_total_stat"] = reference_stat
        run["total_stat_minus_reference"] = run["total_stat"] - reference_stat
        run["reference_time_s"] = reference_s
        run["ratio"] = run["time_s"] / reference_s
        if reference_nfev is not None:
            run["reference_nfev"] = reference_nfev
            run["reference_time_per_call_s"] = reference_s / reference_nfev
            run["ratio_per_call"] = run["time_per_call_s"] / run["reference_time_per_call_s"]
        out[name] = run
        per_call = f", per call ratio {run['ratio_per_call']:.3f}" if "ratio_per_call" in run else ""
        print(f"  {name:26s} {run['time_s']:7.3f} s  nfev {run['nfev']:4d}  calls {run['calls']:4d}  "
              f"{1e3 * run['time_per_call_s']:7.3f} ms/call  reference {reference_s:7.3f} s  "
              f"ratio {run['ratio']:.3f}{per_call}  (total_stat - reference {run['total_stat_minus_reference']:+.3f})")
    return out


# ---- 3. distributed joint fit ---------------------------------------------------------------------
def independent_copies(per_run, n, truth):
    """``n`` datasets cycling over ``per_run``, each faked from ``truth`` with its own seed and name."""
    out = []
    for i in range(n):
        dataset = per_run[i % len(per_run)].copy(name=f"{per_run[i % len(per_run)].name}-{i:03d}")
        dataset.models = truth([dataset.name])
        faked = dataset.fake(random_state=i)
        faked.models = None
        out.append(faked)
    return out


def _nothing(k):
    return k


def task_round_trip(client, repeat=20) -> float:
    """Median seconds to run one empty task on each worker and gather the results (the per-call floor)."""
    workers = sorted(client.scheduler_info()["workers"])
    timings = Timings()
    for k in range(repeat):
        timings.time(lambda k: client.gather([client.submit(_nothing, k, workers=[w], pure=False) for w in workers]), k)
    return statistics.median(timings.wall)


def distributed_joint_fit(per_run, n) -> dict:
    def truth(names):
        models = crab_3d_models(names, frozen_background=True)
        models["crab"].spectral_model.index.value = 2.60
        models["crab"].spectral_model.amplitude.value = 4.62e-11
        models["crab"].spatial_model.lon_0.value = 83.6192
        models["crab"].spatial_model.lat_0.value = 22.0246
        return models

    start = time.perf_counter()
    datasets = independent_copies(per_run, n, truth)
    print(f"  {n} faked per-run datasets made in {time.perf_counter() - start:.1f} s")
    names = [d.name for d in datasets]

    local = timed_fit(Datasets(datasets, models=crab_3d_models(names, frozen_background=True)))
    print(f"  local       {local['time_s']:7.2f} s  nfev {local['nfev']}  {1e3 * local['time_per_call_s']:.1f} ms/call")
    for dataset in datasets:  # release the local caches before the cluster starts
        dataset.models = None

    with get_client(n_workers=2, threads_per_worker=1, quiet=True) as client:
        round_trip_s = task_round_trip(client)
        models = crab_3d_models(names, frozen_background=True)
        start = time.perf_counter()
        remote_datasets = DaskDatasets(datasets, models, client=client)
        scatter_s = time.perf_counter() - start
        with remote_datasets:
            remote = timed_fit(remote_datasets)
    print(f"  Dask floor: {1e3 * round_trip_s:.1f} ms per round trip of one empty task per worker")
    print(f"  distributed {remote['time_s']:7.2f} s  nfev {remote['nfev']}  "
          f"{1e3 * remote['time_per_call_s']:.1f} ms/call  (+ {scatter_s:.1f} s to send the datasets)")

    differences = {
        name: abs(remote["values"][name] - value) / abs(value) for name, value in local["values"].items()
    }
    result = {
        "n_datasets": n,
        "free_parameters": sorted(local["values"]),
        "local": local,
        "distributed": remote,
        "distributed_scatter_s": scatter_s,
        "dask_round_trip_ms": 1e3 * round_trip_s,
        "ratio_distributed_to_local": remote["time_s"] / local["time_s"],
        "ratio_distributed_with_scatter_to_local": (remote["time_s"] + scatter_s) / local["time_s"],
        "max_relative_difference_best_fit": max(differences.values()),
        "relative_difference_best_fit": differences,
    }
    print(f"  distributed / local {result['ratio_distributed_to_local']:.3f} "
          f"(with sending the datasets {result['ratio_distributed_with_scatter_to_local']:.3f}), "
          f"max relative difference of the best fits {result['max_relative_difference_best_fit']:.2e}")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "fit.json")
    parser.add_argument("--repeat", type=int, default=15, help="repeats of each per-call timing")
    parser.add_argument("--fit-repeat", type=int, default=3, help="repeats of each reference fit")
    parser.add_argument("--n-joint", type=int, default=100, help="datasets in the distributed joint fit")
    args = parser.parse_args(argv)

    performance, crab_1d_ref, crab_3d_ref = (
        yaml.safe_load((args.reference / name).read_text()) for name in ("performance.yaml", "crab-1d.yaml", "crab-3d.yaml")
    )

    load_start = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load_start[0]:.1f} (others' work inflates wall times; "
          "the CPU time per call is less sensitive)")
    start = time.perf_counter()
    observations = DataStore.from_dir(args.data / "hess-dl3-dr1").get_observations(CRAB_IDS)
    crab_3d = crab_3d_datasets(observations)
    crab_1d = crab_1d_datasets(observations)
    print(f"Crab 1-D and 3-D datasets reduced in {time.perf_counter() - start:.1f} s")
    stacked = crab_3d[1]
    shape = {"counts": list(stacked.counts.shape), "exposure": list(stacked.exposure.shape)}
    expected = performance["model_evaluation_on_crab_3d_stacked"]["dataset"]
    if shape["counts"] != expected["counts_shape"] or shape["exposure"] != expected["exposure_shape"]:
        raise RuntimeError(f"stacked dataset shapes {shape} differ from the reference's {expected}")

    print("1. npred + statistic per call on the stacked Crab 3-D dataset (median ms; ratio to the reference)")
    evaluation = model_evaluation(stacked, performance["model_evaluation_on_crab_3d_stacked"], args.repeat)
    print("2. reference fits (Fit().run: MIGRAD + HESSE)")
    fits = reference_fits(crab_1d, crab_3d, crab_1d_ref, crab_3d_ref, args.fit_repeat)
    print(f"3. joint fit over {args.n_joint} per-run 3-D datasets, local vs 2 worker processes")
    joint = distributed_joint_fit(crab_3d[0], args.n_joint)

    load_end = os.getloadavg()
    ratios = [mode["ratio"] for scenario in evaluation.values() for mode in scenario.values()]
    result = {
        "dataset_shapes": shape,
        "npred_stat_per_call": evaluation,
        "npred_stat_per_call_max_ratio": max(ratios),
        "npred_stat_per_call_all_within_target": max(ratios) <= 1 / 3,
        "fits": fits,
        "distributed_joint_fit": joint,
        "targets": {"npred_stat_per_call_ratio_max": 1 / 3},
        "total_seconds": time.perf_counter() - start,
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_1min_start": load_start[0],
            "load_average_1min_end": load_end[0],
            "blas_threads_env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
        },
    }
    print(f"npred + statistic per call: largest ratio to the reference {max(ratios):.3f} (target <= 0.33)")
    print(f"total {result['total_seconds']:.0f} s, load average {load_start[0]:.1f} -> {load_end[0]:.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
