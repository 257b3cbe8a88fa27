"""Forward-folded likelihood fits against the reference analyses (crab-1d.yaml, joint-crab.yaml).

Tolerances are those stated in the reference files: each free parameter within
max(0.2 x its reference error, 0.5 % of its value), errors within 10 %,
total_stat within 0.5.
"""

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import yaml
from regions import CircleSkyRegion
from test_spectrum import CRAB_IDS, TARGET, crab_axes, crab_exclusion_mask

from xgamma.data import DataStore
from xgamma.datasets import SpectrumDataset
from xgamma.datasets.collection import Datasets
from xgamma.datasets.spectrum import SpectrumDatasetOnOff
from xgamma.fit import Fit
from xgamma.geom import RegionGeom
from xgamma.makers.reflected import ReflectedRegionsBackgroundMaker
from xgamma.makers.safe_mask import SafeMaskMaker
from xgamma.makers.spectrum import SpectrumDatasetMaker
from xgamma.modeling import LogParabolaSpectralModel, PowerLawSpectralModel, SkyModel

INSTRUMENTS = ("fermi", "magic", "hess", "veritas", "fact")


def assert_fit_matches(result, models, reference):
    """The reference files' tolerance on every free parameter, its error, and total_stat."""
    assert result.success
    assert result.total_stat == pytest.approx(reference["total_stat"], abs=0.5)
    for name, ref in reference["parameters"].items():
        if ref["frozen"]:
            continue
        par = models.parameters[name]
        tolerance = max(0.2 * ref["error"], 0.005 * abs(ref["value"]))
        assert abs(par.value - ref["value"]) <= tolerance, (name, par.value, ref["value"], tolerance)
        assert par.error == pytest.approx(ref["error"], rel=0.1), (name, par.error, ref["error"])


def start_model(kind, **start):
    if kind == "powerlaw":
        return PowerLawSpectralModel(reference="1 TeV", **start)
    return LogParabolaSpectralModel(reference="1 TeV", **start)


# ---- Crab 1-D (H.E.S.S. DR1, reflected regions, WStat) ---------------------------------------------
@pytest.fixture(scope="module")
def crab_1d(hess_dir, reference_dir):
    energy, energy_true = crab_axes()
    empty = SpectrumDataset.create(RegionGeom.create(CircleSkyRegion(TARGET, 0.11 * u.deg), axes=[energy]), energy_true)
    maker = SpectrumDatasetMaker(containment_correction=True, selection=("counts", "exposure", "edisp"))
    background = ReflectedRegionsBackgroundMaker(exclusion_mask=crab_exclusion_mask())
    safe = SafeMaskMaker(methods=("aeff-max",), aeff_percent=10)
    per_run = []
    for observation in DataStore.from_dir(hess_dir).get_observations(CRAB_IDS):
        dataset = maker.run(empty.copy(name=str(observation.obs_id)), observation)
        per_run.append(safe.run(background.run(dataset, observation), observation))
    stacked = per_run[0]
    for dataset in per_run[1:]:
        stacked = stacked.stack(dataset)
    reference = yaml.safe_load((reference_dir / "crab-1d.yaml").read_text())
    return {"joint": per_run, "stacked": [stacked.copy(name="stacked")], "reference": reference}


@pytest.mark.parametrize("kind", ["powerlaw", "logparabola"])
@pytest.mark.parametrize("combination", ["stacked", "joint"])
def test_crab_1d_fits_match_reference(crab_1d, kind, combination):
    start = crab_1d["reference"]["choices"]["start_values"]
    if kind == "powerlaw":
        model = start_model(kind, index=2, amplitude="1e-12 cm-2 s-1 TeV-1")
    else:
        model = start_model(kind, alpha=2, beta=0.1, amplitude="1e-12 cm-2 s-1 TeV-1")
    assert "1e-12" in str(start[kind])  # the start values the reference used
    datasets = Datasets(crab_1d[combination], models=[SkyModel(model, name="crab")])
    result = Fit().run(datasets)
    assert_fit_matches(result, datasets.models, crab_1d["reference"]["fits"][f"{kind}_{combination}"])


