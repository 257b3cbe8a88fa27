"""Sky geometries: `WcsGeom` for sky maps and cubes, `RegionGeom` for ON-region spectra.

Both describe the non-spatial axes with `~xgamma.axes.MapAxis` and make maps
as `xarray.DataArray` objects (``to_dataarray``) whose attrs carry the sky part
in serialisable form (``wcs``: FITS header text; ``region``: DS9 text), so the
geometry is recovered with ``from_dataarray`` after pickling, Zarr or FITS.
"""

from .region import RegionGeom
from .wcs import WcsGeom, angular_separation, lonlat_deg

__all__ = ["WcsGeom", "RegionGeom", "angular_separation", "lonlat_deg"]
