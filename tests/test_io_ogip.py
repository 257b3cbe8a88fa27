"""OGIP spectra: read the joint-crab PHA/BKG/ARF/RMF files, write them back.

Expected values come from the files themselves, read here with astropy alone
(independently of `xgamma.io.fits`), from the H.E.S.S. crab-1d reference run
list, and from small synthetic files whose content is known by construction.
"""

import shutil

import numpy as np
import pytest
import xarray as xr
import yaml
from astropy.io import fits

from xgamma.axes import MapAxis
from xgamma.datasets import SpectrumDatasetOnOff
from xgamma.geom import RegionGeom
from xgamma.io.fits import DL3FileError
from xgamma.io.ogip import read_ogip, write_ogip

JOINT_CRAB_PHA = [
    "fermi/pha_obs0.fits",
    "magic/pha_obs5029747.fits",
    "magic/pha_obs5029748.fits",
    "hess/pha_obs23523.fits",
    "hess/pha_obs23526.fits",
    "hess/pha_obs23559.fits",
    "hess/pha_obs23592.fits",
    "veritas/pha_obs54809.fits",
    "veritas/pha_obs57993.fits",
    "fact/pha_stacked.fits",
]
HESS_RUNS = [23523, 23526, 23559, 23592]


@pytest.fixture(scope="module")
def spectra_dir(data_dir):
    return data_dir / "joint-crab" / "spectra"


def _linked(pha_path, key):
    return pha_path.parent / fits.getheader(pha_path, "SPECTRUM")[key]


def _per_channel(path, key):
    """BACKSCAL-like value per channel: column if present, else the header keyword."""
    with fits.open(path) as hdul:
        table = hdul["SPECTRUM"]
        if key in table.columns.names:
            return np.asarray(table.data[key], dtype=float)
        return np.full(len(table.data), float(table.header[key]))


# ---- the joint-crab files ---------------------------------------------------------
@pytest.mark.parametrize("relpath", JOINT_CRAB_PHA)
def test_joint_crab_spectrum_matches_file(spectra_dir, relpath):
    pha_path = spectra_dir / relpath
    dataset = read_ogip(pha_path)

    with fits.open(pha_path) as pha, fits.open(_linked(pha_path, "BACKFILE")) as bkg:
        counts = pha["SPECTRUM"].data["COUNTS"]
        counts_off = bkg["SPECTRUM"].data["COUNTS"]
        exposure_s = pha["SPECTRUM"].header["EXPOSURE"]
        quality = pha["SPECTRUM"].data["QUALITY"]
    with fits.open(_linked(pha_path, "ANCRFILE")) as arf:
        specresp = np.asarray(arf["SPECRESP"].data["SPECRESP"], dtype=float)
    with fits.open(_linked(pha_path, "RESPFILE")) as rmf:
        matrix_rows = [np.sum(np.asarray(row, dtype=float)) for row in rmf["MATRIX"].data["MATRIX"]]
        n_channels = len(rmf["EBOUNDS"].data)

    assert dataset.counts.sizes == {"energy": counts.size} == {"energy": n_channels}
    assert dataset.exposure.sizes == {"energy_true": specresp.size}
    assert dataset.edisp.sizes == {"energy_true": len(matrix_rows), "energy": n_channels}
    assert float(dataset.counts.sum()) == counts.sum()
    assert float(dataset.counts_off.sum()) == counts_off.sum()
    np.testing.assert_allclose(dataset.exposure.values, specresp * exposure_s, rtol=1e-12)
    assert dataset.exposure.attrs["units"] == "cm2 s"
    assert dataset.livetime == exposure_s
    np.testing.assert_array_equal(dataset.mask_safe.values, quality == 0)

    row_sums = dataset.edisp.sum("energy").values
    # MATRIX is float32 in these files: a row may exceed 1 by its rounding
    assert np.all(row_sums <= 1 + 1e-6)
    np.testing.assert_allclose(row_sums, matrix_rows, rtol=1e-12, atol=0)

    alpha = _per_channel(pha_path, "BACKSCAL") / _per_channel(_linked(pha_path, "BACKFILE"), "BACKSCAL")
    np.testing.assert_allclose(dataset.alpha.values, alpha, rtol=1e-12)


