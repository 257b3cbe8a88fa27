"""Observation, EventList and GTI against the FITS headers and tables of real runs."""

import json
import os
import pickle

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time

import xgamma.data.observation as observation_module
from xgamma.data import GTI, DataStore, EventList, Observation, Observations
from xgamma.io.fits import read_hdus


@pytest.fixture(scope="module")
def hess(hess_dir):
    return DataStore.from_dir(hess_dir)


@pytest.fixture()
def obs23523(hess):
    return hess.get_observations([23523])[0]


@pytest.fixture(scope="module")
def header23523(hess_dir):
    return fits.getheader(hess_dir / "data" / "hess_dl3_dr1_obs_id_023523.fits.gz", "EVENTS")


@pytest.fixture(scope="module")
def table23523(hess_dir):
    return Table.read(hess_dir / "data" / "hess_dl3_dr1_obs_id_023523.fits.gz", hdu="EVENTS")


def test_header_properties_23523(obs23523, header23523):
    obs = obs23523
    assert obs.obs_id == 23523
    assert obs.livetime.unit == u.s
    assert obs.livetime.value == header23523["LIVETIME"] == 1581.73681640625
    assert obs.ontime.to_value(u.s) == header23523["ONTIME"] == 1687.0
    assert obs.deadc == pytest.approx(0.937603298574686, rel=1e-12)
    assert obs.deadtime_fraction == pytest.approx(1 - 0.937603298574686, rel=1e-10)
    assert obs.pointing.ra.deg == pytest.approx(header23523["RA_PNT"])
    assert obs.pointing.dec.deg == pytest.approx(header23523["DEC_PNT"])
    altaz = obs.pointing_altaz
    assert altaz.alt.deg == pytest.approx(41.3897890380338)
    assert altaz.az.deg == pytest.approx(22.4817052274739)
    assert altaz.frame.location.lat.deg == pytest.approx(-23.2717777777778)
    target = obs.target
    assert target.name == "Crab Nebula"
    assert target.position.ra.deg == pytest.approx(83.633333333333)
    # reading header quantities does not read the event table
    assert "events" not in obs._objects and "events" not in obs._hdus


def test_tstart_tstop_from_mjdref(obs23523, header23523):
    ref = Time(header23523["MJDREFI"], header23523["MJDREFF"], format="mjd", scale="tt")
    assert obs23523.tstart.scale == "tt"
    assert abs((obs23523.tstart - (ref + header23523["TSTART"] * u.s)).to_value(u.s)) < 1e-6
    assert abs((obs23523.tstop - (ref + header23523["TSTOP"] * u.s)).to_value(u.s)) < 1e-6
    # independent check: the DATE-OBS/TIME-OBS strings of the header
    assert abs((obs23523.tstart - Time("2004-12-04T22:08:10.184", scale="tt")).to_value(u.s)) < 1e-3
    assert abs((obs23523.tstop - Time("2004-12-04T22:36:17.184", scale="tt")).to_value(u.s)) < 1e-3


def test_events_23523(obs23523, table23523, header23523):
    events = obs23523.events
    assert isinstance(events, EventList)
    assert len(events) == 7613 == len(table23523)
    ds = events.ds
    assert ds["time"].dtype == np.float64
    np.testing.assert_array_equal(ds["time"].values, table23523["TIME"].value)
    np.testing.assert_array_equal(ds["energy"].values, table23523["ENERGY"].value)
    np.testing.assert_array_equal(ds["event_id"].values, table23523["EVENT_ID"])
    assert set(ds.data_vars) == {"event_id", "time", "ra", "dec", "energy"}
    assert ds["energy"].attrs["units"] == "TeV" and ds["ra"].attrs["units"] == "deg"
    assert ds["time"].attrs["MJDREFI"] == 51910
    assert ds["time"].attrs["MJDREFF"] == header23523["MJDREFF"]
    assert ds["time"].attrs["TIMESYS"] == "tt"
    assert ds.attrs["OBS_ID"] == 23523
    json.dumps(ds.attrs)
    json.dumps({k: v.attrs for k, v in ds.variables.items()})
    # all times inside the observation (TSTOP is rounded to the second in this file: the last event is 6 ms later)
    assert header23523["TSTART"] <= events.met.min() and events.met.max() <= header23523["TSTOP"] + 1
    t = events.time
    assert abs((t[0] - (obs23523.tstart + (events.met[0] - header23523["TSTART"]) * u.s)).to_value(u.s)) < 1e-6
    assert "7613 events" in repr(events)


