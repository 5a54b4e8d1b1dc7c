"""Score forecasts the WeatherBench2 way, against the gridded truth and the observations.

(``earthgraph-evaluate``, ``python -m earthgraph.evaluate`` and ``python evaluate.py`` are
one command.)

Score an earthgraph model (its forecasts are made first and written out):

    earthgraph-evaluate --checkpoint outputs/quickstart/checkpoints/last.ckpt \\
        --data-dir outputs/quickstart/data --out outputs/quickstart

Score any WB2-layout forecast zarr (time, prediction_timedelta, [level,]
[realization,] latitude, longitude) against any truth zarr on its grid:

    earthgraph-evaluate --forecast other_model.zarr --name other_model \\
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
scores NaN or inf, and each such score is explained by a printed note. Such a run exits
with status 1 (a wrong command line: 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from earthgraph.evaluate.errors import EXIT_CODE, EvaluationError
from earthgraph.evaluate.options import (
    BASELINES,
    DEFAULT_CHECKPOINT,
    DEVICE,
    Climatology,
    EvaluationOptions,
    Inputs,
    Model,
    ObservationSpace,
    Outputs,
    Scoring,
    Stations,
    Verification,
)
from earthgraph.scoring.regions import WB2_REGIONS

if TYPE_CHECKING:
    from earthgraph.evaluate.run import EvaluationResult

def _add_inputs(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("what to score (one of)")
    src.add_argument("--checkpoint", default=None,
                     help="a Lightning checkpoint of an earthgraph model (default, when --forecast is not given: "
                          f"{DEFAULT_CHECKPOINT})")
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


def _add_verification(p: argparse.ArgumentParser) -> None:
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
    when.add_argument("--spin-up-days", type=float, default=10.0,
                      help="a cycling checkpoint's cycle starts cold this long before the first initialisation "
                           "(or when the store starts) and runs through every window after it; its memoryless "
                           "mode (a cold start through the input windows) is scored beside it as <name>_memoryless")
    clim = p.add_argument_group("climatology (for acc and the climatology baseline)")
    clim.add_argument("--climatology", default=None,
                      help="a WB2 climatology zarr (hour, dayofyear, ...) to use instead of computing one from the "
                           "truth; computing one needs ~64 x 366 bytes of work per grid point and level (24 GB at "
                           "0.25 degrees) plus its output, so give one at that scale")
    clim.add_argument("--climatology-period", nargs=2, metavar=("START", "END"), default=None,
                      help="truth period averaged into the climatology (default: the checkpoint's training period)")
    clim.add_argument("--climatology-window-days", type=int, default=61, help="WB2's smoothing window, days")


def _add_scoring(p: argparse.ArgumentParser) -> None:
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


def _add_stations(p: argparse.ArgumentParser) -> None:
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


def _add_model_and_outputs(p: argparse.ArgumentParser) -> None:
    diag = p.add_argument_group("physical diagnostics (checkpoint mode)")
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


def _device_choice(text: str) -> str:
    if not DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: give cpu, cuda, cuda:N or auto")
    return text


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line of ``earthgraph-evaluate`` (and ``python evaluate.py``)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_inputs(p)
    _add_verification(p)
    _add_scoring(p)
    _add_stations(p)
    _add_model_and_outputs(p)
    return p


def _block_length(text: str, p: argparse.ArgumentParser) -> int | str:
    if text in ("auto", "cube_root"):
        return text
    if not text.isdigit() or int(text) < 1:
        p.error(f"--block-length: a positive number, auto or cube_root, got {text!r}")
    return int(text)


def _period(given: list[str] | None) -> tuple[str, str] | None:
    return tuple(given) if given else None


def parse_options(argv: Sequence[str] | None = None, prog: str | None = None) -> EvaluationOptions:
    """The command line as :class:`EvaluationOptions`; argparse exits (2) on a usage error."""
    p = build_parser(prog)
    a = p.parse_args(argv)
    if a.checkpoint and a.forecast:
        p.error("give --checkpoint or --forecast, not both")
    if a.chunk_inits is not None and a.chunk_inits < 1:
        p.error(f"--chunk-inits must be at least 1, got {a.chunk_inits}")
    if a.stations_forecast and not a.stations_obs:
        p.error("--stations-forecast needs --stations-obs (the observations to verify it against)")
    return EvaluationOptions(
        inputs=Inputs(a.checkpoint or (None if a.forecast else DEFAULT_CHECKPOINT), a.forecast, a.name, a.data_dir,
                      a.truth, a.store, a.storage_options, a.variables),
        verification=Verification(_period(a.period), a.by, a.leads, a.init_every_hours, a.spin_up_days),
        climatology=Climatology(a.climatology, _period(a.climatology_period), a.climatology_window_days),
        scoring=Scoring(tuple(a.baselines), a.perfect_model_perturbation, a.regions, a.reference, not a.no_skipna,
                        a.chunk_inits, a.scheduler),
        obs_space=ObservationSpace(not a.no_obs_space, a.forecast_obs, a.lead_bin_hours),
        stations=Stations(a.stations_obs, a.stations_layout, a.stations_forecast, a.stations_variables,
                          a.interpolation, a.stations_tolerance_minutes, a.persistence_max_age_hours,
                          _block_length(a.block_length, p), a.bootstrap_resamples),
        model=Model(a.device, a.batch_size, a.diagnostic_days),
        outputs=Outputs(a.out, a.overwrite, a.map_lead, a.wandb_dir, a.wandb_project, a.wandb_run_id))


def run(argv: Sequence[str] | None = None, prog: str | None = None) -> EvaluationResult:
    """Parse ``argv`` and evaluate (:func:`earthgraph.evaluate.run.evaluate`): its
    :class:`~earthgraph.evaluate.run.EvaluationResult`. Raises :class:`EvaluationError`."""
    from earthgraph.evaluate.run import evaluate  # here: --help and usage errors need none of it

    return evaluate(parse_options(argv, prog))


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """The console script ``earthgraph-evaluate``: 0 when the evaluation ran, :data:`EXIT_CODE`
    with the message on stderr (naming the input, its path and the field) when it was refused."""
    try:
        run(argv, prog)
    except EvaluationError as err:
        print(f"{prog or os.path.basename(sys.argv[0])}: {err}", file=sys.stderr)  # argparse's own default prog
        return EXIT_CODE
    return 0
