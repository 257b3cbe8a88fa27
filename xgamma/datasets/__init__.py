"""Reduced (DL4) datasets: xarray Datasets wrapped with behaviour.

See `xgamma.datasets.core` for the layout every dataset shares.
"""

from .core import Dataset

__all__ = ["Dataset"]
