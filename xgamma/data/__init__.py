"""DL3 data access: data stores, observations, event lists and good time intervals.

Which one to use when:

- `DataStore`: open a GADF data store (index tables in a folder or at any
  fsspec URL), select observations by id, sky cone, time or available IRFs,
  and get them as `Observations`.
- `Observation`: one run, lazy and picklable; send it to a Dask worker and
  read its `events`, `gti`, IRFs and header quantities there.
- `EventList`: the events of a run as an `xarray.Dataset` over ``event``,
  with vectorised selections.
- `GTI`: good time intervals (float64 seconds since MJDREF).
"""

from .datastore import REQUIRED_IRF, DataStore
from .events import REQUIRED_EVENT_COLUMNS, EventList
from .gti import GTI
from .observation import (
    HDU_CLASSES,
    IRF_TYPES,
    HDULocation,
    MissingHDUError,
    Observation,
    Observations,
    Target,
    UnknownHDUClassError,
)

__all__ = [
    "DataStore",
    "REQUIRED_IRF",
    "EventList",
    "REQUIRED_EVENT_COLUMNS",
    "GTI",
    "HDU_CLASSES",
    "IRF_TYPES",
    "HDULocation",
    "MissingHDUError",
    "Observation",
    "Observations",
    "Target",
    "UnknownHDUClassError",
]
