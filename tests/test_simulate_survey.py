import pickle

import numpy as np
from astropy.coordinates import SkyCoord

from xgamma.data import DataStore
from xgamma.simulate import RepointedObservation, synthetic_survey


def test_repointed_events_keep_their_field_of_view_offsets(hess_dir):
    obs = DataStore.from_dir(hess_dir).get_observations([23523])[0]
    target = SkyCoord(0, 0, unit="deg", frame="galactic")
    moved = RepointedObservation(obs, 99, target, time_shift=100.0)
    moved = pickle.loads(pickle.dumps(moved))  # as shipped to a worker
    assert moved.obs_id == 99 and moved.pointing.separation(target).deg < 1e-9
    before = obs.events.radec.separation(obs.pointing).deg
    after = moved.events.radec.separation(moved.pointing).deg
    np.testing.assert_allclose(after, before, atol=1e-4)  # float32 RA/Dec
    np.testing.assert_array_equal(moved.events.energy, obs.events.energy)
    np.testing.assert_allclose(moved.events.ds.time - obs.events.ds.time, 100.0)
    assert abs((moved.tstart - obs.tstart).sec - 100.0) < 1e-6
    np.testing.assert_allclose(moved.gti.ds.start - obs.gti.ds.start, 100.0)
    assert moved.livetime == obs.livetime


def test_synthetic_survey_spreads_pointings_along_the_plane(hess_dir):
    runs = DataStore.from_dir(hess_dir).get_observations([23523, 23526])
    survey = synthetic_survey(runs, 50, lon_range=(-30, 30), lat_range=(-3, 3))
    assert len({o.obs_id for o in survey}) == 50
    glon = np.array([o.pointing.galactic.l.wrap_at("180d").deg for o in survey])
    glat = np.array([o.pointing.galactic.b.deg for o in survey])
    assert np.all(np.abs(glon) <= 30) and np.all(np.abs(glat) <= 3) and np.ptp(glon) > 40
