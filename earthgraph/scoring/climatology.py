"""Day-of-year x hour-of-day climatology, built as WeatherBench2 builds it.

For each hour of the day, each year's values at that hour are put on a
day-of-year axis 1..366 (a non-leap year's day 366 repeats its day 365), the
axis is made periodic, and each day is the weighted mean over a centred
window of ``window_days`` days (default 61) and over the years, with
triangular weights ``1 - |k| / 30`` for day offset ``k`` (the two end days get
weight 0). Missing values (days outside the period, NaN) are skipped: the
weights are renormalised over what is there.

The result has dims ``(hour, dayofyear, <other dims of the truth>)``, the
layout of WB2's climatology zarr files, which can be read and used instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

DAYS = 366


def window_weights(window_days: int = 61) -> np.ndarray:
    """Triangular weights over day offsets ``-(n//2) .. n//2``, mean 1. Shape (window_days,)."""
    if window_days < 1 or window_days % 2 == 0:
        raise ValueError(f"window_weights: window_days must be odd and positive, got {window_days}")
    half = window_days // 2
    if half == 0:
        return np.ones(1)
    w = 1.0 - np.abs(np.arange(-half, half + 1)) / half
    return w / w.mean()


def _year_on_dayofyear(values: np.ndarray, dayofyear: np.ndarray, leap: bool) -> np.ndarray:
    """One year's values (n, ...) at days ``dayofyear`` (1-based) on a full 366-day
    axis, NaN where absent; a non-leap year's day 366 is its day 365."""
    out = np.full((DAYS,) + values.shape[1:], np.nan)
    out[dayofyear - 1] = values
    if not leap:
        out[DAYS - 1] = out[DAYS - 2]
    return out


def smoothed_dayofyear_mean(values: np.ndarray, times: pd.DatetimeIndex, window_days: int = 61) -> np.ndarray:
    """Weighted, periodic day-of-year mean of values (n, ...) taken at ``times`` (one
    hour of the day). Shape (366, ...); NaN where no value falls in the window."""
    w = window_weights(window_days)
    half = len(w) // 2
    num = np.zeros((DAYS,) + values.shape[1:])
    den = np.zeros_like(num)
    for year in np.unique(times.year):
        sel = times.year == year
        day = times[sel].normalize()
        if len(np.unique(day)) != len(day):
            raise ValueError(f"climatology: several values on one day at one hour in {year}")
        arr = _year_on_dayofyear(values[sel], np.asarray(times[sel].dayofyear), bool(times[sel][0].is_leap_year))
        padded = np.concatenate([arr[DAYS - half:], arr, arr[:half]]) if half else arr
        ok = np.isfinite(padded)
        filled = np.where(ok, padded, 0.0)
        for k in range(len(w)):
            num += w[k] * filled[k:k + DAYS]
            den += w[k] * ok[k:k + DAYS]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def hourly_dayofyear_climatology(truth: xr.Dataset, period: tuple[str, str], window_days: int = 61) -> xr.Dataset:
    """WB2 climatology of every time-dependent variable of ``truth`` over ``period``
    (inclusive bounds, as ``sel(time=slice(...))``): dims (hour, dayofyear, ...)."""
    sub = truth[[v for v in truth.data_vars if "time" in truth[v].dims]].sel(time=slice(*period))
    if sub.sizes["time"] == 0:
        raise ValueError(f"climatology: the truth has no times in period {period}")
    times = pd.DatetimeIndex(sub.time.values)
    hours = np.unique(times.hour)
    out = {}
    for name, da in sub.data_vars.items():
        da = da.transpose("time", ...)
        values = da.values.astype(np.float64)
        per_hour = [smoothed_dayofyear_mean(values[times.hour == h], times[times.hour == h], window_days)
                    for h in hours]
        out[name] = (("hour", "dayofyear") + da.dims[1:], np.stack(per_hour).astype(np.float32), da.attrs)
    coords = {"hour": hours, "dayofyear": np.arange(1, DAYS + 1)}
    coords.update({c: sub[c] for c in sub.coords if c != "time" and "time" not in sub[c].dims})
    ds = xr.Dataset(out, coords=coords)
    ds.attrs.update({"climatology_period": f"{period[0]} .. {period[1]}", "window_days": window_days,
                     "method": "WeatherBench2 hourly day-of-year climatology, triangular window"})
    return ds


def climatology_at(climatology: xr.Dataset, valid_times: xr.DataArray) -> xr.Dataset:
    """The climatology at the day of year and hour of each valid time; the result
    has the dims of ``valid_times`` (e.g. time, prediction_timedelta) in front.

    A climatology without an ``hour`` dim (daily) is selected by day only.
    """
    index = pd.DatetimeIndex(valid_times.values.ravel())
    doy = xr.DataArray(np.asarray(index.dayofyear).reshape(valid_times.shape), dims=valid_times.dims)
    sel = {"dayofyear": doy}
    if "hour" in climatology.dims:
        hour = np.asarray(index.hour).reshape(valid_times.shape)
        missing = sorted(set(np.unique(hour)) - set(climatology.hour.values.tolist()))
        if missing:
            raise ValueError(f"climatology: no hour(s) {missing} of the valid times in the climatology "
                             f"(hours {climatology.hour.values.tolist()})")
        sel["hour"] = xr.DataArray(hour, dims=valid_times.dims)
    out = climatology.sel(sel).drop_vars(["dayofyear", "hour"], errors="ignore")
    return out.assign_coords({d: valid_times[d] for d in valid_times.dims if d in valid_times.coords})
