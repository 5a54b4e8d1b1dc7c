"""Station scores out: bootstrap comparisons with a reference, WB2-layout
datasets, one tidy table (CSV and parquet), netCDF files and a skill map.

Files written by :func:`write_station_results` under ``out_dir``:

- ``station_scores/<forecast>.nc``: per variable, dims ``(metric, region,
  lead_time)``, the layout ``evaluation.write_results`` gives gridded scores;
- ``station_scores/<forecast>_stations.nc``: per variable, dims ``(metric,
  station, lead_time)`` with coords ``latitude``, ``longitude``, ``elevation``
  (station);
- ``station_scores.csv`` and ``station_scores.parquet``: :data:`TABLE_COLUMNS`.

In the table a score row has ``reference`` empty; a comparison row (from
:func:`compare_to_reference`) has ``reference`` set, ``value`` the forecast's
score, ``difference`` = forecast minus reference and the bootstrap interval.
Region rows have ``station`` empty, station rows ``region`` empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.scoring.bootstrap import BOOTSTRAP_COLUMNS, BlockRule, Metric, Scheme, bootstrap_differences
from earthgraph.scoring.stations import LEAD, StationScores

KEYS = ["forecast", "variable", "region", "station", "lead_hours", "metric"]
TABLE_COLUMNS = KEYS + ["value", "reference"] + BOOTSTRAP_COLUMNS
DETERMINISTIC_METRICS = ("rmse", "bias", "mae", "count", "nonfinite")
ENSEMBLE_METRICS = ("crps", "spread", "spread_skill_ratio")


def compare_to_reference(scores: StationScores, reference: str = "persistence",
                         metrics: Sequence[Metric] = ("rmse", "mae", "bias", "crps"), per_station: bool = False, *,
                         block_length: int | BlockRule = "auto", n_resamples: int = 1000, confidence: float = 0.95,
                         seed: int = 0, scheme: Scheme = "circular") -> pd.DataFrame:
    """Paired block-bootstrap intervals (``bootstrap``) of every other forecast's score
    minus ``reference``'s, per variable, lead and region (or station, with
    ``per_station``). ``crps`` is compared where the sums hold it (a comparison with an
    ensemble). Returns columns ``variable``, ``region`` or ``station``, ``forecast``,
    ``reference``, ``metric``, ``lead_hours`` and ``bootstrap.BOOTSTRAP_COLUMNS``."""
    frames = []
    for variable, sums in scores.sums.items():
        names = [str(f) for f in sums.forecast.values]
        if reference not in names:
            raise ValueError(f"compare_to_reference: no forecast {reference!r} for {variable!r}; there are {names}")
        grouped = sums if per_station else scores.region_sums(variable)
        for name in names:
            if name == reference:
                continue
            wanted = [m for m in metrics if m != "crps" or "crps" in sums]
            table = bootstrap_differences(grouped, name, reference, wanted, block_length=block_length,
                                          n_resamples=n_resamples, confidence=confidence, seed=seed, scheme=scheme)
            frames.append(table.assign(variable=variable))
    if not frames:
        return pd.DataFrame(columns=["variable", "forecast", "reference", "metric", "lead_hours", *BOOTSTRAP_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def _metrics_of(sums: xr.Dataset, forecast: str) -> list[str]:
    members = int(sums.members.sel(forecast=forecast))
    extra = [m for m in ENSEMBLE_METRICS if members > 0 or (m == "crps" and "crps" in sums)]
    return list(DETERMINISTIC_METRICS) + extra


def _layout(scores: xr.Dataset, forecast: str, metrics: list[str], group: str) -> xr.DataArray:
    """(metric, group, lead_time) of one forecast from :func:`stations.scores_from_sums`."""
    da = xr.concat([scores[m].sel(forecast=forecast, drop=True) for m in metrics],
                   dim=pd.Index(metrics, dtype=object, name="metric"), coords="minimal")
    return da.rename({LEAD: "lead_time"}).transpose("metric", group, "lead_time")


def region_results(scores: StationScores) -> dict[str, xr.Dataset]:
    """forecast -> dataset with, per variable, dims (metric, region, lead_time)."""
    return _results(scores, scores.per_region(), "region")


def station_results(scores: StationScores) -> dict[str, xr.Dataset]:
    """forecast -> dataset with, per variable, dims (metric, station, lead_time) and
    coords latitude, longitude, elevation (station)."""
    out = _results(scores, scores.per_station(), "station")
    for name, ds in out.items():
        where = scores.stations.loc[ds.station.values]
        out[name] = ds.assign_coords(latitude=("station", where.latitude.to_numpy()),
                                     longitude=("station", where.longitude.to_numpy()),
                                     elevation=("station", where.elevation.to_numpy()))
    return out


def _results(scores: StationScores, per_variable: dict[str, xr.Dataset], group: str) -> dict[str, xr.Dataset]:
    out = {}
    for forecast in scores.forecasts:
        data = {}
        for variable, ds in per_variable.items():
            if forecast in ds.forecast.values:
                data[variable] = _layout(ds, forecast, _metrics_of(scores.sums[variable], forecast), group)
        out[forecast] = xr.Dataset(data).assign_attrs(
            forecast=forecast, conventions=f"WeatherBench2 results layout: (metric, {group}, lead_time); station "
            "verification, each paired sample weighted equally")
    return out


def results_table(scores: StationScores, differences: pd.DataFrame | None = None,
                  per_station: bool = True) -> pd.DataFrame:
    """Every score as one long table of :data:`TABLE_COLUMNS`, plus the comparison rows
    of ``differences`` (:func:`compare_to_reference`, per region or per station)."""
    frames = []
    sets = [("region", region_results(scores))] + ([("station", station_results(scores))] if per_station else [])
    for group, results in sets:
        for forecast, ds in results.items():
            for variable, da in ds.data_vars.items():
                df = da.reset_coords(drop=True).to_dataframe(name="value").reset_index()
                df["lead_hours"] = df.pop("lead_time") / pd.Timedelta(hours=1)
                df["forecast"], df["variable"] = forecast, variable
                df["region" if group == "station" else "station"] = None
                frames.append(df[KEYS + ["value"]])
    table = pd.concat(frames, ignore_index=True)
    if differences is not None and len(differences):
        comparison = differences.copy()
        for c in ("region", "station"):
            if c not in comparison:
                comparison[c] = None
        values = table.drop_duplicates(KEYS).set_index(KEYS)["value"]
        comparison["value"] = values.reindex(pd.MultiIndex.from_frame(comparison[KEYS])).to_numpy()
        table = pd.concat([table, comparison[KEYS + ["value", "reference"] + BOOTSTRAP_COLUMNS]], ignore_index=True)
    for c in ("reference", *BOOTSTRAP_COLUMNS):
        if c not in table:
            table[c] = None
    table = table[TABLE_COLUMNS]
    for c in ("region", "station", "reference"):  # one missing marker, None, whatever the concat left
        table[c] = table[c].astype(object).where(table[c].notna(), None)
    for c in ("block_length", "n_inits", "n_resamples"):
        table[c] = pd.array(table[c], dtype="Int64")
    table["significant"] = pd.array(table["significant"], dtype="boolean")
    table["confidence"] = table["confidence"].astype(np.float64)
    return table


def write_station_results(scores: StationScores, out_dir: str | Path,
                          differences: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write the netCDF files and the table (module docstring); returns the paths."""
    out_dir = Path(out_dir)
    folder = out_dir / "station_scores"
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for suffix, results in (("", region_results(scores)), ("_stations", station_results(scores))):
        for name, ds in results.items():
            path = folder / f"{name}{suffix}.nc"
            tmp = path.with_suffix(".nc.tmp")
            ds.to_netcdf(tmp, engine="netcdf4")
            tmp.replace(path)  # atomic: an old results file is never left half-written
            paths[f"{name}{suffix}"] = path
    table = results_table(scores, differences)
    paths["csv"] = out_dir / "station_scores.csv"
    table.to_csv(paths["csv"], index=False)
    paths["parquet"] = out_dir / "station_scores.parquet"
    # Station ids are ints or text: stored as text in parquet, so one column holds either.
    as_text = table.station.map(lambda s: None if pd.isna(s) else str(s))
    table.assign(station=as_text).to_parquet(paths["parquet"], index=False)
    return paths


