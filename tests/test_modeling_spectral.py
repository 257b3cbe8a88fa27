"""Spectral models: values, integrals against analytic results and quadrature, YAML round trips, units."""

import math

import astropy.units as u
import numpy as np
import pytest
import yaml
from astropy.io import fits
from numpy.testing import assert_allclose
from scipy.integrate import quad
from scipy.special import erf, expn

from xgamma.modeling.core import ModelError
from xgamma.modeling.spectral import (
    BrokenPowerLawSpectralModel,
    CallableSpectralModel,
    CompoundSpectralModel,
    ConstantNormSpectralModel,
    ConstantSpectralModel,
    ExpCutoffPowerLaw3FGLSpectralModel,
    ExpCutoffPowerLawSpectralModel,
    GaussianSpectralModel,
    LogParabolaSpectralModel,
    PowerLaw2SpectralModel,
    PowerLawNormSpectralModel,
    PowerLawSpectralModel,
    SmoothBrokenPowerLawSpectralModel,
    SpectralModel,
    SuperExpCutoffPowerLaw3FGLSpectralModel,
    SuperExpCutoffPowerLaw4FGLDR3SpectralModel,
    SuperExpCutoffPowerLaw4FGLSpectralModel,
)
from xgamma.modeling.spectral_ebl import EBLAbsorptionNormSpectralModel
from xgamma.modeling.spectral_table import (
    PiecewiseNormSpectralModel,
    TemplateSpectralModel,
)

EDGES = np.array([0.1, 0.13, 0.5, 0.9, 1.1, 3.0, 12.0, 40.0])
E_MIN, E_MAX = EDGES[:-1], EDGES[1:]
NODES = np.geomspace(0.05, 200, 9)


def crab_like_power_law(energy, index, amplitude):
    """A module-level callable (importable, so it survives YAML)."""
    return amplitude * (energy / u.TeV).to_value("") ** -index


def make_models():
    """One instance of every spectral model with non-default parameters; ``(model, kinks)``."""
    pl = PowerLawSpectralModel(index=2.3, amplitude="3e-11 cm-2 s-1 TeV-1")
    callable_model = CallableSpectralModel(
        crab_like_power_law, {"index": 2.6, "amplitude": 4e-11 * u.Unit("cm-2 s-1 TeV-1")}
    )
    return {
        "const": (ConstantSpectralModel(const=2e-12), ()),
        "const-norm": (ConstantNormSpectralModel(norm=1.3), ()),
        "pl": (pl, ()),
        "pl-norm": (PowerLawNormSpectralModel(norm=0.9, tilt=0.2), ()),
        "pl-2": (PowerLaw2SpectralModel(amplitude="2e-11 cm-2 s-1", index=2.4, emin=0.2, emax=50), ()),
        "bpl": (BrokenPowerLawSpectralModel(index1=1.6, index2=3.1, ebreak="2 TeV", amplitude=1e-11), (2.0,)),
        "sbpl": (SmoothBrokenPowerLawSpectralModel(index1=1.6, index2=3.1, ebreak=2, beta=0.5, amplitude=1e-11), ()),
        "lp": (LogParabolaSpectralModel(alpha=2.4, beta=0.15, reference=1, amplitude=3e-11), ()),
        "ecpl": (ExpCutoffPowerLawSpectralModel(index=2.1, lambda_="0.1 TeV-1", amplitude=3e-11), ()),
        "ecpl-alpha": (ExpCutoffPowerLawSpectralModel(index=1.8, lambda_=0.2, alpha=0.7), ()),
        "ecpl-3fgl": (ExpCutoffPowerLaw3FGLSpectralModel(index=1.7, ecut="8 TeV"), ()),
        "secpl-3fgl": (SuperExpCutoffPowerLaw3FGLSpectralModel(index_1=1.6, index_2=0.7, ecut=5), ()),
        "secpl-4fgl": (SuperExpCutoffPowerLaw4FGLSpectralModel(index_1=1.6, index_2=0.6, expfactor=0.3), ()),
        "secpl-4fgl-dr3": (SuperExpCutoffPowerLaw4FGLDR3SpectralModel(index_1=1.9, index_2=0.5, expfactor=0.4), ()),
        "gauss": (GaussianSpectralModel(amplitude="1e-12 cm-2 s-1", mean="2 TeV", sigma="0.5 TeV"), ()),
        "template": (TemplateSpectralModel(NODES, 1e-11 * NODES**-2.2 * np.exp(-NODES / 30)), tuple(NODES)),
        "piecewise-norm": (PiecewiseNormSpectralModel(NODES, norms=np.linspace(0.5, 2, NODES.size)), tuple(NODES)),
        "piecewise-norm-lin": (
            PiecewiseNormSpectralModel(NODES, norms=np.linspace(0.5, 2, NODES.size), interp="lin"),
            tuple(NODES),
        ),
        "compound-add": (pl + ExpCutoffPowerLawSpectralModel(index=1.5, amplitude=1e-12), ()),
        "compound-mul": (pl * PowerLawNormSpectralModel(norm=1.2, tilt=-0.3), ()),
        "callable": (callable_model, ()),
    }


