"""``train.py predict``: forecasts written as a WeatherBench2-layout zarr (gridded), as an
observation store (the forecast at every verifying observation) and, given a station
list, at stations (a zarr and a tidy table).

The observation-space store has one group per observation type, with the type's
channels in physical units (clipped to their valid ranges; an ensemble's mean),
the verifying observation's position, time and error, its metadata features,
and more metadata columns: ``window`` (1 for the first window after the
initialisation), ``hours_since_init``, and ``observed_<channel>`` (the verifying
observation's value, NaN where that channel was not observed), so that the store
alone is enough for observation-space verification
(``earthgraph.scoring.obs_space``). Rows are sorted by time; an observation
verified by several initialisations appears once for each.

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
from earthgraph.data.obs_types import Channel, ObservationType, products_for
from earthgraph.data.schema import ObservationSchema
from earthgraph.data.stations import read_stations
from earthgraph.data.store import StoreWriter, observed_column


def observation_forecasts(module, batch: dict, start=None) -> dict:
    """Forecasts at the target observations of a batch, in physical units, as numpy
    columns per type and window: {"init_time": (B,), "windows": [{type: columns}]}.
    ``start``: the batch's initial states (cycled analyses) instead of its inputs'."""
    model = module.model
    preds = model(batch.get("inputs"), batch["init_time"], batch["targets"], start=start,
                  input_windows=batch.get("input_windows", 1))
    init = batch["init_time"].double().cpu().numpy()
    windows = []
    for k, (pred, tgt) in enumerate(zip(preds, batch["targets"])):
        out = {}
        for name, p in pred.items():
            o, spec = tgt[name], model.schema[name]
            if p.dim() == 3:
                p = p.mean(dim=0)
            mean, std = np.asarray(spec.mean, np.float64), np.asarray(spec.std, np.float64)
            value = np.clip(p.double().cpu().numpy() * std + mean, spec.valid_min, spec.valid_max)
            observed = o.values.double().cpu().numpy() * std + mean
            start = init[o.sample.cpu().numpy()] + k * model.window_seconds
            seconds = start + o.time.double().cpu().numpy() * model.window_seconds
            out[name] = {
                "time": np.round(seconds).astype(np.int64), "lat": np.degrees(o.lat.double().cpu().numpy()),
                "lon": np.degrees(o.lon.double().cpu().numpy()), "values": value.astype(np.float32),
                "error": (o.error.double().cpu().numpy() * std).astype(np.float32),
                "window": np.full(len(o), k + 1, np.float32),
                "hours_since_init": ((seconds - init[o.sample.cpu().numpy()]) / 3600.0).astype(np.float32),
                **{observed_column(c): observed[:, j].astype(np.float32) for j, c in enumerate(spec.channels)},
                **{m: (o.meta[:, j].double().cpu().numpy() * 90.0).astype(np.float32)
                   for j, m in enumerate(spec.metadata)},
            }
        windows.append(out)
    return {"init_time": init, "windows": windows}


def forecast_obs_types(schema: ObservationSchema) -> list[ObservationType]:
    """The forecast store's types: the schema's channels, its metadata features,
    ``window``, ``hours_since_init`` and the observed value of each channel."""
    types = []
    for name, s in schema.items():
        channels = tuple(Channel(c, u, lo, hi, 0.0) for c, u, lo, hi in
                         zip(s.channels, s.units, s.valid_min, s.valid_max))
        types.append(ObservationType(name, s.sphere, channels, (tuple(s.metadata) + ("window", "hours_since_init")
                                     + tuple(observed_column(c) for c in s.channels)),
                                     description=f"earthgraph forecasts at {name} observations"))
    return types


def write_observation_forecasts(path: Path, schema: ObservationSchema, batches: list[dict], provenance: dict) -> dict[str, int]:
    """Write the forecasts of :func:`observation_forecasts` batches as a store; rows per type."""
    rows = {}
    with StoreWriter(path, forecast_obs_types(schema), provenance=provenance, overwrite=True) as writer:
        for name in schema:
            parts = [w[name] for b in batches for w in b["windows"] if name in w and len(w[name]["time"])]
            if not parts:
                continue
            cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            order = np.argsort(cols["time"], kind="stable")
            writer.append(name, {k: v[order] for k, v in cols.items()})
            rows[name] = len(order)
    return rows


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
            from earthgraph.training.predict import station_heads

            station_heads(module.model.schema, self.station_variables)
            self._station_list = read_stations(self.stations)
        if module.model.cycling:
            from earthgraph.training.predict import cycled_analyses

            dataset = trainer.datamodule._datasets["predict"]
            windows = int(round(self.spin_up_days * 86400 / module.model.window_seconds))
            module.predict_start_states, _ = cycled_analyses(module.model, dataset, dataset.init_times, windows)

    def write_on_epoch_end(self, trainer, module, predictions, batch_indices) -> None:
        if not trainer.is_global_zero:
            return
        from earthgraph.training.predict import forecast_on_grid

        dm = trainer.datamodule
        dataset = dm._datasets["predict"]
        model = module.model
        self.out_dir.mkdir(parents=True, exist_ok=True)
        provenance = {"checkpoint": str(trainer.ckpt_path), "store": str(dm.hparams.store)}
        rows = write_observation_forecasts(self.out_dir / "forecast_obs.zarr", model.schema, predictions, provenance)
        static = dm.static or {}
        if "latitude" in static:
            lat, lon = np.asarray(static["latitude"]), np.asarray(static["longitude"])
        else:
            lat = np.arange(-90 + self.grid_degrees / 2, 90, self.grid_degrees)
            lon = np.arange(0, 360, self.grid_degrees)
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
        from earthgraph.training.predict import station_forecasts

        stations = self._station_list if self._station_list is not None else read_stations(self.stations)
        ds = station_forecasts(model, dataset, dataset.init_times, leads, stations, self.station_variables,
                               start_states=starts, progress=True)
        zarr_path, table_path = self.out_dir / "forecast_stations.zarr", self.out_dir / "forecast_stations.parquet"
        write_station_forecasts(ds, zarr_path, table_path)
        print(f"predict: {len(stations)} stations from {stations.source} -> {zarr_path} and {table_path} "
              f"({', '.join(ds.data_vars)}; leads {list(leads)} h)")
