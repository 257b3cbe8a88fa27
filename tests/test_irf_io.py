"""`load_irf` / `read_irf`: class selection, header aliases and errors that name the thing."""

import logging

import numpy as np
import pytest
from astropy.io import fits

from xgamma.io.fits import DL3FileError, read_hdus
from xgamma.irf import (
    IRF_CLASSES,
    Background3D,
    EffectiveAreaTable2D,
    EnergyDispersion2D,
    IRFClassError,
    PSF3Gauss,
    PSFTable,
    RadMax2D,
    hdu_class_from_header,
    load_irf,
    read_irf,
)

HESS = "hess-dl3-dr1/data/hess_dl3_dr1_obs_id_023523.fits.gz"
CTA1DC = "cta-1dc/caldb/data/cta/1dc/bcf/South_z20_50h/irf_file.fits"
PROD5_S = "cta-caldb/Prod5-South-20deg-AverageAz-14MSTs37SSTs.180000s-v0.1.fits.gz"
MAGIC = "magic/rad_max/data/20131004_05029747_DL3_CrabNebula-W0.40+035.fits"

AEFF_HEADER = {
    "HDUCLASS": "GADF",
    "HDUCLAS1": "RESPONSE",
    "HDUCLAS2": "EFF_AREA",
    "HDUCLAS3": "FULL-ENCLOSURE",
    "HDUCLAS4": "AEFF_2D",
}


def write_aeff(path, header=None, drop=()):
    columns = {
        "ENERG_LO": ([0.1, 1.0], "TeV"),
        "ENERG_HI": ([1.0, 10.0], "TeV"),
        "THETA_LO": ([0.0, 1.0, 2.0], "deg"),
        "THETA_HI": ([1.0, 2.0, 3.0], "deg"),
    }
    cols = [
        fits.Column(n, format=f"{len(v)}D", unit=unit, array=[v]) for n, (v, unit) in columns.items() if n not in drop
    ]
    if "EFFAREA" not in drop:
        cols.append(fits.Column("EFFAREA", format="6D", unit="m2", dim="(2,3)", array=np.arange(6.0).reshape(1, 3, 2)))
    hdu = fits.BinTableHDU.from_columns(cols, name="EFFECTIVE AREA")
    for key, value in (header if header is not None else AEFF_HEADER).items():
        hdu.header[key] = value
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)
    return path


CASES = [
    (HESS, "AEFF", "aeff_2d", EffectiveAreaTable2D),
    (HESS, "EDISP", "edisp_2d", EnergyDispersion2D),
    (HESS, "PSF", "psf_table", PSFTable),
    (HESS, "BKG", "bkg_3d", Background3D),
    (CTA1DC, "EFFECTIVE AREA", "aeff_2d", EffectiveAreaTable2D),
    (CTA1DC, "POINT SPREAD FUNCTION", "psf_3gauss", PSF3Gauss),
    (CTA1DC, "ENERGY DISPERSION", "edisp_2d", EnergyDispersion2D),
    (CTA1DC, "BACKGROUND", "bkg_3d", Background3D),
    (PROD5_S, "POINT SPREAD FUNCTION", "psf_3gauss", PSF3Gauss),
    (PROD5_S, "ENERGY DISPERSION", "edisp_2d", EnergyDispersion2D),
    (MAGIC, "RAD_MAX", "rad_max_2d", RadMax2D),
]


@pytest.mark.parametrize("path, hdu, hdu_class, cls", CASES, ids=[f"{c[0].split('/')[0]}-{c[1]}" for c in CASES])
def test_load_irf_with_and_without_class(data_dir, path, hdu, hdu_class, cls):
    hdu_data = read_hdus(data_dir / path, [hdu])[hdu]
    assert hdu_class_from_header(hdu_data.header) == hdu_class
    assert type(load_irf(hdu_data)) is cls
    assert type(load_irf(hdu_data, hdu_class.upper())) is cls
    assert load_irf(hdu_data, hdu_class).data.attrs["hdu_class"] == hdu_class


