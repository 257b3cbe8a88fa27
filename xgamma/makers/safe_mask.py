"""Safe data range: `SafeMaskMaker` for 1-D (spectrum) and 3-D (map) datasets.

Methods (combined with "and"; Gammapy's names and definitions):

=============  ===========================================================
aeff-default   reco bins inside the LO_THRES/HI_THRES of the effective area
               header (a bin is kept when it lies entirely inside).
aeff-max       reco bins whose lower edge is at or above the true energy
               where the effective area (exposure / livetime, log-log
               interpolated) first reaches ``aeff_percent`` % of its
               maximum, at ``position`` (default: the dataset centre).
edisp-bias     reco bins at or above the reconstructed energy where the
               energy bias falls below ``bias_percent`` %, searched upwards
               from the true energy of largest bias.
offset-max     pixels (or the ON centre) closer than ``offset_max`` to the
               pointing.
bkg-peak       reco bins above the peak of the background spectrum (lower
               edge at or above the centre of the peak bin).
=============  ===========================================================

Also applied always: bins where a stored ``background`` variable is not
finite or not positive are dropped when the background is not all zero, and
for On/Off datasets bins with ``acceptance_off == 0`` (no OFF measurement).
"""

from __future__ import annotations

import logging

import astropy.units as u
import numpy as np
import xarray as xr
from astropy.coordinates import SkyCoord

from ..axes import MapAxis
from ..datasets.core import with_values
from ..geom import WcsGeom
from ..units import quantity, to_value

__all__ = ["SafeMaskMaker", "energy_mask"]

log = logging.getLogger(__name__)

_METHODS = ("aeff-default", "aeff-max", "edisp-bias", "offset-max", "bkg-peak")
_IRFS = ("DL4", "DL3")


def energy_mask(energy_axis: MapAxis, energy_min=None, energy_max=None) -> xr.DataArray:
    """Bins lying entirely inside ``[energy_min, energy_max]``.

    Parameters
    ----------
    energy_axis : `~xgamma.axes.MapAxis`
        Reconstructed energy axis.
    energy_min, energy_max : `~astropy.units.Quantity`, str or float, optional
        Bounds (plain numbers in TeV); None means unbounded.

    Returns
    -------
    `xarray.DataArray`
        Bool, dim ``energy``.
    """
    lo = energy_axis.edges_min.to_value("TeV")
    hi = energy_axis.edges_max.to_value("TeV")
    mask = np.ones(lo.shape, dtype=bool)
    if energy_min is not None:
        mask &= lo >= to_value(energy_min, "TeV", "energy_min")
    if energy_max is not None:
        mask &= hi <= to_value(energy_max, "TeV", "energy_max")
    return xr.DataArray(mask, dims=("energy",), coords=energy_axis.to_coords())


