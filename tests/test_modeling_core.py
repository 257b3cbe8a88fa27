"""Parameter, Parameters and the Model base: units, bounds, scaling, priors, links, covariance, dicts."""

import astropy.units as u
import numpy as np
import pytest
from numpy.testing import assert_allclose

from xgamma.modeling import (
    GaussianPrior,
    Model,
    ModelError,
    Parameter,
    Parameters,
    SpectralModel,
)


class Line(Model):
    """A minimal model with no YAML tag (so nothing is registered)."""

    slope = Parameter("slope", 2.0, "cm-2 s-1 TeV-2")
    offset = Parameter("offset", 1.0, "cm-2 s-1 TeV-1", frozen=True)


# ---- Parameter: units ------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [(2.5, 2.5), (1500 * u.GeV, 1.5), ("0.3 TeV", 0.3), ("250 GeV", 0.25), (u.Quantity(3e6, "MeV"), 3.0)],
)
def test_value_converted_to_parameter_unit(value, expected):
    par = Parameter("reference", value, "TeV")
    assert par.value == pytest.approx(expected, rel=1e-12)
    par.value = value
    assert par.value == pytest.approx(expected, rel=1e-12)
    assert par.quantity == u.Quantity(expected, "TeV")


def test_quantity_setter_and_dimensionless():
    par = Parameter("index", 2.0)
    par.quantity = u.Quantity(300, "%")  # percent is dimensionless: 3.0
    assert par.value == pytest.approx(3.0)
    assert par.unit == "" and par.quantity.unit == u.dimensionless_unscaled


def test_unit_errors_name_the_parameter():
    par = Parameter("reference", 1.0, "TeV")
    with pytest.raises(u.UnitConversionError, match="'reference'.*TeV"):
        par.value = "3 cm"
    with pytest.raises(ValueError, match="'reference'.*'one TeV'"):
        par.value = "one TeV"
    with pytest.raises(u.UnitConversionError, match="'index'.*dimensionless"):
        Parameter("index", "2 TeV")
    with pytest.raises(ValueError):
        Parameter("x", 1.0, "not-a-unit")
    assert par.value == 1.0  # failed assignments leave the value unchanged


def test_unit_string_kept_as_written():
    par = Parameter("amplitude", 1e-12, "cm-2 s-1 TeV-1")
    assert par.unit == "cm-2 s-1 TeV-1"
    par.value = "1e-8 m-2 s-1 GeV-1"  # 1e-8 / 1e4 cm-2 / 1e-3 TeV
    assert par.value == pytest.approx(1e-9, rel=1e-12)


# ---- Parameter: bounds ------------------------------------------------------
def test_bounds_convert_and_default_to_nan():
    par = Parameter("e_cut", 10.0, "TeV", min="500 GeV", max=u.Quantity(1e5, "GeV"))
    assert (par.min, par.max) == pytest.approx((0.5, 100.0))
    par.min = None
    assert np.isnan(par.min)
    par.max = "2e4 GeV"
    assert par.max == pytest.approx(20.0)
    assert np.isnan(Parameter("x", 1.0).min) and np.isnan(Parameter("x", 1.0).max)


def test_check_limits():
    par = Parameter("norm", 1.0, min=0.0, max=2.0)
    par.check_limits()
    par.value = 2.5
    with pytest.raises(ValueError, match="'norm' = 2.5 outside"):
        par.check_limits()
    Parameter("free", 1e30).check_limits()  # NaN bounds: unbounded


# ---- Parameter: factor, scale, autoscale -------------------------------------
def test_factor_and_scale():
    par = Parameter("amplitude", 3e-12, "cm-2 s-1 TeV-1", scale=1e-12)
    assert par.factor == pytest.approx(3.0)
    par.factor = 5.0
    assert par.value == pytest.approx(5e-12)


@pytest.mark.parametrize(
    ("value", "scale", "factor"),
    [(3.7e-11, 1e-11, 3.7), (250.0, 100.0, 2.5), (-0.042, 0.01, -4.2), (1.0, 1.0, 1.0), (0.0, 1.0, 0.0)],
)
def test_autoscale_picks_power_of_ten(value, scale, factor):
    par = Parameter("p", value)
    par.autoscale()
    assert par.scale == pytest.approx(scale, rel=1e-12)
    assert par.factor == pytest.approx(factor, rel=1e-12)
    assert par.value == value  # scaling does not change the value


