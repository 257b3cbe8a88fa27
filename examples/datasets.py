"""Datasets: create, fill, inspect, cut out, stack, store (Zarr, OGIP), collect and simulate.

Covers the Gammapy "datasets" tutorial. A reduced dataset is an
`xarray.Dataset` (``dataset.data``) wrapped by a small class (`MapDataset`,
`SpectrumDatasetOnOff` ...) that adds the behaviour; what is stored in Zarr is
exactly that xarray object, one group per dataset.

    python examples/datasets.py [--data ../shared/data] [--out .]
"""

import astropy.units as u
import numpy as np
import xarray as xr
from _crab import CRAB, CRAB_RUNS, parse, parser

from xgamma.axes import MapAxis
from xgamma.data import DataStore
from xgamma.datasets import Datasets, MapDataset, SpectrumDatasetOnOff, stack_datasets
from xgamma.geom import WcsGeom
from xgamma.makers import MapDatasetMaker, SafeMaskMaker
from xgamma.modeling import (
    FoVBackgroundModel,
    Models,
    PointSpatialModel,
    PowerLawSpectralModel,
    SkyModel,
)


def show_info(info: dict, keys=("counts", "background", "excess", "sqrt_ts", "livetime", "n_bins")):
    print(f"  {info['name']:>10}: " + ", ".join(f"{k} {info[k]:.4g}" for k in keys if k in info))


args = parse(parser(__doc__))

# --- an empty 3-D dataset: the maps, their axes and the reduced-IRF grid ------------------------------
energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
energy_true = MapAxis.from_energy_bounds("0.5 TeV", "20 TeV", 8, name="energy_true")
geom = WcsGeom.create(skydir=CRAB, width="2.5 deg", binsz=0.04, frame="icrs", proj="CAR", axes=[energy])
empty = MapDataset.create(geom, energy_axis_true=energy_true, binsz_irf=0.25, name="empty")
print(empty)
print("\nthe wrapped xarray.Dataset:")
print(empty.data)

# --- filled from two observations with a maker each --------------------------------------------
maker, safe = MapDatasetMaker(), SafeMaskMaker(methods=["offset-max"], offset_max="2.5 deg")
runs = []
for observation in DataStore.from_dir(args.data / "hess-dl3-dr1").get_observations(CRAB_RUNS[:2]):
    runs.append(safe.run(maker.run(empty.copy(name=f"run-{observation.obs_id}"), observation), observation))
print("\ninfo_dict of each run (sums inside mask_safe):")
for dataset in runs:
    show_info(dataset.info_dict())

# Everything is labelled xarray: counts per energy bin, the exposure at the Crab, one energy slice.
run = runs[0]
print("\ncounts per energy bin:", run.counts.sum(["y", "x"]).values)
print("exposure at the centre [cm2 s]:", run.exposure.isel(y=31, x=31).round().values)
print("counts map of the 1.0-2.15 TeV bin:", run.counts.sel(energy=1.5, method="nearest").shape)

# --- Zarr: one store, one group per dataset; read back lazily (Dask) or in memory ------------------------
store = str(args.out / "crab-datasets.zarr")
for dataset in runs:
    dataset.to_zarr(store, group=dataset.name, mode="w")
lazy = MapDataset.read(store, group=runs[0].name, chunks={})
print(f"\nread from {store}: counts backed by {type(lazy.counts.data).__name__}")
xr.testing.assert_identical(lazy.data.load(), runs[0].data)
print("round trip identical:", lazy.data.load().identical(runs[0].data))
runs[1].to_zarr("memory://crab-datasets.zarr", group="run", mode="w")  # any fsspec URL works the same way
print("memory:// round trip identical:", MapDataset.read("memory://crab-datasets.zarr", group="run") == runs[1])

# --- cutout: every map and the IRF grid cut around a position ----------------------------------------------
small = run.cutout(CRAB, width="1 deg", name="crab-cutout")
print(f"\ncutout: counts {dict(small.counts.sizes)}, psf {dict(small.psf.sizes)}")
show_info(small.info_dict())