def _loglog_crossing(energy, values, threshold, start):
    """First energy >= ``energy[start]`` where log-log interpolated ``values`` cross ``threshold``.

    Returns None when there is no crossing.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return _first_crossing(energy, np.log(values[start:]) - np.log(threshold), start)


def _linlog_crossing(energy, values, threshold, start):
    """As `_loglog_crossing`, values linear (for the bias)."""
    return _first_crossing(energy, values[start:] - threshold, start)


def _first_crossing(energy, f, start):
    """Energy (log-interpolated) where ``f`` (sampled from ``start`` on) first changes sign."""
    e = np.log(energy[start:])
    sign = np.sign(f)
    change = np.flatnonzero((sign[:-1] != sign[1:]) & np.isfinite(f[:-1]) & np.isfinite(f[1:]))
    if change.size == 0:
        return None
    j = change[0]
    if f[j] == 0:
        return float(energy[start + j])
    frac = f[j] / (f[j] - f[j + 1])
    return float(np.exp(e[j] + frac * (e[j + 1] - e[j])))


def _var(dataset, name):
    return dataset.data.get(name)


def _is_map(da) -> bool:
    return da is not None and "wcs" in da.attrs and "x" in da.dims


def _at_position(da, position, spatial=("y", "x")):
    """Values of a map DataArray at the pixel nearest to ``position`` (spatial dims dropped).

    ``spatial`` names the map's pixel dims (``("y_irf", "x_irf")`` for
    reduced IRFs); the WCS comes from the ``wcs`` attr. Arrays without those
    dims are returned unchanged.
    """
    if not set(spatial) <= set(da.dims):
        return da
    if "wcs" not in da.attrs:
        raise ValueError(f"{da.name!r} has dims {da.dims} but no 'wcs' attr: cannot locate a sky position")
    geom = WcsGeom.from_header(da.attrs["wcs"], npix=(da.sizes[spatial[1]], da.sizes[spatial[0]]))
    x, y = geom.coord_to_pix(position)
    ix = int(np.clip(np.floor(float(x) + 0.5), 0, geom.npix[0] - 1))
    iy = int(np.clip(np.floor(float(y) + 0.5), 0, geom.npix[1] - 1))
    return da.isel({spatial[0]: iy, spatial[1]: ix})


class SafeMaskMaker:
    """Compute ``mask_safe`` of a reduced dataset from its IRFs or the observation.

    Parameters
    ----------
    methods : tuple of str
        Any of ``"aeff-default"``, ``"aeff-max"``, ``"edisp-bias"``,
        ``"offset-max"``, ``"bkg-peak"`` (combined with "and"). Default
        ``("aeff-default",)``.
    aeff_percent : float
        Percentage of the maximal effective area for ``aeff-max``. Default 10.
    bias_percent : float
        Largest energy bias in percent for ``edisp-bias``. Default 10.
    position : `~astropy.coordinates.SkyCoord`, optional
        Where ``aeff-max`` and ``edisp-bias`` look at the IRFs; default the
        dataset centre (the ON centre for spectra).
    fixed_offset : str or `~astropy.units.Quantity`, optional
        Instead of ``position``: this offset from the pointing (towards
        celestial north). Mutually exclusive with ``position``.
    offset_max : str or `~astropy.units.Quantity`
        Largest offset from the pointing for ``offset-max``. Default 3 deg.
    irfs : {"DL4", "DL3"}
        ``aeff-max`` and ``edisp-bias`` read the dataset's exposure and
        energy-dispersion kernel (DL4, default; the exposure includes a
        containment correction if one was applied) or the observation's
        IRFs (DL3).

    Examples
    --------
    >>> maker = SafeMaskMaker(methods=("aeff-max",), aeff_percent=10)   # doctest: +SKIP
    >>> dataset = maker.run(dataset, observation)                       # doctest: +SKIP
    """

    tag = "SafeMaskMaker"
    available_methods = _METHODS

    def __init__(
        self,
        methods=("aeff-default",),
        aeff_percent=10,
        bias_percent=10,
        position=None,
        fixed_offset=None,
        offset_max="3 deg",
        irfs="DL4",
    ):
        self.methods = methods
        self.aeff_percent = aeff_percent
        self.bias_percent = bias_percent
        self.position = position
        self.fixed_offset = fixed_offset
        self.offset_max = offset_max
        self.irfs = irfs

    def __repr__(self):
        return (
            f"{type(self).__name__}(methods={tuple(self.methods)!r}, aeff_percent={self.aeff_percent}, "
            f"bias_percent={self.bias_percent}, position={self.position!r}, fixed_offset={self.fixed_offset!r}, "
            f"offset_max={self.offset_max!r}, irfs={self.irfs!r})"
        )

    # ---- validation -----------------------------------------------------------
    def _methods(self):
        methods = (self.methods,) if isinstance(self.methods, str) else tuple(self.methods)
        unknown = [m for m in methods if m not in _METHODS]
        if unknown:
            raise ValueError(f"SafeMaskMaker: unknown method(s) {unknown}; known methods are {list(_METHODS)}")
        if self.irfs not in _IRFS:
            raise ValueError(f"SafeMaskMaker: irfs must be one of {list(_IRFS)}, got {self.irfs!r}")
        if self.position is not None and self.fixed_offset is not None:
            raise ValueError("SafeMaskMaker: position and fixed_offset are mutually exclusive; give one of them")
        return methods

    @staticmethod
    def _need_observation(observation, method):
        if observation is None:
            raise ValueError(f"SafeMaskMaker: method {method!r} needs the observation (run(dataset, observation))")

    def _position(self, dataset, observation, method) -> SkyCoord:
        if self.fixed_offset is not None:
            self._need_observation(observation, f"{method} with fixed_offset")
            offset = quantity(self.fixed_offset, "deg").to(u.deg)
            return observation.pointing.directional_offset_by(0 * u.deg, offset)
        if self.position is not None:
            return self.position
        counts = dataset.data["counts"]
        if _is_map(counts):
            return WcsGeom.from_dataarray(counts).center_skydir
        return dataset.geom.center_skydir

    # ---- methods ----------------------------------------------------------------
    def make_mask_offset_max(self, dataset, observation) -> xr.DataArray:
        """Pixels (or the ON centre) closer than ``offset_max`` to the pointing."""
        self._need_observation(observation, "offset-max")
        offset_max = to_value(self.offset_max, "deg", "offset_max")
        counts = dataset.data["counts"]
        if _is_map(counts):
            return WcsGeom.from_dataarray(counts).separation(observation.pointing) < offset_max
        return xr.DataArray(bool(dataset.geom.center_skydir.separation(observation.pointing).deg < offset_max))

    @staticmethod
    def make_mask_energy_aeff_default(dataset, observation) -> xr.DataArray:
        """Reco bins inside the effective area's LO_THRES/HI_THRES (TeV)."""
        SafeMaskMaker._need_observation(observation, "aeff-default")
        lo, hi = observation.aeff.energy_thresholds
        if lo is None or hi is None:
            missing = [k for k, v in (("LO_THRES", lo), ("HI_THRES", hi)) if v is None]
            log.warning("observation %s: no %s in the effective area header; that side is not cut", observation.obs_id, "/".join(missing))
        return energy_mask(_energy_axis(dataset), lo, hi)

    def _effective_area(self, dataset, observation):
        """(true energies in TeV, effective area in cm2) at the look-up position."""
        position = self._position(dataset, observation, "aeff-max")
        if self.irfs == "DL3":
            self._need_observation(observation, "aeff-max with irfs='DL3'")
            offset = observation.pointing.separation(position).deg
            axis = observation.aeff.axes["energy_true"]
            energy = axis.edges.to_value("TeV")
            return energy, observation.aeff.evaluate(energy_true=energy, offset=offset).to_value("cm2")
        exposure = _at_position(dataset.data["exposure"], position)
        livetime = dataset.livetime
        if livetime <= 0:
            raise ValueError(f"dataset {dataset.name!r}: aeff-max needs a positive livetime, got {livetime} s")
        energy = MapAxis.from_coords(exposure, "energy_true").center.to_value("TeV")
        factor = u.Unit(exposure.attrs.get("units", "cm2 s") or "cm2 s").to("cm2 s")
        return energy, exposure.values * factor / livetime

    def make_mask_energy_aeff_max(self, dataset, observation=None) -> xr.DataArray:
        """Reco bins above the true energy where the effective area reaches ``aeff_percent`` % of its maximum."""
        energy, aeff = self._effective_area(dataset, observation)
        axis = _energy_axis(dataset)
        if not np.any(aeff > 0):
            log.warning("dataset %r: effective area is zero everywhere; aeff-max masks every bin", dataset.name)
            return xr.zeros_like(energy_mask(axis))
        threshold = self.aeff_percent / 100 * aeff.max()
        if self.irfs == "DL3":
            energy_min = energy[aeff > threshold].min()
        else:
            start = int(np.flatnonzero(aeff > 0)[0])
            crossing = _loglog_crossing(energy, aeff, threshold, start)
            energy_min = energy[start] if crossing is None else crossing
        return energy_mask(axis, energy_min=energy_min)

    def _edisp_kernel(self, dataset, observation):
        position = self._position(dataset, observation, "edisp-bias")
        if self.irfs == "DL3":
            self._need_observation(observation, "edisp-bias with irfs='DL3'")
            offset = observation.pointing.separation(position).deg
            true_axis = MapAxis.from_coords(dataset.data, "energy_true")
            return observation.edisp.to_edisp_kernel(offset, true_axis, _energy_axis(dataset))
        edisp = _var(dataset, "edisp")
        if edisp is None:
            raise ValueError(f"dataset {dataset.name!r}: edisp-bias needs an 'edisp' variable (or irfs='DL3')")
        if {"y_irf", "x_irf"} <= set(edisp.dims):
            edisp = _at_position(edisp, position, spatial=("y_irf", "x_irf"))
        if "energy" not in edisp.dims:
            raise ValueError(f"dataset {dataset.name!r}: edisp-bias needs a reco-energy kernel, edisp has dims {edisp.dims}")
        return edisp.transpose("energy_true", "energy")

    def make_mask_energy_edisp_bias(self, dataset, observation=None) -> xr.DataArray:
        """Reco bins above the energy where the energy bias drops below ``bias_percent`` %."""
        kernel = self._edisp_kernel(dataset, observation)
        axis = _energy_axis(dataset)
        e_true = MapAxis.from_coords(kernel, "energy_true").center.to_value("TeV")
        e_reco = MapAxis.from_coords(kernel, "energy").center.to_value("TeV")
        values = kernel.values
        norm = values.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = (values * e_reco[None, :]).sum(axis=1) / norm
            bias = np.where(norm > 0, mean / e_true - 1, np.nan)
        if not np.any(np.isfinite(bias)):
            log.warning("dataset %r: energy dispersion is empty; edisp-bias masks every bin", dataset.name)
            return xr.zeros_like(energy_mask(axis))
        target = self.bias_percent / 100
        start = int(np.nanargmax(bias))
        crossing = _linlog_crossing(e_true, bias, target, start)
        energy_true_min = e_true[start] if crossing is None else crossing
        return energy_mask(axis, energy_min=energy_true_min * (1 + target))

    @staticmethod
    def make_mask_energy_bkg_peak(dataset) -> xr.DataArray:
        """Reco bins above the peak of the background spectrum (summed over the sky)."""
        background = _background(dataset)
        if background is None:
            raise ValueError(f"dataset {dataset.name!r}: bkg-peak needs a background (or OFF counts)")
        spectrum = background.sum([d for d in background.dims if d != "energy"])
        axis = _energy_axis(dataset)
        peak = int(np.argmax(spectrum.values))
        return energy_mask(axis, energy_min=axis.center[peak])

    # ---- the verb -----------------------------------------------------------------
    def run(self, dataset, observation=None):
        """Return a copy of ``dataset`` with its ``mask_safe`` recomputed.

        The mask starts all True (the previous ``mask_safe`` is replaced, so
        running twice gives the same result) and each method is combined
        with "and".

        Parameters
        ----------
        dataset : `xgamma.datasets.SpectrumDataset`, `SpectrumDatasetOnOff` or `MapDataset`
            Dataset with ``counts`` (dims ``energy`` or ``energy, y, x``).
        observation : `xgamma.data.Observation`, optional
            Needed for ``aeff-default``, ``offset-max``, ``fixed_offset`` and
            ``irfs="DL3"``.

        Returns
        -------
        Dataset of the same type
        """
        methods = self._methods()
        template = dataset.data["mask_safe"] if "mask_safe" in dataset.data else dataset.data["counts"]
        # combined in NumPy (parts matched to the template by dim name): xarray's per-operation cost dominates here
        mask = np.ones(template.shape, dtype=bool)
        stored_background = _var(dataset, "background")
        if stored_background is not None and bool(np.any(stored_background.values)):
            background = _on_dims_of(stored_background, template)
            mask &= np.isfinite(background) & (background > 0)
        acceptance_off = _var(dataset, "acceptance_off")
        if acceptance_off is not None:
            mask &= _on_dims_of(acceptance_off, template) > 0
        makers = {
            "offset-max": lambda: self.make_mask_offset_max(dataset, observation),
            "aeff-default": lambda: self.make_mask_energy_aeff_default(dataset, observation),
            "aeff-max": lambda: self.make_mask_energy_aeff_max(dataset, observation),
            "edisp-bias": lambda: self.make_mask_energy_edisp_bias(dataset, observation),
            "bkg-peak": lambda: self.make_mask_energy_bkg_peak(dataset),
        }
        for method in methods:
            mask &= _on_dims_of(makers[method](), template)
        if "mask_safe" in dataset.data:
            data = with_values(dataset.data, {"mask_safe": mask})
        else:
            data = dataset.data.copy()
            data["mask_safe"] = template.copy(data=mask)
        data["mask_safe"].attrs = dict(template.attrs, units="")
        return type(dataset)(data)


def _on_dims_of(part: xr.DataArray, template: xr.DataArray) -> np.ndarray:
    """Values of ``part`` ordered and shaped to broadcast against ``template`` (dims matched by name).

    Raises
    ------
    ValueError
        If ``part`` has a dim the template lacks, or another size on a shared dim.
    """
    extra = [d for d in part.dims if d not in template.dims]
    if extra:
        raise ValueError(f"safe mask part has dims {extra} that mask_safe {template.dims} lacks")
    values = part.transpose(*[d for d in template.dims if d in part.dims]).values
    shape = [template.sizes[d] if d in part.dims else 1 for d in template.dims]
    if values.size != int(np.prod(shape)):
        raise ValueError(f"safe mask part of sizes {dict(part.sizes)} does not match mask_safe {dict(template.sizes)}")
    return values.reshape(shape)


def _energy_axis(dataset) -> MapAxis:
    return MapAxis.from_coords(dataset.data, "energy")


def _background(dataset):
    background = getattr(dataset, "background", None)
    if isinstance(background, xr.DataArray):
        return background
    return _var(dataset, "background")
