"""Absorption of gamma rays on the extragalactic background light (EBL).

`EBLAbsorptionNormSpectralModel` is a dimensionless factor
``exp(-alpha_norm * tau(E, z))`` read from an optical-depth table; use it as
``PowerLawSpectralModel() * EBLAbsorptionNormSpectralModel.read_builtin("dominguez", redshift=0.1)``.

Tables are XSPEC multiplicative table models (OGIP): ``PARAMETERS`` holds the
redshift nodes, ``ENERGIES`` the energy bins (``ENERG_LO``, ``ENERG_HI``, keV
unless the columns say otherwise) and ``SPECTRA`` one row ``INTPSPEC`` of
absorption factors ``exp(-tau)`` per redshift (``PARAMVAL``).
"""

from __future__ import annotations

import os
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits

from ..units import to_value
from .core import ModelError
from .parameter import Parameter
from .spectral import ENERGY_UNIT, SpectralModel
from .spectral_table import _node_spacing, _quantity_dict, _quantity_entry

__all__ = ["EBL_DATA", "EBLAbsorptionNormSpectralModel"]

#: File of each built-in EBL model, in the ``ebl`` folder of the data directory.
EBL_DATA = {
    "dominguez": "ebl_dominguez11.fits.gz",
    "franceschini": "ebl_franceschini.fits.gz",
}

# absorption factors of exactly 0 become this, so that tau stays finite (exp(-tau) underflows to 0 anyway)
_SMALLEST_ABSORPTION = np.finfo(float).tiny


def _read_xspec_table(filename):
    """Energies (TeV, geometric bin centres), redshift nodes and absorption factors of an XSPEC table."""
    with fits.open(filename) as hdul:
        try:
            redshift = np.asarray(hdul["PARAMETERS"].data["VALUE"][0], dtype=float)
            bins = hdul["ENERGIES"]
            spectra = hdul["SPECTRA"].data
        except KeyError as err:
            raise ModelError(f"{filename}: not an XSPEC table model ({err})") from err
        unit = bins.columns["ENERG_LO"].unit or "keV"  # the OGIP default
        energy_lo = u.Quantity(bins.data["ENERG_LO"], unit).to_value(ENERGY_UNIT)
        energy_hi = u.Quantity(bins.data["ENERG_HI"], unit).to_value(ENERGY_UNIT)
        absorption = np.asarray(spectra["INTPSPEC"], dtype=float)
        row_redshift = np.asarray(spectra["PARAMVAL"], dtype=float).ravel()
    if not np.allclose(row_redshift, redshift):
        raise ModelError(f"{filename}: SPECTRA rows (PARAMVAL) do not follow the PARAMETERS redshift nodes")
    return np.sqrt(energy_lo * energy_hi), redshift, absorption


def _default_data_dir() -> Path:
    return Path(os.environ.get("XGAMMA_DATA", "."))


