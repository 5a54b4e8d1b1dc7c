"""Units: the spellings earthgraph accepts and the conversions between them.

Shared by the point-table ingest and the gridded readers, so a file's units
mean the same wherever they are read. Spellings compare case-insensitively
and without spaces (``kg m-2`` = ``kg/m2`` = ``kg m**-2``).
"""

from __future__ import annotations

# Spelling (lower case, no spaces) -> canonical name.
ALIASES = {
    "k": "K", "kelvin": "K",
    "degc": "degC", "deg_c": "degC", "celsius": "degC", "c": "degC", "°c": "degC", "degrees_celsius": "degC",
    "degrees_c": "degC",
    "1": "1", "fraction": "1", "": "1", "(0-1)": "1",
    "%": "%", "percent": "%",
    "kgm-2": "kg m-2", "kg/m2": "kg m-2", "kgm**-2": "kg m-2", "mm": "kg m-2",
    "m": "m", "mofwaterequivalent": "m",
    "ms-1": "m s-1", "m/s": "m s-1", "ms**-1": "m s-1",
    "jm-2": "J m-2", "j/m2": "J m-2", "jm**-2": "J m-2",
}
# (from, to) canonical names -> conversion of values (numpy arrays or xarray objects).
CONVERSIONS = {
    ("degC", "K"): lambda x: x + 273.15,
    ("%", "1"): lambda x: x / 100.0,
    ("m", "kg m-2"): lambda x: x * 1000.0,  # metres of water (snow water equivalent) -> kg m-2
}


class UnitsError(ValueError):
    """Units that earthgraph cannot convert; the message says where they were found."""


def canonical_units(units: str) -> str:
    key = str(units).strip().lower().replace(" ", "")
    return ALIASES.get(key, str(units).replace(" ", ""))


def convert_units(values, from_units: str, to_units: str, where: str):
    """``values`` in ``from_units`` expressed in ``to_units``; ``where`` ("file, column")
    leads the error message when no conversion exists."""
    a, b = canonical_units(from_units), canonical_units(to_units)
    if a == b:
        return values
    if (a, b) not in CONVERSIONS:
        raise UnitsError(f"{where}: cannot convert units {from_units!r} to {to_units!r}")
    return CONVERSIONS[(a, b)](values)
