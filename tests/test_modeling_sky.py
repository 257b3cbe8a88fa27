"""SkyModel, FoVBackgroundModel and Models: Gammapy YAML files, every model combination, links, selection, errors."""

import astropy.units as u
import numpy as np
import pytest
import yaml
from astropy.coordinates import SkyCoord
from numpy.testing import assert_allclose

from xgamma.geom import WcsGeom
from xgamma.io.fits_map import write_map_fits
from xgamma.modeling import (
    BrokenPowerLawSpectralModel,
    CallableSpectralModel,
    ConstantNormSpectralModel,
    ConstantSpatialModel,
    ConstantSpectralModel,
    ConstantTemporalModel,
    DiskSpatialModel,
    EBLAbsorptionNormSpectralModel,
    ExpCutoffPowerLaw3FGLSpectralModel,
    ExpCutoffPowerLawSpectralModel,
    ExpDecayTemporalModel,
    FoVBackgroundModel,
    GaussianPrior,
    GaussianSpatialModel,
    GaussianSpectralModel,
    GaussianTemporalModel,
    GeneralizedGaussianSpatialModel,
    GeneralizedGaussianTemporalModel,
    LightCurveTemplateTemporalModel,
    LinearTemporalModel,
    LogParabolaSpectralModel,
    ModelError,
    Models,
    PiecewiseNormSpectralModel,
    PointSpatialModel,
    PowerLaw2SpectralModel,
    PowerLawNormSpectralModel,
    PowerLawSpectralModel,
    PowerLawTemporalModel,
    Shell2SpatialModel,
    ShellSpatialModel,
    SineTemporalModel,
    SkyModel,
    SmoothBrokenPowerLawSpectralModel,
    SpatialModel,
    SpectralModel,
    SuperExpCutoffPowerLaw3FGLSpectralModel,
    SuperExpCutoffPowerLaw4FGLDR3SpectralModel,
    SuperExpCutoffPowerLaw4FGLSpectralModel,
    TemplateSpatialModel,
    TemplateSpectralModel,
    TemporalModel,
)

ENERGY = np.geomspace(0.05, 80.0, 7)  # TeV
MJD = 51544.5 + np.array([-1.0, 0.3, 0.9, 2.5])


def fermi_models_path(data_dir):
    return data_dir / "fermi-3fhl-crab" / "Fermi-LAT-3FHL_models.yaml"


def power_law_with_cutoff(energy, amplitude, index, e_cut):
    """A module-level (hence importable, YAML-writable) callable spectrum."""
    return amplitude * (energy / u.TeV).to_value("") ** -index * np.exp(-(energy / e_cut).to_value(""))


# ---- Fermi 3FHL file -----------------------------------------------------------
def test_read_fermi_3fhl_models_file(data_dir):
    path = fermi_models_path(data_dir)
    raw = yaml.safe_load(path.read_text())["components"]
    models = Models.read(path)
    assert models.names == ["Crab Nebula", "Fermi-LAT-bkg"]

    crab, bkg = models
    assert isinstance(crab.spectral_model, LogParabolaSpectralModel)
    assert isinstance(crab.spatial_model, PointSpatialModel) and crab.spatial_model.frame == "icrs"
    assert crab.temporal_model is None and crab.datasets_names is None
    for model, entry in ((crab.spectral_model, raw[0]["spectral"]), (crab.spatial_model, raw[0]["spatial"]),
                         (bkg.spectral_model, raw[1]["spectral"])):
        assert len(model.parameters) == len(entry["parameters"])
        for expected in entry["parameters"]:
            par = model.parameters[expected["name"]]
            assert (par.unit, par.frozen) == (expected["unit"], expected["frozen"])
            assert_allclose([par.value, par.error, par.min, par.max],
                            [expected[k] for k in ("value", "error", "min", "max")], rtol=0)

    # the log-parabola with the file's numbers, written out by hand (natural log, as Gammapy)
    pars = {p["name"]: p["value"] for p in raw[0]["spectral"]["parameters"]}
    x = 0.1 / pars["reference"]
    expected = pars["amplitude"] * x ** (-pars["alpha"] - pars["beta"] * np.log(x))
    assert crab.spectral_model("100 GeV").to_value("cm-2 s-1 TeV-1") == pytest.approx(expected, rel=1e-12)
    assert crab.position.separation(SkyCoord(83.63310241699219, 22.019899368286133, unit="deg")).arcsec < 1e-6

    assert isinstance(bkg, FoVBackgroundModel) and bkg.datasets_names == ["Fermi-LAT"]
    assert bkg.spectral_model.norm.value == pytest.approx(1.3004625872247901, rel=1e-15)
    free = models.parameters.free
    assert free.names == ["amplitude", "alpha", "beta", "norm"]


