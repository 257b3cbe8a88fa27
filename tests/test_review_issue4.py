"""Regression tests for bugs found in the review of modeling, fit, datasets and estimators (issue 4)."""

import numpy as np
import pytest

from xgamma.axes import MapAxis
from xgamma.datasets.map import MapDataset
from xgamma.geom import WcsGeom
from xgamma.modeling import (
    GaussianPrior,
    Models,
    Parameter,
    PointSpatialModel,
    PowerLawSpectralModel,
    SkyModel,
    TemplateSpatialModel,
)

# ---- priors in Gammapy's YAML layout --------------------------------------------------------

GAMMAPY_PRIOR_YAML = """
components:
- name: src
  type: SkyModel
  spectral:
    type: PowerLawSpectralModel
    parameters:
    - name: index
      value: 2.5
      unit: ''
      prior:
        type: GaussianPrior
        parameters:
        - name: mu
          value: 2.3
          unit: ''
        - name: sigma
          value: 0.2
          unit: ''
        weight: 4.0
    - {name: amplitude, value: 1.0e-12, unit: cm-2 s-1 TeV-1}
    - {name: reference, value: 1.0, unit: TeV}
"""


def test_gammapy_prior_is_read_with_its_weight():
    """Gammapy writes a prior as {type, parameters: [mu, sigma], weight}; weight x ((v - mu) / sigma)**2."""
    index = Models.from_yaml(GAMMAPY_PRIOR_YAML)["src"].spectral_model.index
    assert index.prior is not None
    # 4 x ((2.5 - 2.3) / 0.2)**2 = 4
    assert index.prior.stat(index.value) == pytest.approx(4.0)


def test_prior_is_written_as_gammapy_writes_it_and_read_back():
    par = Parameter("e_cut", 2.0, "TeV", prior=GaussianPrior(mu=3.0, sigma=0.5))
    data = par.to_dict()["prior"]
    assert data["type"] == "GaussianPrior" and data["weight"] == 1.0
    values = {p["name"]: (p["value"], p["unit"]) for p in data["parameters"]}
    assert values == {"mu": (3.0, "TeV"), "sigma": (0.5, "TeV")}
    back = Parameter("e_cut", 1.0, "TeV")
    back.update_from_dict(par.to_dict())
    assert back.prior == GaussianPrior(3.0, 0.5)


def test_prior_in_the_file_unit_is_converted_to_the_parameter_unit():
    par = Parameter("e_cut", 10.0, "TeV")
    prior = {"type": "GaussianPrior", "weight": 1,
             "parameters": [{"name": "mu", "value": 2000.0, "unit": ""}, {"name": "sigma", "value": 500.0}]}
    par.update_from_dict({"name": "e_cut", "value": 2000.0, "unit": "GeV", "prior": prior})
    assert (par.prior.mu, par.prior.sigma) == pytest.approx((2.0, 0.5))
    flat = Parameter("e_cut", 10.0, "TeV")
    flat.update_from_dict({"name": "e_cut", "value": 2000.0, "unit": "GeV",
                           "prior": {"type": "GaussianPrior", "mu": 2000.0, "sigma": 500.0}})
    assert (flat.prior.mu, flat.prior.sigma) == pytest.approx((2.0, 0.5))


def test_unsupported_prior_type_names_the_parameter():
    par = Parameter("index", 2.0)
    with pytest.raises(ValueError, match="index.*UniformPrior"):
        par.update_from_dict({"name": "index", "prior": {"type": "UniformPrior", "parameters": [], "weight": 1}})


# ---- forward folding of a template away from the dataset centre -----------------------------


def _flat_dataset():
    """6 x 6 deg galactic map, exposure 1e12 cm2 s, no PSF (delta kernels), diagonal edisp."""
    energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=2)
    geom = WcsGeom.create(skydir=(0, 0), width=(6, 6), binsz=0.1, frame="galactic", axes=[energy])
    dataset = MapDataset.create(geom, name="flat")
    dataset.data["exposure"][:] = 1e12
    dataset.data["mask_safe"][:] = True
    edisp = np.zeros(dataset.data["edisp"].shape)
    edisp[[0, 1], [0, 1]] = 1.0
    dataset.data["edisp"][:] = edisp
    return dataset


