"""Forecasts from a trained forecaster at any points: grids (WeatherBench2 layout) and stations.

``forecast_at_points`` encodes the observations before each initialisation
time, rolls the latent state forward window by window, and decodes the chosen
heads at the given points at each requested lead. ``forecast_on_grid`` is that
at the points of a grid, reshaped; ``station_forecasts`` at a station list.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
import xarray as xr

from earthgraph.data.batch import ObsSet, denormalise_and_clip
from earthgraph.data.obs_types import Product, products_for
from earthgraph.data.schema import ObservationSchema, TypeSchema
from earthgraph.data.stations import StationList, read_stations
from earthgraph.data.store import ObservationStore
from earthgraph.data.windows import WindowDataset, collate_windows, windows_before
from earthgraph.models import GraphDOPForecaster, ModelState
from earthgraph.progress import progress as report_progress

Members = Literal["mean", "keep"]


class UnknownVariableError(ValueError):
    """A station variable that is neither a product of the model nor one of its ``<type>.<channel>`` heads."""


def radians32(deg: np.ndarray) -> torch.Tensor:
    """Degrees (any float dtype: the conversion is in that dtype) -> float32 radians."""
    return torch.from_numpy(np.radians(deg).astype(np.float32))


def point_targets(lat: torch.Tensor, lon: torch.Tensor, batch: int, time_in_window: float, n_meta: int) -> ObsSet:
    """The points ``lat, lon`` ((n,) float32 radians) of every sample as decoder targets
    (metadata zero: nadir); row ``s * n + j`` is point j of sample s."""
    n = len(lat)
    return ObsSet(
        values=torch.zeros(batch * n, 0), error=torch.zeros(batch * n, 0), lat=lat.repeat(batch),
        lon=lon.repeat(batch), time=torch.full((batch * n,), time_in_window), meta=torch.zeros(batch * n, n_meta),
        sample=torch.arange(batch).repeat_interleave(n),
    )


def grid_points(lat_deg: np.ndarray, lon_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (nlat * nlon,) latitudes and longitudes of a grid's points, latitude-major, in degrees."""
    lat2, lon2 = np.meshgrid(lat_deg, lon_deg, indexing="ij")
    return lat2.ravel(), lon2.ravel()


def grid_targets(lat_deg: np.ndarray, lon_deg: np.ndarray, batch: int, time_in_window: float, n_meta: int) -> ObsSet:
    """Every grid point of every sample as decoder targets (metadata zero: nadir)."""
    lat, lon = grid_points(lat_deg, lon_deg)
    return point_targets(radians32(lat), radians32(lon), batch, time_in_window, n_meta)


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


def lead_windows(leads_hours: Sequence[float], window_hours: float) -> tuple[list[int], list[float]]:
    """For each lead (h): the window it falls in (1 = the first after the initialisation; a
    lead on a window's end belongs to that window) and its position in it, in (0, 1]."""
    window = [max(1, math.ceil(lead / window_hours - 1e-9)) for lead in leads_hours]
    frac = [(lead - (k - 1) * window_hours) / window_hours for lead, k in zip(leads_hours, window)]
    return window, frac


def encoded_states(model: GraphDOPForecaster, dataset: WindowDataset, times: np.ndarray,
                   start_states: StartStates | None, device) -> ModelState:
    """The states to forecast ``times`` from: ``start_states``' or encoded from their input windows."""
    if start_states is not None:
        return start_states(times).to(device)
    init = torch.tensor(times.astype(np.float64), dtype=torch.float64, device=device)
    inputs = collate_windows([{"init_time": int(t), "inputs": dataset.input_window(int(t)), "targets": []}
                              for t in times])
    return model.encode({k: v.to(device) for k, v in inputs["inputs"].items()}, init, dataset.input_windows)


def physical_values(pred: torch.Tensor, spec: TypeSchema, channel: int, members: Members) -> np.ndarray:
    """One channel of a head's normalised predictions ((n, C), or (M, n, C) for an ensemble) in
    physical units, clipped to the channel's valid range: (n,), or (M, n) for an ensemble
    with ``members="keep"`` (``"mean"``: the ensemble mean)."""
    if pred.dim() == 3 and members == "mean":
        pred = pred.mean(dim=0)
    return denormalise_and_clip(pred[..., channel].float().cpu().numpy(), spec.mean[channel], spec.std[channel],
                                spec.valid_min[channel], spec.valid_max[channel])


