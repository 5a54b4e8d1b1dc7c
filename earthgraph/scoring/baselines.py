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


def align_truth(truth: xr.Dataset, init_times: np.ndarray, leads: np.ndarray, source: str = "truth",
                scored: xr.DataArray | None = None) -> xr.Dataset:
    """The truth valid at ``init + lead``, in the forecast layout (WB2's alignment by
    initialisation time); ``source`` names the truth in errors.

    scored: (time, prediction_timedelta) bool, the pairs that are verified (see
    :func:`verification_pairs`); the others are NaN and need no truth."""
    valid = valid_times(init_times, leads)
    if scored is None:
        _select_times(truth, valid.values, "forecast's valid times", source)
        out = truth.sel(time=valid).drop_vars("time", errors="ignore")
    else:
        _select_times(truth, valid.values[scored.values], "forecast's valid times", source)
        out = truth.sel(time=valid.where(scored, truth.time.values[0])).drop_vars("time", errors="ignore")
        out = out.where(scored.variable)
    return out.assign_coords(time=valid.time, prediction_timedelta=valid.prediction_timedelta)


def verification_pairs(init_times: np.ndarray, leads: np.ndarray, period: tuple | None = None,
                       truth_times: np.ndarray | None = None, by: str = "valid") -> xr.DataArray:
    """Which (initialisation, lead) pairs are verified: (time, prediction_timedelta) bool.

    by="valid": the pairs whose valid time ``init + lead`` lies in ``period``
    ([start, end)), so that every day of the period is verified at every lead
    (WB2's evaluation by valid time); by="init": the pairs whose initialisation
    lies in ``period`` (WB2's default). Either way only valid times the truth
    holds (``truth_times``) are verified. No period: every pair the truth covers.
    """
    if by not in ("valid", "init"):
        raise ValueError(f"verification_pairs: by must be 'valid' or 'init', got {by!r}")
    valid = valid_times(init_times, leads)
    scored = xr.ones_like(valid, dtype=bool)
    if period is not None:
        start, end = (np.datetime64(t, "ns") for t in period)
        when = valid if by == "valid" else valid.time.broadcast_like(valid)
        scored = scored & (when >= start) & (when < end)
    if truth_times is not None:
        scored = scored & valid.isin(np.asarray(truth_times).astype("datetime64[ns]"))
    return scored


def inits_verifying(valid: np.ndarray, leads: np.ndarray) -> np.ndarray:
    """The initialisation times whose forecasts at ``leads`` are valid at some of ``valid``:
    ``valid - lead`` for every pair, sorted, without repeats (datetime64[ns])."""
    valid = np.asarray(valid).astype("datetime64[ns]")
    leads = pd.to_timedelta(leads).values
    return np.unique((valid[:, None] - leads[None, :]).ravel())


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


def truth_times_needed(scored: xr.DataArray, initialisations: bool = False) -> np.ndarray:
    """The truth times that scoring the (time, prediction_timedelta) pairs of ``scored``
    reads: the valid times of its verified pairs and, with ``initialisations`` (for
    :func:`persistence`), its initialisation times; sorted, unique, datetime64[ns]."""
    valid = valid_times(scored.time.values, scored.prediction_timedelta.values).values[scored.values]
    if initialisations:
        valid = np.concatenate([valid, scored.time.values.astype("datetime64[ns]")])
    return np.unique(valid.astype("datetime64[ns]"))


def days_of_year(init_times: np.ndarray, leads: np.ndarray) -> np.ndarray:
    """The days of the year (1..366) of every ``init + lead``, sorted, unique: the part of a
    climatology that :func:`climatology_forecast` reads for these forecasts."""
    return np.unique(pd.DatetimeIndex(valid_times(init_times, leads).values.ravel()).dayofyear)
