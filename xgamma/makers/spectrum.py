"""Reduce one observation to a 1-D spectrum in an ON region: `SpectrumDatasetMaker`.

Use it with an empty `xgamma.datasets.SpectrumDataset` (``create``) and an
`xgamma.data.Observation`; follow with
`xgamma.makers.ReflectedRegionsBackgroundMaker` for an On/Off dataset and
`xgamma.makers.SafeMaskMaker` for the safe energy range.

Point-like IRFs (``HDUCLAS3 = POINT-LIKE``): the ON region is a
`regions.PointSkyRegion` and its radius follows the directional cut
RAD_MAX (energy-dependent ``RAD_MAX_2D`` table or the constant ``RAD_MAX``
header keyword), or a `regions.CircleSkyRegion` whose radius equals a
constant RAD_MAX.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion, PointSkyRegion

from ..axes import MapAxis
from ..datasets.core import gti_attr
from ..geom.wcs import angular_separation, lonlat_deg

__all__ = ["SpectrumDatasetMaker", "rad_max_at_events"]

_SELECTION = ("counts", "exposure", "edisp")
#: Relative tolerance when comparing a circle's radius to a constant RAD_MAX (as Gammapy).
_RAD_MAX_RTOL = 1e-3
#: Offset step (deg) of the nodes at which the energy dispersion is averaged over an ON region.
_OFFSET_STEP = 0.005


def rad_max_at_events(rad_max, energy, offset) -> np.ndarray:
    """Directional cut for each event, nearest table node (as Gammapy applies RAD_MAX).

    The cut of an event is the RAD_MAX value of the table bin that contains
    its reconstructed energy (nearest node in log energy; the first/last bin
    outside the table) at the node nearest to ``offset``.

    Parameters
    ----------
    rad_max : `xgamma.irf.RadMax2D`
        The directional cut table.
    energy : array-like
        Reconstructed event energies, TeV.
    offset : float
        Offset of the region centre from the pointing, deg.

    Returns
    -------
    `numpy.ndarray`
        Cut radius per event, deg.
    """
    data = rad_max.data
    factor = u.Unit(data.attrs.get("units", "deg") or "deg").to("deg")
    energy_axis = MapAxis.from_coords(data, "energy")
    scale = energy_axis.unit.to("TeV")
    centres = np.log(energy_axis.center.value * scale)
    energy = np.log(np.clip(np.asarray(energy, dtype=float), 1e-300, None))
    # nearest node in log energy: the boundaries are the mid-points of the log centres
    idx_e = np.searchsorted(0.5 * (centres[1:] + centres[:-1]), energy, side="right")
    offsets = MapAxis.from_coords(data, "offset").center.to_value("deg")
    idx_o = int(np.argmin(np.abs(offsets - float(offset))))
    table = data.transpose("energy", "offset").values * factor
    return table[idx_e, idx_o]


def _separation_deg(center: SkyCoord, lon, lat, frame="icrs"):
    lon0, lat0 = lonlat_deg(center, frame)
    return angular_separation(lon0, lat0, lon, lat)


def _on_region(geom):
    regions = geom.regions
    if len(regions) != 1:
        raise ValueError(f"SpectrumDatasetMaker needs a single ON region, got {len(regions)}")
    return regions[0]


class SpectrumDatasetMaker:
    """Fill a `SpectrumDataset` from one observation.

    Parameters
    ----------
    selection : tuple of str
        What to make, any of ``"counts"``, ``"exposure"``, ``"edisp"``.
        Default all three.
    containment_correction : bool
        Multiply the exposure by the fraction of a point source at the ON
        centre that the PSF puts inside the ON circle, per true energy.
        Only for full-enclosure IRFs with a PSF and a circular ON region.
        Default False.
    use_region_center : bool
        Evaluate exposure and energy dispersion at the ON centre (default);
        if False, average them over the ON region (solid-angle weighted,
        on a grid of about 400 points across the region).

    Examples
    --------
    >>> maker = SpectrumDatasetMaker(containment_correction=True)      # doctest: +SKIP
    >>> dataset = maker.run(SpectrumDataset.create(geom, energy_axis_true), observation)  # doctest: +SKIP
    """

    tag = "SpectrumDatasetMaker"

    def __init__(self, selection=_SELECTION, containment_correction=False, use_region_center=True):
        self.selection = selection
        self.containment_correction = containment_correction
        self.use_region_center = use_region_center

    def __repr__(self):
        return (
            f"{type(self).__name__}(selection={tuple(self.selection)!r}, "
            f"containment_correction={self.containment_correction}, use_region_center={self.use_region_center})"
        )

    # ---- checks -------------------------------------------------------------
    def _selection(self):
        selection = tuple(self.selection)
        unknown = sorted(set(selection) - set(_SELECTION))
        if unknown:
            raise ValueError(f"SpectrumDatasetMaker: unknown selection {unknown}; choose from {list(_SELECTION)}")
        return selection

    @staticmethod
    def _check_point_like(region, observation):
        """Validate the ON region against the directional cut of point-like IRFs."""
        rad_max = observation.rad_max
        if rad_max is None:
            raise ValueError(
                f"observation {observation.obs_id}: point-like IRFs need a directional cut (RAD_MAX_2D HDU or "
                f"RAD_MAX header keyword) to count events in the ON region; none found"
            )
        if isinstance(region, PointSkyRegion):
            return rad_max
        values = rad_max.data.values
        is_fixed = values.size == 1 or np.allclose(values, values.flat[0], rtol=0, atol=0)
        if not isinstance(region, CircleSkyRegion):
            raise TypeError(
                f"observation {observation.obs_id}: point-like IRFs need a PointSkyRegion (the ON radius then "
                f"follows RAD_MAX) or a CircleSkyRegion of radius RAD_MAX; got {type(region).__name__}"
            )
        radius = region.radius.to_value("deg")
        if not is_fixed:
            raise ValueError(
                f"observation {observation.obs_id}: its RAD_MAX depends on energy/offset "
                f"({values.min():.4g} to {values.max():.4g} deg), so a fixed circle of {radius:.4g} deg cannot match "
                f"the IRFs; use a PointSkyRegion at the source position (the ON radius then follows RAD_MAX per energy)"
            )
        cut = float(values.flat[0]) * u.Unit(rad_max.data.attrs.get("units", "deg") or "deg").to("deg")
        if not np.isclose(radius, cut, rtol=_RAD_MAX_RTOL, atol=0):
            relation = "larger" if radius > cut else "smaller"
            raise ValueError(
                f"observation {observation.obs_id}: the ON circle ({radius:.4g} deg) is {relation} than the RAD_MAX "
                f"cut of its point-like IRFs ({cut:.4g} deg); the effective area only holds for events within "
                f"RAD_MAX, so use a CircleSkyRegion of radius {cut:.4g} deg or a PointSkyRegion"
            )
        return rad_max

    # ---- pieces ---------------------------------------------------------------
    def _offsets_and_weights(self, geom, region, pointing):
        """Offsets (deg) at which IRFs are evaluated, and their weights."""
        center = geom.center_skydir
        if self.use_region_center or isinstance(region, PointSkyRegion):
            return np.array([center.separation(pointing).deg]), np.array([1.0])
        wcs_geom = geom.to_wcs_geom()
        mask = wcs_geom.region_mask(list(geom.regions)).values
        weights = wcs_geom.solid_angle().values[mask]
        lon, lat = wcs_geom.get_coord()
        offsets = _separation_deg(pointing, lon[mask], lat[mask], wcs_geom.frame)
        if weights.sum() <= 0:
            raise ValueError("use_region_center=False: the ON region covers no pixel of its sampling grid")
        return offsets, weights / weights.sum()

    def make_counts(self, dataset, observation, region, rad_max=None):
        """ON counts per reconstructed-energy bin.

        Returns
        -------
        `numpy.ndarray`
            Counts, shape of the reco energy axis.
        """
        events = observation.events
        energy_axis = dataset.energy_axis
        energy = events.ds["energy"].values.astype(float)  # TeV
        ra = events.ds["ra"].values.astype(np.float64)
        dec = events.ds["dec"].values.astype(np.float64)
        center = dataset.geom.center_skydir
        sep = _separation_deg(center, ra, dec)
        if rad_max is not None and isinstance(region, PointSkyRegion):
            offset = center.separation(observation.pointing).deg
            inside = sep <= rad_max_at_events(rad_max, energy, offset)
        elif isinstance(region, CircleSkyRegion):
            inside = sep < region.radius.to_value("deg")
        else:
            inside = dataset.geom.contains((ra, dec)) if dataset.geom.frame == "icrs" else dataset.geom.contains(events.radec)
        idx = energy_axis.coord_to_idx(energy[inside] * u.TeV)
        idx = idx[idx >= 0]
        return np.bincount(idx, minlength=energy_axis.nbin).astype(float)

    def make_exposure(self, dataset, observation, region, offsets, weights):
        """Exposure per true-energy bin in cm2 s (containment-corrected if asked)."""
        if not self.containment_correction:
            return self.make_exposure_irf(dataset, observation, offsets, weights)
        energy_true = dataset.energy_axis_true.center.to_value("TeV")
        aeff = self._aeff(dataset, observation, offsets)
        if observation.is_point_like:
            raise ValueError(
                f"observation {observation.obs_id}: containment correction needs full-enclosure IRFs; point-like "
                f"IRFs already include the RAD_MAX cut (use containment_correction=False)"
            )
        if observation.psf is None:
            raise ValueError(
                f"observation {observation.obs_id}: containment_correction=True needs a PSF, but the observation "
                f"has none (available IRFs: {observation.available_irfs})"
            )
        if not isinstance(region, CircleSkyRegion):
            raise TypeError(
                f"containment correction is defined for a circular ON region, got {type(region).__name__}"
            )
        radius = region.radius.to_value("deg")
        containment = observation.psf.containment(radius, energy_true=energy_true[:, None], offset=offsets[None, :])
        aeff = aeff * np.asarray(containment, dtype=float)
        return (aeff * weights[None, :]).sum(axis=1) * observation.livetime.to_value("s")

    def make_exposure_irf(self, dataset, observation, offsets, weights):
        """Exposure without containment correction (cm2 s): the weight of the edisp when stacking."""
        aeff = self._aeff(dataset, observation, offsets)
        return (aeff * weights[None, :]).sum(axis=1) * observation.livetime.to_value("s")

    @staticmethod
    def _aeff(dataset, observation, offsets):
        energy_true = dataset.energy_axis_true.center.to_value("TeV")
        return observation.aeff.evaluate(energy_true=energy_true[:, None], offset=offsets[None, :]).to_value("cm2")

    def make_edisp(self, dataset, observation, offsets, weights):
        """Energy-dispersion kernel (energy_true, energy) at the ON offset(s)."""
        edisp = observation.edisp
        if edisp is None:
            raise ValueError(f"observation {observation.obs_id}: no energy dispersion IRF, but 'edisp' is selected")
        if offsets.size > 1:
            # region average: group the sampling points into offset nodes _OFFSET_STEP apart
            nodes, inverse = np.unique(np.round(offsets / _OFFSET_STEP), return_inverse=True)
            weights = np.bincount(inverse.ravel(), weights=weights)
            offsets = nodes * _OFFSET_STEP
        kernel = 0.0
        for offset, weight in zip(offsets, weights):  # offset nodes (one with use_region_center), not pixels
            kernel = kernel + weight * edisp.to_edisp_kernel(offset, dataset.energy_axis_true, dataset.energy_axis).values
        return kernel

    # ---- the verb -------------------------------------------------------------
    def run(self, dataset, observation):
        """Reduce ``observation`` into a copy of ``dataset``.

        Parameters
        ----------
        dataset : `xgamma.datasets.SpectrumDataset`
            Empty dataset (`SpectrumDataset.create`) giving the ON region and
            energy axes.
        observation : `xgamma.data.Observation`
            The observation to reduce.

        Returns
        -------
        `xgamma.datasets.SpectrumDataset`
            New dataset named ``str(obs_id)`` unless ``dataset`` has a name,
            with counts, exposure (cm2 s), edisp, livetime (s) and
            ``obs_ids = [obs_id]``.

        Raises
        ------
        ValueError
            Unknown selection; containment correction without a PSF or with
            point-like IRFs; point-like IRFs with a circle that does not match
            a constant RAD_MAX, or with an energy-dependent RAD_MAX.
        TypeError
            Containment correction for a non-circular region; point-like IRFs
            with an ON region that is neither a point nor a circle.
        """
        selection = self._selection()
        region = _on_region(dataset.geom)
        rad_max = None
        if observation.is_point_like:
            rad_max = self._check_point_like(region, observation)
        elif isinstance(region, PointSkyRegion):
            raise ValueError(
                f"observation {observation.obs_id}: a PointSkyRegion has no radius; with full-enclosure IRFs use a "
                f"CircleSkyRegion (PointSkyRegion is for point-like IRFs whose RAD_MAX sets the ON radius)"
            )
        pointing = observation.pointing
        offsets, weights = self._offsets_and_weights(dataset.geom, region, pointing)
        data = dataset.data.copy(deep=True)
        if "counts" in selection:
            data["counts"].values[...] = self.make_counts(dataset, observation, region, rad_max)
        if "exposure" in selection:
            data["exposure"].values[...] = self.make_exposure(dataset, observation, region, offsets, weights)
        if "edisp" in selection:
            data["edisp"].values[...] = self.make_edisp(dataset, observation, offsets, weights)
            # the edisp stacks weighted by the IRF exposure, not the containment-corrected one
            exposure_irf = self.make_exposure_irf(dataset, observation, offsets, weights)
            data["exposure_irf"] = data["exposure"].copy(data=exposure_irf)
        data["livetime"] = data["livetime"].copy(data=observation.livetime.to_value("s"))
        # every bin is usable until a SafeMaskMaker says otherwise (as MapDatasetMaker)
        data["mask_safe"] = data["mask_safe"].copy(data=np.ones(data["mask_safe"].shape, dtype=bool))
        data.attrs["obs_ids"] = [int(observation.obs_id)]
        data.attrs["gti"] = gti_attr(observation.gti)
        if not data.attrs.get("name"):
            data.attrs["name"] = str(observation.obs_id)
        data.attrs["pointing_ra"], data.attrs["pointing_dec"] = (float(v) for v in lonlat_deg(pointing, "icrs"))
        data.attrs["is_point_like"] = bool(observation.is_point_like)
        return type(dataset)(data)
