"""Data reduction: per-observation makers (DL3 -> DL4) and stacking.

Each maker is configured once and applied per observation with
``maker.run(dataset, observation)``; `reduce` runs a list of makers over many
observations on a Dask cluster and stacks the results into a Zarr store.
"""

from .fov_background import FoVBackgroundMaker
from .map import MapDatasetMaker
from .reduce import ReductionError, reduce, reduce_observation
from .ring import AdaptiveRingBackgroundMaker, RingBackgroundMaker
from .reflected import ReflectedRegionsBackgroundMaker, ReflectedRegionsFinder, RegionsFinder, WobbleRegionsFinder
from .safe_mask import SafeMaskMaker, energy_mask
from .spectrum import SpectrumDatasetMaker

__all__ = [
    "AdaptiveRingBackgroundMaker",
    "FoVBackgroundMaker",
    "MapDatasetMaker",
    "ReductionError",
    "ReflectedRegionsBackgroundMaker",
    "ReflectedRegionsFinder",
    "RegionsFinder",
    "RingBackgroundMaker",
    "SafeMaskMaker",
    "SpectrumDatasetMaker",
    "WobbleRegionsFinder",
    "energy_mask",
    "reduce",
    "reduce_observation",
]
