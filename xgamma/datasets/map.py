"""3-D (sky x energy) reduced datasets: `MapDataset`.

Use `MapDataset.create` for an empty template on a target geometry,
`xgamma.makers.MapDatasetMaker` to fill one from an observation, and
`MapDataset.cutout` to cut it around a position. The variables and their
stacking rules are those of `xgamma.datasets.core`:

=============  ======================================  =========
variable       dims                                    units
=============  ======================================  =========
counts         (energy, y, x)                          ""
background     (energy, y, x)                          ""
exposure       (energy_true, y, x)                     cm2 s
mask_safe      (energy, y, x) bool                     ""
psf            (energy_true, rad, y_irf, x_irf)        sr-1
edisp          (energy_true, energy, y_irf, x_irf)     ""
exposure_irf   (energy_true, y_irf, x_irf)             cm2 s
livetime       ()                                      s
=============  ======================================  =========

``y``/``x`` is the analysis grid (attr ``wcs``), ``y_irf``/``x_irf`` the
coarser grid of the reduced IRFs (same centre, frame and projection, pixel
size ``binsz_irf``; its header is the ``wcs`` attr of the IRF variables).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..axes import MapAxis
from ..geom import WcsGeom
from ..units import to_value
from .core import Dataset, dataset_on_one_grid
from .evaluator import FitArrays
from .fitting import FitMixin

__all__ = ["MIGRA_AXIS_DEFAULT", "RAD_AXIS_DEFAULT", "MapDataset"]

#: Default PSF radius axis: 0 to 0.66 deg in 66 bins.
RAD_AXIS_DEFAULT = MapAxis.from_bounds(0.0, 0.66, 66, name="rad", unit="deg")
#: Default migration axis (for ``edisp="migra"``): 0.2 to 5 in 48 bins.
MIGRA_AXIS_DEFAULT = MapAxis.from_bounds(0.2, 5.0, 48, name="migra", unit="")

IRF_DIMS = ("y_irf", "x_irf")
_EDISP_KINDS = ("kernel", "migra")


def irf_dataarray(geom_irf: WcsGeom, data=None, unit="", name=None, dtype=None) -> xr.DataArray:
    """A map on the IRF grid: `WcsGeom.to_dataarray` with ``y``/``x`` renamed ``y_irf``/``x_irf``."""
    return geom_irf.to_dataarray(data, unit=unit, name=name, dtype=dtype).rename({"y": "y_irf", "x": "x_irf"})


def _geom_from_var(var: xr.DataArray, spatial=("y", "x"), axes=()) -> WcsGeom:
    ny, nx = (var.sizes[d] for d in spatial)
    return WcsGeom.from_header(var.attrs["wcs"], axes=list(axes), npix=(nx, ny))


class MapDataset(FitMixin, Dataset):
    """Binned 3-D dataset: counts, background, exposure and reduced IRFs on a WCS grid.

    Parameters
    ----------
    data : `xarray.Dataset`
        Variables in the layout of the module docstring; at least ``counts``
        or ``exposure`` (both give the sky grid) and ``mask_safe``.
    """

    required = ("mask_safe",)

    # ---- construction ----------------------------------------------------------
    @classmethod
    def create(cls, geom, energy_axis_true=None, migra_axis=None, rad_axis=None, binsz_irf=0.2, name=None,
               edisp="kernel") -> MapDataset:
        """Empty dataset (zeros, ``mask_safe`` False, livetime 0) on ``geom``.

        Parameters
        ----------
        geom : `~xgamma.geom.WcsGeom`
            Analysis grid with one ``energy`` (reconstructed) axis.
        energy_axis_true : `~xgamma.axes.MapAxis`, optional
            True-energy axis of exposure and IRFs; default the reco axis renamed.
        migra_axis : `~xgamma.axes.MapAxis`, optional
            Migration axis, used with ``edisp="migra"``; default `MIGRA_AXIS_DEFAULT`.
        rad_axis : `~xgamma.axes.MapAxis`, optional
            PSF radius axis; default `RAD_AXIS_DEFAULT` (0-0.66 deg, 66 bins).
        binsz_irf : float, str or `~astropy.units.Quantity`
            Pixel size of the IRF grid, deg. Default 0.2 deg.
        name : str, optional
            Dataset name; default ``""``.
        edisp : {"kernel", "migra"}
            ``kernel``: ``edisp`` is the reco-energy kernel (energy_true,
            energy, y_irf, x_irf); ``migra``: the probability per migra bin
            (energy_true, migra, y_irf, x_irf).

        Returns
        -------
        MapDataset
        """
        if [ax.name for ax in geom.axes] != ["energy"]:
            raise ValueError(f"MapDataset.create needs a geometry with one 'energy' axis, got {list(geom.dims)}")
        if edisp not in _EDISP_KINDS:
            raise ValueError(f"edisp must be one of {_EDISP_KINDS}, got {edisp!r}")
        energy_axis = geom.axes[0]
        energy_axis_true = (energy_axis_true or energy_axis).copy(name="energy_true")
        rad_axis = (rad_axis or RAD_AXIS_DEFAULT).copy(name="rad")
        geom.to_header_string()  # built once here, shared by the image and cube variants below
        image = geom.to_image()
        geom_irf = WcsGeom.create(
            skydir=image.center_skydir, width=image.width, binsz=to_value(binsz_irf, "deg", "binsz_irf"),
            frame=image.frame, proj=image.projection,
        )
        geom_irf.to_header_string()
        if edisp == "kernel":
            edisp_var = irf_dataarray(geom_irf.to_cube([energy_axis_true, energy_axis]))
        else:
            migra_axis = (migra_axis or MIGRA_AXIS_DEFAULT).copy(name="migra")
            edisp_var = irf_dataarray(geom_irf.to_cube([energy_axis_true, migra_axis]))
        data = dataset_on_one_grid(
            {
                "counts": geom.to_dataarray(),
                "background": geom.to_dataarray(),
                "exposure": image.to_cube([energy_axis_true]).to_dataarray(unit="cm2 s"),
                "mask_safe": geom.to_dataarray(dtype=bool),
                "psf": irf_dataarray(geom_irf.to_cube([energy_axis_true, rad_axis]), unit="sr-1"),
                "edisp": edisp_var,
                "exposure_irf": irf_dataarray(geom_irf.to_cube([energy_axis_true]), unit="cm2 s"),
                "livetime": xr.DataArray(0.0, attrs={"units": "s"}),
            },
            {"name": "" if name is None else str(name), "obs_ids": []},
        )
        return cls(data)

    # ---- geometry ---------------------------------------------------------------
    def _main_var(self) -> xr.DataArray:
        for name in ("counts", "mask_safe", "background", "exposure"):
            if name in self._data:
                return self._data[name]
        raise ValueError(f"MapDataset has no map on the analysis grid (variables: {sorted(self._data.data_vars)})")

    @property
    def geom(self) -> WcsGeom:
        """Analysis grid with the reconstructed-energy axis."""
        return _geom_from_var(self._main_var(), axes=[self.energy_axis])

    @property
    def geom_irf(self) -> WcsGeom | None:
        """Grid of the reduced IRFs (no non-spatial axes), or None without IRF maps."""
        for name in ("exposure_irf", "psf", "edisp"):
            if name in self._data:
                return _geom_from_var(self._data[name], spatial=IRF_DIMS)
        return None

    @property
    def energy_axis(self) -> MapAxis:
        """Reconstructed-energy axis."""
        return MapAxis.from_coords(self._data, "energy")

    @property
    def energy_axis_true(self) -> MapAxis | None:
        """True-energy axis, or None when the dataset has none."""
        return MapAxis.from_coords(self._data, "energy_true") if "energy_true" in self._data.coords else None

    def _get(self, name):
        return self._data.get(name)

    @property
    def counts(self) -> xr.DataArray | None:
        return self._get("counts")

    @property
    def exposure(self) -> xr.DataArray | None:
        return self._get("exposure")

    @property
    def background(self) -> xr.DataArray | None:
        return self._get("background")

    @property
    def mask_safe(self) -> xr.DataArray:
        return self._data["mask_safe"]

    @property
    def mask_image(self) -> xr.DataArray:
        """``mask_safe`` reduced over energy: pixels safe in at least one energy bin."""
        out = self.mask_safe.any("energy")
        out.attrs = {"units": "", "wcs": self.mask_safe.attrs["wcs"]}
        return out

    @property
    def psf(self) -> xr.DataArray | None:
        return self._get("psf")

    @property
    def edisp(self) -> xr.DataArray | None:
        return self._get("edisp")

    @property
    def exposure_irf(self) -> xr.DataArray | None:
        return self._get("exposure_irf")

    def _make_fit_arrays(self) -> FitArrays:
        counts_dims = ("energy", "y", "x")
        edisp = self.edisp
        migra_edges = None
        if edisp is not None:
            second = "migra" if "migra" in edisp.dims else "energy"
            if second == "migra":
                migra_edges = MapAxis.from_coords(self._data, "migra").edges.value
            edisp = edisp.transpose("energy_true", second, *IRF_DIMS).values.astype(float)
        psf = self.psf
        return FitArrays(
            counts=self.counts.transpose(*counts_dims).values.astype(float),
            mask=self.mask.transpose(*counts_dims).values.astype(bool),
            exposure=self.exposure.transpose("energy_true", "y", "x").values.astype(float),
            background=None if self.background is None else self.background.transpose(*counts_dims).values.astype(float),
            energy_edges=self.energy_axis.edges.to_value("TeV"),
            energy_true_edges=self.energy_axis_true.edges.to_value("TeV"),
            edisp=edisp,
            psf=None if psf is None else psf.transpose("energy_true", "rad", *IRF_DIMS).values.astype(float),
            rad_edges=None if psf is None else MapAxis.from_coords(self._data, "rad").edges.to_value("deg"),
            geom=self.geom.to_image(),
            geom_irf=self.geom_irf,
            energy_axis_true=self.energy_axis_true,
            migra_edges=migra_edges,
        )

    # ---- operations --------------------------------------------------------------
    def cutout(self, position, width, name=None) -> MapDataset:
        """Cut every map around ``position``; the IRF grid is cut with the same width.

        Parameters
        ----------
        position : `~astropy.coordinates.SkyCoord` or tuple
            Cutout centre (``(lon, lat)`` deg in the geometry frame).
        width : float, str, `~astropy.units.Quantity` or pair
            Cutout width in deg (trimmed at the map edges).
        name : str, optional
            Name of the cutout; default the dataset's name.

        Returns
        -------
        MapDataset
            Views of the sliced maps with their ``wcs`` attrs rewritten.
        """
        image = self.geom.to_image()
        grids = {("y", "x"): (image, image.cutout_slices(position, width))}
        geom_irf = self.geom_irf
        if geom_irf is not None:
            grids[IRF_DIMS] = (geom_irf, geom_irf.cutout_slices(position, width))
        return self._sliced(grids, name)

    def slice_pixels(self, slices, name=None) -> MapDataset:
        """The dataset on the analysis pixels ``slices`` (``{"y": slice, "x": slice}``); IRF maps unchanged."""
        return self._sliced({("y", "x"): (self.geom.to_image(), slices)}, name)

    def _sliced(self, grids, name) -> MapDataset:
        variables = {}
        for key, var in self._data.data_vars.items():
            for dims, (grid, slices) in grids.items():
                if set(dims) <= set(var.dims):
                    sel = dict(zip(dims, (slices["y"], slices["x"])))
                    var = var.isel(sel)
                    var.attrs = dict(var.attrs, wcs=grid.slice_by_idx(slices).to_header_string())
            variables[key] = var
        data = xr.Dataset(variables, attrs=dict(self._data.attrs))
        if name is not None:
            data.attrs["name"] = str(name)
        return type(self)(data)

    def stack(self, other: MapDataset) -> MapDataset:
        """Stack ``other`` into this dataset's geometry (see `xgamma.datasets.stacking`).

        Returns
        -------
        MapDataset
            New dataset; counts, background and exposure add inside each
            ``mask_safe``, IRFs are exposure-weighted, masks are OR-ed.
        """
        from .stacking import stack_datasets

        return stack_datasets([self, other], template=self)

    def info_dict(self) -> dict:
        """Summary numbers, counted inside ``mask_safe``.

        Returns
        -------
        dict
            ``name``, ``counts``, ``background``, ``excess``, ``sqrt_ts``
            (Cash significance of the excess over the fixed background),
            ``exposure_min``/``exposure_max`` (cm2 s), ``livetime`` (s),
            ``n_bins`` (safe bins), ``counts_rate``, ``background_rate``,
            ``excess_rate`` (s-1), ``obs_ids``.
        """
        mask = self.mask_safe.values
        counts = float(self.counts.values[mask].sum()) if self.counts is not None else np.nan
        background = float(self.background.values[mask].sum()) if self.background is not None else np.nan
        excess = counts - background
        exposure = self.exposure.values if self.exposure is not None else np.array([np.nan])
        livetime = self.livetime
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = (lambda n: n / livetime if livetime > 0 else np.nan)
            ts = 2 * (counts * np.log(counts / background) - excess) if counts > 0 else 2 * background
        return {
            "name": self.name,
            "counts": counts,
            "background": background,
            "excess": excess,
            "sqrt_ts": float(np.sign(excess) * np.sqrt(max(ts, 0.0))) if background > 0 else np.nan,
            "exposure_min": float(np.nanmin(exposure)),
            "exposure_max": float(np.nanmax(exposure)),
            "livetime": livetime,
            "n_bins": int(mask.sum()),
            "counts_rate": rate(counts),
            "background_rate": rate(background),
            "excess_rate": rate(excess),
            "obs_ids": self.obs_ids,
        }

    def _repr_lines(self) -> list[str]:
        lines = super()._repr_lines()
        info = self.info_dict()
        lines.insert(1, f"  counts: {info['counts']:.0f}, background: {info['background']:.2f}, "
                        f"excess: {info['excess']:.2f}, sqrt_ts: {info['sqrt_ts']:.2f} (in mask_safe)")
        geom = self.geom
        lines.insert(1, f"  geom: {geom.npix[0]} x {geom.npix[1]} pix of {geom.binsz[0]:.4g} deg, "
                        f"{geom.frame} {geom.projection}, centre {_center(geom)}")
        return lines


def _center(geom) -> str:
    c = geom.center_skydir.spherical
    return f"({c.lon.deg:.3f}, {c.lat.deg:.3f}) deg"