def test_event_selections(obs23523, table23523):
    events = obs23523.events
    energy = table23523["ENERGY"].value
    assert len(events.select_energy(1 * u.TeV, "10 TeV")) == np.count_nonzero((energy >= 1) & (energy < 10))
    assert len(events.select_energy(energy_min=1000 * u.GeV)) == np.count_nonzero(energy >= 1)

    coords = SkyCoord(table23523["RA"], table23523["DEC"], frame="icrs")
    pointing = SkyCoord(83.633333333333, 21.514444444444, unit="deg")
    offset = coords.separation(pointing).deg
    selected = events.select_offset(0.5, 1.5 * u.deg)
    assert len(selected) == np.count_nonzero((offset >= 0.5) & (offset < 1.5))
    assert np.all((selected.offset.to_value(u.deg) >= 0.5 - 1e-9) & (selected.offset.to_value(u.deg) < 1.5 + 1e-9))

    crab = SkyCoord(83.633, 22.014, unit="deg")
    within = coords.separation(crab).deg < 0.2
    from regions import CircleSkyRegion

    assert len(events.select_region(CircleSkyRegion(crab, 0.2 * u.deg))) == np.count_nonzero(within)
    assert len(events.select_region(lambda c: c.separation(crab).deg < 0.2)) == np.count_nonzero(within)
    assert len(events.select_region("icrs;circle(83.633,22.014,0.2)")) == np.count_nonzero(within)

    met = table23523["TIME"].value
    mid = 0.5 * (met.min() + met.max())
    t_mid = events.time_ref + mid * u.s
    assert len(events.select_time(None, t_mid)) == np.count_nonzero(met < mid)
    assert len(events.select_time(mid * u.s)) == np.count_nonzero(met >= mid)
    # selections chain and keep attrs
    chained = events.select_energy("1 TeV").select_offset(offset_max="1 deg")
    assert chained.ds.attrs["OBS_ID"] == 23523
    assert chained.ds["time"].attrs["MJDREFI"] == 51910


def test_eventlist_create_roundtrip_time():
    ref = Time("2010-01-01T00:00:00", scale="tt")
    times = ref + [1.0, 2.5, 1e8] * u.s
    events = EventList.create(times, [83.6, 83.7, 83.8] * u.deg, [22.0, 22.1, 22.2], [1, 2, 3] * u.TeV, reference_time=ref)
    assert events.ds["time"].dtype == np.float64
    np.testing.assert_allclose(events.met, [1.0, 2.5, 1e8], rtol=0, atol=1e-6)
    assert abs((events.time[2] - times[2]).to_value(u.s)) < 1e-6


def test_gti_23523(obs23523, header23523):
    gti = obs23523.gti
    assert isinstance(gti, GTI)
    assert len(gti) == 1
    assert gti.time_sum.to_value(u.s) == header23523["ONTIME"]
    assert gti.ds["start"].dtype == np.float64
    assert abs((gti.time_start - obs23523.tstart).to_value(u.s)) < 1e-6
    assert abs((gti.time_stop - obs23523.tstop).to_value(u.s)) < 1e-6
    half = gti.select_time(None, gti.time_start + 100 * u.s)
    assert half.time_sum.to_value(u.s) == pytest.approx(100)


