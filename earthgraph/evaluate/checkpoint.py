"""Checkpoint mode: the model read from its checkpoint once, its initialisations chosen, and
its forecasts made (:mod:`earthgraph.training.model_forecasts` runs the model) and written.

Writes into the output folder ``forecast.zarr`` (the gridded forecasts) and, unless the
observation-space verification is off or given its own store, ``forecast_obs.zarr``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.evaluate.errors import EvaluationError, reported
from earthgraph.evaluate.inputs import Forecast, require
from earthgraph.evaluate.options import DEFAULT_LEADS, EvaluationOptions, Period, Verification
from earthgraph.scoring import baselines


def verified_inits(period: Period, leads: list[float], verification: Verification, first_time: int,
                   input_hours: float, truth_times: np.ndarray | None = None) -> np.ndarray:
    """The initialisations (int64 s since 1970, every --init-every-hours) a checkpoint forecasts
    from: with --by valid, every one whose forecast at some lead (hours) is valid in ``period``;
    with --by init, those in ``period``. Only times whose ``input_hours`` of input windows the
    store (starting at ``first_time``, s since 1970) holds and, given ``truth_times``
    (datetime64[ns]), that the truth holds."""
    step = np.timedelta64(int(round(verification.init_every_hours * 3600)), "s")
    start, end = (np.datetime64(t, "s") for t in period)
    start = start + (-(start - np.datetime64(0, "s")) % step)  # on the grid of initialisations
    times = np.arange(start, end, step)
    if verification.by == "valid":
        times = baselines.inits_verifying(times, pd.to_timedelta(leads, unit="h").values)
    times = np.asarray(times).astype("datetime64[s]")
    first_input = np.datetime64(int(first_time), "s") + np.timedelta64(int(round(input_hours * 3600)), "s")
    in_truth = np.isin(times.astype("datetime64[ns]"), truth_times) if truth_times is not None else True
    times = times[in_truth & (times >= first_input)]
    if len(times) == 0:
        raise EvaluationError(f"no initialisation for {period} (--by {verification.by}) has its inputs in the store"
                              + (" and its time in the truth" if truth_times is not None else ""))
    return times.astype(np.int64)


def start_model_run(options: EvaluationOptions, truth_times: np.ndarray | None = None,
                    need_climatology_period: bool = False):
    """The checkpoint's model on --device and the observation store it forecasts from
    (--store, or DATA_DIR/obs.zarr), the initialisations it forecasts from (in the truth,
    given ``truth_times``), its cycle spun up for a cycling model. Returns
    (:class:`~earthgraph.training.model_forecasts.ModelRun`, the verified period, the
    climatology period)."""
    from earthgraph.data.store import ObservationStore
    from earthgraph.data.windows import windows_before
    from earthgraph.training.checkpoint_format import CheckpointError
    from earthgraph.training.model_forecasts import DeviceUnavailableError, ModelRun, load_forecaster

    inputs = options.inputs
    checkpoint = require(Path(inputs.checkpoint), "checkpoint")
    store_path = require(inputs.store_location, "observation store", inputs.storage_options)
    with reported(CheckpointError, DeviceUnavailableError):
        module, setup = load_forecaster(checkpoint, options.model.device)
    period = options.verification.period or setup.test_period
    clim_period = options.climatology.period or setup.train_period
    if need_climatology_period and (not period or (not clim_period and not options.climatology.path)):
        raise EvaluationError("give --period and --climatology-period (the checkpoint does not record them)")
    if not period:
        raise EvaluationError("give --period (the checkpoint does not record a test period)")
    store = ObservationStore(store_path, inputs.storage_options).load()
    leads = options.verification.leads or list(DEFAULT_LEADS)
    input_hours = windows_before(setup.input_windows, setup.history_windows) * setup.window_hours
    init_times = verified_inits(period, leads, options.verification, store.time_range[0], input_hours, truth_times)
    return ModelRun(module, setup, store, init_times, leads), period, clim_period


def grid_of(truth: xr.Dataset):
    """The truth's lat-lon grid, its land-sea mask and variables, to forecast on."""
    from earthgraph.training.model_forecasts import Grid

    land = truth["land_sea_mask"].values if "land_sea_mask" in truth else None
    return Grid(truth.latitude.values, truth.longitude.values, land, tuple(map(str, truth.variables)))


def model_forecasts(options: EvaluationOptions, truth: xr.Dataset, out: Path,
                    lap: Callable[[str], None]) -> Forecast:
    """Run the checkpoint's model: its gridded forecasts on the truth's grid (written to
    ``out/forecast.zarr``; a cycling model's from its cycled analyses, and beside them its
    memoryless self's), the observation-space forecasts (``out/forecast_obs.zarr``) and the
    long forecast of the physical diagnostics. ``lap(stage)`` marks each stage's end."""
    from earthgraph.data.generate import write_zarr_atomic
    from earthgraph.training import model_forecasts as mf

    run, period, clim_period = start_model_run(options, truth.time.values, need_climatology_period=True)
    grid, name, batch = grid_of(truth), options.inputs.forecast_name, options.model.batch_size
    also_scored = {}
    if run.module.model.cycling:
        # The cycled system, and beside it the same model without memory (a cold start
        # through the input windows only), scored in the same run.
        run.spin_up(options.verification.spin_up_days)
        lap("cycle")
        also_scored[f"{name}_memoryless"] = mf.gridded_forecast(run, grid, batch, memoryless=True)
    forecast = Forecast(name, mf.gridded_forecast(run, grid, batch), f"forecast {out / 'forecast.zarr'}", period,
                        clim_period, window_hours=run.setup.window_hours, headline=mf.headline_variables(run, grid),
                        also_scored=also_scored, run=run)
    write_zarr_atomic(forecast.data, out / "forecast.zarr")
    lap("gridded_forecasts")
    if options.obs_space.enabled and not options.obs_space.forecast_obs:
        forecast.forecast_obs = mf.forecasts_at_observations(run, out / "forecast_obs.zarr", batch)
        lap("observation_forecasts")
    if options.model.diagnostic_days > 0:
        forecast.long = mf.long_gridded_forecast(run, grid, options.model.diagnostic_days, truth.time.values[-1],
                                                 options.verification.spin_up_days)
        lap("long_forecast")
    return forecast
