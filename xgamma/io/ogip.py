"""OGIP 1-D spectra (PHA, BKG, ARF, RMF) to and from `SpectrumDatasetOnOff`.

Which one to use when:

- `read_ogip`: bring a spectrum from another tool (XSPEC/Sherpa-style files,
  the joint-crab release of Fermi-LAT, MAGIC, H.E.S.S., VERITAS and FACT
  spectra) into xgamma for a WStat fit;
- `write_ogip`: hand a reduced On/Off spectrum to another tool. Within
  xgamma, store datasets in Zarr (`SpectrumDatasetOnOff.to_zarr`) instead:
  it keeps every variable and attribute exactly.

Formats: OGIP/92-007 (PHA spectrum, type I) and CAL/GEN/92-002 (RMF and
ARF). One observation is four files: the PHA file's SPECTRUM header points
to the others through ``ANCRFILE`` (ARF), ``RESPFILE`` (RMF) and
``BACKFILE`` (OFF spectrum), relative to the PHA file's folder.

Mapping to the dataset (see `xgamma.datasets.spectrum`):

==============  ==========================================================
variable        source
==============  ==========================================================
counts          PHA ``COUNTS``
counts_off      BKG ``COUNTS``
acceptance      PHA ``BACKSCAL`` (column or keyword)
acceptance_off  BKG ``BACKSCAL`` x (BKG ``EXPOSURE`` x ``AREASCAL``) /
                PHA ``EXPOSURE`` (the OGIP background scaling; equal to
                BKG ``BACKSCAL`` when both spectra share their exposure)
mask_safe       PHA ``QUALITY == 0`` and ``AREASCAL > 0``
livetime        PHA ``EXPOSURE`` (s)
exposure        ARF ``SPECRESP`` x PHA ``EXPOSURE`` (cm2 s)
edisp           RMF ``MATRIX`` (``N_GRP``/``F_CHAN``/``N_CHAN`` groups)
energy axis     RMF ``EBOUNDS`` ``E_MIN``/``E_MAX``
energy_true     ARF ``ENERG_LO``/``ENERG_HI`` (must match the RMF's)
==============  ==========================================================

``GROUPING`` and ``SYS_ERR`` columns are not used: channels are taken as
they are, with Poisson errors. Energies are converted from their ``TUNIT``
(keV when absent, as the OGIP memos prescribe) to TeV. OGIP files carry no
sky region: the ``region`` attrs are ``""`` unless the PHA header has the
``ONREGION`` keyword that `write_ogip` adds (DS9 text, lines joined by ``;``).
"""

from __future__ import annotations

import os
import posixpath
import re

import astropy.units as u
import fsspec
import numpy as np
import xarray as xr
from astropy.io import fits
from fsspec.implementations.local import LocalFileSystem

from ..axes import MapAxis
from ..datasets.spectrum import SpectrumDatasetOnOff
from ..geom import RegionGeom
from .fits import DL3FileError, HDUData, read_hdus

__all__ = ["read_ogip", "write_ogip"]

#: Header keyword of the PHA file holding the ON region (DS9 text), xgamma's own.
REGION_KEYWORD = "ONREGION"
#: OGIP QUALITY flag written for channels outside ``mask_safe`` ("bad, set by software").
QUALITY_BAD = 1


# ---- reading ------------------------------------------------------------------
def _linked_path(pha: HDUData, key: str) -> str:
    """Path of the file named by ``key`` (ANCRFILE ...), relative to the PHA file's folder."""
    value = str(pha.header.get(key, "")).strip()
    if value.upper() in ("", "NONE"):
        raise DL3FileError(f"{pha.filename}[{pha.name}]: header keyword {key} names no file (got {value!r})")
    return posixpath.join(posixpath.dirname(pha.filename), value)


def _read_linked(pha: HDUData, key: str, hdus) -> dict:
    path = _linked_path(pha, key)
    try:
        return read_hdus(path, hdus)
    except DL3FileError as err:
        raise DL3FileError(f"{pha.filename}: {key} = {path}: {err}") from err


def _per_channel(hdu: HDUData, key: str, n_channels: int, default: float) -> np.ndarray:
    """Column ``key`` or, when absent, header keyword ``key`` (or ``default``), one value per channel."""
    if key in hdu.columns:
        return np.asarray(hdu.column(key), dtype=float)
    return np.full(n_channels, float(hdu.header.get(key, default)))


def _column_attr(hdu: HDUData, column: str, attr: str):
    """Header value of a column attribute such as ``TLMIN`` (None when absent)."""
    return hdu.header.get(f"{attr}{list(hdu.columns).index(column.upper()) + 1}")


