"""Checks and alignment of WB2-layout inputs before they are scored.

A forecast has dims ``(time, prediction_timedelta, [level,] [realization,] <spatial
dims>)`` with ``time`` the initialisation time; a truth ``(time, [level,] <spatial
dims>)``; a climatology ``(hour, dayofyear, [level,] <spatial dims>)``. Every check
raises a ValueError naming the input (``source``: its role and path) and the field:
coordinates that are not numbers, out of range, repeated or NaT, times in a zone
that decoding would ignore, a grid the truth does not have, values that are not real
numbers, units that differ. Data in another order (descending latitudes, longitudes
in [-180, 180)) is put in the canonical one (:func:`normalise_grid`).
"""

from __future__ import annotations

import re

import numpy as np
import xarray as xr

from earthgraph.scoring.areas import spatial_dims
from earthgraph.scoring.sources import value_label


def check_forecast_layout(forecast: xr.Dataset, source: str) -> None:
    """Raise a ValueError naming ``source`` unless ``forecast`` is in the WB2 forecast layout."""
    for dim in ("time", "prediction_timedelta"):
        if dim not in forecast.dims:
            raise ValueError(f"{source}: a WB2 forecast needs a {dim!r} dim; it has {tuple(forecast.dims)}")
    if not np.issubdtype(forecast.prediction_timedelta.dtype, np.timedelta64):
        raise ValueError(f"{source}: prediction_timedelta must be timedelta64, got "
                         f"{forecast.prediction_timedelta.dtype}")
    _spatial_dims(forecast, source)


def normalise_grid(ds: xr.Dataset, source: str = "data") -> xr.Dataset:
    """``ds`` after :func:`check_coordinates` (``source`` names it in errors), with
    longitudes in [0, 360), latitude and longitude ascending (lat-lon grids; HEALPix as
    is), and ``time`` and ``prediction_timedelta`` ascending: data in any order gives the
    scores of the same data in order, never values moved to other places or times."""
    check_coordinates(ds, source)
    order = [d for d in ("time", "prediction_timedelta") if d in ds.indexes]
    if _spatial_dims(ds, source) == ("latitude", "longitude"):
        ds = ds.assign_coords(longitude=ds.longitude % 360.0)
        order += ["latitude", "longitude"]
    if all((np.diff(ds[c].values) > 0).all() for c in order):
        return ds  # already in order: no reindexing of lazily opened (dask) data
    return ds.sortby(order)


# A time reference after "since" that xarray decodes exactly: a date, a time, and UTC or
# an offset from it; a zone name (CET, EST, Europe/Paris) it ignores, reading local times as UTC.
_REFERENCE = re.compile(r"\s*-?\d{1,4}-\d{1,2}-\d{1,2}([ T]\d{1,2}(:\d{1,2}(:\d{1,2}(\.\d+)?)?)?)?"
                        r"\s*(Z|UTC|GMT|[+-]\d{1,2}(:?\d{2})?)?\s*", re.IGNORECASE)
# Coordinates that index what is scored: a repeated value would be scored twice or read
# at another row's place.
_UNIQUE = ("time", "prediction_timedelta", "level", "hour", "dayofyear")
# The axes scoring indexes by value: each needs its coordinate and at least one value.
_AXES = ("time", "prediction_timedelta", "latitude", "longitude", "level", "hour", "dayofyear")


def _first_repeat(values: np.ndarray):
    """The first value of ``values`` that occurs more than once, or None."""
    uniq, counts = np.unique(values, return_counts=True)
    return uniq[counts > 1][0] if (counts > 1).any() else None


def _check_numeric(coord: xr.DataArray, name: str, source: str) -> np.ndarray:
    """``coord``'s values as float64 after checking they are real, finite numbers."""
    values = np.asarray(coord.values)
    if values.dtype.kind not in "iuf":
        raise ValueError(f"{source}: coordinate {name!r} must hold numbers, it holds {values.dtype} "
                         f"(e.g. {values.ravel()[:1].tolist()})")
    values = values.astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"{source}: coordinate {name!r} holds {int(bad.sum())} non-finite value(s) "
                         f"({values[bad][0]}) at index {int(np.flatnonzero(bad.ravel())[0])}")
    return values


def _check_times(coord: xr.DataArray, name: str, source: str, kind: str) -> None:
    """Raise unless ``coord`` holds datetimes (``kind`` 'M') or timedeltas ('m'), none NaT,
    and a datetime's stored units name no time zone that decoding would ignore."""
    values = np.asarray(coord.values)
    if values.dtype.kind != kind:
        want = "datetimes" if kind == "M" else "timedeltas"
        example = values.ravel()[:1].tolist()
        calendar = coord.encoding.get("calendar") or coord.attrs.get("calendar")
        raise ValueError(f"{source}: coordinate {name!r} must hold {want}, it holds {values.dtype} (e.g. {example}"
                         f"{f', calendar {calendar!r}' if calendar else ''}); store CF-encoded {want} "
                         "(units 'hours since 2020-01-01', the standard calendar)")
    missing = np.isnat(values)
    if missing.any():
        raise ValueError(f"{source}: coordinate {name!r} holds {int(missing.sum())} missing value(s) (NaT), first "
                         f"at index {int(np.flatnonzero(missing.ravel())[0])}")
    units = coord.encoding.get("units")
    if kind == "M" and isinstance(units, str) and " since " in units:
        if not _REFERENCE.fullmatch(units.split(" since ", 1)[1]):
            raise ValueError(f"{source}: coordinate {name!r} has units {units!r}: its reference time has a time zone "
                             "name or text that decoding ignores (the times would be read as UTC); give a UTC "
                             "offset (+05:00) or UTC")