def test_gti_union_and_select():
    ref = Time("2020-01-01", scale="tt")
    gti = GTI.create([0, 10, 5, 30], [6, 20, 8, 40], reference_time=ref)
    merged = gti.union()
    np.testing.assert_array_equal(merged.met_start, [0, 10, 30])
    np.testing.assert_array_equal(merged.met_stop, [8, 20, 40])
    assert merged.time_sum.to_value(u.s) == 8 + 10 + 10
    other = GTI.create(ref + [19, 100] * u.s, ref + [31, 110] * u.s, reference_time=Time("2019-12-31", scale="tt"))
    both = merged.union(other)
    np.testing.assert_allclose(both.met_start, [0, 10, 100], atol=1e-6)
    np.testing.assert_allclose(both.met_stop, [8, 40, 110], atol=1e-6)
    clipped = merged.select_time(ref + 4 * u.s, ref + 35 * u.s)
    np.testing.assert_allclose(clipped.met_start, [4, 10, 30], atol=1e-6)
    np.testing.assert_allclose(clipped.met_stop, [8, 20, 35], atol=1e-6)
    assert "3 intervals" in repr(merged)


def test_pointing_fallback_to_obs_table(hess):
    obs = hess.get_observations([23523])[0]
    # without an events HDU the index row is used (and no file is touched)
    locations = {k: v for k, v in obs.locations.items() if k != "events"}
    bare = Observation(obs.obs_id, locations, obs_info=obs.obs_info, meta=obs.meta)
    assert bare.pointing.ra.deg == pytest.approx(obs.obs_info["RA_PNT"])
    assert bare.livetime.to_value(u.s) == pytest.approx(obs.obs_info["LIVETIME"])
    assert not bare._headers
    # tstart from the index TSTART and the index MJDREF
    assert abs((bare.tstart - obs.tstart).to_value(u.s)) < 1e-3


def test_repr_and_available_hdus(obs23523):
    assert obs23523.available_hdus == ["aeff", "bkg", "edisp", "events", "gti", "psf"]
    assert obs23523.available_irfs == ["aeff", "bkg", "edisp", "psf"]
    text = repr(obs23523)
    assert "23523" in text and "ra=83.633" in text and "1581.7 s" in text and "psf_table" in text


def test_load_opens_each_file_once(obs23523, monkeypatch):
    calls = []
    original = observation_module.read_hdus

    def counting(path, hdus):
        calls.append((path, list(hdus)))
        return original(path, hdus)

    monkeypatch.setattr(observation_module, "read_hdus", counting)
    obs23523.load()
    assert len(calls) == 1
    assert sorted(name.upper() for name in calls[0][1]) == ["AEFF", "BKG", "EDISP", "EVENTS", "GTI", "PSF"]
    assert obs23523.is_loaded
    len(obs23523.events), obs23523.gti, obs23523.aeff, obs23523.bkg
    obs23523.pointing, obs23523.livetime
    assert len(calls) == 1


def test_load_cta_two_files(data_dir, monkeypatch):
    store = DataStore.from_dir(data_dir / "cta-1dc" / "index" / "gps")
    obs = store.get_observations([110380])[0]
    calls = []
    original = observation_module.read_hdus
    monkeypatch.setattr(observation_module, "read_hdus", lambda p, h: calls.append(p) or original(p, h))
    obs.load()
    assert sorted(os.path.basename(p) for p in calls) == ["gps_baseline_110380.fits", "irf_file.fits"]


def test_pickle_before_and_after_load(obs23523):
    before = pickle.dumps(obs23523)
    obs23523.load()
    assert len(obs23523.events) == 7613
    after = pickle.dumps(obs23523)
    assert len(after) < 10_000  # ~7613 events * 28 bytes would be > 200 kB
    assert len(after) == len(before)
    clone = pickle.loads(after)
    assert not clone._objects and not clone._hdus and not clone._headers
    assert clone.obs_id == 23523 and clone.locations == obs23523.locations
    assert len(clone.events) == 7613
    np.testing.assert_array_equal(clone.events.met, obs23523.events.met)
    many = pickle.loads(pickle.dumps(Observations([obs23523, clone])))
    assert many.ids == [23523, 23523]


