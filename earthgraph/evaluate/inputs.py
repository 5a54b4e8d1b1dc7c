"""What an evaluation scores, opened and checked: the forecast (a WB2-layout zarr, or a
checkpoint's forecasts, :mod:`earthgraph.evaluate.checkpoint`), the truth, the climatology,
the observation stores and the output folder.

Zarr inputs are opened lazily (dask arrays read chunk by chunk by the scoring) from paths
or fsspec URLs. Every problem is an :class:`EvaluationError` naming the input (forecast,
truth, climatology, observation store ...), its path and the field; data in another order
(descending latitudes, longitudes in [-180, 180), unsorted times) is put in order first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.evaluate.errors import EvaluationError, reported
from earthgraph.evaluate.options import Climatology, EvaluationOptions, Inputs, Period, Verification
from earthgraph.scoring import baselines, layout, sources
from earthgraph.scoring.climatology import check_days, check_hours, hourly_dayofyear_climatology
from earthgraph.scoring.regions import standard_regions

if TYPE_CHECKING:  # the model's types: imported (with torch) only in checkpoint mode
    from earthgraph.training.model_forecasts import LongForecast, ModelRun

RESULTS = ("scores.csv", "scores", "scorecard.png", "forecast.zarr", "forecast_obs.zarr", "obs_space.csv",
           "diagnostics.json")
"""What an evaluation writes into --out: a folder holding any of them holds another run's results."""


def output_dir(options: EvaluationOptions) -> Path:
    """--out, or a new outputs/evaluate/<forecast>-<UTC time>; a folder that holds an earlier
    evaluation's results (:data:`RESULTS`) is refused unless --overwrite."""
    if options.outputs.out is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        base = Path("outputs/evaluate") / f"{options.inputs.forecast_name}-{stamp}"
        out, n = base, 1
        while out.exists():  # two runs in one second
            out, n = base.with_name(f"{base.name}-{n}"), n + 1
        return out
    out = Path(options.outputs.out)
    earlier = [r for r in RESULTS if (out / r).exists()]
    if earlier and not options.outputs.overwrite:
        raise EvaluationError(f"--out {out} holds an earlier evaluation's results ({', '.join(earlier)}); give "
                              "another --out, or --overwrite to replace them")
    return out


def require(location: str | Path, what: str, storage_options: dict | None = None) -> str | Path:
    """``location`` (a Path, or the URL as given), after checking that it exists."""
    with reported(sources.MissingInputError, prefix=f"{what} "):
        there = sources.exists(location, storage_options)
    if not there:
        raise EvaluationError(f"{what} {location} does not exist")
    return str(location) if sources.is_url(location) else Path(location)


def open_zarr(location: str | Path, what: str, storage_options: dict | None = None) -> xr.Dataset:
    """The zarr dataset at a path or URL, opened lazily; ``what`` names it in errors."""
    with reported(sources.MissingInputError, sources.UnreadableInputError):
        return sources.open_zarr(require(location, what, storage_options), what, storage_options)


def open_grid(location: str | Path, what: str, storage_options: dict | None = None) -> xr.Dataset:
    """:func:`open_zarr`, its grid put in order (``layout.normalise_grid``)."""
    ds = open_zarr(location, what, storage_options)
    with reported():
        return layout.normalise_grid(ds, f"{what} {location}")


def has_truth(inputs: Inputs) -> bool:
    """Whether a gridded truth is there: --truth, or DATA_DIR/truth.zarr."""
    try:
        return sources.exists(inputs.truth_location, inputs.storage_options)
    except sources.MissingInputError:
        return False


@dataclass
class Forecast:
    """The forecast to score, as opened or made, and what came with it."""

    name: str  # its name in the results
    data: xr.Dataset  # WB2 layout (time, prediction_timedelta, [level,] [realization,] lat, lon), unchecked
    source: str  # "forecast <location>", for messages
    period: Period | None  # the verified period (None: all the forecast and the truth share)
    clim_period: Period | None  # the truth period of a computed climatology
    window_hours: float | None = None  # the model's window: the lead bins of the obs-space statistics
    headline: list[str] | None = None  # variables the summary judges (None: all scored)
    also_scored: dict[str, xr.Dataset] = field(default_factory=dict)  # e.g. a cycling model's memoryless self
    forecast_obs: str | Path | None = None  # a forecast store to verify in observation space
    grid_store: str | Path | None = None  # an observation store to sample a gridded --forecast at
    long: LongForecast | None = None  # the long forecast of the physical diagnostics
    run: ModelRun | None = None  # the checkpoint's model (station forecasts), None for a --forecast


def open_forecast(options: EvaluationOptions) -> Forecast:
    """A --forecast zarr (its variables in a fixed order: zarr 3 lists them in a varying one)."""
    inputs = options.inputs
    data = open_zarr(inputs.forecast, "forecast", inputs.storage_options)
    store = require(inputs.store, "observation store", inputs.storage_options) if inputs.store else None
    return Forecast(inputs.forecast_name, data[sorted(data.data_vars)], f"forecast {inputs.forecast}",
                    options.verification.period, options.climatology.period, grid_store=store)


