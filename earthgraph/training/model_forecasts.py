"""A checkpoint's forecasts for evaluation: the model loaded once, its gridded, observation-space,
long and station forecasts, from cycled analyses where the model cycles.

``earthgraph.evaluate`` (the scoring entry point) calls these; they run the model, so they
live in ``training/`` (the only layer that imports Lightning and the models), beside
:mod:`earthgraph.training.predict`, whose forecast functions they drive. What they return is
arrays and datasets for ``earthgraph.scoring``, which never sees a model.

Times are seconds since 1970 (int64) unless they are numpy datetimes; leads are hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from lightning.pytorch.core.saving import _load_state
from lightning.pytorch.utilities.migration import migrate_checkpoint

from earthgraph.data.obs_types import Product, products_for
from earthgraph.data.stations import station_list
from earthgraph.data.store import ObservationStore
from earthgraph.data.windows import WindowDataset
from earthgraph.training.checkpoint_format import read_checkpoint
from earthgraph.training.module import ForecastModule
from earthgraph.training.obs_forecasts import observation_forecast_store
from earthgraph.training.predict import (
    StartStates,
    cycled_analyses,
    forecast_on_grid,
    long_forecast,
    station_forecasts,
)

class DeviceUnavailableError(RuntimeError):
    """--device names a device this machine does not have."""


def model_device(choice: str) -> torch.device:
    """The torch device of ``--device`` (cpu, cuda, cuda:N, auto: CUDA when available).
    Raises :class:`DeviceUnavailableError` for a CUDA device this machine lacks."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(choice)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise DeviceUnavailableError(f"--device {choice}: this machine has {count} CUDA device(s) (torch "
                                         f"{torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu "
                                         "or auto")
    return device


@dataclass(frozen=True)
class TrainedSetup:
    """What a checkpoint records of how its model was trained, as evaluation needs it."""

    window_hours: float  # length of one assimilation/forecast window
    input_windows: int  # windows of observations encoded before an initialisation
    history_windows: dict[str, int] | None  # longer input histories of chosen types
    test_period: tuple[str, str] | None  # [start, end) of the data module's test split
    train_period: tuple[str, str] | None  # [start, end) of its training split


def module_and_setup(checkpoint: dict) -> tuple[ForecastModule, TrainedSetup]:
    """The :class:`ForecastModule` of a checkpoint read by ``read_checkpoint`` (its
    weights loaded strictly, on the CPU) and its :class:`TrainedSetup`, without reading
    the file again.

    The one place that reads the checkpoint's hyperparameters: the module's
    (``hyper_parameters``, its ``__init__`` arguments, built as ``train.py`` built them:
    through the CLI's instantiator where one is recorded) and the data module's
    (``datamodule_hyper_parameters``)."""
    data = checkpoint.get("datamodule_hyper_parameters", {})
    migrate_checkpoint(checkpoint)  # Lightning's own upgrades of checkpoints of older Lightning versions
    # What LightningModule.load_from_checkpoint runs once it has read the file: its one
    # reader of a checkpoint dict (the instantiator allowlist, strict loading, hooks).
    module = _load_state(ForecastModule, checkpoint)
    setup = TrainedSetup(window_hours=module.model.config.window_hours, input_windows=int(data.get("input_windows", 1)),
                         history_windows=data.get("history_windows") or None,
                         test_period=_period(data.get("test_period")), train_period=_period(data.get("train_period")))
    return module, setup


def _period(recorded) -> tuple[str, str] | None:
    """A recorded [start, end) period (a list in YAML) as a tuple; None when not recorded."""
    return tuple(recorded) if recorded else None


def load_forecaster(path: str | Path, device: str = "cpu") -> tuple[ForecastModule, TrainedSetup]:
    """The checkpoint at ``path``, read once (migrated from an older format; a newer,
    truncated or corrupt one refused with a ``CheckpointError`` naming it), as its module
    on ``device`` in eval mode and its :class:`TrainedSetup`. Raises
    :class:`DeviceUnavailableError` for a device this machine lacks."""
    where = model_device(device)
    module, setup = module_and_setup(read_checkpoint(path, map_location="cpu"))
    return module.to(where).eval(), setup


@dataclass
class ModelRun:
    """A checkpoint's model ready to forecast: what it forecasts from and where."""

    module: ForecastModule
    setup: TrainedSetup
    store: ObservationStore  # the observations it encodes (and cycles through)
    init_times: np.ndarray  # (T,) int64 s since 1970
    leads: list[float]  # hours
    starts: StartStates | None = None  # the cycled analyses at init_times; None: encoded from the inputs
    spin_up_windows: int | None = None  # windows the shortest cycle ran before its first initialisation

    @cached_property
    def dataset(self) -> WindowDataset:
        """The windows before each initialisation, as the model was trained to read them."""
        return WindowDataset(self.store, self.init_times, self.module.model.schema, self.setup.window_hours, 1,
                             input_windows=self.setup.input_windows, history_windows=self.setup.history_windows)

    def spin_up(self, days: float) -> None:
        """For a cycling model: run its cycle from a cold start ``days`` before the first
        initialisation (or when the store starts) through every window to the last, and
        forecast from the analyses at ``init_times`` from now on. Nothing otherwise."""
        if not self.module.model.cycling:
            return
        windows = int(round(days * 24 / self.setup.window_hours))
        self.starts, cycle = cycled_analyses(self.module.model, self.dataset, self.init_times, windows)
        self.spin_up_windows = cycle["spin_up_windows"]


