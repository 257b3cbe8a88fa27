"""Reflected-regions background: OFF regions at the ON region's offset from the pointing.

Which one to use when:

- `ReflectedRegionsFinder`: as many OFF regions as fit on the circle through
  the ON centre around the pointing, avoiding the ON region and an exclusion
  mask (the standard H.E.S.S. method; full-enclosure IRFs).
- `WobbleRegionsFinder`: a fixed number of OFF regions evenly spaced on that
  circle (wobble observations, point-like IRFs with a `regions.PointSkyRegion`
  ON region whose radius follows RAD_MAX).
- `ReflectedRegionsBackgroundMaker`: runs a finder for one observation and
  turns a `xgamma.datasets.SpectrumDataset` into a
  `xgamma.datasets.SpectrumDatasetOnOff` (``counts_off``, ``acceptance = 1``,
  ``acceptance_off`` = number of OFF regions).

Geometry conventions (those of Gammapy, so the OFF regions and counts are
identical): the finders work on a reference TAN grid centred on the
pointing, in the frame of the ON region's centre, ``binsz`` pixels and
``4 x offset + 0.3 deg`` wide. OFF regions are the ON region's pixel shape
rotated about the pointing's pixel; "inside" means inside in that grid's
pixel space (pixel centres for masks, event positions for counts).

An exclusion mask is a boolean WCS map (`xarray.DataArray` with dims
``("y", "x")`` and a ``wcs`` attr, as made by ``WcsGeom.to_dataarray``):
True where OFF regions are allowed, False where excluded. It is looked up at
the nearest mask pixel; outside the mask everything is allowed.
"""

from __future__ import annotations

import logging
from itertools import combinations

import astropy.units as u
import numpy as np
import xarray as xr
from astropy.coordinates import SkyCoord
from regions import PixCoord, PointSkyRegion

from ..geom import WcsGeom
from ..geom.wcs import lonlat_deg
from ..units import to_value
from .spectrum import rad_max_at_events

__all__ = [
    "ReflectedRegionsBackgroundMaker",
    "ReflectedRegionsFinder",
    "RegionsFinder",
    "WobbleRegionsFinder",
]

log = logging.getLogger(__name__)

_FULL_CIRCLE = 2 * np.pi


def _check_exclusion_mask(exclusion_mask):
    if exclusion_mask is None:
        return None
    if not isinstance(exclusion_mask, xr.DataArray):
        raise TypeError(f"exclusion_mask must be an xarray.DataArray WCS map, got {type(exclusion_mask).__name__}")
    if exclusion_mask.dims != ("y", "x") or "wcs" not in exclusion_mask.attrs:
        raise ValueError(
            f"exclusion_mask must be a 2-D WCS map with dims ('y', 'x') and a 'wcs' attr, got dims "
            f"{exclusion_mask.dims} and attrs {sorted(exclusion_mask.attrs)}"
        )
    if exclusion_mask.dtype != bool:
        raise ValueError(f"exclusion_mask must hold booleans (True = allowed), got dtype {exclusion_mask.dtype}")
    return exclusion_mask


class RegionsFinder:
    """Shared behaviour of the OFF-region finders.

    Parameters
    ----------
    binsz : str or `~astropy.units.Quantity` or float
        Pixel size of the reference grid (plain numbers in deg). Default 0.01 deg.
    """

    def __init__(self, binsz="0.01 deg"):
        self.binsz = binsz

    def reference_geom(self, region, center) -> WcsGeom:
        """The reference grid: TAN at ``center``, ``4 x offset + 0.3 deg`` wide.

        Parameters
        ----------
        region : `regions.SkyRegion`
            ON region (its centre's frame is the grid frame).
        center : `~astropy.coordinates.SkyCoord`
            Rotation centre (the pointing).
        """
        frame = region.center.frame.name
        frame = frame if frame in ("icrs", "galactic") else "icrs"
        width = 4 * region.center.separation(center).deg + 0.3
        binsz = to_value(self.binsz, "deg", "binsz")
        return WcsGeom.create(skydir=center.transform_to(frame), width=width, binsz=binsz, frame=frame, proj="TAN")

    @staticmethod
    def excluded_pixels(reference_geom: WcsGeom, exclusion_mask) -> PixCoord:
        """Reference-grid pixels (0-based x, y) whose nearest exclusion-mask pixel is False."""
        exclusion_mask = _check_exclusion_mask(exclusion_mask)
        if exclusion_mask is None:
            return PixCoord(np.zeros(0), np.zeros(0))
        mask_geom = WcsGeom.from_dataarray(exclusion_mask)
        lon, lat = reference_geom.get_coord()
        sky = SkyCoord(lon, lat, unit="deg", frame=reference_geom.frame)
        x, y = mask_geom.coord_to_pix(sky)
        nx, ny = mask_geom.npix
        with np.errstate(invalid="ignore"):
            ix, iy = np.floor(x + 0.5), np.floor(y + 0.5)
            inside = np.isfinite(ix) & np.isfinite(iy) & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        allowed = np.ones(ix.shape, dtype=bool)
        values = exclusion_mask.values
        allowed[inside] = values[iy[inside].astype(int), ix[inside].astype(int)]
        pix_y, pix_x = np.nonzero(~allowed)
        return PixCoord(pix_x.astype(float), pix_y.astype(float))

    @staticmethod
    def _center_pixel(center, reference_geom) -> PixCoord:
        return PixCoord.from_sky(center, reference_geom.wcs)

    def run(self, region, center, exclusion_mask=None):
        """Find OFF regions; see the subclasses.

        Returns
        -------
        regions : list of `regions.SkyRegion`
        wcs : `~astropy.wcs.WCS`
            The reference grid's WCS, in whose pixel space the regions are defined.
        """
        raise TypeError(f"{type(self).__name__} is a base class; use ReflectedRegionsFinder or WobbleRegionsFinder")


