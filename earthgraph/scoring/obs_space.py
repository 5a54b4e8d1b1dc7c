"""Observation-space verification: forecast-minus-observation departures.

Each observation counts once, equally (no area weighting): for each
observation type, channel, region and lead-time bin, the departures
``d = forecast - observed`` give

- ``count``: the number of observations (``nonfinite``: how many of them had a
  forecast that is not finite; the statistics are then NaN),
- ``bias``: ``mean(d)``,
- ``rmse``: ``sqrt(mean(d^2))``,
- ``stde``: the standard deviation of ``d`` about its mean, ``sqrt(rmse^2 - bias^2)``
  (divided by n, not n - 1).

Lead-time bins are labelled by their end: with a bin of 12 h, a departure at
0 <= t < 12 h after initialisation (the first window) falls in the bin labelled 12.

The forecasts come from a forecast store written by ``train.py predict`` or
``evaluate.py`` (``forecast_obs.zarr``: the forecast as the type's values, the
observation in ``observed_<channel>`` columns, and ``hours_since_init``).
Regions are WB2's boxes (:class:`~earthgraph.scoring.regions.Box`), tested on
each observation's position.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.data.store import ObservationStore, observed_column
from earthgraph.scoring.regions import Box

DEPARTURE_COLUMNS = ["obs_type", "channel", "lat", "lon", "hours_since_init", "forecast", "observed"]
STAT_COLUMNS = ["obs_type", "channel", "region", "lead_hours", "count", "nonfinite", "bias", "rmse", "stde"]


def departures_from_store(path: str | Path) -> pd.DataFrame:
    """Every (observation, channel) of a forecast store as one row of
    :data:`DEPARTURE_COLUMNS`; channels not observed (NaN) are left out, forecasts
    that are not finite are kept (and counted as ``nonfinite``)."""
    store = ObservationStore(path)
    frames = []
    for name in store.type_names:
        spec = store.obs_type(name)
        needed = ["hours_since_init"] + [observed_column(c.name) for c in spec.channels]
        missing = [m for m in needed if m not in spec.metadata]
        if missing:
            raise ValueError(f"{path}: type {name!r} has no column(s) {missing}: not a forecast store written "
                             "by train.py predict or evaluate.py")
        first, last = store.time_range
        cols = store.read(name, first, last + 1) if store.rows(name) else None
        if cols is None or len(cols["time"]) == 0:
            continue
        for j, ch in enumerate(spec.channels):
            frames.append(pd.DataFrame({
                "obs_type": name, "channel": ch.name, "lat": cols["lat"].astype(np.float64),
                "lon": cols["lon"].astype(np.float64),
                "hours_since_init": cols["hours_since_init"].astype(np.float64),
                "forecast": cols["values"][:, j].astype(np.float64),
                "observed": cols[observed_column(ch.name)].astype(np.float64),
            }))
    if not frames:
        raise ValueError(f"{path}: the forecast store holds no observations")
    table = pd.concat(frames, ignore_index=True)
    return table[np.isfinite(table.observed)].reset_index(drop=True)


def lead_bins(hours: np.ndarray, bin_hours: float) -> np.ndarray:
    """Bin labels ``(floor(hours / bin) + 1) * bin``: 0 <= t < bin -> bin."""
    if bin_hours <= 0:
        raise ValueError(f"lead_bins: bin_hours must be positive, got {bin_hours}")
    hours = np.asarray(hours, dtype=np.float64)
    if np.any(hours < 0) or not np.all(np.isfinite(hours)):
        bad = hours[~(hours >= 0) | ~np.isfinite(hours)][0]
        raise ValueError(f"lead_bins: hours_since_init must be non-negative and finite, got {bad}")
    return (np.floor(hours / bin_hours) + 1.0) * bin_hours


def departure_statistics(departures: pd.DataFrame, regions: dict[str, Box], bin_hours: float) -> pd.DataFrame:
    """Bias, RMSE, STDE and counts of ``forecast - observed`` per type, channel,
    region and lead bin (:data:`STAT_COLUMNS`); each observation weighted equally."""
    missing = [c for c in DEPARTURE_COLUMNS if c not in departures]
    if missing:
        raise ValueError(f"departure_statistics: the departures lack column(s) {missing}")
    d = departures.assign(
        departure=departures.forecast - departures.observed,
        lead_hours=lead_bins(departures.hours_since_init.values, bin_hours))
    frames = []
    for name, region in regions.items():
        if not isinstance(region, Box):
            continue  # grid masks (land, ocean, sea ice) are not defined at observation points
        inside = d[region.contains(d.lat.values, d.lon.values)]
        if inside.empty:
            continue
        g = inside.assign(squared=inside.departure ** 2, bad=~np.isfinite(inside.departure)).groupby(
            ["obs_type", "channel", "lead_hours"])
        stats = g.agg(count=("departure", "size"), nonfinite=("bad", "sum"), bias=("departure", "mean"),
                      mse=("squared", "mean")).reset_index()
        stats["rmse"] = np.sqrt(stats.pop("mse"))
        stats["stde"] = np.sqrt(np.maximum(stats.rmse ** 2 - stats.bias ** 2, 0.0))
        # A forecast that is not finite at some observation leaves its bin's statistics undefined.
        stats.loc[stats.nonfinite > 0, ["bias", "rmse", "stde"]] = np.nan
        stats["region"] = name
        frames.append(stats)
    if not frames:
        return pd.DataFrame(columns=STAT_COLUMNS)
    return pd.concat(frames, ignore_index=True)[STAT_COLUMNS]


def to_netcdf(stats: pd.DataFrame, path: str | Path) -> xr.Dataset:
    """The statistics as netCDF: one variable per statistic, dims (obs_type_channel,
    region, lead_time); ``count`` 0 and the others NaN where there were none."""
    s = stats.assign(series=stats.obs_type + "." + stats.channel)
    idx = s.set_index(["series", "region", "lead_hours"])[["count", "nonfinite", "bias", "rmse", "stde"]]
    ds = xr.Dataset.from_dataframe(idx).rename(series="obs_type_channel", lead_hours="lead_time")
    ds = ds.assign_coords(lead_time=pd.to_timedelta(ds.lead_time.values, unit="h").values)
    ds["count"] = ds["count"].fillna(0).astype(np.int64)
    ds["nonfinite"] = ds["nonfinite"].fillna(0).astype(np.int64)
    ds.attrs["conventions"] = ("fc - ob departures, each observation weighted equally; "
                               "lead bin [b - width, b) labelled b")
    ds.to_netcdf(path, engine="netcdf4")
    return ds
