"""Point spread functions: shared behaviour and the tabulated form (GADF ``PSF_TABLE``).

Which class: `PSFTable` for ``RPSF`` tables (HESS); `PSF3Gauss` and
`PSFKing` (in `xgamma.irf.psf_parametric`) for analytic fits (CTA). All
share `containment` and `containment_radius`.

Solid-angle convention: the small-angle (flat-sky) measure
``dOmega = 2 pi r dr`` with ``r`` in radians, used identically for tables
and analytic forms. At PSF scales (< 1 deg) it differs from the sphere's
``2 pi sin(r) dr`` by less than 1e-4 relative.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np

from ..units import quantity, to_value
from .core import IRF, interpolate

__all__ = ["PSFTable"]

_DEG2 = np.deg2rad(1.0) ** 2  # sr per deg2 in the small-angle measure


class _PSF(IRF):
    """Shared PSF behaviour; subclasses implement `_containment`."""

    output_unit = "sr-1"

    def _energy_offset(self, energy_true, offset):
        coords = {"energy_true": energy_true, "offset": offset}
        coords = {k: v for k, v in coords.items() if v is not None}
        return self._parse_coords(coords, names=("energy_true", "offset"))

    def containment(self, rad, energy_true=None, offset=None):
        """Fraction of events reconstructed within ``rad`` of the true position.

        ``C(R) = integral_0^R 2 pi r dP/dOmega dr`` (small-angle measure, see
        the module docstring).

        Parameters
        ----------
        rad : `~astropy.units.Quantity`, str, float or array-like
            Radius (plain numbers in deg).
        energy_true : `~astropy.units.Quantity`, str, float or array-like
            True energy (plain numbers in TeV).
        offset : `~astropy.units.Quantity`, str, float or array-like
            FoV offset (plain numbers in deg).

        Returns
        -------
        `numpy.ndarray`
            Dimensionless fraction, broadcast shape of the inputs; 0 outside
            the energy/offset range of the table.
        """
        rad = to_value(quantity(rad, "deg"), "deg", "rad")
        energy, off = self._energy_offset(energy_true, offset)
        rad, energy, off = np.broadcast_arrays(np.asarray(rad, dtype=float), energy, off)
        return self._containment(rad, energy, off)

    def containment_radius(self, fraction, energy_true=None, offset=None):
        """Radius containing ``fraction`` of the events.

        Parameters
        ----------
        fraction : float or array-like
            Containment fraction in (0, 1).
        energy_true : `~astropy.units.Quantity`, str, float or array-like
            True energy (plain numbers in TeV).
        offset : `~astropy.units.Quantity`, str, float or array-like
            FoV offset (plain numbers in deg).

        Returns
        -------
        `~astropy.units.Quantity`
            Radius in deg; NaN where the PSF never reaches ``fraction`` (for
            example outside the table, or beyond the tabulated radii).
        """
        fraction = np.asarray(fraction, dtype=float)
        energy, off = self._energy_offset(energy_true, offset)
        fraction, energy, off = np.broadcast_arrays(fraction, energy, off)
        return u.Quantity(self._containment_radius(fraction, energy, off), "deg")

    def _containment_radius(self, fraction, energy, offset):
        """Vectorised bisection on `_containment` (subclasses may do better)."""
        lo = np.zeros(fraction.shape)
        hi = np.full(fraction.shape, self._max_radius())
        reached = self._containment(hi, energy, offset) >= fraction
        for _ in range(60):  # iterations, not points: halves every interval at once
            mid = 0.5 * (lo + hi)
            below = self._containment(mid, energy, offset) < fraction
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return np.where(reached, 0.5 * (lo + hi), np.nan)

    def _max_radius(self) -> float:
        return 20.0


class PSFTable(_PSF):
    """Tabulated radial PSF dP/dOmega(E_true, offset, rad) in sr-1.

    Interpolation is log in true energy and linear in offset, rad and
    density; 0 outside the table. For containment the density is taken as
    constant within each rad bin (its tabulated value), so the integral over
    the table is the exact sum ``sum_k RPSF_k * pi (r_max,k**2 - r_min,k**2)``
    and the containment is linear in ``r**2`` within a bin.

    Parameters
    ----------
    data : `xarray.DataArray`
        Dims ``energy_true``, ``offset``, ``rad``.
    """

    tag = "psf_table"
    axis_names = ("energy_true", "offset", "rad")
    gadf_axes = {"ENERG": "energy_true", "THETA": "offset", "RAD": "rad"}
    data_column = ("RPSF",)
    default_unit = "sr-1"

    def evaluate(self, energy_true=None, offset=None, rad=None):
        """PSF density.

        Parameters
        ----------
        energy_true : `~astropy.units.Quantity`, str, float or array-like
            True energy (plain numbers in TeV).
        offset : `~astropy.units.Quantity`, str, float or array-like
            FoV offset (plain numbers in deg).
        rad : `~astropy.units.Quantity`, str, float or array-like
            Distance from the true position (plain numbers in deg).

        Returns
        -------
        `~astropy.units.Quantity`
            dP/dOmega in sr-1.
        """
        coords = {"energy_true": energy_true, "offset": offset, "rad": rad}
        return super().evaluate(**{k: v for k, v in coords.items() if v is not None})

    def _profiles(self, energy, offset):
        """Density (sr-1) at every rad bin, shape ``energy.shape + (nrad,)``."""
        grids = self._grid()[:2]
        return interpolate(grids, self._values, [energy, offset]) * self._values_factor()

    def _annuli(self):
        rad = self.axes["rad"]
        if rad.is_nodes:
            raise ValueError("PSFTable: containment needs a binned rad axis")
        lo2 = rad.edges_min.to_value("deg") ** 2
        hi2 = rad.edges_max.to_value("deg") ** 2
        return lo2, hi2

    def _containment(self, rad, energy, offset):
        lo2, hi2 = self._annuli()
        density = self._profiles(energy, offset)
        r2 = (rad**2)[..., np.newaxis]
        covered = np.clip(r2 - lo2, 0.0, hi2 - lo2)
        return np.sum(density * np.pi * covered * _DEG2, axis=-1)

    def _containment_radius(self, fraction, energy, offset):
        lo2, hi2 = self._annuli()
        density = self._profiles(energy, offset)
        per_bin = density * np.pi * (hi2 - lo2) * _DEG2
        cumulative = np.cumsum(per_bin, axis=-1)
        k = np.sum(cumulative < fraction[..., np.newaxis], axis=-1)
        reached = k < lo2.size
        k = np.minimum(k, lo2.size - 1)
        before = np.take_along_axis(cumulative - per_bin, k[..., np.newaxis], axis=-1)[..., 0]
        dens = np.take_along_axis(density, k[..., np.newaxis], axis=-1)[..., 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = lo2[k] + (fraction - before) / (dens * np.pi * _DEG2)
        return np.where(reached & (fraction > 0), np.sqrt(r2), np.where(fraction == 0, 0.0, np.nan))
