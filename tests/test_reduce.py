"""The scalable reduction path: Zarr stacking on Dask, incremental and resumable.

Every result is compared with the in-memory stack of the same per-observation
reductions (`stack_datasets`), which the stacking tests check against
hand-computed numbers.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from distributed import Client, LocalCluster

from xgamma.axes import MapAxis
from xgamma.data import DataStore
from xgamma.datasets import MapDataset, stack_datasets
from xgamma.geom import WcsGeom
from xgamma.io.stack_store import StackStore
from xgamma.makers import FoVBackgroundMaker, MapDatasetMaker, ReductionError, SafeMaskMaker, reduce, reduce_observation

CRAB = (83.633, 22.014)
RUNS = [23523, 23526, 23559, 23592]
OPTIONS = dict(cutout_width="3 deg", tile_size=(20, 20), irf_tile_size=(4, 4), progress=False)


def make_target():
    energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
    energy_true = MapAxis.from_energy_bounds("0.5 TeV", "20 TeV", 4, name="energy_true")
    geom = WcsGeom.create(skydir=CRAB, width=4, binsz=0.05, frame="icrs", axes=[energy])
    return MapDataset.create(geom, energy_axis_true=energy_true, binsz_irf=0.5, name="crab")


MAKERS = [MapDatasetMaker(), FoVBackgroundMaker(method="scale")]


@pytest.fixture(scope="module")
def observations(hess_dir):
    return DataStore.from_dir(hess_dir).get_observations(RUNS)


@pytest.fixture(scope="module")
def in_memory(observations):
    target = make_target()
    per_run = [reduce_observation(obs, target, MAKERS, cutout_width="3 deg") for obs in observations]
    return stack_datasets(per_run, template=target).data


def assert_same(result, expected):
    result = result.load()
    assert set(result.data_vars) == set(expected.data_vars)
    for name in expected.data_vars:
        np.testing.assert_allclose(result[name].values, expected[name].values, rtol=1e-12, atol=1e-300, err_msg=name)
    assert sorted(map(list, result.attrs["gti"])) == sorted(map(list, expected.attrs["gti"]))


def test_zarr_stack_equals_in_memory_stack_and_reruns_add_nothing(tmp_path, observations, in_memory):
    url = str(tmp_path / "crab.zarr")
    result = reduce(observations, make_target(), MAKERS, store=url, scheduler="sync", **OPTIONS)
    assert_same(result.data, in_memory)
    assert result.obs_ids == RUNS
    assert float(result.data.counts.sum()) > 1000  # the Crab runs are not empty
    # the good time intervals of every run, as the DL3 files give them, in time order
    files = sorted([a, b] for obs in observations for a, b in zip(obs.gti.start.tt.mjd, obs.gti.stop.tt.mjd))
    np.testing.assert_allclose(np.array(result.data.attrs["gti"]), np.array(files), rtol=0, atol=1e-9)
    assert result.gti is not None and len(result.gti.start) == len(files)
    ledgers_before = {p.name: p.read_bytes() for p in (tmp_path / "crab.zarr" / "ledger").rglob("*.json")}
    again = reduce(observations, make_target(), MAKERS, store=url, scheduler="sync", **OPTIONS)
    assert_same(again.data, in_memory)
    ledgers_after = {p.name: p.read_bytes() for p in (tmp_path / "crab.zarr" / "ledger").rglob("*.json")}
    assert ledgers_after == ledgers_before  # nothing was added


def test_incremental_runs_add_only_new_observations(tmp_path, observations, in_memory):
    url = str(tmp_path / "crab.zarr")
    first = reduce(observations[:2], make_target(), MAKERS, store=url, scheduler="sync", **OPTIONS)
    assert first.obs_ids == RUNS[:2]
    result = reduce(observations, make_target(), MAKERS, store=url, scheduler="sync", **OPTIONS)
    assert_same(result.data, in_memory)


def test_a_target_holding_data_is_cut_not_changed(tmp_path, observations):
    """The sums are made in place: a variable the makers keep from the target must be a copy of it."""
    target = make_target()
    rng = np.random.default_rng(3)
    target.data["background"].values[...] = rng.uniform(1, 2, target.data["background"].shape)
    kept = target.data["background"].values.copy()
    makers = [SafeMaskMaker(methods=["offset-max"], offset_max="1 deg")]  # keeps the target's other variables
    result = reduce(observations[:2], target, makers, store=str(tmp_path / "s.zarr"), scheduler="sync", **OPTIONS).data
    np.testing.assert_array_equal(target.data["background"].values, kept)
    # each run adds the target's background inside its own safe mask
    per_run = [reduce_observation(obs, target, makers, cutout_width="3 deg") for obs in observations[:2]]
    expected = stack_datasets(per_run, template=make_target()).data
    np.testing.assert_allclose(result.background.values, expected.background.values, rtol=1e-12)
    assert result.background.values.max() > 2  # inside both runs' masks


def test_a_different_configuration_is_refused(tmp_path, observations):
    url = str(tmp_path / "crab.zarr")
    reduce(observations[:1], make_target(), MAKERS, store=url, scheduler="sync", **OPTIONS)
    with pytest.raises(ValueError, match="another configuration"):
        reduce(observations[:1], make_target(), [MapDatasetMaker()], store=url, scheduler="sync", **OPTIONS)


def test_a_failing_observation_is_named(tmp_path, hess_dir, observations):
    broken = tmp_path / "broken"
    broken.mkdir()
    raw = (hess_dir / "data" / "hess_dl3_dr1_obs_id_023526.fits.gz").read_bytes()
    bad = DataStore.from_dir(hess_dir).get_observations([23526])[0]
    path = broken / "run.fits.gz"
    path.write_bytes(raw[: len(raw) // 3])
    bad.locations = {k: type(v)(v.hdu_type, v.hdu_class, str(path), v.hdu_name) for k, v in bad.locations.items()}
    url = str(tmp_path / "crab.zarr")
    with pytest.raises(ReductionError, match="observation 23526"):
        reduce([observations[0], bad], make_target(), MAKERS, store=url, scheduler="sync", batch_size=1, **OPTIONS)
    # the observation reduced before the failure is kept
    assert set(StackStore(url).held()) == {23523}


KILLED_RUN = """
import sys
sys.path.insert(0, {tests!r})
from test_reduce import MAKERS, OPTIONS, RUNS, make_target
from xgamma.data import DataStore
from xgamma.makers import reduce
observations = DataStore.from_dir({hess!r}).get_observations(RUNS)
reduce(observations, make_target(), MAKERS, store={url!r}, scheduler="sync", batch_size=1, **OPTIONS)
"""


def test_a_killed_run_resumes_without_double_counting(tmp_path, hess_dir, observations, in_memory):
    url = str(tmp_path / "crab.zarr")
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), hess=str(hess_dir), url=url)
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    ledger = tmp_path / "crab.zarr" / "ledger" / "main"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not any(ledger.glob("*.json")):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    held = StackStore(url).held()
    assert 0 < len(held) < len(RUNS)
    result = reduce(observations, make_target(), MAKERS, store=url, scheduler="sync", **OPTIONS)
    assert_same(result.data, in_memory)


def test_local_cluster_of_processes_equals_the_synchronous_scheduler(tmp_path, observations, in_memory):
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as client:
        result = reduce(observations, make_target(), MAKERS, store=str(tmp_path / "crab.zarr"), client=client, batch_size=2, **OPTIONS)
        assert_same(result.data, in_memory)


def test_a_killed_worker_does_not_change_the_result(tmp_path, observations, in_memory):
    url = str(tmp_path / "crab.zarr")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as client:
        # kill one worker process as soon as the first tile is written; its nanny restarts it
        # and the scheduler re-runs its tasks
        ledger = Path(url) / "ledger" / "main"
        pids = list(client.run(os.getpid).values())

        def killer():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(ledger.glob("*.json")):
                time.sleep(0.005)
            psutil.Process(pids[0]).kill()

        import threading

        thread = threading.Thread(target=killer)
        thread.start()
        result = reduce(observations, make_target(), MAKERS, store=url, client=client, batch_size=1, **OPTIONS)
        thread.join()
        assert not psutil.pid_exists(pids[0]) or psutil.Process(pids[0]).status() == psutil.STATUS_ZOMBIE
        assert_same(result.data, in_memory)


def test_existing_scheduler_by_address(tmp_path, observations, in_memory):
    port = 18786 + os.getpid() % 1000
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"], stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard"], stderr=subprocess.DEVNULL)
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
        result = reduce(observations, make_target(), MAKERS, store=str(tmp_path / "crab.zarr"), scheduler=address, **OPTIONS)
        assert_same(result.data, in_memory)
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(timeout=30)


def test_spectrum_on_off_through_the_store_matches_the_reference(tmp_path, hess_dir, reference_dir):
    import astropy.units as u
    import yaml
    from regions import CircleSkyRegion
    from test_spectrum import TARGET, crab_axes, crab_exclusion_mask

    from xgamma.datasets import SpectrumDatasetOnOff
    from xgamma.geom import RegionGeom
    from xgamma.makers import ReflectedRegionsBackgroundMaker, SafeMaskMaker, SpectrumDatasetMaker

    energy, energy_true = crab_axes()
    target = SpectrumDatasetOnOff.create(RegionGeom.create(CircleSkyRegion(TARGET, 0.11 * u.deg), axes=[energy]), energy_true, name="crab")
    makers = [
        SpectrumDatasetMaker(containment_correction=True, selection=("counts", "exposure", "edisp")),
        ReflectedRegionsBackgroundMaker(exclusion_mask=crab_exclusion_mask()),
        SafeMaskMaker(methods=("aeff-max",), aeff_percent=10),
    ]
    observations = DataStore.from_dir(hess_dir).get_observations(RUNS)
    result = reduce(observations, target, makers, store=str(tmp_path / "crab1d.zarr"), scheduler="sync", progress=False)
    stacked = SpectrumDatasetOnOff(result.data.load())
    per_run = [reduce_observation(obs, target, makers) for obs in observations]
    assert_same(stacked.data, SpectrumDatasetOnOff.from_list(per_run).data)
    reference = yaml.safe_load((reference_dir / "crab-1d.yaml").read_text())["stacked"][0]
    info = stacked.info_dict()
    assert info["counts"] == reference["counts"] and info["counts_off"] == reference["counts_off"]
    assert info["alpha"] == pytest.approx(reference["alpha"], rel=1e-6)
    assert info["excess"] == pytest.approx(reference["excess"], rel=1e-3)
    assert info["sqrt_ts"] == pytest.approx(reference["sqrt_ts"], abs=0.05)


def test_ring_background_maps_through_the_store(tmp_path, observations):
    from xgamma.datasets import MapDatasetOnOff
    from xgamma.makers import RingBackgroundMaker, SafeMaskMaker

    target = make_target()
    target = MapDatasetOnOff.create(target.geom, energy_axis_true=target.energy_axis_true, binsz_irf=0.5, name="crab")
    makers = [MapDatasetMaker(), SafeMaskMaker(methods=["offset-max"], offset_max="2 deg"), RingBackgroundMaker(r_in="0.5 deg", width="0.3 deg")]
    result = reduce(observations, target, makers, store=str(tmp_path / "ring.zarr"), scheduler="sync", **OPTIONS)
    per_run = [reduce_observation(obs, target, makers, cutout_width="3 deg") for obs in observations]
    expected = stack_datasets(per_run, template=target).data
    assert_same(result.data, expected)
    stacked = MapDatasetOnOff(result.data.load())
    info = stacked.info_dict()
    assert info["counts_off"] > 0 and 0 < info["alpha"] < 1
