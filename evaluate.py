"""Score forecasts the WeatherBench2 way, against the gridded truth and the observations.

Score an earthgraph model (its forecasts are made first and written out):

    python evaluate.py --checkpoint outputs/quickstart/checkpoints/last.ckpt \\
        --data-dir outputs/quickstart/data --out outputs/quickstart

Score any WB2-layout forecast zarr (time, prediction_timedelta, [level,]
[realization,] latitude, longitude) against any truth zarr on its grid:

    python evaluate.py --forecast other_model.zarr --name other_model \\
        --truth truth.zarr --climatology-period 2020-01-01 2020-11-20 --out outputs/other

Every forecast is scored with WB2's definitions (see earthgraph/scoring):
area-weighted mse, rmse (root after the time mean), bias, mae, uncentred acc
against a day-of-year x hour climatology (61-day triangular window), and for
ensembles crps (fair), ensemble_mean_rmse, spread and spread_skill_ratio;
wind_vector rmse where u and v are both forecast; beside them variance_ratio,
the forecast's spatial variance over the truth's (below 1: smoothed). Regions:
WB2's thirteen plus land, ocean and sea-ice. Baselines scored in the same run:
persistence, climatology and, when the truth is an earthgraph nature run, the
perfect-model bound (the nature run itself started from a slightly perturbed
true state). By default every valid time of the period is verified at every
lead (--by valid). A cycling checkpoint is scored as the cycled system (its
cycle spun up --spin-up-days before the first initialisation) and, beside it,
as its memoryless self (<name>_memoryless).

Writes into --out:
  forecast.zarr            the model's gridded forecasts (checkpoint mode)
  scores/<forecast>.nc     WB2 results layout, per variable (metric, region, lead_time[, level])
  scores.csv               every score: forecast,sphere,variable,region,lead_hours,level,metric,value
  scorecard.png            skill (%) against --reference per variable, region and lead, coloured
  rmse_<sphere>.png        RMSE against lead per sphere (global), one line per forecast
  maps.png                 forecast, truth and error at --map-lead for the first initialisation
  forecast_obs.zarr        forecasts at the verifying observations (checkpoint mode)
  obs_space.csv / .nc      fc - ob departures: bias, rmse, stde, count per type, channel, region, lead bin
                           (checkpoint mode, --forecast-obs, or a --forecast with --store)
  diagnostics.csv / .json  budgets, stability and coupling over a --diagnostic-days forecast
and prints the global RMSE scorecard with the skill against --reference, then a
JSON summary line. With --wandb-dir the pictures and tables are also logged
to a W&B run (offline unless WANDB_MODE says otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.scoring import baselines, diagnostics, evaluation, obs_space, plots, scorecard
from earthgraph.scoring.climatology import hourly_dayofyear_climatology
from earthgraph.scoring.regions import WB2_REGIONS, standard_regions

BASELINES = ("persistence", "climatology", "perfect_model")


class Stopwatch:
    """Seconds spent per stage, for the summary line."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + now - self._t, 1)
        self._t = now


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("what to score (one of)")
    src.add_argument("--checkpoint", default=None,
                     help="a Lightning checkpoint of an earthgraph model (default, when --forecast is not given: "
                          "outputs/quickstart/checkpoints/last.ckpt)")
    src.add_argument("--forecast", default=None, help="a WB2-layout forecast zarr from any model")
    src.add_argument("--name", default=None, help="the scored forecast's name in the results (default: earthgraph "
                                                  "for a checkpoint, the zarr's stem for --forecast)")
    data = p.add_argument_group("truth and observations")
    data.add_argument("--data-dir", default="outputs/quickstart/data", help="folder with truth.zarr and obs.zarr")
    data.add_argument("--truth", default=None, help="gridded truth zarr, dims (time, [level,] latitude, longitude) "
                                                    "(default: DATA_DIR/truth.zarr)")
    data.add_argument("--store", default=None,
                      help="observation store (default: DATA_DIR/obs.zarr); with --forecast, the gridded forecast "
                           "is also verified at its observations (bilinear in space, linear in lead)")
    data.add_argument("--variables", nargs="+", default=None, help="variables to score (default: all the forecast "
                                                                   "and the truth share)")
    when = p.add_argument_group("initialisations and leads")
    when.add_argument("--period", nargs=2, metavar=("START", "END"), default=None,
                      help="the verified period [START, END) (default: the checkpoint's test period; all that a "
                           "--forecast and the truth share)")
    when.add_argument("--by", choices=("valid", "init"), default="valid",
                      help="what --period selects: 'valid' (default) verifies every valid time in it at every lead, "
                           "from initialisations as early as the longest lead needs; 'init' verifies the "
                           "initialisations in it at every lead the truth covers (WB2's by_init)")
    when.add_argument("--leads", nargs="+", type=float, default=None,
                      help="lead times, hours (default: 12 24 48 for a checkpoint, all of a --forecast's)")
    when.add_argument("--init-every-hours", type=float, default=12.0,
                      help="spacing of initialisations and verified valid times (checkpoint)")
    clim = p.add_argument_group("climatology (for acc and the climatology baseline)")
    clim.add_argument("--climatology", default=None, help="a WB2 climatology zarr (hour, dayofyear, ...) to use "
                                                          "instead of computing one from the truth")
    clim.add_argument("--climatology-period", nargs=2, metavar=("START", "END"), default=None,
                      help="truth period averaged into the climatology (default: the checkpoint's training period)")
    clim.add_argument("--climatology-window-days", type=int, default=61, help="WB2's smoothing window, days")
    score = p.add_argument_group("scoring")
    score.add_argument("--baselines", nargs="*", default=list(BASELINES), choices=BASELINES,
                       help="reference forecasts scored in the same run (perfect_model needs a nature-run truth)")
    score.add_argument("--perfect-model-perturbation", type=float, default=0.01,
                       help="relative size of the perfect model's initial perturbation")
    score.add_argument("--regions", nargs="+", default=None,
                       help=f"regions (default: all): {', '.join(WB2_REGIONS)}, land, ocean, sea-ice")
    score.add_argument("--reference", default="persistence", help="the forecast skill is measured against")
    score.add_argument("--no-skipna", action="store_true",
                       help="any NaN inside a region makes its score NaN (WB2's default); by default points where "
                            "the truth is NaN (land for SST, ocean for soil moisture) are left out, while a NaN "
                            "forecast where the truth exists still makes the score NaN")
    obs = p.add_argument_group("observation-space verification")
    obs.add_argument("--forecast-obs", default=None, help="a forecast store from train.py predict to verify "
                                                          "(checkpoint mode makes its own)")
    obs.add_argument("--lead-bin-hours", type=float, default=None, help="lead bins (default: the window length)")
    obs.add_argument("--no-obs-space", action="store_true", help="skip observation-space verification")
    diag = p.add_argument_group("physical diagnostics (checkpoint mode)")
    when.add_argument("--spin-up-days", type=float, default=10.0,
                      help="a cycling checkpoint's cycle starts cold this long before the first initialisation "
                           "(or when the store starts) and runs through every window after it; its memoryless "
                           "mode (a cold start through the input windows) is scored beside it as <name>_memoryless")
    diag.add_argument("--diagnostic-days", type=float, default=365.0,
                      help="length of the long forecast (0: skip); shortened to what the truth covers")
    out = p.add_argument_group("outputs")
    out.add_argument("--out", default="outputs/quickstart", help="output folder")
    out.add_argument("--map-lead", type=float, default=24.0, help="lead of the maps, hours")
    out.add_argument("--wandb-dir", default=None, help="also log pictures and tables to a W&B run in this folder")
    out.add_argument("--wandb-project", default="earthgraph")
    out.add_argument("--wandb-run-id", default=None,
                     help="add to this run (e.g. the training run) instead of a new one")
    p.add_argument("--batch-size", type=int, default=8, help="initialisations per model call")
    args = p.parse_args(argv)
    if args.checkpoint and args.forecast:
        p.error("give --checkpoint or --forecast, not both")
    if not args.forecast and not args.checkpoint:
        args.checkpoint = "outputs/quickstart/checkpoints/last.ckpt"
    return args


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        sys.exit(f"evaluate.py: {what} {path} does not exist")
    return path


