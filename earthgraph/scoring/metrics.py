"""Metrics with WeatherBench2's definitions.

- Latitude weights are proportional to cell area on an equiangular grid,
  ``sin(lat + dlat/2) - sin(lat - dlat/2)``, normalised to mean 1 over latitude.
- RMSE: the area-weighted spatial mean of the squared error, averaged over
  initialisation times, then the square root (WB2 takes the root after the
  time mean).

Points where forecast or truth is NaN (land for SST, ocean for soil moisture)
are left out of the spatial mean: the weights are renormalised over the valid
points of each field.
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def latitude_weights(latitude: xr.DataArray) -> xr.DataArray:
    """Area weights of an equiangular latitude axis (degrees), mean 1."""
    lat = np.radians(latitude.values.astype(np.float64))
    if len(lat) < 2:
        raise ValueError(f"latitude_weights: need at least two latitudes, got {len(lat)}")
    dlat = np.abs(np.diff(lat)).mean()
    upper = np.clip(lat + dlat / 2, -np.pi / 2, np.pi / 2)
    lower = np.clip(lat - dlat / 2, -np.pi / 2, np.pi / 2)
    w = np.sin(upper) - np.sin(lower)
    return xr.DataArray(w / w.mean(), coords={latitude.name: latitude}, dims=[latitude.name])


def spatial_mean(x: xr.DataArray, weights: xr.DataArray | None = None,
                 dims: tuple[str, str] = ("latitude", "longitude")) -> xr.DataArray:
    """Area-weighted mean over ``dims``, skipping NaN points."""
    if weights is None:
        weights = latitude_weights(x[dims[0]])
    w = weights.broadcast_like(x).where(x.notnull())
    return (x * w).sum(dims) / w.sum(dims)


def mse(forecast: xr.DataArray, truth: xr.DataArray, time_dim: str = "time") -> xr.DataArray:
    """Area-weighted mean squared error, averaged over ``time_dim``."""
    return spatial_mean((forecast - truth) ** 2).mean(time_dim)


def rmse(forecast: xr.DataArray, truth: xr.DataArray, time_dim: str = "time") -> xr.DataArray:
    """WB2 RMSE: square root of the time-mean of the area-weighted MSE."""
    return np.sqrt(mse(forecast, truth, time_dim))


def bias(forecast: xr.DataArray, truth: xr.DataArray, time_dim: str = "time") -> xr.DataArray:
    """Area-weighted mean of forecast minus truth, averaged over time."""
    return spatial_mean(forecast - truth).mean(time_dim)


def mae(forecast: xr.DataArray, truth: xr.DataArray, time_dim: str = "time") -> xr.DataArray:
    return spatial_mean(abs(forecast - truth)).mean(time_dim)


METRICS = {"rmse": rmse, "bias": bias, "mae": mae}
