"""An evaluation from start to end, step by step: open and check the inputs (making a
checkpoint's forecasts), score them beside the baselines, verify them at the observations
and the stations, diagnose the long forecast, write, draw, print and log the results.

Two kinds of run: against a gridded truth (:func:`evaluate_on_grid`), or, when there is
none and --stations-obs is given, at the stations alone (:func:`evaluate_at_stations`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from earthgraph.evaluate import report, scoring
from earthgraph.evaluate.checkpoint import model_forecasts, start_model_run
from earthgraph.evaluate.errors import reported
from earthgraph.evaluate.inputs import (
    ScoringInputs,
    check_reference,
    checked_inputs,
    has_truth,
    open_forecast,
    open_grid,
    output_dir,
    require,
)
from earthgraph.evaluate.options import EvaluationOptions
from earthgraph.evaluate.stations import print_station_report, station_settings, station_summary, verify_stations
from earthgraph.scoring import evaluation, obs_space, sources
from earthgraph.scoring.diagnostics import Diagnostics, diagnose


@dataclass(frozen=True)
class EvaluationResult:
    """What an evaluation wrote and printed."""

    table: pd.DataFrame  # every score: scores.csv's rows (station_scores' rows for stations alone)
    summary: dict  # the JSON summary line
    out: Path  # the output folder


def evaluate(options: EvaluationOptions) -> EvaluationResult:
    """Run the evaluation ``options`` describe into its output folder. Raises
    :class:`~earthgraph.evaluate.errors.EvaluationError` for bad input; a run that fails
    before writing anything leaves no empty output folder behind (a later run may then use
    the name), while what it wrote, or another run's files, stay."""
    clock = report.Stopwatch()
    out = output_dir(options)
    made = not out.exists()
    try:
        # A chunk that cannot be read, where no step named it (the scoring reads lazily).
        with reported(sources.UnreadableInputError):
            if options.stations.obs and not has_truth(options.inputs):  # point observations only
                return evaluate_at_stations(options, out, clock)
            with scoring.scheduler(options.scoring.scheduler) as client:
                return evaluate_on_grid(options, out, clock, client)
    except BaseException:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def load_inputs(options: EvaluationOptions, out: Path, clock: report.Stopwatch) -> ScoringInputs:
    """Open and check everything, making a checkpoint's forecasts first."""
    check_reference(options)
    inputs = options.inputs
    truth = open_grid(inputs.truth_location, "truth", inputs.storage_options)
    origin = model_forecasts(options, truth, out, clock.lap) if inputs.checkpoint else open_forecast(options)
    if options.obs_space.forecast_obs:
        origin.forecast_obs = require(options.obs_space.forecast_obs, "forecast store", inputs.storage_options)
    with reported():
        return checked_inputs(options, origin, truth, f"truth {inputs.truth_location}", clock.lap)


def verify_observations(options: EvaluationOptions, inp: ScoringInputs, out: Path) -> pd.DataFrame | None:
    """obs_space.csv and obs_space.nc from the forecast store, or from the gridded forecast
    sampled at the observations of --store; None when there is neither (or it is off)."""
    origin = inp.origin
    if not options.obs_space.enabled or (origin.forecast_obs is None and origin.grid_store is None):
        return None
    if origin.forecast_obs is not None:
        with reported():
            departures = obs_space.departures_from_store(origin.forecast_obs)
    else:
        try:
            departures = obs_space.departures_at_store(inp.forecast, origin.grid_store, options.inputs.storage_options)
        except ValueError as err:  # a store with none of the forecast's variables observed in its leads
            print(f"note: no observation-space verification: {err}")
            return None
    bin_hours = options.obs_space.lead_bin_hours or origin.window_hours or 12.0
    return obs_space.write_statistics(departures, inp.regions, bin_hours, out, origin.period, options.verification.by)


def physical_diagnostics(inp: ScoringInputs, out: Path) -> Diagnostics | None:
    """Budgets, stability and coupling of a checkpoint's long forecast (diagnostics.csv, .json)."""
    long = inp.origin.long
    if long is None:
        return None
    diag = diagnose(long.forecast, long.totals, inp.truth, inp.climatology, long.days, long.spin_up_windows)
    diag.write(out)
    return diag


def evaluate_on_grid(options: EvaluationOptions, out: Path, clock: report.Stopwatch, client=None) -> EvaluationResult:
    """The whole evaluation against a gridded truth into ``out``; ``client``: a
    dask.distributed Client, or None. A sequence of steps, each timed: kept in one piece."""
    out.mkdir(parents=True, exist_ok=True)
    inp = load_inputs(options, out, clock)
    forecasts = scoring.forecasts_to_score(options.scoring, inp)
    clock.lap("baselines")
    results = scoring.score(options.scoring, inp, forecasts, client)
    left_out = scoring.left_out(results, inp, options.scoring, computed_climatology=not options.climatology.path)
    paths = evaluation.write_results(results, out)
    reference = options.scoring.reference
    v = report.Verified(inp, evaluation.results_table(results), reference, outputs=list(paths.values()))
    clock.lap("scores")
    pictures = report.draw_pictures(inp, v.table, reference, options.outputs.map_lead, out)
    v.outputs += pictures
    clock.lap("plots")
    v.obs_stats = verify_observations(options, inp, out)
    clock.lap("obs_space")
    v.diagnostics = physical_diagnostics(inp, out)
    if v.diagnostics is not None:
        clock.lap("diagnostics")
    if options.stations.obs:
        settings = station_settings(options.stations, reference, inp.origin.clim_period, options.outputs.map_lead)
        v.stations, station_paths = verify_stations(options.stations, options.inputs.storage_options, out, inp.name,
                                                    settings, inp.forecast, inp.origin.run, inp.truth)
        v.stations_obs, v.outputs = options.stations.obs, v.outputs + station_paths
        clock.lap("stations")
    report.print_report(v)
    summary = report.summary(v, out, left_out)
    if options.outputs.wandb_dir:
        from earthgraph.training.wandb_results import log_evaluation

        o = options.outputs
        summary["wandb_run"] = log_evaluation(v.table, v.obs_stats, pictures, summary, o.wandb_dir, o.wandb_project,
                                              o.wandb_run_id)
    clock.lap("report")
    summary = clock.timed(summary)
    report.print_summary(summary)
    return EvaluationResult(v.table, summary, out)


def evaluate_at_stations(options: EvaluationOptions, out: Path, clock: report.Stopwatch) -> EvaluationResult:
    """Station verification alone (no gridded truth): a checkpoint's station forecasts, a
    gridded --forecast interpolated to the stations, or --stations-forecast."""
    out.mkdir(parents=True, exist_ok=True)
    inputs, run, clim_period = options.inputs, None, options.climatology.period
    if inputs.checkpoint:
        run, _, clim_period = start_model_run(options)
        run.spin_up(options.verification.spin_up_days)
    clock.lap("model")
    grid = open_grid(inputs.forecast, "forecast", inputs.storage_options) if inputs.forecast else None
    settings = station_settings(options.stations, options.scoring.reference, clim_period, options.outputs.map_lead)
    table, paths = verify_stations(options.stations, inputs.storage_options, out, inputs.forecast_name, settings,
                                   grid, run, grid)
    clock.lap("stations")
    print_station_report(table, options.stations, options.scoring.reference)
    summary = clock.timed(station_summary(inputs.forecast_name, out, paths))
    report.print_summary(summary)
    return EvaluationResult(table, summary, out)
