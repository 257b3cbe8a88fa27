import numpy as np
import pytest
from astropy.io import fits

from xgamma.io.fits import DL3FileError, read_hdus, read_irf_table

PROD5 = "cta-caldb/Prod5-South-20deg-AverageAz-14MSTs37SSTs.180000s-v0.1.fits.gz"
HESS = "hess-dl3-dr1/data/hess_dl3_dr1_obs_id_023523.fits.gz"


@pytest.mark.parametrize("path, hdu", [(PROD5, "BACKGROUND"), (HESS, "BKG")])
def test_axes_are_bound_by_column_name_not_position(data_dir, path, hdu):
    # Prod5 lists ENERG before DETX/DETY, H.E.S.S. lists it last: both must
    # come out with the energy dimension where the ENERG column says.
    table = read_irf_table(read_hdus(data_dir / path, [hdu])[hdu], ("ENERG", "DETX", "DETY"), [("BKG", "BGD")])
    values, unit, dims = table.data["BKG"]
    sizes = {axis: lo.size for axis, (lo, hi, _) in table.axes.items()}
    assert values.shape == tuple(sizes[d] for d in dims)
    # the background rate at the FoV centre falls steeply with energy
    energy_axis = dims.index("ENERG")
    centre = [s // 2 for s in values.shape]
    index = tuple(slice(None) if i == energy_axis else c for i, c in enumerate(centre))
    profile = values[index]
    peak = int(np.argmax(profile))
    assert peak < profile.size // 2
    assert profile[peak] > 100 * profile[-1] > 0


def test_truncated_file_names_the_file(tmp_path, data_dir):
    raw = (data_dir / HESS).read_bytes()
    broken = tmp_path / "cut.fits.gz"
    broken.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DL3FileError, match="cut.fits.gz"):
        read_hdus(broken, ["EVENTS"])


def test_missing_file_and_hdu(tmp_path, data_dir):
    with pytest.raises(DL3FileError, match="file not found: .*nope.fits"):
        read_hdus(tmp_path / "nope.fits", ["EVENTS"])
    with pytest.raises(DL3FileError, match="no HDU 'POINTING'.*EVENTS"):
        read_hdus(data_dir / HESS, ["POINTING"])


def test_shape_mismatch_is_an_error_not_a_reshape(tmp_path):
    cols = [
        fits.Column("ENERG_LO", "3E", array=[[1, 2, 3]]),
        fits.Column("ENERG_HI", "3E", array=[[2, 3, 4]]),
        fits.Column("THETA_LO", "2E", array=[[0, 1]]),
        fits.Column("THETA_HI", "2E", array=[[1, 2]]),
        fits.Column("EFFAREA", "4E", dim="(2,2)", array=[np.ones((2, 2))]),
    ]
    path = tmp_path / "aeff.fits"
    fits.BinTableHDU.from_columns(cols, name="AEFF").writeto(path)
    with pytest.raises(DL3FileError, match=r"EFFAREA has shape \(2, 2\).*\(2, 3\)"):
        read_irf_table(read_hdus(path, ["AEFF"])["AEFF"], ("ENERG", "THETA"), ["EFFAREA"])


def test_columns_come_out_physical(data_dir):
    # CTA 1DC stores EVENT_ID as int32 with TZERO = 2**31 (unsigned): the
    # physical ids are the positive numbers 1, 2, 3 ...
    path = data_dir / "cta-1dc/data/baseline/gps/gps_baseline_110380.fits"
    events = read_hdus(path, ["EVENTS"])["EVENTS"]
    ids = events.column("event_id")
    assert ids.min() >= 1 and ids.dtype.isnative
    with fits.open(path) as hdul:
        np.testing.assert_array_equal(ids, hdul["EVENTS"].data["EVENT_ID"])
    with pytest.raises(DL3FileError, match="no column 'NOPE'"):
        events.column("NOPE")


def _tables(path):
    with fits.open(path, memmap=False) as hdul:
        return [k for k, hdu in enumerate(hdul) if isinstance(hdu, fits.BinTableHDU)]


