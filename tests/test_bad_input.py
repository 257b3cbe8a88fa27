"""Broken data stores: every error names the file, the observation and the HDU.

Each test builds a small store in pytest's tmp_path from a copy of H.E.S.S.
run 23523 and damages it; the shared data folder is only ever read.
"""

import gzip
import os
import shutil
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from xgamma.data import DataStore, MissingHDUError, UnknownHDUClassError
from xgamma.io.fits import DL3FileError

RUN = "hess_dl3_dr1_obs_id_023523.fits.gz"
HDUS = [("events", "events", "EVENTS"), ("gti", "gti", "GTI"), ("aeff", "aeff_2d", "AEFF"),
        ("edisp", "edisp_2d", "EDISP"), ("psf", "psf_table", "PSF"), ("bkg", "bkg_3d", "BKG")]


def _snapshot(folder):
    return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*"))


@pytest.fixture(scope="module", autouse=True)
def data_untouched(hess_dir):
    """Nothing in the shared data folder is created, changed or removed by these tests."""
    before = _snapshot(hess_dir)
    yield
    assert _snapshot(hess_dir) == before


def make_store(tmp_path, hess_dir, file_name=RUN, rows=None):
    """A one-observation store in ``tmp_path``; ``rows`` overrides the HDU index rows."""
    if file_name == RUN and not (tmp_path / RUN).exists():
        shutil.copy(hess_dir / "data" / RUN, tmp_path / RUN)
    rows = rows or [(23523, t, c, ".", file_name, n) for t, c, n in HDUS]
    hdu_table = Table(rows=rows, names=["OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_DIR", "FILE_NAME", "HDU_NAME"])
    hdu_table.meta.update({"EXTNAME": "HDU_INDEX", "HDUCLAS1": "INDEX", "HDUCLAS2": "HDU"})
    hdu_table.write(tmp_path / "hdu-index.fits.gz")
    obs_table = Table.read(hess_dir / "obs-index.fits.gz")
    obs_table[obs_table["OBS_ID"] == 23523].write(tmp_path / "obs-index.fits.gz")
    return DataStore.from_dir(tmp_path)


def test_reference_store_is_fine(tmp_path, hess_dir):
    obs = make_store(tmp_path, hess_dir).get_observations()[0]
    assert len(obs.events) == 7613


def test_missing_index(tmp_path):
    with pytest.raises(DL3FileError, match=str(tmp_path)):
        DataStore.from_dir(tmp_path)


@pytest.mark.filterwarnings("ignore:get_observations. no observation left")
def test_missing_file(tmp_path, hess_dir):
    store = make_store(tmp_path, hess_dir, file_name="run_missing.fits.gz")
    with pytest.raises(MissingHDUError) as excinfo:
        store.get_observations()
    message = str(excinfo.value)
    assert "23523" in message and "run_missing.fits.gz" in message and "events" in message
    with pytest.warns(UserWarning, match="23523.*run_missing.fits.gz"):
        assert len(store.get_observations(skip_missing=True)) == 0


def test_file_deleted_after_get_observations(tmp_path, hess_dir):
    obs = make_store(tmp_path, hess_dir).get_observations()[0]
    os.remove(tmp_path / RUN)
    with pytest.raises(MissingHDUError, match=f"23523.*{RUN}"):
        obs.events