def _open_zarr(path: Path, what: str) -> xr.Dataset:
    _require(path, what)
    try:
        return xr.open_zarr(path, consolidated=False)
    except Exception as err:  # a corrupt or foreign file: say which
        sys.exit(f"evaluate.py: cannot read {what} {path}: {err}")


def select_forecast(fc: xr.Dataset, source: str, args, period, truth: xr.Dataset) -> tuple[xr.Dataset, xr.DataArray]:
    """A forecast's requested leads and the initialisations with a verified pair in
    ``period``, with the (time, prediction_timedelta) mask of the verified pairs.
    Initialisations the truth does not hold are left out (the baselines start there)."""
    fc = fc.isel(time=np.isin(fc.time.values, truth.time.values))
    if args.leads and not args.checkpoint:
        want = pd.to_timedelta(args.leads, unit="h").values
        missing = [f"{x / np.timedelta64(1, 'h'):g}" for x in want if x not in fc.prediction_timedelta.values]
        if missing:
            have = [f"{x / np.timedelta64(1, 'h'):g}" for x in fc.prediction_timedelta.values]
            raise ValueError(f"{source}: no lead(s) {missing} h; its leads are {have} h")
        fc = fc.sel(prediction_timedelta=want)
    scored = baselines.verification_pairs(fc.time.values, fc.prediction_timedelta.values, period,
                                          truth.time.values, args.by)
    keep = scored.any("prediction_timedelta").values
    if not keep.any():
        what = f"in [{period[0]}, {period[1]}) (--by {args.by})" if period else "that the truth covers"
        raise ValueError(f"{source}: no initialisation of the truth's with a forecast valid time {what}")
    return fc.isel(time=keep), scored.isel(time=keep)


