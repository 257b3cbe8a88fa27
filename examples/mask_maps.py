"""Safe masks and exclusion masks on the H.E.S.S. Crab runs, then a ring-background significance map.

Covers the Gammapy "mask maps" tutorial: a safe data range from an energy
range and a maximal offset, exclusion masks from circles and from a
threshold on a significance map, masks combined with ``&``, ``|`` and ``~``,
and the ring background that uses them.

Conventions: masks are boolean DataArrays with dims ``(y, x)`` (or
``(energy, y, x)``) and the grid's ``wcs`` attr. A safe mask is True where
data may be used; an exclusion mask is True where a pixel may serve as
background (False inside excluded regions), as in Gammapy.

    python examples/mask_maps.py [--data ../shared/data] [--out .]
"""

import argparse
import os
from pathlib import Path

import astropy.units as u
import matplotlib
import numpy as np
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion
from scipy import ndimage

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from xgamma.axes import MapAxis
from xgamma.data import DataStore
from xgamma.datasets import MapDataset, stack_datasets
from xgamma.geom import WcsGeom
from xgamma.makers import MapDatasetMaker, SafeMaskMaker, energy_mask
from xgamma.makers.ring import RingBackgroundMaker
from xgamma.plotting import plot_map

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", type=Path, default=Path(os.environ.get("XGAMMA_DATA", "../shared/data")))
parser.add_argument("--out", type=Path, default=Path("."))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

CRAB = SkyCoord(83.633, 22.014, unit="deg")
ZETA_TAU = SkyCoord(84.411, 21.142, unit="deg")  # a bright star next to the Crab


def as_map(mask, geom, name):
    """A (y, x) boolean mask with the grid's ``wcs`` attr, ready for the makers and `plot_map`."""
    mask = mask.rename(name)
    mask.attrs = {"units": "", "wcs": geom.to_header_string()}
    return mask


def exclusion_from_regions(geom, regions):
    """Exclusion mask: True outside the regions (usable), False inside."""
    return as_map(~geom.region_mask(regions), geom, "exclusion")


def dilate(mask, radius_pix):
    """Grow the True pixels of a mask by a disk of ``radius_pix`` pixels."""
    iy, ix = np.mgrid[-radius_pix : radius_pix + 1, -radius_pix : radius_pix + 1]
    return mask.copy(data=ndimage.binary_dilation(mask.values, structure=np.hypot(ix, iy) <= radius_pix))


def save(da, filename, title, **kwargs):
    ax = plot_map(da.astype(float).rename(da.name), **kwargs)
    ax.set_title(title)
    ax.figure.savefig(args.out / filename, dpi=80)
    plt.close(ax.figure)


# ---- reduce the four Crab runs (counts, IRF background, exposure) --------------------------
energy = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", 9)  # 3 bins per decade: 1 and 10 TeV are edges
geom = WcsGeom.create(skydir=CRAB, width="4 deg", binsz=0.02, frame="icrs", proj="CAR", axes=[energy])
image_geom = geom.to_image()
template = MapDataset.create(geom, name="crab")
store = DataStore.from_dir(args.data / "hess-dl3-dr1")
observations = store.get_observations([23523, 23526, 23559, 23592])
maker = MapDatasetMaker(selection=["counts", "background", "exposure"])
offset_max = SafeMaskMaker(methods=["offset-max"], offset_max="2.5 deg")  # the safe mask of each run
datasets = []
for obs in observations:
    dataset = template.cutout(obs.pointing, width="5 deg")
    datasets.append(offset_max.run(maker.run(dataset, obs), obs))
    print(f"run {obs.obs_id}: {int(datasets[-1].mask_image.sum())} pixels within 2.5 deg of the pointing")
stacked = stack_datasets(datasets, template=template)

# ---- safe data range: energy range & maximal offset ----------------------------------
# The offset mask of a run, built by hand from a circle around its pointing (what offset-max does):
first = observations[0]
offset_mask = as_map(image_geom.region_mask(CircleSkyRegion(first.pointing, 2.5 * u.deg)), image_geom, "offset_mask")
assert (offset_mask == datasets[0].mask_image.reindex_like(offset_mask, fill_value=False)).mean() > 0.99
# An energy range: reco bins entirely inside 1-10 TeV
in_range = energy_mask(stacked.energy_axis, "1 TeV", "10 TeV")
print("energy bins kept:", in_range.values.astype(int))
mask_safe = (stacked.mask_safe & in_range).transpose(*stacked.mask_safe.dims)
mask_safe.attrs = dict(stacked.mask_safe.attrs)
stacked.data["mask_safe"] = mask_safe
print(stacked)
save(offset_mask, "mask_offset.png", f"offset < 2.5 deg, run {first.obs_id}")
save(stacked.mask_image.rename("mask_safe"), "mask_safe.png", "mask_safe (1-10 TeV, any run)")

