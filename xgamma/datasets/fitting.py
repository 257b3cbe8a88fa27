"""What makes a dataset fittable: models, predicted counts, the likelihood, fake data.

`FitMixin` (Cash) is shared by `MapDataset` and `SpectrumDataset`,
`OnOffFitMixin` (WStat) by `MapDatasetOnOff` and `SpectrumDatasetOnOff`. A
dataset class supplies ``_make_fit_arrays`` (its arrays as plain NumPy, built
once); the statistic comes from ``_stat_bins`` (per bin) and, on maps, the
faster ``_counted_stat_sum`` (Cash from the fitted bins with counts; None
where it does not apply), ``_masked_stat_sum`` and ``_background_only_bins``.

Models are attached with ``dataset.models = models`` (a `Models`, a list or
one model); the dataset keeps those that apply to it (``datasets_names``
None or containing its name; its own `FoVBackgroundModel`). The models'
parameters are never copied into the dataset: the likelihood reads their
current values, so a copy of the dataset and the models on a Dask worker
gives the same numbers.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..stats import TRUNCATION_VALUE, cash, wstat, wstat_profile_background
from .evaluator import CountedBins, MapEvaluator, SpectrumEvaluator

__all__ = ["FitMixin", "OnOffFitMixin"]


def _varies_in_time(model) -> bool:
    """Whether a model's temporal part can change npred (a constant one's mean is 1 over any GTIs)."""
    from ..modeling import ConstantTemporalModel

    return model.temporal_model is not None and not isinstance(model.temporal_model, ConstantTemporalModel)


class FitMixin:
    """Models, npred, statistic and `fake` for dataset classes (see the module docstring)."""

    stat_type = "cash"

    # --- models -------------------------------------------------------------------
    @property
    def models(self):
        """The models that apply to this dataset (`~xgamma.modeling.Models`), or None."""
        return getattr(self, "_models", None)

    @models.setter
    def models(self, models):
        from ..modeling import Models

        self._evaluators = {}
        self._last_stat = None
        self._temporal_cache = {}
        if models is None:
            self._models = None
            return
        # a spatial block of a larger dataset takes the models of its parent
        scope = self._data.attrs.get("block_of") or self.name
        selected = Models(models).select(datasets_names=[scope])
        for model in selected:
            if _varies_in_time(model) and self.gti is None:
                raise ValueError(
                    f"model {model.name!r} has a temporal model, but dataset {self.name!r} carries no GTI to "
                    "integrate it over (datasets made by the makers have one in attrs['gti'])"
                )
        self._models = selected

    def _sources(self):
        return [] if self.models is None else [m for m in self.models if "SkyModel" in m.tag]

    def _background_model(self):
        if self.models is None:
            return None
        found = [m for m in self.models if "FoVBackgroundModel" in m.tag]
        return found[0] if found else None

    # --- masks and arrays ------------------------------------------------------------
    @property
    def mask_fit(self) -> xr.DataArray | None:
        """Fit-range mask (bool, shape of counts), or None."""
        return self._data.get("mask_fit")

    @mask_fit.setter
    def mask_fit(self, mask):
        if mask is None:
            self._data = self._data.drop_vars("mask_fit", errors="ignore")
        else:
            template = self.mask_safe
            if isinstance(mask, xr.DataArray):
                mask = mask.broadcast_like(template).transpose(*template.dims)
            values = np.broadcast_to(np.asarray(mask, dtype=bool), template.shape)
            self._data["mask_fit"] = template.copy(data=values.copy())
        self._fit_arrays = self._background_stat = self._last_stat = self._counted_bins = None
        self._box_cache = {}

    @property
    def mask(self) -> xr.DataArray:
        """``mask_safe & mask_fit`` (``mask_safe`` alone without a fit mask)."""
        mask = self.mask_safe
        return mask & self.mask_fit if self.mask_fit is not None else mask

    def __getstate__(self):
        # caches are rebuilt where the dataset is unpickled
        state = dict(self.__dict__)
        for cache in ("_fit_arrays", "_evaluators", "_background_cache", "_background_stat", "_last_stat",
                      "_temporal_cache", "_box_cache", "_counted_bins", "_counted_background_cache"):
            state.pop(cache, None)
        return state

    def fit_arrays(self):
        """The dataset as plain NumPy arrays (`~xgamma.datasets.evaluator.FitArrays`), built once."""
        arrays = getattr(self, "_fit_arrays", None)
        if arrays is None:
            arrays = self._fit_arrays = self._make_fit_arrays()
        return arrays

    def _npred_of(self, model):
        """A source's npred from its evaluator (None if it misses the dataset), times its temporal factor."""
        result = self._evaluator(model).compute_npred()
        if result is None or not _varies_in_time(model):
            return result
        factor = self._temporal_factor(model.temporal_model)
        if isinstance(result, tuple):
            return result[0], result[1] * factor
        return result * factor

    def _temporal_factor(self, temporal_model) -> float:
        """Mean of the temporal model over the dataset's GTIs, cached on its parameter values."""
        cache = self.__dict__.setdefault("_temporal_cache", {})
        values = tuple(temporal_model.parameters.values)
        cached = cache.get(id(temporal_model))
        if cached is None or cached[0] != values:
            from ..modeling.temporal import integrate_gti

            if "gti" not in cache:
                cache["gti"] = self.gti
            cached = cache[id(temporal_model)] = (values, integrate_gti(temporal_model, cache["gti"]))
        return cached[1]

    def _evaluator(self, model):
        evaluators = self.__dict__.setdefault("_evaluators", {})
        evaluator = evaluators.get(model.name)
        if evaluator is None or evaluator.model is not model:
            arrays = self.fit_arrays()
            kind = MapEvaluator if arrays.geom is not None else SpectrumEvaluator
            evaluator = evaluators[model.name] = kind(model, arrays)
        return evaluator

    # --- predicted counts ------------------------------------------------------------
    def npred_signal_values(self, model_name=None) -> np.ndarray:
        """Predicted source counts (NumPy, shape of counts); one model's with ``model_name``.

        Raises
        ------
        KeyError
            If no source model of this dataset is called ``model_name``.
        """
        arrays = self.fit_arrays()
        total = np.zeros(arrays.counts.shape)
        names = [model.name for model in self._sources()]
        if model_name is not None and model_name not in names:
            raise KeyError(f"dataset {self.name!r} has no source model {model_name!r}; its source models: {names}")
        for model in self._sources():
            if model_name is not None and model.name != model_name:
                continue
            result = self._npred_of(model)
            if result is None:  # the source misses this dataset
                continue
            if isinstance(result, tuple):  # map evaluators give their cutout
                slices, npred = result
                total[:, slices["y"], slices["x"]] += npred
            else:
                total += result
        return total

    def npred_background_values(self) -> np.ndarray:
        """Predicted background counts (NumPy): IRF background x FoV background model."""
        arrays = self.fit_arrays()
        if arrays.background is None:
            return np.zeros(arrays.counts.shape)
        bkg_model = self._background_model()
        if bkg_model is None:
            return arrays.background
        key = tuple(bkg_model.parameters.values)
        cached = self.__dict__.get("_background_cache")
        if cached is None or cached[0] != key:
            norm = np.asarray(bkg_model.spectral_model.dnde_values(arrays.energy_center))
            background = arrays.background * norm.reshape((-1,) + (1,) * (arrays.background.ndim - 1))
            cached = self._background_cache = (key, background)
        return cached[1]

    def npred_values(self) -> np.ndarray:
        return self.npred_signal_values() + self.npred_background_values()

    def npred(self) -> xr.DataArray:
        """Predicted counts (signal + background), labelled like ``counts``."""
        return self._like_counts(self.npred_values(), "npred")

    def npred_signal(self, model_name=None) -> xr.DataArray:
        """Predicted source counts, labelled like ``counts``."""
        return self._like_counts(self.npred_signal_values(model_name), "npred_signal")

    def residuals(self, method="diff") -> xr.DataArray:
        """``counts - npred`` (``"diff"``), ``/ npred`` (``"diff/model"``) or ``/ sqrt(npred)`` (``"diff/sqrt(model)"``)."""
        npred = self.npred_values()
        diff = self.fit_arrays().counts - npred
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = {"diff": diff, "diff/model": diff / npred, "diff/sqrt(model)": diff / np.sqrt(npred)}
        if method not in scaled:
            raise ValueError(f"method must be one of {list(scaled)}, got {method!r}")
        return self._like_counts(scaled[method], "residuals")

    def _like_counts(self, values, name) -> xr.DataArray:
        template = self.counts
        out = template.copy(data=np.asarray(values, dtype=float))
        out.name = name
        return out

    # --- likelihood -----------------------------------------------------------------
    def stat_array(self) -> np.ndarray:
        """Statistic per bin (no mask applied)."""
        return self._stat_bins((slice(None),), self.npred_signal_values())

    def _stat_bins(self, index, npred_signal) -> np.ndarray:
        """Statistic of the bins ``counts[index]`` for the source counts ``npred_signal`` there."""
        return cash(self.fit_arrays().counts[index], npred_signal + self.npred_background_values()[index])

    def stat_sum(self) -> float:
        """Sum of the statistic (-2 ln L, errordef 1) over ``mask_safe & mask_fit``.

        On maps the background-only statistic is cached while the background
        model's parameters do not change; with Cash only the sources' npred at
        the fitted bins holding counts (and its sum) is added to it
        (`~xgamma.datasets.evaluator.CountedBins`), otherwise the bins the
        sources' cutouts cover are recomputed.
        """
        key = None if self.models is None else tuple(self.models.parameters.values)
        cached = self.__dict__.get("_last_stat")
        if cached is not None and key is not None and cached[0] == key:
            return cached[1]  # e.g. the optimiser asking again at the same point
        value = self._stat_sum()
        self._last_stat = (key, value)
        return value

    def _stat_sum(self) -> float:
        arrays = self.fit_arrays()
        if arrays.geom is None:
            return float(self.stat_array()[arrays.mask].sum())
        sparse = self._counted_stat_sum()
        return sparse if sparse is not None else self._box_stat_sum()

    def _counted_stat_sum(self) -> float | None:
        """The Cash statistic from the fitted bins with counts (`CountedBins`); None where it does not apply.

        It applies when no prediction can be truncated: every source's npred
        >= 0 and the background >= the truncation value in every fitted bin.
        """
        counted = self._counted()
        background = self._counted_background(counted)
        if background is None:
            return None
        signal, fitted_sum = np.zeros(len(background)), 0.0
        for model in self._sources():
            part = self._evaluator(model).counted_npred(counted)
            if part is None:  # the source misses this dataset
                continue
            factor = self._temporal_factor(model.temporal_model) if _varies_in_time(model) else 1.0
            if not (part.nonnegative and factor >= 0):
                return None
            signal[part.positions] += factor * part.values
            fitted_sum += factor * part.fitted_sum
        _, background_total = self._background_only_stat()
        return float(background_total + 2 * fitted_sum - 2 * np.dot(counted.counts, np.log1p(signal / background)))

    def _counted(self) -> CountedBins:
        counted = self.__dict__.get("_counted_bins")
        if counted is None:
            arrays = self.fit_arrays()
            counted = self._counted_bins = CountedBins.from_arrays(arrays.counts, arrays.mask)
        return counted

    def _counted_background(self, counted) -> np.ndarray | None:
        """Background npred at the counted bins; None if it is below the truncation value in a fitted bin."""
        bkg_model = self._background_model()
        values = None if bkg_model is None else tuple(bkg_model.parameters.values)
        cached = self.__dict__.get("_counted_background_cache")
        if cached is None or cached[0] is not counted or cached[1] != values:
            background = self.npred_background_values()
            fitted = background[counted.mask]
            usable = fitted.size == 0 or fitted.min() >= TRUNCATION_VALUE
            cached = self._counted_background_cache = (counted, values, background.ravel()[counted.flat] if usable else None)
        return cached[2]

    def _box_stat_sum(self) -> float:
        """The statistic recomputed over the box the sources' cutouts cover (any statistic, any prediction)."""
        arrays = self.fit_arrays()
        pieces = [self._npred_of(model) for model in self._sources()]
        pieces = [piece for piece in pieces if piece is not None]
        box_sums, background_total = self._background_only_stat()
        if not pieces:
            return background_total
        y0, y1 = min(p[0]["y"].start for p in pieces), max(p[0]["y"].stop for p in pieces)
        x0, x1 = min(p[0]["x"].start for p in pieces), max(p[0]["x"].stop for p in pieces)
        box = (slice(None), slice(y0, y1), slice(x0, x1))
        signal = np.zeros((arrays.counts.shape[0], y1 - y0, x1 - x0))
        for slices, npred in pieces:
            signal[:, slices["y"].start - y0:slices["y"].stop - y0, slices["x"].start - x0:slices["x"].stop - x0] += npred
        inside = self._masked_stat_sum(box, signal) - box_sums(y0, y1, x0, x1)
        return float(background_total + inside)

    def _masked_stat_sum(self, box, npred_signal) -> float:
        """Sum of the Cash statistic over the fitted bins of ``box``.

        ``2 sum(mu) - 2 sum(n ln mu)``, the logarithm taken only where there
        are counts (most bins of a gamma-ray map have none).
        """
        fitted, counts, has_counts = self._box_bins(box)
        mu = np.maximum((npred_signal + self.npred_background_values()[box]).ravel()[fitted], TRUNCATION_VALUE)
        return float(2 * (mu.sum() - np.dot(counts, np.log(mu[has_counts]))))

    def _background_only_bins(self) -> np.ndarray:
        """Cash statistic of each fitted bin without sources (0 elsewhere); logs only where counts."""
        arrays = self.fit_arrays()
        mu = np.maximum(self.npred_background_values(), TRUNCATION_VALUE)
        bins = np.where(arrays.mask, 2 * mu, 0.0)
        counted = np.flatnonzero(arrays.mask & (arrays.counts > 0))
        bins.flat[counted] -= 2 * arrays.counts.flat[counted] * np.log(mu.flat[counted])
        return bins

    def _box_bins(self, box):
        """Fitted bins of a box (flat indices), their non-zero counts and where those are; kept per box."""
        cache = self.__dict__.setdefault("_box_cache", {})
        key = (box[1].start, box[1].stop, box[2].start, box[2].stop)
        if key not in cache:
            arrays = self.fit_arrays()
            fitted = np.flatnonzero(arrays.mask[box])
            counts = arrays.counts[box].ravel()[fitted]
            has_counts = np.flatnonzero(counts)
            cache[key] = (fitted, counts[has_counts], has_counts)
        return cache[key]

    def _background_only_stat(self):
        """The statistic without sources: ``(box_sums, total)``, cached on the background parameters.

        ``box_sums(y0, y1, x0, x1)`` is its sum over the fitted bins of a pixel
        box, from a summed-area table (constant time, whatever the box size).
        """
        bkg_model = self._background_model()
        key = None if bkg_model is None else tuple(bkg_model.parameters.values)
        cached = self.__dict__.get("_background_stat")
        if cached is None or cached[0] != key:
            image = self._background_only_bins().sum(axis=0)
            table = np.zeros((image.shape[0] + 1, image.shape[1] + 1))
            table[1:, 1:] = image.cumsum(axis=0).cumsum(axis=1)

            def box_sums(y0, y1, x0, x1):
                return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]

            cached = self._background_stat = (key, box_sums, float(image.sum()))
        return cached[1], cached[2]

    # --- simulation -------------------------------------------------------------------
    def fake(self, random_state=None, name=None):
        """A copy whose counts are a Poisson draw of npred.

        Parameters
        ----------
        random_state : int or `numpy.random.Generator`, optional
            Seed or generator.
        name : str, optional
            Name of the copy (default: the same name).

        Returns
        -------
        Dataset
            Same class, models attached, counts replaced.
        """
        rng = np.random.default_rng(random_state)
        out = self.copy(name=name)
        out._data["counts"] = self.counts.copy(data=rng.poisson(self.npred_values()).astype(float))
        out.models = self.models
        return out


