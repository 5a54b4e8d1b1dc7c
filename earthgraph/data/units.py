"""Units: what a file's units mean and how its values become earthgraph's.

Shared by the point-table ingest and the gridded readers, so a file's units
mean the same wherever they are read. Units are parsed by pint, so the units
real files carry convert without a hand table: ``knots``, ``degF``, ``hPa``
and ``Pa``, ``mm``, ``percent`` and ``%``, ``kg m-2`` (CF/UDUNITS exponents),
``kg/m^2``, ``m s**-1``, ``K``, ``degC``... Spellings that pint does not know
but files use (``fraction``, ``(0-1)``, ``1``, ``celsius``, ``m of water
equivalent``) are mapped first.

One physical equivalence beyond units: a depth of water (``mm`` of
precipitation, ``m`` of snow water equivalent) is a mass per area through the
density of water, 1000 kg m-3 (1 mm = 1 kg m-2).

Every conversion is affine, ``a * x + b``, computed once from pint and then
applied to the values, so numpy arrays, xarray objects and lazy dask arrays
all convert alike and stay lazy.
"""

from __future__ import annotations

import re
from functools import lru_cache

WATER_DENSITY = 1000.0  # kg m-3: a depth of water as a mass per area

# Spellings files use that pint does not parse, lower case without spaces -> pint's.
_SPELLINGS = {
    "": "dimensionless", "1": "dimensionless", "fraction": "dimensionless", "(0-1)": "dimensionless",
    "0-1": "dimensionless", "unitless": "dimensionless", "-": "dimensionless",
    "%": "percent", "celsius": "degC", "degreescelsius": "degC", "degrees_celsius": "degC", "deg_c": "degC",
    "degrees_c": "degC", "c": "degC", "°c": "degC", "fahrenheit": "degF", "degrees_fahrenheit": "degF",
    "deg_f": "degF", "f": "degF", "°f": "degF", "kt": "knot", "kts": "knot", "knots": "knot", "mofwaterequivalent": "m",
    "mwe": "m", "mmofwaterequivalent": "mm",
    # Meteorological spellings pint reads otherwise: "mb" is a millibar, not a millibarn; old
    # files' capitals ("M/S", "DEG C", "MB") are not molar per siemens.
    "mb": "millibar", "mbar": "millibar", "millibars": "millibar", "m/s": "m/s", "mps": "m/s",
    "degk": "K", "degreesk": "K", "degrees_k": "K", "k": "K", "pa": "Pa", "hpa": "hPa", "kpa": "kPa",
    "degc": "degC", "degreesc": "degC", "degf": "degF",
}
# A CF/UDUNITS exponent written after a unit symbol: "m-2", "s-1", "m2".
_EXPONENT = re.compile(r"(?<=[A-Za-z])(-?\d+)\b")


class UnitsError(ValueError):
    """Units that earthgraph cannot read or convert; the message says where they were found."""


@lru_cache(maxsize=1)
def _registry():
    import pint  # imported on first use: building its registry takes a fraction of a second

    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


def _pint_spelling(units: str) -> str:
    """A file's units in a spelling pint parses: CF exponents as powers, known aliases mapped."""
    text = str(units).strip()
    key = text.lower().replace(" ", "")
    if key in _SPELLINGS:
        return _SPELLINGS[key]
    return _EXPONENT.sub(r"**\1", text.replace("^", "**"))


@lru_cache(maxsize=256)
def parse_units(units: str):
    """``units`` as a pint Unit; :class:`UnitsError` (without location) when pint cannot parse it."""
    try:
        return _registry().parse_units(_pint_spelling(units))
    except Exception as e:  # pint's parser raises many kinds for malformed text: TokenError
        # ("g("), ZeroDivisionError ("1/0"), KeyError, UndefinedUnitError, DefinitionSyntaxError ...
        raise UnitsError(f"unknown units {units!r} ({type(e).__name__}: {e})") from None


def check_units(units: str, where: str) -> None:
    """Raise :class:`UnitsError` naming ``where`` unless ``units`` can be parsed."""
    try:
        parse_units(units)
    except UnitsError as e:
        raise UnitsError(f"{where}: {e}") from None


@lru_cache(maxsize=256)
def affine_conversion(from_units: str, to_units: str) -> tuple[float, float]:
    """``(a, b)`` with ``value_in_to_units = a * value_in_from_units + b``.

    Raises :class:`UnitsError` (without location) when the units are unknown or
    measure different quantities (a depth of water and a mass per area do not
    differ: see the module docstring).
    """
    q = _registry().Quantity
    src, dst = parse_units(from_units), parse_units(to_units)
    one = q(1.0, src)
    try:
        bridge = _water_bridge(src, dst)
        if bridge is not None:
            return float((one * bridge).to(dst).magnitude), 0.0
        b = float(q(0.0, src).to(dst).magnitude)
        # With an offset (degF -> K), the slope from a wide span keeps its digits: f(1) - f(0)
        # loses about log10(b) of them.
        a = float(one.to(dst).magnitude) if b == 0.0 else (float(q(1.0e6, src).to(dst).magnitude) - b) / 1.0e6
    except Exception as e:  # pint's DimensionalityError, OffsetUnitCalculusError
        raise UnitsError(f"cannot convert units {from_units!r} to {to_units!r} ({type(e).__name__})") from None
    return a, b


def _water_bridge(src, dst):
    """Water's density (or its inverse) when ``src`` is a depth of water and ``dst`` a mass per
    area (or the reverse); None for any other pair."""
    ureg = _registry()
    length, per_area = ureg.parse_units("m").dimensionality, ureg.parse_units("kg m**-2").dimensionality
    density = ureg.Quantity(WATER_DENSITY, "kg m**-3")
    if src.dimensionality == length and dst.dimensionality == per_area:
        return density
    if src.dimensionality == per_area and dst.dimensionality == length:
        return 1.0 / density
    return None


def convert_units(values, from_units: str, to_units: str, where: str):
    """``values`` in ``from_units`` expressed in ``to_units`` (numpy, xarray or dask: stays lazy).

    ``where`` ("file, column") leads the error message when the units are
    unknown or cannot be converted. Identical units return ``values`` itself.
    """
    try:
        a, b = affine_conversion(str(from_units).strip(), str(to_units).strip())
    except UnitsError as e:
        raise UnitsError(f"{where}: {e}") from None
    if a == 1.0 and b == 0.0:
        return values
    inverse = 1.0 / a
    # Divide when the factor is the inverse of a whole number (% -> 1 is x / 100): the
    # product with 0.01 would round differently from the division users expect.
    scaled = values / round(inverse) if a < 1.0 and abs(inverse - round(inverse)) < 1e-9 * inverse else values * a
    return scaled + b if b != 0.0 else scaled
