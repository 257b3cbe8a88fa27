import astropy.units as u
import numpy as np
import pytest

from xgamma.units import quantity, to_value, unit_string


def test_strings_and_quantities_convert_once():
    assert to_value("1 TeV", "GeV") == pytest.approx(1000)
    assert to_value(30 * u.arcmin, "deg") == pytest.approx(0.5)
    np.testing.assert_allclose(to_value([1, 2] * u.m**2, "cm2"), [1e4, 2e4])
    # plain numbers are already canonical
    assert to_value(2.5, "deg") == 2.5


def test_wrong_units_name_the_argument():
    with pytest.raises(u.UnitConversionError, match="radius: cannot convert TeV to deg"):
        to_value("1 TeV", "deg", name="radius")
    with pytest.raises(ValueError, match="'one TeV'"):
        quantity("one TeV")


def test_unit_string_is_parsable():
    for unit in ["cm-2 s-1 TeV-1", "MeV-1 s-1 sr-1", "m2", ""]:
        assert u.Unit(unit_string(unit)) == u.Unit(unit)


def test_sequences_of_strings_and_quantities():
    np.testing.assert_allclose(to_value(["1 TeV", 500 * u.GeV], "TeV"), [1, 0.5])
    with pytest.raises(u.UnitConversionError):
        to_value(["1 TeV", "1 deg"], "TeV")
