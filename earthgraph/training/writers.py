"""``train.py predict``: forecasts written as a WeatherBench2-layout zarr (gridded) and
as an observation store (the forecast at every verifying observation).

The observation-space store has one group per observation type, with the type's
channels in physical units (clipped to their valid ranges; an ensemble's mean),
the verifying observation's position, time and error, its metadata features,
and more metadata columns: ``window`` (1 for the first window after the
initialisation), ``hours_since_init``, and ``observed_<channel>`` (the verifying
observation's value, NaN where that channel was not observed), so that the store
alone is enough for observation-space verification
(``earthgraph.scoring.obs_space``). Rows are sorted by time; an observation
verified by several initialisations appears once for each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from earthgraph.data.generate import write_zarr_atomic
from earthgraph.data.obs_types import DEFAULT_PRODUCTS, Channel, ObservationType
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
            mean, std = np.asarray(spec["mean"], np.float64), np.asarray(spec["std"], np.float64)
            value = np.clip(p.double().cpu().numpy() * std + mean, spec["valid_min"], spec["valid_max"])
            observed = o.values.double().cpu().numpy() * std + mean
            start = init[o.sample.cpu().numpy()] + k * model.window_seconds
            seconds = start + o.time.double().cpu().numpy() * model.window_seconds
            out[name] = {
                "time": np.round(seconds).astype(np.int64), "lat": np.degrees(o.lat.double().cpu().numpy()),
                "lon": np.degrees(o.lon.double().cpu().numpy()), "values": value.astype(np.float32),
                "error": (o.error.double().cpu().numpy() * std).astype(np.float32),
                "window": np.full(len(o), k + 1, np.float32),
                "hours_since_init": ((seconds - init[o.sample.cpu().numpy()]) / 3600.0).astype(np.float32),
                **{observed_column(c): observed[:, j].astype(np.float32) for j, c in enumerate(spec["channels"])},
                **{m: (o.meta[:, j].double().cpu().numpy() * 90.0).astype(np.float32)
                   for j, m in enumerate(spec["metadata"])},
            }
        windows.append(out)
    return {"init_time": init, "windows": windows}


def forecast_obs_types(schema: dict) -> list[ObservationType]:
    """The forecast store's types: the schema's channels, its metadata features,
    ``window``, ``hours_since_init`` and the observed value of each channel."""
    types = []
    for name, s in schema.items():
        channels = tuple(Channel(c, u, lo, hi, 0.0) for c, u, lo, hi in
                         zip(s["channels"], s["units"], s["valid_min"], s["valid_max"]))
        types.append(ObservationType(name, s["sphere"], channels, (tuple(s["metadata"]) + ("window", "hours_since_init")
                                     + tuple(observed_column(c) for c in s["channels"])),
                                     description=f"earthgraph forecasts at {name} observations"))
    return types


def write_observation_forecasts(path: Path, schema: dict, batches: list[dict], provenance: dict) -> dict[str, int]:
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


class ForecastWriter(BasePredictionWriter):
    """Writes ``forecast.zarr`` (gridded, WB2 layout: time, prediction_timedelta, latitude,
    longitude) and ``forecast_obs.zarr`` (observation space) into ``out_dir``.

    The grid is the store's static grid when it has one, else a regular
    ``grid_degrees`` grid; ``leads_hours`` default to every window of the rollout.
    A cycling model forecasts from its cycled analyses: one cycle from a cold start
    ``spin_up_days`` before the first initialisation (or when the store starts).
    """

    def __init__(self, out_dir: str = "outputs/predictions", leads_hours: list[float] | None = None,
                 grid_degrees: float = 2.0, spin_up_days: float = 10.0):
        super().__init__(write_interval="epoch")
        self.out_dir, self.leads_hours, self.grid_degrees = Path(out_dir), leads_hours, grid_degrees
        self.spin_up_days = spin_up_days

    def on_predict_start(self, trainer, module) -> None:
        module.predict_start_states = None
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
        products = tuple(p for p in DEFAULT_PRODUCTS if p.obs_type in model.schema)
        land = np.asarray(static["land_sea_mask"]) if "land_sea_mask" in static else None
        with torch.no_grad():
            ds = forecast_on_grid(model, dataset, dataset.init_times, leads, lat, lon, products, land,
                                  start_states=getattr(module, "predict_start_states", None))
        write_zarr_atomic(ds, self.out_dir / "forecast.zarr")
        summary = ", ".join(f"{k} {v}" for k, v in rows.items())
        print(f"predict: {len(dataset)} initialisations -> {self.out_dir / 'forecast.zarr'} "
              f"({len(products)} variables, leads {leads} h) and {self.out_dir / 'forecast_obs.zarr'} ({summary} rows)")
