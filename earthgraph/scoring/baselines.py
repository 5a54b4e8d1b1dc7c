"""Reference forecasts made from the truth itself, and the truth aligned to a
forecast, all in the WB2 forecast layout ``(time, prediction_timedelta, ...)``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.scoring.climatology import climatology_at


def valid_times(init_times: np.ndarray, leads: np.ndarray) -> xr.DataArray:
    """``init + lead`` with dims (time, prediction_timedelta)."""
    init = pd.DatetimeIndex(init_times).values
    leads = pd.to_timedelta(leads).values
    return xr.DataArray(init[:, None] + leads[None, :], dims=("time", "prediction_timedelta"),
                        coords={"time": init, "prediction_timedelta": leads})


def _select_times(truth: xr.Dataset, times: np.ndarray, what: str, source: str) -> None:
    missing = np.setdiff1d(np.unique(times), truth.time.values)
    if len(missing):
        raise ValueError(f"{source}: no values at {len(missing)} time(s) the {what} need(s), first "
                         f"{pd.Timestamp(missing[0])} (it covers {pd.Timestamp(truth.time.values[0])} .. "
                         f"{pd.Timestamp(truth.time.values[-1])})")


def align_truth(truth: xr.Dataset, init_times: np.ndarray, leads: np.ndarray, source: str = "truth") -> xr.Dataset:
    """The truth valid at ``init + lead``, in the forecast layout (WB2's alignment by
    initialisation time); ``source`` names the truth in errors."""
    valid = valid_times(init_times, leads)
    _select_times(truth, valid.values, "forecast's valid times", source)
    out = truth.sel(time=valid).drop_vars("time", errors="ignore")
    return out.assign_coords(time=valid.time, prediction_timedelta=valid.prediction_timedelta)


def persistence(truth: xr.Dataset, init_times: np.ndarray, leads: np.ndarray, source: str = "truth") -> xr.Dataset:
    """The truth at initialisation time, held for every lead."""
    init = pd.DatetimeIndex(init_times).values
    _select_times(truth, init, "persistence forecast", source)
    held = truth.sel(time=init)
    fc = held.expand_dims(prediction_timedelta=pd.to_timedelta(leads).values)
    return fc.transpose("time", "prediction_timedelta", ...)


def climatology_forecast(climatology: xr.Dataset, init_times: np.ndarray, leads: np.ndarray) -> xr.Dataset:
    """The climatology (dims hour, dayofyear, ...) valid at each ``init + lead``."""
    return climatology_at(climatology, valid_times(init_times, leads))