MODELS = make_models()


def quad_log(function, e_min, e_max, moment=0, kinks=()):
    """Adaptive quadrature of ``function(E) * E**moment`` in ln(E), breaking at ``kinks``."""
    points = [math.log(k) for k in kinks if e_min < k < e_max] or None
    value, _ = quad(
        lambda x: float(function(np.exp(x))) * math.exp((moment + 1) * x),
        math.log(e_min), math.log(e_max), points=points, epsabs=0, epsrel=1e-12, limit=500,
    )
    return value


def reference_integrals(model, kinks, moment):
    return np.array([quad_log(model.dnde_values, a, b, moment, kinks) for a, b in zip(E_MIN, E_MAX)])


# --- integrals against quadrature ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_integral_and_energy_flux_match_quadrature(name):
    model, kinks = MODELS[name]
    assert_allclose(model.integral_values(E_MIN, E_MAX), reference_integrals(model, kinks, 0), rtol=1e-6)
    assert_allclose(model.energy_flux_values(E_MIN, E_MAX), reference_integrals(model, kinks, 1), rtol=1e-6)


@pytest.mark.parametrize("name", ["lp", "ecpl", "secpl-4fgl-dr3", "compound-mul"])
def test_one_wide_bin_is_integrated_accurately(name):
    model, kinks = MODELS[name]
    assert_allclose(model.integral_values(0.03, 300.0), quad_log(model.dnde_values, 0.03, 300.0, 0, kinks), rtol=1e-6)


# --- closed forms written out ---------------------------------------------------------


def power_law_integral_expected(amplitude, index, reference, a, b):
    return amplitude * reference**index * (b ** (1 - index) - a ** (1 - index)) / (1 - index)


def test_power_law_closed_forms():
    model = PowerLawSpectralModel(index=2.3, amplitude=3e-11, reference=1.5)
    assert_allclose(model.integral_values(E_MIN, E_MAX), power_law_integral_expected(3e-11, 2.3, 1.5, E_MIN, E_MAX),
                    rtol=1e-12)
    # energy flux of E^-index is the integral of E^-(index - 1), times reference
    expected = 1.5 * power_law_integral_expected(3e-11, 1.3, 1.5, E_MIN, E_MAX)
    assert_allclose(model.energy_flux_values(E_MIN, E_MAX), expected, rtol=1e-12)


@pytest.mark.parametrize("index", [1.0, 1.0 + 1e-12, 2.0])
def test_power_law_logarithmic_limits(index):
    model = PowerLawSpectralModel(index=index, amplitude=1e-11, reference=1)
    # index 1: integral is A ln(b/a); index 2: energy flux is A ln(b/a)
    log_case = model.integral_values(0.1, 10) if index != 2.0 else model.energy_flux_values(0.1, 10)
    assert_allclose(log_case, 1e-11 * math.log(100), rtol=1e-9)