def plot_station_skill(scores: StationScores, forecast: str, variable: str, lead: np.timedelta64 | pd.Timedelta,
                       path: str | Path, reference: str = "persistence", metric: str = "rmse") -> Path:
    """Map of ``1 - metric / metric_reference`` per station at one lead (> 0: the forecast
    is better), on plain longitude-latitude axes; red worse, blue better, centred on 0;
    stations without a score are hollow grey circles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_station = scores.per_station()[variable][metric].sel({LEAD: pd.Timedelta(lead).to_timedelta64()})
    skill = (1.0 - per_station.sel(forecast=forecast) / per_station.sel(forecast=reference)).values
    where = scores.stations.loc[per_station.station.values]
    lon = (where.longitude.to_numpy() + 180.0) % 360.0 - 180.0
    lat = where.latitude.to_numpy()
    ok = np.isfinite(skill)
    lim = float(np.clip(np.nanmax(np.abs(skill)), 0.05, 1.0)) if ok.any() else 1.0
    fig, ax = plt.subplots(figsize=(9, 4.8))
    ax.scatter(lon[~ok], lat[~ok], s=14, facecolors="none", edgecolors="0.6", linewidths=0.6, label="no score")
    dots = ax.scatter(lon[ok], lat[ok], c=skill[ok], s=18, cmap="RdBu", vmin=-lim, vmax=lim, edgecolors="k",
                      linewidths=0.2)
    fig.colorbar(dots, ax=ax, shrink=0.85, label=f"1 - {metric} / {metric} of {reference}")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    hours = pd.Timedelta(lead) / pd.Timedelta(hours=1)
    ax.set_title(f"{forecast} vs {reference}: {variable} {metric} skill at +{hours:g} h", fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
