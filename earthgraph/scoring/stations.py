"""Station verification: forecasts at stations paired with point observations.

A station forecast has dims ``(time, prediction_timedelta, [realization,]
station)``, ``time`` the initialisation, coords ``station`` (ids) and
optionally ``latitude``/``longitude(station)``: an earthgraph station forecast
zarr, a gridded forecast through ``points.interpolate_to_stations``, or a
baseline made here (persistence, climatology). Observations are a station
dataset (``station_obs``): dims ``(time, station)``, ``time`` the valid time.

Pairing: a forecast at initialisation ``t`` and lead ``l`` is paired with the
station's observation at ``t + l`` exactly, or, given ``tolerance``, with its
observation nearest in time within ``tolerance`` (ties: the earlier). Forecasts
are joined on their common initialisations, leads and stations (ids compared as
text, so a forecast's ``"10"`` meets an observation's ``10``).

**Paired samples.** All forecasts of one comparison are scored on the same set
of (station, initialisation, lead): those where the observation and every
forecast (every member of an ensemble) are finite. Score differences then
measure the forecasts and not their different gaps, which a paired bootstrap
needs. ``count`` says how many samples each score has; ``nonfinite`` how many
samples a forecast left out because it was not finite where the observation
exists (so a forecast that blew up shows, instead of quietly shrinking the
sample).

**Scores** per forecast, variable, lead and region or station: ``rmse`` (the root
after the mean over initialisations and stations, WB2's), ``bias`` (forecast
minus observation), ``mae``, ``count``, ``nonfinite``; for an ensemble (a
``realization``/``number``/``member`` dim) ``rmse``, ``bias`` and ``mae`` score the
ensemble mean, and ``crps`` (fair, ``ensemble.crps_pointwise``), ``spread`` and
``spread_skill_ratio`` are added. In a comparison with an ensemble, the
deterministic forecasts get ``crps`` too: a point forecast's CRPS is its absolute
error. Every sample weighs the same: inside a region each station counts
equally (no area weighting), so dense networks dominate a region's score.
Regions are WB2's boxes (``regions.WB2_REGIONS``), a station belonging to a box
by its latitude and longitude.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.scoring import ensemble
from earthgraph.scoring.baselines import climatology_forecast as _climatology_at_valid_times
from earthgraph.scoring.baselines import valid_times
from earthgraph.scoring.bootstrap import value_from_sums
from earthgraph.scoring.climatology import hourly_dayofyear_climatology
from earthgraph.scoring.regions import WB2_REGIONS, Box
from earthgraph.scoring.station_obs import StationDataError, station_table

STATISTICS = ("error", "absolute_error", "squared_error", "crps", "variance", "nonfinite")
LEAD = "prediction_timedelta"
POSITION_TOLERANCE = 0.01  # degrees: a forecast's station must sit where its observations were made


def check_station_forecast(forecast: xr.Dataset, source: str) -> None:
    """Raise a ValueError naming ``source`` unless ``forecast`` is in the station layout."""
    for dim in ("time", LEAD, "station"):
        if dim not in forecast.dims:
            raise StationDataError(f"{source}: a station forecast needs a {dim!r} dim; it has {tuple(forecast.dims)}")
    if not np.issubdtype(forecast[LEAD].dtype, np.timedelta64):
        raise StationDataError(f"{source}: {LEAD} must be timedelta64, got {forecast[LEAD].dtype}")


def observed_at(observations: xr.Dataset, times: xr.DataArray | np.ndarray,
                tolerance: np.timedelta64 | pd.Timedelta | None = None) -> xr.Dataset:
    """Each station's observation at ``times`` (datetime64; a DataArray of any dims, or a
    1-D array, dim ``valid``): dims ``(*times.dims, station)``, NaN where there is none
    (within ``tolerance``)."""
    times = times if isinstance(times, xr.DataArray) else xr.DataArray(np.asarray(times), dims="valid")
    wanted = times.values.ravel().astype("datetime64[ns]")
    have = observations.time.values.astype("datetime64[ns]")
    out = {}
    for name, da in observations.data_vars.items():
        values = da.transpose("time", "station").values.astype(np.float64)
        got = _nearest_finite(values, have, wanted, tolerance)
        out[name] = (times.dims + ("station",), got.reshape(times.shape + (values.shape[1],)), da.attrs)
    coords = {k: v for k, v in observations.coords.items() if k != "time" and "time" not in v.dims}
    coords.update({k: v for k, v in times.coords.items()})
    return xr.Dataset(out, coords=coords)


def _nearest_finite(values: np.ndarray, have: np.ndarray, wanted: np.ndarray,
                    tolerance: np.timedelta64 | pd.Timedelta | None) -> np.ndarray:
    """(wanted, station): per station the finite value at the time of ``have`` (sorted)
    nearest each wanted time within ``tolerance`` (exact when None)."""
    tol = np.timedelta64(0, "ns") if tolerance is None else pd.Timedelta(tolerance).to_timedelta64()
    lo = np.searchsorted(have, wanted - tol, side="left")
    hi = np.searchsorted(have, wanted + tol, side="right")
    width = int((hi - lo).max()) if len(wanted) else 0
    candidate = lo[:, None] + np.arange(max(width, 1))
    valid = candidate < hi[:, None]
    candidate = np.minimum(candidate, len(have) - 1)
    distance = np.where(valid, np.abs(have[candidate] - wanted[:, None]).astype(np.int64), np.iinfo(np.int64).max)
    order = np.argsort(distance, axis=1, kind="stable")  # nearest first; ties: the earlier time
    out = np.full((len(wanted), values.shape[1]), np.nan)
    for k in range(width):
        index = np.take_along_axis(candidate, order[:, k:k + 1], axis=1)[:, 0]
        ok = np.take_along_axis(valid, order[:, k:k + 1], axis=1)[:, 0]
        fill = np.isnan(out) & ok[:, None]
        out = np.where(fill, values[index], out)
    return out


def align_observations(observations: xr.Dataset, init_times: np.ndarray, leads: np.ndarray,
                       tolerance: np.timedelta64 | pd.Timedelta | None = None) -> xr.Dataset:
    """The observations valid at ``init + lead``: dims (time, prediction_timedelta, station)."""
    return observed_at(observations, valid_times(init_times, leads), tolerance)


def persistence_forecast(observations: xr.Dataset, init_times: np.ndarray, leads: np.ndarray,
                         tolerance: np.timedelta64 | pd.Timedelta | None = None,
                         max_age: np.timedelta64 | pd.Timedelta | None = None) -> xr.Dataset:
    """Each station's own observation at the initialisation time (within ``tolerance``),
    held for every lead; NaN where the station did not report then.

    With ``max_age``, instead the station's latest observation at or before the
    initialisation, if it is at most ``max_age`` old: what a forecaster had in hand
    (a station reporting once a day at 12 UTC persists into a 00 UTC initialisation)."""
    init = xr.DataArray(pd.DatetimeIndex(init_times).values, dims="time")
    if max_age is None:
        held = observed_at(observations, init, tolerance).assign_coords(time=init.values)
    else:
        held = latest_before(observations, init.values, max_age).assign_coords(time=init.values)
    fc = held.expand_dims({LEAD: pd.to_timedelta(leads).values})
    return fc.transpose("time", LEAD, "station")


def latest_before(observations: xr.Dataset, times: np.ndarray, max_age: np.timedelta64 | pd.Timedelta
                  ) -> xr.Dataset:
    """Per station and variable, the latest finite observation at or before each of
    ``times`` (datetime64, dim ``time``) and at most ``max_age`` older; NaN where none."""
    have = observations.time.values.astype("datetime64[ns]")
    wanted = np.asarray(times).astype("datetime64[ns]")
    row = np.searchsorted(have, wanted, side="right") - 1  # the last observation time <= each wanted time
    age_limit = pd.Timedelta(max_age).to_timedelta64()
    out = {}
    for name, da in observations.data_vars.items():
        values = da.transpose("time", "station").values.astype(np.float64)
        stamp = np.where(np.isfinite(values), np.arange(len(have))[:, None], -1)
        last = np.maximum.accumulate(stamp, axis=0)  # per station, the row of its latest finite value
        idx = np.where(row[:, None] >= 0, last[np.maximum(row, 0)], -1)
        ok = (idx >= 0) & (wanted[:, None] - have[np.maximum(idx, 0)] <= age_limit)
        got = np.where(ok, np.take_along_axis(values, np.maximum(idx, 0), axis=0), np.nan)
        out[name] = (("time", "station"), got, da.attrs)
    coords = {k: v for k, v in observations.coords.items() if k != "time" and "time" not in v.dims}
    return xr.Dataset(out, coords={**coords, "time": wanted})


def station_climatology(observations: xr.Dataset, period: tuple[str, str], window_days: int = 61) -> xr.Dataset:
    """Each station's day-of-year climatology of its own series over ``period``
    (inclusive bounds), as ``climatology.hourly_dayofyear_climatology`` builds WB2's:
    61-day triangular window, days without data skipped.

    Times are rounded to the hour (several reports in one hour are averaged). A
    series at one hour of the day gives a daily climatology, dims (dayofyear,
    station); a sub-daily one an hourly climatology (hour, dayofyear, station) with
    all 24 hours, NaN at hours no station reports."""
    sub = observations.sel(time=slice(*period))
    if sub.sizes["time"] == 0:
        raise StationDataError(f"station climatology: no observation in period {period}")
    hourly = sub.assign_coords(time=pd.DatetimeIndex(sub.time.values).round("h"))
    if len(np.unique(hourly.time.values)) < hourly.sizes["time"]:
        hourly = hourly.groupby("time").mean()
    clim = hourly_dayofyear_climatology(hourly, period, window_days)
    if clim.sizes["hour"] == 1:
        return clim.isel(hour=0, drop=True)
    return clim.reindex(hour=np.arange(24))


def climatology_forecast(climatology: xr.Dataset, init_times: np.ndarray, leads: np.ndarray) -> xr.Dataset:
    """The climatology (:func:`station_climatology`) valid at each ``init + lead``:
    dims (time, prediction_timedelta, station)."""
    return _climatology_at_valid_times(climatology, init_times, leads).transpose("time", LEAD, "station")


def reference_forecasts(observations: xr.Dataset, like: xr.Dataset, climatology_period: tuple[str, str] | None = None,
                        tolerance: np.timedelta64 | pd.Timedelta | None = None,
                        persistence_max_age: np.timedelta64 | pd.Timedelta | None = None) -> dict[str, xr.Dataset]:
    """``persistence`` (and ``climatology`` given its period) at the initialisations and
    leads of the forecast ``like``; ``persistence_max_age``: see :func:`persistence_forecast`."""
    init, leads = like.time.values, like[LEAD].values
    refs = {"persistence": persistence_forecast(observations, init, leads, tolerance, persistence_max_age)}
    if climatology_period is not None:
        refs["climatology"] = climatology_forecast(station_climatology(observations, climatology_period), init, leads)
    return refs


def _matched(forecast: xr.Dataset, observations: xr.Dataset, source: str) -> xr.Dataset:
    """``forecast`` with the observations' station ids (matched as text) and its
    stations' positions checked against theirs."""
    check_station_forecast(forecast, source)
    ids = {str(s): s for s in observations.station.values}
    forecast = forecast.assign_coords(station=[ids.get(str(s), s) for s in forecast.station.values])
    common = pd.Index(forecast.station.values).intersection(pd.Index(observations.station.values))
    if len(common) == 0:
        raise StationDataError(f"{source}: none of its {forecast.sizes['station']} stations is in the observations")
    for c in ("latitude", "longitude"):
        if c in forecast.coords and c in observations.coords:
            f = forecast[c].sel(station=common).values.astype(np.float64)
            o = observations[c].sel(station=common).values.astype(np.float64)
            off = np.abs(f - o) if c == "latitude" else np.abs((f - o + 180.0) % 360.0 - 180.0)
            if np.nanmax(off) > POSITION_TOLERANCE:
                i = int(np.nanargmax(off))
                raise StationDataError(f"{source}: station {common[i]!r} is at {c} {f[i]:g}, its observations at "
                                       f"{o[i]:g}")
    return forecast.sel(station=common).sortby("time")  # blocks of the bootstrap are runs of consecutive inits


