"""`FluxPoints`: a measured spectrum (SED) as a labelled `xarray.Dataset`.

Flux points are read from and written to the GADF "SED" table format (FITS
or ECSV), in any of the SED types ``dnde``, ``e2dnde``, ``flux`` and
``eflux``; Gammapy's ``likelihood`` tables (``norm`` columns with a
``ref_dnde`` column) are read too.

Layout
------
One dimension, ``energy`` (one entry per point), with the coordinates
``e_ref`` (where differential values apply) and, when known, ``e_min`` and
``e_max`` (the bin edges), all in TeV. The values are always held as
differential fluxes:

=============  ==========================================================
variable       meaning (units)
=============  ==========================================================
dnde           differential flux at ``e_ref`` (cm-2 s-1 TeV-1)
dnde_err       symmetric 1-sigma error (cm-2 s-1 TeV-1), optional
dnde_errp      upward 1-sigma error (cm-2 s-1 TeV-1), optional
dnde_errn      downward 1-sigma error, a positive number (cm-2 s-1 TeV-1), optional
dnde_ul        upper limit (cm-2 s-1 TeV-1), optional; confidence in ``attrs["ul_conf"]``
is_ul          whether the point is to be read as an upper limit (bool)
ts, sqrt_ts    test statistic and its signed square root, optional
(others)       any other column of the table (``npred``, ``counts`` ...), unchanged
=============  ==========================================================

Other SED types are views of the same numbers (`FluxPoints.sed`): the
factor from ``dnde`` to ``e2dnde`` is ``e_ref**2``; to ``flux`` (``eflux``)
it is the reference spectral model's integral (energy flux) over the bin
divided by its ``dnde`` at ``e_ref``. Errors and upper limits scale with the
same per-point factor. Only the shape of the reference model matters for
these conversions, so the default (a power law of index 2) is the usual
assumption of a flat SED; pass the model the points were computed with when
it is known.

The estimators that compute flux points from datasets are a separate step;
`xgamma.datasets.flux_points.FluxPointsDataset` fits models to flux points.
"""

from __future__ import annotations

import io
import json
import os

import astropy.units as u
import fsspec
import numpy as np
import xarray as xr
from astropy.io import fits
from astropy.table import Table

from ..modeling.spectral import PowerLawSpectralModel, SpectralModel
from ..units import CANONICAL_UNITS, unit_string

__all__ = ["SED_TYPES", "FluxPoints"]

#: SED types that can be read, written and viewed (GADF names).
SED_TYPES = ("dnde", "e2dnde", "flux", "eflux")

_SED_UNITS = {
    "dnde": u.Unit("cm-2 s-1 TeV-1"),
    "e2dnde": u.Unit("TeV cm-2 s-1"),
    "flux": u.Unit("cm-2 s-1"),
    "eflux": u.Unit("TeV cm-2 s-1"),
    "norm": u.dimensionless_unscaled,
}
#: The value and its error and upper-limit columns share these suffixes.
_SUFFIXES = ("", "_err", "_errp", "_errn", "_ul")
_ENERGY_COLUMNS = ("e_ref", "e_min", "e_max")
_ENERGY_UNIT = CANONICAL_UNITS["energy"]