def load_climatology(args, truth_v: xr.Dataset, period, variables: list[str], truth_source: str) -> xr.Dataset:
    """A WB2 climatology zarr (--climatology), or one computed from the truth over ``period``."""
    if args.climatology:
        clim = evaluation.normalise_grid(_open_zarr(Path(args.climatology), "climatology"))
        missing = [v for v in variables if v not in clim]
        if missing:
            raise ValueError(f"{args.climatology}: no variable(s) {missing}")
        return evaluation.on_truth_grid(clim[variables], truth_v, args.climatology, truth_source).load()
    if not period:
        raise ValueError("give --climatology or --climatology-period (needed for acc and the climatology baseline)")
    return hourly_dayofyear_climatology(truth_v[variables], tuple(period), args.climatology_window_days)


def model_forecasts(args, truth: xr.Dataset, out: Path, clock: Stopwatch):
    """Run the checkpoint's model: gridded forecasts, observation-space forecasts,
    and the long forecast for the diagnostics. Returns (forecast, context)."""
    import torch

    from earthgraph.data.generate import write_zarr_atomic
    from earthgraph.data.obs_types import DEFAULT_PRODUCTS
    from earthgraph.data.store import ObservationStore
    from earthgraph.data.windows import WindowDataset, windows_before
    from earthgraph.training.module import ForecastModule
    from earthgraph.training.predict import (
        cycled_analyses,
        forecast_on_grid,
        long_forecast,
        observation_forecast_store,
    )

    ckpt_path = _require(Path(args.checkpoint), "checkpoint")
    store_path = _require(Path(args.store or Path(args.data_dir) / "obs.zarr"), "observation store")
    hp = torch.load(ckpt_path, map_location="cpu", weights_only=False).get("datamodule_hyper_parameters", {})
    period = args.period or hp.get("test_period")
    clim_period = args.climatology_period or hp.get("train_period")
    if not period or (not clim_period and not args.climatology):
        sys.exit("evaluate.py: give --period and --climatology-period (the checkpoint does not record them)")
    module = ForecastModule.load_from_checkpoint(ckpt_path, map_location="cpu")
    model = module.model
    store = ObservationStore(store_path).load()
    leads = args.leads or [12.0, 24.0, 48.0]
    input_windows = int(hp.get("input_windows", 1))
    history = hp.get("history_windows") or None  # longer input histories of chosen types
    window_h = module.hparams.window_hours
    init_times = verified_inits(period, leads, args, truth, store, windows_before(input_windows, history) * window_h)
    dataset = WindowDataset(store, init_times, model.schema, window_h, 1, input_windows=input_windows,
                            history_windows=history)
    products = tuple(p for p in DEFAULT_PRODUCTS if p.variable in truth and p.obs_type in model.schema)
    land = truth["land_sea_mask"].values if "land_sea_mask" in truth else None
    lat, lon = truth.latitude.values, truth.longitude.values
    context = {"period": period, "clim_period": clim_period, "window_hours": window_h,
               "headline": [p.variable for p in products if p.headline], "forecast_obs": None, "long": None,
               "also_scored": {}, "cycle": None}
    starts = None
    spin_up_windows = int(round(args.spin_up_days * 24 / window_h))
    if model.cycling:
        # The cycled system, and beside it the same model without memory (a cold start
        # through the input windows only), scored in the same run.
        starts, context["cycle"] = cycled_analyses(model, dataset, init_times, spin_up_windows)
        clock.lap("cycle")
        context["also_scored"][f"{args.name or 'earthgraph'}_memoryless"] = forecast_on_grid(
            model, dataset, init_times, leads, lat, lon, products, land, args.batch_size)
    fc = forecast_on_grid(model, dataset, init_times, leads, lat, lon, products, land, args.batch_size,
                          start_states=starts)
    write_zarr_atomic(fc, out / "forecast.zarr")
    clock.lap("gridded_forecasts")

    if not args.no_obs_space and not args.forecast_obs:
        context["forecast_obs"] = observation_forecast_store(module, store, init_times, leads, input_windows,
                                                             out / "forecast_obs.zarr", args.batch_size, starts,
                                                             history)
        clock.lap("observation_forecasts")
    if args.diagnostic_days > 0:
        t_end = int((truth.time.values[-1] - np.datetime64(0, "s")) // np.timedelta64(1, "s"))
        context["long"] = long_forecast(model, store, int(init_times[0]), t_end, args.diagnostic_days, input_windows,
                                        lat, lon, products, land, spin_up_windows, history)
        clock.lap("long_forecast")
    return fc, context


def verified_inits(period, leads: list[float], args, truth: xr.Dataset, store, input_hours: float) -> np.ndarray:
    """The initialisations (s since 1970, every --init-every-hours) a checkpoint forecasts
    from: with --by valid, every one whose forecast at some lead is valid in ``period``;
    with --by init, those in ``period``. Only times the truth holds and whose input
    windows the store holds."""
    step = np.timedelta64(int(round(args.init_every_hours * 3600)), "s")
    start, end = (np.datetime64(t, "s") for t in period)
    start = start + (-(start - np.datetime64(0, "s")) % step)  # on the grid of initialisations
    times = np.arange(start, end, step)
    if args.by == "valid":
        times = baselines.inits_verifying(times, pd.to_timedelta(leads, unit="h").values)
    times = np.asarray(times).astype("datetime64[s]")
    first_input = np.datetime64(int(store.time_range[0]), "s") + np.timedelta64(int(round(input_hours * 3600)), "s")
    times = times[np.isin(times.astype("datetime64[ns]"), truth.time.values) & (times >= first_input)]
    if len(times) == 0:
        sys.exit(f"evaluate.py: no initialisation for {period} (--by {args.by}) has its inputs in the store and "
                 "its time in the truth")
    return times.astype(np.int64)


def physical_diagnostics(long: dict, truth: xr.Dataset, climatology: xr.Dataset, out: Path) -> dict:
    """Budgets, stability and coupling of the long forecast; written as CSV and JSON."""
    fc = long["forecast"]
    init, leads = fc.time.values, fc.prediction_timedelta.values
    variables = list(fc.data_vars)
    aligned = baselines.align_truth(truth[variables], init, leads)
    clim = baselines.climatology_forecast(climatology[variables], init, leads)
    span = baselines.valid_times(init, np.concatenate([[np.timedelta64(0, "h")], leads]))
    truth_water = (truth["water_total"].sel(time=slice(span.values[0, 0], span.values[0, -1])).values
                   if "water_total" in truth else None)
    budgets = {n: diagnostics.budget_drift(t, truth_water if n == "water" else None) for n, t in long["totals"].items()}
    stable = {v: diagnostics.stability(fc[v], aligned[v]) for v in variables}
    coupled = diagnostics.coupling(fc, aligned, clim)
    table = diagnostics.diagnostics_table(budgets, stable, coupled)
    table.to_csv(out / "diagnostics.csv", index=False)
    result = {"init": str(init[0])[:19], "days": long["days"], "spin_up_windows": long.get("spin_up_windows", 0),
              "budgets": budgets, "stability": stable,
              "coupling": coupled}
    (out / "diagnostics.json").write_text(json.dumps(result, indent=1))
    return result


def log_to_wandb(args, table: pd.DataFrame, obs_stats: pd.DataFrame | None, pictures: list[Path], summary: dict):
    import wandb

    run = wandb.init(project=args.wandb_project, dir=args.wandb_dir, id=args.wandb_run_id,
                     resume="allow" if args.wandb_run_id else None, job_type="evaluate",
                     mode=os.environ.get("WANDB_MODE", "offline"))
    logged = {f"evaluate/{p.stem}": wandb.Image(str(p)) for p in pictures}
    logged["evaluate/scores"] = wandb.Table(dataframe=table)
    if obs_stats is not None and len(obs_stats):
        logged["evaluate/obs_space"] = wandb.Table(dataframe=obs_stats)
    run.log(logged)
    for r in scorecard.single_level(table, "rmse").itertuples():
        run.summary[f"evaluate/{r.forecast}/{r.variable}/rmse_{r.lead_hours:g}h"] = r.value
    run.summary["evaluate/summary"] = json.dumps(summary)
    run.finish()
    return run.id


@dataclass
class Inputs:
    """What is scored: the forecast on the truth's grid, the truth aligned to it, the
    climatology (for acc, the climatology baseline and the diagnostics), the regions."""

    name: str
    forecast: xr.Dataset
    truth: xr.Dataset
    variables: list[str]
    aligned: xr.Dataset
    climatology: xr.Dataset
    clim_valid: xr.Dataset
    regions: dict
    context: dict
    scored: xr.DataArray  # (time, prediction_timedelta) bool: the verified pairs


def load_inputs(args, out: Path, clock: Stopwatch) -> Inputs:
    """Open and check everything (making the model's forecasts in checkpoint mode);
    bad input ends the run with a message naming the file and the field."""
    truth_path = Path(args.truth or Path(args.data_dir) / "truth.zarr")
    truth = evaluation.normalise_grid(_open_zarr(truth_path, "truth"))
    if args.checkpoint:
        name = args.name or "earthgraph"
        fc, context = model_forecasts(args, truth, out, clock)
        fc_source = str(out / "forecast.zarr")
    else:
        name = args.name or Path(args.forecast).stem
        fc_source = args.forecast
        fc = _open_zarr(Path(args.forecast), "forecast")
        context = {"period": args.period, "clim_period": args.climatology_period, "window_hours": None,
                   "headline": None, "forecast_obs": None, "long": None, "also_scored": {}, "cycle": None,
                   "grid_store": _require(Path(args.store), "observation store") if args.store else None}
    if args.forecast_obs:
        context["forecast_obs"] = _require(Path(args.forecast_obs), "forecast store")
    if args.reference not in (name, *args.baselines):
        sys.exit(f"evaluate.py: --reference {args.reference!r} is not scored here (scored: {name}, "
                 f"{', '.join(args.baselines)})")
    try:
        evaluation.check_forecast_layout(fc, fc_source)
        fc, scored = select_forecast(fc, fc_source, args, context["period"], truth)
        fc = evaluation.on_truth_grid(evaluation.normalise_grid(fc), truth, fc_source, str(truth_path))
        variables = evaluation.scored_variables(fc, truth, fc_source, str(truth_path), args.variables)
        if "level" in fc.dims and "level" in truth.dims:
            missing = np.setdiff1d(fc.level.values, truth.level.values)
            if len(missing):
                raise ValueError(f"{truth_path}: no level(s) {missing.tolist()} of {fc_source}")
            truth = truth.sel(level=fc.level.values)
        init, leads = fc.time.values, fc.prediction_timedelta.values
        long_vars = list(context["long"]["forecast"].data_vars) if context["long"] else []
        clim_vars = list(dict.fromkeys(variables + long_vars))
        truth_v = truth[clim_vars].load()
        aligned = baselines.align_truth(truth_v[variables], init, leads, str(truth_path), scored)
        climatology = load_climatology(args, truth_v, context["clim_period"], clim_vars, str(truth_path))
        clim_valid = baselines.climatology_forecast(climatology[variables], init, leads)
        clock.lap("climatology")
        regions = standard_regions(truth, tuple(context["clim_period"]) if context["clim_period"] else None,
                                   args.regions)
    except ValueError as err:
        sys.exit(f"evaluate.py: {err}")
    return Inputs(name, fc[variables], truth, variables, aligned, climatology, clim_valid, regions, context, scored)


def reference_forecasts(args, inp: Inputs) -> dict[str, xr.Dataset]:
    """The baselines asked for, in the forecast's layout."""
    init, leads = inp.forecast.time.values, inp.forecast.prediction_timedelta.values
    out = {}
    if "persistence" in args.baselines:
        out["persistence"] = baselines.persistence(inp.truth[inp.variables], init, leads)  # loads the inits only
    if "climatology" in args.baselines:
        out["climatology"] = inp.clim_valid
    if "perfect_model" in args.baselines:
        if "config" not in inp.truth.attrs:
            print("evaluate.py: no perfect_model baseline: the truth is not an earthgraph nature run")
            return out
        from earthgraph.data.perfect_model import nature_config_from_truth, perfect_model_forecast

        lead_h = [float(x / np.timedelta64(1, "h")) for x in leads]
        out["perfect_model"] = perfect_model_forecast(nature_config_from_truth(inp.truth), init, lead_h,
                                                      args.perfect_model_perturbation, variables=inp.variables)
    return out


def draw_pictures(args, inp: Inputs, table: pd.DataFrame, out: Path) -> list[Path]:
    """scorecard.png, rmse_<sphere>.png and (lat-lon grids) maps.png."""
    pictures = [plots.plot_scorecard(table, out / "scorecard.png", args.reference, variables=inp.variables)]
    pictures += plots.plot_metric_by_lead(table, out)
    fc, leads = inp.forecast, inp.forecast.prediction_timedelta.values
    if "latitude" in fc.dims:
        map_lead = pd.Timedelta(hours=args.map_lead).to_timedelta64()
        mapped = [v for v in (inp.context["headline"] or inp.variables) if "level" not in fc[v].dims]
        if mapped:
            pictures.append(plots.plot_maps(fc, inp.aligned, mapped, map_lead if map_lead in leads else leads[0],
                                            out / "maps.png"))
    return pictures


def verify_observations(args, inp: Inputs, out: Path) -> pd.DataFrame | None:
    """obs_space.csv and obs_space.nc from the forecast store, or from the gridded
    forecast sampled at the observations of --store; None when there is neither."""
    if args.no_obs_space:
        return None
    if inp.context["forecast_obs"] is not None:
        departures = obs_space.departures_from_store(inp.context["forecast_obs"])
    elif inp.context.get("grid_store") is not None:
        from earthgraph.data.obs_types import DEFAULT_PRODUCTS
        from earthgraph.data.store import ObservationStore

        pairs = {p.variable: (p.obs_type, p.channel) for p in DEFAULT_PRODUCTS}
        try:
            departures = obs_space.departures_from_grid(inp.forecast, ObservationStore(inp.context["grid_store"]),
                                                        pairs)
        except ValueError as err:
            print(f"evaluate.py: no observation-space verification: {err}")
            return None
    else:
        return None
    if inp.context["period"]:
        departures = obs_space.departures_in_period(departures, inp.context["period"], args.by)
    bin_hours = args.lead_bin_hours or inp.context["window_hours"] or 12.0
    stats = obs_space.departure_statistics(departures, inp.regions, bin_hours)
    stats.to_csv(out / "obs_space.csv", index=False)
    obs_space.to_netcdf(stats, out / "obs_space.nc")
    return stats


def describe_pairs(scored: xr.DataArray) -> str:
    """What was verified, in words: the valid times and the initialisations."""
    valid = baselines.valid_times(scored.time.values, scored.prediction_timedelta.values).values[scored.values]
    init = scored.time.values[scored.any("prediction_timedelta").values]
    lead_h = [f"{x / np.timedelta64(1, 'h'):g}" for x in scored.prediction_timedelta.values]
    per_lead = sorted(set(scored.sum("time").values.tolist()))
    return (f"valid {str(valid.min())[:16]} .. {str(valid.max())[:16]} at leads {', '.join(lead_h)} h, "
            f"{'/'.join(map(str, per_lead))} forecasts per lead from {len(init)} initialisations "
            f"{str(init[0])[:16]} .. {str(init[-1])[:16]}")


def main(argv=None) -> pd.DataFrame:
    args = parse_args(argv)
    clock = Stopwatch()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    inp = load_inputs(args, out, clock)
    also = {n: f[inp.variables].sel(time=inp.forecast.time) for n, f in inp.context["also_scored"].items()}
    forecasts = {inp.name: inp.forecast, **also, **reference_forecasts(args, inp)}
    clock.lap("baselines")
    results = {n: evaluation.score_forecast(f, inp.aligned, inp.regions, inp.clim_valid, inp.variables,
                                            not args.no_skipna, inp.scored) for n, f in forecasts.items()}
    paths = evaluation.write_results(results, out)
    table = evaluation.results_table(results)
    clock.lap("scores")
    pictures = draw_pictures(args, inp, table, out)
    clock.lap("plots")
    obs_stats = verify_observations(args, inp, out)
    clock.lap("obs_space")
    diag = None
    if inp.context["long"] is not None:
        diag = physical_diagnostics(inp.context["long"], inp.truth, inp.climatology, out)
        clock.lap("diagnostics")

    cycle = inp.context["cycle"]
    cycled = (f"; cycled from a cold start {cycle['spin_up_windows']} windows before the first initialisation"
              if cycle else "")
    print(f"{inp.name} scorecard: {describe_pairs(inp.scored)}{cycled} (global RMSE; skill = 1 - RMSE / "
          f"RMSE_{args.reference})")
    print(scorecard.format_scorecard(table, reference=args.reference))
    print("spatial variance ratio to the truth (global; 1 = as varied as the truth, < 1 = smoothed)")
    print(scorecard.format_metric(table, "variance_ratio"))
    if obs_stats is not None:
        print("observation space (global): fc - ob departures")
        print(scorecard.format_obs_space(obs_stats))
    if diag is not None:
        print(scorecard.format_diagnostics(diag))
    headline = inp.context["headline"] or inp.variables
    summary = {"forecast": inp.name,
               f"beats_{args.reference}": scorecard.beats(table, inp.name, args.reference, headline),
               "outputs": sorted(str(p) for p in [*paths.values(), *pictures])}
    if args.wandb_dir:
        summary["wandb_run"] = log_to_wandb(args, table, obs_stats, pictures, summary)
    clock.lap("report")
    summary["seconds"] = clock.seconds
    summary["seconds_total"] = round(sum(clock.seconds.values()), 1)
    print(json.dumps(summary))
    return table


if __name__ == "__main__":
    main()
