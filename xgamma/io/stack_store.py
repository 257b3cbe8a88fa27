"""A Zarr store that stacks observations tile by tile, without locks.

Layout of a store (Zarr format 3, any fsspec URL)::

    <url>/sums       running sums (`xgamma.datasets.stacking.to_sums`), each
                     variable with a leading ``slot`` dimension of size 2
    <url>/stacked    the finished dataset (`from_sums` of the current sums)
    <url>/ledger/<layer>/<iy>-<ix>.json
                     per tile: which slot is current, which observations
                     it holds, and whether ``stacked`` shows that slot

The sky is cut into tiles that are whole Zarr chunks: ``main`` tiles on the
``y``/``x`` grid, ``irf`` tiles on ``y_irf``/``x_irf``, and one ``scalar``
tile for variables without sky dims. Each tile is updated by one task that
reads the current slot, adds the observations its ledger does not list yet,
writes the *other* slot (and, unless more updates of the tile follow, its
``stacked`` region) and only then rewrites the ledger (one atomic write) to
point at it. A task that dies before the ledger write leaves the tile as it
was, so a re-run adds those observations exactly once: an observation is
never counted twice, and an interrupted run resumes where it stopped.

The template (metadata of every array, coordinates) is written directly with
zarr, concurrently, in the layout xarray reads (``stacked`` opens with
`xgamma.io.zarr.read_zarr`); ``sums`` is read by this class only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import uuid
from dataclasses import dataclass

import fsspec
import numpy as np
import xarray as xr
import zarr
import zarr.api.asynchronous
import zarr.core.sync
from fsspec.implementations.local import LocalFileSystem
from zarr.codecs import BloscCodec
from zarr.core.array import AsyncArray
from zarr.core.group import GroupMetadata
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.storage import StorePath

from .. import __version__
from ..datasets.stacking import (
    IRF_SPATIAL,
    MASK_VARIABLES,
    SPATIAL,
    combine,
    pixel_offset,
    stacked_variables,
)
from .zarr import json_attrs

__all__ = ["LAYERS", "StackStore", "Tile"]

#: LZ4 without byte shuffling: tiles are rewritten at every update, and shuffling doubles the cost of
#: compressing and decompressing them (single-threaded, as in zarr's codec threads) for 10-15 % less space
_FAST_CODEC = BloscCodec(cname="lz4", clevel=1, shuffle="noshuffle")

#: spatial dims of each tile layer
LAYERS = {"main": SPATIAL, "irf": IRF_SPATIAL, "scalar": ()}
#: Key of an observation's good time intervals in the scalar tile's piece (not an array)
GTI_KEY = "gti"


@dataclass(frozen=True, eq=False)
class Tile:
    """One tile: a layer and its index ranges on that layer's sky dims."""

    layer: str
    iy: int
    ix: int
    y: slice
    x: slice

    def __eq__(self, other):
        return isinstance(other, Tile) and self.key == other.key

    def __hash__(self):
        return hash(self.key)

    @property
    def key(self) -> str:
        return f"{self.layer}/{self.iy}-{self.ix}"

    def index(self, dims) -> tuple:
        """Index of this tile for an array with ``dims``."""
        ydim, xdim = LAYERS[self.layer] or (None, None)
        return tuple(self.y if d == ydim else self.x if d == xdim else slice(None) for d in dims)


