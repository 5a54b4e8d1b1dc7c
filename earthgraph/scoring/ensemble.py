"""Ensemble metrics with WeatherBench2's definitions.

The ensemble is a dim of the forecast (WB2's ``realization``; ECMWF's
``number`` is accepted too). Like the deterministic metrics, each is a spatial
average per forecast, then a time mean; roots are taken after the time mean.

- CRPS is the fair estimator, pointwise
  ``mean_m |x_m - y| - sum_{m,m'} |x_m - x_m'| / (2 M (M - 1))``, computed by the
  ``scores`` library (``crps_for_ensemble(method="fair")``, equal to WB2's
  ``CRPSSkill - 0.5 CRPSSpread``). With one member the spread term is zero and
  CRPS is the MAE, as in WB2 (``scores`` returns NaN there). A NaN member makes
  that point NaN, as in WB2 (``scores`` would skip the member).
- Spread is ``sqrt(mean_t <var_m(x)>)`` with the unbiased (M - 1) variance,
  zero for one member; skill is the ensemble-mean RMSE; their ratio is the
  spread/skill ratio (1 for a reliable ensemble), uncorrected, as WB2 plots it.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from earthgraph.scoring.metrics import rmse, spatial_average, time_mean

ENSEMBLE_DIMS = ("realization", "number", "member")


def ensemble_dim(forecast: xr.DataArray | xr.Dataset) -> str | None:
    """The forecast's ensemble dim, or None for a deterministic forecast."""
    found = [d for d in ENSEMBLE_DIMS if d in forecast.dims]
    if len(found) > 1:
        raise ValueError(f"forecast has several ensemble dims {found}; keep one of {ENSEMBLE_DIMS}")
    return found[0] if found else None


def crps_pointwise(forecast: xr.DataArray, truth: xr.DataArray, member_dim: str) -> xr.DataArray:
    """Fair CRPS at every point (the ensemble dim reduced), NaN where the truth or any member is NaN."""
    from scores.probability import crps_for_ensemble

    members = forecast.sizes[member_dim]
    if members < 1:
        raise ValueError(f"crps: the ensemble dim {member_dim!r} is empty")
    skill = abs(forecast - truth).mean(member_dim, skipna=False)
    if members == 1:
        return skill
    forecast, truth = xr.broadcast(forecast, truth, exclude=[member_dim])
    keep = list(truth.dims)
    if "time" not in keep:
        value = crps_for_ensemble(forecast, truth, member_dim, method="fair", preserve_dims=keep)
    else:  # one initialisation at a time: all member pairs at once take M^2 times the forecast's memory
        value = xr.concat([crps_for_ensemble(forecast.isel(time=[i]), truth.isel(time=[i]), member_dim,
                                             method="fair", preserve_dims=keep)
                           for i in range(truth.sizes["time"])], dim="time")
    return value.transpose(*skill.dims).where(skill.notnull())


def crps(forecast: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray, member_dim: str,
         skipna: bool = False, scored: xr.DataArray | None = None) -> xr.DataArray:
    """Fair CRPS, area-weighted, averaged over initialisation times (the verified ones, given ``scored``)."""
    return time_mean(spatial_average(crps_pointwise(forecast, truth, member_dim), weights, skipna), skipna, scored)


def ensemble_mean_rmse(forecast: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray, member_dim: str,
                       skipna: bool = False, scored: xr.DataArray | None = None) -> xr.DataArray:
    """RMSE of the ensemble mean (the ensemble's skill)."""
    return rmse(forecast.mean(member_dim, skipna=False), truth, weights, skipna, scored)


def ensemble_spread(forecast: xr.DataArray, weights: xr.DataArray, member_dim: str,
                    skipna: bool = False, scored: xr.DataArray | None = None) -> xr.DataArray:
    """Ensemble standard deviation: ``sqrt(mean_t <var_m(x)>)``, variance with ddof 1."""
    members = forecast.sizes[member_dim]
    if members < 2:
        var = xr.zeros_like(forecast.isel({member_dim: 0}, drop=True)).where(forecast.notnull().all(member_dim))
    else:
        var = forecast.var(member_dim, ddof=1, skipna=False)
    return np.sqrt(time_mean(spatial_average(var, weights, skipna), skipna, scored))