class OnOffFitMixin(FitMixin):
    """WStat datasets (ON and OFF counts): the background is profiled, not modelled."""

    stat_type = "wstat"

    def _make_fit_arrays(self):
        arrays = super()._make_fit_arrays()
        arrays.background = None  # alpha * counts_off is a measurement, profiled by WStat
        arrays.counts_off = self.counts_off.transpose(*self.counts.dims).values.astype(float)
        arrays.alpha = self.alpha.transpose(*self.counts.dims).values.astype(float)
        return arrays

    def _stat_bins(self, index, npred_signal) -> np.ndarray:
        arrays = self.fit_arrays()
        return wstat(arrays.counts[index], arrays.counts_off[index], arrays.alpha[index], npred_signal)

    def _counted_stat_sum(self):
        return None  # WStat profiles the background in every bin: no sparse form

    def _masked_stat_sum(self, box, npred_signal) -> float:
        return float(self._stat_bins(box, npred_signal)[self.fit_arrays().mask[box]].sum())

    def _background_only_bins(self) -> np.ndarray:
        return np.where(self.fit_arrays().mask, self._stat_bins((slice(None),), 0.0), 0.0)

    def npred_background_values(self) -> np.ndarray:
        """The profiled (most likely) ON background for the current signal prediction."""
        arrays = self.fit_arrays()
        mu_off = wstat_profile_background(arrays.counts, arrays.counts_off, arrays.alpha, self.npred_signal_values())
        return np.nan_to_num(arrays.alpha * mu_off)

    def fake(self, npred_background, random_state=None, name=None):
        """A copy with ON and OFF counts drawn from Poisson distributions.

        Parameters
        ----------
        npred_background : array-like or `xarray.DataArray`
            Expected background counts in the ON region (shape of counts);
            OFF counts are drawn with mean ``npred_background / alpha``.
        random_state : int or `numpy.random.Generator`, optional
        name : str, optional

        Returns
        -------
        Dataset
            ``counts ~ Poisson(npred_signal + npred_background)``.
        """
        rng = np.random.default_rng(random_state)
        background = np.asarray(npred_background, dtype=float)
        alpha = self.fit_arrays().alpha
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_off = np.where(alpha > 0, background / alpha, 0.0)
        out = self.copy(name=name)
        out._data["counts"] = self.counts.copy(data=rng.poisson(self.npred_signal_values() + background).astype(float))
        out._data["counts_off"] = self.counts_off.copy(data=rng.poisson(mean_off).astype(float))
        out.models = self.models
        return out