@pytest.mark.parametrize("relpath", JOINT_CRAB_PHA)
def test_joint_crab_energy_axes_in_tev(spectra_dir, relpath):
    """EBOUNDS and ENERG_LO/HI are keV in all these files; the axes are TeV."""
    pha_path = spectra_dir / relpath
    dataset = read_ogip(pha_path)
    with fits.open(_linked(pha_path, "RESPFILE")) as rmf:
        assert rmf["EBOUNDS"].columns["E_MIN"].unit == "keV"
        e_min_kev = rmf["EBOUNDS"].data["E_MIN"]
    with fits.open(_linked(pha_path, "ANCRFILE")) as arf:
        true_hi_kev = arf["SPECRESP"].data["ENERG_HI"]
    assert dataset.energy_axis.unit == "TeV"
    np.testing.assert_allclose(dataset.energy_axis.edges_min.to_value("TeV"), e_min_kev * 1e-9, rtol=1e-12)
    np.testing.assert_allclose(dataset.energy_axis_true.edges_max.to_value("TeV"), true_hi_kev * 1e-9, rtol=1e-12)


def test_edisp_peaks_near_true_energy(spectra_dir):
    """Physics check on a compressed, multi-group matrix: most probability near the diagonal."""
    dataset = read_ogip(spectra_dir / "magic" / "pha_obs5029748.fits")
    edisp = dataset.edisp.transpose("energy_true", "energy")
    log_reco = np.log10(edisp["energy"].values)
    significant = edisp.sum("energy").values > 0.5
    mean_log_reco = (edisp.values @ log_reco)[significant] / edisp.sum("energy").values[significant]
    log_true = np.log10(edisp["energy_true"].values[significant])
    assert significant.sum() > 20
    assert np.all(np.abs(mean_log_reco - log_true) < 0.3)


def test_hess_run_against_crab_1d_reference(spectra_dir, reference_dir):
    """Only what must agree with the crab-1d analysis of the same runs.

    The joint-crab files use 20 bins per decade from 0.01 to 100 TeV, their own
    safe thresholds (LO_THRES 0.89 TeV for run 23523, against 0.74 TeV in the
    reference) and ON/OFF regions, so counts cannot be compared; livetime is
    a property of the run and alpha agrees where both chose 12 OFF regions.
    """
    reference = {run["name"]: run for run in yaml.safe_load((reference_dir / "crab-1d.yaml").read_text())["per_run"]}
    for obs_id in HESS_RUNS:
        dataset = read_ogip(spectra_dir / "hess" / f"pha_obs{obs_id}.fits")
        assert dataset.name == str(obs_id)
        assert dataset.obs_ids == [obs_id]
        assert dataset.livetime == pytest.approx(reference[str(obs_id)]["livetime"], rel=1e-6)
        assert dataset.energy_axis == MapAxis.from_energy_bounds(0.01, 100, 80, unit="TeV")
    for obs_id in (23523, 23526):
        dataset = read_ogip(spectra_dir / "hess" / f"pha_obs{obs_id}.fits")
        assert np.all(dataset.alpha.values == pytest.approx(1 / 12))
        assert dataset.info_dict()["alpha"] == pytest.approx(reference[str(obs_id)]["alpha"])


def test_read_through_dataset_class(spectra_dir, tmp_path):
    path = spectra_dir / "veritas" / "pha_obs54809.fits"
    dataset = SpectrumDatasetOnOff.read(path, name="veritas")
    assert dataset.name == "veritas"
    xr.testing.assert_identical(dataset.counts, read_ogip(path).counts)
    with pytest.raises(ValueError, match="format"):
        SpectrumDatasetOnOff.read(path, format="pha")


# ---- write -> read ---------------------------------------------------------------
def _assert_round_trip(dataset, back):
    """Same data; energy edges and exposure may differ in the last bit (keV <-> TeV, / x livetime)."""
    assert back.data.attrs == dataset.data.attrs
    assert set(back.data.variables) == set(dataset.data.variables)
    for key, var in dataset.data.variables.items():
        assert back.data[key].attrs == var.attrs, key
        assert back.data[key].dims == var.dims, key
        if key.startswith("energy") or key == "exposure":
            np.testing.assert_allclose(back.data[key].values, var.values, rtol=1e-15, atol=0, err_msg=key)
        else:
            np.testing.assert_array_equal(back.data[key].values, var.values, err_msg=key)
            assert back.data[key].dtype == var.dtype, key
    assert back.energy_axis == dataset.energy_axis
    assert back.energy_axis_true == dataset.energy_axis_true


@pytest.mark.parametrize("relpath", JOINT_CRAB_PHA)
def test_write_read_round_trip(spectra_dir, tmp_path, relpath):
    dataset = read_ogip(spectra_dir / relpath)
    pha_path = write_ogip(dataset, tmp_path)
    assert pha_path == str(tmp_path / relpath.split("/")[1])
    _assert_round_trip(dataset, read_ogip(pha_path))