def test_power_law2_amplitude_is_integral_flux():
    model = PowerLaw2SpectralModel(amplitude=2e-11, index=2.4, emin=0.2, emax=50)
    assert_allclose(model.integral_values(0.2, 50), 2e-11, rtol=1e-12)
    expected = 2e-11 * (E_MAX**-1.4 - E_MIN**-1.4) / (50**-1.4 - 0.2**-1.4)
    assert_allclose(model.integral_values(E_MIN, E_MAX), expected, rtol=1e-12)
    model.index.value = 1.0
    assert_allclose(model(1.0).value, 2e-11 / math.log(250), rtol=1e-12)


def test_broken_power_law_closed_form():
    model, _ = MODELS["bpl"]
    below = power_law_integral_expected(1e-11, 1.6, 2.0, 0.5, 2.0)
    above = power_law_integral_expected(1e-11, 3.1, 2.0, 2.0, 8.0)
    assert_allclose(model.integral_values(0.5, 8.0), below + above, rtol=1e-12)
    assert_allclose(model.integral_values(3.0, 8.0), power_law_integral_expected(1e-11, 3.1, 2.0, 3.0, 8.0), rtol=1e-12)


def test_constant_closed_form():
    model = ConstantSpectralModel(const=2e-12)
    assert_allclose(model.integral_values(1, 3), 4e-12, rtol=1e-14)
    assert_allclose(model.energy_flux_values(1, 3), 8e-12, rtol=1e-14)


def test_gaussian_line_closed_form():
    model = GaussianSpectralModel(amplitude=1e-12, mean=2, sigma=0.5)
    # the line holds `amplitude` in total; E > 0 cuts its lower tail 4 sigma below the mean
    above_zero = 1e-12 * (1 + erf(4 / math.sqrt(2))) / 2
    assert_allclose(model.integral_values(0.0, 50.0), above_zero, rtol=1e-12)
    # int_0^inf E g dE = mean * flux + sigma^2 g(0)
    g_at_zero = 1e-12 / (0.5 * math.sqrt(2 * math.pi)) * math.exp(-8)
    assert_allclose(model.energy_flux_values(0.0, 50.0), 2 * above_zero + 0.25 * g_at_zero, rtol=1e-12)
    one_sigma = model.integral_values(1.5, 2.5)
    assert_allclose(one_sigma, 1e-12 * erf(1 / math.sqrt(2)), rtol=1e-12)
    # far tail: no cancellation (erf(upper) - erf(lower) would give 0)
    assert model.integral_values(8.0, 9.0) > 0


def test_log_parabola_closed_form():
    # x = ln(E/r): integral = A r int exp((1-alpha) x - beta x^2) dx, a Gaussian integral
    amplitude, reference, alpha, beta = 3e-11, 1.0, 2.4, 0.15
    model = LogParabolaSpectralModel(alpha=alpha, beta=beta, reference=reference, amplitude=amplitude)
    centre = (1 - alpha) / (2 * beta)
    front = amplitude * reference * math.sqrt(math.pi / (4 * beta)) * math.exp((1 - alpha) ** 2 / (4 * beta))
    expected = front * (erf(math.sqrt(beta) * (np.log(E_MAX) - centre)) - erf(math.sqrt(beta) * (np.log(E_MIN) - centre)))
    assert_allclose(model.integral_values(E_MIN, E_MAX), expected, rtol=1e-7)


def test_exp_cutoff_closed_form_with_exponential_integrals():
    # int_a^inf E^-2 exp(-l E) dE = E_2(l a) / a
    model = ExpCutoffPowerLawSpectralModel(index=2, amplitude=1e-11, reference=1, lambda_=0.1)
    expected = 1e-11 * (expn(2, 0.1 * E_MIN) / E_MIN - expn(2, 0.1 * E_MAX) / E_MAX)
    assert_allclose(model.integral_values(E_MIN, E_MAX), expected, rtol=1e-7)
    expected_flux = 1e-11 * (expn(1, 0.1 * E_MIN) - expn(1, 0.1 * E_MAX))
    assert_allclose(model.energy_flux_values(E_MIN, E_MAX), expected_flux, rtol=1e-7)


