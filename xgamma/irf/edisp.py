"""Energy dispersion versus true energy, migration and offset (GADF ``EDISP_2D``)."""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from ..axes import MapAxis
from ..units import quantity, to_value
from .aeff import _given
from .core import IRF

__all__ = ["EnergyDispersion2D"]

log = logging.getLogger(__name__)

#: Largest excess of the migra integral over 1 accepted as a probability
#: density: float32 tables on finite migra bins reach ~1.007 in H.E.S.S. DR1,
#: while the CTA files that are not densities are off by orders of magnitude.
_DENSITY_TOLERANCE = 0.02


class EnergyDispersion2D(IRF):
    """Probability density of the migration ``mu = E_reco / E_true``.

    ``data`` holds dP/dmu (dimensionless) with dims ``energy_true``,
    ``migra``, ``offset``. Interpolation is log in true energy and linear in
    migra, offset and density; 0 outside the table (outside the migra range
    no event migrates).

    Not every file stores a normalised density: HESS and MAGIC files do, the
    CTA-1DC file stores unnormalised values (integrals up to ~3e3) and Prod5
    stores probabilities per migra bin (integral 0.01 with 0.01-wide bins).
    ``data`` keeps the file values; reading such a file logs a warning,
    `normalize` returns a normalised copy, and `to_edisp_kernel` normalises by
    default (as Gammapy does when it builds energy-dispersion maps).

    Parameters
    ----------
    data : `xarray.DataArray`
        Dims ``energy_true``, ``migra``, ``offset``.
    """

    tag = "edisp_2d"
    axis_names = ("energy_true", "migra", "offset")
    gadf_axes = {"ENERG": "energy_true", "MIGRA": "migra", "THETA": "offset"}
    data_column = ("MATRIX",)
    default_unit = ""
    output_unit = ""

    def evaluate(self, energy_true=None, migra=None, offset=None):
        """Migration density dP/dmu.

        Parameters
        ----------
        energy_true : `~astropy.units.Quantity`, str, float or array-like
            True energy (plain numbers in TeV).
        migra : float or array-like
            Migration ``E_reco / E_true`` (dimensionless).
        offset : `~astropy.units.Quantity`, str, float or array-like
            FoV offset (plain numbers in deg); may be omitted for a
            single-offset table.

        Returns
        -------
        `~astropy.units.Quantity`
            Dimensionless density per unit migra.
        """
        return super().evaluate(**_given(energy_true=energy_true, migra=migra, offset=offset))

    @classmethod
    def from_hdu(cls, hdu_data):
        """Build from an HDU; warns when MATRIX is not a density in migra."""
        edisp = super().from_hdu(hdu_data)
        worst = float(np.nanmax(edisp._integral_migra_values()))
        if worst > 1 + _DENSITY_TOLERANCE or 0 < worst < 0.5:
            log.warning(
                "%s[%s]: MATRIX integrates over migra to up to %.4g, not 1: not a probability density; "
                "to_edisp_kernel normalises it (see EnergyDispersion2D.normalize)",
                hdu_data.filename,
                hdu_data.name,
                worst,
            )
        return edisp

    def _normalized(self):
        if getattr(self, "_normalized_copy", None) is None:
            self._normalized_copy = self if self._attrs.get("normalized") else self.normalize()
        return self._normalized_copy

    def integral_migra(self) -> xr.DataArray:
        """Integral of the density over the tabulated migra range at each node.

        Returns
        -------
        `xarray.DataArray`
            Dims (``energy_true``, ``offset``), dimensionless; <= 1 for a
            proper density.
        """
        integral = self._data.isel(migra=0, drop=True).copy(data=self._integral_migra_values())
        integral.attrs = {}
        return integral

    def _integral_migra_values(self):
        """`integral_migra` as a plain array (energy_true, offset); NaN values count as 0."""
        width = self.axes["migra"].bin_width.value
        return np.nansum(self._values * width[:, np.newaxis], axis=1)

    def normalize(self) -> "EnergyDispersion2D":
        """Copy whose density integrates to 1 over migra at every non-empty node.

        Returns
        -------
        `EnergyDispersion2D`
            Nodes whose integral is 0 stay 0 (as do NaN values); attrs gain
            ``normalized = True``.
        """
        integral = self._integral_migra_values()[:, np.newaxis, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            values = self._values / np.where(integral > 0, integral, np.nan)
        values[np.isnan(values)] = 0.0
        return type(self)._from_parts(values, dict(self._attrs, normalized=True), self.axes)

    def _migra_cdf(self, energy_true, offset):
        """Cumulative probability at the migra edges, shape ``energy_true.shape + (nmigra + 1,)``.

        The density is constant within each migra bin (its value at the bin
        centre), so the cumulative integral is exact at the edges and linear
        in between.
        """
        migra = self.axes["migra"]
        if migra.is_nodes or not migra.is_contiguous:
            raise ValueError("EnergyDispersion2D: the kernel needs a contiguous, binned migra axis")
        centers = migra.center.value
        e = np.asarray(energy_true, dtype=float)[..., np.newaxis]
        pdf = self._evaluate(np.broadcast_arrays(e, centers, np.asarray(offset, dtype=float)))
        cdf = np.cumsum(pdf * migra.bin_width.value, axis=-1)
        return migra.edges.value, np.concatenate([np.zeros(cdf.shape[:-1] + (1,)), cdf], axis=-1)

    def to_edisp_kernel(
        self, offset, energy_true_axis: MapAxis, energy_axis: MapAxis, normalize: bool = True
    ) -> xr.DataArray:
        """Migration matrix from true-energy bins to reconstructed-energy bins.

        Entry ``(i, j)`` is the probability that an event of true energy
        equal to the centre of true bin ``i`` is reconstructed in bin ``j``:
        the migra density integrated between ``E_j,min / E_i`` and
        ``E_j,max / E_i`` (cumulative integral over the migra bins,
        interpolated linearly within a bin; vectorised over all entries).

        Parameters
        ----------
        offset : `~astropy.units.Quantity`, str or float
            FoV offset (plain numbers in deg).
        energy_true_axis : `~xgamma.axes.MapAxis`
            True-energy axis (name ``energy_true``).
        energy_axis : `~xgamma.axes.MapAxis`
            Reconstructed-energy axis (name ``energy``) with contiguous edges.
        normalize : bool
            Normalise the density over migra at each table node first
            (`normalize`); default True. False uses the file values as they are.

        Returns
        -------
        `xarray.DataArray`
            Dims (``energy_true``, ``energy``), dimensionless; each row sums
            to the probability of landing inside the reco axis (<= 1).
        """
        offset = to_value(quantity(offset, "deg"), "deg", "offset")
        e_true = energy_true_axis.center.to_value("TeV")
        e_reco = energy_axis.edges.to_value("TeV")
        source = self._normalized() if normalize else self
        edges, cdf = source._migra_cdf(e_true, offset)
        mu = e_reco[np.newaxis, :] / e_true[:, np.newaxis]  # (ntrue, nreco + 1)
        # fractional position of every mu on the migra edges, then gather the row's cdf
        pos = np.interp(mu, edges, np.arange(edges.size, dtype=float))
        low = np.clip(np.floor(pos).astype(int), 0, edges.size - 2)
        frac = pos - low
        cdf_lo = np.take_along_axis(cdf, low, axis=-1)
        cdf_hi = np.take_along_axis(cdf, low + 1, axis=-1)
        cdf_mu = cdf_lo + frac * (cdf_hi - cdf_lo)
        kernel = np.clip(np.diff(cdf_mu, axis=-1), 0.0, None)
        coords = energy_true_axis.copy(name="energy_true").to_coords() | energy_axis.copy(name="energy").to_coords()
        attrs = {"units": "", "offset": float(offset), "offset_units": "deg"}
        return xr.DataArray(kernel, dims=("energy_true", "energy"), coords=coords, attrs=attrs)
