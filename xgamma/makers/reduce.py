"""Reduce many observations in parallel and stack them into a Zarr store.

Which one to use when:

- `reduce_observation`: one observation -> its reduced cutout (a pure
  function of picklable inputs; runs on any Dask worker).
- `reduce`: many observations -> one stacked dataset in a Zarr store, in
  parallel on a Dask cluster, with memory that does not grow with the number
  of observations; incremental and resumable (see `xgamma.io.stack_store`).
- `xgamma.datasets.stacking.stack_datasets`: stack datasets already in memory
  (same numbers as `reduce`).

How `reduce` works: observations, sorted by position, are processed in
batches. A batch is shared among two tasks per worker thread (two, so that
a thread finding its share done early takes another); each task reduces its
observations in turn (reads the DL3 files on the
worker, cuts the target around the pointing, runs the makers, turns the
result into additive sums) and adds their pieces up per sky tile, so one
summed piece per tile travels instead of one per observation. Then one task
per worker thread adds the pieces to its share of the touched tiles (and, in
the last batch touching a tile, writes its stacked product). A batch's data is released
before the next starts, so peak memory depends on the batch size, not on the
number of observations.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile

import dask
import numpy as np
import xarray as xr
from dask import delayed

from ..cluster import scheduler_for
from ..datasets.stacking import IRF_SPATIAL, SPATIAL, combine, to_sums
from ..geom import WcsGeom
from ..io.stack_store import GTI_KEY, StackStore
from ..units import to_value

__all__ = ["ReductionError", "reduce", "reduce_observation"]

log = logging.getLogger(__name__)

#: Largest target grid (pixels) whose pixel centres the cutouts share (16 MB of coordinates)
_MAX_SHARED_COORD_PIXELS = 1_000_000


class ReductionError(RuntimeError):
    """Reducing one observation failed; the message names it."""


def _grid_geom(var: xr.DataArray, dims) -> WcsGeom:
    return WcsGeom.from_header(var.attrs["wcs"], npix=(var.sizes[dims[1]], var.sizes[dims[0]]))


def _is_constant(values: np.ndarray) -> bool:
    if values.flat[0] == 0:  # a fresh template: counting is faster than comparing to a value
        return np.count_nonzero(values) == 0
    return bool(np.all(values == values.flat[0]))


class _Template:
    """The target of a reduction in a form that is cheap to send to every task and to cut.

    Variables holding one value everywhere (a fresh template: zeros, an
    all-True mask) travel as that value and are rebuilt at cutout size where
    the cutout is made; the sky grids are parsed once.

    Parameters
    ----------
    dataset : `xgamma.datasets.Dataset`
        The target (numpy or dask backed).
    """

    def __init__(self, dataset):
        self.kind = type(dataset)
        data = dataset.data
        self.order = list(data.data_vars)
        self.sizes = dict(data.sizes)
        #: name -> (dims, value, dtype, attrs) of the constant variables
        self.constants = {}
        for name, var in data.data_vars.items():
            values = var.data
            if isinstance(values, np.ndarray) and values.size and _is_constant(values):
                self.constants[name] = (var.dims, values.flat[0], var.dtype, dict(var.attrs))
        self.data = data.drop_vars(list(self.constants))
        #: spatial dims -> `WcsGeom` of that sky grid
        self.grids = {}
        for dims in (SPATIAL, IRF_SPATIAL):
            var = next((v for v in data.data_vars.values() if set(dims) <= set(v.dims)), None)
            if var is not None:
                self.grids[dims] = _grid_geom(var, dims)

    def footprint(self, position, width) -> dict:
        """Index slices of a cutout around ``position`` on each sky grid.

        Returns
        -------
        dict
            ``{("y", "x"): {"y": slice, "x": slice}, ("y_irf", "x_irf"): {...}}``
            for the grids the target has.
        """
        slices = {}
        for dims, geom in self.grids.items():
            cut = geom.cutout_slices(position, width)
            slices[dims] = {dims[0]: cut["y"], dims[1]: cut["x"]}
        return slices

    def cutout(self, position=None, width=None) -> xr.Dataset:
        """Every map cut around ``position`` (WCS attrs rewritten), in memory; the whole target without ``width``.

        Variables are copies (or read-only views of one value), never views of the target's arrays.
        """
        pieces = self.footprint(position, width) if width is not None else {}
        sizes = dict(self.sizes)
        headers = {}
        data = self.data
        for dims, index in pieces.items():
            data = data.isel(index, missing_dims="ignore")
            for dim in dims:
                sizes[dim] = len(range(*index[dim].indices(self.sizes[dim])))
            grid = self.grids[dims]
            if grid.npix[0] * grid.npix[1] <= _MAX_SHARED_COORD_PIXELS:
                grid.get_coord()  # once per target: every cutout's pixel centres are then a slice of these
            headers[dims] = grid.slice_by_idx({"y": index[dims[0]], "x": index[dims[1]]}).to_header_string()
        # a copy: the observation's reduction owns every array it gets (its sums are made in place)
        data = data.load().copy(deep=True) if data.data_vars else data
        variables = {}
        for name in self.order:
            if name in self.constants:
                dims, value, dtype, attrs = self.constants[name]
                # a read-only view of one value: makers build new arrays, so tens of MB are not filled for nothing
                values = np.broadcast_to(np.array(value, dtype=dtype), [sizes[d] for d in dims])
                var = xr.Variable(dims, values, attrs)
            else:
                var = data[name].variable
            for dims, header in headers.items():
                if set(dims) <= set(var.dims):
                    var.attrs = dict(var.attrs, wcs=header)
            variables[name] = var
        return xr.Dataset(variables, coords=data.coords, attrs=data.attrs)


def reduce_observation(observation, target, makers, cutout_width=None):
    """Reduce one observation onto (a cutout of) the target dataset.

    Parameters
    ----------
    observation : `xgamma.data.Observation`
        Read lazily, on the process that runs this.
    target : `xgamma.datasets.Dataset`
        Empty dataset on the target geometry (lazy zeros are fine), or its
        `_Template` (what `reduce` sends to its tasks).
    makers : sequence
        Objects with ``run(dataset, observation) -> dataset``, applied in order.
    cutout_width : float, str or `~astropy.units.Quantity`, optional
        Width (deg) of the cutout around the pointing; the whole target when
        omitted (1-D datasets).

    Returns
    -------
    `xgamma.datasets.Dataset`
        Of the target's type, with ``attrs["obs_ids"] == [obs_id]``.

    Raises
    ------
    ReductionError
        Naming the observation, chained to the original error.
    """
    try:
        template = target if isinstance(target, _Template) else _Template(target)
        data = template.cutout(observation.pointing, cutout_width)
        data.attrs = dict(data.attrs, obs_ids=[int(observation.obs_id)], name=str(observation.obs_id))
        dataset = template.kind(data)
        for maker in makers:
            dataset = maker.run(dataset, observation)
        return dataset
    except Exception as err:
        raise ReductionError(f"observation {observation.obs_id}: {type(err).__name__}: {err}") from err


def _reduce_part(observations, target, makers, cutout_width, store, wanted):
    """Reduce some observations in turn and add up their pieces tile by tile (sums are additive).

    Parameters
    ----------
    wanted : dict
        obs id -> keys of the tiles that still need that observation.

    Returns
    -------
    dict
        `Tile` -> ``(obs_ids, piece)``: the summed piece of the observations
        that touch the tile, over the bounding box of their cutouts.
    """
    totals = {}
    # this runs inside a task: anything lazy is computed here, not sent back to the cluster
    with dask.config.set(scheduler="sync"):
        for observation in observations:
            obs_id = int(observation.obs_id)
            dataset = reduce_observation(observation, target, makers, cutout_width)
            # the dataset's arrays are its own (`_Template.cutout` copies, the makers make new ones)
            for tile, piece in store.split(to_sums(dataset.data, overwrite=True)).items():
                if tile.key in wanted[obs_id]:
                    _add_piece(totals.setdefault(tile, ([], {}, {})), obs_id, piece, store.tile_block_shape(tile))
    summed = {}
    for tile, (obs_ids, blocks, gti) in totals.items():
        piece = {name: _cropped(entry) for name, entry in blocks.items()}
        summed[tile] = (obs_ids, piece | ({GTI_KEY: gti} if gti else {}))
    return summed


def _add_piece(total, obs_id, piece, block_shape):
    """Add one observation's piece to a tile's running ``(obs_ids, {name: [box, values, is_block]}, gti)``.

    A tile's first piece is kept as it is (a view of the observation's sums,
    which nothing writes to); a second one starts a zeroed block of the
    tile's shape that both are added into. Parts often hold a tile's only
    piece (a lone pointing): it is not copied, added into a block and
    cropped out again. Memory stays bounded by the part: a view keeps its
    observation's sums alive only until the part is done.
    """
    obs_ids, blocks, gti = total
    obs_ids.append(obs_id)
    for name, value in piece.items():
        if name == GTI_KEY:
            gti.update(value)
            continue
        where, values = value
        if name not in blocks:
            blocks[name] = [where, values, False]
            continue
        entry = blocks[name]
        box, held, is_block = entry
        if not is_block:
            block = np.zeros(block_shape[name], dtype=held.dtype)
            block[box] = held
            entry[1:] = [block, True]
        combine(name, entry[1][where], values)
        entry[0] = _union(box, where)


def _union(a, b) -> tuple:
    """Smallest index box (tuple of slices or Ellipsis) holding boxes ``a`` and ``b``."""
    if a == (Ellipsis,) or b == (Ellipsis,):
        return (Ellipsis,)
    return tuple(slice(min(x.start or 0, y.start or 0), _max_stop(x.stop, y.stop)) for x, y in zip(a, b))


def _max_stop(x, y):
    return None if x is None or y is None else max(x, y)


def _cropped(entry):
    """``(box, values)`` of an `_add_piece` entry: only the covered part travels to the tile's writer."""
    box, values, is_block = entry
    return box, (values[box] if is_block else values)