# ---- write -> read -----------------------------------------------------------------
def two_sources_and_background():
    spectral = PowerLawSpectralModel(index=2.4, amplitude="3.5e-11 cm-2 s-1 TeV-1", reference="500 GeV")
    spectral.index.min, spectral.index.max, spectral.index.error = 1.0, 5.0, 0.07
    spectral.amplitude.error = 2e-12
    spectral.amplitude.prior = GaussianPrior(3e-11, 1e-11)
    spatial = GaussianSpatialModel(lon_0="184.55 deg", lat_0=-5.78, sigma="6 arcmin", frame="galactic")
    spatial.lon_0.frozen = True
    hess_source = SkyModel(spectral, spatial, name="crab", datasets_names=["hess", "magic"])
    spectrum_only = SkyModel(LogParabolaSpectralModel(alpha=2.1, beta=0.2), name="blazar")
    background = FoVBackgroundModel("hess")
    background.spectral_model.norm.value = 1.1
    return Models([hess_source, spectrum_only, background])


def test_write_read_round_trip(tmp_path):
    path = tmp_path / "models.yaml"
    two_sources_and_background().write(path)

    # the file itself, read independently: Gammapy layout, units as declared, NaN bounds as .nan
    raw = yaml.safe_load(path.read_text())["components"]
    assert [c["type"] for c in raw] == ["SkyModel", "SkyModel", "FoVBackgroundModel"]
    assert raw[0]["spatial"]["frame"] == "galactic" and raw[0]["datasets_names"] == ["hess", "magic"]
    reference = raw[0]["spectral"]["parameters"][2]
    assert (reference["name"], reference["value"], reference["unit"], reference["frozen"]) == (
        "reference", 0.5, "TeV", True)
    assert ".nan" in path.read_text() and np.isnan(reference["min"])

    read = Models.read(path)
    crab, blazar, bkg = read
    assert read.names == ["crab", "blazar", "hess-bkg"]
    index, amplitude = crab.spectral_model.index, crab.spectral_model.amplitude
    assert (index.value, index.min, index.max, index.error) == (2.4, 1.0, 5.0, 0.07)
    assert amplitude.unit == "cm-2 s-1 TeV-1" and amplitude.value == 3.5e-11 and amplitude.error == 2e-12
    assert amplitude.prior == GaussianPrior(3e-11, 1e-11)
    assert np.isnan(amplitude.min) and np.isnan(amplitude.max)
    assert crab.spectral_model.reference.value == 0.5 and crab.spectral_model.reference.frozen
    spatial = crab.spatial_model
    assert spatial.frame == "galactic" and spatial.lon_0.frozen and not spatial.lat_0.frozen
    assert (spatial.lon_0.value, spatial.lat_0.value, spatial.sigma.value) == pytest.approx((184.55, -5.78, 0.1))
    assert (spatial.lat_0.min, spatial.lat_0.max) == (-90.0, 90.0)
    assert crab.datasets_names == ["hess", "magic"] and blazar.datasets_names is None
    assert blazar.spatial_model is None and blazar.spectral_model.beta.value == 0.2
    assert bkg.spectral_model.norm.value == 1.1 and bkg.spectral_model.tilt.frozen

    with pytest.raises(FileExistsError, match="overwrite"):
        read.write(path)
    read.write(path, overwrite=True)