def test_factor_bounds():
    par = Parameter("p", 2.0, min=1.0, max=3.0, scale=2.0)
    assert par.factor_bounds == pytest.approx((0.5, 1.5))
    par.scale = -2.0  # a negative scale swaps the bounds of the factor
    assert par.factor_bounds == pytest.approx((-1.5, -0.5))
    par.min = None
    assert par.factor_bounds[0] == pytest.approx(-1.5) and par.factor_bounds[1] is None
    assert Parameter("q", 1.0).factor_bounds == (None, None)


# ---- priors ------------------------------------------------------------------
def test_gaussian_prior_stat():
    prior = GaussianPrior(mu=2.0, sigma=0.5)
    assert prior.stat(3.0) == pytest.approx(4.0)  # ((3 - 2) / 0.5)**2
    assert prior.stat(2.0) == 0.0
    assert prior.stat(1.25) == pytest.approx(2.25)
    assert prior.to_dict() == {  # Gammapy's layout
        "type": "GaussianPrior", "weight": 1.0,
        "parameters": [{"name": "mu", "value": 2.0, "unit": ""}, {"name": "sigma", "value": 0.5, "unit": ""}],
    }
    with pytest.raises(ValueError, match="sigma"):
        GaussianPrior(1.0, 0.0)


def test_prior_stat_sum_counts_linked_parameter_once():
    shared = Parameter("index", 2.6, prior=GaussianPrior(2.5, 0.1))
    other = Parameter("alpha", 1.0, prior=GaussianPrior(0.0, 2.0))
    pars = Parameters([shared, other, shared, Parameter("free", 7.0)])
    assert pars.prior_stat_sum() == pytest.approx(1.0 + 0.25)


# ---- Parameter: dicts -----------------------------------------------------------
def test_to_dict():
    par = Parameter("amplitude", 2e-12, "cm-2 s-1 TeV-1", min=0.0, error=3e-13, is_norm=True,
                    prior=GaussianPrior(1e-12, 1e-12))
    data = par.to_dict()
    assert data["name"] == "amplitude" and data["unit"] == "cm-2 s-1 TeV-1"
    assert (data["value"], data["min"], data["error"], data["frozen"]) == (2e-12, 0.0, 3e-13, False)
    assert np.isnan(data["max"]) and data["is_norm"] is True
    assert data["prior"] == GaussianPrior(1e-12, 1e-12).to_dict("cm-2 s-1 TeV-1")
    assert "is_norm" not in Parameter("index", 2.0).to_dict()


def test_update_from_dict_converts_another_unit():
    par = Parameter("e_cut", 10.0, "TeV")
    par.update_from_dict({"name": "e_cut", "value": 2000.0, "unit": "GeV", "min": 100.0, "max": 1e5,
                          "error": 300.0, "frozen": True, "prior": {"type": "GaussianPrior", "mu": 2000, "sigma": 1000}})
    assert (par.value, par.min, par.max, par.error) == pytest.approx((2.0, 0.1, 100.0, 0.3))
    assert par.frozen and par.unit == "TeV"
    assert par.prior == GaussianPrior(2.0, 1.0)  # the prior is in the entry's unit too


def test_update_from_dict_without_unit_uses_parameter_unit_and_keeps_missing_keys():
    par = Parameter("e_cut", 10.0, "TeV", min=1.0, error=0.5)
    par.update_from_dict({"value": 4.0, "max": None})
    assert (par.value, par.min, par.error) == (4.0, 1.0, 0.5)
    assert np.isnan(par.max)
    with pytest.raises(u.UnitConversionError, match="'e_cut'"):
        par.update_from_dict({"value": 4.0, "unit": "deg"})


# ---- Parameters ----------------------------------------------------------------
def linked_pair():
    a, b = Line(), Line(slope=5.0)
    b.slope = a.slope
    return a, b


