"""Gridded products from a trained forecaster, in the WeatherBench2 forecast layout.

``forecast_on_grid`` encodes the observations before each initialisation
time, rolls the latent state forward window by window, and decodes each
product's head at every grid point at each requested lead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from earthgraph.data.batch import ObsSet
from earthgraph.data.obs_types import Product
from earthgraph.data.store import ObservationStore
from earthgraph.data.windows import WindowDataset, collate_windows, windows_before
from earthgraph.forecaster import GraphDOPForecaster, ModelState


def grid_targets(lat_deg: np.ndarray, lon_deg: np.ndarray, batch: int, time_in_window: float, n_meta: int) -> ObsSet:
    """Every grid point of every sample as decoder targets (metadata zero: nadir)."""
    lat2, lon2 = np.meshgrid(np.radians(lat_deg), np.radians(lon_deg), indexing="ij")
    n = lat2.size
    lat = torch.from_numpy(lat2.ravel().astype(np.float32)).repeat(batch)
    lon = torch.from_numpy(lon2.ravel().astype(np.float32)).repeat(batch)
    return ObsSet(
        values=torch.zeros(batch * n, 0), error=torch.zeros(batch * n, 0), lat=lat, lon=lon,
        time=torch.full((batch * n,), time_in_window), meta=torch.zeros(batch * n, n_meta),
        sample=torch.arange(batch).repeat_interleave(n),
    )


StartStates = Callable[[np.ndarray], ModelState]


def stack_states(states: list[ModelState], members: int) -> ModelState:
    """One batch from single-sample states (each ``members`` rows), member-major as the
    forecaster keeps them: row m * B + b is member m of sample b."""
    def stack(ts: list[torch.Tensor]) -> torch.Tensor:
        x = torch.stack([t.view(members, *t.shape[1:]) for t in ts], dim=1)  # (M, B, N, F)
        return x.reshape(-1, *x.shape[2:])

    amounts = None if states[0].amounts is None else stack([s.amounts for s in states])
    return ModelState(stack([s.h for s in states]), amounts)


@torch.no_grad()
def cycled_analyses(model: GraphDOPForecaster, dataset: WindowDataset, init_times: np.ndarray,
                    spin_up_windows: int) -> tuple[StartStates, dict]:
    """The cycled system's states at ``init_times`` (s since 1970): one cycle per phase of
    the initialisations within the window, from a cold start ``spin_up_windows``
    windows before the first (later if the store starts later), through every window
    to the last, keeping the analyses at the initialisation times (on the CPU).

    Returns (a function from initialisation times to their batched states, a summary
    of the cycles: spin-up windows, windows run)."""
    if not model.cycling:
        raise ValueError("cycled_analyses: the model is not a cycling model (model.cycling is false)")
    model.eval()
    device = next(model.parameters()).device
    w = int(round(model.window_seconds))
    times = np.sort(np.asarray(init_times, np.int64))
    earliest = int(dataset.store.time_range[0])
    kept: dict[int, ModelState] = {}
    spin_ups, run = [], 0
    for phase in np.unique(times % w):
        group = times[times % w == phase]
        first = int(group[0]) - spin_up_windows * w
        if first < earliest:  # as much spin-up as the store holds
            first += -(-(earliest - first) // w) * w
        spin_ups.append((int(group[0]) - first) // w)
        state = model.cold_state(1, device)
        wanted = set(group.tolist())
        for start in range(first, int(group[-1]), w):
            obs = {k: v.to(device) for k, v in dataset.analysis_window(start).items()}
            t = torch.tensor([float(start)], dtype=torch.float64, device=device)
            state = model.assimilate(model.step(state, t), obs, t)
            run += 1
            if start + w in wanted:
                kept[start + w] = state.to("cpu")
        if int(group[0]) == first:  # no window at all before the first initialisation
            kept[first] = model.cold_state(1, "cpu")

    def start_states(batch_times: np.ndarray) -> ModelState:
        return stack_states([kept[int(t)] for t in batch_times], model.members)

    return start_states, {"spin_up_windows": min(spin_ups), "windows_cycled": run}


@torch.no_grad()
def forecast_on_grid(model: GraphDOPForecaster, dataset: WindowDataset, init_times: np.ndarray,
                     leads_hours: list[float], lat_deg: np.ndarray, lon_deg: np.ndarray,
                     products: tuple[Product, ...], land_sea_mask: np.ndarray | None = None,
                     batch_size: int = 8, on_step: Callable[[ModelState], None] | None = None,
                     start_states: StartStates | None = None) -> xr.Dataset:
    """Forecasts of ``products`` with dims (time, prediction_timedelta, latitude, longitude).

    Values are in physical units, clipped to each channel's valid range, and
    NaN where the product does not exist (``mask`` land/ocean).
    ``on_step(state)``, if given, sees the encoded state and then the state after
    every window, batch by batch, e.g. to record budget totals along a long forecast.
    ``start_states(times)``: the states to forecast from (cycled analyses, see
    :func:`cycled_analyses`); by default each is encoded from its input windows.
    """
    model.eval()
    device = next(model.parameters()).device
    w = model.window_seconds / 3600.0
    lead_window = [max(1, math.ceil(lead / w - 1e-9)) for lead in leads_hours]
    frac = [(lead - (k - 1) * w) / w for lead, k in zip(leads_hours, lead_window)]
    n_windows = max(lead_window)
    nlat, nlon = len(lat_deg), len(lon_deg)
    out = {p.variable: np.full((len(init_times), len(leads_hours), nlat, nlon), np.nan, np.float32) for p in products}
    types = list(dict.fromkeys(p.obs_type for p in products))  # each decoded once per lead
    graphs: dict[int, dict] = {}  # batch size -> the grid's decoder graphs
    for start in range(0, len(init_times), batch_size):
        times = init_times[start:start + batch_size]
        b = len(times)
        init = torch.tensor(times.astype(np.float64), dtype=torch.float64, device=device)
        if start_states is not None:
            state = start_states(times).to(device)
        else:
            inputs = collate_windows([{"init_time": int(t), "inputs": dataset.input_window(int(t)), "targets": []}
                                      for t in times])
            state = model.encode({k: v.to(device) for k, v in inputs["inputs"].items()}, init,
                                 dataset.input_windows)
        if on_step is not None:
            on_step(state)
        for k in range(1, n_windows + 1):
            wstart = init + (k - 1) * model.window_seconds
            state = model.step(state, wstart)
            if on_step is not None:
                on_step(state)
            for li in [i for i, kk in enumerate(lead_window) if kk == k]:
                targets = {name: grid_targets(lat_deg, lon_deg, b, frac[li], len(model.schema[name]["metadata"]))
                           .to(device) for name in types}
                if b not in graphs:  # the grid's graphs: the same for every lead and window
                    graphs[b] = model.decoder_graphs(targets)
                preds = model.decode(state, targets, wstart, graphs[b])
                for p in products:
                    spec = model.schema[p.obs_type]
                    c = spec["channels"].index(p.channel)
                    pred = preds[p.obs_type]
                    if pred.dim() == 3:  # an ensemble's products are its mean
                        pred = pred.mean(dim=0)
                    pred = pred[:, c].float().cpu().numpy()
                    value = pred * spec["std"][c] + spec["mean"][c]
                    value = np.clip(value, spec["valid_min"][c], spec["valid_max"][c])
                    out[p.variable][start:start + b, li] = value.reshape(b, nlat, nlon)
    ds = xr.Dataset(
        {v: (("time", "prediction_timedelta", "latitude", "longitude"), a) for v, a in out.items()},
        coords={
            "time": pd.to_datetime(init_times, unit="s").values,
            "prediction_timedelta": pd.to_timedelta(leads_hours, unit="h").values,
            "latitude": lat_deg, "longitude": lon_deg,
        },
    )
    if land_sea_mask is not None:
        land = xr.DataArray(land_sea_mask > 0.5, dims=("latitude", "longitude"))
        for p in products:
            if p.mask == "land":
                ds[p.variable] = ds[p.variable].where(land)
            elif p.mask == "ocean":
                ds[p.variable] = ds[p.variable].where(~land)
    for p in products:
        ds[p.variable].attrs.update({"units": p.units, "sphere": p.sphere, "source": f"{p.obs_type}.{p.channel}"})
    return ds


def observation_forecast_store(module, store: ObservationStore, init_times: np.ndarray, leads_hours: list[float],
                               input_windows: int, path: Path, batch_size: int = 8,
                               start_states: StartStates | None = None,
                               history_windows: dict[str, int] | None = None) -> Path:
    """Forecasts at every verifying observation of the windows up to the longest lead,
    written as a forecast store (:mod:`earthgraph.training.writers`) at ``path``;
    from ``start_states(times)`` (cycled analyses) where given. ``input_windows`` and
    ``history_windows``: the inputs the model was trained on (the data module's)."""
    from earthgraph.training.writers import observation_forecasts, write_observation_forecasts

    model = module.model.eval()
    windows = max(1, math.ceil(max(leads_hours) / module.hparams.window_hours - 1e-9))
    dataset = WindowDataset(store, init_times, model.schema, module.hparams.window_hours, windows,
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


def long_forecast(model: GraphDOPForecaster, store: ObservationStore, first_init: int, truth_end: int, days: float,
                  input_windows: int, lat_deg: np.ndarray, lon_deg: np.ndarray, products: tuple[Product, ...],
                  land_sea_mask: np.ndarray | None = None, spin_up_windows: int = 0,
                  history_windows: dict[str, int] | None = None) -> dict | None:
    """A forecast of ``days`` with daily products and the budget totals after every window.

    It starts at ``first_init`` (seconds since 1970) if the truth (ending at
    ``truth_end``) covers ``days`` after it, else as early as the store allows
    (whole days, after its input windows); ``days`` is cut to what the truth covers.
    Returns {"forecast": WB2-layout dataset, "totals": {budget: (windows + 1,)},
    "days": int}, or None when fewer than two days fit.
    """
    window = model.window_seconds
    earliest = int(store.time_range[0] + windows_before(input_windows, history_windows) * window)
    earliest = -(-earliest // 86400) * 86400  # a whole day
    start = min(int(first_init), max(earliest, int(truth_end - days * 86400)))
    days = int(min(days, (truth_end - start) // 86400))
    if days < 2:
        return None
    dataset = WindowDataset(store, np.array([start]), model.schema, window / 3600.0, 1, input_windows=input_windows,
                            history_windows=history_windows)
    totals: dict[str, list[float]] = {}

    def record(state):
        for name, total in model.budget_totals(state).items():
            totals.setdefault(name, []).append(float(total[0]))

    starts, cycle = None, {"spin_up_windows": 0}
    if model.cycling and spin_up_windows:
        starts, cycle = cycled_analyses(model, dataset, dataset.init_times, spin_up_windows)
    fc = forecast_on_grid(model, dataset, dataset.init_times, [24.0 * d for d in range(1, days + 1)], lat_deg,
                          lon_deg, products, land_sea_mask, 1, on_step=record, start_states=starts)
    return {"forecast": fc, "totals": {k: np.asarray(v) for k, v in totals.items()}, "days": days,
            "spin_up_windows": cycle["spin_up_windows"]}
