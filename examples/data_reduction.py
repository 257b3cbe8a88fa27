"""Data reduction: DL3 observations -> reduced 3-D and 1-D datasets, stacked in Zarr.

Covers the Gammapy "makers" tutorial: a 3-D MapDataset of the Crab with
MapDatasetMaker, SafeMaskMaker and FoVBackgroundMaker, stacked in parallel
into a Zarr store with `xgamma.makers.reduce` (re-running adds nothing); and a
1-D On/Off spectrum with SpectrumDatasetMaker and reflected OFF regions.

    python examples/data_reduction.py [--data ../shared/data] [--out .]
"""

import argparse
import os
from pathlib import Path

import astropy.units as u
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion

from xgamma.axes import MapAxis
from xgamma.data import DataStore
from xgamma.datasets import MapDataset, SpectrumDatasetOnOff
from xgamma.geom import RegionGeom, WcsGeom
from xgamma.makers import (
    FoVBackgroundMaker,
    MapDatasetMaker,
    ReflectedRegionsBackgroundMaker,
    SafeMaskMaker,
    SpectrumDatasetMaker,
    reduce,
)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", type=Path, default=Path(os.environ.get("XGAMMA_DATA", "../shared/data")))
parser.add_argument("--out", type=Path, default=Path("."))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

crab = SkyCoord(83.633, 22.014, unit="deg", frame="icrs")
observations = DataStore.from_dir(args.data / "hess-dl3-dr1").select_cone(crab, radius="5 deg").get_observations()
print(observations)

# --- 3-D: one template on the target grid; each run is cut out around its pointing
energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 4)
energy_true = MapAxis.from_energy_bounds("0.5 TeV", "20 TeV", 10, name="energy_true")
geom = WcsGeom.create(skydir=crab, width="4 deg", binsz=0.02, frame="icrs", proj="CAR", axes=[energy])
target = MapDataset.create(geom, energy_axis_true=energy_true, binsz_irf=0.2, name="crab-3d")
exclusion = ~geom.to_image().region_mask([CircleSkyRegion(crab, 0.3 * u.deg)])
exclusion.attrs["wcs"] = geom.to_header_string()
makers = [
    MapDatasetMaker(),
    SafeMaskMaker(methods=["offset-max", "aeff-max"], offset_max="2.5 deg", aeff_percent=10),
    FoVBackgroundMaker(method="fit", exclusion_mask=exclusion),
]
store = str(args.out / "crab-3d.zarr")
# scheduler="sync" keeps this example in one process; leave it out to run on an
# embedded LocalCluster, or pass client=... / scheduler="tcp://..." for a cluster.
stacked = reduce(observations, target, makers, store=store, cutout_width="5 deg", scheduler="sync")
print(stacked)
print(stacked.info_dict())

# Running again finds every observation in the store and adds nothing.
again = reduce(observations, target, makers, store=store, cutout_width="5 deg", scheduler="sync", progress=False)
assert float(again.data.counts.sum()) == float(stacked.data.counts.sum())

# --- 1-D: counts in an ON circle, OFF counts in reflected regions
on_region = CircleSkyRegion(crab, 0.11 * u.deg)
energy_1d = MapAxis.from_energy_bounds("0.1 TeV", "40 TeV", 10, per_decade=True)
energy_true_1d = MapAxis.from_energy_bounds("0.05 TeV", "100 TeV", 20, per_decade=True, name="energy_true")
target_1d = SpectrumDatasetOnOff.create(RegionGeom.create(on_region, axes=[energy_1d]), energy_true_1d, name="crab-1d")
makers_1d = [
    SpectrumDatasetMaker(containment_correction=True, selection=("counts", "exposure", "edisp")),
    ReflectedRegionsBackgroundMaker(),
    SafeMaskMaker(methods=["aeff-max"], aeff_percent=10),
]
spectrum = reduce(observations, target_1d, makers_1d, scheduler="sync")
print(SpectrumDatasetOnOff(spectrum.data.load()))