def _pieces_for(summed, tiles):
    """The part of one task's summed pieces that goes to one update task."""
    return {tile: summed[tile] for tile in tiles if tile in summed}


def _update_tiles(store, tiles, *summed):
    """Add the summed pieces to each of ``tiles``: ``(tile, finish)`` pairs, one after another."""
    return [store.update_tile(tile, [s[tile] for s in summed if tile in s], finish=finish) for tile, finish in tiles]


def _finish(store, tile):
    store.finish_tile(tile)
    return tile.key


def _config(target, makers, cutout_width) -> dict:
    """What defines a stack: the target layout and the makers' settings."""

    def settings(maker):
        return {k: repr(v) for k, v in sorted(vars(maker).items())}

    layout = {name: [list(var.dims), list(var.shape), var.attrs.get("wcs", "")] for name, var in target.data.data_vars.items()}
    return {
        "target": layout,
        "target_type": type(target).__name__,
        "makers": [[type(m).__name__, settings(m)] for m in makers],
        "cutout_width_deg": None if cutout_width is None else to_value(cutout_width, "deg", "cutout_width"),
    }


def reduce(
    observations,
    target,
    makers,
    store=None,
    cutout_width=None,
    client=None,
    scheduler=None,
    batch_size=None,
    tile_size=(256, 256),
    irf_tile_size=(32, 32),
    storage_options=None,
    progress=True,
):
    """Reduce observations in parallel and stack them into a Zarr store.

    Parameters
    ----------
    observations : sequence of `xgamma.data.Observation`
        Lazy observations (nothing is read on the client).
    target : `xgamma.datasets.Dataset`
        Empty dataset on the target geometry, e.g. ``MapDataset.create(...)``.
    makers : sequence
        Makers applied in order to each observation (``run(dataset, obs)``).
    store : str, optional
        Zarr store URL (local path, ``s3://`` ...). Re-running with more
        observations adds only the new ones; a run that died resumes. Default:
        a temporary folder, deleted after the result is loaded.
    cutout_width : float, str or `~astropy.units.Quantity`, optional
        Width (deg) of each observation's cutout around its pointing.
    client : `distributed.Client`, optional
        Cluster to run on; else ``scheduler`` address, ``$XGAMMA_SCHEDULER``,
        or an embedded LocalCluster (synchronous for a handful of
        observations).
    scheduler : str, optional
        Scheduler address, or ``"sync"``/``"threads"`` for local schedulers.
    batch_size : int, optional
        Observations in flight at once (default: 8 per worker thread, at
        least 16). Peak memory grows with this, not with the number of runs.
    tile_size, irf_tile_size : tuple of int
        Largest store tile (Zarr chunk) size ``(ny, nx)`` in pixels on the
        main and IRF grids; tiles are made as equal as possible within it.
    storage_options : dict, optional
        fsspec options for ``store``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    `xgamma.datasets.Dataset`
        The stacked dataset (of the target's type), lazily read from the store
        (loaded into memory when no store was given).

    Raises
    ------
    ReductionError
        If an observation fails; the message names it. Observations stacked
        before the failure stay in the store, and a re-run continues.
    """
    observations = list(observations)
    temporary = store is None
    url = tempfile.mkdtemp(prefix="xgamma-stack-") if temporary else str(store)
    try:
        stack = StackStore.create(
            os.path.join(url, "stack.zarr") if temporary else url,
            target.data,
            _config(target, makers, cutout_width),
            tile_size=tile_size,
            irf_tile_size=irf_tile_size,
            storage_options=storage_options,
        )
        template = _Template(target)
        held = stack.held()
        # the tiles each observation still has to be added to (a stopped run may have done some)
        wanted = {
            id(obs): [t for t in _tiles_of(obs, stack, template, cutout_width) if t.key not in held.get(int(obs.obs_id), ())]
            for obs in observations
        }
        pending = [obs for obs in observations if wanted[id(obs)]]
        # neighbours in one batch share tiles: fewer, fuller tile updates
        pending.sort(key=lambda obs: min(((t.iy, t.ix) for t in wanted[id(obs)] if t.layer == "main"), default=(0, 0)))
        if len(pending) < len(observations):
            log.info("%d of %d observations are already in %s", len(observations) - len(pending), len(observations), url)
        local = scheduler in ("sync", "synchronous", "threads", "processes")
        with (
            contextlib.nullcontext(scheduler) if local else scheduler_for(client=client, scheduler=scheduler, n_tasks=len(pending))
        ) as active:
            get = active if isinstance(active, str) else active.get
            threads = 1 if isinstance(active, str) else max(sum(active.nthreads().values()), 1)
            size = batch_size or max(16, 8 * threads)
            batches = [pending[start : start + size] for start in range(0, len(pending), size)]
            _run_batches(batches, wanted, template, makers, cutout_width, stack, get, progress, threads)
            ledgers = stack.ledgers()
            # tiles a stopped run updated without writing their stacked product
            stale = stack.unfinished(ledgers)
            if stale:
                dask.compute(*[delayed(_finish)(stack, tile) for tile in stale], scheduler=get)
            stack.record_obs_ids(ledgers)
        result = stack.read(chunks={})
        return type(target)(result.load() if temporary else result)
    finally:
        if temporary:
            shutil.rmtree(url, ignore_errors=True)


