"""``train.py predict``: forecasts written as a WeatherBench2-layout zarr (gridded), as an
observation store (the forecast at every verifying observation,
:mod:`earthgraph.training.obs_forecasts`) and, given a station list, at stations (a
zarr and a tidy table).

Station forecasts (:func:`earthgraph.training.predict.station_forecasts`) are written
as ``forecast_stations.zarr`` (dims time, prediction_timedelta, [realization,]
station) and as a tidy table, ``forecast_stations.parquet``, one row per value
(:func:`station_table`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from lightning.pytorch.callbacks import BasePredictionWriter

from earthgraph.data.atomic import sibling_path
from earthgraph.data.generate import write_zarr_atomic
from earthgraph.data.grid import regular_grid_degrees
from earthgraph.data.obs_types import products_for
from earthgraph.data.stations import read_stations
from earthgraph.training.obs_forecasts import write_observation_forecasts
from earthgraph.training.predict import cycled_analyses, forecast_on_grid, station_forecasts, station_heads


TABLE_COLUMNS = ("station", "init_time", "lead_hours", "valid_time", "variable", "value")


def station_table(ds: xr.Dataset) -> pd.DataFrame:
    """A station forecast dataset (dims time, prediction_timedelta, [realization,] station) as a
    tidy table: one row per value, columns ``station, init_time, lead_hours, valid_time,
    variable, [realization,] value``; rows by variable, then time, lead, [member,] station."""
    dims = ("time", "prediction_timedelta") + (("realization",) if "realization" in ds.dims else ()) + ("station",)
    shape = tuple(ds.sizes[d] for d in dims)
    index = np.indices(shape).reshape(len(dims), -1)  # every value's position, C order
    init = ds["time"].values[index[0]]
    lead = ds["prediction_timedelta"].values[index[1]]
    parts = []
    for name in ds.data_vars:
        part = {"station": ds["station"].values[index[-1]], "init_time": init,
                "lead_hours": lead / np.timedelta64(1, "h"), "valid_time": init + lead,
                "variable": np.full(index.shape[1], name, dtype=object)}
        if "realization" in dims:
            part["realization"] = ds["realization"].values[index[2]]
        part["value"] = ds[name].transpose(*dims).values.reshape(-1)
        parts.append(pd.DataFrame(part))
    return pd.concat(parts, ignore_index=True)


def write_table_atomic(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a table as CSV when ``path`` ends in ``.csv``, else as parquet, beside ``path``
    and moved into place when complete (a reader never sees half a file)."""
    path = Path(path)
    tmp = sibling_path(path, "tmp")
    try:
        if path.suffix.lower() == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_station_forecasts(ds: xr.Dataset, zarr_path: str | os.PathLike, table_path: str | os.PathLike) -> None:
    """Write station forecasts as a zarr and as a tidy table (:func:`station_table`), each atomically."""
    write_zarr_atomic(ds, zarr_path)
    write_table_atomic(station_table(ds), table_path)