def config_hash(config: dict) -> str:
    """Stable hash of a JSON-serialisable configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sums_layout(layout: xr.Dataset) -> dict:
    """The variables of `to_sums` output for a dataset layout: name -> (dims, shape, dtype, attrs)."""
    variables = {}
    for name, var in layout.data_vars.items():
        dtype = np.dtype(np.uint8 if name in MASK_VARIABLES else np.float64)
        variables[name] = (var.dims, var.shape, dtype, var.attrs)
    if "counts_off" in layout:
        variables["background_off"] = variables["counts_off"]
    return variables


class StackStore:
    """Running stack of observations in a Zarr store.

    Create one with `create`, open an existing one with the constructor. The
    object is small and picklable (URL plus array metadata), so tasks on any
    Dask worker can use it.

    Parameters
    ----------
    url : str
        Store location: local path or fsspec URL. ``memory://`` stores live in
        one process: use them with the synchronous or threaded scheduler only.
    storage_options : dict, optional
        fsspec options (credentials ...).

    Raises
    ------
    FileNotFoundError
        If there is no complete stack store at ``url``.
    """

    def __init__(self, url, storage_options=None):
        self.url = str(url)
        self.storage_options = dict(storage_options or {})
        try:
            sums = self._group("sums")
            stacked = self._group("stacked")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
            raise FileNotFoundError(f"no xgamma stack store at {self.url!r} (create one with StackStore.create)") from err
        # array metadata read concurrently
        self._load(dict(sums.attrs), {n: a.metadata for n, a in sums.arrays()}, {n: a.metadata for n, a in stacked.arrays()})

    @classmethod
    def _from_metadata(cls, url, storage_options, attrs, sums, stacked):
        """The store described by metadata already in hand (what `create` just wrote): nothing is read."""
        store = cls.__new__(cls)
        store.url, store.storage_options = str(url), dict(storage_options or {})
        store._load(attrs, sums, stacked)
        return store

    def _load(self, attrs: dict, sums: dict, stacked: dict) -> None:
        """Set up from the ``sums`` attrs and the array metadata (name -> `ArrayV3Metadata`) of both groups."""
        self.attrs = attrs
        if "xgamma_stack" not in self.attrs:
            raise ValueError(f"{self.url!r} is a Zarr store but not an xgamma stack store (no 'xgamma_stack' attr)")
        self.tile_size = {k: tuple(v) for k, v in self.attrs["xgamma_stack"]["tile_size"].items()}
        #: name -> (dims without slot, shape without slot, layer)
        self.arrays = {}
        for name, meta in sums.items():
            dims = tuple(meta.dimension_names or ())
            if dims[:1] == ("slot",):  # data variables; coordinates have no slot
                self.arrays[name] = (dims[1:], tuple(meta.shape[1:]), layer_of_dims(dims[1:]))
        #: layer -> WCS header string of the full grid
        self.wcs = {}
        for name, (_, _, layer) in self.arrays.items():
            if name in stacked and "wcs" in stacked[name].attributes:
                self.wcs.setdefault(layer, stacked[name].attributes["wcs"])
        #: group -> name -> metadata of the data variables: their arrays open without a read, on any worker
        self._metadata = {"sums": {n: sums[n] for n in self.arrays}, "stacked": {n: stacked[n] for n in stacked if n in self.arrays}}
        self._opened = {}

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_opened"}  # opened arrays hold the store object

    def __setstate__(self, state):
        self.__dict__.update(state, _opened={})

    def __repr__(self):
        n_tiles = {layer: len(self.tiles(layer)) for layer in self.layers}
        return f"StackStore({self.url!r}, {len(self.arrays)} variables, tiles {n_tiles})"

    # ---- creation ---------------------------------------------------------
    @classmethod
    def create(cls, url, layout: xr.Dataset, config: dict, tile_size=(256, 256), irf_tile_size=(32, 32), storage_options=None):
        """Create a store for stacking into ``layout``'s grid, or open a matching one.

        Parameters
        ----------
        url : str
            Store location.
        layout : `xarray.Dataset`
            The target dataset (lazy zeros are fine): variables, dims, coords,
            attrs.
        config : dict
            What defines the stack (geometry, makers ...); re-opening with a
            different configuration is an error.
        tile_size, irf_tile_size : tuple of int
            Largest tile size ``(ny, nx)`` in pixels on the main and on the
            IRF grid. Tiles are made as equal as possible within it (a
            315-pixel axis gets two 158-pixel tiles, not 256 + 59), because
            Zarr stores and rewrites an edge chunk at full chunk size.

        Raises
        ------
        ValueError
            If a store exists at ``url`` with another configuration; the
            message names the store and both hashes.
        """
        digest = config_hash(config)
        try:
            store = cls(url, storage_options)
        except FileNotFoundError:
            store = None
        if store is not None:
            found = store.attrs["xgamma_stack"]["config_hash"]
            if found != digest:
                raise ValueError(
                    f"stack store {url!r} was made with another configuration (hash {found}, now {digest}); "
                    "use a new store or the same configuration"
                )
            return store
        tiles = {"scalar": ()}
        for layer, size in (("main", tile_size), ("irf", irf_tile_size)):
            ydim, xdim = LAYERS[layer]
            if ydim in layout.dims and xdim in layout.dims:
                tiles[layer] = _balanced_tiles((layout.sizes[ydim], layout.sizes[xdim]), size)
        stack_info = {"config_hash": digest, "config": config, "tile_size": tiles}
        stacked_attrs = json_attrs(dict(layout.attrs, xgamma_version=__version__, xgamma_object="Dataset"))
        nodes = {"stacked": GroupMetadata(attributes=stacked_attrs)}
        for name, (dims, shape, dtype, attrs) in sums_layout(layout).items():
            chunks = (1, *_chunks(dims, shape, tiles))
            nodes[f"sums/{name}"] = _array_metadata(("slot", *dims), (2, *shape), chunks, dtype, attrs)
        for name, var in layout.data_vars.items():
            attrs = dict(var.attrs, coordinates=_coordinates_attr(var, layout))
            nodes[f"stacked/{name}"] = _array_metadata(var.dims, var.shape, _chunks(var.dims, var.shape, tiles), var.dtype, attrs)
        for name, coord in layout.coords.items():
            nodes[f"stacked/{name}"] = _array_metadata(coord.dims, coord.shape, coord.shape, coord.dtype, coord.attrs)
        store = _zarr_store(url, storage_options)
        zarr.core.sync.sync(_create_nodes(store, nodes, {f"stacked/{name}": coord.values for name, coord in layout.coords.items()}))
        # the "sums" attrs mark a complete template: written last
        sums_attrs = json_attrs(dict(layout.attrs, xgamma_version=__version__, xgamma_stack=stack_info))
        zarr.open_group(store, mode="r+", path="sums").update_attributes(sums_attrs)  # one write
        groups = {group: {path.split("/", 1)[1]: meta for path, meta in nodes.items() if path.startswith(f"{group}/")} for group in ("sums", "stacked")}
        # the attrs as they read back from JSON (tuples become lists)
        return cls._from_metadata(url, storage_options, json.loads(json.dumps(sums_attrs)), groups["sums"], groups["stacked"])

    # ---- tiles ----------------------------------------------------------------
    def _group(self, path, mode="r"):
        return zarr.open_group(self.url, mode=mode, path=path, storage_options=_zarr_options(self.url, self.storage_options))

    @property
    def layers(self) -> list[str]:
        """Layers that hold variables."""
        return [layer for layer in LAYERS if any(info[2] == layer for info in self.arrays.values())]

    def layer_shape(self, layer) -> tuple[int, int]:
        """``(ny, nx)`` of a layer's sky grid (``(1, 1)`` for ``scalar``)."""
        if layer == "scalar":
            return 1, 1
        dims, shape, _ = next(info for info in self.arrays.values() if info[2] == layer)
        sizes = dict(zip(dims, shape))
        return sizes[LAYERS[layer][0]], sizes[LAYERS[layer][1]]

    def tiles(self, layer, y=slice(None), x=slice(None)) -> list[Tile]:
        """Tiles of ``layer`` overlapping the index ranges ``y`` and ``x``."""
        if layer == "scalar":
            return [Tile("scalar", 0, 0, slice(None), slice(None))]
        ny, nx = self.layer_shape(layer)
        ty, tx = self.tile_size[layer]
        y0, y1, _ = y.indices(ny)
        x0, x1, _ = x.indices(nx)
        if y1 <= y0 or x1 <= x0:
            return []
        return [
            Tile(layer, iy, ix, slice(iy * ty, min((iy + 1) * ty, ny)), slice(ix * tx, min((ix + 1) * tx, nx)))
            for iy in range(y0 // ty, (y1 - 1) // ty + 1)
            for ix in range(x0 // tx, (x1 - 1) // tx + 1)
        ]

    def split(self, sums: xr.Dataset) -> dict:
        """Cut one observation's sums into pieces, one per tile it overlaps.

        Parameters
        ----------
        sums : `xarray.Dataset`
            `to_sums` of an observation's dataset (a cutout of the store's
            grid: its map variables carry their WCS).

        Returns
        -------
        dict
            `Tile` -> {variable: (index within the tile, values)}; the
            ``scalar`` tile's piece also holds ``GTI_KEY: {obs_id: intervals}``
            when ``sums`` has ``gti`` and ``obs_ids`` attrs.
        """
        pieces = {}
        if "scalar" in self.layers and "gti" in sums.attrs and len(sums.attrs.get("obs_ids", [])) == 1:
            obs_id = int(sums.attrs["obs_ids"][0])
            pieces[self.tiles("scalar")[0]] = {GTI_KEY: {obs_id: [list(map(float, i)) for i in sums.attrs["gti"]]}}
        for name, var in sums.data_vars.items():
            if name not in self.arrays:
                raise KeyError(f"variable {name!r} is not in stack store {self.url!r} (has {sorted(self.arrays)})")
            dims, _, layer = self.arrays[name]
            values = var.transpose(*dims).values
            if layer == "scalar":
                tile = self.tiles("scalar")[0]
                pieces.setdefault(tile, {})[name] = ((Ellipsis,), values)
                continue
            dy, dx = pixel_offset(self.wcs[layer], var.attrs["wcs"])
            ydim, xdim = LAYERS[layer]
            ny, nx = var.sizes[ydim], var.sizes[xdim]
            for tile in self.tiles(layer, slice(max(dy, 0), dy + ny), slice(max(dx, 0), dx + nx)):
                y0, y1 = max(dy, tile.y.start), min(dy + ny, tile.y.stop)
                x0, x1 = max(dx, tile.x.start), min(dx + nx, tile.x.stop)
                in_tile = _index(dims, ydim, xdim, slice(y0 - tile.y.start, y1 - tile.y.start), slice(x0 - tile.x.start, x1 - tile.x.start))
                in_piece = _index(dims, ydim, xdim, slice(y0 - dy, y1 - dy), slice(x0 - dx, x1 - dx))
                pieces.setdefault(tile, {})[name] = (in_tile, values[in_piece])  # a view: copied only if sent elsewhere
        return pieces

    # ---- ledger -------------------------------------------------------------
    def _ledger_path(self, tile: Tile) -> tuple:
        fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        return fs, f"{root.rstrip('/')}/ledger/{tile.key}.json"

    def ledger(self, tile: Tile) -> tuple[int, list[int]]:
        """``(current slot, obs ids held)`` of a tile; ``(0, [])`` before its first update."""
        entry = self._ledger_entry(tile)
        return entry["slot"], entry["obs_ids"]

    def _ledger_entry(self, tile: Tile) -> dict:
        """``{"slot", "obs_ids", "finished", "gti"}``.

        ``finished``: the stacked product shows the current slot; ``gti``:
        obs id -> good time intervals (MJD, TT), kept by the scalar tile so
        that they are committed together with the observation's livetime.
        """
        fs, path = self._ledger_path(tile)
        try:
            entry = json.loads(fs.cat_file(path))
        except FileNotFoundError:
            return {"slot": 0, "obs_ids": [], "finished": True, "gti": {}}
        return {
            "slot": int(entry["slot"]),
            "obs_ids": [int(i) for i in entry["obs_ids"]],
            "finished": bool(entry.get("finished")),
            "gti": {int(k): v for k, v in entry.get("gti", {}).items()},
        }

    def _write_ledger(self, tile: Tile, slot: int, obs_ids, finished: bool, gti=None) -> None:
        fs, path = self._ledger_path(tile)
        entry = {"slot": slot, "obs_ids": sorted(int(i) for i in obs_ids), "finished": finished}
        if gti:
            entry["gti"] = {str(k): gti[k] for k in sorted(gti)}
        payload = json.dumps(entry).encode()
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        if isinstance(fs, LocalFileSystem):
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as f:
                f.write(payload)
            # atomic against a killed process; no fsync: the chunks it points to are not synced either
            os.replace(tmp, path)
        else:
            fs.pipe_file(path, payload)  # a single PUT: atomic on object stores

    def ledgers(self) -> dict:
        """`Tile` -> its ledger entry (see `_ledger_entry`), for every tile of the store."""
        return {tile: self._ledger_entry(tile) for layer in self.layers for tile in self.tiles(layer)}

    def held(self, ledgers=None) -> dict:
        """obs id -> set of tile keys that hold it (from ``ledgers`` when given, else read)."""
        held = {}
        for tile, entry in (ledgers or self.ledgers()).items():
            for obs_id in entry["obs_ids"]:
                held.setdefault(obs_id, set()).add(tile.key)
        return held

    @staticmethod
    def unfinished(ledgers) -> list[Tile]:
        """Tiles whose stacked product lags their sums (a run stopped between the two)."""
        return [tile for tile, entry in ledgers.items() if not entry["finished"]]

    # ---- updates --------------------------------------------------------------
    def _arrays(self, group: str) -> dict:
        """``name -> zarr AsyncArray`` of ``group``'s variables, from the metadata this object holds (no reads).

        Tiles hold data almost everywhere, so zarr's per-chunk check for an
        all-fill-value chunk (``write_empty_chunks=False``) is skipped.
        """
        if group not in self._opened:
            store = _zarr_store(self.url, self.storage_options)
            self._opened[group] = {
                name: AsyncArray(meta, StorePath(store, f"{group}/{name}"), config={"write_empty_chunks": True})
                for name, meta in self._metadata[group].items()
            }
        return self._opened[group]

    def _tile_names(self, tile: Tile) -> list[str]:
        return [name for name, (_, _, layer) in self.arrays.items() if layer == tile.layer]

    def tile_block_shape(self, tile: Tile) -> dict:
        """``name -> shape`` of one tile's block of each variable of its layer."""
        return {n: _block_shape(self.arrays[n][1], self.arrays[n][0], tile.index(self.arrays[n][0])) for n in self._tile_names(tile)}

    def update_tile(self, tile: Tile, pieces, finish=True) -> list[int]:
        """Add observations' pieces to one tile (each tile has one writer at a time).

        Parameters
        ----------
        tile : `Tile`
        pieces : list of (int or sequence of int, dict)
            ``(obs_id, piece)`` with ``piece`` from `split` for this tile, or
            ``(obs_ids, piece)`` with the sum of several observations' pieces.
        finish : bool
            Also write the tile's stacked product (skip it when more updates
            of the tile follow soon).

        Returns
        -------
        list of int
            Observations added now; pieces whose observations the tile already
            holds are skipped.

        Raises
        ------
        RuntimeError
            If a summed piece mixes observations the tile holds with ones it
            does not (only another reduction writing into the same store at
            the same time can cause that); nothing is written.
        """
        entry = self._ledger_entry(tile)
        slot, held = entry["slot"], set(entry["obs_ids"])
        new = []
        for obs_ids, piece in pieces:
            obs_ids = [int(obs_ids)] if np.ndim(obs_ids) == 0 else [int(i) for i in obs_ids]
            already = [i for i in obs_ids if i in held]
            if already and len(already) < len(obs_ids):
                raise RuntimeError(
                    f"tile {tile.key} of stack store {self.url!r} holds observations {already} but not "
                    f"{sorted(set(obs_ids) - set(already))} of one summed piece: is another reduction writing into this store?"
                )
            if not already:
                new.append((obs_ids, piece))
        if not new:
            if finish and not entry["finished"]:
                self.finish_tile(tile)
            return []
        names = self._tile_names(tile)
        if held:
            blocks = self._read_slot(tile, slot)
        else:  # never written: no need to read zeros
            arrays = self._arrays("sums")
            blocks = {n: np.zeros(shape, dtype=arrays[n].dtype) for n, shape in self.tile_block_shape(tile).items()}
        fresh = set() if held else set(blocks)  # blocks still all zero: a piece is copied in, not added
        gti = dict(entry["gti"])
        for _, piece in new:
            for name, value in piece.items():
                if name == GTI_KEY:
                    gti.update(value)  # obs id -> intervals, not an array
                    continue
                where, values = value
                if name in fresh:
                    blocks[name][where] = values
                    fresh.discard(name)
                else:
                    combine(name, blocks[name][where], values)
        sums = self._arrays("sums")
        writes = [(sums[n], (1 - slot, *tile.index(self.arrays[n][0])), blocks[n]) for n in names]
        if finish:
            writes += self._stacked_writes(tile, blocks)
        zarr.core.sync.sync(_write_blocks(writes))
        # the ledger write commits the update: a task dying before it leaves the tile as it was
        added = [obs_id for obs_ids, _ in new for obs_id in obs_ids]
        self._write_ledger(tile, 1 - slot, held | set(added), finished=finish, gti=gti)
        return added

    def _read_slot(self, tile: Tile, slot: int) -> dict:
        """``name -> writable block`` of one tile's sums in ``slot``."""
        names = self._tile_names(tile)
        sums = self._arrays("sums")
        blocks = zarr.core.sync.sync(_read_blocks([(sums[n], (slot, *tile.index(self.arrays[n][0]))) for n in names]))
        return {n: np.array(block, copy=not block.flags.writeable) for n, block in zip(names, blocks)}

    def read_sums(self, tile: Tile | None = None) -> xr.Dataset:
        """Current sums, of one tile or of the whole store, in memory."""
        tiles = [tile] if tile is not None else [t for layer in self.layers for t in self.tiles(layer)]
        attrs = {name: dict(meta.attributes) for name, meta in self._metadata["sums"].items()}
        variables = {}
        for name, (dims, shape, layer) in self.arrays.items():
            if tile is None:
                variables[name] = np.zeros(shape, dtype=self._arrays("sums")[name].dtype)
            elif layer == tile.layer:
                variables[name] = None
        for t in tiles:
            blocks = self._read_slot(t, self.ledger(t)[0])
            for name, block in blocks.items():
                if tile is None:
                    variables[name][t.index(self.arrays[name][0])] = block
                else:
                    variables[name] = block
        return xr.Dataset({n: xr.DataArray(v, dims=self.arrays[n][0], attrs=attrs[n]) for n, v in variables.items()})

    def finish_tile(self, tile: Tile) -> None:
        """Write the finished dataset of one tile from its current sums."""
        entry = self._ledger_entry(tile)
        zarr.core.sync.sync(_write_blocks(self._stacked_writes(tile, self._read_slot(tile, entry["slot"]))))
        self._write_ledger(tile, entry["slot"], entry["obs_ids"], finished=True, gti=entry["gti"])

    def _stacked_writes(self, tile: Tile, blocks: dict) -> list:
        """``(array, index, values)`` writing a tile's stacked product from its sums ``blocks`` (`from_sums` on the blocks)."""
        sums = {name: xr.Variable(self.arrays[name][0], block) for name, block in blocks.items()}
        stacked = sums | stacked_variables(sums)
        arrays = self._arrays("stacked")
        writes = []
        for name, array in arrays.items():
            if name in stacked:
                dims = _dims(array)
                # no copy where the sums already have the stacked dtype (counts, exposure ...)
                writes.append((array, tile.index(dims), np.asarray(stacked[name].transpose(*dims).values, dtype=array.dtype)))
        return writes

    def record_obs_ids(self, ledgers=None) -> list[int]:
        """Write the ids (and good time intervals, sorted by start) of the observations held into the stacked group's attrs."""
        ledgers = ledgers or self.ledgers()
        obs_ids = sorted(self.held(ledgers))
        attrs = {"obs_ids": obs_ids}
        intervals = [i for entry in ledgers.values() for gti in entry["gti"].values() for i in gti]
        if intervals:
            attrs["gti"] = sorted(intervals)
        self._group("stacked", mode="r+").update_attributes(attrs)
        return obs_ids

    def read(self, chunks=None) -> xr.Dataset:
        """The finished stacked dataset (lazy with ``chunks={}``)."""
        from .zarr import read_zarr

        return read_zarr(self.url, group="stacked", storage_options=_zarr_options(self.url, self.storage_options), chunks=chunks)


def _dims(array) -> tuple:
    return tuple(array.metadata.dimension_names or ())


def _block_shape(shape, dims, index) -> tuple:
    return tuple(len(range(*i.indices(n))) if isinstance(i, slice) else n for n, i in zip(shape, index))


def _array_metadata(dims, shape, chunks, dtype, attrs) -> ArrayV3Metadata:
    """Metadata of one array, in the form xarray writes and reads.

    Unwritten chunks read as zero (the Zarr fill value); the ``_FillValue``
    attr (NaN for floats, none otherwise) tells xarray that zero is not a
    missing value. Tiles are rewritten at every update, so a fast codec
    (`_FAST_CODEC`) beats a dense one.
    """
    dtype = np.dtype(dtype)
    attrs = json_attrs({k: v for k, v in attrs.items() if v is not None})
    if dtype.kind == "f":
        attrs["_FillValue"] = _NAN_FILL_VALUE
    fill_value = False if dtype.kind == "b" else 0
    return ArrayV3Metadata.from_dict({
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": dtype.name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill_value,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, _FAST_CODEC],
        "attributes": attrs,
        "dimension_names": list(dims),
    })


#: xarray's encoding of a NaN ``_FillValue`` attr for float64 (base64 of the little-endian bytes)
_NAN_FILL_VALUE = base64.b64encode(np.array(np.nan, dtype="<f8").tobytes()).decode()


def _coordinates_attr(var, layout) -> str | None:
    """CF ``coordinates`` attr: the non-index coordinates on the variable's dims (how xarray finds them)."""
    names = sorted(name for name, coord in layout.coords.variables.items() if name not in layout.dims and set(coord.dims) <= set(var.dims))
    return " ".join(names) or None


async def _read_blocks(requests):
    """Read ``(array, selection)`` pairs concurrently."""
    return await asyncio.gather(*(array.getitem(selection) for array, selection in requests))


async def _write_blocks(requests):
    """Write ``(array, selection, values)`` triples concurrently."""
    await asyncio.gather(*(array.setitem(selection, values) for array, selection, values in requests))


async def _create_nodes(store, nodes, values):
    """Create the nodes (concurrently), then write ``values`` (path -> array) to theirs (concurrently)."""
    created = {path: node async for path, node in zarr.api.asynchronous.create_hierarchy(store=store, nodes=nodes, overwrite=True)}
    await asyncio.gather(*(created[path].setitem(Ellipsis, array) for path, array in values.items()))


def _zarr_store(url, storage_options):
    if "://" in str(url):
        return zarr.storage.FsspecStore.from_url(str(url), storage_options=storage_options or None)
    return zarr.storage.LocalStore(str(url))


def layer_of_dims(dims) -> str:
    """Tile layer of a variable with ``dims``."""
    for layer, spatial in LAYERS.items():
        if spatial and set(spatial) <= set(dims):
            return layer
    return "scalar"


def _balanced_tiles(shape, largest) -> tuple[int, ...]:
    """Tile size per axis: the fewest tiles of at most ``largest`` pixels, as equal as possible."""
    sizes = []
    for n, limit in zip(shape, largest):
        count = -(-int(n) // int(limit))
        sizes.append(-(-int(n) // count))
    return tuple(sizes)


def _chunks(dims, shape, tiles):
    sizes = {dim: size for layer in ("main", "irf") for dim, size in zip(LAYERS[layer], tiles.get(layer, ()))}
    return tuple(min(sizes[d], n) if d in sizes else n for d, n in zip(dims, shape))


def _index(dims, ydim, xdim, y, x):
    return tuple(y if d == ydim else x if d == xdim else slice(None) for d in dims)


def _zarr_options(url, storage_options):
    """zarr accepts ``storage_options`` only with fsspec URLs, not plain paths."""
    return storage_options if (storage_options and "://" in str(url)) else None
