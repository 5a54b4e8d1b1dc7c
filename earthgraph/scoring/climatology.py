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
READ_WHOLE_BYTES = 256 << 20
"""A variable whose record over the period is smaller is read at once, not a year and hour at a time."""


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


def _add_year(num: np.ndarray, den: np.ndarray, values: np.ndarray, times: pd.DatetimeIndex,
              w: np.ndarray) -> int:
    """Add one year's values (n, ...) at ``times`` (one hour of the day, one year) to the
    weighted sums ``num`` and ``den`` (366, ...), in place; returns how many of the values
    were left out (NaN or infinite)."""
    day = times.normalize()
    if len(np.unique(day)) != len(day):
        raise ValueError(f"climatology: several values on one day at one hour in {times[0].year}")
    half = len(w) // 2
    arr = _year_on_dayofyear(values, np.asarray(times.dayofyear), bool(times[0].is_leap_year))
    padded = np.concatenate([arr[DAYS - half:], arr, arr[:half]]) if half else arr
    ok = np.isfinite(padded)
    filled = np.where(ok, padded, 0.0)
    for k in range(len(w)):
        num += w[k] * filled[k:k + DAYS]
        den += w[k] * ok[k:k + DAYS]
    return int(values.size - np.isfinite(values).sum())


def _mean(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def smoothed_dayofyear_mean(values: np.ndarray, times: pd.DatetimeIndex, window_days: int = 61) -> np.ndarray:
    """Weighted, periodic day-of-year mean of values (n, ...) taken at ``times`` (one
    hour of the day). Shape (366, ...); NaN where no value falls in the window."""
    w = window_weights(window_days)
    num = np.zeros((DAYS,) + values.shape[1:])
    den = np.zeros_like(num)
    for year in np.unique(times.year):
        sel = times.year == year
        _add_year(num, den, values[sel], times[sel], w)
    return _mean(num, den)


def _streamed_dayofyear_mean(da: xr.DataArray, times: pd.DatetimeIndex, hour: int,
                             window_days: int) -> tuple[np.ndarray, int]:
    """:func:`smoothed_dayofyear_mean` of ``da`` (time first, in memory or lazily opened)
    at one ``hour``, reading one year at a time: the same sums in the same order; and how
    many values were left out (NaN or infinite)."""
    w = window_weights(window_days)
    num = np.zeros((DAYS,) + da.shape[1:])
    den = np.zeros_like(num)
    at_hour = times.hour == hour
    missing = 0
    for year in np.unique(times.year):
        sel = np.flatnonzero(at_hour & (times.year == year))
        if len(sel):
            missing += _add_year(num, den, np.asarray(da.isel(time=sel).values, dtype=np.float64), times[sel], w)
    return _mean(num, den), missing


def hourly_dayofyear_climatology(truth: xr.Dataset, period: tuple[str, str], window_days: int = 61,
                                 read_whole_bytes: int = READ_WHOLE_BYTES) -> xr.Dataset:
    """WB2 climatology of every time-dependent variable of ``truth`` over ``period``
    (inclusive bounds, as ``sel(time=slice(...))``): dims (hour, dayofyear, ...), float32;
    each variable's ``missing_values`` attribute counts the truth's values left out (NaN or
    infinite).

    The truth may be opened lazily (dask): it is read one variable, hour of the day and
    year at a time, so the memory needed is, with ``P`` the points (levels x grid) of
    one field, about ``8 x 366 x P x 8`` bytes of float64 work (the two running sums,
    one year's values at one hour and its padded, masked copies) plus the output,
    ``4 x 366 x P`` bytes per variable and hour, whatever the length of the record (and a
    variable's record when it is under ``read_whole_bytes``, read in one go). At 0.25
    degrees (P = 1.04e6 on one level) that is 24 GB of work and 1.5 GB per variable and
    hour: give a ready WB2 climatology there (``evaluate.py --climatology``)."""
    sub = truth[[v for v in truth.data_vars if "time" in truth[v].dims]].sel(time=slice(*period))
    if sub.sizes["time"] == 0:
        raise ValueError(f"climatology: the truth has no times in period {period}")
    times = pd.DatetimeIndex(sub.time.values)
    hours = np.unique(times.hour)
    out = {}
    for name, da in sub.data_vars.items():
        da = da.transpose("time", ...)
        if da.nbytes <= read_whole_bytes:  # one read instead of one per hour and year (same values)
            da = da.load()
        per_hour = [_streamed_dayofyear_mean(da, times, h, window_days) for h in hours]
        # How many of the truth's values were left out (NaN, infinite): said, never silent.
        attrs = {**da.attrs, "missing_values": sum(n for _, n in per_hour)}
        out[name] = (("hour", "dayofyear") + da.dims[1:], np.stack([m.astype(np.float32) for m, _ in per_hour]),
                     attrs)
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
        check_hours(climatology, valid_times.values)
        sel["hour"] = xr.DataArray(np.asarray(index.hour).reshape(valid_times.shape), dims=valid_times.dims)
    out = climatology.sel(sel).drop_vars(["dayofyear", "hour"], errors="ignore")
    return out.assign_coords({d: valid_times[d] for d in valid_times.dims if d in valid_times.coords})


def check_hours(climatology: xr.Dataset, valid_times: np.ndarray, source: str = "climatology") -> None:
    """Raise a ValueError naming ``source`` unless a climatology with an ``hour`` dim holds
    every hour of the day of ``valid_times`` (datetime64, any shape)."""
    if "hour" not in climatology.dims:
        return
    hours = np.unique(pd.DatetimeIndex(np.asarray(valid_times).ravel()).hour)
    missing = sorted(set(hours.tolist()) - set(climatology.hour.values.tolist()))
    if missing:
        raise ValueError(f"{source}: no hour(s) {missing} of the valid times in the climatology "
                         f"(hours {climatology.hour.values.tolist()})")


def check_days(climatology: xr.Dataset, valid_times: np.ndarray, source: str = "climatology") -> None:
    """Raise a ValueError naming ``source`` unless the climatology holds the day of the year
    of every one of ``valid_times`` (datetime64, any shape)."""
    if "dayofyear" not in climatology.dims:
        raise ValueError(f"{source}: a climatology needs a 'dayofyear' dim; it has {tuple(climatology.dims)}")
    days = np.unique(pd.DatetimeIndex(np.asarray(valid_times).ravel()).dayofyear)
    missing = sorted(set(days.tolist()) - set(np.asarray(climatology.dayofyear.values).tolist()))
    if missing:
        raise ValueError(f"{source}: no dayofyear {missing[:5]}{' ...' if len(missing) > 5 else ''} of the valid "
                         f"times in the climatology ({climatology.sizes['dayofyear']} days)")