def test_3fgl_cutoff_closed_form():
    model = ExpCutoffPowerLaw3FGLSpectralModel(index=0, amplitude=1e-11, reference=1, ecut=8)
    expected = 1e-11 * 8 * math.exp(1 / 8) * (np.exp(-E_MIN / 8) - np.exp(-E_MAX / 8))
    assert_allclose(model.integral_values(E_MIN, E_MAX), expected, rtol=1e-7)


def test_super_exp_cutoff_closed_forms():
    # with index_1 = -1 and index_2 = 2 the integrand is E exp(-c E^2)
    secpl = SuperExpCutoffPowerLaw3FGLSpectralModel(amplitude=1e-11, reference=1, ecut=5, index_1=-1, index_2=2)
    expected = 1e-11 * math.exp(1 / 25) * 25 / 2 * (np.exp(-(E_MIN / 5) ** 2) - np.exp(-(E_MAX / 5) ** 2))
    assert_allclose(secpl.integral_values(E_MIN, E_MAX), expected, rtol=1e-7)

    fgl4 = SuperExpCutoffPowerLaw4FGLSpectralModel(amplitude=1e-11, reference=1, expfactor=0.04, index_1=-1, index_2=2)
    expected = 1e-11 * math.exp(0.04) / 0.08 * (np.exp(-0.04 * E_MIN**2) - np.exp(-0.04 * E_MAX**2))
    assert_allclose(fgl4.integral_values(E_MIN, E_MAX), expected, rtol=1e-7)

    # DR3 with d/b - index_1 = b - 1: integrand x^(b-1) exp(c (1 - x^b)), c = d / b^2
    d, b = 0.2, 0.5
    c = d / b**2
    dr3 = SuperExpCutoffPowerLaw4FGLDR3SpectralModel(amplitude=1e-11, reference=1, expfactor=d, index_1=d / b - b + 1,
                                                     index_2=b)
    expected = 1e-11 * math.exp(c) / (b * c) * (np.exp(-c * E_MIN**b) - np.exp(-c * E_MAX**b))
    assert_allclose(dr3.integral_values(E_MIN, E_MAX), expected, rtol=1e-7)


def test_dr3_tends_to_log_parabola_when_index_2_vanishes():
    energy = np.geomspace(0.1, 100, 7)
    dr3 = SuperExpCutoffPowerLaw4FGLDR3SpectralModel(expfactor=0.3, index_1=2.1, index_2=0.0, reference=1)
    lp = LogParabolaSpectralModel(alpha=2.1, beta=0.15, reference=1, amplitude=1e-12)
    assert_allclose(dr3.dnde_values(energy), lp.dnde_values(energy), rtol=1e-12)
    dr3.index_2.value = 1e-9
    assert_allclose(dr3.dnde_values(energy), lp.dnde_values(energy), rtol=1e-8)


def test_4fgl_expfactor_in_the_file_energy_unit():
    # 4FGL catalogue convention: reference in MeV, expfactor in MeV^-index_2
    data = {
        "type": "SuperExpCutoffPowerLaw4FGLSpectralModel",
        "parameters": [
            {"name": "amplitude", "value": 1e-9, "unit": "cm-2 s-1 MeV-1"},
            {"name": "reference", "value": 1000.0, "unit": "MeV"},
            {"name": "expfactor", "value": 0.005, "unit": ""},
            {"name": "index_1", "value": 1.8},
            {"name": "index_2", "value": 0.667},
        ],
    }
    model = SpectralModel.from_dict(data)
    energy_mev = 3e4
    expected = 1e-9 * (energy_mev / 1000) ** -1.8 * math.exp(0.005 * (1000**0.667 - energy_mev**0.667))
    assert_allclose(model(energy_mev * u.MeV).to_value("cm-2 s-1 MeV-1"), expected, rtol=1e-10)


def test_smooth_broken_power_law_limits():
    model = SmoothBrokenPowerLawSpectralModel(index1=1.6, index2=3.1, ebreak=2, beta=0.5, reference=1)
    assert_allclose(model.spectral_index([1e-3, 1e4]), [1.6, 3.1], atol=1e-3)
    same = SmoothBrokenPowerLawSpectralModel(index1=2, index2=2, amplitude=1e-11, reference=1, beta=1)
    assert_allclose(same.integral_values(1, 10), power_law_integral_expected(1e-11, 2, 1, 1, 10) / 2, rtol=1e-7)