def test_truncated_gzip(tmp_path, hess_dir):
    store = make_store(tmp_path, hess_dir)
    raw = (tmp_path / RUN).read_bytes()
    (tmp_path / RUN).write_bytes(raw[: len(raw) // 2])
    obs = store.get_observations()[0]  # existence is all that is checked here
    with pytest.raises(DL3FileError) as excinfo:
        obs.events
    message = str(excinfo.value)
    assert "23523" in message and RUN in message and "EVENTS" in message
    assert "truncated" in message
    with pytest.raises(DL3FileError, match=f"23523.*{RUN}"):
        obs.load()


@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_truncated_fits_inside_valid_gzip(tmp_path, hess_dir):
    """The gzip stream is whole but the FITS data inside it is cut short."""
    make_store(tmp_path, hess_dir)
    fits_bytes = gzip.decompress((tmp_path / RUN).read_bytes())
    (tmp_path / RUN).write_bytes(gzip.compress(fits_bytes[: len(fits_bytes) // 3]))
    obs = DataStore.from_dir(tmp_path).get_observations()[0]
    with pytest.raises(DL3FileError, match=f"23523.*{RUN}"):
        obs.load()


def test_index_row_pointing_at_missing_hdu(tmp_path, hess_dir):
    rows = [(23523, t, c, ".", RUN, "EVENTZ" if t == "events" else n) for t, c, n in HDUS]
    obs = make_store(tmp_path, hess_dir, rows=rows).get_observations()[0]
    with pytest.raises(MissingHDUError) as excinfo:
        obs.events
    message = str(excinfo.value)
    assert "23523" in message and RUN in message and "EVENTZ" in message
    # the pointing needs the EVENTS header: same diagnosis
    with pytest.raises(MissingHDUError, match="EVENTZ"):
        obs.pointing


@pytest.mark.filterwarnings("ignore:get_observations. no observation left")
def test_index_without_required_hdu(tmp_path, hess_dir):
    rows = [(23523, t, c, ".", RUN, n) for t, c, n in HDUS if t != "psf"]
    store = make_store(tmp_path, hess_dir, rows=rows)
    with pytest.raises(MissingHDUError) as excinfo:
        store.get_observations(required_irf="full-enclosure")
    assert "23523" in str(excinfo.value) and "psf" in str(excinfo.value)
    assert store.get_observations(required_irf="point-like").ids == [23523]
    with pytest.warns(UserWarning, match="23523.*psf"):
        assert len(store.get_observations(skip_missing=True)) == 0


@pytest.mark.filterwarnings("ignore:get_observations. no observation left")
def test_unknown_hdu_class(tmp_path, hess_dir):
    rows = [(23523, t, "aeff_9d" if t == "aeff" else c, ".", RUN, n) for t, c, n in HDUS]
    store = make_store(tmp_path, hess_dir, rows=rows)
    with pytest.raises(UnknownHDUClassError) as excinfo:
        store.get_observations()
    message = str(excinfo.value)
    assert "23523" in message and "aeff_9d" in message and RUN in message and "AEFF" in message
    with pytest.warns(UserWarning, match="aeff_9d"):
        assert len(store.get_observations(skip_missing=True)) == 0


def test_unknown_hdu_type(tmp_path, hess_dir):
    rows = [(23523, t, c, ".", RUN, n) for t, c, n in HDUS] + [(23523, "weather", "weather", ".", RUN, "GTI")]
    with pytest.raises(UnknownHDUClassError, match="23523.*weather"):
        make_store(tmp_path, hess_dir, rows=rows).get_observations()


def _rewrite_events(tmp_path, change):
    """Rewrite the EVENTS HDU of the copied run through ``change(hdul)``."""
    path = tmp_path / RUN
    with fits.open(path) as hdul:
        hdul = fits.HDUList([h.copy() for h in hdul])
    change(hdul)
    hdul.writeto(path, overwrite=True)


def test_events_missing_column(tmp_path, hess_dir):
    store = make_store(tmp_path, hess_dir)

    def drop_energy(hdul):
        events = Table(hdul["EVENTS"].data)
        del events["ENERGY"]
        new = fits.BinTableHDU(events, header=hdul["EVENTS"].header, name="EVENTS")
        hdul[hdul.index_of("EVENTS")] = new

    _rewrite_events(tmp_path, drop_energy)
    obs = store.get_observations()[0]
    with pytest.raises(DL3FileError) as excinfo:
        obs.events
    message = str(excinfo.value)
    assert "23523" in message and RUN in message and "EVENTS" in message and "ENERGY" in message


def test_events_without_time_reference(tmp_path, hess_dir):
    store = make_store(tmp_path, hess_dir)

    def drop_mjdref(hdul):
        for key in ("MJDREFI", "MJDREFF"):
            del hdul["EVENTS"].header[key]

    _rewrite_events(tmp_path, drop_mjdref)
    # the obs index header still gives MJDREF: used as fallback
    obs = store.get_observations()[0]
    assert obs.events.ds.attrs["MJDREFI"] == 51910
    # without it, the error names the file, HDU and observation
    for name in ("obs-index.fits.gz",):
        table = Table.read(tmp_path / name)
        for key in ("MJDREFI", "MJDREFF"):
            table.meta.pop(key, None)
        table.write(tmp_path / name, overwrite=True)
    obs = DataStore.from_dir(tmp_path).get_observations()[0]
    with pytest.raises(DL3FileError) as excinfo:
        obs.events
    message = str(excinfo.value)
    assert "MJDREF" in message and RUN in message and "EVENTS" in message and "23523" in message


def test_not_a_fits_file(tmp_path, hess_dir):
    store = make_store(tmp_path, hess_dir)
    (tmp_path / RUN).write_bytes(b"this is not FITS at all" * 100)
    obs = store.get_observations()[0]
    with pytest.raises(DL3FileError, match=f"23523.*{RUN}"):
        obs.events


def test_no_stray_files_written(tmp_path, hess_dir):
    make_store(tmp_path, hess_dir)
    listing = sorted(os.listdir(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DataStore.from_dir(tmp_path).get_observations()[0].load()
    assert sorted(os.listdir(tmp_path)) == listing
    assert np.all([not name.endswith(".lock") for name in listing])