def test_unique_and_free_with_links():
    a, b = linked_pair()
    pars = a.parameters + b.parameters
    assert pars.names == ["slope", "offset", "slope", "offset"]
    assert pars[0] is pars[2]
    unique = pars.unique
    assert len(unique) == 3 and [p is q for p, q in zip(unique, [a.slope, a.offset, b.offset])] == [True] * 3
    b.offset.frozen = False
    free = pars.free
    assert len(free) == 2 and free[0] is a.slope and free[1] is b.offset
    assert_allclose(pars.free_values, [2.0, 1.0])
    pars.set_free_values([3.0, 4.0])
    assert (b.slope.value, b.offset.value, a.offset.value) == (3.0, 4.0, 1.0)


def test_lookup_contains_and_slices():
    pars = Line().parameters
    assert pars["offset"].name == "offset" and "slope" in pars and pars[0] in pars
    assert Parameter("slope", 2.0) not in pars  # membership of objects is by identity
    assert pars[1:].names == ["offset"]
    with pytest.raises(KeyError, match="'nope'.*slope"):
        pars["nope"]
    with pytest.raises(ValueError, match="not in this collection"):
        pars.index(Parameter("slope", 2.0))


def test_values_setter():
    pars = Line().parameters
    pars.values = ["3", 4]
    assert_allclose(pars.values, [3.0, 4.0])
    with pytest.raises(ValueError, match="expected 2 values, got shape \\(3,\\)"):
        pars.values = [1.0, 2.0, 3.0]


def test_freeze_unfreeze_all():
    pars = Line().parameters
    pars.unfreeze_all()
    assert len(pars.free) == 2
    pars.freeze_all()
    assert len(pars.free) == 0


def test_set_covariance_of_subset_and_correlation():
    a, b, c = Parameter("a", 1.0), Parameter("b", 2.0), Parameter("c", 3.0)
    pars = Parameters([a, b, c])
    pars.set_covariance_of(Parameters([c, a]), [[9.0, 1.5], [1.5, 4.0]])
    assert (a.error, b.error, c.error) == (2.0, 0.0, 3.0)
    expected = np.array([[4.0, 0.0, 1.5], [0.0, 0.0, 0.0], [1.5, 0.0, 9.0]])
    assert_allclose(pars.covariance, expected)
    assert_allclose(pars.covariance_of(Parameters([a, c])), [[4.0, 1.5], [1.5, 9.0]])
    corr = pars.correlation()
    assert corr[0, 2] == pytest.approx(1.5 / (2.0 * 3.0)) and corr[0, 0] == pytest.approx(1.0)
    assert np.isnan(corr[1, 1])  # no variance: undefined


def test_set_covariance_of_errors():
    a, b = Parameter("a", 1.0), Parameter("b", 2.0)
    pars = Parameters([a, b])
    with pytest.raises(ValueError, match="shape \\(2, 2\\), got \\(3, 3\\)"):
        pars.set_covariance_of(pars, np.eye(3))
    with pytest.raises(ValueError, match="not in this collection"):
        pars.set_covariance_of(Parameters([Parameter("z", 0.0)]), [[1.0]])
    pars.set_covariance_of(Parameters([b]), [[-1.0]])  # a failed fit: no error, not a crash
    assert np.isnan(b.error)


def test_copy_keeps_links_within():
    a, b = linked_pair()
    pars = a.parameters + b.parameters
    pars.covariance[0, 0] = 0.25
    copied = pars.copy()
    assert copied[0] is copied[2] and copied[0] is not a.slope
    assert len(copied.unique) == 3
    copied[0].value = 9.0
    assert a.slope.value == 2.0 and copied[2].value == 9.0
    copied.covariance[0, 0] = 1.0
    assert pars.covariance[0, 0] == 0.25


def test_to_table():
    pars = Parameters([Parameter("index", 2.5, error=0.1, min=1.0),
                       Parameter("reference", 1.0, "TeV", frozen=True)])
    table = pars.to_table()
    assert table.colnames == ["name", "value", "unit", "error", "min", "max", "frozen"]
    assert list(table["name"]) == ["index", "reference"] and list(table["unit"]) == ["", "TeV"]
    assert_allclose(table["value"], [2.5, 1.0])
    assert_allclose(table["error"], [0.1, 0.0])
    assert table["min"][0] == 1.0 and np.isnan(table["max"][0])
    assert list(table["frozen"]) == [False, True]
    assert len(Parameters().to_table()) == 0


