"""Ring background: OFF counts of every pixel from a ring around it.

Which one to use when:

- `RingBackgroundMaker`: a fixed ring (inner radius ``r_in``, ``width``)
  around every pixel; the classic method for significance and excess maps of
  a field with a few known sources (masked by an exclusion mask).
- `AdaptiveRingBackgroundMaker`: the ring grows (larger ``r_in`` or larger
  ``width``) until the ON/OFF exposure ratio ``alpha`` of a circular ON
  region of radius ``theta`` falls below ``threshold_alpha``; for fields
  with large exclusion regions, where a fixed ring would be mostly excluded.
- `~xgamma.makers.FoVBackgroundMaker` (model background, Cash fits) and
  `~xgamma.makers.ReflectedRegionsBackgroundMaker` (1-D spectra) are the
  other background methods.

Both ring makers turn a `~xgamma.datasets.MapDataset` (with counts and an
IRF ``background``) into a `~xgamma.datasets.MapDatasetOnOff`:

- ``counts_off`` of a pixel: the counts summed over the ring around it,
  skipping excluded pixels and pixels outside ``mask_safe``;
- ``acceptance``: the pixel's IRF background;
- ``acceptance_off``: the IRF background summed over the same ring pixels;
- so ``alpha = acceptance / acceptance_off`` and the pixel's background is
  ``alpha x counts_off``: the counts of the ring scaled by the background
  model's ratio of ON to ring.

Pixels with no usable ring pixel (``acceptance_off == 0``) get
``counts_off = 0`` and are removed from ``mask_safe``. They run on a
stacked dataset or per observation (then stack the On/Off datasets: alpha
follows the summed backgrounds).

Flat-sky approximation
----------------------
The ring is a fixed pixel kernel: radii are converted to pixels with the
angular pixel size along ``x`` and ``y`` at the map centre, and the ring sum
is an FFT convolution of the masked maps with that kernel (per energy bin,
vectorised). Projection distortions make the true angular radii differ away
from the centre, by a fraction of order ``(d / 1 rad)^2`` at a distance ``d``
from the map centre for CAR or TAN maps (about 0.1 % at 3 deg), plus the
``cos(lat)`` stretch of a non-oblique CAR map away from its reference
latitude: use maps centred on the field (as `WcsGeom.create` makes them).
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from ..datasets.map import MapDataset
from ..datasets.map_onoff import MapDatasetOnOff, _annulus_kernel, _kernel_sum
from ..units import to_value
from .fov_background import _lookup_mask
from .reflected import _check_exclusion_mask

__all__ = ["AdaptiveRingBackgroundMaker", "RingBackgroundMaker"]

_ADAPTIVE_METHODS = ("fixed_width", "fixed_r_in")


def _allowed_bins(dataset: MapDataset, exclusion_mask) -> xr.DataArray:
    """Bins usable for OFF measurements: safe, finite and not excluded (energy, y, x)."""
    counts, background = dataset.data["counts"], dataset.data["background"]
    usable = dataset.mask_safe & np.isfinite(counts) & np.isfinite(background)
    exclusion_mask = _check_exclusion_mask(exclusion_mask)
    if exclusion_mask is not None:
        usable = usable & _lookup_mask(exclusion_mask, dataset.geom.to_image())
    return usable.transpose(*counts.dims)


def _check_dataset(dataset, maker: str):
    if isinstance(dataset, MapDatasetOnOff):
        raise TypeError(f"{maker}: dataset {dataset.name!r} is already a MapDatasetOnOff; give the MapDataset "
                        f"with its IRF background")
    if not isinstance(dataset, MapDataset):
        raise TypeError(f"{maker} needs a MapDataset, got {type(dataset).__name__}")
    for key in ("counts", "background"):
        if key not in dataset.data:
            raise ValueError(f"{maker} needs {key!r} in dataset {dataset.name!r} (MapDatasetMaker selection "
                             f"must include it); it has {sorted(dataset.data.data_vars)}")


def _on_off(dataset, counts_off, acceptance_off, acceptance, attrs) -> MapDatasetOnOff:
    """The On/Off dataset; bins without OFF acceptance get no OFF counts and leave mask_safe."""
    has_off = acceptance_off > 0
    counts_off = counts_off.where(has_off, 0.0)
    acceptance_off = acceptance_off.where(has_off, 0.0)
    mask_safe = (dataset.mask_safe & has_off).transpose(*dataset.mask_safe.dims)
    out = MapDatasetOnOff.from_map_dataset(
        dataset, counts_off=counts_off, acceptance=acceptance, acceptance_off=acceptance_off, mask_safe=mask_safe
    )
    out.data.attrs.update(attrs)
    return out


class RingBackgroundMaker:
    """OFF counts of every pixel from a ring around it (see the module docstring).

    Parameters
    ----------
    r_in : float, str or `~astropy.units.Quantity`
        Inner ring radius, deg (plain numbers in deg). Default ``"0.5 deg"``.
    width : float, str or `~astropy.units.Quantity`
        Ring width, deg: the outer radius is ``r_in + width``. Default
        ``"0.3 deg"``.
    exclusion_mask : `xarray.DataArray`, optional
        Boolean WCS map, dims ``(y, x)`` with a ``wcs`` attr, **True where a
        pixel may be used** in OFF rings, False inside exclusion regions (e.g.
        ``~geom.region_mask(regions)`` with the ``wcs`` attr set). It may
        cover a larger grid: it is looked up at the dataset's pixel centres
        (nearest pixel); pixels outside it count as usable.

    Notes
    -----
    A ring pixel is one whose centre lies at a flat-sky distance ``r`` with
    ``r_in <= r <= r_in + width`` from the ON pixel's centre (see the
    module's flat-sky approximation). The ON pixel itself is never in its
    ring when ``r_in > 0``.

    Examples
    --------
    >>> maker = RingBackgroundMaker(r_in="0.5 deg", width="0.3 deg", exclusion_mask=mask)   # doctest: +SKIP
    >>> onoff = maker.run(stacked)                                                         # doctest: +SKIP
    >>> onoff.to_image().correlate("0.1 deg").sqrt_ts                                     # doctest: +SKIP
    """

    tag = "RingBackgroundMaker"

    def __init__(self, r_in="0.5 deg", width="0.3 deg", exclusion_mask=None):
        self.r_in = r_in
        self.width = width
        self.exclusion_mask = exclusion_mask

    def __repr__(self):
        mask = None if self.exclusion_mask is None else "<mask>"
        return f"RingBackgroundMaker(r_in={self.r_in!r}, width={self.width!r}, exclusion_mask={mask})"

    def _radii(self) -> tuple[float, float]:
        r_in, width = to_value(self.r_in, "deg", "r_in"), to_value(self.width, "deg", "width")
        if not r_in >= 0:
            raise ValueError(f"RingBackgroundMaker: r_in must be >= 0 deg, got {self.r_in!r}")
        if not width > 0:
            raise ValueError(f"RingBackgroundMaker: width must be > 0 deg, got {self.width!r}")
        return r_in, r_in + width

    def kernel(self, geom) -> np.ndarray:
        """The ring as a pixel kernel on ``geom``.

        Parameters
        ----------
        geom : `~xgamma.geom.WcsGeom`
            Sky grid (its pixel size at the centre converts the radii).

        Returns
        -------
        `numpy.ndarray`
            Dims (y, x), odd sizes, 1 on ring pixels and 0 elsewhere,
            centred on the middle pixel.
        """
        r_in, r_out = self._radii()
        return _annulus_kernel(geom.to_image(), r_in, r_out)

    def make_maps_off(self, dataset: MapDataset) -> dict[str, xr.DataArray]:
        """OFF counts and OFF acceptance of every pixel.

        Parameters
        ----------
        dataset : `~xgamma.datasets.MapDataset`
            With ``counts``, ``background`` and ``mask_safe``.

        Returns
        -------
        dict
            ``counts_off`` and ``acceptance_off`` (energy, y, x), the counts
            and IRF background summed over the usable ring pixels
            (dimensionless, >= 0).
        """
        _check_dataset(dataset, type(self).__name__)
        usable = _allowed_bins(dataset, self.exclusion_mask)
        kernel = self.kernel(dataset.geom)
        return {
            "counts_off": _kernel_sum(dataset.data["counts"].where(usable, 0.0), kernel),
            "acceptance_off": _kernel_sum(dataset.data["background"].where(usable, 0.0), kernel),
        }

    def run(self, dataset: MapDataset, observation=None) -> MapDatasetOnOff:
        """Turn ``dataset`` into an On/Off dataset with ring OFF counts.

        Parameters
        ----------
        dataset : `~xgamma.datasets.MapDataset`
            Stacked or single-observation dataset with ``counts``,
            ``background`` (the IRF background, used as acceptance) and
            ``mask_safe``.
        observation : `~xgamma.data.Observation`, optional
            Unused; accepted so that all makers share ``run(dataset, observation)``.

        Returns
        -------
        `~xgamma.datasets.MapDatasetOnOff`
            ``acceptance`` = the dataset's background; ``mask_safe`` loses the
            bins without OFF acceptance. Attrs ``ring_r_in`` and
            ``ring_r_out`` (deg) record the ring.
        """
        maps = self.make_maps_off(dataset)
        r_in, r_out = self._radii()
        return _on_off(dataset, maps["counts_off"], maps["acceptance_off"], dataset.data["background"],
                       {"ring_r_in": r_in, "ring_r_out": r_out})


class AdaptiveRingBackgroundMaker:
    """Ring background whose ring grows until ``alpha`` is small enough.

    For every pixel and energy bin the rings are tried from the smallest to
    the largest; the first with ``acceptance_theta / acceptance_off <=
    threshold_alpha`` is used, where ``acceptance_theta`` is the IRF
    background in a disk of radius ``theta`` around the pixel (the ON region
    of a significance map) and ``acceptance_off`` the background over the
    usable ring pixels.

    Parameters
    ----------
    r_in : float, str or `~astropy.units.Quantity`
        Inner radius of the first ring, deg. Default ``"0.22 deg"``.
    r_out_max : float, str or `~astropy.units.Quantity`
        Largest outer radius, deg. Default ``"0.8 deg"``.
    width : float, str or `~astropy.units.Quantity`
        Width of the first ring, deg. Default ``"0.1 deg"``.
    stepsize : float, str or `~astropy.units.Quantity`
        Growth step of ``r_in`` (``fixed_width``) or of the width
        (``fixed_r_in``), deg. Default ``"0.02 deg"``.
    threshold_alpha : float
        Largest acceptable ``alpha`` of the ``theta`` ON region. Default 0.1.
    theta : float, str or `~astropy.units.Quantity`
        Radius of the ON region used to judge alpha, deg. Default ``"0.22 deg"``.
    method : {"fixed_width", "fixed_r_in"}
        ``fixed_width``: the ring moves outwards (``r_in`` grows, width
        fixed); ``fixed_r_in``: the ring widens (``r_in`` fixed).
    exclusion_mask : `xarray.DataArray`, optional
        As for `RingBackgroundMaker`.

    Notes
    -----
    The rings tried have ``r_in + width <= r_out_max`` (endpoint included).
    Pixels where no ring reaches the threshold get no OFF counts and leave
    ``mask_safe`` (with a warning). With ``theta = 0.22 deg`` and
    ``threshold_alpha = 0.1`` a ring must cover ten times the disk's area,
    about 1.5 deg2 (e.g. 0.22 to 0.75 deg): pick ``r_out_max`` and ``method``
    accordingly.

    Gammapy's maker converts ``theta`` to pixels by multiplying by the pixel
    size instead of dividing, so its ON disk is a single pixel and its
    threshold applies to the per-pixel alpha; here ``theta`` is the radius
    it claims to be. Unlike Gammapy, which needs one energy bin, the ring is
    chosen per energy bin. The stored ``acceptance`` is the background of
    the pixel itself (not of the ``theta`` disk), so that ``alpha x
    counts_off`` is the background of the pixel's counts, as for
    `RingBackgroundMaker`; ``theta`` only enters the choice of the ring.
    """

    tag = "AdaptiveRingBackgroundMaker"

    def __init__(self, r_in="0.22 deg", r_out_max="0.8 deg", width="0.1 deg", stepsize="0.02 deg",
                 threshold_alpha=0.1, theta="0.22 deg", method="fixed_width", exclusion_mask=None):
        self.r_in = r_in
        self.r_out_max = r_out_max
        self.width = width
        self.stepsize = stepsize
        self.threshold_alpha = threshold_alpha
        self.theta = theta
        self.method = method
        self.exclusion_mask = exclusion_mask

    def __repr__(self):
        mask = None if self.exclusion_mask is None else "<mask>"
        return (
            f"AdaptiveRingBackgroundMaker(r_in={self.r_in!r}, r_out_max={self.r_out_max!r}, width={self.width!r}, "
            f"stepsize={self.stepsize!r}, threshold_alpha={self.threshold_alpha!r}, theta={self.theta!r}, "
            f"method={self.method!r}, exclusion_mask={mask})"
        )

    def rings(self) -> list[tuple[float, float]]:
        """The rings tried, smallest first.

        Returns
        -------
        list of (float, float)
            ``(r_in, r_out)`` pairs in deg.

        Raises
        ------
        ValueError
            For an unknown method, non-positive sizes or when not even the
            first ring fits inside ``r_out_max``.
        """
        if self.method not in _ADAPTIVE_METHODS:
            raise ValueError(f"AdaptiveRingBackgroundMaker: method must be one of {_ADAPTIVE_METHODS}, got {self.method!r}")
        r_in = to_value(self.r_in, "deg", "r_in")
        r_out_max = to_value(self.r_out_max, "deg", "r_out_max")
        width = to_value(self.width, "deg", "width")
        step = to_value(self.stepsize, "deg", "stepsize")
        if not (r_in >= 0 and width > 0 and step > 0):
            raise ValueError(f"AdaptiveRingBackgroundMaker: need r_in >= 0, width > 0 and stepsize > 0 deg, got "
                             f"r_in={self.r_in!r}, width={self.width!r}, stepsize={self.stepsize!r}")
        n_steps = int(np.floor((r_out_max - r_in - width) / step + 1e-9)) + 1
        if n_steps < 1:
            raise ValueError(f"AdaptiveRingBackgroundMaker: the first ring (r_in={self.r_in!r}, width={self.width!r}) "
                             f"does not fit inside r_out_max={self.r_out_max!r}")
        grow = step * np.arange(n_steps)
        if self.method == "fixed_width":
            return [(r_in + g, r_in + g + width) for g in grow]
        return [(r_in, r_in + width + g) for g in grow]

    def run(self, dataset: MapDataset, observation=None) -> MapDatasetOnOff:
        """Turn ``dataset`` into an On/Off dataset with adaptive ring OFF counts.

        Parameters
        ----------
        dataset : `~xgamma.datasets.MapDataset`
            With ``counts``, ``background`` (IRF background) and ``mask_safe``.
        observation : `~xgamma.data.Observation`, optional
            Unused; accepted so that all makers share ``run(dataset, observation)``.

        Returns
        -------
        `~xgamma.datasets.MapDatasetOnOff`
            Attrs ``ring_r_in_min`` and ``ring_r_out_max`` (deg) record the
            range of rings tried.
        """
        _check_dataset(dataset, type(self).__name__)
        rings = self.rings()
        theta = to_value(self.theta, "deg", "theta")
        threshold = float(self.threshold_alpha)
        image = dataset.geom.to_image()
        usable = _allowed_bins(dataset, self.exclusion_mask)
        counts = dataset.data["counts"].where(usable, 0.0)
        background = dataset.data["background"]
        background_usable = background.where(usable, 0.0)
        acceptance_theta = _kernel_sum(background.where(np.isfinite(background) & dataset.mask_safe, 0.0),
                                       _annulus_kernel(image, 0.0, theta))
        counts_off = xr.zeros_like(counts)
        acceptance_off = xr.zeros_like(counts)
        done = xr.zeros_like(usable, dtype=bool)
        for r_in, r_out in rings:  # a loop over ring sizes; each step is vectorised over all bins
            kernel = _annulus_kernel(image, r_in, r_out)
            off = _kernel_sum(counts, kernel)
            acc_off = _kernel_sum(background_usable, kernel)
            take = ~done & (acc_off > 0) & (acceptance_theta <= threshold * acc_off)
            counts_off = xr.where(take, off, counts_off)
            acceptance_off = xr.where(take, acc_off, acceptance_off)
            done = done | take
        missed = int((dataset.mask_safe & ~done).sum())
        if missed:
            warnings.warn(
                f"AdaptiveRingBackgroundMaker: {missed} of {int(dataset.mask_safe.sum())} safe bins of dataset "
                f"{dataset.name!r} found no ring with alpha <= {threshold:g} (ON disk theta={self.theta!r}, rings up "
                f"to r_out_max={self.r_out_max!r}); they leave mask_safe. Increase r_out_max or threshold_alpha, "
                f"use method='fixed_r_in', or a smaller theta",
                stacklevel=2,
            )
        return _on_off(dataset, counts_off, acceptance_off, background,
                       {"ring_r_in_min": rings[0][0], "ring_r_out_max": rings[-1][1]})