def _run_batches(batches, wanted, target, makers, cutout_width, stack, get, progress, threads):
    """One graph per batch: two tasks per worker thread that each reduce a share of the batch and
    sum its pieces per tile, then one task per worker thread that adds them to a share of the tiles.

    Few, large tasks: the scheduler and the messages between processes cost per task, and on a
    small machine they share the cores with the workers. A tile writes its stacked product in
    the last batch that touches it.
    """
    from tqdm.auto import tqdm

    last_batch = {tile: k for k, batch in enumerate(batches) for obs in batch for tile in wanted[id(obs)]}
    bar = tqdm(total=sum(map(len, batches)), desc="reducing observations", unit="obs", disable=not progress)
    try:
        for k, batch in enumerate(batches):
            # shared by every task of the batch: sent (and unpickled) once per worker, not once per task
            target_, makers_, stack_ = (delayed(obj, pure=False, traverse=False) for obj in (target, list(makers), stack))
            parts = []  # (summed pieces, tiles they touch)
            for share in np.array_split(np.arange(len(batch)), min(2 * threads, len(batch))):
                part = [batch[i] for i in share]  # neighbours (the batch is sorted by position): few tiles
                needs = {int(obs.obs_id): {t.key for t in wanted[id(obs)]} for obs in part}
                summed = delayed(_reduce_part, pure=False)(part, target_, makers_, cutout_width, stack_, needs)
                parts.append((summed, {t for obs in part for t in wanted[id(obs)]}))
            tiles = sorted({t for _, touched in parts for t in touched}, key=lambda t: (t.layer, t.iy, t.ix))
            shares = [tiles[i :: min(threads, len(tiles))] for i in range(min(threads, len(tiles)))]  # dealt: mixed sizes
            graph = []
            for share in shares:
                wanted_here = set(share)
                summed = [s if len(shares) == 1 else delayed(_pieces_for)(s, wanted_here) for s, touched in parts if touched & wanted_here]
                graph.append(delayed(_update_tiles, pure=False)(stack_, [(t, last_batch[t] == k) for t in share], *summed))
            dask.compute(*graph, scheduler=get)
            bar.update(len(batch))
    finally:
        bar.close()


def _tiles_of(observation, stack, template, cutout_width):
    """Tiles an observation's cutout overlaps, on every layer."""
    tiles = list(stack.tiles("scalar")) if "scalar" in stack.layers else []
    if cutout_width is None:
        return tiles + [t for layer in stack.layers if layer != "scalar" for t in stack.tiles(layer)]
    for dims, index in template.footprint(observation.pointing, cutout_width).items():
        layer = "main" if dims == SPATIAL else "irf"
        tiles += stack.tiles(layer, index[dims[0]], index[dims[1]])
    return tiles