class FluxPoints:
    """Flux points: a spectrum measured in energy bins.

    Parameters
    ----------
    data : `xarray.Dataset`
        Dimension ``energy``, coordinate ``e_ref`` (TeV; ``e_min`` and
        ``e_max`` optional) and at least the variable ``dnde``
        (cm-2 s-1 TeV-1), laid out as described in the module docstring.
    reference_model : `~xgamma.modeling.spectral.SpectralModel`, optional
        Spectral shape used to convert between SED types; default a power
        law of index 2. Stored (as a JSON dict) in ``data.attrs``.

    Raises
    ------
    ValueError
        If ``data`` has no ``energy`` dimension, no ``e_ref`` or no ``dnde``.
    astropy.units.UnitConversionError
        If the ``units`` attr of an energy or ``dnde`` variable has the wrong
        physical type (other units of the right type are converted; a missing
        attr means TeV, respectively cm-2 s-1 TeV-1).

    Examples
    --------
    >>> points = FluxPoints.read("sed.fits")  # doctest: +SKIP
    >>> points.e2dnde.isel(energy=0)  # doctest: +SKIP
    """

    def __init__(self, data: xr.Dataset, reference_model: SpectralModel | None = None):
        if not isinstance(data, xr.Dataset):
            raise TypeError(f"FluxPoints wraps an xarray.Dataset, got {type(data).__name__}")
        problems = [
            text for missing, text in (
                ("energy" not in data.dims, "the dimension 'energy'"),
                ("e_ref" not in data.coords, "the coordinate 'e_ref'"),
                ("dnde" not in data.data_vars, "the variable 'dnde'"),
            ) if missing
        ]
        if problems:
            raise ValueError(
                f"FluxPoints needs {', '.join(problems)}; got dims {dict(data.sizes)}, "
                f"coords {list(data.coords)}, variables {list(data.data_vars)}"
            )
        data = _canonical_units(data)
        if "is_ul" not in data:
            data["is_ul"] = xr.zeros_like(data["dnde"], dtype=bool).assign_attrs(units="")
        if reference_model is not None:
            _check_reference_model(reference_model)
            data.attrs["reference_model"] = json.dumps(reference_model.to_dict())
        data.attrs.setdefault("sed_type_init", "dnde")
        self._data = data

    # --- access ---------------------------------------------------------------------
    @property
    def data(self) -> xr.Dataset:
        """The wrapped `xarray.Dataset` (differential fluxes)."""
        return self._data

    @property
    def reference_model(self) -> SpectralModel:
        """The spectral shape used for SED-type conversions (default: power law of index 2)."""
        stored = self._data.attrs.get("reference_model")
        if stored is None:
            return PowerLawSpectralModel(index=2.0)
        return SpectralModel.from_dict(json.loads(stored))

    @property
    def sed_type_init(self) -> str:
        """The SED type the points were given in; the default type of `write` and `to_table`."""
        return str(self._data.attrs["sed_type_init"])

    @property
    def e_ref(self) -> xr.DataArray:
        """Reference energies (TeV)."""
        return self._data["e_ref"]

    @property
    def is_ul(self) -> xr.DataArray:
        """True for the points to be read as upper limits."""
        return self._data["is_ul"]

    @property
    def dnde(self) -> xr.DataArray:
        """Differential flux at ``e_ref`` (cm-2 s-1 TeV-1)."""
        return self._data["dnde"]

    @property
    def e2dnde(self) -> xr.DataArray:
        """``e_ref**2 * dnde`` (TeV cm-2 s-1)."""
        return self.sed("e2dnde")["e2dnde"]

    @property
    def flux(self) -> xr.DataArray:
        """Integral flux over ``[e_min, e_max]`` (cm-2 s-1), assuming the reference model's shape."""
        return self.sed("flux")["flux"]

    @property
    def eflux(self) -> xr.DataArray:
        """Energy flux over ``[e_min, e_max]`` (TeV cm-2 s-1), assuming the reference model's shape."""
        return self.sed("eflux")["eflux"]

    def __len__(self):
        return self._data.sizes["energy"]

    # --- SED types ---------------------------------------------------------------------
    def sed(self, sed_type: str = "dnde") -> xr.Dataset:
        """The points in one SED type: values, errors and upper limits converted together.

        Parameters
        ----------
        sed_type : {"dnde", "e2dnde", "flux", "eflux", "norm"}
            ``norm`` is the ratio to the reference model (dimensionless).

        Returns
        -------
        `xarray.Dataset`
            The ``dnde`` family renamed to ``{sed_type}``, ``{sed_type}_err`` ...
            and scaled (units in attrs: cm-2 s-1 TeV-1, TeV cm-2 s-1,
            cm-2 s-1, TeV cm-2 s-1 or dimensionless); other variables unchanged.

        Raises
        ------
        ValueError
            For an unknown type, or ``flux``/``eflux`` without bin edges.
        """
        factor = _dnde_to(sed_type, self._data, self.reference_model)
        out = self._data.copy()
        for suffix in _SUFFIXES:
            name = f"dnde{suffix}"
            if name in out:
                values = out[name] * factor
                out = out.drop_vars(name)
                out[f"{sed_type}{suffix}"] = values.assign_attrs(units=unit_string(_SED_UNITS[sed_type]))
        out.attrs["sed_type"] = sed_type
        return out

    # --- tables and files ------------------------------------------------------------------
    @classmethod
    def from_table(cls, table: Table, sed_type: str | None = None, reference_model: SpectralModel | None = None):
        """Flux points from a GADF SED table.

        Parameters
        ----------
        table : `~astropy.table.Table`
            One row per point. Energy and flux columns must carry units.
        sed_type : {"dnde", "e2dnde", "flux", "eflux", "likelihood"}, optional
            Default: the ``SED_TYPE`` keyword, else the first of ``dnde``,
            ``e2dnde``, ``flux``, ``eflux`` found as a column.
        reference_model : `~xgamma.modeling.spectral.SpectralModel`, optional
            Spectral shape for the ``flux``/``eflux`` conversions (default:
            power law of index 2; see the module docstring).

        Returns
        -------
        FluxPoints

        Raises
        ------
        ValueError
            If the columns of the SED type are missing, or a needed unit is missing.

        Notes
        -----
        Columns of other normalisation representations (``dnde`` ... in a
        ``flux`` table) are dropped: they follow from the chosen one. Without
        an ``is_ul`` column, a point is an upper limit when its ``{sed_type}_ul``
        is finite (the GADF rule). ``e_ref`` defaults to the geometric bin
        centre ``sqrt(e_min * e_max)``.
        """
        meta = {str(k).upper(): v for k, v in table.meta.items()}
        columns = {name.lower(): name for name in table.colnames}
        sed_type = (sed_type or meta.get("SED_TYPE") or _guess_sed_type(columns)).lower()
        norm_column = "norm" if sed_type == "likelihood" else sed_type
        if sed_type not in SED_TYPES + ("likelihood",):
            raise ValueError(f"unknown SED type {sed_type!r}; expected one of {SED_TYPES + ('likelihood',)}")
        required = {"dnde": ["e_ref"], "e2dnde": ["e_ref"], "likelihood": ["e_ref", "ref_dnde"]}.get(
            sed_type, ["e_min", "e_max"]
        ) + [norm_column]
        missing = [name for name in required if name not in columns]
        if missing:
            raise ValueError(f"an SED table of type {sed_type!r} needs the columns {missing}; it has {table.colnames}")

        energies = {name: _column_values(table, columns[name], _ENERGY_UNIT) for name in _ENERGY_COLUMNS if name in columns}
        if "e_ref" not in energies:
            energies["e_ref"] = np.sqrt(energies["e_min"] * energies["e_max"])
        coords = {name: ("energy", values, {"units": unit_string(_ENERGY_UNIT)}) for name, values in energies.items()}
        data = xr.Dataset(coords=coords)
        data.attrs["sed_type_init"] = sed_type
        if "UL_CONF" in meta:
            data.attrs["ul_conf"] = float(meta["UL_CONF"])

        if sed_type == "likelihood":
            factor = 1 / _column_values(table, columns["ref_dnde"], _SED_UNITS["dnde"])
        else:
            factor = _dnde_to(sed_type, data, reference_model or PowerLawSpectralModel(index=2.0)).values
        unit = _SED_UNITS[norm_column]
        for suffix in _SUFFIXES:
            key = f"{norm_column}{suffix}"
            if key in columns:
                values = _column_values(table, columns[key], unit) / factor
                data[f"dnde{suffix}"] = ("energy", values, {"units": unit_string(_SED_UNITS["dnde"])})

        representations = {f"{kind}{suffix}" for kind in (*SED_TYPES, "norm") for suffix in _SUFFIXES}
        for key, name in columns.items():
            if key in _ENERGY_COLUMNS or key in representations:
                continue
            column = table[name]
            dims = ("energy", *(f"{key}_dim_{i}" for i in range(1, column.ndim)))
            unit = "" if column.unit is None else unit_string(column.unit)
            data[key] = xr.Variable(dims, _plain(column), {"units": unit})
        if "is_ul" in data:
            data["is_ul"] = data["is_ul"].astype(bool)
        if "is_ul" not in data and "dnde_ul" in data:
            data["is_ul"] = np.isfinite(data["dnde_ul"]).assign_attrs(units="")
        return cls(data, reference_model)

    def to_table(self, sed_type: str | None = None) -> Table:
        """The points as a GADF SED table.

        Parameters
        ----------
        sed_type : {"dnde", "e2dnde", "flux", "eflux"}, optional
            Default: `sed_type_init` (``dnde`` for points read as ``likelihood``).

        Returns
        -------
        `~astropy.table.Table`
            Energies in TeV; ``SED_TYPE`` (and ``UL_CONF`` when known) in ``meta``.
        """
        sed_type = _output_sed_type(sed_type, self.sed_type_init)
        data = self.sed(sed_type)
        table = Table(meta={"SED_TYPE": sed_type})
        if "ul_conf" in data.attrs:
            table.meta["UL_CONF"] = data.attrs["ul_conf"]
        for name in [*(c for c in _ENERGY_COLUMNS if c in data.coords), *data.data_vars]:
            variable = data[name].transpose("energy", ...)
            unit = variable.attrs.get("units") or None
            table[name] = u.Quantity(variable.values, unit) if unit else variable.values
        return table

    @classmethod
    def read(cls, path, sed_type: str | None = None, reference_model: SpectralModel | None = None,
             hdu=None, format: str | None = None):
        """Read flux points from a GADF SED file (FITS or ECSV).

        Parameters
        ----------
        path : str or os.PathLike
            Local path or fsspec URL (``.fits``, ``.fits.gz``, ``.fit`` or ``.ecsv``).
        sed_type, reference_model
            See `from_table`.
        hdu : str or int, optional
            FITS table HDU; default the first table.
        format : {"fits", "ecsv"}, optional
            Default from the file name.

        Returns
        -------
        FluxPoints

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            If the format cannot be told from the name, or the table is not an SED.
        """
        path = os.fspath(path)
        format = format or _format_from_name(path)
        with fsspec.open(path, "rb", compression="infer") as handle:
            raw = handle.read()
        if format == "ecsv":
            table = Table.read(raw.decode(), format="ascii.ecsv")
        else:
            with fits.open(io.BytesIO(raw)) as hdus:
                if hdu is None:
                    tables = [h for h in hdus if isinstance(h, fits.BinTableHDU)]
                    if not tables:
                        raise ValueError(f"{path}: no table HDU (HDUs: {[h.name for h in hdus]})")
                    hdu = tables[0].name
                table = Table.read(hdus[hdu])
        try:
            return cls.from_table(table, sed_type=sed_type, reference_model=reference_model)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    def write(self, path, sed_type: str | None = None, overwrite: bool = False, format: str | None = None):
        """Write the points as a GADF SED file.

        Parameters
        ----------
        path : str or os.PathLike
            Local path or fsspec URL; ``.fits``, ``.fits.gz`` or ``.ecsv``.
        sed_type : {"dnde", "e2dnde", "flux", "eflux"}, optional
            Default `sed_type_init`.
        overwrite : bool
            Replace an existing file.
        format : {"fits", "ecsv"}, optional
            Default from the file name.

        Raises
        ------
        FileExistsError
            If the file exists and ``overwrite`` is False.
        """
        path = os.fspath(path)
        format = format or _format_from_name(path)
        fs, target = fsspec.core.url_to_fs(path)
        if fs.exists(target) and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        table = self.to_table(sed_type)
        if format == "ecsv":
            text = io.StringIO()
            table.write(text, format="ascii.ecsv")
            payload = text.getvalue().encode()
        else:
            buffer = io.BytesIO()
            hdu = fits.table_to_hdu(table)
            hdu.name = "FLUX_POINTS"
            fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
            payload = buffer.getvalue()
        with fsspec.open(path, "wb", compression="infer") as handle:
            handle.write(payload)

    def __repr__(self):
        data = self._data
        finite = np.isfinite(data["dnde"].values) & ~data["is_ul"].values
        e_low = data["e_min"] if "e_min" in data.coords else data["e_ref"]
        e_high = data["e_max"] if "e_max" in data.coords else data["e_ref"]
        lines = [
            f"FluxPoints ({len(self)} points, {float(e_low.min()):.4g} - {float(e_high.max()):.4g} TeV)",
            f"  sed_type_init: {self.sed_type_init!r}",
            f"  values: {int(finite.sum())}, upper limits: {int(data['is_ul'].sum())}",
            f"  variables: {', '.join(data.data_vars)}",
            f"  reference model: {type(self.reference_model).__name__}"
            + ("" if "reference_model" in data.attrs else " (default, index 2)"),
        ]
        return "\n".join(lines)


