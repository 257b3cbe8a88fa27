"""The base class of every model: declared parameters, YAML dicts, a registry of types.

A model class declares its parameters as class attributes::

    class PowerLawSpectralModel(SpectralModel):
        tag = ["PowerLawSpectralModel", "pl"]
        index = Parameter("index", 2.0)
        amplitude = Parameter("amplitude", 1e-12, "cm-2 s-1 TeV-1", is_norm=True)
        reference = Parameter("reference", 1.0, "TeV", frozen=True)

        @staticmethod
        def evaluate(energy, index, amplitude, reference):
            return amplitude * (energy / reference) ** -index

Each instance gets its own copies (``PowerLawSpectralModel(index=2.3)``
sets a value, ``"2 TeV"`` strings and Quantities are converted to the
declared unit). Assigning a `Parameter` object links it:
``model_b.index = model_a.index``. ``evaluate`` works on plain floats in the
declared units; `Model.parameter_values` hands them over as keywords.

Each model family (spectral, spatial, temporal, sky) keeps a registry of its
YAML type names (``tag``), so ``SpectralModel.from_dict({"type": "pl", ...})``
builds the right class; the first tag is the one written.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import numpy as np

from .parameter import Parameter, Parameters

__all__ = ["Model", "ModelError"]


class ModelError(ValueError):
    """A model or model file is not valid; the message names the model and key."""


class _ParameterSlot:
    """Class attribute giving access to an instance's copy of a declared parameter."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, instance, owner):
        if instance is None:
            return owner._declared[self.name]
        return instance._parameters[self.name]

    def __set__(self, instance, value):
        if isinstance(value, Parameter):
            instance._parameters[self.name] = value  # linked: both models now hold this object
        else:
            instance._parameters[self.name].value = value


class Model:
    """Base of all models: named parameters, copy, YAML dict round trip.

    Subclasses set ``tag`` (YAML type names, the first is written) and
    declare parameters as class attributes.
    """

    tag: ClassVar[list[str]] = []
    _registry: ClassVar[dict[str, type]] = {}
    _declared: ClassVar[dict[str, Parameter]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        declared = dict(getattr(cls, "_declared", {}))
        for name, value in list(vars(cls).items()):
            if isinstance(value, Parameter):
                declared[value.name] = value
                setattr(cls, name, _ParameterSlot(value.name))
        cls._declared = declared
        for tag in cls.tag if "tag" in vars(cls) else ():
            cls._registry[tag] = cls

    def __init__(self, **kwargs):
        self._parameters = {name: par.copy() for name, par in self._declared.items()}
        for key, value in kwargs.items():
            if key not in self._parameters:
                raise TypeError(
                    f"{type(self).__name__} has no parameter {key!r}; parameters: {list(self._parameters)}"
                )
            setattr(self, key, value)

    @property
    def type_name(self) -> str:
        return self.tag[0] if self.tag else type(self).__name__

    @property
    def parameters(self) -> Parameters:
        """The model's parameters, in declaration order."""
        return Parameters(self._parameters.values())

    @property
    def parameter_values(self) -> dict[str, float]:
        """``{name: value}`` in the declared units: the keywords of ``evaluate``."""
        return {name: par.value for name, par in self._parameters.items()}

    def freeze(self):
        self.parameters.freeze_all()

    def unfreeze(self):
        self.parameters.unfreeze_all()

    def copy(self, **kwargs):
        """A deep copy (links to parameters of *other* models are not kept); ``kwargs`` set values."""
        new = copy.deepcopy(self)
        for key, value in kwargs.items():
            setattr(new, key, value)
        return new

    # --- YAML dicts -----------------------------------------------------
    def to_dict(self, full_output: bool = False) -> dict:
        """A Gammapy-compatible dict: ``{"type": tag, "parameters": [...]}``."""
        return {"type": self.type_name, "parameters": [p.to_dict() for p in self.parameters]}

    @classmethod
    def _class_for(cls, data: dict) -> type:
        try:
            tag = data["type"]
        except (KeyError, TypeError) as err:
            raise ModelError(f"model entry has no 'type': {data!r}") from err
        try:
            return cls._registry[tag]
        except KeyError:
            known = sorted(k for k, v in cls._registry.items() if v.tag and v.tag[0] == k)
            raise ModelError(f"unknown {cls.__name__} type {tag!r}; known types: {known}") from None

    @classmethod
    def from_dict(cls, data: dict) -> Model:
        """Build a model from its dict; the class is looked up by ``type`` in this family's registry."""
        return cls._class_for(data)._from_dict(data)

    @classmethod
    def _from_dict(cls, data: dict) -> Model:
        # models with more than parameters (frames, files, sub-models) extend this
        model = cls()
        model._update_parameters(data.get("parameters", []))
        return model

    def _update_parameters(self, entries):
        params = self.parameters
        for entry in entries:
            name = entry.get("name")
            if name not in params:
                raise ModelError(f"{self.type_name} has no parameter {name!r}; parameters: {params.names}")
            params[name].update_from_dict(entry)

    # --- display ----------------------------------------------------------
    def __repr__(self):
        lines = [f"{type(self).__name__}"]
        width = max((len(p.name) for p in self.parameters), default=0)
        for par in self.parameters:
            unit = f" {par.unit}" if par.unit else ""
            err = f" ± {par.error:.3g}" if par.error and np.isfinite(par.error) else ""
            frozen = "  (frozen)" if par.frozen else ""
            lines.append(f"  {par.name:<{width}} = {par.value:.6g}{err}{unit}{frozen}")
        return "\n".join(lines)
