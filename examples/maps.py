"""Make a counts map from events, store it in Zarr and FITS, read it back, plot it.

Covers the Gammapy "maps" tutorial: geometries, maps as labelled arrays,
cutouts, Zarr (any fsspec URL) and FITS round trips.

    python examples/maps.py [--data ../shared/data] [--out .]
"""

import argparse
import os
from pathlib import Path

import matplotlib
import numpy as np
import xarray as xr

matplotlib.use("Agg")

from xgamma.axes import MapAxis  # noqa: E402
from xgamma.data import DataStore  # noqa: E402
from xgamma.geom import WcsGeom  # noqa: E402
from xgamma.io.fits_map import read_map_fits, write_map_fits  # noqa: E402
from xgamma.io.zarr import read_zarr, write_zarr  # noqa: E402
from xgamma.maps import cutout  # noqa: E402
from xgamma.plotting import plot_map  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", type=Path, default=Path(os.environ.get("XGAMMA_DATA", "../shared/data")))
parser.add_argument("--out", type=Path, default=Path("."))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

energy = MapAxis.from_energy_bounds("0.5 TeV", "50 TeV", 4)
geom = WcsGeom.create(skydir=(83.633, 22.014), width="4 deg", binsz=0.02, frame="icrs", proj="CAR", axes=[energy])
print(geom)

# Bin the events of the four Crab runs: one vectorised histogram per run.
store = DataStore.from_dir(args.data / "hess-dl3-dr1")
counts = np.zeros(geom.data_shape)
for obs in store.select_cone(83.633, 22.014, "5 deg").get_observations():
    events = obs.events
    x, y = geom.coord_to_pix(events.radec)
    e_idx = energy.coord_to_idx(events.energy)
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    inside = (e_idx >= 0) & (ix >= 0) & (ix < geom.npix[0]) & (iy >= 0) & (iy < geom.npix[1])
    np.add.at(counts, (e_idx[inside], iy[inside], ix[inside]), 1)
counts_map = geom.to_dataarray(counts, unit="", name="counts")
print(counts_map)
print(f"total counts: {int(counts_map.sum())}")

# Zarr round trip (any fsspec URL: a local path here, memory:// or s3:// work too)
store_url = str(args.out / "crab-counts.zarr")
write_zarr(counts_map, store_url, mode="w")
assert counts_map.identical(read_zarr(store_url).load())
write_map_fits(counts_map, args.out / "crab-counts.fits", overwrite=True)
xr.testing.assert_allclose(read_map_fits(args.out / "crab-counts.fits"), counts_map)

image = cutout(counts_map.sum("energy"), position=(83.633, 22.014), width="2 deg")
ax = plot_map(image, stretch="sqrt", cmap="viridis")
ax.figure.savefig(args.out / "crab-counts.png", dpi=80)
print(f"saved {args.out / 'crab-counts.png'}")