def test_crab_1d_excess_follows_the_fitted_model(crab_1d):
    """Counts = profiled background + npred in every safe bin, to Poisson precision (a physics sanity check)."""
    (stacked,) = crab_1d["stacked"]
    stacked.models = [SkyModel(PowerLawSpectralModel(index=2.6381, amplitude="4.2923e-11 cm-2 s-1 TeV-1"), name="c")]
    mask = stacked.mask_safe.values
    predicted = stacked.npred_values()[mask]
    counts = stacked.counts.values[mask]
    pulls = (counts - predicted) / np.sqrt(predicted)
    assert abs(counts.sum() - predicted.sum()) < 3 * np.sqrt(counts.sum())
    assert np.abs(pulls).max() < 4


# ---- joint Crab (OGIP spectra of five instruments) -------------------------------------------------
@pytest.fixture(scope="module")
def joint_crab(data_dir, reference_dir):
    spectra = data_dir / "joint-crab" / "spectra"
    datasets = {
        instrument: [SpectrumDatasetOnOff.read(path) for path in sorted(Path(spectra, instrument).glob("pha_*.fits"))]
        for instrument in INSTRUMENTS
    }
    reference = yaml.safe_load((reference_dir / "joint-crab.yaml").read_text())
    return datasets, reference


@pytest.mark.parametrize("kind", ["powerlaw", "logparabola"])
@pytest.mark.parametrize("selection", ["joint", *INSTRUMENTS])
def test_joint_crab_fits_match_reference(joint_crab, kind, selection):
    datasets, reference = joint_crab
    instruments = INSTRUMENTS if selection == "joint" else (selection,)
    if kind == "powerlaw":
        model = start_model(kind, index=2.5, amplitude="3.8e-11 cm-2 s-1 TeV-1")
    else:
        model = start_model(kind, alpha=2.5, beta=0.1, amplitude="3.8e-11 cm-2 s-1 TeV-1")
    joint = Datasets([d for instrument in instruments for d in datasets[instrument]])
    joint.models = [SkyModel(model, name="crab")]
    result = Fit().run(joint)
    assert_fit_matches(result, joint.models, reference["fits"][f"{kind}_{selection}"])


# ---- Crab 3-D (H.E.S.S. DR1, point source + FoV background) --------------------------------------------
@pytest.fixture(scope="module")
def crab_3d(hess_dir, reference_dir):
    from test_map_maker import OBS_IDS, crab_template, reduce_crab_runs

    from xgamma.datasets.stacking import stack_datasets

    template = crab_template()
    per_run = reduce_crab_runs(DataStore.from_dir(hess_dir).get_observations(OBS_IDS), template)
    reference = yaml.safe_load((reference_dir / "crab-3d.yaml").read_text())
    return {"joint": per_run, "stacked": [stack_datasets(per_run, template=template)], "reference": reference}


def crab_3d_models(dataset_names):
    from xgamma.modeling import FoVBackgroundModel, Models, PointSpatialModel

    spatial = PointSpatialModel(lon_0="83.63308 deg", lat_0="22.01450 deg", frame="icrs")
    spectral = PowerLawSpectralModel(index=2.702, amplitude="4.712e-11 cm-2 s-1 TeV-1", reference="1 TeV")
    return Models([SkyModel(spectral, spatial, name="crab"), *(FoVBackgroundModel(name) for name in dataset_names)])


def test_crab_3d_stacked_fit_matches_reference(crab_3d):
    datasets = Datasets(crab_3d["stacked"])
    datasets.models = crab_3d_models(datasets.names)
    result = Fit().run(datasets)
    assert_fit_matches(result, datasets.models, crab_3d["reference"]["fit_stacked"])


def test_crab_3d_joint_fit_matches_reference(crab_3d):
    """Joint fit of the four runs: the source parameters within the reference tolerance.

    The reference lists one background ``norm`` for four datasets (a YAML
    mapping keeps one), so the background norms are not compared here; see
    the per-run FoV background norms in test_map_maker.py.
    """
    datasets = Datasets(crab_3d["joint"])
    datasets.models = crab_3d_models(datasets.names)
    result = Fit().run(datasets)
    reference = crab_3d["reference"]["fit_joint"]
    source = {k: v for k, v in reference["parameters"].items() if k not in ("norm", "tilt")}
    assert_fit_matches(result, datasets.models["crab"], {"total_stat": result.total_stat, "parameters": source})
    assert result.total_stat == pytest.approx(reference["total_stat"], abs=5)