class ReflectedRegionsFinder(RegionsFinder):
    """OFF regions of the ON shape, reflected (rotated) about the pointing.

    Starting at ``size + min_distance + min_distance_input`` from the ON
    region (``size`` is the angle the ON region's pixels subtend as seen
    from the pointing), a candidate region is the ON pixel region rotated
    about the pointing; it is kept when it contains no excluded pixel, and
    the next candidate is then ``size + min_distance`` further on (so OFF
    regions never overlap), otherwise the angle grows by
    ``angle_increment``. Candidates stop before coming back within
    ``min_distance_input`` of the ON region, or after ``max_region_number``
    regions. If the pointing lies inside the ON region no OFF region exists.

    Parameters
    ----------
    angle_increment : str or `~astropy.units.Quantity`
        Rotation step when a candidate touches the exclusion mask. Default 0.1 rad.
    min_distance : str or `~astropy.units.Quantity`
        Extra angle between consecutive OFF regions. Default 0 rad.
    min_distance_input : str or `~astropy.units.Quantity`
        Extra angle between the ON region and the first/last OFF region.
        Default 0.1 rad.
    max_region_number : int
        Largest number of OFF regions. Default 10000.
    binsz : str or `~astropy.units.Quantity`
        Pixel size of the reference grid. Default 0.01 deg.

    Examples
    --------
    >>> finder = ReflectedRegionsFinder()                                   # doctest: +SKIP
    >>> regions, wcs = finder.run(on_region, observation.pointing, exclusion_mask)  # doctest: +SKIP
    """

    def __init__(
        self,
        angle_increment="0.1 rad",
        min_distance="0 rad",
        min_distance_input="0.1 rad",
        max_region_number=10000,
        binsz="0.01 deg",
    ):
        super().__init__(binsz=binsz)
        self.angle_increment = angle_increment
        self.min_distance = min_distance
        self.min_distance_input = min_distance_input
        self.max_region_number = max_region_number

    def __repr__(self):
        return (
            f"{type(self).__name__}(angle_increment={self.angle_increment!r}, min_distance={self.min_distance!r}, "
            f"min_distance_input={self.min_distance_input!r}, max_region_number={self.max_region_number}, "
            f"binsz={self.binsz!r})"
        )

    @staticmethod
    def region_angular_size(region, reference_geom, center_pix) -> float:
        """Angle (rad) subtended by the region's pixels as seen from ``center_pix``.

        Pixel centres of the reference grid inside the region (pixel space)
        are the region's pixels; a region straddling the +-pi direction is
        measured on the wrapped angles.
        """
        region_pix = region.to_pixel(reference_geom.wcs)
        bbox = region_pix.bounding_box
        nx, ny = reference_geom.npix
        xs = np.arange(max(bbox.ixmin - 1, 0), min(bbox.ixmax + 1, nx))
        ys = np.arange(max(bbox.iymin - 1, 0), min(bbox.iymax + 1, ny))
        gx, gy = np.meshgrid(xs.astype(float), ys.astype(float))
        inside = np.asarray(region_pix.contains(PixCoord(gx.ravel(), gy.ravel())), dtype=bool)
        if not inside.any():
            raise ValueError(f"the ON region {region} covers no pixel centre of the {reference_geom.binsz} deg reference grid")
        dx = center_pix.x - gx.ravel()[inside]
        dy = center_pix.y - gy.ravel()[inside]
        angles = np.arctan2(dx, dy)
        size = angles.max() - angles.min()
        if size > np.pi:
            wrapped = np.where(angles >= 0, angles - _FULL_CIRCLE, angles)
            size = wrapped.max() - wrapped.min()
        return float(size)

    def run(self, region, center, exclusion_mask=None):
        """Find the reflected regions.

        Parameters
        ----------
        region : `regions.SkyRegion`
            ON region (any shape except a point).
        center : `~astropy.coordinates.SkyCoord`
            Rotation centre (the pointing).
        exclusion_mask : `xarray.DataArray`, optional
            Boolean WCS map, True where OFF regions are allowed.

        Returns
        -------
        regions : list of `regions.SkyRegion`
            OFF regions, in order of increasing rotation angle.
        wcs : `~astropy.wcs.WCS`
            WCS of the reference grid.
        """
        if isinstance(region, PointSkyRegion):
            raise TypeError("ReflectedRegionsFinder needs an extended ON region; for a PointSkyRegion use WobbleRegionsFinder")
        increment = to_value(self.angle_increment, "rad", "angle_increment")
        if increment <= 0:
            raise ValueError(f"angle_increment must be positive, got {self.angle_increment}")
        min_distance = to_value(self.min_distance, "rad", "min_distance")
        min_distance_input = to_value(self.min_distance_input, "rad", "min_distance_input")

        reference_geom = self.reference_geom(region, center)
        center_pix = self._center_pixel(center, reference_geom)
        region_pix = region.to_pixel(reference_geom.wcs)
        excluded = self.excluded_pixels(reference_geom, exclusion_mask)

        angle_min = self.region_angular_size(region, reference_geom, center_pix) + min_distance
        angle_max = _FULL_CIRCLE - angle_min - min_distance_input
        angle = angle_min + min_distance_input
        regions = []
        while angle < angle_max:  # a few tens of rotation angles; each test is vectorised over pixels
            candidate = region_pix.rotate(center_pix, angle * u.rad)
            if excluded.x.size and np.any(candidate.contains(excluded)):
                angle += increment
                continue
            regions.append(candidate.to_sky(reference_geom.wcs))
            if len(regions) >= self.max_region_number:
                break
            angle += angle_min
        return regions, reference_geom.wcs