def _check_reference_model(model):
    if not isinstance(model, SpectralModel):
        raise TypeError(f"reference_model must be a SpectralModel, got {type(model).__name__}")
    if model.dnde_unit != _SED_UNITS["dnde"]:
        raise ValueError(f"reference_model must give dnde in cm-2 s-1 TeV-1, got {model.dnde_unit}")


def _canonical_units(data: xr.Dataset) -> xr.Dataset:
    """A copy with the energies in TeV and the ``dnde`` family in cm-2 s-1 TeV-1."""
    data = data.copy()
    targets = {name: _ENERGY_UNIT for name in _ENERGY_COLUMNS}
    targets.update({f"dnde{suffix}": _SED_UNITS["dnde"] for suffix in _SUFFIXES})
    for name, unit in targets.items():
        if name not in data.variables:
            continue
        given = u.Unit(data[name].attrs.get("units", unit))
        try:
            scale = given.to(unit)
        except u.UnitConversionError as err:
            raise u.UnitConversionError(f"FluxPoints: {name!r} has units {given}, expected {unit}") from err
        converted = data[name] * scale if scale != 1 else data[name]
        data[name] = converted.assign_attrs(units=unit_string(unit))
    return data


def _dnde_to(sed_type: str, data: xr.Dataset, model: SpectralModel) -> xr.DataArray:
    """Per-point factor that turns ``dnde`` (cm-2 s-1 TeV-1) into ``sed_type`` (canonical units)."""
    if sed_type not in _SED_UNITS:
        raise ValueError(f"unknown SED type {sed_type!r}; expected one of {list(_SED_UNITS)}")
    e_ref = data["e_ref"].reset_coords(drop=True)
    if sed_type == "dnde":
        return xr.ones_like(e_ref)
    if sed_type == "e2dnde":
        return e_ref**2
    ref_dnde = e_ref.copy(data=model.dnde_values(e_ref.values))
    if sed_type == "norm":
        return 1 / ref_dnde
    if "e_min" not in data.coords or "e_max" not in data.coords:
        raise ValueError(f"SED type {sed_type!r} needs the bin edges e_min and e_max; these points have only e_ref")
    e_min, e_max = data["e_min"].values, data["e_max"].values
    integral = model.integral_values(e_min, e_max) if sed_type == "flux" else model.energy_flux_values(e_min, e_max)
    return e_ref.copy(data=integral) / ref_dnde