def test_read_converts_parameters_given_in_another_unit():
    text = """
components:
- name: src
  type: SkyModel
  spectral:
    type: PowerLawSpectralModel
    parameters:
    - {name: amplitude, value: 2.0e-15, unit: cm-2 s-1 GeV-1, error: 1.0e-16, min: 0.0}
    - {name: reference, value: 300.0, unit: GeV, frozen: true}
  spatial:
    type: DiskSpatialModel
    frame: icrs
    parameters:
    - {name: r_0, value: 30.0, unit: arcmin, max: 120.0}
"""
    (src,) = Models.from_yaml(text)
    assert src.spectral_model.amplitude.value == pytest.approx(2e-12)
    assert src.spectral_model.amplitude.error == pytest.approx(1e-13)
    assert src.spectral_model.reference.value == pytest.approx(0.3)
    assert src.spatial_model.r_0.value == pytest.approx(0.5) and src.spatial_model.r_0.max == pytest.approx(2.0)
    assert src.spectral_model.index.value == 2.0  # not in the file: the declared default


# ---- every spectral x spatial x temporal combination ----------------------------------------
SPECTRAL_NAMES = ["const", "const-norm", "pl", "pl-norm", "pl-2", "bpl", "sbpl", "lp", "ecpl", "ecpl-3fgl",
                  "secpl-3fgl", "secpl-4fgl", "secpl-4fgl-dr3", "gauss", "ebl", "template", "piecewise-norm",
                  "compound", "callable"]


def spectral_models():
    ebl = EBLAbsorptionNormSpectralModel(
        [0.1, 1.0, 10.0] * u.TeV, [0.1, 0.5], [[0.99, 0.9, 0.5], [0.95, 0.6, 0.1]], redshift=0.3
    )
    return {
        "const": ConstantSpectralModel(const="2e-12 cm-2 s-1 TeV-1"),
        "const-norm": ConstantNormSpectralModel(norm=1.3),
        "pl": PowerLawSpectralModel(index=2.3),
        "pl-norm": PowerLawNormSpectralModel(norm=0.9, tilt=0.1),
        "pl-2": PowerLaw2SpectralModel(),
        "bpl": BrokenPowerLawSpectralModel(),
        "sbpl": SmoothBrokenPowerLawSpectralModel(),
        "lp": LogParabolaSpectralModel(),
        "ecpl": ExpCutoffPowerLawSpectralModel(),
        "ecpl-3fgl": ExpCutoffPowerLaw3FGLSpectralModel(),
        "secpl-3fgl": SuperExpCutoffPowerLaw3FGLSpectralModel(),
        "secpl-4fgl": SuperExpCutoffPowerLaw4FGLSpectralModel(),
        "secpl-4fgl-dr3": SuperExpCutoffPowerLaw4FGLDR3SpectralModel(),
        "gauss": GaussianSpectralModel(),
        "ebl": ebl.copy(),
        "template": TemplateSpectralModel([0.1, 1.0, 10.0], [1e-10, 1e-12, 3e-15]),
        "piecewise-norm": PiecewiseNormSpectralModel([0.3, 3.0, 30.0], [1.2, 0.8, 1.1]),
        "compound": PowerLawSpectralModel() * ebl,
        "callable": CallableSpectralModel(
            power_law_with_cutoff, {"amplitude": "4e-11 cm-2 s-1 TeV-1", "index": 2.2, "e_cut": 20 * u.TeV}
        ),
    }


@pytest.fixture(scope="module")
def template_path(tmp_path_factory):
    """A small Gaussian template map in a FITS file (quick to read for every component)."""
    geom = WcsGeom.create(skydir=(83.6, 22.0), width=1.0, binsz=0.1)
    path = tmp_path_factory.mktemp("template") / "gauss.fits"
    write_map_fits(GaussianSpatialModel(lon_0=83.6, lat_0=22.0, sigma=0.2).evaluate_geom(geom), path)
    return path


@pytest.fixture(scope="module")
def spatial_models(template_path):
    return [None, PointSpatialModel(lon_0=83.6, lat_0=22.0), GaussianSpatialModel(sigma=0.3, frame="galactic"),
            GeneralizedGaussianSpatialModel(r_0=0.2), DiskSpatialModel(r_0=0.4, frame="galactic"),
            ShellSpatialModel(radius=0.5), Shell2SpatialModel(frame="galactic"), ConstantSpatialModel(),
            TemplateSpatialModel(template_path)]