def _energy_edges_tev(hdu: HDUData, lo: str, hi: str) -> tuple[np.ndarray, np.ndarray]:
    """Edge columns ``lo``/``hi`` in TeV (their TUNIT, keV when absent)."""
    unit = u.Unit(hdu.columns.get(lo.upper()) or "keV")
    return tuple(u.Quantity(hdu.column(name), unit).to_value(u.TeV) for name in (lo, hi))


def _redistribution(matrix: HDUData, channels: np.ndarray) -> np.ndarray:
    """Uncompress the RMF MATRIX into (n_true, n_channels) probabilities.

    Each row holds ``N_GRP`` groups of ``N_CHAN`` consecutive channels
    starting at ``F_CHAN``; channel numbers start at the ``TLMIN`` of
    ``F_CHAN`` (1 when absent, the OGIP default), the group values follow
    each other in ``MATRIX``.
    """
    first_channel = _column_attr(matrix, "F_CHAN", "TLMIN")
    first_channel = 1 if first_channel is None else int(first_channel)
    if channels[0] != first_channel:
        raise DL3FileError(
            f"{matrix.filename}[{matrix.name}]: F_CHAN channels start at {first_channel} (TLMIN) "
            f"but EBOUNDS channels start at {channels[0]}"
        )
    rows = zip(matrix.column("N_GRP"), matrix.column("F_CHAN"), matrix.column("N_CHAN"), matrix.column("MATRIX"))
    kernel = np.zeros((len(matrix.data), channels.size))
    for i, (n_grp, f_chan, n_chan, values) in enumerate(rows):
        values = np.atleast_1d(values)
        f_chan, n_chan = np.atleast_1d(f_chan)[:n_grp], np.atleast_1d(n_chan)[:n_grp]
        pos = 0
        for start, n in zip(f_chan.astype(int) - first_channel, n_chan.astype(int)):
            if start < 0 or start + n > channels.size or pos + n > values.size:
                raise DL3FileError(
                    f"{matrix.filename}[{matrix.name}]: row {i}: group of {n} channels from F_CHAN "
                    f"{start + first_channel} does not fit {channels.size} channels / {values.size} MATRIX values"
                )
            kernel[i, start : start + n] = values[pos : pos + n]
            pos += n
    return kernel


def _default_name(pha_path: str) -> str:
    """``pha_obs23523.fits`` -> ``"23523"``, ``pha_stacked.fits`` -> ``"stacked"``."""
    stem = posixpath.basename(pha_path).split(".")[0]
    stem = stem[4:] if stem.lower().startswith("pha_") else stem
    return re.sub(r"^obs(?=\d+$)", "", stem)


def _region_text(header) -> str:
    text = str(header.get(REGION_KEYWORD, "")).strip()
    return RegionGeom(text).to_region_string() if text else ""