class WobbleRegionsFinder(RegionsFinder):
    """``n_off_regions`` OFF regions evenly spaced on the circle through the ON centre.

    The candidates are the ON region rotated about the pointing by
    ``k x 360 deg / (n_off_regions + 1)``, ``k = 1 .. n_off_regions``; those
    touching the exclusion mask are dropped (for a point, an excluded pixel
    closer than one pixel). Extended regions that overlap each other give no
    OFF region at all (with a warning): use fewer or smaller regions. For
    point regions the overlap depends on RAD_MAX and is checked by
    `ReflectedRegionsBackgroundMaker`.

    Parameters
    ----------
    n_off_regions : int
        Number of OFF regions.
    binsz : str or `~astropy.units.Quantity`
        Pixel size of the reference grid. Default 0.01 deg.
    """

    def __init__(self, n_off_regions, binsz="0.01 deg"):
        super().__init__(binsz=binsz)
        self.n_off_regions = n_off_regions

    def __repr__(self):
        return f"{type(self).__name__}(n_off_regions={self.n_off_regions}, binsz={self.binsz!r})"

    def run(self, region, center, exclusion_mask=None):
        """Find the OFF regions.

        Parameters
        ----------
        region : `regions.SkyRegion`
            ON region (a `regions.PointSkyRegion` for point-like data).
        center : `~astropy.coordinates.SkyCoord`
            Rotation centre (the pointing).
        exclusion_mask : `xarray.DataArray`, optional
            Boolean WCS map, True where OFF regions are allowed.

        Returns
        -------
        regions : list of `regions.SkyRegion`
        wcs : `~astropy.wcs.WCS`
        """
        n_off = int(self.n_off_regions)
        if n_off < 1:
            raise ValueError(f"n_off_regions must be at least 1, got {self.n_off_regions}")
        reference_geom = self.reference_geom(region, center)
        center_pix = self._center_pixel(center, reference_geom)
        region_pix = region.to_pixel(reference_geom.wcs)
        excluded = self.excluded_pixels(reference_geom, exclusion_mask) if exclusion_mask is not None else None
        is_point = isinstance(region, PointSkyRegion)
        step = _FULL_CIRCLE / (n_off + 1)
        candidates = []
        for k in range(1, n_off + 1):  # n_off_regions rotations
            candidate = region_pix.rotate(center_pix, (k * step) * u.rad)
            if excluded is not None and excluded.x.size:
                if is_point:
                    hit = np.any(np.hypot(excluded.x - candidate.center.x, excluded.y - candidate.center.y) < 1)
                else:
                    hit = np.any(candidate.contains(excluded))
                if hit:
                    continue
            candidates.append(candidate)
        if not is_point and _pixel_regions_overlap(candidates, reference_geom):
            log.warning("WobbleRegionsFinder: the OFF regions overlap; returning no OFF region (use fewer or smaller regions)")
            return [], reference_geom.wcs
        return [c.to_sky(reference_geom.wcs) for c in candidates], reference_geom.wcs


