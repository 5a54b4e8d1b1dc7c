"""Gridded forecasts at stations: nearest or bilinear interpolation, optionally
adjusted for the height difference between the model surface and the station.

The forecast is a WB2-layout dataset on a lat-lon grid, dims ``(time,
prediction_timedelta, [realization,] latitude, longitude)`` (any order; other
dims are kept), normalised as by ``layout.normalise_grid`` (latitude
ascending, longitude ascending in [0, 360)). Stations are given in degrees, any
longitude convention. Interpolation is in latitude-longitude degrees:

- ``nearest``: the grid point whose row and column are nearest in degrees.
- ``bilinear``: the four points around the station. Periodic in longitude (a
  station at 359.9 deg or -0.1 deg uses the 0 deg column on a global grid);
  beyond the outermost latitude rows the outermost row is used. A field that
  exists on one surface only (SST, NaN over land) is taken from the corners that
  have a value, with the weights renormalised over them, and is NaN when the
  nearest corner is NaN: the station sees the surface under it, the rule of
  ``earthgraph.data.observing.TruthSampler``.

On a regional grid (longitudes not closing around the globe) stations outside
its longitude span get NaN. The work is xarray vectorised indexing with
DataArray indexers, so a dask-backed forecast stays lazy.

Altitude adjustment (given the model surface height, :func:`surface_height`):
with ``dz = station elevation - model surface height at the station`` (m),

- temperatures (``temperature_variables``) get ``- lapse_rate * dz`` (standard
  6.5 K/km: a station 1000 m above the model surface is 6.5 K colder);
- wind speeds (``wind_speed_variables``, default ``10m_wind_speed``) are
  multiplied by ``1 + 0.002 (dz - 100)`` for ``100 <= dz < 1100`` m and by 3 above,
  as WeatherBench-X does after ECMWF's verification practice: exposed stations
  above the smoothed model orography see stronger winds than the model's
  surface. Wind *components* are not adjusted: the correction is an empirical
  one for speed at exposed sites, with no counterpart for direction, and
  scaling a small cross-wind component by up to 3 would amplify noise rather
  than correct a bias.

Where ``|dz|`` exceeds ``max_height_difference`` (1500 m by default, as in
WeatherBench-X; such differences usually come from station elevations in the
wrong unit) or the station elevation is unknown, no adjustment is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.scoring.station_obs import station_table

Method = Literal["nearest", "bilinear"]
GRAVITY = 9.80665  # m s-2, WMO standard gravity: geopotential / g = height
STANDARD_LAPSE_RATE = 6.5e-3  # K m-1, the ICAO standard atmosphere's
TEMPERATURE_VARIABLES = ("air_temperature", "2m_temperature")
WIND_SPEED_VARIABLES = ("10m_wind_speed",)
MAX_HEIGHT_DIFFERENCE = 1500.0  # m
HEIGHT_VARIABLES = ("surface_height", "orography", "geopotential_height_at_surface")  # in m
CORNER = "corner"


class PointInterpolationError(ValueError):
    """A forecast or station set that cannot be interpolated; the message says why."""


def _latitude_stencil(grid: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (j0, j1) around each latitude and the weight of j1; clamped at the outermost rows."""
    n = len(grid)
    if n == 1:
        zero = np.zeros(len(lat), dtype=np.int64)
        return zero, zero, np.zeros(len(lat))
    j1 = np.clip(np.searchsorted(grid, lat, side="right"), 1, n - 1)
    j0 = j1 - 1
    return j0, j1, np.clip((lat - grid[j0]) / (grid[j1] - grid[j0]), 0.0, 1.0)