def read_ogip(pha_path, name=None) -> SpectrumDatasetOnOff:
    """Read an OGIP PHA spectrum with its ARF, RMF and background files.

    Parameters
    ----------
    pha_path : str or os.PathLike
        PHA file (local path or fsspec URL, optionally gzip-compressed). The
        files named by its ``ANCRFILE``, ``RESPFILE`` and ``BACKFILE``
        keywords are read from the same folder.
    name : str, optional
        Dataset name. Default: the file name without ``pha_``/``obs``
        prefixes and extension (``pha_obs23523.fits`` -> ``"23523"``).

    Returns
    -------
    SpectrumDatasetOnOff
        Energies in TeV, exposure in cm2 s, livetime in s; ``obs_ids`` from
        the ``OBS_ID`` keyword when present. See the module docstring for
        where each variable comes from.

    Raises
    ------
    DL3FileError
        A file, HDU, keyword or column is missing or inconsistent (channel
        counts, true-energy binning of ARF and RMF); the message names the
        file and the key.
    ValueError
        The PHA ``AREASCAL`` is neither 0 nor 1 in some channel: a per-channel
        area scaling of the source has no place in the dataset layout.
    """
    pha_path = os.fspath(pha_path)
    pha = read_hdus(pha_path, ["SPECTRUM"])["SPECTRUM"]
    arf = _read_linked(pha, "ANCRFILE", ["SPECRESP"])["SPECRESP"]
    rmf = _read_linked(pha, "RESPFILE", ["MATRIX", "EBOUNDS"])
    bkg = _read_linked(pha, "BACKFILE", ["SPECTRUM"])["SPECTRUM"]
    matrix, ebounds = rmf["MATRIX"], rmf["EBOUNDS"]

    channels = np.asarray(ebounds.column("CHANNEL"), dtype=int)
    for spectrum in (pha, bkg):
        if not np.array_equal(np.asarray(spectrum.column("CHANNEL"), dtype=int), channels):
            raise DL3FileError(
                f"{spectrum.filename}[{spectrum.name}]: CHANNEL column differs from the EBOUNDS channels "
                f"of {ebounds.filename} ({channels.size} channels from {channels[0]})"
            )
    energy = MapAxis(*_energy_edges_tev(ebounds, "E_MIN", "E_MAX"), name="energy", unit="TeV", interp="log")
    energy_true = MapAxis(*_energy_edges_tev(arf, "ENERG_LO", "ENERG_HI"), name="energy_true", unit="TeV", interp="log")
    rmf_true = MapAxis(*_energy_edges_tev(matrix, "ENERG_LO", "ENERG_HI"), name="energy_true", unit="TeV", interp="log")
    if rmf_true != energy_true:
        raise DL3FileError(f"true-energy bins differ: {arf.filename} has {energy_true}, {matrix.filename} has {rmf_true}")

    n = channels.size
    areascal = _per_channel(pha, "AREASCAL", n, 1.0)
    if np.any((areascal != 0) & (areascal != 1)):
        raise ValueError(f"{pha_path}[SPECTRUM]: AREASCAL other than 0 or 1 is not supported (values {np.unique(areascal)})")
    livetime = float(pha.header.get("EXPOSURE", np.nan))
    if not livetime > 0:
        raise DL3FileError(f"{pha_path}[SPECTRUM]: EXPOSURE keyword (the livetime, s) missing or not positive")
    exposure_ratio = float(bkg.header.get("EXPOSURE", livetime)) / livetime
    # OGIP scales the background by the ratio of BACKSCAL x AREASCAL x EXPOSURE
    acceptance_off = _per_channel(bkg, "BACKSCAL", n, 1.0) * _per_channel(bkg, "AREASCAL", n, 1.0) * exposure_ratio
    mask_safe = (_per_channel(pha, "QUALITY", n, 0) == 0) & (areascal > 0)

    region = _region_text(pha.header)
    coords = energy.to_coords()
    attrs = {"units": "", "region": region}

    def on_energy(values, dtype=float):
        return xr.DataArray(np.asarray(values, dtype=dtype), dims="energy", coords=coords, attrs=dict(attrs))

    data = xr.Dataset(
        {
            "counts": on_energy(pha.column("COUNTS")),
            "exposure": xr.DataArray(
                np.asarray(arf.column("SPECRESP"), dtype=float) * livetime,
                dims="energy_true",
                coords=energy_true.to_coords(),
                attrs={"units": "cm2 s", "region": region},
            ),
            "edisp": xr.DataArray(
                _redistribution(matrix, channels),
                dims=("energy_true", "energy"),
                coords=energy_true.to_coords() | coords,
                attrs=dict(attrs),
            ),
            "mask_safe": on_energy(mask_safe, bool),
            "livetime": xr.DataArray(livetime, attrs={"units": "s"}),
            "counts_off": on_energy(bkg.column("COUNTS")),
            "acceptance": on_energy(_per_channel(pha, "BACKSCAL", n, 1.0)),
            "acceptance_off": on_energy(acceptance_off),
        },
        attrs={
            "name": _default_name(pha_path) if name is None else str(name),
            "obs_ids": [int(pha.header["OBS_ID"])] if "OBS_ID" in pha.header else [],
        },
    )
    return SpectrumDatasetOnOff(data)


# ---- writing ------------------------------------------------------------------
#: Channels are written from 1, the OGIP default when TLMIN is absent.
FIRST_CHANNEL = 1


def _file_names(name: str) -> dict[str, str]:
    """OGIP file names of one dataset; numeric names follow the ``pha_obs<id>`` habit."""
    stem = f"obs{name}" if name.isdigit() else name
    return {kind: f"{kind}_{stem}.fits" for kind in ("pha", "arf", "rmf", "bkg")}


def _kev(axis: MapAxis) -> tuple[np.ndarray, np.ndarray]:
    return axis.edges_min.to_value(u.keV), axis.edges_max.to_value(u.keV)


def _channels(n: int) -> np.ndarray:
    return np.arange(FIRST_CHANNEL, FIRST_CHANNEL + n)


def _table(columns, extname, **cards) -> fits.BinTableHDU:
    """Binary table with the OGIP HDUCLASS and the given header cards."""
    hdu = fits.BinTableHDU.from_columns(columns, name=extname)
    for key, value in ({"HDUCLASS": "OGIP"} | cards).items():
        hdu.header[key] = value
    return hdu


