"""Area weights of the grids forecasts come on, the WeatherBench2 way.

Two layouts are understood:

- a latitude/longitude grid, dims ``(latitude, longitude)`` in degrees,
  latitude in either order;
- an equal-area HEALPix grid, one dim ``cell`` with 1-D ``latitude(cell)`` and
  ``longitude(cell)`` coordinates in degrees.

Weights are proportional to cell area and normalised to mean 1, so a weighted
mean is the area mean and a region is a 0/1 (or fractional) factor on them.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

LATLON_DIMS = ("latitude", "longitude")
HEALPIX_DIM = "cell"


def spatial_dims(x: xr.DataArray | xr.Dataset) -> tuple[str, ...]:
    """The spatial dims of ``x``: ``(latitude, longitude)`` or ``(cell,)``."""
    if HEALPIX_DIM in x.dims:
        return (HEALPIX_DIM,)
    if all(d in x.dims for d in LATLON_DIMS):
        return LATLON_DIMS
    raise ValueError(f"scoring: cannot find the spatial dims of data with dims {tuple(x.dims)}; expected "
                     f"(latitude, longitude) for a lat-lon grid or ({HEALPIX_DIM},) with latitude/longitude coords "
                     "for HEALPix")


def latitude_cell_bounds(lat_rad: np.ndarray) -> np.ndarray:
    """Cell edges of an ascending latitude axis (radians), shape (n + 1,): the
    midpoints between neighbours, and the poles at both ends (as WB2 does)."""
    half_pi = np.array([np.pi / 2], dtype=np.float64)
    return np.concatenate([-half_pi, (lat_rad[:-1] + lat_rad[1:]) / 2, half_pi])


def latitude_weights(latitude: xr.DataArray) -> xr.DataArray:
    """WB2's latitude weights of a latitude axis (degrees): ``sin(upper) - sin(lower)``
    of each cell's edges, normalised to mean 1. Shape (n_lat,), same order as given.

    Edges lie midway between neighbouring latitudes (any spacing, e.g. Gaussian);
    the cells at the ends reach the poles.
    """
    values = np.asarray(latitude.values, dtype=np.float64)
    if len(values) < 2:
        raise ValueError(f"latitude_weights: need at least two latitudes, got {len(values)}")
    if np.any(np.abs(values) > 90.0) or not np.all(np.isfinite(values)):
        raise ValueError(f"latitude_weights: latitudes must be finite and within [-90, 90] degrees, "
                         f"got {values.min()} .. {values.max()}")
    order = np.argsort(values)
    lat = np.radians(values[order])
    if np.any(np.diff(lat) <= 0):
        raise ValueError(f"latitude_weights: latitudes must be distinct, got {len(values)} with "
                         f"{len(values) - len(np.unique(values))} repeated")
    bounds = latitude_cell_bounds(lat)
    sorted_w = np.sin(bounds[1:]) - np.sin(bounds[:-1])
    w = np.empty_like(sorted_w)
    w[order] = sorted_w
    name = latitude.name or "latitude"
    return xr.DataArray(w / w.mean(), coords={name: latitude.values}, dims=[name])


def area_weights(x: xr.DataArray | xr.Dataset) -> xr.DataArray:
    """Area weights over the spatial dims of ``x``, mean 1: latitude weights on a
    lat-lon grid (constant along longitude), equal weights on HEALPix."""
    dims = spatial_dims(x)
    if dims == (HEALPIX_DIM,):
        return xr.DataArray(np.ones(x.sizes[HEALPIX_DIM]), dims=dims, coords={
            c: x[c] for c in ("latitude", "longitude") if c in x.coords and x[c].dims == dims})
    w = latitude_weights(x["latitude"])
    return w.broadcast_like(x["longitude"]).transpose(*LATLON_DIMS)


def point_coordinates(x: xr.DataArray | xr.Dataset) -> tuple[xr.DataArray, xr.DataArray]:
    """Latitude and longitude (degrees; longitude in [0, 360)) of every point of the
    spatial dims of ``x``, each with exactly those dims."""
    dims = spatial_dims(x)
    if dims == (HEALPIX_DIM,):
        for c in ("latitude", "longitude"):
            if c not in x.coords or x[c].dims != dims:
                raise ValueError(f"scoring: HEALPix data needs a 1-D {c}({HEALPIX_DIM}) coordinate")
        lat, lon = x["latitude"], x["longitude"]
    else:
        lat, lon = xr.broadcast(x["latitude"], x["longitude"])
        lat, lon = lat.transpose(*dims), lon.transpose(*dims)
    return lat.astype(np.float64), (lon.astype(np.float64) % 360.0)