def _guess_sed_type(columns) -> str:
    for sed_type in SED_TYPES:
        if sed_type in columns:
            return sed_type
    if "norm" in columns and "ref_dnde" in columns:
        return "likelihood"
    raise ValueError(f"no SED_TYPE keyword and none of the columns {SED_TYPES}; columns: {list(columns.values())}")


def _column_values(table: Table, name: str, unit) -> np.ndarray:
    """Column ``name`` as floats in ``unit``; a column without a unit is accepted only for dimensionless ``unit``."""
    column = table[name]
    values = _plain(column).astype(float)
    if column.unit is None:
        if u.Unit(unit) == u.dimensionless_unscaled:
            return values
        raise ValueError(f"column {name!r} has no unit; expected one convertible to {u.Unit(unit)}")
    try:
        return (values * column.unit).to_value(unit)
    except u.UnitConversionError as err:
        raise ValueError(f"column {name!r}: cannot convert {column.unit} to {u.Unit(unit)}") from err


def _plain(column) -> np.ndarray:
    """A column's values as a plain array: masked (null) entries become NaN (floats) or False (booleans)."""
    values = np.asarray(column)
    mask = getattr(column, "mask", None)
    if mask is None or not np.any(mask):
        return values
    if values.dtype.kind == "b":
        return np.where(mask, False, values)
    return np.where(mask, np.nan, values.astype(float))


def _output_sed_type(sed_type, sed_type_init) -> str:
    sed_type = sed_type or ("dnde" if sed_type_init == "likelihood" else sed_type_init)
    if sed_type not in SED_TYPES:
        raise ValueError(f"flux points are written as one of {SED_TYPES}, got {sed_type!r}")
    return sed_type


def _format_from_name(path: str) -> str:
    name = path.lower()
    if name.endswith(".ecsv"):
        return "ecsv"
    if name.endswith((".fits", ".fits.gz", ".fit", ".fit.gz", ".fts")):
        return "fits"
    raise ValueError(f"cannot tell the format of {path!r} from its name; pass format='fits' or 'ecsv'")