# --- stacking: counts, background and exposure add inside each mask_safe, IRFs exposure-weighted ----------------
stacked = runs[0].stack(runs[1]).copy(name="stacked")  # a stack takes the name of the first
print("\nstacked:")
show_info(stacked.info_dict())
assert stacked.counts.sum() == sum(d.counts.where(d.mask_safe, 0).sum() for d in runs)
onto_template = stack_datasets([d.cutout(CRAB, width="1.5 deg") for d in runs], template=empty)
print("cutouts stacked onto the empty template:", dict(onto_template.counts.sizes), "obs_ids", onto_template.obs_ids)

# --- 1-D spectra from OGIP files (PHA with its ARF, RMF and BKG) -------------------------------------------
magic = [SpectrumDatasetOnOff.read(p) for p in sorted((args.data / "joint-crab/spectra/magic").glob("pha_*.fits"))]
print()
print(magic[0])
magic_stacked = magic[0].stack(magic[1], name="magic-stacked")
for dataset in (*magic, magic_stacked):
    show_info(dataset.info_dict(), ("counts", "counts_off", "alpha", "excess", "sqrt_ts", "n_fit_bins"))
pha = magic_stacked.write(args.out / "ogip", overwrite=True)
again = SpectrumDatasetOnOff.read(pha, name="magic-stacked")
print(f"written to {pha}; counts equal after reading back: {np.array_equal(again.counts, magic_stacked.counts)}")
magic_stacked.to_zarr(store, group="magic-stacked", mode="w")
print("Zarr round trip of the spectrum identical:", SpectrumDatasetOnOff.read(store, group="magic-stacked") == magic_stacked)

# --- a collection for a joint fit: named, indexed like a list or by name -----------------------------------
collection = Datasets([*runs, *magic])
print()
print(collection)
print("names:", collection.names, "| by name:", type(collection["run-23523"]).__name__, "| len:", len(collection))

# Models are set once on the collection; each dataset keeps the ones that apply to it.
crab = SkyModel(
    PowerLawSpectralModel(index=2.6, amplitude="4.5e-11 cm-2 s-1 TeV-1", reference="1 TeV"),
    PointSpatialModel(lon_0=CRAB.ra, lat_0=CRAB.dec, frame="icrs"),
    name="crab",
)
collection.models = Models([crab, *(FoVBackgroundModel(d.name) for d in runs)])
for dataset in collection:
    print(f"  {dataset.name:>10}: models {dataset.models.names}, -2 ln L = {dataset.stat_sum():.2f}")
print(f"joint -2 ln L = {collection.stat_sum():.2f}")

# --- fake: Poisson draws of the predicted counts ---------------------------------------------------------
simulated = run.fake(random_state=0, name="run-23523-sim")
mask = run.mask_safe.values
print(f"\nfake 3-D: npred {run.npred().values[mask].sum():.1f}, real counts {run.counts.values[mask].sum():.0f}, "
      f"simulated counts {simulated.counts.values[mask].sum():.0f}")
spectrum = magic[0]
faked = spectrum.fake(npred_background=spectrum.background, random_state=1, name="magic-sim")
safe = spectrum.mask_safe.values
print(f"fake On/Off: ON counts {spectrum.counts.values[safe].sum():.0f} -> {faked.counts.values[safe].sum():.0f} "
      f"(expected {spectrum.npred_signal().values[safe].sum() + spectrum.background.values[safe].sum():.1f} "
      f"from the model plus alpha x OFF), OFF counts {spectrum.counts_off.values[safe].sum():.0f} -> "
      f"{faked.counts_off.values[safe].sum():.0f}")
point = run.npred_signal().sum(["y", "x"])
print("predicted Crab counts per energy bin:", np.round(point.values, 1), f"({u.Quantity(run.livetime, 's'):.0f})")
