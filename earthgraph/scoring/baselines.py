"""Reference forecasts made from the truth itself, in the WB2 forecast layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def persistence(truth: xr.Dataset, init_times: np.ndarray, leads: pd.TimedeltaIndex) -> xr.Dataset:
    """The truth at initialisation time, held for every lead."""
    init = truth.sel(time=init_times)
    fc = init.expand_dims(prediction_timedelta=leads.values).transpose("time", "prediction_timedelta", ...)
    return fc


def diurnal_climatology(truth: xr.Dataset, period: tuple[str, str]) -> xr.Dataset:
    """Mean of the truth over ``period`` for each hour of the day (dim ``hour``)."""
    sub = truth.sel(time=slice(period[0], period[1]))
    if sub.sizes["time"] == 0:
        raise ValueError(f"diurnal_climatology: truth has no times in period {period}")
    return sub.groupby("time.hour").mean("time")


def climatology_forecast(clim: xr.Dataset, init_times: np.ndarray, leads: pd.TimedeltaIndex) -> xr.Dataset:
    """Climatology valid at each ``init + lead``, in the forecast layout."""
    valid = pd.DatetimeIndex(init_times).values[:, None] + leads.values[None, :]
    hour = ((valid - valid.astype("datetime64[D]")) // np.timedelta64(1, "h")).astype(np.int64)
    hours = xr.DataArray(hour, dims=("time", "prediction_timedelta"))
    fc = clim.sel(hour=hours).drop_vars("hour")
    return fc.assign_coords(time=init_times, prediction_timedelta=leads.values)


def align_truth(truth: xr.Dataset, init_times: np.ndarray, leads: pd.TimedeltaIndex) -> xr.Dataset:
    """The truth valid at ``init + lead``, in the forecast layout (WB2's alignment)."""
    valid = pd.DatetimeIndex(init_times).values[:, None] + leads.values[None, :]
    sel = xr.DataArray(valid, dims=("time", "prediction_timedelta"))
    out = truth.sel(time=sel).drop_vars("time", errors="ignore")
    return out.assign_coords(time=init_times, prediction_timedelta=leads.values)
