"""Temporal models: closed-form integrals against quadrature and known values, GTI means, YAML."""

import numpy as np
import pytest
import yaml
from astropy.time import Time
from scipy.integrate import quad

from xgamma.data import GTI
from xgamma.modeling.temporal import (
    ConstantTemporalModel,
    ExpDecayTemporalModel,
    GaussianTemporalModel,
    GeneralizedGaussianTemporalModel,
    LightCurveTemplateTemporalModel,
    LinearTemporalModel,
    PowerLawTemporalModel,
    SineTemporalModel,
    TemporalModel,
    integrate_gti,
)

T_REF = 59000.0


def template_model():
    time = T_REF + np.array([0.0, 0.5, 1.5, 3.0, 4.0])
    return LightCurveTemplateTemporalModel(time, [0.0, 2.0, 1.0, 3.0, 0.5])


MODELS = {
    "const": lambda: ConstantTemporalModel(),
    "linear": lambda: LinearTemporalModel(alpha=2.0, beta=-0.3, t_ref=T_REF),
    "exp-decay": lambda: ExpDecayTemporalModel(t0=1.5, t_ref=T_REF),
    "gauss": lambda: GaussianTemporalModel(t_ref=T_REF + 1, sigma=0.7),
    "gengauss": lambda: GeneralizedGaussianTemporalModel(t_ref=T_REF + 1, t_rise=0.3, t_decay=1.2, eta=0.7),
    "powerlaw": lambda: PowerLawTemporalModel(alpha=-1.4, t_ref=T_REF - 0.5, t0=0.2),
    "sinus": lambda: SineTemporalModel(amp=0.6, omega=3.0, t_ref=T_REF),
    "template": template_model,
}

INTERVALS = (T_REF + np.array([-0.3, 0.2, 1.7, 2.9]), T_REF + np.array([0.1, 1.1, 2.5, 4.5]))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_integral_equals_quadrature_over_total_duration(name):
    model = MODELS[name]()
    t_min, t_max = INTERVALS
    points = list(model.time) if name == "template" else None
    expected = [
        quad(lambda t: float(model(np.array(t))), a, b, points=[p for p in points if a < p < b] if points else None,
             epsabs=1e-12, epsrel=1e-10)[0]
        for a, b in zip(t_min, t_max)
    ]
    expected = np.array(expected) / np.sum(t_max - t_min)
    np.testing.assert_allclose(model.integral(t_min, t_max), expected, rtol=1e-7, atol=1e-12)


def test_constant_integral_is_duration_share():
    model = ConstantTemporalModel()
    t_min, t_max = INTERVALS
    values = model.integral(t_min, t_max)
    np.testing.assert_allclose(values, (t_max - t_min) / np.sum(t_max - t_min), rtol=1e-12)
    assert values.sum() == pytest.approx(1.0, rel=1e-12)
    assert model.integral(T_REF, T_REF + 3)[0] == pytest.approx(1.0, rel=1e-12)


def test_closed_forms_of_known_integrals():
    """Full integrals and means known on paper."""
    sigma = 0.7
    gauss = GaussianTemporalModel(t_ref=T_REF, sigma=sigma)
    span = 40 * sigma
    assert gauss.integral(T_REF - span, T_REF + span)[0] * 2 * span == pytest.approx(sigma * np.sqrt(2 * np.pi), rel=1e-10)

    decay = ExpDecayTemporalModel(t0=2.0, t_ref=T_REF)
    assert decay.integral(T_REF, T_REF + 200)[0] * 200 == pytest.approx(2.0, rel=1e-10)

    linear = LinearTemporalModel(alpha=3.0, beta=0.25, t_ref=T_REF)
    assert linear.integral(T_REF - 5, T_REF + 5)[0] == pytest.approx(3.0, rel=1e-12)

    sine = SineTemporalModel(amp=0.9, omega=2 * np.pi / 0.8, t_ref=T_REF + 0.1)
    assert sine.integral(T_REF, T_REF + 4 * 0.8)[0] == pytest.approx(1.0, rel=1e-10)

    # eta = 1/2 is a Gaussian on each side: half-integrals tau sqrt(pi/2); eta = 1 gives 2 tau
    half_gauss = GeneralizedGaussianTemporalModel(t_ref=T_REF, t_rise=0.3, t_decay=1.1, eta=0.5)
    total = half_gauss.integral(T_REF - 20, T_REF + 30)[0] * 50
    assert total == pytest.approx((0.3 + 1.1) * np.sqrt(np.pi / 2), rel=1e-10)
    exponential = GeneralizedGaussianTemporalModel(t_ref=T_REF, t_rise=0.3, t_decay=1.1, eta=1.0)
    assert exponential.integral(T_REF, T_REF + 100)[0] * 100 == pytest.approx(2 * 1.1, rel=1e-10)

    power = PowerLawTemporalModel(alpha=2.0, t_ref=T_REF, t0=2.0)
    assert power.integral(T_REF - 1, T_REF + 2)[0] * 3 == pytest.approx(2.0 / 3 * (1.0**3), rel=1e-12)


