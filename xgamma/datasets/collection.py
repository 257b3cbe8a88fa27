"""Collections of datasets for joint fits: `Datasets` (local) and `DaskDatasets` (on a cluster).

Which one to use when:

- `Datasets`: a handful of datasets in this process; the joint statistic is
  the sum of each dataset's ``stat_sum``.
- `DaskDatasets`: many datasets (e.g. one per run of a survey). They are sent
  once to the Dask workers and stay there with a copy of the models; each
  likelihood call sends the parameter vector, runs one task per worker that
  returns that worker's partial sum, and adds the sums. The result equals
  the local evaluation (same code on the same arrays).

Both satisfy what `xgamma.fit.Fit` needs: ``models.parameters`` and
``stat_sum()``, plus ``stat_sum_at(values)`` for a vector of free values.
"""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = ["DaskDatasets", "Datasets"]


def _as_models(models):
    from ..modeling import Models

    return models if isinstance(models, Models) else Models(models)


class Datasets:
    """An ordered, named list of datasets fitted jointly.

    Parameters
    ----------
    datasets : iterable of datasets
        Names must be unique.
    models : `~xgamma.modeling.Models`, list or model, optional
        Attached to every dataset (each keeps those that apply to it).
    """

    def __init__(self, datasets=(), models=None):
        self._datasets = []
        self._models = None
        for dataset in datasets:
            self.append(dataset)
        if models is not None:
            self.models = models

    def append(self, dataset):
        """Add a dataset; it takes the collection's models, if the collection has them."""
        if dataset.name in self.names:
            raise ValueError(f"a dataset named {dataset.name!r} is already in the collection; names must be unique")
        if self._models is not None:
            dataset.models = self._models
        self._datasets.append(dataset)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self._datasets]

    def __len__(self):
        return len(self._datasets)

    def __iter__(self):
        return iter(self._datasets)

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return self._datasets[self.names.index(key)]
            except ValueError:
                raise KeyError(f"no dataset named {key!r}; datasets: {self.names}") from None
        if isinstance(key, slice):  # like Models: a collection, holding the same datasets and models
            return Datasets(self._datasets[key])
        return self._datasets[key]

    @property
    def models(self):
        """All models of the fit (`~xgamma.modeling.Models`)."""
        if self._models is not None:
            return self._models
        from ..modeling import Models

        found = []
        for dataset in self._datasets:
            for model in dataset.models or []:
                if all(model.name != other.name for other in found):
                    found.append(model)
        # the same collection while the datasets hold the same models, so a fit's covariance persists
        cached = getattr(self, "_union", None)
        if cached is None or len(cached) != len(found) or any(a is not b for a, b in zip(cached, found)):
            cached = self._union = Models(found)
        return cached

    @models.setter
    def models(self, models):
        models = _as_models(models)
        for dataset in self._datasets:
            dataset.models = models
        self._models = models

    @property
    def parameters(self):
        return self.models.parameters

    def stat_sum(self) -> float:
        """Joint -2 ln L at the models' current parameter values (no priors)."""
        return float(sum(d.stat_sum() for d in self._datasets))

    def stat_sum_at(self, free_values) -> float:
        """`stat_sum` with the free parameters set to ``free_values`` (in parameter units)."""
        self.models.parameters.set_free_values(free_values)
        return self.stat_sum()

    def __repr__(self):
        lines = [f"Datasets ({len(self)})"]
        lines += [f"  {d.name!r}: {type(d).__name__}" for d in self._datasets]
        return "\n".join(lines)


class _WorkerPart:
    """The datasets one worker holds, with its own copy of the models."""

    def __init__(self, datasets, models):
        self.models = models
        self._datasets = list(datasets)
        self._joint = None

    def stat_sum(self, values) -> float:
        if self._joint is None:
            # built on the worker, so the caller's datasets keep their own models
            self._joint = Datasets(self._datasets, models=self.models)
        self.models.parameters.unique.values = values
        return self._joint.stat_sum()


def _part_stat_sum(part: _WorkerPart, values) -> float:
    return part.stat_sum(values)