class ForecastWriter(BasePredictionWriter):
    """Writes ``forecast.zarr`` (gridded, WB2 layout: time, prediction_timedelta, latitude,
    longitude) and ``forecast_obs.zarr`` (observation space) into ``out_dir``; given
    ``stations``, also ``forecast_stations.zarr`` and ``forecast_stations.parquet``.

    The grid is the store's static grid when it has one, else a regular
    ``grid_degrees`` grid; ``leads_hours`` default to every window of the rollout.
    A cycling model forecasts from its cycled analyses: one cycle from a cold start
    ``spin_up_days`` before the first initialisation (or when the store starts).
    ``stations``: a CSV or parquet station list (:mod:`earthgraph.data.stations`);
    ``station_variables``: products or ``<type>.<channel>`` heads (default: every
    product; :func:`earthgraph.training.predict.station_heads`);
    ``station_leads_hours``: default the gridded forecast's leads.
    """

    def __init__(self, out_dir: str = "outputs/predictions", leads_hours: list[float] | None = None,
                 grid_degrees: float = 2.0, spin_up_days: float = 10.0, stations: str | None = None,
                 station_variables: list[str] | None = None, station_leads_hours: list[float] | None = None):
        super().__init__(write_interval="epoch")
        self.out_dir, self.leads_hours, self.grid_degrees = Path(out_dir), leads_hours, grid_degrees
        self.spin_up_days = spin_up_days
        self.stations, self.station_variables = stations, station_variables
        self.station_leads_hours = station_leads_hours
        self._station_list = None

    def on_predict_start(self, trainer, module) -> None:
        module.predict_start_states = None
        if self.stations is None and (self.station_variables or self.station_leads_hours):
            raise ValueError("ForecastWriter: station_variables or station_leads_hours given without stations "
                             "(a station list, CSV or parquet)")
        if self.station_leads_hours and min(self.station_leads_hours) <= 0:
            raise ValueError(f"ForecastWriter: station_leads_hours {self.station_leads_hours} must be positive hours")
        if self.stations is not None:  # a bad list or variable fails now, not after the whole prediction
            station_heads(module.model.schema, self.station_variables)
            self._station_list = read_stations(self.stations)
        if module.model.cycling:
            dataset = trainer.datamodule.datasets["predict"]
            windows = int(round(self.spin_up_days * 86400 / module.model.window_seconds))
            module.predict_start_states, _ = cycled_analyses(module.model, dataset, dataset.init_times, windows)

    def write_on_epoch_end(self, trainer, module, predictions, batch_indices) -> None:
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        dataset = dm.datasets["predict"]
        model = module.model
        self.out_dir.mkdir(parents=True, exist_ok=True)
        provenance = {"checkpoint": str(trainer.ckpt_path), "store": str(dm.hparams.store)}
        rows = write_observation_forecasts(self.out_dir / "forecast_obs.zarr", model.schema, predictions, provenance)
        static = dm.static or {}
        if "latitude" in static:
            lat, lon = np.asarray(static["latitude"]), np.asarray(static["longitude"])
        else:
            lat, lon = regular_grid_degrees(self.grid_degrees)
        window_hours = model.window_seconds / 3600.0
        leads = self.leads_hours or [window_hours * (k + 1) for k in range(dataset.rollout)]
        products = products_for(model.schema)
        land = np.asarray(static["land_sea_mask"]) if "land_sea_mask" in static else None
        starts = getattr(module, "predict_start_states", None)
        with torch.no_grad():
            ds = forecast_on_grid(model, dataset, dataset.init_times, leads, lat, lon, products, land,
                                  start_states=starts, progress=True)
        write_zarr_atomic(ds, self.out_dir / "forecast.zarr")
        summary = ", ".join(f"{k} {v}" for k, v in rows.items())
        print(f"predict: {len(dataset)} initialisations -> {self.out_dir / 'forecast.zarr'} "
              f"({len(products)} variables, leads {leads} h) and {self.out_dir / 'forecast_obs.zarr'} ({summary} rows)")
        if self.stations is not None:
            self._write_stations(model, dataset, self.station_leads_hours or leads, starts)

    def _write_stations(self, model, dataset, leads: Sequence[float], starts) -> None:
        stations = self._station_list if self._station_list is not None else read_stations(self.stations)
        ds = station_forecasts(model, dataset, dataset.init_times, leads, stations, self.station_variables,
                               start_states=starts, progress=True)
        zarr_path, table_path = self.out_dir / "forecast_stations.zarr", self.out_dir / "forecast_stations.parquet"
        write_station_forecasts(ds, zarr_path, table_path)
        print(f"predict: {len(stations)} stations from {stations.source} -> {zarr_path} and {table_path} "
              f"({', '.join(ds.data_vars)}; leads {list(leads)} h)")
