"""Forecasts at observations: a batch's forecasts at its verifying (target) observations,
and the observation-space forecast store they are written to.

The store has one group per observation type, with the type's channels in
physical units (clipped to their valid ranges; an ensemble's mean), the verifying
observation's position, time and error, its metadata features, and more metadata
columns: ``window`` (1 for the first window after the initialisation),
``hours_since_init``, and ``observed_<channel>`` (the verifying observation's
value, NaN where that channel was not observed), so that the store alone is
enough for observation-space verification (``earthgraph.scoring.obs_space``).
Rows are sorted by time; an observation verified by several initialisations
appears once for each.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from earthgraph.data.batch import METADATA_SCALE_DEGREES, denormalise_and_clip
from earthgraph.data.obs_types import Channel, ObservationType
from earthgraph.data.schema import ObservationSchema
from earthgraph.data.store import ObservationStore, observed_column
from earthgraph.data.store_writer import StoreWriter
from earthgraph.data.windows import WindowDataset, collate_windows
from earthgraph.training.predict import StartStates


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
            value = denormalise_and_clip(p.double().cpu().numpy(), mean, std, spec.valid_min, spec.valid_max)
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
                **{m: (o.meta[:, j].double().cpu().numpy() * METADATA_SCALE_DEGREES).astype(np.float32)
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


def observation_forecast_store(module, store: ObservationStore, init_times: np.ndarray, leads_hours: list[float],
                               input_windows: int, path: Path, batch_size: int = 8,
                               start_states: StartStates | None = None,
                               history_windows: dict[str, int] | None = None) -> Path:
    """Forecasts at every verifying observation of the windows up to the longest lead,
    written as a forecast store (:func:`write_observation_forecasts`) at ``path``;
    from ``start_states(times)`` (cycled analyses) where given. ``input_windows`` and
    ``history_windows``: the inputs the model was trained on (the data module's)."""
    model = module.model.eval()
    windows = max(1, math.ceil(max(leads_hours) / model.config.window_hours - 1e-9))
    dataset = WindowDataset(store, init_times, model.schema, model.config.window_hours, windows,
                            input_windows=input_windows, history_windows=history_windows)
    batches = []
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            batch = collate_windows([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            initial = None
            if start_states is not None:
                initial = start_states(dataset.init_times[start:start + batch_size]).to(
                    next(model.parameters()).device)
            batches.append(observation_forecasts(module, batch, initial))
    write_observation_forecasts(path, model.schema, batches, {"store": str(store.path)})
    return path