class DaskDatasets:
    """A joint likelihood whose datasets live on Dask workers.

    Parameters
    ----------
    datasets : iterable of datasets
        Sent once, split over the workers by size (counts bins).
    models : `~xgamma.modeling.Models` or list
        The fit's models. Their parameters stay here (the optimiser changes
        them); every call sends all unique parameter values to the workers.
    client : `distributed.Client`, optional
        The cluster to use; without it, ``scheduler`` or ``$XGAMMA_SCHEDULER``
        is connected to, or an embedded LocalCluster started (see
        `xgamma.cluster.get_client`), and closed by `close`.
    scheduler : str, optional
        Address of a running scheduler.
    block_shape : tuple of int, optional
        Split every map dataset into this many spatial blocks ``(ny, nx)``
        (`~xgamma.datasets.blocks.split_into_blocks`), so that one large map
        is evaluated on several workers; the statistic is unchanged.
    block_margin : str, float or `~astropy.units.Quantity`
        Margin of the blocks (deg), at least the PSF kernel radius plus the
        extent of sources near block edges. Default 1 deg.

    Notes
    -----
    Scripts that start the embedded cluster must run under
    ``if __name__ == "__main__":`` (worker processes import the script).
    A `distributed.LocalCluster` made by hand keeps distributed's
    ``MALLOC_TRIM_THRESHOLD_`` setting, which makes likelihood calls on the
    workers about 2.5 times slower; `xgamma.cluster.get_client` removes it.

    The models' structure (which parameters are linked) is sent with the
    datasets: link or unlink parameters before creating a `DaskDatasets`.

    The datasets' caches (arrays, PSF kernels, spatial responses) build up
    on the workers during the first calls and are reused by later ones,
    because each part stays in its worker's memory as one object.
    """

    def __init__(self, datasets, models, client=None, scheduler=None, block_shape=None, block_margin="1 deg"):
        from ..cluster import get_client
        from .blocks import split_into_blocks

        datasets = list(datasets)
        if block_shape is not None:
            datasets = [
                block
                for dataset in datasets
                for block in (split_into_blocks(dataset, block_shape, block_margin) if hasattr(dataset, "geom_irf")
                              else [dataset])
            ]
        self._models = _as_models(models)
        self._names = [d.name for d in datasets]
        if len(set(self._names)) != len(self._names):
            raise ValueError(f"dataset names must be unique, got {self._names}")
        self._exit = contextlib.ExitStack()
        self.client = self._exit.enter_context(get_client(client, scheduler=scheduler))
        workers = sorted(self.client.scheduler_info()["workers"])
        if not workers:
            raise RuntimeError("the Dask cluster has no workers")
        parts = _balanced_parts(list(datasets), len(workers))
        self._parts = []
        for worker, part in zip(workers, parts):
            if not part:
                continue
            [future] = self.client.scatter([_WorkerPart(part, self._models)], workers=[worker], hash=False)
            self._parts.append((worker, future))

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def models(self):
        return self._models

    @property
    def parameters(self):
        return self._models.parameters

    def stat_sum(self) -> float:
        """Joint -2 ln L: one task per worker, partial sums added here."""
        values = self._models.parameters.unique.values
        futures = [
            self.client.submit(_part_stat_sum, part, values, workers=[worker], allow_other_workers=False, pure=False)
            for worker, part in self._parts
        ]
        return float(sum(self.client.gather(futures)))

    def stat_sum_at(self, free_values) -> float:
        self._models.parameters.set_free_values(free_values)
        return self.stat_sum()

    def close(self):
        """Release the datasets held on the workers (and a cluster this object started)."""
        if self._parts:
            self.client.cancel([part for _, part in self._parts])
        self._parts = []
        self._exit.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"DaskDatasets ({len(self._names)} datasets on {len(self._parts)} workers)"


def _balanced_parts(datasets, n_parts) -> list[list]:
    """Split datasets into ``n_parts`` lists of similar total size (largest first, greedy)."""
    # counts bins; a FluxPointsDataset (no counts) counts its points
    sizes = [int(np.prod(d.counts.shape)) if hasattr(d, "counts") else len(d.data) for d in datasets]
    parts, totals = [[] for _ in range(n_parts)], np.zeros(n_parts)
    for index in np.argsort(sizes)[::-1]:
        target = int(np.argmin(totals))
        parts[target].append(datasets[index])
        totals[target] += sizes[index]
    return parts