def test_template_of_a_power_law_is_exact():
    # log-log interpolation of a power law reproduces it everywhere, also extrapolated
    template = TemplateSpectralModel(NODES * u.TeV, 3e-11 * NODES**-2.3 * u.Unit("cm-2 s-1 TeV-1"))
    edges = np.array([0.01, 0.1, 1.234, 500.0])
    expected = power_law_integral_expected(3e-11, 2.3, 1, edges[:-1], edges[1:])
    assert_allclose(template.integral_values(edges[:-1], edges[1:]), expected, rtol=1e-12)
    assert_allclose(template.dnde_values([0.01, 0.7, 1000]), 3e-11 * np.array([0.01, 0.7, 1000]) ** -2.3, rtol=1e-12)


def test_piecewise_norm_of_a_power_law_is_exact():
    model = PiecewiseNormSpectralModel(NODES, norms=NODES**-0.5)
    assert_allclose(model.integral_values(0.3, 30), power_law_integral_expected(1.0, 0.5, 1, 0.3, 30), rtol=1e-12)
    assert_allclose(model(NODES[3] * u.TeV).value, NODES[3] ** -0.5, rtol=1e-12)


def test_compound_models():
    pl = PowerLawSpectralModel(index=2.3, amplitude=3e-11, reference=1)
    norm = PowerLawNormSpectralModel(norm=2, tilt=-0.3, reference=1)
    product = pl * norm
    assert_allclose(product.integral_values(E_MIN, E_MAX), power_law_integral_expected(6e-11, 2.0, 1, E_MIN, E_MAX),
                    rtol=1e-9)
    total = pl + pl
    assert_allclose(total.integral_values(E_MIN, E_MAX), 2 * pl.integral_values(E_MIN, E_MAX), rtol=1e-14)
    assert_allclose((pl - pl).dnde_values(E_MIN), 0.0)
    assert_allclose((pl / ConstantNormSpectralModel(norm=4)).dnde_values(E_MIN), pl.dnde_values(E_MIN) / 4)
    # parameters are the sub-models' own objects: changing one changes the compound
    assert product.parameters["index"] is pl.index
    pl.amplitude.value = 1e-11
    assert_allclose(product(1.0).value, 2e-11)
    assert product.dnde_unit == u.Unit("cm-2 s-1 TeV-1")


def test_compound_rejects_unknown_operator_and_mixed_units():
    pl = PowerLawSpectralModel()
    with pytest.raises(ModelError, match="operator"):
        CompoundSpectralModel(pl, pl, "pow")
    with pytest.raises(ModelError, match="cannot add"):
        pl + PowerLawNormSpectralModel()


def test_callable_model_passes_parameters_as_quantities():
    model, _ = MODELS["callable"]
    assert_allclose(model([1.0, 2.0]).value, 4e-11 * np.array([1.0, 2.0]) ** -2.6)
    assert_allclose(model.integral_values(1, 10), power_law_integral_expected(4e-11, 2.6, 1, 1, 10), rtol=1e-7)
    with pytest.raises(ModelError, match="function"):
        SpectralModel.from_dict(CallableSpectralModel(lambda energy: energy.value).to_dict())


# --- derived quantities -----------------------------------------------------------------


def test_spectral_index_and_e2dnde():
    pl, _ = MODELS["pl"]
    assert_allclose(pl.spectral_index([0.1, 1.0, 10.0]), 2.3, rtol=1e-7)
    lp = LogParabolaSpectralModel(alpha=2.4, beta=0.15, reference=1)
    assert_allclose(lp.spectral_index(np.e), 2.4 + 2 * 0.15, rtol=1e-7)
    bpl, _ = MODELS["bpl"]
    assert_allclose(bpl.spectral_index([0.5, 8.0]), [1.6, 3.1], rtol=1e-7)
    e2dnde = pl.e2dnde("2 TeV")
    assert e2dnde.unit.is_equivalent("erg cm-2 s-1")
    assert_allclose(e2dnde.to_value("TeV cm-2 s-1"), 4 * 3e-11 * 2**-2.3)


