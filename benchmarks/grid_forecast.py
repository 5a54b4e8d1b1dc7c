"""Seconds for a forecast on a grid, baseline against candidate.

A checkpoint's model forecasts the truth's grid from one initialisation, with daily
products out to ``--days`` (the shape of evaluate.py's long forecast), twice in one
process (``--repeats`` times each, alternating; the fastest of each is reported):

- baseline: as before issue 18's evaluation speed-up: each product decoded alone at
  every lead, its mesh -> grid graph rebuilt every time (the code is kept here);
- candidate: ``forecast_on_grid``: every product type decoded in one call per lead,
  the grid's decoder graphs built once per batch size and reused.

It prints both times, their ratio, and the largest difference between the two
forecasts (0: the change is pure speed). Last line: one JSON object.

    python benchmarks/grid_forecast.py --checkpoint outputs/quickstart/checkpoints/last.ckpt \\
        --data-dir outputs/quickstart/data [--days 60]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from earthgraph.data.obs_types import products_for
from earthgraph.data.store import ObservationStore
from earthgraph.data.windows import WindowDataset, collate_windows
from earthgraph.training import threads
from earthgraph.training.module import ForecastModule
from earthgraph.training.predict import forecast_on_grid, grid_targets


@torch.no_grad()
def per_product_forecast(model, dataset, init: int, leads_hours: list[float], lat, lon, products) -> dict:
    """The baseline: (leads, nlat, nlon) per product, each decoded alone with its graph rebuilt."""
    w = model.window_seconds / 3600.0
    t0 = torch.tensor([float(init)], dtype=torch.float64)
    inputs = collate_windows([{"init_time": init, "inputs": dataset.input_window(init), "targets": []}])
    state = model.encode(inputs["inputs"], t0, dataset.input_windows)
    lead_window = [max(1, int(np.ceil(lead / w - 1e-9))) for lead in leads_hours]
    out = {p.variable: np.full((len(leads_hours), len(lat), len(lon)), np.nan, np.float32) for p in products}
    for k in range(1, max(lead_window) + 1):
        wstart = t0 + (k - 1) * model.window_seconds
        state = model.step(state, wstart)
        for li in [i for i, kk in enumerate(lead_window) if kk == k]:
            frac = (leads_hours[li] - (k - 1) * w) / w
            for p in products:
                spec = model.schema[p.obs_type]
                c = spec.channels.index(p.channel)
                tgt = grid_targets(lat, lon, 1, frac, len(spec.metadata))
                pred = model.decode(state, {p.obs_type: tgt}, wstart)[p.obs_type]
                pred = (pred.mean(dim=0) if pred.dim() == 3 else pred)[:, c].float().numpy()
                value = np.clip(pred * spec.std[c] + spec.mean[c], spec.valid_min[c], spec.valid_max[c])
                out[p.variable][li] = value.reshape(len(lat), len(lon))
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-dir", required=True, help="with obs.zarr and truth.zarr (make data)")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each; the fastest is reported")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    threads.apply(0, args.threads)  # no loader workers here: every core to the model

    module = ForecastModule.load_from_checkpoint(args.checkpoint, map_location="cpu")
    model = module.model.eval()
    hp = torch.load(args.checkpoint, map_location="cpu", weights_only=False).get("datamodule_hyper_parameters", {})
    truth = xr.open_zarr(Path(args.data_dir) / "truth.zarr")
    lat, lon = truth.latitude.values, truth.longitude.values
    store = ObservationStore(Path(args.data_dir) / "obs.zarr").load()
    input_windows = int(hp.get("input_windows", 1))
    init = int(store.time_range[0]) + 2 * 86400 + input_windows * int(model.window_seconds)
    init -= init % 86400
    dataset = WindowDataset(store, np.array([init]), model.schema, model.window_seconds / 3600.0, 1,
                            input_windows=input_windows)
    products = tuple(p for p in products_for(model.schema) if p.variable in truth)
    leads = [24.0 * d for d in range(1, args.days + 1)]

    baseline, candidate = [], []
    for _ in range(args.repeats):  # alternating, so that a slow spell of the machine hits both
        t = time.perf_counter()
        base = per_product_forecast(model, dataset, init, leads, lat, lon, products)
        baseline.append(time.perf_counter() - t)
        t = time.perf_counter()
        cand = forecast_on_grid(model, dataset, np.array([init]), leads, lat, lon, products, batch_size=1)
        candidate.append(time.perf_counter() - t)
    baseline_s, candidate_s = min(baseline), min(candidate)
    diff = max(float(np.nanmax(np.abs(cand[p.variable].values[0] - base[p.variable]))) for p in products)

    result = {"benchmark": "grid_forecast", "checkpoint": args.checkpoint, "days": args.days,
              "grid": [len(lat), len(lon)], "products": len(products),
              "product_types": len({p.obs_type for p in products}), "threads": torch.get_num_threads(),
              "baseline_s": round(baseline_s, 2), "candidate_s": round(candidate_s, 2),
              "baseline_runs_s": [round(x, 2) for x in baseline], "candidate_runs_s": [round(x, 2) for x in candidate],
              "speedup": round(baseline_s / candidate_s, 2), "max_abs_difference": diff}
    print(f"{args.days}-day forecast on the {len(lat)}x{len(lon)} grid, {len(products)} products: "
          f"baseline {baseline_s:.1f} s, candidate {candidate_s:.1f} s ({baseline_s / candidate_s:.2f}x); "
          f"largest difference {diff:g}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