@torch.no_grad()
def forecast_at_points(model: GraphDOPForecaster, dataset: WindowDataset, init_times: np.ndarray,
                       leads_hours: Sequence[float], lat_deg: np.ndarray, lon_deg: np.ndarray,
                       heads: Sequence[Product], batch_size: int = 8,
                       on_step: Callable[[ModelState], None] | None = None, start_states: StartStates | None = None,
                       members: Members = "mean", progress: bool = False,
                       desc: str = "point forecasts") -> dict[str, np.ndarray]:
    """Forecasts of ``heads`` (each a :class:`Product`: its ``obs_type`` head, ``channel``)
    at the points ``lat_deg, lon_deg`` ((P,) degrees) from ``init_times`` (s since 1970).

    Returns {head.variable: float32 (T, L, P)}, in physical units, clipped to each
    channel's valid range (no land/ocean masks); for an ensemble with ``members="keep"``,
    (T, L, M, P). ``on_step(state)``, if given, sees the encoded state and then the
    state after every window, batch by batch. ``start_states(times)``: the states to
    forecast from (cycled analyses, :func:`cycled_analyses`); by default each is
    encoded from its input windows. ``progress``: report the batches on stderr
    (:func:`earthgraph.progress.progress`); off for callers with their own summary.
    """
    names = [h.variable for h in heads]
    if len(set(names)) != len(names):
        raise ValueError(f"forecast_at_points: duplicate variable names in {names}")
    if np.shape(lat_deg) != np.shape(lon_deg) or np.ndim(lat_deg) != 1:
        raise ValueError(f"forecast_at_points: lat_deg {np.shape(lat_deg)} and lon_deg {np.shape(lon_deg)} must be "
                         "1-D and of one length")
    model.eval()
    device = next(model.parameters()).device
    lead_window, frac = lead_windows(leads_hours, model.window_seconds / 3600.0)
    lat, lon = radians32(lat_deg), radians32(lon_deg)
    n_points = len(lat)
    shape = (len(init_times), len(leads_hours)) + ((model.members,) if members == "keep" and model.members > 1 else ())
    out = {h.variable: np.full(shape + (n_points,), np.nan, np.float32) for h in heads}
    types = list(dict.fromkeys(h.obs_type for h in heads))  # each decoded once per lead
    graphs: dict[int, dict] = {}  # batch size -> the points' decoder graphs
    batches = range(0, len(init_times), batch_size)
    for start in report_progress(batches, desc=desc, unit="batch", enabled=progress):
        times = init_times[start:start + batch_size]
        b = len(times)
        init = torch.tensor(times.astype(np.float64), dtype=torch.float64, device=device)
        state = encoded_states(model, dataset, times, start_states, device)
        if on_step is not None:
            on_step(state)
        for k in range(1, max(lead_window) + 1):
            wstart = init + (k - 1) * model.window_seconds
            state = model.step(state, wstart)
            if on_step is not None:
                on_step(state)
            for li in [i for i, kk in enumerate(lead_window) if kk == k]:
                targets = {name: point_targets(lat, lon, b, frac[li], len(model.schema[name].metadata)).to(device)
                           for name in types}
                if b not in graphs:  # the points' graphs: the same for every lead and window
                    graphs[b] = model.decoder_graphs(targets)
                preds = model.decode(state, targets, wstart, graphs[b])
                for h in heads:
                    spec = model.schema[h.obs_type]
                    value = physical_values(preds[h.obs_type], spec, spec.channels.index(h.channel), members)
                    if value.ndim == 2:  # (M, b * P) -> (b, M, P)
                        value = value.reshape(-1, b, n_points).transpose(1, 0, 2)
                    out[h.variable][start:start + b, li] = value.reshape(b, *shape[2:], n_points)
    return out