# --- units ---------------------------------------------------------------------------------


def test_quantity_string_and_float_energies_agree():
    pl, _ = MODELS["pl"]
    expected = 3e-11 * 2.0**-2.3
    assert_allclose(pl(2.0).to_value("cm-2 s-1 TeV-1"), expected)
    assert_allclose(pl("2 TeV").to_value("cm-2 s-1 TeV-1"), expected)
    assert_allclose(pl(2000 * u.GeV).to_value("cm-2 s-1 GeV-1"), expected / 1000)
    flux = pl.integral(100 * u.GeV, "10 TeV")
    assert flux.unit.is_equivalent("cm-2 s-1")
    assert_allclose(flux.to_value("cm-2 s-1"), power_law_integral_expected(3e-11, 2.3, 1, 0.1, 10))
    eflux = pl.energy_flux([0.1, 1] * u.TeV, [1, 10] * u.TeV)
    assert eflux.shape == (2,)
    assert_allclose(eflux.to_value("TeV cm-2 s-1"), pl.energy_flux_values([0.1, 1], [1, 10]))


def test_parameter_values_convert_and_wrong_units_name_the_parameter():
    model = PowerLawSpectralModel(amplitude="3e-15 cm-2 s-1 GeV-1", reference="500 GeV")
    assert_allclose(model.amplitude.value, 3e-12)
    assert_allclose(model.reference.value, 0.5)
    with pytest.raises(u.UnitConversionError, match="amplitude"):
        PowerLawSpectralModel(amplitude="1e-12 cm-2 s-1")
    with pytest.raises(u.UnitConversionError, match="energy"):
        model("1 m")
    with pytest.raises(u.UnitConversionError, match="energy_max"):
        model.integral("1 TeV", "3 s")


# --- YAML round trips ------------------------------------------------------------------------


def yaml_round_trip(model):
    return SpectralModel.from_dict(yaml.safe_load(yaml.safe_dump(model.to_dict())))


def ebl_model(data_dir, **kwargs):
    return EBLAbsorptionNormSpectralModel.read_builtin("dominguez", data_dir=data_dir, **kwargs)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_yaml_round_trip(name):
    model, _ = MODELS[name]
    model = model.copy()
    for par in model.parameters:
        par.error, par.frozen = 0.25 * abs(par.value), not par.frozen
    restored = yaml_round_trip(model)
    assert type(restored) is type(model)
    assert restored.parameters.names == model.parameters.names
    assert_allclose(restored.parameters.values, model.parameters.values, rtol=1e-15)
    assert [p.frozen for p in restored.parameters] == [p.frozen for p in model.parameters]
    assert_allclose([p.error for p in restored.parameters], [p.error for p in model.parameters], rtol=1e-15)
    assert_allclose(restored.dnde_values(EDGES), model.dnde_values(EDGES), rtol=1e-14)
    assert_allclose(restored.integral_values(E_MIN, E_MAX), model.integral_values(E_MIN, E_MAX), rtol=1e-14)


def test_yaml_round_trip_ebl_from_file_and_from_table(data_dir):
    ebl = ebl_model(data_dir, redshift=0.3, alpha_norm=1.2)
    # an inline table (a cut of the file's, as YAML of 200 000 numbers is slow to write)
    inline = EBLAbsorptionNormSpectralModel(ebl.energy[::10], ebl.param[:40], ebl.data[:40, ::10], redshift=0.3,
                                            alpha_norm=1.2)
    for model in (ebl, inline):
        compound = PowerLawSpectralModel() * model
        restored = yaml_round_trip(compound)
        assert isinstance(restored.model2, EBLAbsorptionNormSpectralModel)
        assert_allclose(restored.model2.redshift.value, 0.3)
        assert_allclose(restored.dnde_values(EDGES), compound.dnde_values(EDGES), rtol=1e-14)


