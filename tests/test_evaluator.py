"""Forward-folding helpers against analytic expectations."""

import numpy as np
import pytest

from xgamma.datasets.evaluator import (
    _convolve_support,
    _FFTConvolver,
    _place_kernels,
    edisp_kernel_from_migra,
    psf_kernel,
)


def gaussian_psf(sigma_deg, rad_edges):
    """A 2-D Gaussian PSF density in sr-1 at the rad bin centres."""
    rad = 0.5 * (rad_edges[:-1] + rad_edges[1:])
    sigma = np.radians(sigma_deg)
    return np.exp(-0.5 * (np.radians(rad) / sigma) ** 2) / (2 * np.pi * sigma**2)


def test_psf_kernel_of_a_gaussian_has_its_width_and_unit_sum():
    rad_edges = np.linspace(0, 1.0, 201)
    sigmas = np.array([0.05, 0.1])
    kernel = psf_kernel(np.stack([gaussian_psf(s, rad_edges) for s in sigmas]), rad_edges, binsz_deg=0.01)
    np.testing.assert_allclose(kernel.sum(axis=(1, 2)), 1.0, rtol=1e-12)
    half = kernel.shape[-1] // 2
    offsets = (np.arange(kernel.shape[-1]) - half) * 0.01
    x2 = (kernel * offsets[None, None, :] ** 2).sum(axis=(1, 2))
    # radius where 99.9 % are contained: sigma sqrt(-2 ln 0.001) = 3.72 sigma, for the widest energy
    radius = half * 0.01
    assert radius == pytest.approx(3.72 * 0.1, abs=0.011)
    # <x^2> of a 2-D Gaussian cut at R: sigma^2 (1 - a e^-a / (1 - e^-a)), a = R^2 / 2 sigma^2; plus pixel^2 / 12
    a = radius**2 / (2 * sigmas**2)
    expected = sigmas**2 * (1 - a * np.exp(-a) / (1 - np.exp(-a))) + 0.01**2 / 12
    np.testing.assert_allclose(x2, expected, rtol=3e-3)


def test_edisp_kernel_from_migra_of_a_narrow_dispersion():
    """All probability in the migra bin [0.9, 1.1): the kernel puts it in the reco bins around E_true."""
    migra_edges = np.linspace(0.1, 3.0, 30)  # 0.1 wide
    probabilities = np.zeros((3, 29))
    probabilities[:, 8] = 1.0  # [0.9, 1.0)
    energy_true = np.array([1.0, 2.0, 4.0])
    energy_edges = np.array([0.5, 0.95, 1.9, 3.8, 8.0])
    kernel = edisp_kernel_from_migra(probabilities, migra_edges, energy_true, energy_edges)
    # E_true = 1: migra [0.9, 1.0) maps to [0.9, 1.0) TeV: half below 0.95, half above
    np.testing.assert_allclose(kernel[0], [0.5, 0.5, 0, 0], atol=1e-12)
    # E_true = 2: [1.8, 2.0): half below 1.9; E_true = 4: [3.6, 4.0): half below 3.8
    np.testing.assert_allclose(kernel[1], [0, 0.5, 0.5, 0], atol=1e-12)
    np.testing.assert_allclose(kernel[2], [0, 0, 0.5, 0.5], atol=1e-12)


def _same(convolved, shape):
    """A `_convolve_support` result as the planes of ``fftconvolve(..., mode="same")``."""
    return convolved.planes().reshape(shape)


def test_direct_and_fft_convolutions_agree_with_scipy():
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(1)
    kernel = rng.random((2, 7, 7))
    kernel /= kernel.sum(axis=(1, 2), keepdims=True)
    response = np.zeros((2, 20, 30))
    fraction = np.zeros((20, 30))
    for iy, ix in ((0, 0), (5, 29), (10, 15), (19, 3)):  # edges included
        fraction[iy, ix] = 1.0
        response[:, iy, ix] = rng.random(2)
    expected = fftconvolve(response, kernel, mode="same", axes=(1, 2))
    np.testing.assert_allclose(_place_kernels(response, fraction, kernel), expected, atol=1e-12)
    convolver = _FFTConvolver(kernel, (20, 30))
    np.testing.assert_allclose(convolver.inverse(convolver.transform(response, 1.0))[:, 3:23, 3:33], expected, atol=1e-6)
    np.testing.assert_allclose(_same(_convolve_support(response, fraction, kernel, {}), response.shape), expected, atol=1e-6)
    # a compact source away from the edges: only its box is transformed
    fraction = np.zeros((20, 30))
    fraction[8:12, 10:16] = 1.0
    response = rng.random((2, 20, 30)) * fraction
    expected = fftconvolve(response, kernel, mode="same", axes=(1, 2))
    np.testing.assert_allclose(_same(_convolve_support(response, fraction, kernel, {}), response.shape), expected, atol=1e-6)
