"""Station verification end to end, as ``evaluate.py --stations-obs`` runs it.

Forecasts at stations (an earthgraph station forecast, any station-layout zarr,
or a gridded forecast interpolated to the stations, ``points``) are scored
against point observations (a parquet/CSV table, ``station_obs``, or an
observation store) beside two baselines made from the observations themselves:
``persistence`` (each station's observation at, or with ``persistence_max_age``
latest before, the initialisation) and ``climatology`` (the day-of-year
climatology of each station's own series over the climatology period). Every
forecast is compared with the reference by a paired block bootstrap over
initialisation times (``bootstrap``); the tables, netCDF files and the skill map
are ``station_results``'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.scoring import station_results, stations
from earthgraph.scoring.regions import WB2_REGIONS
from earthgraph.scoring.station_obs import StationDataError, observations_from_store, read_station_observations

LEAD = stations.LEAD


@dataclass(frozen=True)
class StationSettings:
    """How the station verification pairs, baselines and bootstraps.

    ``climatology_period``: ``[start, end)`` of the observations averaged into the
    climatology baseline (None: no climatology baseline). ``tolerance``: the largest
    gap between a forecast's valid time and the observation paired with it (0:
    exact). ``persistence_max_age``: persistence is each station's latest
    observation at most this old at the initialisation (None: exactly at it).
    ``block_length``: the bootstrap's blocks of consecutive initialisations (an int,
    ``auto``: Wilks' rule from each comparison's lag-1 autocorrelation, or
    ``cube_root``).
    """

    reference: str = "persistence"
    climatology_period: tuple[str, str] | None = None
    tolerance: pd.Timedelta | None = None
    persistence_max_age: pd.Timedelta | None = None
    block_length: int | Literal["auto", "cube_root"] = "auto"
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    map_lead_hours: float | None = None


def is_store(location: str | Path) -> bool:
    """Whether ``location`` is an observation store (a zarr folder) rather than a table."""
    return str(location).rstrip("/").endswith(".zarr") or (Path(location) / "zarr.json").exists()


def open_station_observations(location: str | Path, variables: list[str], products=None,
                              period: tuple[str, str] | None = None, storage_options: dict | None = None,
                              layout: Literal["long", "wide"] = "long") -> xr.Dataset:
    """The observations of those of ``variables`` that ``location`` holds, at their
    stations: from a parquet/CSV table (``station_obs``) or an observation store. A
    store's variables are its types' products (``products``:
    ``earthgraph.data.obs_types.Product``\\ s; default those of its types) or
    ``"<type>.<channel>"``; ``period`` (ISO dates) limits what is read. Holding none of
    them is an error naming what it holds."""
    if not is_store(location):
        obs = read_station_observations(location, layout=layout)
        found = [v for v in variables if v in obs]
        if not found:
            raise StationDataError(f"{location}: no observations of {variables}; it has {sorted(obs.data_vars)}")
        return obs[found]
    from earthgraph.data.obs_types import Product, type_products
    from earthgraph.data.store import ObservationStore

    store = ObservationStore(location, storage_options)
    known = {p.variable: p for p in (products or type_products(store.obs_type(n) for n in store.type_names))}
    for name in store.type_names:
        t = store.obs_type(name)
        known.update({f"{name}.{c.name}": Product(f"{name}.{c.name}", t.sphere, name, c.name, c.units)
                      for c in t.channels})
    found = [v for v in variables if v in known]
    if not found:
        raise StationDataError(f"{location}: no observations of {variables}; it has {sorted(known)}")
    return observations_from_store(store, [known[v] for v in found], period)


def with_baselines(forecasts: dict[str, xr.Dataset], observations: xr.Dataset, settings: StationSettings
                   ) -> dict[str, xr.Dataset]:
    """``forecasts`` plus persistence (and climatology) at the first forecast's initialisations and leads."""
    like = next(iter(forecasts.values()))
    refs = stations.reference_forecasts(observations, like, settings.climatology_period, settings.tolerance,
                                        settings.persistence_max_age)
    clash = sorted(set(refs) & set(forecasts))
    if clash:
        raise StationDataError(f"station forecasts named {clash} clash with the baselines' names")
    return {**forecasts, **refs}