def test_pickle_ships_a_known_pointing_and_reads_nothing_for_it(hess, monkeypatch):
    obs = hess.get_observations([23523])[0]
    pointing = obs.pointing  # read here, e.g. on the client to find the tiles it touches
    clone = pickle.loads(pickle.dumps(obs))

    def no_reading(*args):
        raise AssertionError("the pointing travelled with the observation; nothing should be read")

    monkeypatch.setattr(observation_module, "_read_header", no_reading)
    monkeypatch.setattr(observation_module, "read_hdus", no_reading)
    assert (clone.pointing.ra.deg, clone.pointing.dec.deg) == (pointing.ra.deg, pointing.dec.deg)
    assert list(clone._objects) == ["pointing"] and not clone._hdus and not clone._headers
    # an observation whose pointing was never asked for ships none
    assert "pointing" not in pickle.loads(pickle.dumps(hess.get_observations([23526])[0]))._objects


def test_observations_container(hess):
    observations = hess.get_observations([23523, 23526, 23559])
    assert observations.ids == [23523, 23526, 23559]
    assert observations["23526"].obs_id == 23526
    assert observations[1:].ids == [23526, 23559]
    assert observations[[2, 0]].ids == [23559, 23523]
    assert len(observations) == 3 and [o.obs_id for o in observations] == observations.ids
    assert "3 observations" in repr(observations)
    with pytest.raises(KeyError, match="1234"):
        observations.by_id(1234)


def test_irfs_23523(obs23523):
    import xgamma.irf as irf

    assert isinstance(obs23523.aeff, irf.EffectiveAreaTable2D)
    assert isinstance(obs23523.edisp, irf.EnergyDispersion2D)
    assert isinstance(obs23523.psf, irf.PSFTable)
    assert isinstance(obs23523.bkg, irf.Background3D)
    assert obs23523.rad_max is None and obs23523.rad_max_value is None
    # LO_THRES of the AEFF header (foundation.yaml: 0.871 TeV)
    lo, hi = obs23523.aeff.energy_thresholds
    assert lo.to_value(u.TeV) == pytest.approx(0.871, abs=1e-3)


def test_irfs_cta_and_magic(data_dir):
    import xgamma.irf as irf

    cta = DataStore.from_dir(data_dir / "cta-1dc" / "index" / "gps").get_observations([110380])[0]
    assert isinstance(cta.psf, irf.PSF3Gauss)
    assert isinstance(cta.bkg, irf.Background3D)
    magic = DataStore.from_dir(data_dir / "magic" / "rad_max" / "data").get_observations(required_irf="point-like")[0]
    assert isinstance(magic.rad_max, irf.RadMax2D)
    assert magic.psf is None and magic.bkg is None
    assert magic.is_point_like


def test_rad_max_from_aeff_header(data_dir):
    import xgamma.irf as irf

    store = DataStore.from_dir(data_dir / "joint-crab" / "dl3" / "magic")
    obs = store.get_observations([5029748], required_irf="point-like")[0]
    header = read_hdus(obs.locations["aeff"].file, ["EFFECTIVE AREA"])["EFFECTIVE AREA"].header
    assert obs.rad_max_value == header["RAD_MAX"] == pytest.approx(0.1414213)
    rad_max = obs.rad_max
    assert isinstance(rad_max, irf.RadMax2D)
    values = rad_max.evaluate(energy=[0.1, 1, 10] * u.TeV, offset=0.4 * u.deg)
    np.testing.assert_allclose(values.to_value(u.deg), 0.1414213, rtol=1e-6)


def test_observation_read_on_distributed_worker(obs23523):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        future = client.submit(lambda o: (len(o.events), os.getpid(), bool(o._objects)), obs23523)
        n_events, pid, worker_loaded = future.result(timeout=120)
    assert n_events == 7613
    assert pid != os.getpid()
    assert worker_loaded
    assert not obs23523._objects  # nothing was read on the client