@pytest.mark.parametrize(
    "path",
    [
        HESS,
        PROD5,
        "cta-1dc/data/baseline/gps/gps_baseline_110380.fits",  # TZERO on EVENT_ID
        "hess-dl3-dr1/obs-index.fits.gz",  # string columns
        "magic/rad_max/data/20131004_05029747_DL3_CrabNebula-W0.40+035.fits",  # RAD_MAX table
        "joint-crab/spectra/hess/pha_obs23523.fits",  # OGIP spectrum
    ],
)
def test_fast_table_reading_equals_astropy(data_dir, path):
    # read_hdus views plain binary tables from the file bytes itself; every
    # column must come out as astropy's physical values, header and units too
    from xgamma.io.fits import _open_bytes, _read_tables, _read_with_astropy

    path = str(data_dir / path)
    indices = _tables(path)
    raw = _open_bytes(path)
    fast = _read_tables(raw, indices, path)
    assert fast is not None, "the fast reader declined a plain table"
    slow = _read_with_astropy(raw, indices, path)
    for k in indices:
        assert fast[k].name == slow[k].name
        assert fast[k].columns == slow[k].columns
        assert dict(fast[k].header) == dict(slow[k].header)
        assert len(fast[k].data) == len(slow[k].data)
        for column in slow[k].columns:
            expected, got = slow[k].column(column), fast[k].column(column)
            assert got.dtype == expected.dtype and got.shape == expected.shape, column
            np.testing.assert_array_equal(got, expected, err_msg=column)


def test_tables_the_fast_reader_declines_still_read(tmp_path):
    # a variable-length array column (as in OGIP response matrices) goes through astropy
    cols = [fits.Column("MATRIX", "PE()", array=np.array([np.ones(3), np.ones(1)], dtype=object)),
            fits.Column("N_GRP", "I", array=[1, 1])]
    path = tmp_path / "vla.fits"
    fits.BinTableHDU.from_columns(cols, name="MATRIX").writeto(path)
    from xgamma.io.fits import _open_bytes, _read_tables

    assert _read_tables(_open_bytes(str(path)), ["MATRIX"], str(path)) is None
    hdu = read_hdus(path, ["matrix"])["matrix"]
    assert [len(row) for row in hdu.column("MATRIX")] == [3, 1]
    np.testing.assert_array_equal(hdu.column("N_GRP"), [1, 1])


@pytest.mark.parametrize("path", [HESS, PROD5, "cta-1dc/data/baseline/gps/gps_baseline_110380.fits",
                                  "magic/rad_max/data/20131004_05029747_DL3_CrabNebula-W0.40+035.fits"])
def test_keywords_parsed_without_astropy_equal_astropy_values(data_dir, path):
    from xgamma.io.fits import _open_bytes, _read_tables, _read_with_astropy

    path = str(data_dir / path)
    indices = _tables(path)
    raw = _open_bytes(path)
    fast, slow = _read_tables(raw, indices, path), _read_with_astropy(raw, indices, path)
    for k in indices:
        assert fast[k].cards is not None
        expected = {}
        for key, value in slow[k].header.items():
            if key not in ("COMMENT", "HISTORY", "") and key not in expected:
                expected[key] = value
        got = dict(fast[k].keywords)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert type(got[key]) is type(value) and got[key] == value, (key, got[key], value)
        # and the astropy header is still there when asked for
        assert fast[k].header["EXTNAME"] == slow[k].header["EXTNAME"]


def test_keyword_values_of_every_kind():
    from xgamma.io.fits import _cards

    header = fits.Header()
    header["ANINT"], header["AFLOAT"], header["ABOOL"], header["ASTR"] = 42, -1.5e-3, False, "it''s  "
    header["ACPLX"], header["NUMSTR"], header["EMPTY"] = complex(1, -2), "123", None
    header["LONGSTR"] = "x" * 100  # written with CONTINUE cards
    header.append(("ANINT", 7))  # a repeated keyword keeps its first value
    cards, complete = _cards(header.tostring().encode("ascii"))
    assert complete
    assert cards["ANINT"] == 42 and type(cards["ANINT"]) is int
    assert cards["AFLOAT"] == -1.5e-3 and cards["ABOOL"] is False
    assert cards["ASTR"] == header["ASTR"] and cards["NUMSTR"] == "123"
    assert cards["ACPLX"] == complex(1, -2) and cards["EMPTY"] is None
    assert cards["LONGSTR"] == "x" * 100
    header["HIERARCH ESO DET"] = 1
    assert not _cards(header.tostring().encode("ascii"))[1]  # not understood: astropy reads those
