"""Open a DL3 data store, select observations and look at one of them.

Covers the Gammapy "data store" tutorial: the observation index, cone and
time selections, lazy observations, events, GTIs and IRFs.

    python examples/data_access.py [--data ../shared/data]
"""

import argparse
import os
from pathlib import Path

import numpy as np

from xgamma.data import DataStore

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", type=Path, default=Path(os.environ.get("XGAMMA_DATA", "../shared/data")))
args = parser.parse_args()

store = DataStore.from_dir(args.data / "hess-dl3-dr1")
print(store)

# Observations within 2 deg of PKS 2155-304, then the Crab runs by cone.
pks = store.select_cone(329.71694, -30.22559, "2 deg")
print(f"PKS 2155-304: {len(pks.obs_ids)} runs: {list(pks.obs_ids)}")
crab = store.select_cone(83.633, 22.014, "5 deg", frame="icrs")

observations = crab.get_observations(required_irf="full-enclosure")
print(observations)
obs = observations[0]
print(obs)

events = obs.events
print(events)
above_1tev = events.select_energy("1 TeV", "100 TeV")
print(f"{len(above_1tev)} of {len(events)} events above 1 TeV")
print(obs.gti)
print(f"livetime {obs.livetime:.1f}, dead time fraction {obs.deadtime_fraction:.3f}")

# IRFs are labelled DataArrays with evaluation in physical units.
print(obs.aeff.evaluate(energy_true=["1 TeV", "10 TeV"], offset="0.5 deg"))
r68 = obs.psf.containment_radius(0.68, energy_true=np.geomspace(0.5, 10, 5), offset=0.5)
print("68% containment radius at 0.5-10 TeV:", np.round(r68.to_value("deg"), 3), "deg")
print(obs.bkg.data)