@pytest.mark.parametrize(
    "clas2, clas4, expected",
    [
        ("EFF_AREA", "2D", "aeff_2d"),
        ("EDISP", "2D", "edisp_2d"),
        ("RPSF", "3GAUSS", "psf_3gauss"),
        ("PSF", "PSF_KING", "psf_king"),
        ("RPSF", "KING", "psf_king"),
        ("PSF", "PSF_TABLE", "psf_table"),
        ("BKG", "3D", "bkg_3d"),
        ("BKG", "2D", "bkg_2d"),
        ("BKG", "BKG_2D", "bkg_2d"),
        ("RAD_MAX", "RAD_MAX_2D", "rad_max_2d"),
        ("", "AEFF_2D", "aeff_2d"),
    ],
)
def test_header_aliases(clas2, clas4, expected):
    assert hdu_class_from_header({"HDUCLAS2": clas2, "HDUCLAS4": clas4}) == expected


def test_every_known_class_is_registered():
    assert sorted(IRF_CLASSES) == sorted(
        ["aeff_2d", "edisp_2d", "psf_table", "psf_3gauss", "psf_king", "bkg_2d", "bkg_3d", "rad_max_2d"]
    )


def test_unknown_class_names_file_hdu_class(tmp_path):
    path = write_aeff(tmp_path / "aeff.fits")
    hdu_data = read_hdus(path, ["EFFECTIVE AREA"])["EFFECTIVE AREA"]
    with pytest.raises(IRFClassError) as info:
        load_irf(hdu_data, "aeff_3d")
    message = str(info.value)
    assert "aeff.fits" in message and "EFFECTIVE AREA" in message and "aeff_3d" in message
    assert "psf_king" in message  # lists the known classes
    assert isinstance(info.value, ValueError) and isinstance(info.value, DL3FileError)


def test_unknown_header_class(tmp_path):
    path = write_aeff(tmp_path / "gtpsf.fits", header={"HDUCLAS2": "PSF", "HDUCLAS4": "PSF_GTPSF"})
    with pytest.raises(ValueError, match=r"gtpsf\.fits\[EFFECTIVE AREA\].*PSF_GTPSF.*known classes"):
        read_irf(path, "EFFECTIVE AREA")


def test_missing_data_column_names_file_hdu_column(tmp_path):
    path = write_aeff(tmp_path / "nodata.fits", drop=("EFFAREA",))
    with pytest.raises(DL3FileError, match=r"nodata\.fits\[EFFECTIVE AREA\].*EFFAREA"):
        read_irf(path, "EFFECTIVE AREA")


def test_missing_axis_column_names_file_hdu_column(tmp_path):
    path = write_aeff(tmp_path / "notheta.fits", drop=("THETA_LO",))
    with pytest.raises(DL3FileError, match=r"notheta\.fits\[EFFECTIVE AREA\].*THETA_LO"):
        read_irf(path, "EFFECTIVE AREA", "aeff_2d")


def test_missing_hdu(tmp_path):
    path = write_aeff(tmp_path / "aeff.fits")
    with pytest.raises(DL3FileError, match=r"aeff\.fits.*'PSF'"):
        read_irf(path, "PSF")


def test_class_from_index_wins_over_header(tmp_path, caplog):
    path = write_aeff(tmp_path / "aeff.fits", header=dict(AEFF_HEADER, HDUCLAS2="BKG", HDUCLAS4="BKG_2D"))
    with caplog.at_level(logging.WARNING, logger="xgamma.irf"):
        aeff = read_irf(path, "EFFECTIVE AREA", "aeff_2d")
    assert isinstance(aeff, EffectiveAreaTable2D)
    assert "bkg_2d" in caplog.text and "aeff_2d" in caplog.text


def test_small_table_values_and_units(tmp_path):
    aeff = read_irf(write_aeff(tmp_path / "aeff.fits"), "EFFECTIVE AREA")
    # the column holds numpy (theta, energy) = arange(6).reshape(3, 2)
    np.testing.assert_array_equal(aeff.data.values, np.arange(6.0).reshape(3, 2).T)
    assert aeff.evaluate(energy_true=np.sqrt(10.0), offset=2.5).to_value("cm2") == pytest.approx(5.0 * 1e4)


def test_rad_max_from_header(data_dir):
    aeff = read_irf(data_dir / "joint-crab/dl3/magic/run_05029748_DL3.fits", "EFFECTIVE AREA")
    cut = RadMax2D.from_irf(aeff)
    assert cut.is_pointlike
    values = cut.evaluate(energy=[0.1, 1, 30], offset=[0.4, 0.4, 1.5]).to_value("deg")
    np.testing.assert_allclose(values, 0.1414213, rtol=1e-7)
    full = read_irf(data_dir / HESS, "AEFF")
    with pytest.raises(ValueError, match="AEFF.*RAD_MAX"):
        RadMax2D.from_irf(full)