@pytest.fixture(scope="module")
def temporal_models(tmp_path_factory):
    light_curve = LightCurveTemplateTemporalModel(MJD, [0.0, 2.0, 1.0, 3.0])
    light_curve.write(tmp_path_factory.mktemp("light_curve") / "light_curve.fits")
    return [None, ConstantTemporalModel(), LinearTemporalModel(scale="tt"), ExpDecayTemporalModel(),
            GaussianTemporalModel(), GeneralizedGaussianTemporalModel(), PowerLawTemporalModel(),
            SineTemporalModel(), light_curve]


def test_every_model_type_is_covered(spatial_models, temporal_models):
    assert list(spectral_models()) == SPECTRAL_NAMES
    for family, models in ((SpectralModel, spectral_models().values()),
                           (SpatialModel, spatial_models), (TemporalModel, temporal_models)):
        assert {type(m) for m in models if m is not None} == set(family._registry.values())


def perturb(model, seed):
    """Move every parameter off its default: value, error, frozen flag (independent known numbers)."""
    for i, par in enumerate(model.parameters):
        par.value = par.value * 1.01 if par.value else 0.01 * (i + 1)
        par.error = 0.001 * (seed + i + 1)
        par.frozen = not par.frozen
        par.check_limits()


def assert_same_parameters(read, expected):
    assert read.parameters.names == expected.parameters.names
    for a, b in zip(read.parameters, expected.parameters):
        assert (a.unit, a.frozen) == (b.unit, b.frozen), a.name
        assert_allclose([a.value, a.error, a.min, a.max], [b.value, b.error, b.min, b.max], rtol=1e-14,
                        err_msg=a.name)


@pytest.mark.parametrize("spectral_name", SPECTRAL_NAMES)
def test_every_combination_round_trips_through_models_yaml(spectral_name, spatial_models, temporal_models, tmp_path):
    spectral = spectral_models()[spectral_name]
    sources = []
    for i, spatial in enumerate(spatial_models):
        for j, temporal in enumerate(temporal_models):
            components = [spectral.copy(), spatial and spatial.copy(), temporal and temporal.copy()]
            for k, component in enumerate(c for c in components if c is not None):
                perturb(component, seed=100 * i + 10 * j + k)
            sources.append(SkyModel(*components, name=f"{spectral_name}-{i}-{j}"))
    path = tmp_path / "models.yaml"
    Models(sources).write(path)
    read = Models.read(path)
    assert read.names == [s.name for s in sources]
    assert len(read.parameters.unique) == len(read.parameters)  # no link appeared
    for got, expected in zip(read, sources):
        assert type(got.spectral_model) is type(expected.spectral_model)
        assert_same_parameters(got.spectral_model, expected.spectral_model)
        assert_allclose(got.spectral_model.dnde_values(ENERGY), expected.spectral_model.dnde_values(ENERGY),
                        rtol=1e-12)
        for key in ("spatial", "temporal"):
            got_model, expected_model = getattr(got, f"{key}_model"), getattr(expected, f"{key}_model")
            assert type(got_model) is type(expected_model), (got.name, key)
            if expected_model is not None:
                assert_same_parameters(got_model, expected_model)
        if expected.spatial_model is not None:
            assert got.spatial_model.frame == expected.spatial_model.frame
            if not isinstance(expected.spatial_model, TemplateSpatialModel):
                lon, lat = 83.6 + np.array([0.0, 0.15, 0.4]), 22.0 + np.array([0.0, -0.1, 0.2])
                assert_allclose(got.spatial_model(lon, lat), expected.spatial_model(lon, lat), rtol=1e-12)
            else:
                assert_allclose(got.spatial_model.map.values, expected.spatial_model.map.values)
        if expected.temporal_model is not None:
            assert got.temporal_model.scale == expected.temporal_model.scale
            assert_allclose(got.temporal_model(MJD), expected.temporal_model(MJD), rtol=1e-12)


