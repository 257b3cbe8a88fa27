"""xgamma: gamma-ray astronomy analysis on xarray, Dask and Zarr."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xgamma")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
