"""Score a trained earthgraph model the WeatherBench2 way.

    python evaluate.py --checkpoint outputs/quickstart/checkpoints/last.ckpt \
        --data-dir outputs/quickstart/data --out outputs/quickstart

Writes into ``--out``:
  forecast.zarr     the model's gridded forecasts, WB2 layout
                    (time, prediction_timedelta, latitude, longitude)
  scorecard.csv     forecast,sphere,variable,lead_hours,metric,value
                    for earthgraph, persistence and climatology
  scores.nc         the same scores, WB2 results layout (metric, region, lead_time)
  scorecard.png     RMSE against lead time per variable
and prints the RMSE scorecard with the skill against persistence.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from earthgraph.data.generate import write_zarr_atomic
from earthgraph.data.obs_types import DEFAULT_PRODUCTS
from earthgraph.data.store import ObservationStore
from earthgraph.data.windows import WindowDataset, init_times_between
from earthgraph.scoring import baselines, scorecard
from earthgraph.training.module import ForecastModule
from earthgraph.training.predict import forecast_on_grid


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="outputs/quickstart/checkpoints/last.ckpt", help="Lightning checkpoint")
    p.add_argument("--data-dir", default="outputs/quickstart/data", help="folder with truth.zarr and obs.zarr")
    p.add_argument("--truth", default=None, help="gridded truth zarr (default: DATA_DIR/truth.zarr)")
    p.add_argument("--store", default=None, help="observation store (default: DATA_DIR/obs.zarr)")
    p.add_argument("--out", default="outputs/quickstart", help="output folder")
    p.add_argument("--period", nargs=2, metavar=("START", "END"), default=None,
                   help="initialisation times in [START, END) (default: the checkpoint's test period)")
    p.add_argument("--climatology-period", nargs=2, metavar=("START", "END"), default=None,
                   help="period of truth averaged into the climatology (default: the checkpoint's training period)")
    p.add_argument("--leads", nargs="+", type=float, default=[12, 24, 48], help="lead times, hours")
    p.add_argument("--init-every-hours", type=float, default=12.0, help="spacing of initialisation times")
    p.add_argument("--batch-size", type=int, default=8)
    return p.parse_args(argv)


def main(argv=None) -> pd.DataFrame:
    args = parse_args(argv)
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(args.data_dir)
    truth_path = Path(args.truth or data_dir / "truth.zarr")
    store_path = Path(args.store or data_dir / "obs.zarr")
    for path in (Path(args.checkpoint), truth_path, store_path):
        if not path.exists():
            sys.exit(f"evaluate.py: {path} does not exist")

    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    data_hp = ckpt.get("datamodule_hyper_parameters", {})
    period = args.period or data_hp.get("test_period")
    clim_period = args.climatology_period or data_hp.get("train_period")
    if not period or not clim_period:
        sys.exit("evaluate.py: give --period and --climatology-period (the checkpoint does not record them)")

    module = ForecastModule.load_from_checkpoint(args.checkpoint, map_location="cpu")
    model = module.model
    store = ObservationStore(store_path).load()
    truth = xr.open_zarr(truth_path, consolidated=False)
    input_windows = int(data_hp.get("input_windows", 1))
    init_times = init_times_between(np.datetime64(period[0]), np.datetime64(period[1]), module.hparams.window_hours,
                                    1, args.init_every_hours, store.time_range, input_windows)
    last_valid = truth.time.values[-1] - pd.to_timedelta(max(args.leads), unit="h")
    init_times = init_times[pd.to_datetime(init_times, unit="s").values <= last_valid]
    if len(init_times) == 0:
        sys.exit(f"evaluate.py: no initialisation time in {period} leaves room for lead {max(args.leads)} h in {truth_path}")
    dataset = WindowDataset(store, init_times, model.schema, module.hparams.window_hours, 1,
                            input_windows=input_windows)

    products = tuple(p for p in DEFAULT_PRODUCTS if p.variable in truth and p.obs_type in model.schema)
    land = truth["land_sea_mask"].values if "land_sea_mask" in truth else None
    fc = forecast_on_grid(model, dataset, init_times, args.leads, truth.latitude.values, truth.longitude.values,
                          products, land, args.batch_size)
    write_zarr_atomic(fc, out / "forecast.zarr")

    leads = pd.to_timedelta(args.leads, unit="h")
    variables = [p.variable for p in products]
    init64 = fc.time.values
    truth_v = truth[variables].load()
    aligned = baselines.align_truth(truth_v, init64, leads)
    forecasts = {
        "earthgraph": fc,
        "persistence": baselines.persistence(truth_v, init64, leads),
        "climatology": baselines.climatology_forecast(baselines.diurnal_climatology(truth_v, tuple(clim_period)), init64, leads),
    }
    spheres = {p.variable: p.sphere for p in products}
    table = scorecard.score_forecasts(forecasts, aligned, spheres)
    table.to_csv(out / "scorecard.csv", index=False)
    scorecard.to_wb2_netcdf(table, out / "scores.nc")
    headline = [p.variable for p in products if p.headline]
    scorecard.plot_rmse(table, out / "scorecard.png", headline)

    print(f"earthgraph scorecard: {len(init_times)} initialisations in {period[0]} .. {period[1]}, "
          f"leads {args.leads} h (RMSE; skill = 1 - RMSE / RMSE_persistence)")
    print(scorecard.format_scorecard(table))
    verdict = {}
    for var in headline:
        r = table[(table.variable == var) & (table.metric == "rmse") & (table.lead_hours == 24.0)]
        model_v = r[r.forecast == "earthgraph"].value.iloc[0]
        pers_v = r[r.forecast == "persistence"].value.iloc[0]
        verdict[var] = bool(model_v < pers_v)
    summary = {"beats_persistence_24h": verdict, "outputs": [str(out / f) for f in
               ("scorecard.csv", "scores.nc", "scorecard.png", "forecast.zarr")],
               "seconds": round(time.perf_counter() - t_start, 1)}
    print(json.dumps(summary))
    return table


if __name__ == "__main__":
    main()