# ---- simulation: fits of faked data recover the truth -------------------------------------------------
def _pulls(dataset, models, n_seeds, names):
    truth = {name: models.parameters[name].value for name in names}
    pulls = {name: [] for name in names}
    for seed in range(n_seeds):
        faked = dataset.fake(random_state=seed) if not isinstance(dataset, SpectrumDatasetOnOff) else \
            dataset.fake(npred_background=dataset.background.values, random_state=seed)
        fit_models = models.copy()
        faked.models = fit_models
        result = Fit().run(Datasets([faked]))
        assert result.success
        for name in names:
            par = fit_models.parameters[name]
            pulls[name].append((par.value - truth[name]) / par.error)
    return {name: np.array(values) for name, values in pulls.items()}


def test_spectrum_fake_fit_pulls(crab_1d):
    (stacked,) = crab_1d["stacked"]
    from xgamma.modeling import Models

    models = Models([SkyModel(PowerLawSpectralModel(index=2.6, amplitude="4.3e-11 cm-2 s-1 TeV-1"), name="c")])
    stacked = stacked.copy()
    stacked.models = models
    pulls = _pulls(stacked, models, 150, ["index", "amplitude"])
    for values in pulls.values():
        # 150 seeds: the mean is known to 0.08 and the width to 0.06 (1 sigma)
        assert abs(values.mean()) < 0.3 and 0.8 < values.std() < 1.2


def test_map_fake_fit_pulls(crab_3d):
    from test_map_maker import CRAB

    (stacked,) = crab_3d["stacked"]
    small = stacked.cutout(CRAB, width="1.6 deg", name="small")
    models = crab_3d_models(["small"])
    models["crab"].spatial_model.position = CRAB
    small.models = models
    pulls = _pulls(small, models, 40, ["index", "lon_0", "lat_0", "norm"])
    for values in pulls.values():
        # 40 seeds: the mean is known to 0.16 and the width to 0.11 (1 sigma)
        assert abs(values.mean()) < 0.5 and 0.65 < values.std() < 1.35


# ---- parallel likelihood on a Dask cluster equals the local one --------------------------------------
def test_dask_joint_fit_equals_local(crab_1d, crab_3d):
    from distributed import Client, LocalCluster

    from xgamma.datasets.collection import DaskDatasets
    from xgamma.modeling import Models

    per_run_3d = crab_3d["joint"]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        models = crab_3d_models([d.name for d in per_run_3d])
        local = Datasets(per_run_3d, models=models)
        with DaskDatasets(per_run_3d, models, client=client) as remote:
            for shift in (0.0, 0.01, -0.02):  # also after the workers' caches were built
                models["crab"].spatial_model.lon_0.value = 83.633 + shift
                models["crab"].spectral_model.index.value = 2.6 + shift
                assert remote.stat_sum() == pytest.approx(local.stat_sum(), rel=1e-12)

        # one large map evaluated in blocks on both workers
        (stacked,) = crab_3d["stacked"]
        models = crab_3d_models(["stacked"])
        local = Datasets([stacked.copy()], models=models)
        with DaskDatasets([stacked], models, client=client, block_shape=(2, 2)) as remote:
            assert len(remote.names) == 4
            assert remote.stat_sum() == pytest.approx(local.stat_sum(), rel=1e-12)

        models_local = Models([SkyModel(PowerLawSpectralModel(index=2, amplitude="1e-12 cm-2 s-1 TeV-1"), name="c")])
        models_remote = models_local.copy()
        result_local = Fit().run(Datasets(crab_1d["joint"], models=models_local))
        with DaskDatasets(crab_1d["joint"], models_remote, client=client) as remote:
            result_remote = Fit().run(remote)
        assert result_remote.total_stat == pytest.approx(result_local.total_stat, rel=1e-10)
        for a, b in zip(models_local.parameters, models_remote.parameters):
            assert a.value == pytest.approx(b.value, rel=1e-6) and a.error == pytest.approx(b.error, rel=1e-4)