@dataclass(frozen=True)
class Grid:
    """A lat-lon grid to forecast on (the truth's) and what to forecast there."""

    lat: np.ndarray  # (nlat,) degrees, ascending
    lon: np.ndarray  # (nlon,) degrees in [0, 360), ascending
    land_sea_mask: np.ndarray | None  # (nlat, nlon), 1 on land; masks the land or ocean products
    variables: tuple[str, ...]  # the truth's variables (and coordinates): the products forecast are those among them


def grid_products(run: ModelRun, grid: Grid) -> tuple[Product, ...]:
    """The model's products that the grid's truth holds, in the model's order."""
    return tuple(p for p in products_for(run.module.model.schema) if p.variable in grid.variables)


def headline_variables(run: ModelRun, grid: Grid) -> list[str]:
    """The headline products (one per sphere) forecast on ``grid``: what the summary judges."""
    return [p.variable for p in grid_products(run, grid) if p.headline]


def gridded_forecast(run: ModelRun, grid: Grid, batch_size: int, memoryless: bool = False) -> xr.Dataset:
    """The model's products on ``grid``, dims (time, prediction_timedelta, latitude, longitude),
    physical units, NaN where the product does not exist. ``memoryless``: from states encoded
    from the input windows alone (a cycling model's cold start), not the cycled analyses."""
    return forecast_on_grid(run.module.model, run.dataset, run.init_times, run.leads, grid.lat, grid.lon,
                            grid_products(run, grid), grid.land_sea_mask, batch_size,
                            start_states=None if memoryless else run.starts, progress=not memoryless)


def forecasts_at_observations(run: ModelRun, path: Path, batch_size: int) -> Path:
    """Forecasts at every verifying observation up to the longest lead, written as a forecast
    store at ``path`` (``forecast_obs.zarr``: ``earthgraph.scoring.obs_space`` reads it)."""
    return observation_forecast_store(run.module, run.store, run.init_times, run.leads, run.setup.input_windows,
                                      path, batch_size, run.starts, run.setup.history_windows)


@dataclass(frozen=True)
class LongForecast:
    """One long forecast for the physical diagnostics (``earthgraph.scoring.diagnostics``)."""

    forecast: xr.Dataset  # WB2 layout, time of length 1, daily leads
    totals: dict[str, np.ndarray]  # budget -> (windows + 1,) its global total after each window
    days: int  # the forecast's length
    spin_up_windows: int  # windows its cycle ran before it started (0: not cycled)


def long_gridded_forecast(run: ModelRun, grid: Grid, days: float, truth_end: np.datetime64,
                          spin_up_days: float) -> LongForecast | None:
    """A forecast of ``days`` (cut to what the truth, ending at ``truth_end``, covers) from
    the first initialisation or as early as that needs; None when fewer than two days fit."""
    end = int((truth_end - np.datetime64(0, "s")) // np.timedelta64(1, "s"))
    spin_up = int(round(spin_up_days * 24 / run.setup.window_hours))
    long = long_forecast(run.module.model, run.store, int(run.init_times[0]), end, days, run.setup.input_windows,
                         grid.lat, grid.lon, grid_products(run, grid), grid.land_sea_mask, spin_up,
                         run.setup.history_windows)
    if long is None:
        return None
    return LongForecast(long["forecast"], long["totals"], long["days"], long["spin_up_windows"])


def station_products(run: ModelRun) -> list[str]:
    """The variable names of every product the model forecasts (its station default)."""
    return [p.variable for p in products_for(run.module.model.schema)]


def forecasts_at_stations(run: ModelRun, observations: xr.Dataset) -> xr.Dataset:
    """The model's forecasts decoded at the stations of ``observations`` (dims station, with
    latitude and longitude on it), of every variable they observe: dims (time,
    prediction_timedelta, [realization,] station)."""
    stations = station_list(pd.DataFrame({"id": observations.station.values, "lat": observations.latitude.values,
                                          "lon": observations.longitude.values}), "the observations' stations")
    return station_forecasts(run.module, run.store, run.init_times, run.leads, stations,
                             list(observations.data_vars), input_windows=run.setup.input_windows,
                             history_windows=run.setup.history_windows, start_states=run.starts, progress=True)