class EBLAbsorptionNormSpectralModel(SpectralModel):
    """EBL absorption ``exp(-alpha_norm * tau(E, redshift))`` from an optical-depth table.

    Parameters
    ----------
    energy : `~astropy.units.Quantity` or array-like
        Energy nodes (plain numbers are TeV), increasing.
    param : array-like
        Redshift nodes, increasing.
    data : array-like, shape (len(param), len(energy))
        Absorption factors ``exp(-tau)`` at the nodes.
    redshift : float
        Source redshift (frozen; bounded by the table's range).
    alpha_norm : float
        Scale of the optical depth (frozen; 1 is the model as tabulated).
    filename : str, optional
        Table file, written to YAML instead of the table.
    reference : str, optional
        Built-in model name (`EBL_DATA`), written to YAML.

    Notes
    -----
    ``tau`` is interpolated linearly in redshift and in ``ln E`` (that is,
    ``ln exp(-tau)`` is linear, as absorption is multiplicative). A row
    ``tau = 0`` at redshift 0 is added when the table starts above 0, so that
    a nearby source is not absorbed. Outside the table's energy range the edge
    values are kept (``tau`` is negligible below its start, and saturated above
    its end). Redshifts outside the table raise `ValueError`.
    """

    tag = ["EBLAbsorptionNormSpectralModel", "ebl-norm"]
    _dnde_unit = ""
    alpha_norm = Parameter("alpha_norm", 1.0, frozen=True)
    redshift = Parameter("redshift", 0.1, frozen=True)

    def __init__(self, energy, param, data, redshift=0.1, alpha_norm=1.0, filename=None, reference=None):
        super().__init__(redshift=redshift, alpha_norm=alpha_norm)
        self.energy = np.asarray(to_value(energy, ENERGY_UNIT, "energy"), dtype=float)
        self.param = np.asarray(param, dtype=float)
        self.data = np.asarray(data, dtype=float)
        if self.data.shape != (self.param.size, self.energy.size):
            raise ValueError(
                f"EBL table data has shape {self.data.shape}; expected (redshift, energy) = "
                f"({self.param.size}, {self.energy.size})"
            )
        self.filename = None if filename is None else str(filename)
        self.reference = reference
        self._tau_redshift, self._tau = self._optical_depth_grid()
        self.redshift.min, self.redshift.max = 0.0, float(self._tau_redshift[-1])

    def _optical_depth_grid(self):
        tau = -np.log(np.maximum(self.data, _SMALLEST_ABSORPTION))
        if self.param[0] > 0:
            return np.concatenate([[0.0], self.param]), np.vstack([np.zeros(self.energy.size), tau])
        return self.param, tau

    def optical_depth(self, energy, redshift):
        """``tau`` at ``energy`` (TeV floats) and one ``redshift``, interpolated in (ln E, z)."""
        nodes = self._tau_redshift
        if not nodes[0] <= redshift <= nodes[-1]:
            raise ValueError(f"redshift {redshift} outside the EBL table's range [{nodes[0]}, {nodes[-1]}]")
        upper = int(np.clip(np.searchsorted(nodes, redshift), 1, nodes.size - 1))
        weight = (redshift - nodes[upper - 1]) / (nodes[upper] - nodes[upper - 1])
        row = (1 - weight) * self._tau[upper - 1] + weight * self._tau[upper]
        log_energy = np.log(np.asarray(energy, dtype=float))
        return np.interp(log_energy, np.log(self.energy), row)

    def evaluate(self, energy, alpha_norm, redshift):
        return np.exp(-alpha_norm * self.optical_depth(energy, redshift))

    @property
    def integration_step(self) -> float:
        return _node_spacing(self.energy)

    @classmethod
    def read(cls, filename, redshift=0.1, alpha_norm=1.0, reference=None):
        """Read an XSPEC table model of absorption factors (see the module docstring)."""
        energy, param, data = _read_xspec_table(filename)
        return cls(energy, param, data, redshift, alpha_norm, filename=filename, reference=reference)

    @classmethod
    def read_builtin(cls, reference="dominguez", redshift=0.1, alpha_norm=1.0, data_dir=None):
        """Read a built-in EBL model by name (`EBL_DATA`).

        Parameters
        ----------
        reference : str
            ``"dominguez"`` (Dominguez et al. 2011) or ``"franceschini"`` (Franceschini et al. 2008).
        data_dir : str or Path, optional
            Folder holding ``ebl/``; default ``$XGAMMA_DATA`` (else the working directory).
        """
        if reference not in EBL_DATA:
            raise ModelError(f"unknown EBL model {reference!r}; built-in models: {sorted(EBL_DATA)}")
        folder = Path(data_dir) if data_dir is not None else _default_data_dir()
        return cls.read(folder / "ebl" / EBL_DATA[reference], redshift, alpha_norm, reference=reference)

    def to_dict(self, full_output=False):
        data = super().to_dict(full_output)
        if self.reference is not None:
            data["reference"] = self.reference
        if self.filename is not None:
            data["filename"] = self.filename
        else:
            data["energy"] = _quantity_dict(self.energy, ENERGY_UNIT)
            data["param"] = _quantity_dict(self.param, "")
            data["values"] = _quantity_dict(self.data, "")
        return data

    @classmethod
    def _from_dict(cls, data):
        if "filename" in data:
            model = cls.read(data["filename"], reference=data.get("reference"))
        elif "reference" in data and "energy" not in data:
            model = cls.read_builtin(data["reference"])
        else:
            energy = _quantity_entry(data, "energy", "EBLAbsorptionNormSpectralModel")
            param = _quantity_entry(data, "param", "EBLAbsorptionNormSpectralModel")
            values = _quantity_entry(data, "values", "EBLAbsorptionNormSpectralModel")
            model = cls(energy, param.value, values.value, reference=data.get("reference"))
        model._update_parameters(data.get("parameters", []))
        return model