def _channel_cards(n: int) -> dict:
    """Header cards describing the channels (shared by SPECTRUM, MATRIX and EBOUNDS)."""
    return {"TELESCOP": "UNKNOWN", "INSTRUME": "UNKNOWN", "FILTER": "NONE", "CHANTYPE": "PHA", "DETCHANS": n}


def _integer_counts(dataset, key) -> np.ndarray:
    values = dataset.data[key].transpose("energy").values
    if not np.all(np.isfinite(values) & (values == np.round(values)) & (values >= 0)):
        raise ValueError(f"dataset {dataset.name!r}: {key} must be non-negative whole numbers for an OGIP COUNTS column")
    return values.astype(np.int64)


def _spectrum_hdu(dataset, counts: str, backscal: str, **cards) -> fits.BinTableHDU:
    """OGIP/92-007 type I SPECTRUM extension of the variables ``counts`` and ``backscal``."""
    n = dataset.counts.size
    quality = np.where(dataset.mask_safe.transpose("energy").values, 0, QUALITY_BAD)
    columns = [
        fits.Column("CHANNEL", "J", array=_channels(n)),
        fits.Column("COUNTS", "J", array=_integer_counts(dataset, counts), unit="count"),
        fits.Column("QUALITY", "I", array=quality),
        fits.Column("BACKSCAL", "D", array=dataset.data[backscal].transpose("energy").values),
    ]
    obs = {"OBS_ID": dataset.obs_ids[0]} if len(dataset.obs_ids) == 1 else {}
    return _table(
        columns,
        "SPECTRUM",
        HDUCLAS1="SPECTRUM",
        HDUVERS="1.2.1",
        HDUCLAS3="COUNT",
        HDUCLAS4="TYPE:I",
        TLMIN1=FIRST_CHANNEL,
        TLMAX1=FIRST_CHANNEL + n - 1,
        EXPOSURE=dataset.livetime,
        AREASCAL=1.0,
        CORRFILE="NONE",
        CORRSCAL=1.0,
        POISSERR=True,
        **_channel_cards(n),
        **obs,
        **cards,
    )


def _compressed_rows(kernel: np.ndarray):
    """RMF groups per row: runs of consecutive non-zero channels."""
    n_grp, f_chan, n_chan, values = [], [], [], []
    for row in kernel:
        nonzero = row != 0
        # group boundaries: where the padded non-zero flag switches on (start) or off (end)
        switches = np.flatnonzero(np.diff(np.r_[False, nonzero, False].astype(np.int8)))
        starts, ends = switches[::2], switches[1::2]
        n_grp.append(starts.size)
        f_chan.append((starts + FIRST_CHANNEL).astype(np.int32))
        n_chan.append((ends - starts).astype(np.int32))
        values.append(row[nonzero])
    return np.array(n_grp, dtype=np.int32), f_chan, n_chan, values


def _rmf_hdus(dataset) -> list[fits.BinTableHDU]:
    """MATRIX (energy redistribution only, HDUCLAS3 REDIST) and EBOUNDS extensions."""
    true_lo, true_hi = _kev(dataset.energy_axis_true)
    e_min, e_max = _kev(dataset.energy_axis)
    n_grp, f_chan, n_chan, values = _compressed_rows(dataset.edisp.transpose("energy_true", "energy").values)
    n = e_min.size
    matrix = _table(
        [
            fits.Column("ENERG_LO", "D", array=true_lo, unit="keV"),
            fits.Column("ENERG_HI", "D", array=true_hi, unit="keV"),
            fits.Column("N_GRP", "I", array=n_grp),
            fits.Column("F_CHAN", "PJ()", array=f_chan),
            fits.Column("N_CHAN", "PJ()", array=n_chan),
            fits.Column("MATRIX", "PD()", array=values),
        ],
        "MATRIX",
        HDUCLAS1="RESPONSE",
        HDUCLAS2="RSP_MATRIX",
        HDUCLAS3="REDIST",
        HDUVERS="1.3.0",
        NUMGRP=int(n_grp.sum()),
        NUMELT=int(sum(v.size for v in values)),
        TLMIN4=FIRST_CHANNEL,
        TLMAX4=FIRST_CHANNEL + n - 1,
        **_channel_cards(n),
    )
    ebounds = _table(
        [
            fits.Column("CHANNEL", "J", array=_channels(n)),
            fits.Column("E_MIN", "D", array=e_min, unit="keV"),
            fits.Column("E_MAX", "D", array=e_max, unit="keV"),
        ],
        "EBOUNDS",
        HDUCLAS1="RESPONSE",
        HDUCLAS2="EBOUNDS",
        HDUVERS="1.2.0",
        **_channel_cards(n),
    )
    return [matrix, ebounds]