# ---- exclusion mask from circles --------------------------------------------------------
exclusion_circles = exclusion_from_regions(
    image_geom, [CircleSkyRegion(CRAB, 0.3 * u.deg), CircleSkyRegion(ZETA_TAU, 0.2 * u.deg)]
)
print(f"excluded by the circles: {int((~exclusion_circles).sum())} pixels")
save(exclusion_circles, "exclusion_circles.png", "exclusion from circles")

# ---- exclusion mask from a significance threshold ----------------------------------------
# First pass: ring background without exclusion; pixels above 5 sigma (0.1 deg ON circles)
first_pass = RingBackgroundMaker(r_in="0.5 deg", width="0.3 deg").run(stacked)
significance = first_pass.to_image().correlate("0.1 deg").sqrt_ts.isel(energy=0)
significant = as_map(significance.fillna(0) > 5, image_geom, "significant")
exclusion_threshold = as_map(~dilate(significant, radius_pix=5), image_geom, "exclusion")  # + 0.1 deg margin
print(f"pixels above 5 sigma: {int(significant.sum())}, excluded after dilation: {int((~exclusion_threshold).sum())}")
save(exclusion_threshold, "exclusion_threshold.png", "exclusion from sqrt_ts > 5 (dilated 0.1 deg)")

# ---- combining masks: & (both allow), | (either allows), ~ (invert) ---------------------------
exclusion = as_map(exclusion_circles & exclusion_threshold, image_geom, "exclusion")
either = as_map(exclusion_circles | exclusion_threshold, image_geom, "exclusion")
excluded = as_map(~exclusion, image_geom, "excluded")
print(f"excluded by either mask: {int(excluded.sum())} pixels, by both: {int((~either).sum())} pixels")
save(exclusion, "exclusion_combined.png", "exclusion: circles & threshold")

# ---- ring background with the combined exclusion: the Crab significance map -------------------
ring = RingBackgroundMaker(r_in="0.5 deg", width="0.3 deg", exclusion_mask=exclusion)
onoff = ring.run(stacked)
image = onoff.to_image().correlate("0.1 deg")
sqrt_ts = image.sqrt_ts.isel(energy=0).where(image.mask_safe.isel(energy=0))
iy, ix = np.unravel_index(int(np.nanargmax(sqrt_ts.values)), sqrt_ts.shape)
peak = image_geom.pix_to_skycoord(ix, iy)
print(f"peak sqrt_ts {float(sqrt_ts[iy, ix]):.1f} at ({peak.ra.deg:.3f}, {peak.dec.deg:.3f}) deg, "
      f"{peak.separation(CRAB).deg:.3f} deg from the Crab")
outside = (exclusion & (image_geom.separation(CRAB) > 0.5) & np.isfinite(sqrt_ts)).values
values = sqrt_ts.values[outside]
print(f"significance outside the exclusions: mean {values.mean():.2f}, width {values.std():.2f} ({values.size} pixels)")
save(sqrt_ts.rename("sqrt_ts"), "crab_significance.png", "ring background, 0.1 deg ON circles", cmap="RdBu_r",
     vmin=-5, vmax=5 * np.ceil(np.nanmax(sqrt_ts.values) / 5))
excess = image.excess.isel(energy=0).where(image.mask_safe.isel(energy=0))
save(excess.rename("excess"), "crab_excess.png", "excess counts in 0.1 deg circles", cmap="viridis")
fig, ax = plt.subplots()
ax.hist(values, bins=np.linspace(-5, 8, 66), density=True, histtype="step", label="outside exclusions")
grid = np.linspace(-5, 5, 200)
ax.plot(grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), label="N(0, 1)")
ax.set(xlabel="sqrt_ts", yscale="log", ylim=(1e-4, 1))
ax.legend()
fig.savefig(args.out / "significance_distribution.png", dpi=80)
