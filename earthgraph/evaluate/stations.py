"""Station verification (--stations-obs): forecasts at point observations, beside station
persistence and climatology, with paired block-bootstrap intervals
(:mod:`earthgraph.scoring.station_evaluation` scores and writes them).

The forecasts verified: a checkpoint's decoded at the stations, a gridded forecast
interpolated to them (--interpolation), and any --stations-forecast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import xarray as xr

from earthgraph.evaluate.errors import reported
from earthgraph.evaluate.inputs import open_zarr
from earthgraph.evaluate.options import Period, Stations
from earthgraph.scoring import sources

if TYPE_CHECKING:  # the model's types: imported (with torch) only in checkpoint mode
    from earthgraph.training.model_forecasts import ModelRun


def station_settings(stations: Stations, reference: str, clim_period: Period | None, map_lead_hours: float):
    """The settings of ``station_evaluation.evaluate_stations``."""
    from earthgraph.scoring.station_evaluation import StationSettings

    return StationSettings(
        reference=reference, climatology_period=tuple(clim_period) if clim_period else None,
        tolerance=pd.Timedelta(minutes=stations.tolerance_minutes) if stations.tolerance_minutes else None,
        persistence_max_age=(pd.Timedelta(hours=stations.persistence_max_age_hours)
                             if stations.persistence_max_age_hours is not None else None),
        block_length=stations.block_length, resamples=stations.bootstrap_resamples, map_lead_hours=map_lead_hours)


def _wanted_variables(stations: Stations, given: dict[str, xr.Dataset], grid: xr.Dataset | None,
                      run: ModelRun | None) -> list[str]:
    """The variables to read from the observations: --stations-variables (else every product
    of a checkpoint's model), and every variable of the station and gridded forecasts."""
    wanted = list(stations.variables or [])
    if run is not None and not wanted:
        from earthgraph.training.model_forecasts import station_products

        wanted = station_products(run)
    wanted += [v for f in [*given.values(), *([grid] if grid is not None else [])] for v in f.data_vars]
    return list(dict.fromkeys(wanted))


def _interpolated(stations: Stations, name: str, grid: xr.Dataset, obs: xr.Dataset,
                  statics: xr.Dataset | None) -> dict[str, xr.Dataset]:
    """The gridded forecast at the stations by each --interpolation (``<name>_<method>``),
    altitude-adjusted to stations with an elevation where ``statics`` holds the grid's
    geopotential_at_surface."""
    from earthgraph.scoring import points

    height = None
    if statics is not None and "geopotential_at_surface" in statics and "elevation" in obs.coords:
        height = points.surface_height(statics)
    shared = [v for v in grid.data_vars if v in obs]
    if not shared:
        return {}
    return {f"{name}_{method}": points.interpolate_to_stations(grid[shared], obs, method, height)
            for method in stations.interpolation}


def verify_stations(stations: Stations, storage_options: dict | None, out: Path, name: str, settings,
                    grid: xr.Dataset | None = None, run: ModelRun | None = None,
                    statics: xr.Dataset | None = None) -> tuple[pd.DataFrame, list[Path]]:
    """Score at the stations of --stations-obs: ``run``'s forecasts decoded at them, the
    gridded forecast ``grid`` (time, prediction_timedelta, latitude, longitude) interpolated
    to them, and every --stations-forecast. Returns the station scores' rows and the files
    written."""
    from earthgraph.scoring import station_evaluation
    from earthgraph.scoring.station_obs import StationDataError

    given = {sources.stem(p): open_zarr(p, "station forecast", storage_options) for p in stations.forecasts}
    wanted = _wanted_variables(stations, given, grid, run)
    with reported():
        obs = station_evaluation.open_station_observations(stations.obs, wanted, storage_options=storage_options,
                                                           layout=stations.layout)
        forecasts = dict(given)
        if run is not None:
            from earthgraph.training.model_forecasts import forecasts_at_stations

            forecasts[name] = forecasts_at_stations(run, obs)
        if grid is not None:
            forecasts.update(_interpolated(stations, name, grid, obs, statics))
        if not forecasts:
            raise StationDataError("no station forecast to score: give --checkpoint, a gridded --forecast or "
                                   "--stations-forecast")
        return station_evaluation.evaluate_stations(forecasts, obs, out, settings)


def station_summary(name: str, out: Path, paths: list[Path]) -> dict:
    """The JSON summary of a station-only evaluation."""
    return {"forecast": name, "out": str(out), "outputs": sorted(str(p) for p in paths)}


def print_station_report(table: pd.DataFrame, stations: Stations, reference: str) -> None:
    """The station scorecard of a station-only evaluation."""
    from earthgraph.scoring.station_evaluation import format_station_scorecard

    print(f"station verification at {stations.obs} (skill against {reference}; difference with its "
          f"{stations.bootstrap_resamples}-resample paired block-bootstrap interval, * where it excludes 0)")
    print(format_station_scorecard(table, reference))

