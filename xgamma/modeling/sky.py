"""Sky models, the FoV background model and the `Models` collection with YAML files.

Which one to use when:

- `SkyModel`: one source: a spectral model times an optional spatial model
  (none: a 1-D spectrum source) times an optional temporal model.
- `FoVBackgroundModel`: a spectral *norm* model (default `PowerLawNormSpectralModel`:
  norm and tilt) multiplying one `MapDataset`'s IRF background.
- `Models`: the list of all of them; read and write Gammapy-compatible YAML
  files (``components: [...]``), select by name or dataset, and give the
  `Parameters` a fit sees.

Linked parameters (one `Parameter` object used by several models) are written
with a ``link`` label (``"@index-0"``) and shared again on reading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from .core import ModelError
from .parameter import Parameters
from .spatial import SpatialModel
from .spectral import CompoundSpectralModel, PowerLawNormSpectralModel, SpectralModel
from .temporal import TemporalModel

__all__ = ["FoVBackgroundModel", "Models", "SkyModel"]

# libyaml's safe loader and dumper when PyYAML was built with it: files of many sources read ~10x faster
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class SkyModel:
    """A source: ``spectral(E) x spatial(lon, lat) x temporal(t)``.

    Parameters
    ----------
    spectral_model : `~xgamma.modeling.spectral.SpectralModel`
        Differential flux (cm-2 s-1 TeV-1).
    spatial_model : `~xgamma.modeling.spatial.SpatialModel`, optional
        Normalised morphology; None for a model used on 1-D spectra only.
    temporal_model : `~xgamma.modeling.temporal.TemporalModel`, optional
        Time dependence (a norm); None means constant.
    name : str
        Unique name within a `Models` collection.
    datasets_names : list of str, optional
        Datasets the model applies to; None means all.
    """

    tag = ["SkyModel"]

    def __init__(self, spectral_model, spatial_model=None, temporal_model=None, name="source", datasets_names=None):
        for value, family, key in (
            (spectral_model, SpectralModel, "spectral_model"),
            (spatial_model, SpatialModel, "spatial_model"),
            (temporal_model, TemporalModel, "temporal_model"),
        ):
            if value is not None and not isinstance(value, family):
                raise TypeError(f"SkyModel {name!r}: {key} must be a {family.__name__}, got {type(value).__name__}")
        self.spectral_model = spectral_model
        self.spatial_model = spatial_model
        self.temporal_model = temporal_model
        self.name = str(name)
        self.datasets_names = None if datasets_names is None else list(datasets_names)

    @property
    def components(self) -> list:
        return [m for m in (self.spectral_model, self.spatial_model, self.temporal_model) if m is not None]

    @property
    def parameters(self) -> Parameters:
        """Spectral, then spatial, then temporal parameters."""
        out = Parameters()
        for model in self.components:
            out = out + model.parameters
        return out

    @property
    def position(self):
        """Source position (`~astropy.coordinates.SkyCoord`), or None without a spatial model."""
        return None if self.spatial_model is None else self.spatial_model.position

    @property
    def evaluation_radius(self) -> float | None:
        """Radius (deg) beyond which the spatial model is negligible, or None."""
        return None if self.spatial_model is None else self.spatial_model.evaluation_radius

    def applies_to(self, dataset_name: str) -> bool:
        return self.datasets_names is None or dataset_name in self.datasets_names

    def freeze(self, model_type=None):
        """Freeze all parameters, or those of ``model_type`` ("spectral", "spatial", "temporal")."""
        self._component(model_type).freeze() if model_type else [m.freeze() for m in self.components]

    def unfreeze(self, model_type=None):
        self._component(model_type).unfreeze() if model_type else [m.unfreeze() for m in self.components]

    def _component(self, model_type):
        model = getattr(self, f"{model_type}_model", None)
        if model is None:
            raise ValueError(f"SkyModel {self.name!r} has no {model_type!r} model")
        return model

    def copy(self, name=None, **kwargs) -> SkyModel:
        """Deep copy (no links to other models); ``kwargs`` replace components."""
        components = {
            "spectral_model": self.spectral_model.copy(),
            "spatial_model": None if self.spatial_model is None else self.spatial_model.copy(),
            "temporal_model": None if self.temporal_model is None else self.temporal_model.copy(),
        }
        components.update(kwargs)
        return SkyModel(**components, name=name or self.name, datasets_names=self.datasets_names)

    def to_dict(self, full_output=False) -> dict:
        out = {"name": self.name, "type": self.tag[0], "spectral": self.spectral_model.to_dict(full_output)}
        if self.spatial_model is not None:
            out["spatial"] = self.spatial_model.to_dict(full_output)
        if self.temporal_model is not None:
            out["temporal"] = self.temporal_model.to_dict(full_output)
        if self.datasets_names is not None:
            out["datasets_names"] = list(self.datasets_names)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> SkyModel:
        name = data.get("name", "source")
        if "spectral" not in data:
            raise ModelError(f"SkyModel {name!r} has no 'spectral' entry")
        components = {}
        for key, family in (("spectral", SpectralModel), ("spatial", SpatialModel), ("temporal", TemporalModel)):
            if key in data:
                try:
                    components[f"{key}_model"] = family.from_dict(data[key])
                except ModelError as err:
                    raise ModelError(f"SkyModel {name!r} {key}: {err}") from err
        return cls(**components, name=name, datasets_names=data.get("datasets_names"))

    def __repr__(self):
        lines = [f"SkyModel {self.name!r}" + (f" (datasets {self.datasets_names})" if self.datasets_names else "")]
        for model in self.components:
            lines += ["  " + line for line in repr(model).splitlines()]
        return "\n".join(lines)


class FoVBackgroundModel:
    """Scales one dataset's IRF background: ``background x spectral_model(E)``.

    Parameters
    ----------
    dataset_name : str
        The dataset it belongs to; its name is ``"<dataset_name>-bkg"``.
    spectral_model : `~xgamma.modeling.spectral.SpectralModel`, optional
        A dimensionless norm model evaluated at reco-energy bin centres;
        default `PowerLawNormSpectralModel` (norm 1, tilt 0 frozen, reference 1 TeV).
    """

    tag = ["FoVBackgroundModel", "fov-bkg"]
    spatial_model = None
    temporal_model = None

    def __init__(self, dataset_name, spectral_model=None):
        if spectral_model is None:
            spectral_model = PowerLawNormSpectralModel()
            spectral_model.tilt.frozen = True
        self.dataset_name = str(dataset_name)
        self.spectral_model = spectral_model

    @property
    def name(self) -> str:
        return f"{self.dataset_name}-bkg"

    @property
    def datasets_names(self) -> list[str]:
        return [self.dataset_name]

    @property
    def components(self) -> list:
        return [self.spectral_model]

    @property
    def parameters(self) -> Parameters:
        return self.spectral_model.parameters

    def applies_to(self, dataset_name: str) -> bool:
        return dataset_name == self.dataset_name

    def freeze(self):
        self.spectral_model.freeze()

    def unfreeze(self):
        self.spectral_model.unfreeze()

    def copy(self, name=None) -> FoVBackgroundModel:
        return FoVBackgroundModel(name or self.dataset_name, self.spectral_model.copy())

    def to_dict(self, full_output=False) -> dict:
        return {"type": self.tag[0], "datasets_names": [self.dataset_name], "spectral": self.spectral_model.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> FoVBackgroundModel:
        names = data.get("datasets_names") or []
        if len(names) != 1:
            raise ModelError(f"FoVBackgroundModel needs exactly one entry in 'datasets_names', got {names!r}")
        spectral = SpectralModel.from_dict(data["spectral"]) if "spectral" in data else None
        return cls(names[0], spectral)

    def __repr__(self):
        return "\n".join([f"FoVBackgroundModel {self.name!r}", *("  " + s for s in repr(self.spectral_model).splitlines())])


_COMPONENT_TYPES = {tag: cls for cls in (SkyModel, FoVBackgroundModel) for tag in cls.tag}


class Models:
    """An ordered collection of `SkyModel` and `FoVBackgroundModel` objects.

    Index by position or name; names must be unique. ``Models.read(path)``
    loads a Gammapy model YAML file.
    """

    def __init__(self, models=()):
        if isinstance(models, Models):
            models = list(models)
        elif isinstance(models, (SkyModel, FoVBackgroundModel)):
            models = [models]
        self._models = []
        for model in models:
            self.append(model)

    def append(self, model):
        if model.name in self.names:
            raise ValueError(f"a model named {model.name!r} is already in the collection; names must be unique")
        self._models.append(model)

    def extend(self, models):
        for model in models:
            self.append(model)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self._models]

    def __len__(self):
        return len(self._models)

    def __iter__(self):
        return iter(self._models)

    def __contains__(self, name):
        return name in self.names

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return self._models[self.names.index(key)]
            except ValueError:
                raise KeyError(f"no model named {key!r}; models: {self.names}") from None
        if isinstance(key, slice):
            return Models(self._models[key])
        return self._models[key]

    def __add__(self, other):
        return Models([*self._models, *Models(other)])

    @property
    def parameters(self) -> Parameters:
        """All parameters in model order (a linked parameter appears at each use).

        The same collection is returned while the models hold the same
        parameter objects, so a covariance stored on it by a fit persists.
        """
        out = Parameters()
        for model in self._models:
            out = out + model.parameters
        cached = getattr(self, "_parameters", None)
        if cached is not None and len(cached) == len(out) and all(a is b for a, b in zip(cached, out)):
            return cached
        self._parameters = out
        return out

    def select(self, datasets_names=None, tag=None) -> Models:
        """The models applying to any of ``datasets_names`` and/or of class tag ``"SkyModel"``/``"FoVBackgroundModel"``."""
        if isinstance(datasets_names, str):
            datasets_names = [datasets_names]
        out = []
        for model in self._models:
            if tag is not None and tag not in model.tag:
                continue
            if datasets_names is not None and not any(model.applies_to(n) for n in datasets_names):
                continue
            out.append(model)
        return Models(out)

    def freeze(self):
        for model in self._models:
            model.freeze()

    def unfreeze(self):
        for model in self._models:
            model.unfreeze()

    def copy(self) -> Models:
        """Deep copy keeping links *between* the copied models."""
        import copy

        return copy.deepcopy(self)

    # --- YAML ---------------------------------------------------------------
    def to_dict(self, full_output=False) -> dict:
        components = [model.to_dict(full_output) for model in self._models]
        _mark_links(self, components)
        return {"components": components}

    @classmethod
    def from_dict(cls, data: dict) -> Models:
        if not isinstance(data, dict) or "components" not in data:
            raise ModelError("a models file must be a mapping with a 'components' list")
        models = []
        for i, entry in enumerate(data["components"]):
            kind = entry.get("type") if isinstance(entry, dict) else None
            if kind not in _COMPONENT_TYPES:
                raise ModelError(
                    f"components[{i}] ({entry.get('name', '?') if isinstance(entry, dict) else entry!r}): "
                    f"unknown type {kind!r}; expected one of {sorted(_COMPONENT_TYPES)}"
                )
            models.append(_COMPONENT_TYPES[kind].from_dict(entry))
        out = cls(models)
        _restore_links(out, data["components"])
        return out

    def to_yaml(self) -> str:
        return yaml.dump(_plain(self.to_dict()), Dumper=_YAML_DUMPER, sort_keys=False, default_flow_style=False)

    @classmethod
    def from_yaml(cls, text: str) -> Models:
        return cls.from_dict(yaml.load(text, Loader=_YAML_LOADER))

    @classmethod
    def read(cls, path) -> Models:
        """Read a Gammapy-format model YAML file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise FileNotFoundError(f"cannot read models file {path}: {err}") from err
        try:
            return cls.from_yaml(text)
        except (ModelError, yaml.YAMLError, KeyError, TypeError, ValueError) as err:
            raise ModelError(f"{path}: {err}") from err

    def write(self, path, overwrite=False):
        """Write a Gammapy-format model YAML file."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        path.write_text(self.to_yaml())

    def __repr__(self):
        return "\n".join([f"Models ({len(self)})", *(repr(m) for m in self._models)])


def _plain(obj):
    """YAML-safe copy: numpy scalars to Python floats, NaN kept (YAML writes .nan)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def _parameter_dicts(models: Models, components: list[dict]):
    """Triples (model holding the parameter, parameter name, its dict in ``components``).

    Components are paired by key (a SkyModel may have a temporal model and no
    spatial one) and compound spectral models are walked into their parts.
    """
    for model, entry in zip(models, components):
        for key in ("spectral", "spatial", "temporal"):
            component = getattr(model, f"{key}_model")
            if component is not None and key in entry:
                yield from _component_parameter_dicts(component, entry[key])


def _component_parameter_dicts(component, data: dict):
    if isinstance(component, CompoundSpectralModel):
        yield from _component_parameter_dicts(component.model1, data["model1"])
        yield from _component_parameter_dicts(component.model2, data["model2"])
        return
    for pdict in data.get("parameters", []):
        yield component, pdict["name"], pdict


def _mark_links(models: Models, components: list[dict]):
    pairs = [(component.parameters[name], pdict) for component, name, pdict in _parameter_dicts(models, components)]
    counts = {}
    for par, _ in pairs:
        counts[id(par)] = counts.get(id(par), 0) + 1
    labels = {}
    for par, pdict in pairs:
        if counts[id(par)] > 1:
            pdict["link"] = labels.setdefault(id(par), f"@{par.name}-{len(labels)}")


def _restore_links(models: Models, components: list[dict]):
    shared = {}
    for component, name, pdict in _parameter_dicts(models, components):
        label = pdict.get("link")
        if not label:
            continue
        if label in shared:
            # the model's own table, so parameters without a class slot (norm_0 ...) link too
            component._parameters[name] = shared[label]
        else:
            shared[label] = component.parameters[name]
