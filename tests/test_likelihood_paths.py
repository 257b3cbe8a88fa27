"""The fast likelihood paths of map datasets give the numbers of the plain computation.

A spectral change is one product over the counted bins, the Cash statistic is
summed over the fitted bins with counts only (`CountedBins`), and an extended
source is folded in Fourier space: each must equal the straightforward
evaluation (a new evaluator, Cash over every fitted bin).
"""

import numpy as np
import pytest

from xgamma.axes import MapAxis
from xgamma.datasets.evaluator import _convolve_support, psf_kernel
from xgamma.datasets.map import MapDataset
from xgamma.geom import WcsGeom
from xgamma.modeling import (
    DiskSpatialModel,
    FoVBackgroundModel,
    GaussianSpatialModel,
    Models,
    PointSpatialModel,
    PowerLawSpectralModel,
    SkyModel,
)
from xgamma.stats import cash

CENTRE = (83.633, 22.014)


@pytest.fixture(scope="module")
def dataset():
    """A 2 x 2 deg dataset with Gaussian PSFs narrowing with energy, a smooth edisp, exposure and background."""
    energy = MapAxis.from_energy_bounds(1, 10, 3)
    energy_true = MapAxis.from_energy_bounds(0.5, 20, 6, name="energy_true")
    geom = WcsGeom.create(skydir=CENTRE, width=2, binsz=0.02, frame="icrs", proj="CAR", axes=[energy])
    out = MapDataset.create(geom, energy_axis_true=energy_true, name="toy")
    data = out.data
    rad = MapAxis.from_coords(data, "rad").center.to_value("deg")
    sigma = np.linspace(0.12, 0.05, energy_true.nbin)[:, None]
    psf = np.exp(-0.5 * (rad / sigma) ** 2) / (2 * np.pi * np.radians(sigma) ** 2)
    data["psf"].values[...] = psf[:, :, None, None]
    e_true, e_reco = energy_true.center.to_value("TeV"), energy.center.to_value("TeV")
    edisp = np.exp(-0.5 * (np.log(e_reco[None, :] / e_true[:, None]) / 0.3) ** 2)
    data["edisp"].values[...] = (0.8 * edisp / edisp.sum(axis=1, keepdims=True))[:, :, None, None]
    y = np.linspace(0.9, 1.1, geom.npix[1])[:, None]
    data["exposure"].values[...] = 1e11 * e_true[:, None, None] ** 0.5 * y
    data["background"].values[...] = 0.05 * y
    data["mask_safe"].values[...] = True
    rng = np.random.default_rng(3)
    data["counts"].values[...] = rng.poisson(0.3 * np.ones(data["counts"].shape))
    return out


def source(kind):
    spectral = PowerLawSpectralModel(index=2.5, amplitude="3e-11 cm-2 s-1 TeV-1")
    position = {"lon_0": "83.70 deg", "lat_0": "21.98 deg"}
    spatial = {
        "point": lambda: PointSpatialModel(**position),
        "gauss": lambda: GaussianSpatialModel(**position, sigma="0.1 deg"),
        "disk": lambda: DiskSpatialModel(**position, r_0="0.2 deg"),
    }[kind]()
    return SkyModel(spectral, spatial, name=kind)


def models(*kinds):
    return Models([source(kind) for kind in kinds] + [FoVBackgroundModel("toy")])


def plain_stat(dataset) -> float:
    """Cash over every fitted bin of the full npred cube, from new evaluators."""
    fresh = dataset.copy()
    fresh.mask_fit = dataset.mask_fit
    fresh.models = dataset.models.copy()
    arrays = fresh.fit_arrays()
    return float(cash(arrays.counts, fresh.npred_values())[arrays.mask].sum())


@pytest.mark.parametrize("kinds", [("point",), ("gauss",), ("disk",), ("point", "gauss")])
def test_counted_statistic_equals_the_statistic_over_all_bins(dataset, kinds):
    dataset.models = models(*kinds)
    assert dataset._counted_stat_sum() is not None  # the sparse path applies
    assert dataset.stat_sum() == pytest.approx(dataset._box_stat_sum(), rel=1e-9)
    assert dataset.stat_sum() == pytest.approx(plain_stat(dataset), rel=1e-9)