def _pixel_regions_overlap(regions_pix, reference_geom) -> bool:
    """Whether any two pixel regions share a reference-grid pixel centre."""
    if len(regions_pix) < 2:
        return False
    nx, ny = reference_geom.npix
    gy, gx = np.indices((ny, nx), dtype=float)
    pix = PixCoord(gx.ravel(), gy.ravel())
    masks = [np.asarray(r.contains(pix), dtype=bool) for r in regions_pix]
    return any(np.any(a & b) for a, b in combinations(masks, 2))


def _events_columns(observation):
    ds = observation.events.ds
    return (
        ds["ra"].values.astype(np.float64),
        ds["dec"].values.astype(np.float64),
        ds["energy"].values.astype(np.float64),
    )


class ReflectedRegionsBackgroundMaker:
    """Make an On/Off dataset with OFF regions from a region finder.

    Parameters
    ----------
    region_finder : `ReflectedRegionsFinder` or `WobbleRegionsFinder`, optional
        Default ``ReflectedRegionsFinder()``.
    exclusion_mask : `xarray.DataArray`, optional
        Boolean WCS map (dims ``y``, ``x``, ``wcs`` attr), True where OFF
        regions are allowed.

    Examples
    --------
    >>> maker = ReflectedRegionsBackgroundMaker(exclusion_mask=mask)   # doctest: +SKIP
    >>> dataset_on_off = maker.run(dataset, observation)               # doctest: +SKIP
    """

    tag = "ReflectedRegionsBackgroundMaker"

    def __init__(self, region_finder=None, exclusion_mask=None):
        self.region_finder = region_finder
        self.exclusion_mask = exclusion_mask

    def __repr__(self):
        mask = "None" if self.exclusion_mask is None else f"<mask {dict(self.exclusion_mask.sizes)}>"
        return f"{type(self).__name__}(region_finder={self._finder()!r}, exclusion_mask={mask})"

    def _finder(self):
        return ReflectedRegionsFinder() if self.region_finder is None else self.region_finder

    @staticmethod
    def _on_region(dataset):
        regions = dataset.geom.regions
        if len(regions) != 1:
            raise ValueError(f"the ON region must be a single region, got {len(regions)}")
        return regions[0]

    def find_off_regions(self, dataset, observation):
        """OFF regions for ``dataset``'s ON region and ``observation``'s pointing.

        Returns
        -------
        regions : list of `regions.SkyRegion`
        wcs : `~astropy.wcs.WCS`
            Reference grid WCS (pixel space of the containment tests).
        """
        region = self._on_region(dataset)
        regions, wcs = self._finder().run(region, observation.pointing, _check_exclusion_mask(self.exclusion_mask))
        if regions and isinstance(region, PointSkyRegion):
            regions = self._filter_overlapping_rad_max(regions, region, dataset, observation)
        return regions, wcs

    @staticmethod
    def _filter_overlapping_rad_max(regions_off, region, dataset, observation):
        """Drop all OFF points if any two of ON + OFF circles of radius RAD_MAX would overlap."""
        rad_max = observation.rad_max
        if rad_max is None:
            raise ValueError(f"observation {observation.obs_id}: a PointSkyRegion ON region needs RAD_MAX (point-like IRFs)")
        offset = region.center.separation(observation.pointing).deg
        e_min, e_max = dataset.energy_axis.bounds.to_value("TeV")
        axis = rad_max.axes["energy"]
        lo, hi = axis.edges_min.to_value("TeV"), axis.edges_max.to_value("TeV")
        use = (hi >= e_min) & (lo <= e_max)
        cuts = rad_max.evaluate(energy=axis.center[use], offset=offset).to_value("deg")
        centers = [region.center] + [r.center for r in regions_off]
        separations = np.array([a.separation(b).deg for a, b in combinations(centers, 2)])
        if cuts.size and np.any(separations[None, :] < 2 * cuts[:, None]):
            log.warning(
                "observation %s: ON/OFF circles of radius RAD_MAX (up to %.3f deg) overlap; no OFF region kept "
                "(use fewer OFF regions)",
                observation.obs_id,
                cuts.max(),
            )
            return []
        return regions_off

    @staticmethod
    def _count_off(dataset, observation, regions_off, wcs):
        """OFF counts per reco-energy bin, all OFF regions tested at once."""
        ra, dec, energy = _events_columns(observation)
        energy_axis = dataset.energy_axis
        if isinstance(regions_off[0], PointSkyRegion):
            rad_max = observation.rad_max
            pointing = observation.pointing
            lon0, lat0 = lonlat_deg(SkyCoord([r.center for r in regions_off]), "icrs")
            from ..geom import angular_separation

            sep = angular_separation(lon0[None, :], lat0[None, :], ra[:, None], dec[:, None])  # (event, region)
            cuts = np.stack(
                [rad_max_at_events(rad_max, energy, r.center.separation(pointing).deg) for r in regions_off], axis=1
            )
            weights = (sep <= cuts).sum(axis=1).astype(float)  # an event in two regions counts twice, as for ON
        else:
            x, y = wcs.wcs_world2pix(*lonlat_deg(SkyCoord(ra, dec, unit="deg", frame="icrs"), _wcs_frame(wcs)), 0)
            pix = [r.to_pixel(wcs) for r in regions_off]
            if all(hasattr(p, "radius") and type(p).__name__ == "CirclePixelRegion" for p in pix):
                cx = np.array([p.center.x for p in pix])
                cy = np.array([p.center.y for p in pix])
                radius = np.array([p.radius for p in pix])
                inside = np.hypot(x[:, None] - cx[None, :], y[:, None] - cy[None, :]) < radius[None, :]
            else:
                coords = PixCoord(x, y)
                inside = np.stack([np.asarray(p.contains(coords), dtype=bool) for p in pix], axis=1)
            weights = inside.any(axis=1).astype(float)  # the OFF regions act as one (non-overlapping) union
        idx = energy_axis.coord_to_idx(energy * u.TeV)
        keep = (idx >= 0) & (weights > 0)
        return np.bincount(idx[keep], weights=weights[keep], minlength=energy_axis.nbin)

    def run(self, dataset, observation):
        """Add OFF counts and acceptances to ``dataset``.

        Parameters
        ----------
        dataset : `xgamma.datasets.SpectrumDataset`
            Output of `SpectrumDatasetMaker` for ``observation``.
        observation : `xgamma.data.Observation`
            Gives the pointing, the events and (point-like) RAD_MAX.

        Returns
        -------
        `xgamma.datasets.SpectrumDatasetOnOff`
            ``acceptance = 1`` and ``acceptance_off`` = number of OFF regions
            in every bin; the OFF regions are recorded as DS9 text in
            ``counts_off.attrs["regions_off"]``. Without any OFF region, a
            warning is logged, ``counts_off`` and ``acceptance_off`` are 0
            and ``mask_safe`` is all False.
        """
        from ..datasets.spectrum import SpectrumDatasetOnOff

        regions_off, wcs = self.find_off_regions(dataset, observation)
        nbin = dataset.energy_axis.nbin
        if not regions_off:
            log.warning(
                "ReflectedRegionsBackgroundMaker: no OFF region found for dataset %r (observation %s) outside the "
                "exclusion mask; acceptance_off = 0 and mask_safe set to False",
                dataset.name,
                observation.obs_id,
            )
            out = SpectrumDatasetOnOff.from_spectrum_dataset(
                dataset, counts_off=np.zeros(nbin), acceptance=np.ones(nbin), acceptance_off=np.zeros(nbin)
            )
            return out.with_mask_safe(np.zeros(nbin, dtype=bool))
        counts_off = self._count_off(dataset, observation, regions_off, wcs)
        out = SpectrumDatasetOnOff.from_spectrum_dataset(
            dataset, counts_off=counts_off, acceptance=np.ones(nbin), acceptance_off=np.full(nbin, float(len(regions_off)))
        )
        from regions import Regions

        out.data["counts_off"].attrs["regions_off"] = Regions(list(regions_off)).serialize(format="ds9")
        return out


def _wcs_frame(wcs) -> str:
    ctype = wcs.wcs.ctype[0].upper()
    return "galactic" if ctype.startswith("GLON") else "icrs"