def check_coordinates(ds: xr.Dataset, source: str) -> None:
    """Raise a ValueError naming ``source``, the coordinate and an offending value unless
    the coordinates scoring reads are usable: latitude and longitude finite numbers,
    latitudes within [-90, 90] and, on a lat-lon grid, no point twice (longitudes compared
    modulo 360); ``time`` datetimes and ``prediction_timedelta`` timedeltas, none NaT;
    ``level``, ``hour`` (0..23) and ``dayofyear`` (1..366) numbers; none of
    ``time``, ``prediction_timedelta``, ``level``, ``hour``, ``dayofyear`` repeating a
    value (a duplicated row); and each of these axes, when a dim, with its coordinate and
    not empty."""
    for name in _AXES:
        if name in ds.dims and name not in ds.coords:  # its array is missing: positions, not values
            raise ValueError(f"{source}: dim {name!r} has no coordinate values (its array is missing)")
        if name in ds.dims and ds.sizes[name] == 0:
            raise ValueError(f"{source}: its {name} axis is empty")
    latlon = "latitude" in ds.dims and "longitude" in ds.dims
    for name in ("latitude", "longitude"):
        if name not in ds.coords:
            continue
        values = _check_numeric(ds[name], name, source)
        if name == "latitude" and (np.abs(values) > 90).any():
            i = int(np.flatnonzero(np.abs(values.ravel()) > 90)[0])
            raise ValueError(f"{source}: latitude {values.ravel()[i]:g} at index {i} is outside [-90, 90] degrees")
        if latlon:
            repeat = _first_repeat(values % 360.0 if name == "longitude" else values)
            if repeat is not None:
                raise ValueError(f"{source}: {name} {repeat:g} occurs more than once"
                                 f"{' (longitudes modulo 360)' if name == 'longitude' else ''}")
    if "time" in ds.coords:
        _check_times(ds["time"], "time", source, "M")
    if "prediction_timedelta" in ds.coords:
        _check_times(ds["prediction_timedelta"], "prediction_timedelta", source, "m")
    for name, low, high in (("level", -np.inf, np.inf), ("hour", 0, 23), ("dayofyear", 1, 366)):
        if name in ds.coords:
            values = _check_numeric(ds[name], name, source)
            off = (values < low) | (values > high) | ((values != np.round(values)) & (name != "level"))
            if off.any():
                raise ValueError(f"{source}: {name} {values[off][0]:g} is not a whole number in {low} .. {high}")
    for name in _UNIQUE:
        if name in ds.dims and name in ds.coords:
            repeat = _first_repeat(np.asarray(ds[name].values))
            if repeat is not None:
                raise ValueError(f"{source}: {name} {value_label(repeat)} occurs more than once (a repeated row)")


def _spatial_dims(ds: xr.Dataset, source: str) -> tuple[str, ...]:
    """:func:`~earthgraph.scoring.areas.spatial_dims`, its error naming ``source``."""
    try:
        return spatial_dims(ds)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


def on_truth_grid(data: xr.Dataset, truth: xr.Dataset, source: str, truth_source: str) -> xr.Dataset:
    """``data`` (a forecast or climatology, grid normalised) with the truth's exact
    coordinates, after checking that it is on the truth's grid (to 1e-6 degrees;
    WB2 scores on one grid: regrid first)."""
    fdims, tdims = _spatial_dims(data, source), _spatial_dims(truth, truth_source)
    if fdims != tdims:
        raise ValueError(f"{source}: spatial dims {fdims} differ from {truth_source}'s {tdims}")
    for c in ("latitude", "longitude"):
        f, t = np.asarray(data[c].values, float), np.asarray(truth[c].values, float)
        if f.shape != t.shape:
            raise ValueError(f"{source}: {f.size} {c} values, {truth_source} has {t.size}; regrid the data to "
                             "the truth's grid first")
        off = np.flatnonzero(~np.isclose(f, t, rtol=0, atol=1e-6))
        if len(off):
            i = off[0]
            raise ValueError(f"{source}: its {c} differs from {truth_source}'s at index {i} ({f[i]:g} against "
                             f"{t[i]:g}); regrid the data to the truth's grid first")
    return data.assign_coords({c: truth[c] for c in ("latitude", "longitude") if truth[c].dims == data[c].dims})


def check_numbers(ds: xr.Dataset, variables: list[str], source: str) -> None:
    """Raise a ValueError naming ``source`` and the variable unless each of ``variables``
    holds real numbers (strings, times, booleans and complex numbers have no error to square)."""
    for v in variables:
        if ds[v].dtype.kind not in "iuf":
            raise ValueError(f"{source}: variable {v!r} must hold real numbers, it holds {ds[v].dtype}")


def scored_variables(forecast: xr.Dataset, truth: xr.Dataset, source: str, truth_source: str,
                     variables: list[str] | None = None) -> list[str]:
    """The variables to score: ``variables``, or every time-dependent variable both have.

    Unknown names, values that are not real numbers and differing ``units`` attributes
    raise, naming the file."""
    both = [v for v in forecast.data_vars if v in truth.data_vars and "time" in truth[v].dims]
    if variables is not None:
        for v in variables:
            for src, ds in ((source, forecast), (truth_source, truth)):
                if v not in ds.data_vars:
                    raise ValueError(f"{src}: no variable {v!r}; it has {sorted(map(str, ds.data_vars))}")
        both = list(variables)
    if not both:
        raise ValueError(f"{source} and {truth_source} share no variable to score")
    check_numbers(forecast, both, source)
    check_numbers(truth, both, truth_source)
    for v in both:
        fu, tu = forecast[v].attrs.get("units"), truth[v].attrs.get("units")
        if fu is not None and tu is not None and fu != tu:
            raise ValueError(f"{source}: variable {v!r} is in {fu!r}, {truth_source} in {tu!r}; convert first")
    return both
