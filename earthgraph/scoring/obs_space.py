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

The forecasts come either from a forecast store written by ``train.py predict``
or ``evaluate.py`` (``forecast_obs.zarr``: the forecast as the type's values,
the observation in ``observed_<channel>`` columns, and ``hours_since_init``),
or from any gridded WB2-layout forecast sampled at the observations
(:func:`departures_from_grid`: bilinear in space, linear in lead time).
Regions are WB2's boxes (:class:`~earthgraph.scoring.regions.Box`), tested on
each observation's position.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.data.obs_types import DEFAULT_PRODUCTS
from earthgraph.data.store import ObservationStore, observed_column
from earthgraph.scoring.ensemble import ensemble_dim
from earthgraph.scoring.regions import Box

DEPARTURE_COLUMNS = ["obs_type", "channel", "time", "lat", "lon", "hours_since_init", "forecast", "observed"]
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
                "obs_type": name, "channel": ch.name, "time": cols["time"].astype("datetime64[s]"),
                "lat": cols["lat"].astype(np.float64),
                "lon": cols["lon"].astype(np.float64),
                "hours_since_init": cols["hours_since_init"].astype(np.float64),
                "forecast": cols["values"][:, j].astype(np.float64),
                "observed": cols[observed_column(ch.name)].astype(np.float64),
            }))
    if not frames:
        raise ValueError(f"{path}: the forecast store holds no observations")
    table = pd.concat(frames, ignore_index=True)
    return table[np.isfinite(table.observed)].reset_index(drop=True)