CRPS_BATCH = 2 ** 24  # member pairs x samples per call: bounds the memory of the fair CRPS


def _fair_crps(f: xr.DataArray, o: xr.DataArray, member: str) -> xr.DataArray:
    """``ensemble.crps_pointwise`` over batches of initialisations: one call per
    initialisation (what it does given a ``time`` dim) is slow for the few samples of
    a station set; all at once takes M^2 times the forecast's memory."""
    per_init = f.size // max(f.sizes["time"], 1) * f.sizes[member]
    step = max(1, CRPS_BATCH // max(per_init, 1))
    parts = [ensemble.crps_pointwise(f.isel(time=slice(i, i + step)).rename(time="init"),
                                     o.isel(time=slice(i, i + step)).rename(time="init"), member).rename(init="time")
             for i in range(0, f.sizes["time"], step)]
    return xr.concat(parts, dim="time") if len(parts) > 1 else parts[0]


def _sample_statistics(f: xr.DataArray, o: xr.DataArray, with_crps: bool) -> dict[str, xr.DataArray]:
    """Per-sample statistics of one forecast (time, lead, [member,] station) against ``o``."""
    member = ensemble.ensemble_dim(f)
    mean = f.mean(member, skipna=False) if member else f
    error = mean - o
    stats = {"error": error, "absolute_error": abs(error), "squared_error": error ** 2, "finite": np.isfinite(mean)}
    if member:
        stats["crps"] = _fair_crps(f, o, member)
        stats["variance"] = (f.var(member, ddof=1, skipna=False) if f.sizes[member] > 1
                             else xr.zeros_like(mean))
    elif with_crps:
        stats["crps"] = abs(error)
    return stats


def paired_sums(forecasts: Mapping[str, xr.DataArray], observation: xr.DataArray) -> xr.Dataset:
    """Per-sample statistics of forecasts of one variable, on their common samples.

    forecasts: name -> (time, prediction_timedelta, [member,] station), aligned with
        ``observation`` (time, prediction_timedelta, station), float.
    Returns dims (forecast, time, prediction_timedelta, station): ``count`` (1 on a
    paired sample, else 0; no forecast dim) and :data:`STATISTICS` (0 off the
    samples; ``variance`` NaN for a deterministic forecast; ``crps`` only if some
    forecast is an ensemble), coord ``members`` (forecast) (0: deterministic).
    These are also per-initialisation sums per station, the input of the bootstrap.
    """
    with_crps = any(ensemble.ensemble_dim(f) for f in forecasts.values())
    per = {name: _sample_statistics(f, observation, with_crps) for name, f in forecasts.items()}
    observed = np.isfinite(observation)
    common = observed
    for stats in per.values():
        common = common & stats["finite"]
    data = {"count": common.astype(np.float64)}
    for stat in STATISTICS:
        if stat == "crps" and not with_crps:
            continue
        layers = []
        for name, stats in per.items():
            if stat == "nonfinite":
                layers.append((observed & ~stats["finite"]).astype(np.float64))
            elif stat in stats:
                layers.append(stats[stat].where(common, 0.0))
            else:
                layers.append(xr.full_like(observation, np.nan))
        data[stat] = xr.concat(layers, dim=pd.Index(list(per), name="forecast"), coords="minimal")
    members = [f.sizes[ensemble.ensemble_dim(f)] if ensemble.ensemble_dim(f) else 0 for f in forecasts.values()]
    return xr.Dataset(data).assign_coords(members=("forecast", members)).transpose("forecast", "time", LEAD, "station")


def region_membership(stations: xr.Dataset | pd.DataFrame, regions: Mapping[str, Box]) -> xr.DataArray:
    """(station, region) 1.0 where a station lies in a box (by its lat/lon), else 0;
    boxes without a station are left out (they would only add rows of NaN), as are
    grid masks (land, ocean), which have no meaning at a station."""
    where = station_table(stations)
    boxes = {n: r for n, r in regions.items() if isinstance(r, Box)}
    inside = {n: b.contains(where.latitude.to_numpy(), where.longitude.to_numpy()) for n, b in boxes.items()}
    inside = {n: m for n, m in inside.items() if m.any()}
    if not inside:
        raise StationDataError(f"no station lies in any of the regions {list(regions)}")
    return xr.DataArray(np.stack(list(inside.values()), axis=1).astype(np.float64), dims=("station", "region"),
                        coords={"station": where.index.to_numpy(), "region": list(inside)})


def group_sums(sums: xr.Dataset, membership: xr.DataArray) -> xr.Dataset:
    """Per-station sums summed over each region's stations: station -> region."""
    out = xr.Dataset({k: xr.dot(v, membership, dim="station") for k, v in sums.data_vars.items()})
    return out.assign_coords(members=sums.members).transpose(*[d if d != "station" else "region" for d in sums.dims])


def scores_from_sums(sums: xr.Dataset) -> xr.Dataset:
    """Scores over initialisations from per-initialisation sums (forecast, time, ...,
    group): one variable per metric, dims (forecast, ..., group). Metrics that do not
    apply to a forecast (``spread`` of a deterministic one) are NaN."""
    total = sums.sum("time", skipna=False)
    count = total["count"]
    out = {"count": count.broadcast_like(total["error"]), "nonfinite": total["nonfinite"]}
    for metric, stat in (("rmse", "squared_error"), ("bias", "error"), ("mae", "absolute_error"), ("crps", "crps")):
        if stat in total:
            out[metric] = xr.apply_ufunc(value_from_sums, metric, total[stat], count)
    spread = np.sqrt(xr.apply_ufunc(value_from_sums, "mean", total["variance"], count))
    out["spread"] = spread.where(sums.members > 0)
    out["spread_skill_ratio"] = out["spread"] / out["rmse"]
    return xr.Dataset(out).drop_vars("members")


@dataclass
class StationScores:
    """Station scores of several forecasts against one set of observations.

    sums: variable -> :func:`paired_sums` (forecast, time, prediction_timedelta, station).
    membership: (station, region) from :func:`region_membership`.
    stations: positions (``station_obs.station_table``) of the stations scored.
    """

    sums: dict[str, xr.Dataset]
    membership: xr.DataArray
    stations: pd.DataFrame

    @property
    def forecasts(self) -> list[str]:
        return list(dict.fromkeys(str(f) for s in self.sums.values() for f in s.forecast.values))

    def region_sums(self, variable: str) -> xr.Dataset:
        return group_sums(self.sums[variable], self.membership)

    def per_region(self) -> dict[str, xr.Dataset]:
        """variable -> scores with dims (forecast, prediction_timedelta, region)."""
        return {v: scores_from_sums(self.region_sums(v)) for v in self.sums}

    def per_station(self) -> dict[str, xr.Dataset]:
        """variable -> scores with dims (forecast, prediction_timedelta, station)."""
        return {v: scores_from_sums(s) for v, s in self.sums.items()}


def score_stations(forecasts: Mapping[str, xr.Dataset], observations: xr.Dataset,
                   regions: Mapping[str, Box] | None = None, variables: Sequence[str] | None = None,
                   tolerance: np.timedelta64 | pd.Timedelta | None = None) -> StationScores:
    """Pair every forecast with the observations and sum the statistics (module docstring).

    forecasts: name -> station forecast (include the baselines: :func:`reference_forecasts`).
    variables: default, every variable the observations and some forecast share;
        each variable is scored for the forecasts that have it, on their common samples.
    regions: default WB2's boxes (``global`` included).
    """
    regions = WB2_REGIONS if regions is None else regions
    matched = {n: _matched(fc, observations, n) for n, fc in forecasts.items()}
    if variables is None:
        variables = [v for v in observations.data_vars if any(v in fc for fc in matched.values())]
    if not variables:
        raise StationDataError(f"the forecasts {list(forecasts)} share no variable with the observations "
                               f"({sorted(map(str, observations.data_vars))})")
    sums = {}
    for var in variables:
        having = {n: fc[var] for n, fc in matched.items() if var in fc}
        if var not in observations or not having:
            raise StationDataError(f"variable {var!r}: not in the observations or in any forecast")
        units = observations[var].attrs.get("units")
        for n, da in having.items():
            if units is not None and da.attrs.get("units", units) != units:
                raise StationDataError(f"{n}: variable {var!r} is in {da.attrs['units']!r}, the observations in "
                                       f"{units!r}; convert first")
        aligned = xr.align(*having.values(), join="inner", exclude=ensemble.ENSEMBLE_DIMS)
        if min(a.size for a in aligned) == 0:
            raise StationDataError(f"variable {var!r}: the forecasts {list(having)} share no initialisation, "
                                   "lead and station")
        like = aligned[0]
        obs = align_observations(observations[[var]].sel(station=like.station.values), like.time.values,
                                 like[LEAD].values, tolerance)[var]
        fcs = {n: a.drop_vars([c for c in a.coords if c not in a.dims]).astype(np.float64).load()
               for n, a in zip(having, aligned)}
        sums[var] = paired_sums(fcs, obs.drop_vars([c for c in obs.coords if c not in obs.dims]))
    stations = sorted(set().union(*(s.station.values.tolist() for s in sums.values())))
    where = station_table(observations).loc[stations]
    return StationScores(sums, region_membership(where, regions), where)