def _longitude_stencil(grid: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Columns (i0, i1) around each longitude (periodic), the weight of i1, and whether
    the station lies inside the grid (False in the gap of a regional grid)."""
    n = len(grid)
    x = np.mod(lon, 360.0)
    if n == 1:
        zero = np.zeros(len(lon), dtype=np.int64)
        return zero, zero, np.zeros(len(lon)), np.isclose(x, grid[0])
    i1 = np.searchsorted(grid, x, side="right")
    left = np.where(i1 > 0, grid[np.maximum(i1 - 1, 0)], grid[-1] - 360.0)
    right = np.where(i1 < n, grid[np.minimum(i1, n - 1)], grid[0] + 360.0)
    # A global grid closes with a gap like its other spacings; a regional one does not.
    wrap = grid[0] + 360.0 - grid[-1]
    closes = wrap <= 1.5 * np.max(np.diff(grid)) + 1e-9
    inside = np.ones(len(lon), dtype=bool) if closes else (i1 > 0) & (i1 < n) | np.isin(x, grid)
    return (i1 - 1) % n, i1 % n, (x - left) / (right - left), inside


def stencil(grid_lat: np.ndarray, grid_lon: np.ndarray, lat: np.ndarray, lon: np.ndarray,
            method: Method) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray, xr.DataArray, np.ndarray]:
    """The grid points each station is interpolated from.

    grid_lat, grid_lon: the grid's ascending axes (degrees; longitudes in [0, 360)).
    lat, lon: (station,) degrees. Returns ``rows, cols`` (station, corner) int
    indexers, ``weights`` (station, corner), ``nearest`` (station, corner) bool (the
    corner nearest the station) and ``inside`` (station,) bool. ``corner`` has 4
    entries for bilinear, 1 for nearest.
    """
    j0, j1, wy = _latitude_stencil(np.asarray(grid_lat, np.float64), np.asarray(lat, np.float64))
    i0, i1, wx, inside = _longitude_stencil(np.asarray(grid_lon, np.float64), np.asarray(lon, np.float64))
    # Ties go to the lower index, as TruthSampler's nearest corner.
    near_row, near_col = wy >= 0.5, wx >= 0.5
    if method == "nearest":
        rows = np.where(near_row, j1, j0)[:, None]
        cols = np.where(near_col, i1, i0)[:, None]
        weights = np.ones_like(rows, dtype=np.float64)
        nearest = np.ones_like(rows, dtype=bool)
    elif method == "bilinear":
        rows = np.stack([j0, j0, j1, j1], axis=1)
        cols = np.stack([i0, i1, i0, i1], axis=1)
        weights = np.stack([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx], axis=1)
        nearest = np.arange(4)[None, :] == (2 * near_row + near_col)[:, None]
    else:
        raise PointInterpolationError(f"interpolation method must be 'nearest' or 'bilinear', got {method!r}")
    dims = ("station", CORNER)
    return (xr.DataArray(rows, dims=dims), xr.DataArray(cols, dims=dims), xr.DataArray(weights, dims=dims),
            xr.DataArray(nearest, dims=dims), inside)


def interpolate_field(field: xr.DataArray, rows: xr.DataArray, cols: xr.DataArray, weights: xr.DataArray,
                      nearest: xr.DataArray, inside: np.ndarray) -> xr.DataArray:
    """``field`` (..., latitude, longitude) at stations: (..., station), lazy for dask.

    The finite corners are averaged with their weights renormalised; NaN where the
    nearest corner is not finite or the station is outside the grid."""
    corners = field.isel(latitude=rows, longitude=cols).drop_vars(["latitude", "longitude"], errors="ignore")
    finite = np.isfinite(corners)
    w = weights.where(finite, 0.0)
    total = w.sum(CORNER)
    value = (w * corners.where(finite, 0.0)).sum(CORNER) / total.where(total > 0)
    keep = (finite & nearest).any(CORNER) & xr.DataArray(inside, dims="station")
    order = [d for d in field.dims if d != "longitude"]
    return value.where(keep).transpose(*["station" if d == "latitude" else d for d in order])


def surface_height(static: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """Model surface height in m over (latitude, longitude): ``geopotential_at_surface``
    (m2 s-2) / g, or a height field in m (``surface_height``, ``orography``, ...) or a
    DataArray already in m; any ``time`` dim is dropped (the first time is taken)."""
    if isinstance(static, xr.DataArray):
        height = static
    elif "geopotential_at_surface" in static:
        height = static["geopotential_at_surface"] / GRAVITY
    else:
        name = next((v for v in HEIGHT_VARIABLES if v in static), None)
        if name is None:
            raise PointInterpolationError(f"no surface height: need 'geopotential_at_surface' or one of "
                                          f"{list(HEIGHT_VARIABLES)}; the dataset has {sorted(map(str, static))}")
        height = static[name]
    if "time" in height.dims:
        height = height.isel(time=0, drop=True)
    extra = [d for d in height.dims if d not in ("latitude", "longitude")]
    if extra or height.ndim != 2:
        raise PointInterpolationError(f"surface height must have dims (latitude, longitude), has {height.dims}")
    height = height.assign_coords(longitude=height.longitude % 360.0).sortby(["latitude", "longitude"])
    return height.astype(np.float64).rename("surface_height")


def _height_difference(model_height: xr.DataArray, elevation: np.ndarray, max_difference: float) -> xr.DataArray:
    """Station elevation minus model surface height (station,), 0 where unknown or too large."""
    dz = xr.DataArray(elevation, dims="station") - model_height
    return dz.where(np.isfinite(dz) & (abs(dz) <= max_difference), 0.0)


def wind_speed_factor(dz: xr.DataArray) -> xr.DataArray:
    """Multiplier of wind speed for a station ``dz`` m above the model surface:
    1 below 100 m, ``1 + 0.002 (dz - 100)`` up to 1100 m, 3 beyond (continuous)."""
    return xr.where(dz < 100.0, 1.0, xr.where(dz < 1100.0, 1.0 + 0.002 * (dz - 100.0), 3.0))


def _check_grid(forecast: xr.Dataset, height: xr.DataArray | None) -> None:
    for d in ("latitude", "longitude"):
        if d not in forecast.dims:
            raise PointInterpolationError(f"forecast has no {d!r} dim (dims {tuple(forecast.dims)}); station "
                                          "interpolation needs a lat-lon grid")
        values = forecast[d].values
        if len(values) > 1 and not np.all(np.diff(values) > 0):
            raise PointInterpolationError(f"forecast {d} must be strictly ascending; use layout.normalise_grid")
    lon = forecast.longitude.values
    if lon.min() < 0 or lon.max() >= 360.0:
        raise PointInterpolationError("forecast longitudes must lie in [0, 360); use layout.normalise_grid")
    if height is not None:
        for d in ("latitude", "longitude"):
            a, b = height[d].values, forecast[d].values
            if a.shape != b.shape or not np.allclose(a, b, atol=1e-6):
                raise PointInterpolationError(f"surface height's {d} differs from the forecast's grid")


def interpolate_to_stations(forecast: xr.Dataset, stations: xr.Dataset | pd.DataFrame, method: Method = "bilinear",
                            height: xr.DataArray | None = None,
                            temperature_variables: Sequence[str] = TEMPERATURE_VARIABLES,
                            wind_speed_variables: Sequence[str] = WIND_SPEED_VARIABLES,
                            lapse_rate: float = STANDARD_LAPSE_RATE,
                            max_height_difference: float = MAX_HEIGHT_DIFFERENCE) -> xr.Dataset:
    """Every (latitude, longitude) variable of ``forecast`` at the stations.

    stations: a station dataset (``station_obs``) or table (``station_table``).
    height: model surface height in m on the forecast grid (:func:`surface_height`);
        given, temperatures and wind speeds are altitude-adjusted (module docstring),
        which needs station elevations.
    lapse_rate: K m-1, positive (temperature falls with height).
    Returns dims (..., station) in place of (latitude, longitude), coords ``station``,
    ``latitude``/``longitude`` (the stations', degrees as given), ``elevation`` (m)
    when known and, with ``height``, ``model_surface_height`` (m).
    """
    _check_grid(forecast, height)
    where = station_table(stations)
    rows, cols, weights, nearest, inside = stencil(forecast.latitude.values, forecast.longitude.values,
                                                   where.latitude.to_numpy(), where.longitude.to_numpy(), method)
    gridded = [v for v in forecast.data_vars if {"latitude", "longitude"} <= set(forecast[v].dims)]
    if not gridded:
        raise PointInterpolationError(f"forecast has no variable on (latitude, longitude): {list(forecast.data_vars)}")
    out = xr.Dataset({v: interpolate_field(forecast[v], rows, cols, weights, nearest, inside) for v in gridded})
    for v in gridded:
        out[v].attrs = dict(forecast[v].attrs)
    elevation = where.elevation.to_numpy(np.float64)
    coords = {"station": where.index.to_numpy(), "latitude": ("station", where.latitude.to_numpy()),
              "longitude": ("station", where.longitude.to_numpy())}
    if np.isfinite(elevation).any():
        coords["elevation"] = ("station", elevation)
    if height is not None:
        if not np.isfinite(elevation).any():
            raise PointInterpolationError("altitude adjustment needs station elevations; the stations have none")
        model = interpolate_field(height, rows, cols, weights, nearest, inside).load()
        coords["model_surface_height"] = ("station", model.values)
        dz = _height_difference(model, elevation, max_height_difference)
        for v in gridded:
            if v in temperature_variables:
                out[v] = (out[v] - lapse_rate * dz).assign_attrs(out[v].attrs, altitude_adjusted="lapse rate")
            elif v in wind_speed_variables:
                out[v] = (out[v] * wind_speed_factor(dz)).assign_attrs(out[v].attrs, altitude_adjusted="exposure")
    out = out.assign_coords(coords)
    out.attrs.update({"interpolation": method, "altitude_adjusted": int(height is not None)})
    return out