def sample_grid(field: xr.DataArray, hours: np.ndarray, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Values of one initialisation's forecast at points and times.

    field: (prediction_timedelta, latitude, longitude), latitude ascending,
        longitude ascending in [0, 360) and evenly spaced around the globe.
    hours: (n,) hours after initialisation, within the field's leads.
    Returns (n,): bilinear in space (periodic in longitude, the outermost
    latitude row beyond it), linear between the two leads around each time;
    neighbours that are NaN (a coast) are left out and the weights renormalised,
    NaN where all are.
    """
    leads = field.prediction_timedelta.values / np.timedelta64(1, "h")
    lat, lon = field.latitude.values.astype(np.float64), field.longitude.values.astype(np.float64)
    values = field.values.astype(np.float64)
    # Time: the two leads around each observation and the weight of the later one.
    if len(leads) > 1:
        t1 = np.clip(np.searchsorted(leads, hours, side="right"), 1, len(leads) - 1)
    else:  # one lead: no interpolation in time
        t1 = np.zeros(len(hours), dtype=int)
    t0 = np.maximum(t1 - 1, 0)
    span = leads[t1] - leads[t0]
    wt = np.where(span > 0, (hours - leads[t0]) / np.where(span > 0, span, 1.0), 0.0)
    # Latitude: the rows around each point (clamped at the outermost rows).
    j1 = np.clip(np.searchsorted(lat, lat_deg), 1, len(lat) - 1)
    j0 = j1 - 1
    wy = np.clip((lat_deg - lat[j0]) / (lat[j1] - lat[j0]), 0.0, 1.0)
    # Longitude: periodic.
    dlon = 360.0 / len(lon)
    x = ((np.asarray(lon_deg) - lon[0]) % 360.0) / dlon
    i0 = np.floor(x).astype(int) % len(lon)
    i1 = (i0 + 1) % len(lon)
    wx = x - np.floor(x)
    num = np.zeros(len(hours))
    den = np.zeros(len(hours))
    for ti, w_t in ((t0, 1.0 - wt), (t1, wt)):
        for jj, w_y in ((j0, 1.0 - wy), (j1, wy)):
            for ii, w_x in ((i0, 1.0 - wx), (i1, wx)):
                v = values[ti, jj, ii]
                w = w_t * w_y * w_x * np.isfinite(v)
                num += w * np.nan_to_num(v)
                den += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def departures_from_grid(forecast: xr.Dataset, store: ObservationStore,
                         pairs: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Departures of a gridded forecast (WB2 layout, lat-lon grid normalised as by
    ``layout.normalise_grid``) at the observations of ``store``.

    pairs: {forecast variable: (observation type, channel)}, e.g. from
    ``earthgraph.data.obs_types.DEFAULT_PRODUCTS``; pairs the forecast or the
    store lacks are skipped. Observations from each initialisation's first lead
    up to (not including) its last are used; an ensemble is verified by its mean;
    points with no finite neighbour (outside the field: SST over land) are left
    out. Returns rows of :data:`DEPARTURE_COLUMNS`.
    """
    member = ensemble_dim(forecast)
    if member:
        forecast = forecast.mean(member)
    forecast = forecast.sortby("prediction_timedelta")
    leads = forecast.prediction_timedelta.values
    lo, hi = leads.min() / np.timedelta64(1, "s"), leads.max() / np.timedelta64(1, "s")
    frames = []
    for var, (name, channel) in pairs.items():
        if var not in forecast or name not in store.type_names:
            continue
        c = [ch.name for ch in store.obs_type(name).channels].index(channel)
        field = forecast[var].transpose("time", "prediction_timedelta", "latitude", "longitude")
        for k, init in enumerate(forecast.time.values):
            t0 = int((init - np.datetime64(0, "s")) // np.timedelta64(1, "s"))
            cols = store.read(name, int(t0 + lo), int(t0 + hi))
            observed = cols["values"][:, c].astype(np.float64)
            ok = np.isfinite(observed)
            if not ok.any():
                continue
            hours = (cols["time"][ok] - t0) / 3600.0
            value = sample_grid(field.isel(time=k), hours, cols["lat"][ok].astype(np.float64),
                                cols["lon"][ok].astype(np.float64))
            frames.append(pd.DataFrame({"obs_type": name, "channel": channel,
                                        "time": cols["time"][ok].astype("datetime64[s]"), "lat": cols["lat"][ok],
                                        "lon": cols["lon"][ok], "hours_since_init": hours, "forecast": value,
                                        "observed": observed[ok]}))
    if not frames:
        raise ValueError(f"{store.path}: no observation of {sorted(set(n for n, _ in pairs.values()))} falls within "
                         "the forecast's leads")
    table = pd.concat(frames, ignore_index=True)
    return table[np.isfinite(table.forecast)].reset_index(drop=True)


def departures_at_store(forecast: xr.Dataset, location: str | Path,
                        storage_options: dict | None = None) -> pd.DataFrame:
    """:func:`departures_from_grid` at the observations of the store at ``location`` (a path
    or fsspec URL), of the default products (``earthgraph.data.obs_types.DEFAULT_PRODUCTS``:
    air temperature at the SYNOP stations, SST at the drifters ...)."""
    pairs = {p.variable: (p.obs_type, p.channel) for p in DEFAULT_PRODUCTS}
    return departures_from_grid(forecast, ObservationStore(location, storage_options), pairs)


def departures_in_period(departures: pd.DataFrame, period: tuple, by: str = "valid") -> pd.DataFrame:
    """The departures verified in ``period`` ([start, end)): those whose observation
    time lies in it (by="valid"), or whose initialisation does (by="init"), as
    :func:`earthgraph.scoring.baselines.verification_pairs` chooses gridded pairs."""
    start, end = (np.datetime64(t, "ns") for t in period)
    when = pd.to_datetime(departures.time).values
    if by == "init":
        when = when - pd.to_timedelta(departures.hours_since_init, unit="h").values
    keep = (when >= start) & (when < end)
    return departures[keep].reset_index(drop=True)


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
    missing = [c for c in DEPARTURE_COLUMNS if c not in departures and c != "time"]  # time: for selection only
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


def write_statistics(departures: pd.DataFrame, regions: dict[str, Box], bin_hours: float, out_dir: str | Path,
                     period: tuple | None = None, by: str = "valid") -> pd.DataFrame:
    """:func:`departure_statistics` of the departures verified in ``period`` (all when None;
    ``by`` as in :func:`departures_in_period`), written as ``obs_space.csv`` and
    ``obs_space.nc`` (:func:`to_netcdf`) in ``out_dir``. Returns the statistics."""
    if period:
        departures = departures_in_period(departures, period, by)
    stats = departure_statistics(departures, regions, bin_hours)
    stats.to_csv(Path(out_dir) / "obs_space.csv", index=False)
    to_netcdf(stats, Path(out_dir) / "obs_space.nc")
    return stats
