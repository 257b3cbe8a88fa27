"""DataStore: index reading, selections and getting observations, on real DL3 data."""

import warnings

import astropy.units as u
import fsspec
import numpy as np
import pytest
import yaml
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time

from xgamma.data import DataStore, MissingHDUError, Observations
from xgamma.io.fits import DL3FileError


@pytest.fixture(scope="module")
def foundation(reference_dir):
    with open(reference_dir / "foundation.yaml") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def hess(hess_dir):
    return DataStore.from_dir(hess_dir)


def test_from_dir_hess(hess, hess_dir, foundation):
    assert len(hess) == foundation["n_observations"] == 105
    assert len(hess.hdu_table) == 6 * 105
    assert hess.hdu_classes == sorted(foundation["hdu_classes_per_run"])
    assert hess.obs_ids.dtype == np.int64
    assert 23523 in hess.obs_ids
    text = repr(hess)
    assert "105 observations" in text and str(hess_dir) in text and "psf_table" in text
    # FILE_DIR is resolved relative to the index file
    path = hess.hdu_table["PATH"][hess.hdu_table["OBS_ID"] == 23523][0]
    assert path == str(hess_dir / "data" / "hess_dl3_dr1_obs_id_023523.fits.gz")
    # header keywords needed for times are kept
    assert hess.obs_table.meta["MJDREFI"] == 51910
    assert hess.obs_table["RA_PNT"].unit == u.deg


def test_explicit_index_file_names(hess_dir):
    store = DataStore.from_dir(hess_dir, hdu_table_filename="hdu-index.fits.gz", obs_table_filename="obs-index.fits.gz")
    assert len(store) == 105
    with pytest.raises(DL3FileError, match="no-such-index.fits"):
        DataStore.from_dir(hess_dir, hdu_table_filename="no-such-index.fits")


def test_to_xarray(hess):
    ds = hess.to_xarray()
    assert ds.sizes["obs_id"] == 105
    assert ds["livetime"].attrs["units"] == "s"
    row = hess.obs_table[hess.obs_table["OBS_ID"] == 23523][0]
    assert ds["ra_pnt"].sel(obs_id=23523).item() == pytest.approx(float(row["RA_PNT"]))
    assert ds.attrs["TIMESYS"] == "TT"


def test_event_count_of_every_hess_run(hess, foundation):
    counts = foundation["events_per_run"]
    observations = hess.get_observations()
    assert len(observations) == 105
    total = 0
    for obs in observations:
        n = len(obs.events)
        with fits.open(obs.locations["events"].file) as hdul:
            n_astropy = len(hdul["EVENTS"].data)
        assert n == n_astropy == counts[obs.obs_id], obs.obs_id
        total += n
        obs.clear_cache()  # keep memory flat
    assert total == foundation["total_events"] == 1046156
    assert counts[23523] == 7613


def test_run_23523_event_count(hess):
    obs = hess.get_observations([23523])[0]
    assert len(obs.events) == 7613


@pytest.mark.parametrize("index", [0, 1])
def test_select_cone_icrs(hess, foundation, index):
    cone = foundation["cone_selections"][index]
    selected = hess.select_cone(cone["lon_deg"], cone["lat_deg"], cone["radius_deg"], frame="icrs")
    assert sorted(selected.obs_ids.tolist()) == sorted(cone["obs_ids"])
    # the HDU index is narrowed down with the observations
    assert set(np.unique(selected.hdu_table["OBS_ID"]).tolist()) == set(cone["obs_ids"])


def test_select_cone_crab_and_pks2155_exact(hess):
    crab = hess.select_cone(83.633, 22.014, 5)
    assert sorted(crab.obs_ids.tolist()) == [23523, 23526, 23559, 23592]
    pks = hess.select_cone("329.71694 deg", "-30.22559 deg", 2 * u.deg)
    assert len(pks) == 21


@pytest.mark.parametrize("index", [0, 1])
def test_select_cone_galactic_equals_icrs(hess, foundation, index):
    cone = foundation["cone_selections"][index]
    center = SkyCoord(cone["lon_deg"], cone["lat_deg"], unit="deg", frame="icrs").galactic
    selected = hess.select_cone(center.l, center.b, f"{cone['radius_deg']} deg", frame="galactic")
    assert sorted(selected.obs_ids.tolist()) == sorted(cone["obs_ids"])
    # a SkyCoord as centre works too
    by_coord = hess.select_cone(center, radius=cone["radius_deg"] * u.deg)
    assert sorted(by_coord.obs_ids.tolist()) == sorted(cone["obs_ids"])