def test_evaluate_formulas():
    gengauss = GeneralizedGaussianTemporalModel(t_ref=T_REF, t_rise=0.5, t_decay=2.0, eta=0.5)
    assert gengauss(T_REF - 0.5) == pytest.approx(np.exp(-0.5))
    assert gengauss(T_REF + 2.0) == pytest.approx(np.exp(-0.5))
    assert PowerLawTemporalModel(alpha=-1.0, t_ref=T_REF, t0=1.0)(T_REF - 1) == 0.0
    assert SineTemporalModel(amp=0.5, omega=np.pi, t_ref=T_REF)(T_REF + 0.5) == pytest.approx(1.5)
    assert ExpDecayTemporalModel(t0=2.0, t_ref=T_REF)(T_REF + 2.0) == pytest.approx(np.exp(-1))


def test_time_objects_are_read_in_the_model_scale():
    model = LinearTemporalModel(alpha=1.0, beta=1.0, t_ref=T_REF)
    time = Time(T_REF + 1.0, format="mjd", scale="utc")
    assert model(time) == pytest.approx(2.0, rel=1e-12)
    assert model(time.tt) == pytest.approx(2.0, rel=1e-12)  # converted back to utc
    tt_model = LinearTemporalModel(alpha=1.0, beta=1.0, t_ref=T_REF, scale="tt")
    assert tt_model(time) - 2.0 == pytest.approx(69.184 / 86400, rel=1e-6)  # TT - UTC in 2020


def test_gti_weighted_mean():
    reference = Time(T_REF, format="mjd", scale="utc")
    starts, stops = np.array([0.0, 0.5, 2.0]) * 86400, np.array([0.25, 1.5, 2.1]) * 86400
    gti = GTI.create(starts, stops, reference_time=reference)
    model = LinearTemporalModel(alpha=1.0, beta=0.4, t_ref=T_REF)
    t_min, t_max = gti.start.utc.mjd, gti.stop.utc.mjd
    mean = sum(quad(lambda t: model.evaluate(t, 1.0, 0.4, T_REF), a, b)[0] for a, b in zip(t_min, t_max))
    mean /= np.sum(t_max - t_min)
    assert integrate_gti(model, gti) == pytest.approx(mean, rel=1e-9)
    assert integrate_gti(ConstantTemporalModel(), gti) == pytest.approx(1.0, rel=1e-12)
    # the mean lies between the model's values at the first start and the last stop
    assert model(t_min[0]) < integrate_gti(model, gti) < model(t_max[-1])


def test_light_curve_template_interpolates_and_is_zero_outside():
    model = template_model()
    np.testing.assert_allclose(model(model.time), model.norm)
    assert model(T_REF + 1.0) == pytest.approx(1.5)
    assert model(T_REF - 1.0) == 0.0 and model(T_REF + 10) == 0.0


@pytest.mark.parametrize("suffix", [".fits", ".ecsv"])
def test_light_curve_template_file_round_trip(tmp_path, suffix):
    model = template_model()
    path = tmp_path / f"lc{suffix}"
    model.write(path)
    read = LightCurveTemplateTemporalModel.read(path)
    np.testing.assert_allclose(read.time, model.time, rtol=0, atol=1e-9)
    np.testing.assert_allclose(read.norm, model.norm)


def test_light_curve_template_reads_mjd_column_without_reference(tmp_path):
    from astropy.table import Table

    path = tmp_path / "lc_mjd.ecsv"
    Table({"TIME": [T_REF, T_REF + 2.0], "NORM": [1.0, 3.0]}).write(path)
    model = LightCurveTemplateTemporalModel.read(path)
    assert model(T_REF + 1.0) == pytest.approx(2.0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_yaml_round_trip(name, tmp_path):
    model = MODELS[name]()
    if name == "template":
        model.write(tmp_path / "lc.fits")
    for par in model.parameters:
        par.error = 0.01
    text = yaml.safe_dump(model.to_dict())
    data = yaml.safe_load(text)
    assert data["type"] == type(model).tag[0]
    read = TemporalModel.from_dict(data)
    assert type(read) is type(model)
    assert read.scale == model.scale
    assert read.parameters.names == model.parameters.names
    for a, b in zip(read.parameters, model.parameters):
        assert (a.value, a.unit, a.frozen, a.error) == (b.value, b.unit, b.frozen, b.error)
    times = T_REF + np.linspace(-1, 5, 13)
    np.testing.assert_allclose(read(times), model(times), rtol=1e-9)


def test_short_tags_resolve():
    for tag in ("const", "linear", "exp-decay", "gauss", "gengauss", "powerlaw", "sinus"):
        assert TemporalModel.from_dict({"type": tag}).tag[1] == tag