# ---- Model -----------------------------------------------------------------------
def test_declared_parameters_are_copied_per_instance():
    first, second = Line(), Line()
    assert first.parameters.names == ["slope", "offset"]
    assert first.slope is not second.slope and first.slope is not Line.slope
    first.slope.value = 7.0
    assert second.slope.value == 2.0 and Line.slope.value == 2.0  # the class default is untouched
    assert first.offset.frozen and first.offset.unit == "cm-2 s-1 TeV-1"
    assert first.parameter_values == {"slope": 7.0, "offset": 1.0}


def test_kwargs_convert_and_unknown_names_are_listed():
    model = Line(slope="2e-3 cm-2 s-1 GeV-2", offset=u.Quantity(1e-4, "m-2 s-1 TeV-1"))
    assert model.slope.value == pytest.approx(2e3) and model.offset.value == pytest.approx(1e-8)
    with pytest.raises(TypeError, match="Line has no parameter 'slop'.*\\['slope', 'offset'\\]"):
        Line(slop=1.0)


def test_subclass_inherits_and_extends_declared_parameters():
    class Quadratic(Line):
        curvature = Parameter("curvature", 0.5)

    assert Quadratic().parameters.names == ["slope", "offset", "curvature"]
    assert Line().parameters.names == ["slope", "offset"]


def test_linking_by_assignment():
    a, b = linked_pair()
    assert b.slope is a.slope
    a.slope.value = 4.0
    assert b.slope.value == 4.0 and b.parameter_values["slope"] == 4.0
    b.slope = 6.0  # a value (not a Parameter) sets the shared object's value
    assert a.slope.value == 6.0


def test_copy_is_independent_and_drops_links():
    a, b = linked_pair()
    c = b.copy(offset=3.0)
    assert c.slope is not a.slope and c.slope.value == a.slope.value
    c.slope.value = 10.0
    assert a.slope.value == 2.0 and b.slope.value == 2.0
    assert c.offset.value == 3.0 and b.offset.value == 1.0


def test_freeze_unfreeze_model():
    model = Line()
    model.unfreeze()
    assert not any(p.frozen for p in model.parameters)
    model.freeze()
    assert all(p.frozen for p in model.parameters)


def test_repr():
    model = Line(slope=3.25)
    model.slope.error = 0.5
    text = repr(model)
    lines = text.splitlines()
    assert lines[0] == "Line"
    assert "slope" in lines[1] and "3.25" in lines[1] and "± 0.5" in lines[1] and "cm-2 s-1 TeV-2" in lines[1]
    assert "offset" in lines[2] and "(frozen)" in lines[2]
    assert repr(model.slope) == "Parameter(slope=3.25 ± 0.5 cm-2 s-1 TeV-2)"
    assert "frozen" in repr(model.offset)


def test_dict_errors_name_the_model_and_key():
    with pytest.raises(ModelError, match="unknown SpectralModel type 'NoSuchModel'.*PowerLawSpectralModel"):
        SpectralModel.from_dict({"type": "NoSuchModel"})
    with pytest.raises(ModelError, match="no 'type'"):
        SpectralModel.from_dict({"parameters": []})
    with pytest.raises(ModelError, match="PowerLawSpectralModel has no parameter 'gamma'"):
        SpectralModel.from_dict({"type": "PowerLawSpectralModel", "parameters": [{"name": "gamma", "value": 2}]})


def test_from_dict_by_short_tag_writes_first_tag():
    model = SpectralModel.from_dict({"type": "pl", "parameters": [
        {"name": "index", "value": 3.1, "unit": ""},
        {"name": "reference", "value": 500.0, "unit": "GeV"},
    ]})
    assert type(model).__name__ == "PowerLawSpectralModel" and model.to_dict()["type"] == "PowerLawSpectralModel"
    assert model.index.value == 3.1 and model.reference.value == pytest.approx(0.5)
    assert model.amplitude.value == 1e-12  # not in the dict: the declared default