def test_select_cone_radius_in_arcmin(hess):
    a = hess.select_cone(83.633, 22.014, 300 * u.arcmin)
    assert sorted(a.obs_ids.tolist()) == [23523, 23526, 23559, 23592]


def _obs_times(table):
    """Start and stop of each run from the DATE-OBS/TIME-OBS strings (TT), independent of MJDREF."""
    start = Time(np.char.add(np.char.add(np.asarray(table["DATE-OBS"], str), "T"), np.asarray(table["TIME-OBS"], str)), scale="tt")
    stop = Time(np.char.add(np.char.add(np.asarray(table["DATE-END"], str), "T"), np.asarray(table["TIME-END"], str)), scale="tt")
    return start, stop


def test_select_time(hess_dir, hess):
    table = Table.read(hess_dir / "obs-index.fits.gz")
    start, stop = _obs_times(table)
    flare = np.isin(table["OBS_ID"], np.arange(33787, 33802))
    tmin, tmax = start[flare].min() - 1 * u.min, stop[flare].max() + 1 * u.min
    expected = sorted(table["OBS_ID"][(start >= tmin) & (stop <= tmax)].tolist())
    assert expected == list(range(33787, 33802))

    selected = hess.select_time(tmin, tmax)
    assert sorted(selected.obs_ids.tolist()) == expected
    # plain MJD numbers (in the index TIMESYS) give the same
    by_mjd = hess.select_time(tmin.mjd, tmax.mjd)
    assert sorted(by_mjd.obs_ids.tolist()) == expected
    # a window inside one run: only with partial overlap
    row = table["OBS_ID"] == 33790
    inside_lo, inside_hi = start[row][0] + 5 * u.min, stop[row][0] - 5 * u.min
    assert hess.select_time(inside_lo, inside_hi, partial_overlap=True).obs_ids.tolist() == [33790]
    with pytest.warns(UserWarning, match="selected no observation"):
        empty = hess.select_time(inside_lo, inside_hi)
    assert len(empty) == 0 and len(empty.hdu_table) == 0


def test_select_time_uses_mjdref(hess):
    # run 23523: TSTART = 123890826 s after MJDREF 51910 + 0.000742870370370241 (TT)
    t0 = Time(51910, 0.000742870370370241, format="mjd", scale="tt") + 123890826 * u.s
    selected = hess.select_time(t0 - 1 * u.s, t0 + 1700 * u.s)
    assert selected.obs_ids.tolist() == [23523]
    # starting one second late, the run is no longer entirely inside
    with pytest.warns(UserWarning, match="selected no observation"):
        assert len(hess.select_time(t0 + 1 * u.s, t0 + 1700 * u.s)) == 0
    assert hess.select_time(t0 + 1 * u.s, t0 + 1700 * u.s, partial_overlap=True).obs_ids.tolist() == [23523]


def test_selections_chain(hess):
    chained = hess.select_cone(83.633, 22.014, 5).select_obs_id([23592, 23523]).select_required_irf("all")
    assert chained.obs_ids.tolist() == [23592, 23523]
    assert len(chained.hdu_table) == 12


def test_select_obs_id_unknown_warns(hess):
    with pytest.warns(UserWarning, match="99999"):
        store = hess.select_obs_id([23523, 99999])
    assert store.obs_ids.tolist() == [23523]


def test_select_required_irf(data_dir, hess):
    assert len(hess.select_required_irf("full-enclosure")) == 105
    assert len(hess.select_required_irf(["aeff", "psf"])) == 105
    magic = DataStore.from_dir(data_dir / "magic" / "rad_max" / "data")
    assert len(magic.select_required_irf("point-like")) == 2
    assert len(magic.select_required_irf(["rad_max"])) == 2
    with pytest.warns(UserWarning, match="selected no observation"):
        assert len(magic.select_required_irf("full-enclosure")) == 0
    with pytest.raises(ValueError, match="unknown IRF type"):
        hess.select_required_irf(["aeff", "effective_area"])


def test_get_observations_is_lazy(hess):
    observations = hess.get_observations([23523, 23526])
    assert isinstance(observations, Observations)
    assert observations.ids == [23523, 23526]
    assert all(not obs._hdus and not obs._objects and not obs._headers for obs in observations)
    assert "23523" in repr(observations)


