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

Inputs are zarr stores on disk or at fsspec URLs (memory://, file://, s3://, gs:// with
their fsspec package; --storage-options for credentials), read lazily: the scoring runs
chunk by chunk of initialisations (--chunk-inits), so forecasts larger than memory are
scored, on this machine's threads or on a dask.distributed cluster (--scheduler).

Writes into --out (default outputs/evaluate/<forecast>-<UTC time>; a folder that holds
an earlier evaluation's results is refused unless --overwrite):
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

Bad input ends the run with a message naming the input (forecast, truth, climatology), its
path and the field, and no results: a damaged store (a chunk or metadata file that cannot be
read, named with its variable and chunk when the scoring reads it), wrong coordinates
(latitudes outside [-90, 90], non-numbers, repeated rows, NaT, times as text or in a time
zone that decoding would ignore) or a grid, times or days the others lack. Data in another
order (descending latitudes, longitudes in [-180, 180), unsorted times) is scored as in
order. Values are counted where they are left out or not finite (``left_out`` in the
summary, and attributes of each variable in scores/<forecast>.nc): NaN truth is left out,
infinite truth treated as missing; NaN, infinite or overflowing forecast values make their
scores NaN or inf, and each such score is explained by a printed note.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.scoring import baselines, chunked, diagnostics, evaluation, obs_space, plots, scorecard, sources
from earthgraph.scoring.climatology import check_days, check_hours, hourly_dayofyear_climatology
from earthgraph.scoring.regions import WB2_REGIONS, standard_regions

BASELINES = ("persistence", "climatology", "perfect_model")
# What an evaluation writes into --out: a folder holding any of them holds another run's results.
RESULTS = ("scores.csv", "scores", "scorecard.png", "forecast.zarr", "forecast_obs.zarr", "obs_space.csv",
           "diagnostics.json")
DEVICE = re.compile(r"cpu|auto|cuda(:\d+)?")


class DeviceUnavailableError(RuntimeError):
    """--device names a device this machine does not have."""


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
    src.add_argument("--forecast", default=None, help="a WB2-layout forecast zarr from any model (a path or an fsspec "
                                                      "URL: memory://, file://, s3://, gs:// ...)")
    src.add_argument("--name", default=None, help="the scored forecast's name in the results (default: earthgraph "
                                                  "for a checkpoint, the zarr's stem for --forecast)")
    data = p.add_argument_group("truth and observations")
    data.add_argument("--data-dir", default="outputs/quickstart/data",
                      help="folder (or URL) with truth.zarr and obs.zarr")
    data.add_argument("--truth", default=None, help="gridded truth zarr, dims (time, [level,] latitude, longitude) "
                                                    "(default: DATA_DIR/truth.zarr)")
    data.add_argument("--store", default=None,
                      help="observation store (default: DATA_DIR/obs.zarr); with --forecast, the gridded forecast "
                           "is also verified at its observations (bilinear in space, linear in lead)")
    data.add_argument("--storage-options", type=json.loads, default=None, metavar="JSON",
                      help="fsspec options for the URL inputs, e.g. '{\"anon\": true}' (credentials, caching)")
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
    clim.add_argument("--climatology", default=None,
                      help="a WB2 climatology zarr (hour, dayofyear, ...) to use instead of computing one from the "
                           "truth; computing one needs ~64 x 366 bytes of work per grid point and level (24 GB at "
                           "0.25 degrees) plus its output, so give one at that scale")
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
    score.add_argument("--chunk-inits", type=int, default=None, metavar="N",
                       help="initialisations scored per chunk (default: all at once when the scoring is estimated "
                            "under 4 GiB, exactly as in memory; else chunks of about 256 MiB)")
    score.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the scoring on this dask.distributed scheduler (tcp://host:8786; needs "
                            "pip install earthgraph[distributed]); default: this machine's threads")
    obs = p.add_argument_group("observation-space verification")
    obs.add_argument("--forecast-obs", default=None, help="a forecast store from train.py predict to verify "
                                                          "(checkpoint mode makes its own)")
    obs.add_argument("--lead-bin-hours", type=float, default=None, help="lead bins (default: the window length)")
    obs.add_argument("--no-obs-space", action="store_true", help="skip observation-space verification")
    sta = p.add_argument_group("station verification (against point observations)")
    sta.add_argument("--stations-obs", default=None, metavar="TABLE_OR_STORE",
                     help="point observations to verify at: a parquet/CSV table (long: station, time, variable, "
                          "value, lat, lon[, elevation]; or --stations-layout wide) or an observation store. Without "
                          "a gridded truth (no --truth, no DATA_DIR/truth.zarr) only the stations are scored")
    sta.add_argument("--stations-layout", choices=("long", "wide"), default="long", help="the table's layout")
    sta.add_argument("--stations-forecast", action="append", default=[], metavar="ZARR",
                     help="a station forecast (dims time, prediction_timedelta, [realization,] station; e.g. train.py "
                          "predict's forecast_stations.zarr) to score too (repeat for several)")
    sta.add_argument("--stations-variables", nargs="+", default=None,
                     help="checkpoint mode: the heads forecast at the stations, products or <type>.<channel> "
                          "(default: every product the observations hold)")
    sta.add_argument("--interpolation", nargs="+", choices=("nearest", "bilinear"), default=["bilinear"],
                     help="how a gridded forecast is taken to the stations (each scored as <name>_<method>)")
    sta.add_argument("--stations-tolerance-minutes", type=float, default=0.0,
                     help="largest gap between a forecast's valid time and the observation paired with it")
    sta.add_argument("--persistence-max-age-hours", type=float, default=None,
                     help="station persistence is the latest observation at most this old at the initialisation "
                          "(default: the observation exactly at it)")
    sta.add_argument("--block-length", default="auto",
                     help="bootstrap blocks of consecutive initialisations: a number, auto (Wilks' rule from the "
                          "lag-1 autocorrelation) or cube_root")
    sta.add_argument("--bootstrap-resamples", type=int, default=1000)
    diag = p.add_argument_group("physical diagnostics (checkpoint mode)")
    when.add_argument("--spin-up-days", type=float, default=10.0,
                      help="a cycling checkpoint's cycle starts cold this long before the first initialisation "
                           "(or when the store starts) and runs through every window after it; its memoryless "
                           "mode (a cold start through the input windows) is scored beside it as <name>_memoryless")
    diag.add_argument("--diagnostic-days", type=float, default=365.0,
                      help="length of the long forecast (0: skip); shortened to what the truth covers")
    out = p.add_argument_group("outputs")
    out.add_argument("--out", default=None, help="output folder (default: outputs/evaluate/<forecast>-<UTC time>, "
                                                 "a new one each run)")
    out.add_argument("--overwrite", action="store_true",
                     help="write into an --out that holds an earlier evaluation's results, replacing them")
    out.add_argument("--map-lead", type=float, default=24.0, help="lead of the maps, hours")
    out.add_argument("--wandb-dir", default=None, help="also log pictures and tables to a W&B run in this folder")
    out.add_argument("--wandb-project", default="earthgraph")
    out.add_argument("--wandb-run-id", default=None,
                     help="add to this run (e.g. the training run) instead of a new one")
    p.add_argument("--batch-size", type=int, default=8, help="initialisations per model call")
    p.add_argument("--device", type=_device_choice, default="cpu",
                   help="where the checkpoint's model runs: cpu (default), cuda, cuda:N, or auto (CUDA when there "
                        "is one)")
    args = p.parse_args(argv)
    if args.checkpoint and args.forecast:
        p.error("give --checkpoint or --forecast, not both")
    if not args.forecast and not args.checkpoint:
        args.checkpoint = "outputs/quickstart/checkpoints/last.ckpt"
    if args.chunk_inits is not None and args.chunk_inits < 1:
        p.error(f"--chunk-inits must be at least 1, got {args.chunk_inits}")
    if args.block_length not in ("auto", "cube_root"):
        if not args.block_length.isdigit() or int(args.block_length) < 1:
            p.error(f"--block-length: a positive number, auto or cube_root, got {args.block_length!r}")
        args.block_length = int(args.block_length)
    if args.stations_forecast and not args.stations_obs:
        p.error("--stations-forecast needs --stations-obs (the observations to verify it against)")
    return args


def _device_choice(text: str) -> str:
    if not DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: give cpu, cuda, cuda:N or auto")
    return text


def model_device(choice: str):
    """The torch device of ``--device`` (cpu, cuda, cuda:N, auto: CUDA when available).
    Raises :class:`DeviceUnavailableError` for a CUDA device this machine lacks."""
    import torch

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


def output_dir(args) -> Path:
    """--out, or a new outputs/evaluate/<forecast>-<UTC time>; refuses (exits) a folder that
    holds an earlier evaluation's results (:data:`RESULTS`) unless --overwrite."""
    if args.out is None:
        name = args.name or ("earthgraph" if args.checkpoint else sources.stem(args.forecast))
        base = Path("outputs/evaluate") / f"{name}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"
        out, n = base, 1
        while out.exists():  # two runs in one second
            out, n = base.with_name(f"{base.name}-{n}"), n + 1
        return out
    out = Path(args.out)
    earlier = [r for r in RESULTS if (out / r).exists()]
    if earlier and not args.overwrite:
        sys.exit(f"evaluate.py: --out {out} holds an earlier evaluation's results ({', '.join(earlier)}); give "
                 "another --out, or --overwrite to replace them")
    return out


def connect_scheduler(address: str):
    """A dask.distributed Client of the cluster at ``address``, the default scheduler from
    now on; exits with a message when the package is missing or the cluster unreachable."""
    try:
        from distributed import Client
    except ImportError:
        sys.exit("evaluate.py: --scheduler needs dask.distributed: pip install 'earthgraph[distributed]'")
    try:
        return Client(address)  # waits distributed.comm.timeouts.connect (30 s) for it
    except (OSError, TimeoutError) as err:
        sys.exit(f"evaluate.py: --scheduler {address}: cannot connect: {err}")


def _require(location: str | Path, what: str, storage_options: dict | None = None) -> str | Path:
    """``location`` (a Path, or the URL as given), after checking that it exists."""
    try:
        if not sources.exists(location, storage_options):
            sys.exit(f"evaluate.py: {what} {location} does not exist")
    except sources.MissingInputError as err:
        sys.exit(f"evaluate.py: {what} {err}")
    return str(location) if sources.is_url(location) else Path(location)


def _open_zarr(location: str | Path, what: str, storage_options: dict | None = None) -> xr.Dataset:
    """The zarr dataset at a path or URL, opened lazily; bad input exits naming it."""
    try:
        return sources.open_zarr(_require(location, what, storage_options), what, storage_options)
    except (sources.MissingInputError, sources.UnreadableInputError) as err:
        sys.exit(f"evaluate.py: {err}")


def _normalised(ds: xr.Dataset, source: str) -> xr.Dataset:
    """``evaluation.normalise_grid(ds)``; bad coordinates exit naming ``source``."""
    try:
        return evaluation.normalise_grid(ds, source)
    except ValueError as err:
        sys.exit(f"evaluate.py: {err}")


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


def load_climatology(args, truth: xr.Dataset, period, variables: list[str], truth_source: str) -> xr.Dataset:
    """A WB2 climatology zarr (--climatology, opened lazily: the scoring reads the days it
    needs), or one computed from the (lazy) truth over ``period``, read a year at a time."""
    if args.climatology:
        source = f"climatology {args.climatology}"
        clim = evaluation.normalise_grid(_open_zarr(args.climatology, "climatology", args.storage_options), source)
        missing = [v for v in variables if v not in clim]
        if missing:
            raise ValueError(f"{source}: no variable(s) {missing}")
        evaluation.check_numbers(clim, variables, source)
        return evaluation.on_truth_grid(clim[variables], truth, source, truth_source)
    if not period:
        raise ValueError("give --climatology or --climatology-period (needed for acc and the climatology baseline); "
                         "at high resolution give --climatology: computing one needs ~64 x 366 bytes of work per grid "
                         "point and level (24 GB at 0.25 degrees)")
    return hourly_dayofyear_climatology(truth[variables], tuple(period), args.climatology_window_days)


def model_forecasts(args, truth: xr.Dataset, out: Path, clock: Stopwatch):
    """Run the checkpoint's model: gridded forecasts, observation-space forecasts,
    and the long forecast for the diagnostics. Returns (forecast, context)."""
    from earthgraph.data.generate import write_zarr_atomic
    from earthgraph.data.obs_types import products_for
    from earthgraph.data.windows import WindowDataset, windows_before
    from earthgraph.training.predict import (
        cycled_analyses,
        forecast_on_grid,
        long_forecast,
        observation_forecast_store,
    )

    module, hp, store = load_model(args)
    model = module.model
    period = args.period or hp.get("test_period")
    clim_period = args.climatology_period or hp.get("train_period")
    if not period or (not clim_period and not args.climatology):
        sys.exit("evaluate.py: give --period and --climatology-period (the checkpoint does not record them)")
    leads = args.leads or [12.0, 24.0, 48.0]
    input_windows = int(hp.get("input_windows", 1))
    history = hp.get("history_windows") or None  # longer input histories of chosen types
    window_h = module.model.config.window_hours
    init_times = verified_inits(period, leads, args, store, windows_before(input_windows, history) * window_h,
                                truth.time.values)
    dataset = WindowDataset(store, init_times, model.schema, window_h, 1, input_windows=input_windows,
                            history_windows=history)
    products = tuple(p for p in products_for(model.schema) if p.variable in truth)
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
                          start_states=starts, progress=True)
    write_zarr_atomic(fc, out / "forecast.zarr")
    clock.lap("gridded_forecasts")

    if not args.no_obs_space and not args.forecast_obs:
        context["forecast_obs"] = observation_forecast_store(module, store, init_times, leads, input_windows,
                                                             out / "forecast_obs.zarr", args.batch_size, starts,
                                                             history)
        clock.lap("observation_forecasts")
    context["run"] = ModelRun(module, store, init_times, leads, input_windows, history, starts, clim_period)
    if args.diagnostic_days > 0:
        t_end = int((truth.time.values[-1] - np.datetime64(0, "s")) // np.timedelta64(1, "s"))
        context["long"] = long_forecast(model, store, int(init_times[0]), t_end, args.diagnostic_days, input_windows,
                                        lat, lon, products, land, spin_up_windows, history)
        clock.lap("long_forecast")
    return fc, context


def load_model(args):
    """The checkpoint's module on --device, its data module's hyperparameters, and the
    observation store it forecasts from (--store, or DATA_DIR/obs.zarr), loaded."""
    import torch

    from earthgraph.data.store import ObservationStore
    from earthgraph.training.module import ForecastModule

    ckpt_path = _require(Path(args.checkpoint), "checkpoint")
    store_path = _require(args.store or sources.join(args.data_dir, "obs.zarr"), "observation store",
                          args.storage_options)
    try:
        device = model_device(args.device)
    except DeviceUnavailableError as err:
        sys.exit(f"evaluate.py: {err}")
    hp = torch.load(ckpt_path, map_location="cpu", weights_only=False).get("datamodule_hyper_parameters", {})
    module = ForecastModule.load_from_checkpoint(ckpt_path, map_location=device).to(device)
    return module, hp, ObservationStore(store_path, args.storage_options).load()


@dataclass
class ModelRun:
    """A checkpoint's model and what its forecasts start from, for the station forecasts."""

    module: object
    store: object
    init_times: np.ndarray  # (n,) int64 s since 1970
    leads: list[float]  # hours
    input_windows: int
    history: dict | None
    starts: object  # cycled analyses (predict.StartStates) or None
    clim_period: tuple[str, str] | None


def verified_inits(period, leads: list[float], args, store, input_hours: float,
                   truth_times: np.ndarray | None = None) -> np.ndarray:
    """The initialisations (s since 1970, every --init-every-hours) a checkpoint forecasts
    from: with --by valid, every one whose forecast at some lead is valid in ``period``;
    with --by init, those in ``period``. Only times whose input windows the store holds
    (and, given ``truth_times``, that the truth holds)."""
    step = np.timedelta64(int(round(args.init_every_hours * 3600)), "s")
    start, end = (np.datetime64(t, "s") for t in period)
    start = start + (-(start - np.datetime64(0, "s")) % step)  # on the grid of initialisations
    times = np.arange(start, end, step)
    if args.by == "valid":
        times = baselines.inits_verifying(times, pd.to_timedelta(leads, unit="h").values)
    times = np.asarray(times).astype("datetime64[s]")
    first_input = np.datetime64(int(store.time_range[0]), "s") + np.timedelta64(int(round(input_hours * 3600)), "s")
    in_truth = np.isin(times.astype("datetime64[ns]"), truth_times) if truth_times is not None else True
    times = times[in_truth & (times >= first_input)]
    if len(times) == 0:
        sys.exit(f"evaluate.py: no initialisation for {period} (--by {args.by}) has its inputs in the store"
                 + (" and its time in the truth" if truth_times is not None else ""))
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
    """What is scored: the forecast on the truth's grid, the truth, the climatology (for
    acc, the climatology baseline and the diagnostics), the regions. Forecast, truth and a
    --climatology zarr are lazy (dask): the scoring reads them chunk by chunk."""

    name: str
    forecast: xr.Dataset
    truth: xr.Dataset
    variables: list[str]
    climatology: xr.Dataset
    regions: dict
    context: dict
    scored: xr.DataArray  # (time, prediction_timedelta) bool: the verified pairs
    truth_source: str


def load_inputs(args, out: Path, clock: Stopwatch) -> Inputs:
    """Open and check everything (making the model's forecasts in checkpoint mode);
    bad input ends the run with a message naming the file and the field."""
    truth_path = args.truth or sources.join(args.data_dir, "truth.zarr")
    truth_source = f"truth {truth_path}"
    truth = _normalised(_open_zarr(truth_path, "truth", args.storage_options), truth_source)
    if args.checkpoint:
        name = args.name or "earthgraph"
        fc, context = model_forecasts(args, truth, out, clock)
        fc_source = f"forecast {out / 'forecast.zarr'}"
    else:
        name = args.name or sources.stem(args.forecast)
        fc_source = f"forecast {args.forecast}"
        fc = _open_zarr(args.forecast, "forecast", args.storage_options)
        fc = fc[sorted(fc.data_vars)]  # zarr 3 lists a store's arrays in a varying order: rows in a fixed one
        context = {"period": args.period, "clim_period": args.climatology_period, "window_hours": None,
                   "headline": None, "forecast_obs": None, "long": None, "also_scored": {}, "cycle": None,
                   "grid_store": (_require(args.store, "observation store", args.storage_options)
                                  if args.store else None)}
    if args.forecast_obs:
        context["forecast_obs"] = _require(args.forecast_obs, "forecast store", args.storage_options)
    if args.reference not in (name, *args.baselines):
        sys.exit(f"evaluate.py: --reference {args.reference!r} is not scored here (scored: {name}, "
                 f"{', '.join(args.baselines)})")
    try:
        evaluation.check_forecast_layout(fc, fc_source)
        # Checked and in order before any selection: a repeated or unsorted time is never scored.
        fc, scored = select_forecast(evaluation.normalise_grid(fc, fc_source), fc_source, args, context["period"],
                                     truth)
        fc = evaluation.on_truth_grid(fc, truth, fc_source, truth_source)
        variables = evaluation.scored_variables(fc, truth, fc_source, truth_source, args.variables)
        if "level" in fc.dims and "level" in truth.dims:
            missing = np.setdiff1d(fc.level.values, truth.level.values)
            if len(missing):
                raise ValueError(f"{truth_source}: no level(s) {missing.tolist()} of {fc_source}")
            truth = truth.sel(level=fc.level.values)
        long_vars = list(context["long"]["forecast"].data_vars) if context["long"] else []
        clim_vars = list(dict.fromkeys(variables + long_vars))
        climatology = load_climatology(args, truth, context["clim_period"], clim_vars, truth_source)
        valid = baselines.valid_times(fc.time.values, fc.prediction_timedelta.values).values
        clim_source = f"climatology {args.climatology}" if args.climatology else "climatology"
        check_hours(climatology, valid, clim_source)
        check_days(climatology, valid, clim_source)
        clock.lap("climatology")
        regions = standard_regions(truth, tuple(context["clim_period"]) if context["clim_period"] else None,
                                   args.regions)
    except ValueError as err:
        sys.exit(f"evaluate.py: {err}")
    return Inputs(name, fc[variables], truth, variables, climatology, regions, context, scored, truth_source)


def reference_forecasts(args, inp: Inputs) -> dict[str, xr.Dataset | chunked.Baseline]:
    """The baselines asked for: persistence and climatology by name (the scoring makes
    them chunk by chunk), the perfect model in the forecast's layout."""
    init, leads = inp.forecast.time.values, inp.forecast.prediction_timedelta.values
    out: dict[str, xr.Dataset | chunked.Baseline] = {}
    if "persistence" in args.baselines:
        out["persistence"] = "persistence"
    if "climatology" in args.baselines:
        out["climatology"] = "climatology"
    if "perfect_model" in args.baselines:
        if "config" not in inp.truth.attrs:
            print("evaluate.py: no perfect_model baseline: the truth is not an earthgraph nature run")
            return out
        from earthgraph.data.perfect_model import nature_config_from_truth, perfect_model_forecast

        lead_h = [float(x / np.timedelta64(1, "h")) for x in leads]
        out["perfect_model"] = perfect_model_forecast(nature_config_from_truth(inp.truth), init, lead_h,
                                                      args.perfect_model_perturbation, variables=inp.variables)
    return out


NOTES = {"truth_missing": "NaN truth value(s) (--no-skipna: its scores there are NaN)",
         "truth_infinite": "infinite truth value(s), treated as missing",
         "forecast_missing": "NaN forecast value(s) where the truth exists (its scores there are NaN)",
         "forecast_infinite": "infinite forecast value(s) where the truth exists (its scores there are inf or NaN)",
         "climatology_missing": "non-finite climatology value(s) where the truth exists (its acc there is NaN)",
         "too_large": "value(s) too large to square in float64 (its scores there may be inf)"}
"""The counts (``evaluation.value_counts``) that explain a NaN or inf score, printed when not 0."""


def value_notes(results: dict[str, xr.Dataset], no_skipna: bool) -> dict[str, dict[str, dict[str, int]]]:
    """Print a note for every forecast and variable whose verified values include some
    that make its scores NaN or inf (:data:`NOTES`; NaN truth only with --no-skipna, else
    it is left out), so no score is non-finite without a reason. Returns every count that
    is not 0, the truth's (the same for every forecast) under "truth", for the summary."""
    counted: dict[str, dict[str, dict[str, int]]] = {}
    for name, ds in results.items():
        for var, da in ds.data_vars.items():
            counts = {k: int(da.attrs[k]) for k in evaluation.COUNTS if da.attrs.get(k, 0)}
            own = {k: n for k, n in counts.items() if not k.startswith("truth_")}
            truth = {k: n for k, n in counts.items() if k.startswith("truth_")}
            if truth and var not in counted.get("truth", {}):
                counted.setdefault("truth", {})[var] = truth
                shown = {k: n for k, n in truth.items() if k == "truth_infinite" or no_skipna}
                if shown:
                    print(f"evaluate.py: note: truth {var}: " + ", ".join(f"{n} {NOTES[k]}" for k, n in shown.items()))
            if own:
                counted.setdefault(name, {})[var] = own
                print(f"evaluate.py: note: {name} {var}: " + ", ".join(f"{n} {NOTES[k]}" for k, n in own.items()))
    return counted


def draw_pictures(args, inp: Inputs, table: pd.DataFrame, out: Path) -> list[Path]:
    """scorecard.png, rmse_<sphere>.png and (lat-lon grids) maps.png. A forecast without one
    finite RMSE (all NaN: see the note on non-finite values) has no skill to draw: it is left
    out of the scorecard, and no scorecard is drawn when that is the reference."""
    rmse = table[(table.metric == "rmse") & np.isfinite(table.value)]
    drawn = table[table.forecast.isin(set(rmse.forecast))]
    pictures = []
    if args.reference in set(rmse.forecast):
        pictures.append(plots.plot_scorecard(drawn, out / "scorecard.png", args.reference, variables=inp.variables))
    else:
        print(f"evaluate.py: no scorecard.png: the reference {args.reference} has no finite RMSE")
    pictures += plots.plot_metric_by_lead(table, out)
    fc, leads = inp.forecast, inp.forecast.prediction_timedelta.values
    if "latitude" in fc.dims:
        map_lead = pd.Timedelta(hours=args.map_lead).to_timedelta64()
        mapped = [v for v in (inp.context["headline"] or inp.variables) if "level" not in fc[v].dims]
        if mapped:
            first = inp.scored.isel(time=[0])
            truth = inp.truth[mapped].sel(time=baselines.truth_times_needed(first)).load()
            aligned = baselines.align_truth(truth, first.time.values, leads, inp.truth_source, first)
            pictures.append(plots.plot_maps(fc.isel(time=[0]), aligned, mapped,
                                            map_lead if map_lead in leads else leads[0],
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
            store = ObservationStore(inp.context["grid_store"], args.storage_options)
            departures = obs_space.departures_from_grid(inp.forecast, store, pairs)
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
    out = output_dir(args)
    made = not out.exists()
    try:
        if args.stations_obs and not has_truth(args):  # point observations only: score the stations alone
            return run_station_evaluation(args, out, clock)
        client = connect_scheduler(args.scheduler) if args.scheduler else None
        try:
            return run_evaluation(args, out, clock, client)
        except sources.UnreadableInputError as err:  # a chunk read where no stage named it: name it here
            sys.exit(f"evaluate.py: {err}")
        finally:
            if client is not None:
                client.close()
    except BaseException:
        # A run that fails before writing anything leaves no empty --out behind (a later run
        # may then use the name); what it wrote, or another run's files, stay.
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def has_truth(args) -> bool:
    """Whether a gridded truth is there: --truth, or DATA_DIR/truth.zarr."""
    location = args.truth or sources.join(args.data_dir, "truth.zarr")
    try:
        return sources.exists(location, args.storage_options)
    except sources.MissingInputError:
        return False


def station_run(args) -> ModelRun:
    """A checkpoint's model without a gridded truth: initialisations every --init-every-hours
    of the period whose inputs the store holds, cycled analyses for a cycling model."""
    from earthgraph.data.windows import WindowDataset, windows_before
    from earthgraph.training.predict import cycled_analyses

    module, hp, store = load_model(args)
    period = args.period or hp.get("test_period")
    if not period:
        sys.exit("evaluate.py: give --period (the checkpoint does not record a test period)")
    leads = args.leads or [12.0, 24.0, 48.0]
    input_windows, history = int(hp.get("input_windows", 1)), hp.get("history_windows") or None
    window_h = module.model.config.window_hours
    init_times = verified_inits(period, leads, args, store, windows_before(input_windows, history) * window_h)
    starts = None
    if module.model.cycling:
        dataset = WindowDataset(store, init_times, module.model.schema, window_h, 1, input_windows=input_windows,
                                history_windows=history)
        starts, _ = cycled_analyses(module.model, dataset, init_times, int(round(args.spin_up_days * 24 / window_h)))
    return ModelRun(module, store, init_times, leads, input_windows, history, starts,
                    args.climatology_period or hp.get("train_period"))


def verify_stations(args, out: Path, name: str, grid: xr.Dataset | None = None, run: ModelRun | None = None,
                    clim_period: tuple[str, str] | None = None, statics: xr.Dataset | None = None
                    ) -> tuple[pd.DataFrame, list[Path]]:
    """Score at the stations of --stations-obs: the checkpoint's forecasts decoded at them (``run``),
    the gridded forecast ``grid`` interpolated to them (--interpolation; altitude-adjusted to
    stations with an elevation where ``statics`` holds the grid's geopotential_at_surface), and any
    --stations-forecast, beside station persistence and climatology, with bootstrap intervals."""
    from earthgraph.scoring import points, station_evaluation
    from earthgraph.scoring.station_obs import StationDataError

    given = {sources.stem(p): _open_zarr(p, "station forecast", args.storage_options) for p in args.stations_forecast}
    wanted = list(args.stations_variables or [])
    if run is not None and not wanted:
        from earthgraph.data.obs_types import products_for

        wanted = [p.variable for p in products_for(run.module.model.schema)]
    wanted += [v for f in [*given.values(), *([grid] if grid is not None else [])] for v in f.data_vars]
    settings = station_evaluation.StationSettings(
        reference=args.reference, climatology_period=tuple(clim_period) if clim_period else None,
        tolerance=pd.Timedelta(minutes=args.stations_tolerance_minutes) if args.stations_tolerance_minutes else None,
        persistence_max_age=(pd.Timedelta(hours=args.persistence_max_age_hours)
                             if args.persistence_max_age_hours is not None else None),
        block_length=args.block_length, resamples=args.bootstrap_resamples, map_lead_hours=args.map_lead)
    try:
        obs = station_evaluation.open_station_observations(args.stations_obs, list(dict.fromkeys(wanted)),
                                                           storage_options=args.storage_options,
                                                           layout=args.stations_layout)
        forecasts = dict(given)
        if run is not None:
            forecasts[name] = model_station_forecasts(run, obs)
        height = None
        if statics is not None and "geopotential_at_surface" in statics and "elevation" in obs.coords:
            height = points.surface_height(statics)
        for method in args.interpolation if grid is not None else []:
            shared = [v for v in grid.data_vars if v in obs]
            if shared:
                forecasts[f"{name}_{method}"] = points.interpolate_to_stations(grid[shared], obs, method, height)
        if not forecasts:
            raise StationDataError("no station forecast to score: give --checkpoint, a gridded --forecast or "
                                   "--stations-forecast")
        return station_evaluation.evaluate_stations(forecasts, obs, out, settings)
    except ValueError as err:
        sys.exit(f"evaluate.py: {err}")


def model_station_forecasts(run: ModelRun, obs: xr.Dataset) -> xr.Dataset:
    """The checkpoint's forecasts decoded at the observations' stations, of the variables observed."""
    from earthgraph.data.stations import station_list
    from earthgraph.training.predict import station_forecasts

    stations = station_list(pd.DataFrame({"id": obs.station.values, "lat": obs.latitude.values,
                                          "lon": obs.longitude.values}), "the observations' stations")
    return station_forecasts(run.module, run.store, run.init_times, run.leads, stations, list(obs.data_vars),
                             input_windows=run.input_windows, history_windows=run.history, start_states=run.starts,
                             progress=True)


def run_station_evaluation(args, out: Path, clock: Stopwatch) -> pd.DataFrame:
    """Station verification alone (no gridded truth): a checkpoint's station forecasts, a
    gridded --forecast interpolated to the stations, or --stations-forecast."""
    from earthgraph.scoring.station_evaluation import format_station_scorecard

    out.mkdir(parents=True, exist_ok=True)
    run = station_run(args) if args.checkpoint and not args.forecast else None
    clock.lap("model")
    grid = None
    if args.forecast:
        grid = _normalised(_open_zarr(args.forecast, "forecast", args.storage_options), f"forecast {args.forecast}")
    name = args.name or ("earthgraph" if run is not None else sources.stem(args.forecast or "forecast"))
    clim_period = run.clim_period if run is not None else args.climatology_period
    table, paths = verify_stations(args, out, name, grid, run, clim_period, grid)
    clock.lap("stations")
    print(f"station verification at {args.stations_obs} (skill against {args.reference}; difference with its "
          f"{args.bootstrap_resamples}-resample paired block-bootstrap interval, * where it excludes 0)")
    print(format_station_scorecard(table, args.reference))
    summary = {"forecast": name, "out": str(out), "outputs": sorted(str(p) for p in paths),
               "seconds": clock.seconds, "seconds_total": round(sum(clock.seconds.values()), 1)}
    print(json.dumps(summary))
    return table


def score(args, inp: Inputs, forecasts: dict, client) -> dict[str, xr.Dataset]:
    """Every forecast's WB2 results, chunk by chunk of initialisations (earthgraph.scoring.chunked)."""
    parallel = sum(client.nthreads().values()) if client is not None else 1
    try:
        return chunked.score_forecasts(forecasts, inp.truth[inp.variables], inp.climatology, inp.scored, inp.regions,
                                       inp.variables, not args.no_skipna, args.chunk_inits, parallel,
                                       inp.truth_source)
    except ValueError as err:
        sys.exit(f"evaluate.py: {err}")


def run_evaluation(args, out: Path, clock: Stopwatch, client=None) -> pd.DataFrame:
    """The whole evaluation into ``out``; ``client``: a dask.distributed Client, or None."""
    out.mkdir(parents=True, exist_ok=True)
    inp = load_inputs(args, out, clock)
    also = {n: f[inp.variables].sel(time=inp.forecast.time) for n, f in inp.context["also_scored"].items()}
    forecasts = {inp.name: inp.forecast, **also, **reference_forecasts(args, inp)}
    clock.lap("baselines")
    results = score(args, inp, forecasts, client)
    left_out = value_notes(results, args.no_skipna)
    # A climatology computed from the truth leaves its NaN and infinite values out of its averages.
    averaged = {} if args.climatology else {
        v: {"truth_missing": int(inp.climatology[v].attrs["missing_values"])} for v in inp.variables
        if inp.climatology[v].attrs.get("missing_values", 0)}
    if averaged:
        left_out["truth_in_climatology_period"] = averaged
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
    station_paths = []
    if args.stations_obs:
        station_table, station_paths = verify_stations(args, out, inp.name, inp.forecast, inp.context.get("run"),
                                                       inp.context["clim_period"], inp.truth)
        clock.lap("stations")

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
    if args.stations_obs:
        from earthgraph.scoring.station_evaluation import format_station_scorecard

        print(f"stations of {args.stations_obs} (difference from {args.reference} with its bootstrap interval)")
        print(format_station_scorecard(station_table, args.reference))
    headline = inp.context["headline"] or inp.variables
    summary = {"forecast": inp.name,
               f"beats_{args.reference}": scorecard.beats(table, inp.name, args.reference, headline),
               "out": str(out), "outputs": sorted(str(p) for p in [*paths.values(), *pictures, *station_paths]),
               "left_out": left_out}
    if args.wandb_dir:
        summary["wandb_run"] = log_to_wandb(args, table, obs_stats, pictures, summary)
    clock.lap("report")
    summary["seconds"] = clock.seconds
    summary["seconds_total"] = round(sum(clock.seconds.values()), 1)
    print(json.dumps(summary))
    return table


if __name__ == "__main__":
    main()