def select_forecast(fc: xr.Dataset, source: str, verification: Verification, from_checkpoint: bool,
                    period: Period | None, truth: xr.Dataset) -> tuple[xr.Dataset, xr.DataArray]:
    """A forecast's requested leads and the initialisations with a verified pair in ``period``,
    with the (time, prediction_timedelta) bool mask of the verified pairs. Initialisations
    the truth does not hold are left out (the baselines start there). Raises ValueError."""
    fc = fc.isel(time=np.isin(fc.time.values, truth.time.values))
    if verification.leads and not from_checkpoint:  # a checkpoint forecast exactly these leads
        want = pd.to_timedelta(verification.leads, unit="h").values
        missing = [f"{x / np.timedelta64(1, 'h'):g}" for x in want if x not in fc.prediction_timedelta.values]
        if missing:
            have = [f"{x / np.timedelta64(1, 'h'):g}" for x in fc.prediction_timedelta.values]
            raise ValueError(f"{source}: no lead(s) {missing} h; its leads are {have} h")
        fc = fc.sel(prediction_timedelta=want)
    scored = baselines.verification_pairs(fc.time.values, fc.prediction_timedelta.values, period,
                                          truth.time.values, verification.by)
    keep = scored.any("prediction_timedelta").values
    if not keep.any():
        what = f"in [{period[0]}, {period[1]}) (--by {verification.by})" if period else "that the truth covers"
        raise ValueError(f"{source}: no initialisation of the truth's with a forecast valid time {what}")
    return fc.isel(time=keep), scored.isel(time=keep)


def load_climatology(climatology: Climatology, truth: xr.Dataset, period: Period | None, variables: list[str],
                     truth_source: str, storage_options: dict | None) -> xr.Dataset:
    """A WB2 climatology zarr (--climatology, opened lazily: the scoring reads the days it
    needs), or one computed from the (lazy) truth over ``period``, read a year at a time.
    Dims (hour, dayofyear, [level,] latitude, longitude). Raises ValueError."""
    if climatology.path:
        source = f"climatology {climatology.path}"
        clim = layout.normalise_grid(open_zarr(climatology.path, "climatology", storage_options), source)
        missing = [v for v in variables if v not in clim]
        if missing:
            raise ValueError(f"{source}: no variable(s) {missing}")
        layout.check_numbers(clim, variables, source)
        return layout.on_truth_grid(clim[variables], truth, source, truth_source)
    if not period:
        raise ValueError("give --climatology or --climatology-period (needed for acc and the climatology baseline); "
                         "at high resolution give --climatology: computing one needs ~64 x 366 bytes of work per grid "
                         "point and level (24 GB at 0.25 degrees)")
    return hourly_dayofyear_climatology(truth[variables], tuple(period), climatology.window_days)


@dataclass
class ScoringInputs:
    """What is scored: the forecast on the truth's grid, the truth, the climatology (for acc,
    the climatology baseline and the diagnostics), the regions. Forecast, truth and a
    --climatology zarr are lazy (dask): the scoring reads them chunk by chunk."""

    forecast: xr.Dataset  # (time, prediction_timedelta, [level,] [realization,] latitude, longitude)
    truth: xr.Dataset  # (time, [level,] latitude, longitude)
    variables: list[str]  # scored: those the forecast and the truth share (or --variables)
    climatology: xr.Dataset  # (hour, dayofyear, [level,] latitude, longitude)
    regions: dict  # name -> Region
    scored: xr.DataArray  # (time, prediction_timedelta) bool: the verified pairs
    truth_source: str  # "truth <location>", for messages
    origin: Forecast  # the forecast as given, and what came with it

    @property
    def name(self) -> str:
        return self.origin.name


def checked_inputs(options: EvaluationOptions, origin: Forecast, truth: xr.Dataset, truth_source: str,
                   lap) -> ScoringInputs:
    """The forecast checked, in order, on the truth's grid and cut to the verified pairs;
    the climatology (``lap("climatology")`` once it is there) and the regions. Raises
    ValueError naming the input, its path and the field."""
    fc = origin.data
    layout.check_forecast_layout(fc, origin.source)
    # Checked and in order before any selection: a repeated or unsorted time is never scored.
    fc, scored = select_forecast(layout.normalise_grid(fc, origin.source), origin.source, options.verification,
                                 origin.run is not None, origin.period, truth)
    fc = layout.on_truth_grid(fc, truth, origin.source, truth_source)
    variables = layout.scored_variables(fc, truth, origin.source, truth_source, options.inputs.variables)
    if "level" in fc.dims and "level" in truth.dims:
        missing = np.setdiff1d(fc.level.values, truth.level.values)
        if len(missing):
            raise ValueError(f"{truth_source}: no level(s) {missing.tolist()} of {origin.source}")
        truth = truth.sel(level=fc.level.values)
    long_vars = list(origin.long.forecast.data_vars) if origin.long else []
    climatology = load_climatology(options.climatology, truth, origin.clim_period,
                                   list(dict.fromkeys(variables + long_vars)), truth_source,
                                   options.inputs.storage_options)
    valid = baselines.valid_times(fc.time.values, fc.prediction_timedelta.values).values
    clim_source = f"climatology {options.climatology.path}" if options.climatology.path else "climatology"
    check_hours(climatology, valid, clim_source)
    check_days(climatology, valid, clim_source)
    lap("climatology")
    regions = standard_regions(truth, tuple(origin.clim_period) if origin.clim_period else None,
                               options.scoring.regions)
    return ScoringInputs(fc[variables], truth, variables, climatology, regions, scored, truth_source, origin)


def check_reference(options: EvaluationOptions) -> None:
    """--reference must be scored here: the forecast or one of the --baselines."""
    scoring, name = options.scoring, options.inputs.forecast_name
    if scoring.reference not in (name, *scoring.baselines):
        raise EvaluationError(f"--reference {scoring.reference!r} is not scored here (scored: {name}, "
                              f"{', '.join(scoring.baselines)})")