def _arf_hdu(dataset) -> fits.BinTableHDU:
    lo, hi = _kev(dataset.energy_axis_true)
    exposure = dataset.exposure.transpose("energy_true").values
    columns = [
        fits.Column("ENERG_LO", "D", array=lo, unit="keV"),
        fits.Column("ENERG_HI", "D", array=hi, unit="keV"),
        fits.Column("SPECRESP", "D", array=exposure / dataset.livetime, unit="cm2"),
    ]
    return _table(columns, "SPECRESP", HDUCLAS1="RESPONSE", HDUCLAS2="SPECRESP", HDUVERS="1.1.0")


def _region_cards(dataset) -> dict:
    """The ON region as one header value (DS9 lines joined by ``;``), if known."""
    text = dataset.counts.attrs.get("region", "")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return {REGION_KEYWORD: ";".join(lines)} if lines else {}


def write_ogip(dataset: SpectrumDatasetOnOff, folder, overwrite: bool = False) -> str:
    """Write an On/Off spectrum as OGIP PHA, BKG, ARF and RMF files.

    File names follow the dataset name: ``pha_obs<name>.fits`` (and
    ``arf_``, ``rmf_``, ``bkg_``) for a numeric name such as an obs_id,
    ``pha_<name>.fits`` otherwise. Channels are numbered from 1 and energies
    written in keV, the OGIP defaults; the matrix and the ARF are float64.

    Parameters
    ----------
    dataset : SpectrumDatasetOnOff
        With ``edisp`` and a livetime > 0 s; counts and OFF counts whole numbers.
    folder : str or os.PathLike
        Output folder (local path or fsspec URL), created if needed.
    overwrite : bool
        Replace existing files (default False).

    Returns
    -------
    str
        Path of the PHA file, the one to give to `read_ogip`.

    Raises
    ------
    FileExistsError
        One of the four files exists and ``overwrite`` is False (nothing is written).
    ValueError
        No name, no ``edisp``, livetime not positive or counts not whole numbers.

    Notes
    -----
    `read_ogip` gives back the same dataset except: energy edges may differ
    in the last bit (keV <-> TeV), and so may the exposure (written as
    exposure / livetime, read as SPECRESP x livetime); ``mask_fit`` and all
    but a single obs_id are not stored (OGIP has no place for them);
    ``acceptance_off`` keeps its value because both spectra are written with
    the same EXPOSURE and AREASCAL 1.
    """
    if not isinstance(dataset, SpectrumDatasetOnOff):
        raise TypeError(f"write_ogip needs a SpectrumDatasetOnOff, got {type(dataset).__name__}")
    if not dataset.name:
        raise ValueError("write_ogip: the dataset has no name; the file names are built from it (use dataset.copy(name=...))")
    if dataset.edisp is None:
        raise ValueError(f"dataset {dataset.name!r}: no edisp, an OGIP RMF cannot be written")
    if not dataset.livetime > 0:
        raise ValueError(f"dataset {dataset.name!r}: livetime is {dataset.livetime} s; the ARF is exposure / livetime")

    fs, root = fsspec.core.url_to_fs(os.fspath(folder))
    names = _file_names(dataset.name)
    paths = {kind: posixpath.join(root, file) for kind, file in names.items()}
    existing = [path for path in paths.values() if fs.exists(path)]
    if existing and not overwrite:
        raise FileExistsError(f"write_ogip: {existing} exist; pass overwrite=True to replace them")

    links = {"ANCRFILE": names["arf"], "RESPFILE": names["rmf"], "BACKFILE": names["bkg"]}
    hdus = {
        "pha": [_spectrum_hdu(dataset, "counts", "acceptance", HDUCLAS2="TOTAL", **links, **_region_cards(dataset))],
        "bkg": [_spectrum_hdu(dataset, "counts_off", "acceptance_off", HDUCLAS2="BKG")],
        "arf": [_arf_hdu(dataset)],
        "rmf": _rmf_hdus(dataset),
    }
    fs.makedirs(root, exist_ok=True)
    for kind, extensions in hdus.items():
        with fs.open(paths[kind], "wb") as f:
            fits.HDUList([fits.PrimaryHDU(), *extensions]).writeto(f)
    return paths["pha"] if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(paths["pha"])
