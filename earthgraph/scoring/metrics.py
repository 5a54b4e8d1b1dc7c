"""Deterministic metrics with WeatherBench2's definitions.

Every metric is a spatial average per forecast (per initialisation time and
lead), then a mean over initialisation times (dim ``time``), as WB2 computes
them; RMSE is the square root of the time-mean MSE (the root after the time
mean). Forecast and truth share the WB2 forecast layout
``(time, prediction_timedelta, [level,] <spatial dims>)``, the truth valid at
``time + prediction_timedelta``.

Each returns the forecast's dims less ``time`` and the spatial dims, e.g.
``(prediction_timedelta[, level])``.

``weights`` are the area weights times a region factor over the spatial dims
(:func:`region_weights`). As in WB2, points of zero weight are set to zero
before averaging, so a NaN outside the region never reaches its score; inside
it a NaN makes the score NaN unless ``skipna`` (then the weights are
renormalised over the valid points). Fields that exist only over land or ocean
are scored by giving the points without truth zero weight
(``evaluation.score_forecast``), so a NaN forecast still counts.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from earthgraph.scoring.areas import area_weights, spatial_dims
from earthgraph.scoring.regions import Region

TIME_DIM = "time"


def region_weights(x: xr.DataArray | xr.Dataset, region: Region | None = None) -> xr.DataArray:
    """Area weights (mean 1 over the grid) times the region's factor."""
    w = area_weights(x)
    return w if region is None else w * region.weights(x)


def spatial_average(x: xr.DataArray, weights: xr.DataArray, skipna: bool = False) -> xr.DataArray:
    """Weighted mean of ``x`` over its spatial dims (WB2's ``_spatial_average``)."""
    x = x.where(weights > 0, 0.0)
    return x.weighted(weights).mean(spatial_dims(x), skipna=skipna)


def time_mean(x: xr.DataArray, skipna: bool = False, scored: xr.DataArray | None = None) -> xr.DataArray:
    """Mean over initialisation times; with ``scored`` ((time, prediction_timedelta) bool,
    see ``baselines.verification_pairs``) over each lead's verified times only (a NaN
    at a verified pair still makes the mean NaN unless ``skipna``)."""
    if scored is None:
        return x.mean(TIME_DIM, skipna=skipna)
    if skipna:
        return x.where(scored).mean(TIME_DIM, skipna=True)
    return x.where(scored, 0.0).sum(TIME_DIM, skipna=False) / scored.sum(TIME_DIM)


def mse(forecast: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray, skipna: bool = False,
        scored: xr.DataArray | None = None) -> xr.DataArray:
    """Mean squared error: ``mean_t <(f - o)^2>``."""
    return time_mean(spatial_average((forecast - truth) ** 2, weights, skipna), skipna, scored)


def rmse(forecast: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray, skipna: bool = False,
         scored: xr.DataArray | None = None) -> xr.DataArray:
    """Root mean squared error, the root taken after the time mean: ``sqrt(mse)``."""
    return np.sqrt(mse(forecast, truth, weights, skipna, scored))


def bias(forecast: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray, skipna: bool = False,
         scored: xr.DataArray | None = None) -> xr.DataArray:
    """Mean error, forecast minus truth: ``mean_t <f - o>``."""
    return time_mean(spatial_average(forecast - truth, weights, skipna), skipna, scored)


def mae(forecast: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray, skipna: bool = False,
        scored: xr.DataArray | None = None) -> xr.DataArray:
    """Mean absolute error: ``mean_t <|f - o|>``."""
    return time_mean(spatial_average(abs(forecast - truth), weights, skipna), skipna, scored)


def acc(forecast: xr.DataArray, truth: xr.DataArray, climatology: xr.DataArray, weights: xr.DataArray,
        skipna: bool = False, scored: xr.DataArray | None = None) -> xr.DataArray:
    """Uncentred anomaly correlation, per forecast then averaged over time:
    ``mean_t <f'o'> / sqrt(<f'^2> <o'^2>)`` with ``f' = f - c``, ``o' = o - c`` and
    ``c`` the climatology valid at the same time (same layout as the truth)."""
    fa, oa = forecast - climatology, truth - climatology
    both = fa.notnull() & oa.notnull() if skipna else True
    fa, oa = fa.where(both), oa.where(both)  # the three means over the same points
    num = spatial_average(fa * oa, weights, skipna)
    den = np.sqrt(spatial_average(fa ** 2, weights, skipna) * spatial_average(oa ** 2, weights, skipna))
    return time_mean(num / den, skipna, scored)


def wind_vector_mse(u_forecast: xr.DataArray, v_forecast: xr.DataArray, u_truth: xr.DataArray,
                    v_truth: xr.DataArray, weights: xr.DataArray, skipna: bool = False,
                    scored: xr.DataArray | None = None) -> xr.DataArray:
    """Mean squared length of the vector error: ``mean_t <(du)^2 + (dv)^2>``."""
    return time_mean(spatial_average((u_forecast - u_truth) ** 2 + (v_forecast - v_truth) ** 2, weights, skipna),
                     skipna, scored)


def wind_vector_rmse(u_forecast: xr.DataArray, v_forecast: xr.DataArray, u_truth: xr.DataArray,
                     v_truth: xr.DataArray, weights: xr.DataArray, skipna: bool = False,
                     scored: xr.DataArray | None = None) -> xr.DataArray:
    """Wind-vector RMSE, the root after the time mean (m s-1 for winds in m s-1)."""
    return np.sqrt(wind_vector_mse(u_forecast, v_forecast, u_truth, v_truth, weights, skipna, scored))


def spatial_variance(x: xr.DataArray, weights: xr.DataArray, skipna: bool = False) -> xr.DataArray:
    """Weighted variance of ``x`` over its spatial dims, per forecast."""
    return spatial_average((x - spatial_average(x, weights, skipna)) ** 2, weights, skipna)


def variance_ratio(forecast: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray, skipna: bool = False,
                   scored: xr.DataArray | None = None) -> xr.DataArray:
    """Spatial variance of the forecast over the truth's, each averaged over time first:
    ``mean_t var(f) / mean_t var(o)``. 1 for a forecast as varied in space as the truth;
    below 1 for a smoothed one, which an RMSE can reward (the oversmoothing check)."""
    return (time_mean(spatial_variance(forecast, weights, skipna), skipna, scored)
            / time_mean(spatial_variance(truth, weights, skipna), skipna, scored))


DETERMINISTIC = {"mse": mse, "rmse": rmse, "bias": bias, "mae": mae, "variance_ratio": variance_ratio}