def test_template_away_from_the_dataset_centre_predicts_its_flux():
    """A small template centred at (2, 1) deg predicts as many counts as a point source there."""
    dataset = _flat_dataset()
    geom = WcsGeom.create(skydir=(2, 1), width=(0.6, 0.6), binsz=0.05, frame="galactic")
    template = TemplateSpatialModel(geom.to_dataarray(np.ones(geom.npix[::-1]), unit=""))
    expected = []
    for spatial in (PointSpatialModel(lon_0=2, lat_0=1, frame="galactic"), template):
        dataset.models = [SkyModel(PowerLawSpectralModel(), spatial, name="source")]
        expected.append(dataset.npred_signal_values().sum())
    assert expected[0] > 0
    assert expected[1] == pytest.approx(expected[0], rel=1e-3)  # resampled onto the dataset pixels


def test_npred_signal_of_an_unknown_model_names_the_known_ones():
    """A misspelt model name is an error, not a map of zeros."""
    dataset = _flat_dataset()
    dataset.models = [SkyModel(PowerLawSpectralModel(), PointSpatialModel(frame="galactic"), name="crab")]
    assert dataset.npred_signal("crab").values.sum() > 0
    with pytest.raises(KeyError, match="'carb'.*crab"):
        dataset.npred_signal("carb")


def test_slice_of_datasets_is_datasets_with_their_models():
    from xgamma.datasets import Datasets

    first, second = _flat_dataset().copy(name="a"), _flat_dataset().copy(name="b")
    model = SkyModel(PowerLawSpectralModel(), PointSpatialModel(frame="galactic"), name="crab")
    datasets = Datasets([first, second], models=[model])
    head = datasets[:1]
    assert isinstance(head, Datasets) and head.names == ["a"]
    assert head.models.names == ["crab"] and head.models["crab"] is model
    assert head.stat_sum() == pytest.approx(first.stat_sum())


def test_dask_datasets_share_out_flux_points_datasets():
    """DaskDatasets balances its parts by size: flux points (no counts) count one per point."""
    import xarray as xr

    from xgamma.datasets.collection import _balanced_parts
    from xgamma.datasets.flux_points import FluxPointsDataset
    from xgamma.estimators import FluxPoints

    coords = {"e_ref": ("energy", [1.0, 2.0, 4.0], {"units": "TeV"})}
    dnde = ("energy", [1e-11, 3e-12, 7e-13], {"units": "cm-2 s-1 TeV-1"})
    points = FluxPointsDataset(data=FluxPoints(xr.Dataset({"dnde": dnde}, coords=coords)), name="points")
    maps = _flat_dataset()
    parts = _balanced_parts([points, maps], 2)
    assert sorted(len(part) for part in parts) == [1, 1]


def test_constant_temporal_model_needs_no_gti():
    """The mean of a constant norm is 1 whatever the GTIs: a dataset without GTIs accepts it."""
    from xgamma.modeling import ConstantTemporalModel

    dataset = _flat_dataset()
    assert dataset.gti is None
    spatial = PointSpatialModel(frame="galactic")
    dataset.models = [SkyModel(PowerLawSpectralModel(), spatial, name="crab")]
    plain = dataset.npred_signal_values()
    dataset.models = [SkyModel(PowerLawSpectralModel(), spatial, ConstantTemporalModel(), name="crab")]
    np.testing.assert_array_equal(dataset.npred_signal_values(), plain)


def test_appended_dataset_takes_the_collections_models():
    from xgamma.axes import MapAxis
    from xgamma.datasets import Datasets, SpectrumDataset
    from xgamma.geom import RegionGeom
    from xgamma.modeling import PowerLawSpectralModel, SkyModel

    energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
    geom = RegionGeom.create("icrs;circle(83.63, 22.01, 0.1)", axes=[energy])
    first = SpectrumDataset.create(geom, energy.copy(name="energy_true"), name="a")
    datasets = Datasets([first], models=[SkyModel(PowerLawSpectralModel(), name="src")])
    second = SpectrumDataset.create(geom, energy.copy(name="energy_true"), name="b")
    datasets.append(second)
    assert second.models is not None and second.models["src"] is datasets.models["src"]