@pytest.mark.parametrize("kind", ["point", "gauss"])
def test_spectral_then_spatial_changes_equal_a_fresh_evaluation(dataset, kind):
    dataset.models = models(kind)
    model = dataset.models[kind]
    dataset.stat_sum()
    for change in (
        lambda: setattr(model.spectral_model.index, "value", 2.7),  # second spectrum at this position
        lambda: setattr(model.spectral_model.amplitude, "value", 2e-11),
        lambda: setattr(model.spatial_model.lon_0, "value", 83.71),  # a new position
        lambda: setattr(model.spectral_model.index, "value", 2.2),
        lambda: setattr(dataset.models["toy-bkg"].spectral_model.norm, "value", 1.1),
    ):
        change()
        stat, npred = dataset.stat_sum(), dataset.npred_values()
        fresh = dataset.copy()
        fresh.models = dataset.models.copy()
        np.testing.assert_allclose(npred, fresh.npred_values(), rtol=0, atol=1e-6 * npred.max())
        assert stat == pytest.approx(fresh.stat_sum(), rel=1e-9)


def test_partial_fit_mask_is_respected_by_the_counted_statistic(dataset):
    dataset.models = models("point", "gauss")
    mask = np.ones(dataset.counts.shape, dtype=bool)
    mask[:, 40:60, 45:70] = False  # a hole under both sources
    mask[0] = False
    dataset.mask_fit = mask
    try:
        assert dataset._counted_stat_sum() is not None
        assert dataset.stat_sum() == pytest.approx(plain_stat(dataset), rel=1e-9)
    finally:
        dataset.mask_fit = None


def test_negative_flux_is_summed_over_all_bins(dataset):
    """A negative amplitude (possible during a fit) could truncate npred: the plain sum is used."""
    dataset.models = models("gauss")
    dataset.models["gauss"].spectral_model.amplitude.value = -1e-12
    assert dataset._counted_stat_sum() is None
    assert dataset.stat_sum() == pytest.approx(plain_stat(dataset), rel=1e-9)


def test_fourier_fold_equals_folding_the_planes():
    rng = np.random.default_rng(2)
    rad_edges = np.linspace(0, 0.5, 51)
    rad = 0.5 * (rad_edges[1:] + rad_edges[:-1])
    psf = np.stack([np.exp(-0.5 * (rad / s) ** 2) for s in (0.1, 0.07, 0.04)])
    kernel = psf_kernel(psf, rad_edges, binsz_deg=0.02)
    fraction = np.zeros((60, 70))
    fraction[20:35, 25:45] = rng.random((15, 20))
    exposure = 1 + rng.random((3, 60, 70))
    response = _convolve_support(exposure, fraction, kernel, {}, nonnegative=True)
    weights = rng.random((2, 3))
    folded = response.fold(weights)
    assert not response.has_planes  # folding did not need the planes
    expected = weights @ response.planes()
    np.testing.assert_allclose(folded, expected, rtol=0, atol=1e-6 * expected.max())
    assert folded.min() >= 0 and response.planes().min() >= 0


@pytest.mark.parametrize("alpha", [1.0, -2.0])  # a mean of 1.5 over the GTI, and a negative one (-0.5)
def test_temporal_factor_enters_the_counted_statistic(dataset, alpha):
    from xgamma.modeling import LinearTemporalModel

    timed = dataset.copy()
    timed.data.attrs["gti"] = [[55000.0, 55001.0]]  # MJD (TT): one day
    model = source("gauss")
    model.temporal_model = LinearTemporalModel(alpha=alpha, beta="1 d-1", t_ref=55000.0, scale="tt")
    timed.models = Models([model, FoVBackgroundModel("toy")])
    assert (timed._counted_stat_sum() is None) == (alpha < 0)  # a negative npred could be truncated
    assert timed.stat_sum() == pytest.approx(plain_stat(timed), rel=1e-9)
