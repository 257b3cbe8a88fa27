"""1-D (region) datasets: `SpectrumDataset` and `SpectrumDatasetOnOff`.

Which one to use when:

- `SpectrumDataset`: counts in an ON region with a modelled background
  (or none), fitted with the Cash statistic.
- `SpectrumDatasetOnOff`: counts in an ON region plus counts in OFF regions
  (reflected or wobble regions, `xgamma.makers.ReflectedRegionsBackgroundMaker`),
  fitted with WStat; the background is ``alpha * counts_off`` with
  ``alpha = acceptance / acceptance_off``.

Both follow the layout of `xgamma.datasets.core` with no ``y``/``x`` dims:

=================  =======================  =======  ================================
variable           dims                     units    notes
=================  =======================  =======  ================================
counts             (energy,)                ""       ON counts
exposure           (energy_true,)           cm2 s    aeff x livetime (x containment)
edisp              (energy_true, energy)    ""       reco-energy kernel
background         (energy,)                ""       SpectrumDataset only
mask_safe          (energy,) bool           ""
mask_fit           (energy,) bool           ""       optional
exposure_irf       (energy_true,)           cm2 s    without containment correction:
                                                     the edisp's stacking weight
counts_off         (energy,)                ""       On/Off only
acceptance         (energy,)                ""       On/Off only
acceptance_off     (energy,)                ""       On/Off only
livetime           ()                       s
=================  =======================  =======  ================================

Every region variable carries the ON region as DS9 text in ``attrs["region"]``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from regions import PointSkyRegion

from ..axes import MapAxis
from ..geom import RegionGeom
from ..stats import li_ma_significance
from .core import Dataset
from .evaluator import FitArrays
from .fitting import FitMixin, OnOffFitMixin
from .stacking import stack_datasets

__all__ = ["SpectrumDataset", "SpectrumDatasetOnOff"]


def _region_attrs(da: xr.DataArray, units: str = "") -> xr.DataArray:
    da.attrs = {"units": units, "region": da.attrs.get("region", "")}
    return da


def _masked(da: xr.DataArray, mask: xr.DataArray) -> xr.DataArray:
    """``da`` where ``mask`` (0 elsewhere), attrs kept."""
    out = da.where(mask, 0.0)
    out.attrs = dict(da.attrs)
    return out


class SpectrumDataset(FitMixin, Dataset):
    """Counts, exposure, energy dispersion and background in one ON region.

    Build an empty one with `create` and fill it with
    `xgamma.makers.SpectrumDatasetMaker`.

    Parameters
    ----------
    data : `xarray.Dataset`
        The reduced data (see the module docstring).
    """

    required = ("counts", "exposure", "mask_safe")
    _optional = ("edisp", "background", "mask_fit")

    # ---- construction -------------------------------------------------------
    @classmethod
    def create(cls, geom: RegionGeom, energy_axis_true: MapAxis, name=None):
        """Empty dataset: zero counts, exposure, background and edisp; no bin safe.

        Parameters
        ----------
        geom : `~xgamma.geom.RegionGeom`
            ON region with the reconstructed energy axis (named ``energy``).
        energy_axis_true : `~xgamma.axes.MapAxis`
            True energy axis (named ``energy_true``).
        name : str, optional
            Dataset name (default ``""``).

        Returns
        -------
        SpectrumDataset
            ``mask_safe`` is all False, a neutral start for stacking;
            `~xgamma.makers.SpectrumDatasetMaker` marks every bin safe.
        """
        if not isinstance(geom, RegionGeom):
            raise TypeError(f"{cls.__name__}.create needs a RegionGeom, got {type(geom).__name__}")
        if geom.dims != ("energy",):
            raise ValueError(f"{cls.__name__}.create: geom must have exactly one axis named 'energy', got {geom.dims}")
        if energy_axis_true.name != "energy_true":
            raise ValueError(f"energy_axis_true must be named 'energy_true', got {energy_axis_true.name!r}")
        geom_true = geom.to_image().to_cube([energy_axis_true])
        region = geom.to_region_string()
        counts = geom.to_dataarray(unit="", dtype=float)
        edisp_coords = energy_axis_true.to_coords() | geom.axes[0].to_coords()
        edisp = xr.DataArray(
            np.zeros((energy_axis_true.nbin, geom.axes[0].nbin)),
            dims=("energy_true", "energy"),
            coords=edisp_coords,
            attrs={"units": "", "region": region},
        )
        data = xr.Dataset(
            {
                "counts": counts,
                "background": geom.to_dataarray(unit="", dtype=float),
                "exposure": geom_true.to_dataarray(unit="cm2 s", dtype=float),
                "exposure_irf": geom_true.to_dataarray(unit="cm2 s", dtype=float),
                "edisp": edisp,
                "mask_safe": geom.to_dataarray(data=np.zeros(geom.data_shape, dtype=bool)),
                "livetime": xr.DataArray(0.0, attrs={"units": "s"}),
            },
            attrs={"name": "" if name is None else str(name), "obs_ids": []},
        )
        return cls(data)

    # ---- accessors --------------------------------------------------------
    def _get(self, name):
        return self._data.get(name)

    @property
    def geom(self) -> RegionGeom:
        """ON region and reconstructed energy axis."""
        return RegionGeom.from_dataarray(self._data["counts"])

    @property
    def region(self):
        """The ON region (a `regions.SkyRegion`)."""
        return self.geom.region

    @property
    def energy_axis(self) -> MapAxis:
        return MapAxis.from_coords(self._data, "energy")

    @property
    def energy_axis_true(self) -> MapAxis:
        return MapAxis.from_coords(self._data, "energy_true")

    @property
    def counts(self) -> xr.DataArray:
        """ON counts per reconstructed-energy bin."""
        return self._data["counts"]

    @property
    def exposure(self) -> xr.DataArray:
        """Exposure per true-energy bin, cm2 s."""
        return self._data["exposure"]

    @property
    def edisp(self) -> xr.DataArray | None:
        """Energy-dispersion kernel (energy_true, energy), or None."""
        return self._get("edisp")

    @property
    def background(self) -> xr.DataArray | None:
        """Predicted background counts per bin, or None."""
        return self._get("background")

    @property
    def mask_safe(self) -> xr.DataArray:
        """Safe-data-range mask (bool, dim energy)."""
        return self._data["mask_safe"]

    def _make_fit_arrays(self) -> FitArrays:
        edisp = self.edisp
        background = self._data.get("background")
        return FitArrays(
            counts=self.counts.values.astype(float),
            mask=self.mask.values.astype(bool),
            exposure=self.exposure.values.astype(float),
            background=None if background is None else background.values.astype(float),
            energy_edges=self.energy_axis.edges.to_value("TeV"),
            energy_true_edges=self.energy_axis_true.edges.to_value("TeV"),
            edisp=None if edisp is None else edisp.transpose("energy_true", "energy").values.astype(float),
            energy_axis_true=self.energy_axis_true,
            region=self._on_region_with_area(),
        )

    def _on_region_with_area(self) -> RegionGeom | None:
        """The ON region, for the spatial models' containment; None for a point region (point-like
        IRFs with RAD_MAX: the IRF holds the directional cut) or a dataset without region."""
        if not self.counts.attrs.get("region"):
            return None
        geom = self.geom
        return None if any(isinstance(r, PointSkyRegion) for r in geom.regions) else geom

    @property
    def excess(self) -> xr.DataArray:
        """``counts - background`` per bin."""
        background = self.background
        excess = self.counts - (background if background is not None else 0.0)
        return _region_attrs(excess.rename("excess"), "").assign_attrs(region=self.counts.attrs.get("region", ""))

    def with_mask_safe(self, mask) -> SpectrumDataset:
        """Copy with ``mask_safe`` replaced.

        Parameters
        ----------
        mask : `xarray.DataArray` or array-like of bool
            New mask, dim ``energy``.
        """
        data = self._data.copy()
        values = np.asarray(mask, dtype=bool)
        if values.shape != self.mask_safe.shape:
            raise ValueError(f"mask_safe has shape {self.mask_safe.shape} (dims {self.mask_safe.dims}), got {values.shape}")
        data["mask_safe"] = self.mask_safe.copy(data=values)
        return type(self)(data)

    # ---- summaries --------------------------------------------------------
    def _summed(self, in_safe_data_range):
        mask = self.mask_safe if in_safe_data_range else xr.ones_like(self.mask_safe, dtype=bool)
        return mask, (lambda da: float(da.where(mask, 0.0).sum()))

    def info_dict(self, in_safe_data_range=True) -> dict:
        """Summary numbers summed over the safe bins (Gammapy's ``info_dict``).

        Parameters
        ----------
        in_safe_data_range : bool
            Sum over the ``mask_safe`` bins only (default) or over all bins.

        Returns
        -------
        dict
            ``name``, ``counts``, ``background``, ``excess``, ``sqrt_ts``
            (Li & Ma-like significance of counts over the known background,
            ``sign * sqrt(2 (n ln(n/b) - (n - b)))``), ``livetime`` (s),
            ``n_bins``, ``n_fit_bins`` (bins in ``mask_safe & mask_fit``).
        """
        _, total = self._summed(in_safe_data_range)
        counts = total(self.counts)
        background = total(self.background) if self.background is not None else 0.0
        excess = counts - background
        if background > 0:
            ts = 2 * (counts * np.log(counts / background) - excess) if counts > 0 else 2 * background
            sqrt_ts = float(np.sign(excess) * np.sqrt(max(ts, 0.0)))
        else:
            sqrt_ts = float("nan")
        return {
            "name": self.name,
            "counts": round(counts),
            "background": background,
            "excess": excess,
            "sqrt_ts": sqrt_ts,
            "livetime": self.livetime,
            "n_bins": int(self.counts.size),
            "n_fit_bins": int(self.mask.sum()),
        }

    # ---- stacking ---------------------------------------------------------
    def _check_stackable(self, other):
        if type(other) is not type(self):
            raise TypeError(f"cannot stack {type(other).__name__} onto {type(self).__name__}")
        if self.energy_axis != other.energy_axis or self.energy_axis_true != other.energy_axis_true:
            raise ValueError(
                f"cannot stack datasets {self.name!r} and {other.name!r}: energy axes differ "
                f"({self.energy_axis} / {other.energy_axis}; {self.energy_axis_true} / {other.energy_axis_true})"
            )

    def stack(self, other, name=None) -> SpectrumDataset:
        """Stack ``other`` onto this dataset; returns a new dataset.

        The rules are those of `xgamma.datasets.stacking` (shared with the
        scalable Zarr path): counts, background and OFF counts add inside each
        input's ``mask_safe``; exposure adds for inputs with a safe bin; the
        edisp kernel is exposure-weighted; masks combine with "or"; On/Off
        alpha follows the summed background.

        Parameters
        ----------
        other : SpectrumDataset
            Same energy axes (the ON regions are assumed to describe the same
            source; the region of ``self`` is kept).
        name : str, optional
            Name of the result (default: this dataset's name).
        """
        self._check_stackable(other)
        stacked = stack_datasets([self, other])
        stacked.data.attrs["name"] = self.name if name is None else str(name)
        return stacked

    @classmethod
    def from_list(cls, datasets, name="stacked"):
        """Stack a list of datasets (in order) into one new dataset.

        Parameters
        ----------
        datasets : list of SpectrumDataset
        name : str
            Name of the stacked dataset.
        """
        datasets = list(datasets)
        for other in datasets[1:]:
            datasets[0]._check_stackable(other)
        stacked = stack_datasets(datasets)
        stacked.data.attrs["name"] = str(name)
        return stacked

    def __repr__(self):
        lines = self._repr_lines()
        info = self.info_dict()
        keys = [k for k in ("counts", "counts_off", "excess", "alpha", "sqrt_ts", "n_fit_bins") if k in info]
        summary = ", ".join(
            f"{k}={info[k]:.4g}" if isinstance(info[k], float) else f"{k}={info[k]}" for k in keys
        )
        lines.insert(1, f"  region: {self.counts.attrs.get('region', '').strip().splitlines()[-1] if self.counts.attrs.get('region') else '?'}")
        lines.append(f"  safe range: {summary}")
        return "\n".join(lines)


class SpectrumDatasetOnOff(OnOffFitMixin, SpectrumDataset):
    """ON counts plus OFF counts with their acceptances (WStat dataset).

    ``alpha = acceptance / acceptance_off`` per bin, the background in the
    ON region is ``alpha * counts_off``.

    Parameters
    ----------
    data : `xarray.Dataset`
        Reduced data with ``counts_off``, ``acceptance`` and ``acceptance_off``.
    """

    required = SpectrumDataset.required + ("counts_off", "acceptance", "acceptance_off")

    @classmethod
    def create(cls, geom: RegionGeom, energy_axis_true: MapAxis, name=None):
        """Empty On/Off dataset: zero counts and OFF counts, acceptance 1, acceptance_off 1.

        Parameters are those of `SpectrumDataset.create`.
        """
        base = SpectrumDataset.create(geom, energy_axis_true, name=name)
        ones = xr.ones_like(base.counts)
        return cls.from_spectrum_dataset(base, counts_off=xr.zeros_like(base.counts), acceptance=ones, acceptance_off=ones)

    @classmethod
    def from_spectrum_dataset(cls, dataset: SpectrumDataset, counts_off, acceptance, acceptance_off, name=None):
        """On/Off dataset from a `SpectrumDataset` and OFF measurements.

        Parameters
        ----------
        dataset : SpectrumDataset
            Its ``background`` variable (if any) is dropped: the On/Off
            background is ``alpha * counts_off``.
        counts_off, acceptance, acceptance_off : `xarray.DataArray` or array-like
            Per reco-energy bin (dim ``energy``), dimensionless.
        name : str, optional
            Name of the result (default: the input's name).

        Returns
        -------
        SpectrumDatasetOnOff
        """
        data = dataset.data.drop_vars("background", errors="ignore").copy()
        template = dataset.counts
        for key, values in (("counts_off", counts_off), ("acceptance", acceptance), ("acceptance_off", acceptance_off)):
            values = np.broadcast_to(np.asarray(values, dtype=float), template.shape)
            data[key] = template.copy(data=values.copy())
        if name is not None:
            data.attrs["name"] = str(name)
        return cls(data)

    @classmethod
    def read(cls, path, format=None, name=None, **kwargs):
        """Read an OGIP spectrum (`xgamma.io.ogip.read_ogip`) or a Zarr store (`Dataset.read`).

        Parameters
        ----------
        path : str or os.PathLike
            PHA file, or Zarr store URL.
        format : {"ogip", "zarr"}, optional
            Default: "ogip" for paths ending in ``.fits`` or ``.fits.gz``, else "zarr".
        name : str, optional
            Dataset name (OGIP only; default from the file name).
        **kwargs
            Passed to `Dataset.read` (Zarr only).
        """
        if format is None:
            format = "ogip" if str(path).lower().endswith((".fits", ".fits.gz")) else "zarr"
        if format == "zarr":
            return super().read(path, **kwargs)
        if format != "ogip":
            raise ValueError(f"format must be 'ogip' or 'zarr', got {format!r}")
        from ..io.ogip import read_ogip  # lazy: xgamma.io.ogip imports this module

        return read_ogip(path, name=name)

    def write(self, folder, overwrite=False) -> str:
        """Write OGIP PHA, BKG, ARF and RMF files (`xgamma.io.ogip.write_ogip`); returns the PHA path."""
        from ..io.ogip import write_ogip

        return write_ogip(self, folder, overwrite=overwrite)

    @property
    def counts_off(self) -> xr.DataArray:
        """OFF counts per reconstructed-energy bin."""
        return self._data["counts_off"]

    @property
    def acceptance(self) -> xr.DataArray:
        return self._data["acceptance"]

    @property
    def acceptance_off(self) -> xr.DataArray:
        return self._data["acceptance_off"]

    @property
    def alpha(self) -> xr.DataArray:
        """``acceptance / acceptance_off`` per bin (0 where acceptance_off is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = (self.acceptance / self.acceptance_off.where(self.acceptance_off > 0)).fillna(0.0)
        return _region_attrs(alpha.rename("alpha"), "").assign_attrs(region=self.counts.attrs.get("region", ""))

    @property
    def background(self) -> xr.DataArray:
        """ON-region background ``alpha * counts_off`` per bin."""
        background = self.alpha * self.counts_off
        return _region_attrs(background.rename("background"), "").assign_attrs(region=self.counts.attrs.get("region", ""))

    def info_dict(self, in_safe_data_range=True) -> dict:
        """Summary numbers over the safe bins, defined as in Gammapy.

        The counts are summed over the safe bins; ``alpha`` of the sum is the
        summed background over the summed OFF counts,
        ``sum(alpha_i n_off_i) / sum(n_off_i)``; ``acceptance`` is the summed
        acceptance and ``acceptance_off = acceptance / alpha``;
        ``excess = counts - alpha * counts_off`` and ``sqrt_ts`` is the Li &
        Ma (eq. 17) significance of the summed counts with that alpha (the
        signed square root of the WStat TS).

        Parameters
        ----------
        in_safe_data_range : bool
            Sum over the ``mask_safe`` bins only (default) or over all bins.

        Returns
        -------
        dict
            ``name``, ``counts``, ``counts_off``, ``background``, ``alpha``,
            ``acceptance``, ``acceptance_off``, ``excess``, ``sqrt_ts``,
            ``livetime`` (s), ``n_bins``, ``n_fit_bins``.
        """
        mask, total = self._summed(in_safe_data_range)
        counts = total(self.counts)
        counts_off = total(self.counts_off)
        background = total(self.background)
        acceptance = total(self.acceptance)
        if counts_off > 0:
            alpha = background / counts_off
        else:
            safe_alpha = self.alpha.where(mask & (self.acceptance_off > 0))
            alpha = float(safe_alpha.mean()) if bool(safe_alpha.notnull().any()) else float("nan")
        acceptance_off = acceptance / alpha if alpha > 0 else float("nan")
        excess = counts - background
        sqrt_ts = float(li_ma_significance(counts, counts_off, alpha)) if alpha > 0 else float("nan")
        return {
            "name": self.name,
            "counts": round(counts),
            "counts_off": round(counts_off),
            "background": background,
            "alpha": alpha,
            "acceptance": acceptance,
            "acceptance_off": acceptance_off,
            "excess": excess,
            "sqrt_ts": sqrt_ts,
            "livetime": self.livetime,
            "n_bins": int(self.counts.size),
            "n_fit_bins": int(self.mask.sum()),
        }