def test_blocks_add_up_to_the_whole_map(crab_3d):
    """A map split into blocks (core + margin, fitted on the core) has the same statistic, sources on block edges included."""
    from test_map_maker import CRAB

    from xgamma.datasets.blocks import split_into_blocks

    (stacked,) = crab_3d["stacked"]
    models = crab_3d_models(["stacked"])
    # the Crab sits on the corner shared by the four blocks of a 2 x 2 split
    models["crab"].spatial_model.position = CRAB
    whole = Datasets([stacked.copy()], models=models)
    blocks = Datasets(split_into_blocks(stacked, (2, 2), margin="1 deg"), models=models)
    assert len(blocks) == 4 and all(b.data.attrs["block_of"] == "stacked" for b in blocks)
    n_fitted = sum(int(b.mask.values.sum()) for b in blocks)
    assert n_fitted == int(stacked.mask_safe.values.sum())
    for index in (2.6, 2.9):
        models["crab"].spectral_model.index.value = index
        assert blocks.stat_sum() == pytest.approx(whole.stat_sum(), rel=1e-12)


def test_map_likelihood_does_not_depend_on_call_history(crab_3d):
    """npred is a function of the parameters alone: the same point after a detour gives the same number."""
    (stacked,) = crab_3d["stacked"]
    models = crab_3d_models(["stacked"])
    dataset = stacked.copy()
    dataset.models = models
    spatial = models["crab"].spatial_model
    start = dataset.stat_sum()
    for lon in (83.5, 83.9, 83.633):  # far enough to rebuild the PSF/edisp frame
        spatial.lon_0.value = lon
        dataset.stat_sum()
    spatial.lon_0.value = 83.63308
    fresh = stacked.copy()
    fresh.models = models
    assert dataset.stat_sum() == start == fresh.stat_sum()


def test_covariance_stays_on_the_models_of_a_collection(crab_1d):
    """Models attached to the datasets (not to the collection): the fit's covariance is still kept."""
    dataset = crab_1d["stacked"][0].copy()
    dataset.models = [SkyModel(PowerLawSpectralModel(index=2, amplitude="1e-12 cm-2 s-1 TeV-1"), name="crab")]
    datasets = Datasets([dataset])
    result = Fit().run(datasets)
    assert datasets.models is datasets.models
    covariance = datasets.models.parameters.covariance
    np.testing.assert_allclose(covariance, result.covariance, rtol=1e-12)
    index = datasets.models.parameters.names.index("index")
    assert np.sqrt(covariance[index, index]) == pytest.approx(0.0644, rel=0.05)  # crab-1d.yaml: 0.06438


def test_temporal_models_scale_npred_by_their_mean_over_the_gti(crab_1d):
    """A source with a temporal model: npred times the model's duration-weighted mean over the run's GTIs."""
    from xgamma.modeling import ConstantTemporalModel, LinearTemporalModel

    dataset = crab_1d["joint"][0].copy()
    gti = np.asarray(dataset.data.attrs["gti"])  # [[start, stop]] MJD (TT), from the maker
    assert gti.shape[1] == 2 and np.all(gti[:, 1] > gti[:, 0])
    spectral = PowerLawSpectralModel(index=2.6, amplitude="4e-11 cm-2 s-1 TeV-1")
    dataset.models = [SkyModel(spectral, name="crab")]
    plain = dataset.npred_signal_values()

    dataset.models = [SkyModel(spectral, temporal_model=ConstantTemporalModel(scale="tt"), name="crab")]
    np.testing.assert_allclose(dataset.npred_signal_values(), plain, rtol=1e-12)

    t_ref, beta = gti[0, 0] - 0.5, 3.0  # per day
    linear = LinearTemporalModel(alpha=1.0, beta=f"{beta} d-1", t_ref=t_ref, scale="tt")
    dataset.models = [SkyModel(spectral, temporal_model=linear, name="crab")]
    durations = gti[:, 1] - gti[:, 0]
    mean = np.sum(durations * (1 + beta * (0.5 * (gti[:, 0] + gti[:, 1]) - t_ref))) / durations.sum()
    np.testing.assert_allclose(dataset.npred_signal_values(), plain * mean, rtol=1e-9)

    stacked = crab_1d["stacked"][0]
    assert len(stacked.data.attrs["gti"]) == sum(len(d.data.attrs["gti"]) for d in crab_1d["joint"])
    no_gti = dataset.copy()
    del no_gti.data.attrs["gti"]
    with pytest.raises(ValueError, match="carries no GTI"):
        no_gti.models = [SkyModel(spectral, temporal_model=linear, name="crab")]