# ---- links ---------------------------------------------------------------------------
def test_links_survive_a_file_round_trip(tmp_path):
    a = SkyModel(PowerLawSpectralModel(index=2.2), PointSpatialModel(), name="a")
    b = SkyModel(PowerLawSpectralModel(index=3.0), GaussianSpatialModel(), name="b")
    b.spectral_model.index = a.spectral_model.index
    models = Models([a, b])
    assert len(models.parameters.unique) == len(models.parameters) - 1
    path = tmp_path / "linked.yaml"
    models.write(path)

    raw = yaml.safe_load(path.read_text())["components"]
    labels = [p.get("link") for c in raw for p in c["spectral"]["parameters"]]
    assert labels[0] == labels[3] and labels[0].startswith("@index") and labels.count(None) == 4

    read = Models.read(path)
    index_a, index_b = read["a"].spectral_model.index, read["b"].spectral_model.index
    assert index_b.value == 2.2
    index_a.value = 2.7
    assert index_b.value == 2.7
    assert len(read.parameters.free) == len(models.parameters.free)
    assert read["a"].spectral_model.amplitude is not read["b"].spectral_model.amplitude


def test_links_in_temporal_models_of_sources_without_spatial_model():
    a = SkyModel(PowerLawSpectralModel(), temporal_model=LinearTemporalModel(alpha=0.5), name="a")
    b = SkyModel(PowerLawSpectralModel(), temporal_model=LinearTemporalModel(), name="b")
    b.temporal_model.alpha = a.temporal_model.alpha
    read = Models.from_yaml(Models([a, b]).to_yaml())
    assert read["a"].temporal_model.alpha is read["b"].temporal_model.alpha
    assert read["b"].temporal_model.alpha.value == 0.5
    assert read["a"].spectral_model.index is not read["b"].spectral_model.index


def test_links_inside_compound_spectral_models():
    a = SkyModel(PowerLawSpectralModel() * PiecewiseNormSpectralModel([1.0, 10.0]), name="a")
    b = SkyModel(PowerLawSpectralModel(index=3.0) * PiecewiseNormSpectralModel([1.0, 10.0]), name="b")
    b.spectral_model.model1.index = a.spectral_model.model1.index
    read = Models.from_yaml(Models([a, b]).to_yaml())
    first, second = read["a"].spectral_model, read["b"].spectral_model
    assert first.model1.index is second.model1.index and second.model1.index.value == 2.0
    assert first.model2.parameters["norm_0"] is not second.model2.parameters["norm_0"]


def test_copy_keeps_links_between_copied_models():
    a = SkyModel(PowerLawSpectralModel(), name="a")
    b = SkyModel(PowerLawSpectralModel(), name="b")
    b.spectral_model.index = a.spectral_model.index
    models = Models([a, b])
    copied = models.copy()
    assert copied["a"].spectral_model.index is copied["b"].spectral_model.index
    assert copied["a"].spectral_model.index is not a.spectral_model.index
    copied["a"].spectral_model.index.value = 4.0
    assert a.spectral_model.index.value == 2.0


# ---- FoVBackgroundModel ---------------------------------------------------------------
def test_fov_background_model():
    bkg = FoVBackgroundModel("crab-run-23523")
    assert bkg.name == "crab-run-23523-bkg" and bkg.datasets_names == ["crab-run-23523"]
    spectral = bkg.spectral_model
    assert isinstance(spectral, PowerLawNormSpectralModel)
    assert (spectral.norm.value, spectral.tilt.value, spectral.reference.value) == (1.0, 0.0, 1.0)
    assert spectral.tilt.frozen and spectral.reference.frozen and not spectral.norm.frozen
    assert bkg.parameters.free.names == ["norm"]
    assert bkg.applies_to("crab-run-23523") and not bkg.applies_to("other")
    read = FoVBackgroundModel.from_dict(bkg.to_dict())
    assert read.name == bkg.name and read.spectral_model.tilt.frozen
    with pytest.raises(ModelError, match="exactly one"):
        FoVBackgroundModel.from_dict({"type": "FoVBackgroundModel", "datasets_names": ["a", "b"]})


# ---- collection ----------------------------------------------------------------------
def test_select_by_dataset_and_tag():
    models = Models([
        SkyModel(PowerLawSpectralModel(), name="only-d1", datasets_names=["d1"]),
        SkyModel(PowerLawSpectralModel(), name="everywhere"),
        FoVBackgroundModel("d1"),
        FoVBackgroundModel("d2"),
    ])
    assert models.select("d1").names == ["only-d1", "everywhere", "d1-bkg"]
    assert models.select(["d2", "d3"]).names == ["everywhere", "d2-bkg"]
    assert models.select(tag="SkyModel").names == ["only-d1", "everywhere"]
    assert models.select("d2", tag="FoVBackgroundModel").names == ["d2-bkg"]
    assert models.select().names == models.names
    assert isinstance(models.select("d1"), Models)