def test_get_observations_unknown_id(hess):
    with pytest.raises(MissingHDUError, match="99999"):
        hess.get_observations([99999])
    with pytest.warns(UserWarning, match="99999"):
        observations = hess.get_observations([23523, 99999], skip_missing=True)
    assert observations.ids == [23523]


def test_get_observations_empty_selection_warns(hess):
    with pytest.warns(UserWarning):
        empty = hess.select_cone(0, 0, 0.1)
    with pytest.warns(UserWarning, match="no observation"):
        observations = empty.get_observations()
    assert len(observations) == 0


def test_cta_1dc_caldb_paths(data_dir):
    store = DataStore.from_dir(data_dir / "cta-1dc" / "index" / "gps")
    assert len(store) == 4
    assert store.hdu_classes == ["aeff_2d", "bkg_3d", "edisp_2d", "events", "gti", "psf_3gauss"]
    observations = store.get_observations()
    caldb = data_dir / "cta-1dc" / "caldb" / "data" / "cta" / "1dc" / "bcf" / "South_z20_50h" / "irf_file.fits"
    for obs, row in zip(observations, store.obs_table):
        assert obs.locations["aeff"].file == str(caldb)
        assert obs.locations["aeff"].hdu_name == "EFFECTIVE AREA"
        assert len(obs.events) == row["EVENT_COUNT"]
        # unsigned EVENT_ID (TZERO = 2**31) comes out as physical values
        assert obs.events.ds["event_id"].values[0] == 1
        assert obs.events.ds["time"].attrs["MJDREFI"] == 51544
        assert obs.gti.time_sum.to_value(u.s) == pytest.approx(row["ONTIME"])
        obs.clear_cache()


def test_magic_rad_max_store(data_dir):
    store = DataStore.from_dir(data_dir / "magic" / "rad_max" / "data")
    assert sorted(store.obs_ids.tolist()) == [5029747, 5029748]
    with pytest.raises(MissingHDUError, match="psf, bkg|psf"):
        store.get_observations()  # full-enclosure by default
    observations = store.get_observations(required_irf="point-like")
    assert len(observations) == 2
    for obs in observations:
        assert "rad_max" in obs.available_hdus
        with fits.open(obs.locations["events"].file) as hdul:
            assert len(obs.events) == len(hdul["EVENTS"].data)
        assert obs.events.ds.attrs["TIMESYS"] == "utc"


def test_joint_crab_missing_file(data_dir):
    store = DataStore.from_dir(data_dir / "joint-crab" / "dl3" / "magic")
    assert len(store) == 2
    with pytest.raises(MissingHDUError) as excinfo:
        store.get_observations(required_irf="point-like")
    message = str(excinfo.value)
    assert "5029747" in message and "run_05029747_DL3.fits" in message
    with pytest.warns(UserWarning, match="5029747.*run_05029747_DL3.fits"):
        observations = store.get_observations(required_irf="point-like", skip_missing=True)
    assert observations.ids == [5029748]
    assert len(observations[0].events) == 5799


def test_fsspec_memory_store(hess_dir):
    """A store on a non-local fsspec filesystem (memory://): paths stay URLs and data is read through fsspec."""
    fs = fsspec.filesystem("memory")
    root = "/xgamma-test-store"
    for name in ("hdu-index.fits.gz", "obs-index.fits.gz", "data/hess_dl3_dr1_obs_id_023523.fits.gz"):
        fs.pipe(f"{root}/{name}", (hess_dir / name).read_bytes())
    try:
        store = DataStore.from_dir(f"memory://{root}")
        assert len(store) == 105
        obs = store.get_observations([23523])[0]
        assert obs.locations["events"].file == f"memory://{root}/data/hess_dl3_dr1_obs_id_023523.fits.gz"
        assert len(obs.events) == 7613
        assert obs.livetime.to_value(u.s) == pytest.approx(1581.73681640625)
        with pytest.raises(MissingHDUError, match="23526"):
            store.get_observations([23526])
    finally:
        fs.rm(root, recursive=True)


def test_file_url(hess_dir):
    store = DataStore.from_dir(f"file://{hess_dir}")
    obs = store.get_observations([23523])[0]
    assert len(obs.events) == 7613


def test_no_warnings_on_clean_store(hess):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hess.select_cone(83.633, 22.014, 5).get_observations()
