"""Deterministic metrics with WeatherBench2's definitions.

Every metric is a spatial average per forecast (per initialisation time and
lead), then a mean over initialisation times (dim ``time``), as WB2 computes
them; RMSE is the square root of the time-mean MSE (the root after the time
mean). Forecast and truth share the WB2 forecast layout
``(time, prediction_timedelta, [level,] <spatial dims>)``, the truth valid at
``time + prediction_timedelta``.

Each returns the forecast's dims less ``time`` and the spatial dims, e.g.
``(prediction_timedelta[, level])``. The per-forecast terms they average
(:func:`spatial_average`, :func:`spatial_variance`, :func:`anomaly_correlation`) keep
``time``: they are what chunked scoring (``earthgraph.scoring.chunked``) accumulates
one chunk of initialisation times at a time before the same time means.

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
    """Weighted mean of ``x`` over its spatial dims (WB2's ``_spatial_average``).

    ``weights`` (>= 0) may carry dims of their own, such as ``region``: the result
    then has them too, one average per set of weights. Weights over the spatial
    dims and such dims only (no dim shared with ``x`` but the spatial ones) are
    averaged by one matrix product for all sets, the way scores of many regions
    are computed; any other weights take the elementwise route."""
    dims = spatial_dims(x)
    own = [d for d in weights.dims if d not in dims]
    if not any(d in x.dims for d in own):
        return _average_by_matmul(x, weights, dims, own, skipna)
    x = x.where(weights > 0, 0.0)
    return x.weighted(weights).mean(dims, skipna=skipna)


def _average_by_matmul(x: xr.DataArray, weights: xr.DataArray, dims: tuple[str, ...], own: list[str],
                       skipna: bool) -> xr.DataArray:
    """:func:`spatial_average` as ``(forecasts, points) @ (points, weight sets)``.

    Same definition: a point of zero weight never counts, a NaN of positive weight
    makes the average NaN unless ``skipna`` (then the weights are renormalised over
    the valid points), and a set whose weights sum to zero averages to NaN."""
    rest = [d for d in x.dims if d not in dims]
    npoints = int(np.prod([x.sizes[d] for d in dims]))
    values = x.transpose(*rest, *dims).values.reshape(-1, npoints)
    w = weights.transpose(*own, *dims).values.reshape(-1, npoints).astype(np.float64)
    w = np.where(w > 0, w, 0.0).T  # (points, sets)
    inside = (w > 0).astype(np.float64)

    def reaches(points: np.ndarray) -> np.ndarray:  # (forecasts, sets): any such point of positive weight
        return points.astype(np.float64) @ inside > 0

    finite = np.isfinite(values)
    # A product 0 * inf would be NaN: infinities are summed apart, and count only where weighted.
    num = np.where(finite, values, 0.0) @ w
    # Only the forecasts (rows) holding a NaN or an infinity can reach one: the others skip
    # those products (counts of 0/1 points, exact whichever rows they are computed with).
    odd = ~finite.all(axis=1)
    if odd.any():
        v = values[odd]
        high, low = reaches(v == np.inf), reaches(v == -np.inf)
        nan_inside = False if skipna else reaches(np.isnan(v))
        num[odd] = np.where(nan_inside, np.nan, np.where(high & low, np.nan,
                                                         np.where(high, np.inf, np.where(low, -np.inf, num[odd]))))
    if skipna:
        den = (~np.isnan(values)).astype(np.float64) @ w
    else:
        den = np.broadcast_to(w.sum(axis=0), num.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(den != 0, num / den, np.nan)
    shape = [x.sizes[d] for d in rest] + [weights.sizes[d] for d in own]
    coords = {k: c for k, c in x.coords.items() if set(c.dims) <= set(rest)}
    coords.update({k: c for k, c in weights.coords.items() if c.dims and set(c.dims) <= set(own)})
    return xr.DataArray(mean.reshape(shape), dims=rest + own, coords=coords)


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


def anomaly_correlation(forecast: xr.DataArray, truth: xr.DataArray, climatology: xr.DataArray,
                        weights: xr.DataArray, skipna: bool = False) -> xr.DataArray:
    """Uncentred anomaly correlation of each forecast (no time mean):
    ``<f'o'> / sqrt(<f'^2> <o'^2>)`` with ``f' = f - c``, ``o' = o - c`` and ``c`` the
    climatology valid at the same time (same layout as the truth). Dimensionless; dims
    of the forecast less the spatial ones (``time`` kept), plus those of ``weights``."""
    fa, oa = forecast - climatology, truth - climatology
    both = fa.notnull() & oa.notnull() if skipna else True
    fa, oa = fa.where(both), oa.where(both)  # the three means over the same points
    num = spatial_average(fa * oa, weights, skipna)
    den = np.sqrt(spatial_average(fa ** 2, weights, skipna) * spatial_average(oa ** 2, weights, skipna))
    return num / den


def acc(forecast: xr.DataArray, truth: xr.DataArray, climatology: xr.DataArray, weights: xr.DataArray,
        skipna: bool = False, scored: xr.DataArray | None = None) -> xr.DataArray:
    """Uncentred anomaly correlation, per forecast then averaged over time:
    ``mean_t <f'o'> / sqrt(<f'^2> <o'^2>)`` (:func:`anomaly_correlation`, then the time mean)."""
    return time_mean(anomaly_correlation(forecast, truth, climatology, weights, skipna), skipna, scored)


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


VARIANCE_ROUND_OFF = 1e-10
"""Relative size, to the mean square of the shifted field, below which a one-pass variance is zero."""


def spatial_variance(x: xr.DataArray, weights: xr.DataArray, skipna: bool = False) -> xr.DataArray:
    """Weighted variance of ``x`` over its spatial dims, per forecast: ``<y^2> - <y>^2``
    with ``y = x - s``, shifted by the plain mean ``s`` of each field so that the
    difference does not cancel (a field of 280 K varying by 5 K keeps 12 digits);
    one pass, so weights with a ``region`` dim never meet a field broadcast over it."""
    y = x - x.mean(spatial_dims(x), skipna=True)
    mean_square = spatial_average(y ** 2, weights, skipna)
    var = mean_square - spatial_average(y, weights, skipna) ** 2
    # Below this the difference is round-off (a region constant at a value away from the
    # field's mean): zero, as the two-pass variance gives, so 0/0 ratios stay NaN.
    return var.where(var > VARIANCE_ROUND_OFF * mean_square, 0.0)


def variance_ratio(forecast: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray, skipna: bool = False,
                   scored: xr.DataArray | None = None) -> xr.DataArray:
    """Spatial variance of the forecast over the truth's, each averaged over time first:
    ``mean_t var(f) / mean_t var(o)``. 1 for a forecast as varied in space as the truth;
    below 1 for a smoothed one, which an RMSE can reward (the oversmoothing check)."""
    return (time_mean(spatial_variance(forecast, weights, skipna), skipna, scored)
            / time_mean(spatial_variance(truth, weights, skipna), skipna, scored))

