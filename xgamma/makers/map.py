"""Reduce one observation to a `~xgamma.datasets.MapDataset`: `MapDatasetMaker`."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..axes import MapAxis
from ..data.observation import MissingHDUError
from ..datasets.core import gti_attr
from ..datasets.map import IRF_DIMS, MapDataset
from . import utils

__all__ = ["MapDatasetMaker"]

#: Selectable products and the IRFs each needs (as `Observation` attribute names).
SELECTION_IRFS = {
    "counts": ("events",),
    "exposure": ("aeff",),
    "background": ("bkg",),
    "psf": ("psf", "aeff"),
    "edisp": ("edisp", "aeff"),
}


class MapDatasetMaker:
    """Fill a `MapDataset` template with one observation's counts, exposure, background and IRF maps.

    Parameters
    ----------
    selection : sequence of str
        Products to make, among ``counts``, ``exposure``, ``background``,
        ``psf``, ``edisp``. Default: all. ``psf`` and ``edisp`` also give
        ``exposure_irf`` (their stacking weights).
    background_oversampling : int, optional
        Evaluate the background rate on ``n x n`` sub-pixels per pixel.
    background_energy_integration : {"edges", "exact"}
        ``"edges"`` (default, as Gammapy): a power law through the rates at
        each energy bin's edges; ``"exact"``: the integral of the interpolated
        IRF table (see `xgamma.makers.utils.integrate_background`).
    fov_rotation_step : str, float or `~astropy.units.Quantity`
        For ALTAZ-aligned BKG_3D: largest field rotation per time step
        (deg). Default ``"1 deg"``.

    Notes
    -----
    Definitions (all on pixel centres and bin centres, vectorised):

    - counts (energy, y, x): events binned by reconstructed direction and energy;
    - exposure (energy_true, y, x) = A_eff(E_true, offset from pointing) x livetime, cm2 s;
    - background (energy, y, x) = ONTIME x pixel solid angle x the IRF rate
      integrated over the energy bin (see `xgamma.makers.utils.make_background`:
      rates are per observation time, dead time included, as GADF states);
    - psf (energy_true, rad, y_irf, x_irf) in sr-1, edisp (energy_true,
      energy, y_irf, x_irf) and exposure_irf on the coarse IRF grid.

    ``mask_safe`` of the result is True everywhere (apply a
    `~xgamma.makers.SafeMaskMaker` next); ``livetime`` is the observation's.

    Examples
    --------
    >>> template = MapDataset.create(geom, energy_axis_true=axis_true)       # doctest: +SKIP
    >>> cutout = template.cutout(obs.pointing, width="5 deg")                 # doctest: +SKIP
    >>> dataset = MapDatasetMaker().run(cutout, obs)                          # doctest: +SKIP
    """

    def __init__(self, selection=("counts", "exposure", "background", "psf", "edisp"), background_oversampling=None,
                 fov_rotation_step="1 deg", background_energy_integration="edges"):
        self.selection = selection
        self.background_oversampling = background_oversampling
        self.fov_rotation_step = fov_rotation_step
        self.background_energy_integration = background_energy_integration

    def __repr__(self):
        return (
            f"MapDatasetMaker(selection={self.selection!r}, background_oversampling={self.background_oversampling!r}, "
            f"fov_rotation_step={self.fov_rotation_step!r}, "
            f"background_energy_integration={self.background_energy_integration!r})"
        )

    def _check(self, observation) -> list[str]:
        selection = [self.selection] if isinstance(self.selection, str) else list(self.selection)
        unknown = [s for s in selection if s not in SELECTION_IRFS]
        if unknown:
            raise ValueError(f"MapDatasetMaker: unknown selection {unknown}; choose among {list(SELECTION_IRFS)}")
        for product in selection:
            for irf in SELECTION_IRFS[product]:
                if irf == "events":
                    if "events" not in observation.available_hdus:
                        raise MissingHDUError(f"observation {observation.obs_id}: no events HDU for 'counts'")
                elif getattr(observation, irf) is None:
                    raise MissingHDUError(
                        f"observation {observation.obs_id} has no {irf!r} IRF, needed for {product!r} "
                        f"(available: {observation.available_irfs}); drop {product!r} from the selection "
                        f"or select observations with it"
                    )
        return selection

    def run(self, dataset: MapDataset, observation) -> MapDataset:
        """Reduce ``observation`` onto the grids of ``dataset``.

        Parameters
        ----------
        dataset : `~xgamma.datasets.MapDataset`
            Template (usually `MapDataset.create` cut out around the pointing).
        observation : `~xgamma.data.Observation`
            The observation to reduce.

        Returns
        -------
        `~xgamma.datasets.MapDataset`
            Named after the template, or after the observation id when the
            template has no name; attrs ``obs_ids = [obs_id]``.

        Raises
        ------
        MissingHDUError
            If the observation lacks an IRF the selection needs (the message
            names the observation, the IRF and the product).
        ValueError
            For an unknown selection entry.
        """
        selection = self._check(observation)
        geom, geom_irf = dataset.geom, dataset.geom_irf
        if geom_irf is None and {"psf", "edisp"} & set(selection):
            raise ValueError("MapDatasetMaker: the template has no IRF grid (psf/edisp/exposure_irf variables); "
                             "build it with MapDataset.create")
        image = geom.to_image()
        pointing = observation.pointing
        axis_true = dataset.energy_axis_true
        livetime = observation.livetime
        # bare variables on the template's coordinates: no DataArray (and index) per product
        out = {
            "mask_safe": geom.to_variable(np.ones(geom.data_shape, dtype=bool)),
            "livetime": xr.Variable((), livetime.to_value("s"), {"units": "s"}),
        }
        if "counts" in selection:
            out["counts"] = geom.to_variable(utils.bin_events(observation.events, geom))
        if "exposure" in selection:
            values = utils.make_exposure(observation.aeff, image, pointing, livetime, axis_true)
            out["exposure"] = image.to_cube([axis_true]).to_variable(values, unit="cm2 s")
        if "background" in selection:
            values = utils.make_background(
                observation.bkg, geom, pointing, observation.ontime, gti=observation.gti,
                location=observation.observatory_location, rotation_step=self.fov_rotation_step,
                oversampling=self.background_oversampling, energy_integration=self.background_energy_integration,
            )
            out["background"] = geom.to_variable(values)
        if {"psf", "edisp"} & set(selection):
            values = utils.make_exposure(observation.aeff, geom_irf, pointing, livetime, axis_true)
            out["exposure_irf"] = geom_irf.to_cube([axis_true]).to_variable(values, unit="cm2 s", spatial=IRF_DIMS)
        if "psf" in selection:
            rad_axis = _axis(dataset, "rad")
            values = utils.make_psf(observation.psf, geom_irf, pointing, axis_true, rad_axis)
            out["psf"] = geom_irf.to_cube([axis_true, rad_axis]).to_variable(values, unit="sr-1", spatial=IRF_DIMS)
        if "edisp" in selection:
            out["edisp"] = self._edisp(dataset, observation, geom_irf, pointing, axis_true)
        attrs = dict(dataset.data.attrs, obs_ids=[observation.obs_id], gti=gti_attr(observation.gti))
        attrs["name"] = dataset.name or str(observation.obs_id)
        attrs.pop("fov_background_norm", None)
        used = {dim for var in out.values() for dim in var.dims}
        coords = {name: coord.variable for name, coord in dataset.data.coords.items() if set(coord.dims) <= used}
        return MapDataset(xr.Dataset(out, coords=coords, attrs=attrs))

    @staticmethod
    def _edisp(dataset, observation, geom_irf, pointing, axis_true):
        if dataset.edisp is not None and "migra" in dataset.edisp.dims:
            migra_axis = _axis(dataset, "migra")
            values = utils.make_edisp_migra(observation.edisp, geom_irf, pointing, axis_true, migra_axis)
            return geom_irf.to_cube([axis_true, migra_axis]).to_variable(values, spatial=IRF_DIMS)
        energy_axis = dataset.energy_axis
        values = utils.make_edisp_kernel(observation.edisp, geom_irf, pointing, axis_true, energy_axis)
        return geom_irf.to_cube([axis_true, energy_axis]).to_variable(values, spatial=IRF_DIMS)


def _axis(dataset, name):
    return MapAxis.from_coords(dataset.data, name)