def test_round_trip_keeps_region_and_refuses_overwrite(spectra_dir, tmp_path):
    dataset = read_ogip(spectra_dir / "hess" / "pha_obs23523.fits")
    region = RegionGeom("icrs;circle(83.633,22.014,0.11)").to_region_string()
    data = dataset.data.copy()
    for key, var in data.data_vars.items():
        if "region" in var.attrs:
            data[key] = var.assign_attrs(region=region)
    dataset = SpectrumDatasetOnOff(data)

    pha_path = dataset.write(tmp_path)
    back = SpectrumDatasetOnOff.read(pha_path)
    _assert_round_trip(dataset, back)
    assert back.geom.center_skydir.ra.deg == pytest.approx(83.633)

    with pytest.raises(FileExistsError, match="overwrite"):
        dataset.write(tmp_path)
    dataset.write(tmp_path, overwrite=True)


def test_write_refuses_fractional_counts(spectra_dir, tmp_path):
    dataset = read_ogip(spectra_dir / "fermi" / "pha_obs0.fits")
    data = dataset.data.copy()
    data["counts"] = data["counts"] + 0.5
    with pytest.raises(ValueError, match="counts must be non-negative whole numbers"):
        write_ogip(SpectrumDatasetOnOff(data), tmp_path)


# ---- conventions, on small synthetic files ------------------------------------------
def _write_synthetic(folder, spectrum_columns, spectrum_cards, energy_unit="TeV"):
    """Three channels from 1 (no TLMIN), two true-energy bins, energies in ``energy_unit``.

    RMF row 0: channel 1 -> 0.25, channels 3 -> 0.5 (two groups, fixed-width
    columns padded with zeros); row 1: channels 2-3 -> 0.375, 0.5625 (exact in float32).
    """
    edges = np.array([0.1, 1.0, 10.0, 100.0])
    true_edges = np.array([0.1, 3.0, 100.0])
    scale = {"TeV": 1.0, "keV": 1e9}[energy_unit]
    pha = fits.BinTableHDU.from_columns(
        [fits.Column("CHANNEL", "J", array=[1, 2, 3]), fits.Column("COUNTS", "J", array=[4, 5, 6])] + spectrum_columns,
        name="SPECTRUM",
    )
    pha.header.update({"EXPOSURE": 100.0, "ANCRFILE": "arf.fits", "RESPFILE": "rmf.fits", "BACKFILE": "bkg.fits"} | spectrum_cards)
    bkg = fits.BinTableHDU.from_columns(
        [fits.Column("CHANNEL", "J", array=[1, 2, 3]), fits.Column("COUNTS", "J", array=[10, 20, 30])], name="SPECTRUM"
    )
    bkg.header.update({"EXPOSURE": 200.0, "BACKSCAL": 4.0})
    arf = fits.BinTableHDU.from_columns(
        [
            fits.Column("ENERG_LO", "D", array=true_edges[:-1] * scale, unit=energy_unit),
            fits.Column("ENERG_HI", "D", array=true_edges[1:] * scale, unit=energy_unit),
            fits.Column("SPECRESP", "D", array=[1e8, 2e9], unit="cm2"),
        ],
        name="SPECRESP",
    )
    matrix = fits.BinTableHDU.from_columns(
        [
            fits.Column("ENERG_LO", "E", array=true_edges[:-1] * scale, unit=energy_unit),
            fits.Column("ENERG_HI", "E", array=true_edges[1:] * scale, unit=energy_unit),
            fits.Column("N_GRP", "I", array=[2, 1]),
            fits.Column("F_CHAN", "2I", array=[[1, 3], [2, 0]]),
            fits.Column("N_CHAN", "2I", array=[[1, 1], [2, 0]]),
            fits.Column("MATRIX", "3E", array=[[0.25, 0.5, 0.0], [0.375, 0.5625, 0.0]]),
        ],
        name="MATRIX",
    )
    ebounds = fits.BinTableHDU.from_columns(
        [
            fits.Column("CHANNEL", "J", array=[1, 2, 3]),
            fits.Column("E_MIN", "D", array=edges[:-1] * scale, unit=energy_unit),
            fits.Column("E_MAX", "D", array=edges[1:] * scale, unit=energy_unit),
        ],
        name="EBOUNDS",
    )
    for name, hdus in {"pha": [pha], "bkg": [bkg], "arf": [arf], "rmf": [matrix, ebounds]}.items():
        fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(folder / f"{name}.fits")
    return folder / "pha.fits"