def test_gammapy_model_file_spectra_load(data_dir):
    components = yaml.safe_load((data_dir / "fermi-3fhl-crab" / "Fermi-LAT-3FHL_models.yaml").read_text())["components"]
    lp = SpectralModel.from_dict(components[0]["spectral"])
    assert isinstance(lp, LogParabolaSpectralModel)
    assert_allclose(lp.reference.value, 5.054833602905273e-05)
    # value at the reference energy is the amplitude
    assert_allclose(lp(lp.reference.quantity).value, 0.018182745349064267)
    background = SpectralModel.from_dict(components[1]["spectral"])
    assert isinstance(background, PowerLawNormSpectralModel) and background.norm.min == 0.0


def test_unknown_type_is_named():
    with pytest.raises(ModelError, match="NoSuchSpectralModel"):
        SpectralModel.from_dict({"type": "NoSuchSpectralModel"})


def test_template_reads_an_ecsv_table(tmp_path):
    from astropy.table import Table

    table = Table({"energy": NODES * 1000 * u.GeV, "dnde": 1e-11 * NODES**-2 * u.Unit("cm-2 s-1 TeV-1")})
    path = tmp_path / "template.ecsv"
    table.write(path)
    model = SpectralModel.from_dict({"type": "TemplateSpectralModel", "filename": str(path)})
    assert_allclose(model(1.7).value, 1e-11 * 1.7**-2, rtol=1e-12)
    assert yaml_round_trip(model).filename == str(path)


# --- EBL absorption against its table -----------------------------------------------------------


def read_table(path):
    with fits.open(path) as hdul:
        redshift = hdul["PARAMETERS"].data["VALUE"][0]
        energy_kev = np.sqrt(hdul["ENERGIES"].data["ENERG_LO"] * hdul["ENERGIES"].data["ENERG_HI"])
        return redshift, energy_kev * 1e-9, hdul["SPECTRA"].data["INTPSPEC"]


def test_ebl_reproduces_table_nodes(data_dir):
    redshift, energy_tev, absorption = read_table(data_dir / "ebl" / "ebl_dominguez11.fits.gz")
    row, column = 9, 300
    model = ebl_model(data_dir, redshift=float(redshift[row]))
    assert_allclose(model(energy_tev[column]).value, absorption[row, column], rtol=1e-6)
    model.alpha_norm.value = 2.0
    assert_allclose(model(energy_tev[column]).value, absorption[row, column] ** 2, rtol=1e-6)


def test_ebl_physics(data_dir):
    energy = np.geomspace(0.05, 30, 40)
    model = ebl_model(data_dir, redshift=0.0)
    assert_allclose(model.dnde_values(energy), 1.0)
    absorption = []
    for z in (0.005, 0.03, 0.1, 0.3, 1.0):
        model.redshift.value = z
        absorption.append(model.dnde_values(energy))
    absorption = np.array(absorption)
    assert np.all(np.diff(absorption, axis=0) <= 0)  # farther is more absorbed
    assert np.all(np.diff(absorption[2]) <= 0)  # and more so at higher energy (below 30 TeV)
    # a source at z = 0.1 loses roughly a factor e around 1 TeV (Dominguez et al. 2011, Fig. 13)
    model.redshift.value = 0.1
    assert 0.25 < model(1.0).value < 0.5
    with pytest.raises(ValueError, match="redshift"):
        model.redshift.value = 10.0
        model(1.0)


def test_absorbed_power_law_integral_matches_quadrature(data_dir):
    model = PowerLawSpectralModel(index=2.0) * ebl_model(data_dir, redshift=0.2)
    assert model.dnde_unit == u.Unit("cm-2 s-1 TeV-1")
    kinks = tuple(model.model2.energy)
    integrals, expected = model.integral_values(E_MIN, E_MAX), reference_integrals(model, kinks, 0)
    assert_allclose(integrals[:-1], expected[:-1], rtol=1e-6)
    # 12-40 TeV, where tau ~ 10 changes by ~1 between table nodes: the flux is 1e-8 of the first bin's
    assert_allclose(integrals[-1], expected[-1], rtol=3e-5)
