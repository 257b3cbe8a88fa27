"""Region geometry: an ON region on the sky plus non-spatial axes (1-D spectra).

Use `RegionGeom` for spectra (counts, exposure, background per energy bin in
an ON region); use `~xgamma.geom.WcsGeom` for sky maps.

The maps of a `RegionGeom` are DataArrays with only the non-spatial dims
(``energy``...): no ``y``/``x``. The region travels in the attr ``region`` as
DS9 text (``regions.Regions(...).serialize(format="ds9")``: coordinates with 8
decimals, i.e. 1e-8 deg), so it survives pickling, Zarr and FITS. A geometry
may hold several regions; they act as their union.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from astropy.coordinates import SkyCoord, UnitSphericalRepresentation
from astropy.wcs import WCS
from regions import (
    CircleAnnulusSkyRegion,
    CircleSkyRegion,
    PixCoord,
    PolygonSkyRegion,
    RegionMeta,
    Regions,
    RegionVisual,
    SkyRegion,
)

from ..axes import MapAxis
from ..units import to_value, unit_string
from .wcs import WcsGeom, angular_separation, lonlat_deg, make_dataarray

__all__ = ["RegionGeom"]

#: Pixel size (deg) of the local TAN grid on which non-circular regions are tested.
_LOCAL_BINSZ = 0.01


def _parse_regions(region) -> tuple[SkyRegion, ...]:
    if isinstance(region, str):
        text = region
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                region = list(Regions.parse(text, format="ds9"))
            except Exception as err:  # the DS9 parser raises several exception types
                raise ValueError(f"cannot parse DS9 region text {text!r}: {err}") from err
        skipped = [str(w.message) for w in caught if "unable to parse" in str(w.message)]
        if skipped:
            raise ValueError(f"cannot parse DS9 region text {text!r}: {skipped[0]}")
    elif isinstance(region, SkyRegion):
        region = [region]
    region = tuple(region)
    if not region:
        raise ValueError("RegionGeom needs at least one sky region")
    bad = [type(r).__name__ for r in region if not isinstance(r, SkyRegion)]
    if bad:
        raise TypeError(f"RegionGeom takes sky regions (not pixel regions), got {bad}")
    return tuple(_plain(r) for r in region)


def _plain(region: SkyRegion) -> SkyRegion:
    """Copy without DS9 metadata and visual attributes (so equal shapes compare equal)."""
    region = region.copy()
    region.meta, region.visual = RegionMeta(), RegionVisual()
    return region


def _center(region) -> SkyCoord:
    if hasattr(region, "center"):
        return region.center
    if isinstance(region, PolygonSkyRegion):
        cart = region.vertices.cartesian
        mean = cart.mean()
        return SkyCoord(mean.represent_as(UnitSphericalRepresentation), frame=region.vertices.frame)
    if hasattr(region, "region1"):
        return _center(region.region1)
    raise TypeError(f"cannot find a centre for {type(region).__name__}")


def _local_wcs(center: SkyCoord) -> WCS:
    """TAN WCS centred on ``center`` with `_LOCAL_BINSZ` pixels."""
    return WcsGeom.create(center, width=2 * _LOCAL_BINSZ, binsz=_LOCAL_BINSZ, frame=_frame_of(center), proj="TAN").wcs


def _frame_of(coord: SkyCoord) -> str:
    name = coord.frame.name
    return name if name in ("icrs", "galactic") else "icrs"


class RegionGeom:
    """Sky region(s) plus non-spatial axes: the geometry of 1-D spectra.

    Parameters
    ----------
    region : `~regions.SkyRegion`, list of them, `~regions.Regions` or str
        The ON region (several regions act as their union); a str is DS9 text
        such as ``"icrs;circle(83.633,22.014,0.11)"``. DS9 metadata (text,
        colours, include flags) is dropped: only the shapes are kept.
    axes : list of `~xgamma.axes.MapAxis`, optional
        Non-spatial axes, outermost first.
    """

    __hash__ = None

    def __init__(self, region, axes=None):
        self._regions = _parse_regions(region)
        axes = tuple(axes or ())
        names = [ax.name for ax in axes]
        if len(set(names)) != len(names) or {"x", "y"} & set(names):
            raise ValueError(f"axis names must be unique and not 'x' or 'y', got {names}")
        self._axes = axes

    @classmethod
    def create(cls, region, axes=None) -> "RegionGeom":
        """Same as the constructor; ``region`` may be DS9 text."""
        return cls(region, axes)

    @classmethod
    def from_dataarray(cls, da) -> "RegionGeom":
        """Geometry of a region map (a DataArray with a ``region`` attr and no y/x dims)."""
        if "region" not in da.attrs:
            raise ValueError(f"not a region map: no 'region' attr (attrs: {sorted(da.attrs)})")
        if {"x", "y"} & set(da.dims):
            raise ValueError(f"not a region map: it has spatial dims {list(da.dims)}")
        return cls(da.attrs["region"], [MapAxis.from_coords(da, d) for d in da.dims])

    # ---- properties -------------------------------------------------------
    @property
    def regions(self) -> tuple[SkyRegion, ...]:
        return self._regions

    @property
    def region(self) -> SkyRegion:
        """The region (the union as a compound region when there are several)."""
        out = self._regions[0]
        for other in self._regions[1:]:
            out = out | other
        return out

    @property
    def axes(self) -> tuple[MapAxis, ...]:
        return self._axes

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(ax.name for ax in self._axes)

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(ax.nbin for ax in self._axes)

    @property
    def frame(self) -> str:
        """Frame of the (first) region's centre."""
        return _center(self._regions[0]).frame.name

    @property
    def center_skydir(self) -> SkyCoord:
        """Centre of the region (mean of the centres for several regions)."""
        centers = [_center(r).transform_to(self.frame) for r in self._regions]
        if len(centers) == 1:
            return centers[0]
        mean = SkyCoord(centers).cartesian.mean()
        return SkyCoord(mean.represent_as(UnitSphericalRepresentation), frame=self.frame)

    # ---- behaviour --------------------------------------------------------
    def contains(self, coords, wcs=None):
        """Boolean array: which positions lie inside the region(s).

        Vectorised: circles and circle annuli use the great-circle distance
        to the centre (exact); other shapes are tested in pixel space.

        Parameters
        ----------
        coords : `~astropy.coordinates.SkyCoord` or tuple
            Positions: a SkyCoord in any frame, or ``(lon, lat)`` in deg in the
            region frame (`frame`).
        wcs : `~astropy.wcs.WCS`, optional
            For shapes other than circles and annuli, the WCS in whose pixel
            space the shape is tested (default: a TAN grid centred on the
            shape, so polygon edges are great circles).

        Returns
        -------
        `numpy.ndarray` of bool
        """
        if isinstance(coords, SkyCoord):
            sky, lonlat = coords, {}
        else:
            lon, lat = lonlat_deg(coords, self.frame)
            sky, lonlat = SkyCoord(lon, lat, unit="deg", frame=self.frame), {self.frame: (lon, lat)}
        inside = np.zeros(sky.shape, dtype=bool)
        for region in self._regions:
            if isinstance(region, (CircleSkyRegion, CircleAnnulusSkyRegion)):
                frame = region.center.frame.name
                if frame not in lonlat:
                    lonlat[frame] = lonlat_deg(sky, region.center.frame)
                clon, clat = lonlat_deg(region.center, region.center.frame)
                sep = angular_separation(clon, clat, *lonlat[frame])
                if isinstance(region, CircleSkyRegion):
                    inside |= sep < region.radius.to_value("deg")
                else:
                    inside |= (sep >= region.inner_radius.to_value("deg")) & (sep < region.outer_radius.to_value("deg"))
            else:
                pix_wcs = wcs if wcs is not None else _local_wcs(_center(region))
                x, y = sky.to_pixel(pix_wcs, origin=0)
                inside |= np.asarray(region.to_pixel(pix_wcs).contains(PixCoord(x, y)), dtype=bool)
        return inside

    def solid_angle(self) -> float:
        """Solid angle of the region in sr.

        A single circle (``2 pi (1 - cos r)``) or circle annulus is exact;
        another single shape uses its area on the tangent plane at its centre
        (flat-sky approximation, relative error of order ``size**2``, size in
        rad). A union of several regions is measured on a 400-pixel-wide TAN
        grid (overlaps counted once; relative precision about 1e-3).
        """
        if len(self._regions) == 1:
            region = self._regions[0]
            if isinstance(region, CircleSkyRegion):
                return float(2 * np.pi * (1 - np.cos(region.radius.to_value("rad"))))
            if isinstance(region, CircleAnnulusSkyRegion):
                r1, r2 = region.inner_radius.to_value("rad"), region.outer_radius.to_value("rad")
                return float(2 * np.pi * (np.cos(r1) - np.cos(r2)))
            pix = region.to_pixel(_local_wcs(_center(region)))
            if hasattr(pix, "area"):
                return float(pix.area * np.radians(_LOCAL_BINSZ) ** 2)
        geom = self.to_wcs_geom()
        return float(geom.solid_angle().where(geom.region_mask(list(self._regions)), 0.0).sum())

    def to_wcs_geom(self, binsz=None, proj="TAN", margin="0 deg") -> WcsGeom:
        """A WCS geometry (without axes) centred on the region and covering it.

        Parameters
        ----------
        binsz : float, str or `~astropy.units.Quantity`, optional
            Pixel size in deg; default gives about 400 pixels across.
        proj : str
            Projection code. Default ``"TAN"``.
        margin : float, str or `~astropy.units.Quantity`
            Extra width added on each side, deg.
        """
        center = self.center_skydir
        frame = _frame_of(center)
        local = WcsGeom.create(center, width=2 * _LOCAL_BINSZ, binsz=_LOCAL_BINSZ, frame=frame, proj="TAN")
        half = np.zeros(2)
        for region in self._regions:
            bbox = region.to_pixel(local.wcs).bounding_box
            cx, cy = local.center_pix
            dx = np.abs(np.array([bbox.ixmin, bbox.ixmax]) - 0.5 - cx).max()
            dy = np.abs(np.array([bbox.iymin, bbox.iymax]) - 0.5 - cy).max()
            half = np.maximum(half, [dx, dy])
        margin = to_value(margin, "deg", "margin")
        width = 2 * half * _LOCAL_BINSZ + 2 * margin
        binsz = float(width.max() / 400) if binsz is None else binsz
        return WcsGeom.create(center, width=tuple(width), binsz=binsz, frame=frame, proj=proj)

    def to_image(self) -> "RegionGeom":
        return RegionGeom(self._regions)

    def to_cube(self, axes) -> "RegionGeom":
        """The same region with ``axes`` added after the existing ones."""
        return RegionGeom(self._regions, list(self._axes) + list(axes))

    # ---- serialisation --------------------------------------------------------
    def to_region_string(self) -> str:
        """The region(s) as DS9 text (the ``region`` attr of region maps)."""
        return Regions(list(self._regions)).serialize(format="ds9")

    def to_dataarray(self, data=None, unit="", name=None, dtype=None, chunks=None) -> xr.DataArray:
        """A map on this geometry: dims are the axis names only.

        Parameters are as for `WcsGeom.to_dataarray`; the attrs are ``units``
        and ``region`` (`to_region_string`).
        """
        coords = {}
        for ax in self._axes:
            coords.update(ax.to_coords())
        attrs = {"units": unit_string(unit), "region": self.to_region_string()}
        return make_dataarray(self.data_shape, self.dims, coords, attrs, data, dtype, name, chunks)

    def __getstate__(self):
        return {"region": self.to_region_string(), "axes": self._axes}

    def __setstate__(self, state):
        self.__init__(state["region"], state["axes"])

    def __eq__(self, other):
        if not isinstance(other, RegionGeom):
            return NotImplemented
        return self._axes == other._axes and self.to_region_string() == other.to_region_string()

    def __repr__(self):
        shapes = "; ".join(line for line in self.to_region_string().splitlines() if "(" in line)
        center = self.center_skydir.represent_as(UnitSphericalRepresentation)
        axes = ", ".join(repr(ax) for ax in self._axes) or "none"
        shape = ", ".join(f"{d}: {n}" for d, n in zip(self.dims, self.data_shape)) or "scalar"
        return (
            "RegionGeom\n"
            f"    region     : {shapes}\n"
            f"    frame      : {self.frame}\n"
            f"    center     : {center.lon.deg:.4f} deg, {center.lat.deg:.4f} deg\n"
            f"    axes       : {axes}\n"
            f"    data shape : ({shape})"
        )