def test_cutout_grows_with_the_source(crab_3d):
    """A Gaussian growing during a fit gets a larger cutout: the same npred as a fresh evaluation
    (a cutout kept from the small size would cut the large Gaussian at 1.6 deg width)."""
    from test_map_maker import CRAB

    from xgamma.modeling import FoVBackgroundModel, GaussianSpatialModel, Models

    (stacked,) = crab_3d["stacked"]
    spectral = PowerLawSpectralModel(index=2.5, amplitude="4e-11 cm-2 s-1 TeV-1")
    spatial = GaussianSpatialModel(lon_0=CRAB.ra, lat_0=CRAB.dec, sigma="0.02 deg", frame="icrs")
    models = Models([SkyModel(spectral, spatial, name="g"), FoVBackgroundModel("stacked")])
    grown = stacked.copy()
    grown.models = models
    grown.stat_sum()
    spatial.sigma.value = 0.3
    fresh = stacked.copy()
    fresh.models = models
    np.testing.assert_array_equal(grown.npred_signal_values(), fresh.npred_signal_values())


def test_joint_fit_of_1d_and_3d_datasets(crab_1d, crab_3d):
    """One Crab model fitted to the 1-D spectrum and the 3-D cube together: the joint statistic is the sum
    of the two, and the joint index lies between the two separate fits, with a smaller error."""
    from xgamma.modeling import Models

    def fit(datasets):
        cubes = [d.name for d in datasets if hasattr(d, "geom_irf")]
        models = crab_3d_models(cubes)
        if not cubes:  # a spectrum alone does not constrain the position
            models["crab"].spatial_model.freeze()
        Datasets(datasets).models = models
        result = Fit().run(Datasets(datasets))
        assert result.success
        return models["crab"].spectral_model.index, result

    spectrum, cube = crab_1d["stacked"][0].copy(name="spectrum"), crab_3d["stacked"][0].copy(name="cube")
    index_1d, _ = fit([spectrum])
    index_3d, _ = fit([cube])
    index_joint, result = fit([spectrum, cube])
    low, high = sorted([index_1d.value, index_3d.value])
    assert low < index_joint.value < high
    assert index_joint.error < min(index_1d.error, index_3d.error)
    assert result.total_stat == pytest.approx(spectrum.stat_sum() + cube.stat_sum(), rel=1e-12)
    assert isinstance(Datasets([spectrum, cube]).models, Models)


def test_fast_statistic_equals_the_sum_of_the_per_bin_statistic(crab_3d):
    """stat_sum (cutout boxes, summed-area background, log only where counts) equals summing stat_array."""
    from xgamma.datasets import MapDatasetOnOff

    (stacked,) = crab_3d["stacked"]
    dataset = stacked.copy()
    models = crab_3d_models(["stacked"])
    dataset.models = models
    spectral = models["crab"].spectral_model
    for index, amplitude in ((2.2, 4e-11), (2.6, 4e-11), (2.6, -4e-11)):  # negative: predictions clipped
        spectral.index.value, spectral.amplitude.value = index, amplitude
        expected = dataset.stat_array()[dataset.mask.values].sum()
        assert dataset.stat_sum() == pytest.approx(expected, rel=1e-12)
    on_off = MapDatasetOnOff.from_map_dataset(
        stacked, counts_off=stacked.background * 5, acceptance=1, acceptance_off=5, name="stacked"
    )
    on_off.models = models
    assert on_off.stat_sum() == pytest.approx(on_off.stat_array()[on_off.mask.values].sum(), rel=1e-12)
