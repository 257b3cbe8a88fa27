"""Reduced (DL4) datasets: xarray Datasets wrapped with behaviour.

Which one to use when:

- `MapDataset`: binned 3-D data (energy, sky pixels) with its reduced IRFs,
  for morphology and 3-D fits;
- `MapDatasetOnOff`: the same with OFF counts per pixel (ring background),
  for excess and significance maps;
- `SpectrumDataset` / `SpectrumDatasetOnOff`: counts in one ON region (1-D),
  with an IRF background or measured OFF counts;
- `FluxPointsDataset`: a chi2 fit of spectral models to flux points (SEDs),
  alone or jointly with the others;
- `Datasets`: several of them fitted jointly in this process;
  `DaskDatasets`: many of them (or one large map split into blocks) fitted
  jointly with the datasets kept on Dask workers.

Attach models with ``dataset.models = models``; ``npred``, ``stat_sum`` and
``fake`` come from `xgamma.datasets.fitting`, the forward folding from
`xgamma.datasets.evaluator`.

See `xgamma.datasets.core` for the layout every dataset shares, and
`xgamma.datasets.stacking` for how datasets stack.
"""

from .blocks import split_into_blocks
from .collection import DaskDatasets, Datasets
from .core import Dataset
from .flux_points import FluxPointsDataset
from .map import MIGRA_AXIS_DEFAULT, RAD_AXIS_DEFAULT, MapDataset
from .map_onoff import MapDatasetOnOff
from .spectrum import SpectrumDataset, SpectrumDatasetOnOff
from .stacking import stack_datasets

__all__ = [
    "MIGRA_AXIS_DEFAULT",
    "RAD_AXIS_DEFAULT",
    "DaskDatasets",
    "Dataset",
    "Datasets",
    "FluxPointsDataset",
    "MapDataset",
    "MapDatasetOnOff",
    "SpectrumDataset",
    "SpectrumDatasetOnOff",
    "split_into_blocks",
    "stack_datasets",
]
