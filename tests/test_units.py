"""Units as real files write them, converted by pint: the spellings meteorological files use,
the conversions earthgraph needs, lazy arrays, and named errors."""

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from earthgraph.data.units import UnitsError, convert_units


@pytest.mark.parametrize("units, to, one_in_to", [
    ("knots", "m s-1", 0.514444), ("KT", "m s-1", 0.514444), ("M/S", "m s-1", 1.0), ("m/s", "m s**-1", 1.0),
    ("mb", "hPa", 1.0), ("MB", "Pa", 100.0), ("hPa", "Pa", 100.0), ("kPa", "hPa", 10.0),
    ("degF", "K", 255.927778), ("DEG C", "K", 274.15), ("celsius", "K", 274.15), ("K", "degC", -272.15),
    ("mm", "kg m-2", 1.0), ("m of water equivalent", "kg m-2", 1000.0), ("%", "1", 0.01), ("percent", "1", 0.01),
    ("fraction", "1", 1.0), ("kg/m^2", "kg m-2", 1.0),
])
def test_the_units_real_files_carry_convert(units, to, one_in_to):
    assert float(convert_units(np.array([1.0]), units, to, "here")[0]) == pytest.approx(one_in_to, rel=1e-6)


def test_a_millibar_is_not_a_millibarn_and_capitals_are_not_molar():
    # pint alone reads "mb" as millibarn (an area) and "M/S" as molar per siemens.
    assert float(convert_units(np.array([1013.25]), "mb", "hPa", "p")[0]) == pytest.approx(1013.25)
    with pytest.raises(UnitsError, match="cannot convert units 'M/S' to 'K'"):
        convert_units(np.array([1.0]), "M/S", "K", "here")


def test_conversions_stay_lazy_and_exact_where_decimal():
    lazy = xr.DataArray(da.from_array(np.array([10.0, 20.0]), chunks=1))
    out = convert_units(lazy, "degC", "K", "here")
    assert isinstance(out.data, da.Array), "a dask array is converted without being computed"
    np.testing.assert_array_equal(out.values, [283.15, 293.15])
    np.testing.assert_array_equal(convert_units(np.array([37.0]), "%", "1", "here"), [0.37])  # 37 / 100


@pytest.mark.parametrize("units, to, match", [
    ("bananas", "K", r"file\.csv, column 't': unknown units 'bananas'"),
    ("m s-1", "K", r"file\.csv, column 't': cannot convert units 'm s-1' to 'K'"),
])
def test_unknown_or_incompatible_units_are_named(units, to, match):
    with pytest.raises(UnitsError, match=match):
        convert_units(np.array([1.0]), units, to, "file.csv, column 't'")
