"""Reduced (DL4) datasets: xarray Datasets wrapped with behaviour.

Which one to use when:

- `MapDataset`: binned 3-D data (energy, sky pixels) with its reduced IRFs,
  for morphology and 3-D fits;
- `MapDatasetOnOff`: the same with OFF counts per pixel (ring background),
  for excess and significance maps;
- `SpectrumDataset` / `SpectrumDatasetOnOff`: counts in one ON region (1-D),
  with an IRF background or measured OFF counts.

See `xgamma.datasets.core` for the layout every dataset shares, and
`xgamma.datasets.stacking` for how datasets stack.
"""

from .core import Dataset
from .map import MIGRA_AXIS_DEFAULT, RAD_AXIS_DEFAULT, MapDataset
from .map_onoff import MapDatasetOnOff
from .spectrum import SpectrumDataset, SpectrumDatasetOnOff
from .stacking import stack_datasets

__all__ = [
    "Dataset",
    "MapDataset",
    "MapDatasetOnOff",
    "MIGRA_AXIS_DEFAULT",
    "RAD_AXIS_DEFAULT",
    "SpectrumDataset",
    "SpectrumDatasetOnOff",
    "stack_datasets",
]