@pytest.mark.parametrize("energy_unit", ["TeV", "keV"])
def test_synthetic_conventions(tmp_path, energy_unit):
    """Channels from 1 without TLMIN, scalar BACKSCAL, no QUALITY, grouped matrix, TeV or keV."""
    path = _write_synthetic(tmp_path, [], {"BACKSCAL": 2.0, "OBS_ID": 7}, energy_unit)
    dataset = read_ogip(path)
    np.testing.assert_allclose(dataset.energy_axis.edges.to_value("TeV"), [0.1, 1.0, 10.0, 100.0], rtol=1e-15)
    np.testing.assert_allclose(dataset.energy_axis_true.edges.to_value("TeV"), [0.1, 3.0, 100.0], rtol=1e-15)
    np.testing.assert_array_equal(dataset.edisp.transpose("energy_true", "energy").values, [[0.25, 0, 0.5], [0, 0.375, 0.5625]])
    np.testing.assert_allclose(dataset.exposure.values, [1e10, 2e11])
    assert dataset.mask_safe.values.all()
    # OGIP background scaling: BACKSCAL x EXPOSURE ratio, ON 2 x 100 s against OFF 4 x 200 s
    np.testing.assert_allclose(dataset.alpha.values, 0.25)
    np.testing.assert_array_equal(dataset.acceptance.values, 2.0)
    assert dataset.obs_ids == [7]
    assert dataset.name == "pha"
    assert dataset.counts.attrs["region"] == ""


def test_synthetic_quality_and_areascal_columns(tmp_path):
    columns = [
        fits.Column("QUALITY", "I", array=[0, 2, 0]),
        fits.Column("AREASCAL", "D", array=[1.0, 1.0, 0.0]),
        fits.Column("BACKSCAL", "D", array=[1.0, 2.0, 3.0]),
    ]
    dataset = read_ogip(_write_synthetic(tmp_path, columns, {}))
    np.testing.assert_array_equal(dataset.mask_safe.values, [True, False, False])
    np.testing.assert_array_equal(dataset.acceptance.values, [1.0, 2.0, 3.0])
    assert dataset.obs_ids == []


def test_areascal_scaling_the_source_is_refused(tmp_path):
    path = _write_synthetic(tmp_path, [fits.Column("AREASCAL", "D", array=[1.0, 0.5, 1.0])], {})
    with pytest.raises(ValueError, match="AREASCAL"):
        read_ogip(path)


# ---- bad input -------------------------------------------------------------------
LINK_KEYS = ("ANCRFILE", "RESPFILE", "BACKFILE")


def _copy_observation(source, folder, skip=()):
    """Copy a PHA file and the files it links to, except those named by ``skip`` keys."""
    shutil.copy(source, folder)
    for key in LINK_KEYS:
        if key not in skip:
            shutil.copy(_linked(source, key), folder)
    return folder / source.name


@pytest.mark.parametrize("key", LINK_KEYS)
def test_missing_linked_file_is_named(spectra_dir, tmp_path, key):
    source = spectra_dir / "hess" / "pha_obs23523.fits"
    pha_path = _copy_observation(source, tmp_path, skip=[key])
    missing = fits.getheader(source, "SPECTRUM")[key]
    with pytest.raises(DL3FileError, match=rf"{key} = .*{missing}"):
        read_ogip(pha_path)


def test_missing_keyword_is_named(spectra_dir, tmp_path):
    pha_path = _copy_observation(spectra_dir / "hess" / "pha_obs23523.fits", tmp_path)
    with fits.open(pha_path, mode="update") as hdul:
        del hdul["SPECTRUM"].header["BACKFILE"]
    with pytest.raises(DL3FileError, match="keyword BACKFILE"):
        read_ogip(pha_path)


def test_missing_column_names_file_and_column(spectra_dir, tmp_path):
    source = spectra_dir / "hess" / "pha_obs23523.fits"
    pha_path = _copy_observation(source, tmp_path, skip=["ANCRFILE"])
    arf = _linked(source, "ANCRFILE")
    with fits.open(arf) as hdul:
        table = hdul["SPECRESP"]
        columns = fits.ColDefs([c for c in table.columns if c.name != "SPECRESP"])
        stripped = fits.BinTableHDU.from_columns(columns, header=table.header, name="SPECRESP")
        fits.HDUList([fits.PrimaryHDU(), stripped]).writeto(tmp_path / arf.name)
    with pytest.raises(DL3FileError, match=rf"{arf.name}.*SPECRESP.*no column 'SPECRESP'"):
        read_ogip(pha_path)
