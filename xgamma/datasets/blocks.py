"""Split a large map dataset into spatial blocks whose likelihoods add up to its own.

`DaskDatasets` uses this to evaluate one large map on several workers: each
block holds a core region of the map plus a margin (so that sources just
outside the core still spread their PSF into it); only the core's bins are
fitted (``mask_fit``), so every bin of the original map is counted exactly
once and the sum of the blocks' statistics equals the map's.
"""

from __future__ import annotations

import numpy as np

from ..units import to_value

__all__ = ["split_into_blocks"]


def split_into_blocks(dataset, shape=(2, 2), margin="1 deg") -> list:
    """Spatial blocks of a `MapDataset` (core + margin), fitted on their cores only.

    Parameters
    ----------
    dataset : `~xgamma.datasets.MapDataset`
        The map to split; its reduced IRF maps (coarse grid) are shared by
        every block, unchanged.
    shape : tuple of int
        Number of blocks along ``(y, x)``.
    margin : str, float or `~astropy.units.Quantity`
        Width (deg) added around each core: at least the PSF kernel radius
        plus the extent of any source outside the core. Default 1 deg.

    Returns
    -------
    list of `~xgamma.datasets.MapDataset`
        Named ``"<name>[iy,ix]"``, with ``attrs["block_of"] = <name>`` so they
        take the models of the original dataset.
    """
    geom = dataset.geom.to_image()
    ny, nx = geom.npix[1], geom.npix[0]
    pad = int(np.ceil(to_value(margin, "deg", "margin") / min(geom.binsz)))
    y_edges = np.linspace(0, ny, shape[0] + 1).round().astype(int)
    x_edges = np.linspace(0, nx, shape[1] + 1).round().astype(int)
    blocks = []
    for iy in range(shape[0]):
        for ix in range(shape[1]):
            core_y, core_x = slice(y_edges[iy], y_edges[iy + 1]), slice(x_edges[ix], x_edges[ix + 1])
            outer_y = slice(max(core_y.start - pad, 0), min(core_y.stop + pad, ny))
            outer_x = slice(max(core_x.start - pad, 0), min(core_x.stop + pad, nx))
            block = dataset.slice_pixels({"y": outer_y, "x": outer_x}, name=f"{dataset.name}[{iy},{ix}]")
            block.data.attrs["block_of"] = dataset.name
            core = np.zeros(block.mask_safe.shape, dtype=bool)
            core[..., core_y.start - outer_y.start:core_y.stop - outer_y.start,
                 core_x.start - outer_x.start:core_x.stop - outer_x.start] = True
            fit_mask = core if dataset.mask_fit is None else core & dataset.mask_fit.isel(y=outer_y, x=outer_x).values
            block.mask_fit = fit_mask
            blocks.append(block)
    return blocks