def evaluate_stations(forecasts: dict[str, xr.Dataset], observations: xr.Dataset, out: str | Path,
                      settings: StationSettings) -> tuple[pd.DataFrame, list[Path]]:
    """Score ``forecasts`` (name -> station-layout dataset) and the baselines against
    ``observations``, compare each with ``settings.reference``, write the results
    into ``out`` and draw each variable's skill map. Returns (the tidy table, the files)."""
    every = with_baselines(forecasts, observations, settings)
    if settings.reference not in every:
        raise StationDataError(f"--reference {settings.reference!r} is not among the station forecasts {list(every)}")
    variables = sorted(set.intersection(*(set(f.data_vars) for f in forecasts.values())) & set(observations.data_vars))
    if not variables:
        raise StationDataError(f"the station forecasts {list(forecasts)} and the observations share no variable: "
                               f"forecasts have {sorted(next(iter(forecasts.values())).data_vars)}, observations "
                               f"{sorted(observations.data_vars)}")
    scores = stations.score_stations(every, observations, WB2_REGIONS, variables, settings.tolerance)
    options = dict(reference=settings.reference, block_length=settings.block_length,
                   n_resamples=settings.resamples, confidence=settings.confidence, seed=settings.seed)
    differences = pd.concat([station_results.compare_to_reference(scores, **options),
                             station_results.compare_to_reference(scores, per_station=True, **options)],
                            ignore_index=True)
    paths = list(station_results.write_station_results(scores, out, differences).values())
    lead = _map_lead(next(iter(forecasts.values())), settings.map_lead_hours)
    for forecast in forecasts:
        for variable in variables:
            paths.append(station_results.plot_station_skill(
                scores, forecast, variable, lead, Path(out) / f"station_skill_{forecast}_{variable}.png",
                settings.reference))
    return station_results.results_table(scores, differences), paths


def _map_lead(forecast: xr.Dataset, hours: float | None) -> np.timedelta64:
    leads = forecast[LEAD].values
    wanted = pd.Timedelta(hours=hours).to_timedelta64() if hours is not None else None
    return wanted if wanted is not None and wanted in leads else leads[min(1, len(leads) - 1)]


def format_station_scorecard(table: pd.DataFrame, reference: str, region: str = "global") -> str:
    """The ``region`` RMSE per forecast, variable and lead, and each forecast's difference
    from ``reference`` with its bootstrap interval (``*``: the interval excludes 0)."""
    scores = table[(table.region == region) & (table.metric == "rmse") & table.reference.isna()]
    diffs = table[(table.region == region) & (table.metric == "rmse") & (table.reference == reference)]
    lines = []
    for variable, rows in scores.groupby("variable", sort=True):
        wide = rows.pivot_table(index="forecast", columns="lead_hours", values="value", aggfunc="first")
        lines.append(f"{variable} ({region} RMSE, {int(_count(table, variable, region))} paired samples a lead):")
        for forecast, values in wide.iterrows():
            cells = "  ".join(f"{h:g} h {v:9.4g}" for h, v in values.items())
            lines.append(f"  {forecast:<24} {cells}")
        for forecast, d in diffs[diffs.variable == variable].groupby("forecast", sort=True):
            cells = "  ".join(f"{r.lead_hours:g} h {r.difference:+.3g} [{r.lower:+.3g}, {r.upper:+.3g}]"
                              f"{'*' if r.significant else ' '}" for r in d.sort_values("lead_hours").itertuples())
            lines.append(f"  {forecast} - {reference}: {cells}  (block {int(d.block_length.max())} inits)")
    return "\n".join(lines)


def _count(table: pd.DataFrame, variable: str, region: str) -> float:
    rows = table[(table.variable == variable) & (table.region == region) & (table.metric == "count")
                 & table.reference.isna()]
    return float(rows.value.min()) if len(rows) else 0.0