def forecast_on_grid(model: GraphDOPForecaster, dataset: WindowDataset, init_times: np.ndarray,
                     leads_hours: list[float], lat_deg: np.ndarray, lon_deg: np.ndarray,
                     products: tuple[Product, ...], land_sea_mask: np.ndarray | None = None,
                     batch_size: int = 8, on_step: Callable[[ModelState], None] | None = None,
                     start_states: StartStates | None = None, progress: bool = False) -> xr.Dataset:
    """Forecasts of ``products`` with dims (time, prediction_timedelta, latitude, longitude):
    :func:`forecast_at_points` at the grid's points (an ensemble's mean), reshaped.

    Values are in physical units, clipped to each channel's valid range, and
    NaN where the product does not exist (``mask`` land/ocean).
    """
    lat, lon = grid_points(lat_deg, lon_deg)
    values = forecast_at_points(model, dataset, init_times, leads_hours, lat, lon, products, batch_size, on_step,
                                start_states, "mean", progress, desc="grid forecasts")
    grid = (len(init_times), len(leads_hours), len(lat_deg), len(lon_deg))
    ds = xr.Dataset(
        {v: (("time", "prediction_timedelta", "latitude", "longitude"), a.reshape(grid)) for v, a in values.items()},
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


def station_heads(schema: ObservationSchema, variables: Sequence[str] | None = None) -> tuple[Product, ...]:
    """What ``variables`` name, as products: a product of :func:`products_for` by its variable
    name (``air_temperature``), or any head's channel as ``"<type>.<channel>"``
    (``synop.t2m``, ``station_wind.u``). None: every product. Raises
    :class:`UnknownVariableError` listing what can be asked for."""
    if isinstance(variables, str):  # one name, not its letters
        variables = [variables]
    available = {p.variable: p for p in products_for(schema)}
    for name, spec in schema.items():
        available.update({f"{name}.{c}": Product(f"{name}.{c}", spec.sphere, name, c, u)
                          for c, u in zip(spec.channels, spec.units)})
    names = [p.variable for p in products_for(schema)] if variables is None else list(dict.fromkeys(variables))
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise UnknownVariableError(f"station variables {unknown or names}: {'unknown' if unknown else 'none given'}; "
                                   f"this model forecasts {sorted(available)}")
    return tuple(available[n] for n in names)


def station_dataset(values: dict[str, np.ndarray], heads: Sequence[Product], stations: StationList,
                    init_times: np.ndarray, leads_hours: Sequence[float]) -> xr.Dataset:
    """:func:`forecast_at_points`' arrays at ``stations`` as a dataset with dims (time,
    prediction_timedelta, [realization,] station), WeatherBench2-like."""
    members = next(iter(values.values())).shape[2] if next(iter(values.values())).ndim == 4 else None
    dims = ("time", "prediction_timedelta") + (("realization",) if members else ()) + ("station",)
    coords = {
        "time": pd.to_datetime(np.asarray(init_times), unit="s").values,
        "prediction_timedelta": pd.to_timedelta(list(leads_hours), unit="h").values,
        "station": stations.ids, "latitude": ("station", stations.lat), "longitude": ("station", stations.lon),
    }
    if members:
        coords["realization"] = np.arange(members)
    if stations.elevation is not None:
        coords["elevation"] = ("station", stations.elevation)
    ds = xr.Dataset({h.variable: (dims, values[h.variable]) for h in heads}, coords=coords,
                    attrs={"stations": stations.source, "longitude_convention": "[0, 360)"})
    for h in heads:
        ds[h.variable].attrs.update({"units": h.units, "sphere": h.sphere, "source": f"{h.obs_type}.{h.channel}"})
    ds["latitude"].attrs["units"], ds["longitude"].attrs["units"] = "degrees_north", "degrees_east"
    if stations.elevation is not None:
        ds["elevation"].attrs["units"] = "m"
    return ds


def station_forecasts(module_or_model, store: ObservationStore | WindowDataset, init_times: np.ndarray,
                      leads_hours: Sequence[float], stations: StationList | str | os.PathLike,
                      variables: Sequence[str] | None = None, *, input_windows: int = 1,
                      history_windows: dict[str, int] | None = None, batch_size: int = 8,
                      start_states: StartStates | None = None, progress: bool = False) -> xr.Dataset:
    """Forecasts at a station list, dims (time, prediction_timedelta, [realization,] station).

    ``module_or_model``: a :class:`ForecastModule` or its :class:`GraphDOPForecaster`.
    ``store``: the observation store (then ``input_windows``/``history_windows`` must be
    the model's training inputs, the data module's) or a :class:`WindowDataset` over it.
    ``stations``: a :class:`StationList` or a CSV/parquet path (:func:`read_stations`).
    ``variables``: see :func:`station_heads` (default: every product). Values in
    physical units, clipped to the valid range, with no land/ocean mask (a station's
    own value is wanted); an ensemble keeps its members (``realization``, for CRPS).
    """
    model = module_or_model if isinstance(module_or_model, GraphDOPForecaster) else module_or_model.model
    heads = station_heads(model.schema, variables)
    if not len(leads_hours) or min(leads_hours) <= 0:
        raise ValueError(f"station_forecasts: leads_hours {list(leads_hours)} must be positive hours (at least one)")
    if not isinstance(stations, StationList):
        stations = read_stations(stations)
    init_times = np.asarray(init_times, np.int64)
    dataset = store if isinstance(store, WindowDataset) else WindowDataset(
        store, init_times, model.schema, model.window_seconds / 3600.0, 1, input_windows=input_windows,
        history_windows=history_windows)
    values = forecast_at_points(model, dataset, init_times, leads_hours, stations.lat, stations.lon, heads,
                                batch_size, start_states=start_states, members="keep", progress=progress,
                                desc="station forecasts")
    return station_dataset(values, heads, stations, init_times, leads_hours)


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