def test_lookup_slicing_and_addition():
    a, b = SkyModel(PowerLawSpectralModel(), name="a"), SkyModel(LogParabolaSpectralModel(), name="b")
    models = Models(a) + [b]
    assert models.names == ["a", "b"] and models["b"] is b and models[0] is a and "a" in models
    assert models[1:].names == ["b"]
    with pytest.raises(KeyError, match="'c'.*\\['a', 'b'\\]"):
        models["c"]


def test_names_must_be_unique():
    a = SkyModel(PowerLawSpectralModel(), name="src")
    with pytest.raises(ValueError, match="'src' is already in the collection"):
        Models([a, a.copy()])
    models = Models([a, FoVBackgroundModel("d1")])
    with pytest.raises(ValueError, match="'d1-bkg'"):
        models.append(FoVBackgroundModel("d1"))
    with pytest.raises(ValueError, match="'src'"):
        Models.from_dict({"components": [a.to_dict(), a.to_dict()]})


def test_sky_model_requires_the_right_families():
    with pytest.raises(TypeError, match="'bad'.*spatial_model must be a SpatialModel"):
        SkyModel(PowerLawSpectralModel(), PowerLawSpectralModel(), name="bad")


# ---- errors ---------------------------------------------------------------------------
def test_unknown_types_name_the_component():
    with pytest.raises(ModelError, match="components\\[1\\] \\('mystery'\\).*'Foo'.*SkyModel"):
        Models.from_dict({"components": [
            {"name": "ok", "type": "SkyModel", "spectral": {"type": "pl"}},
            {"name": "mystery", "type": "Foo"},
        ]})
    with pytest.raises(ModelError, match="SkyModel 'src' spatial: unknown SpatialModel type 'Blob'"):
        Models.from_dict({"components": [
            {"name": "src", "type": "SkyModel", "spectral": {"type": "pl"}, "spatial": {"type": "Blob"}},
        ]})
    with pytest.raises(ModelError, match="SkyModel 'src' has no 'spectral'"):
        Models.from_dict({"components": [{"name": "src", "type": "SkyModel"}]})


@pytest.mark.parametrize(
    ("filename", "text", "error", "match"),
    [
        ("missing.yaml", None, FileNotFoundError, "missing.yaml"),
        ("broken.yaml", "components: [\n  - name: {unclosed\n", ModelError, "broken.yaml"),
        ("list.yaml", "- a\n- b\n", ModelError, "list.yaml.*'components'"),
        ("unknown.yaml", "components:\n- {name: src, type: SkyModel, spectral: {type: NoSuchSpectrum}}\n",
         ModelError, "unknown.yaml.*'src'.*'NoSuchSpectrum'"),
    ],
)
def test_unreadable_files_are_named(filename, text, error, match, tmp_path):
    path = tmp_path / filename
    if text is not None:
        path.write_text(text)
    with pytest.raises(error, match=match):
        Models.read(path)


# ---- the cached parameter collection ---------------------------------------------------
def test_parameters_collection_is_cached_while_models_are_unchanged():
    models = two_sources_and_background()
    parameters = models.parameters
    assert models.parameters is parameters
    free = parameters.free
    parameters.set_covariance_of(free, np.diag(np.arange(1.0, len(free) + 1)))
    assert models.parameters.covariance_of(free)[2, 2] == 3.0  # a fit's covariance persists
    models["crab"].spectral_model.index.value = 2.9  # a value change keeps the collection
    assert models.parameters is parameters

    models.append(SkyModel(PowerLawSpectralModel(), name="new"))
    grown = models.parameters
    assert grown is not parameters and len(grown) == len(parameters) + 3
    assert models.parameters is grown

    models["new"].spectral_model.index = models["crab"].spectral_model.index  # relinking: a new collection
    assert models.parameters is not grown
