"""Seconds to score gridded forecasts over many regions, baseline against candidate.

Scores synthetic WB2-layout forecasts (a quickstart-sized grid by default: 60
initialisations x 3 leads on 32 x 64, a sea-only and a land-only variable among
them) against a truth with ``evaluation.score_forecast`` over all standard
regions, twice in one process:

- baseline: the scoring as it was at d6a4a4a, patched in from this script: each
  region scored alone, every spatial average xarray's weighted mean, the spatial
  variance in two passes (d6a4a4a's second pass over the fields for ``rmse`` is
  gone from both: scoring now takes it from the squared-error term);
- candidate: the current code (all regions in one matrix product where the
  truth's mask is fixed, the one-pass shifted variance).

It prints both timings, their ratio and the largest relative difference between
the two results (NaN in the same places is checked); the last line is one JSON object.

    python benchmarks/scoring.py [--times 60] [--nlat 32] [--nlon 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.scoring import evaluation, metrics
from earthgraph.scoring.areas import spatial_dims
from earthgraph.scoring.regions import standard_regions


def _old_spatial_average(x, weights, skipna=False):
    x = x.where(weights > 0, 0.0)
    return x.weighted(weights).mean(spatial_dims(x), skipna=skipna)


def _old_spatial_variance(x, weights, skipna=False):
    return _old_spatial_average((x - _old_spatial_average(x, weights, skipna)) ** 2, weights, skipna)


@contextlib.contextmanager
def baseline() -> Iterator[None]:
    """The d6a4a4a scoring: region by region, no fixed-mask matrix product, patched in and
    restored afterwards. (d6a4a4a also took the RMSE in a pass of its own; scoring now takes
    it from the squared-error term, in both routes alike.)"""
    saved = (metrics.spatial_average, metrics.spatial_variance, evaluation._fixed_mask)
    metrics.spatial_average, metrics.spatial_variance = _old_spatial_average, _old_spatial_variance
    evaluation._fixed_mask = lambda valid: None
    try:
        yield
    finally:
        metrics.spatial_average, metrics.spatial_variance, evaluation._fixed_mask = saved


def synthetic(times: int, nlat: int, nlon: int, seed: int = 0) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """(forecast, truth aligned to it, climatology aligned to it), WB2 layout, 3 leads."""
    rng = np.random.default_rng(seed)
    lat = np.linspace(-90 + 90 / nlat, 90 - 90 / nlat, nlat)
    lon = np.arange(nlon) * 360.0 / nlon
    coords = {"time": pd.date_range("2020-12-01", periods=times, freq="12h").values,
              "prediction_timedelta": pd.to_timedelta([12, 24, 48], unit="h").values,
              "latitude": lat, "longitude": lon}
    dims = tuple(coords)
    shape = tuple(len(c) for c in coords.values())
    land = (np.sin(np.radians(lat))[:, None] * np.cos(np.radians(2 * lon))[None, :]) > 0.2
    truth, forecast, clim = {}, {}, {}
    for k, (name, mean, std) in enumerate([("air_temperature", 280.0, 5.0), ("total_column_water_vapour", 20.0, 6.0),
                                           ("sea_surface_temperature", 290.0, 2.0),
                                           ("land_surface_temperature", 285.0, 5.0),
                                           ("soil_moisture", 0.3, 0.1), ("sea_ice_concentration", 0.2, 0.2)]):
        t = rng.normal(mean, std, shape)
        if name in ("sea_surface_temperature", "sea_ice_concentration"):
            t[..., land] = np.nan
        if name in ("land_surface_temperature", "soil_moisture"):
            t[..., ~land] = np.nan
        truth[name] = (dims, t)
        forecast[name] = (dims, t + rng.normal(0.0, std / 3, shape))
        clim[name] = (dims, np.full(shape, mean))
    static = xr.DataArray(land.astype(np.float64), dims=("latitude", "longitude"),
                          coords={"latitude": lat, "longitude": lon})
    truth_ds = xr.Dataset(truth, coords=coords)
    return xr.Dataset(forecast, coords=coords), truth_ds.assign(land_sea_mask=static), xr.Dataset(clim, coords=coords)


def timed(fn, repeat: int) -> tuple[float, xr.Dataset]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--times", type=int, default=60, help="initialisations")
    p.add_argument("--nlat", type=int, default=32)
    p.add_argument("--nlon", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3, help="runs of each; the fastest is reported")
    args = p.parse_args(argv)

    forecast, truth, clim = synthetic(args.times, args.nlat, args.nlon)
    regions = standard_regions(truth.isel(prediction_timedelta=0, drop=True))  # masks from a (time, ...) truth
    variables = [v for v in forecast.data_vars]
    score = lambda: evaluation.score_forecast(forecast, truth, regions, clim, variables)  # noqa: E731
    with baseline():
        base_s, base = timed(score, args.repeat)
    cand_s, cand = timed(score, args.repeat)

    worst, nan_mismatch = 0.0, 0
    for v in variables:
        a, b = base[v].transpose(*cand[v].dims).values, cand[v].values
        nan_mismatch += int((np.isnan(a) != np.isnan(b)).sum())
        both = np.isfinite(a) & np.isfinite(b)
        worst = max(worst, float(np.max(np.abs(a[both] - b[both]) / np.maximum(np.abs(a[both]), 1e-12))))
    values = sum(int(cand[v].size) for v in variables)
    print(f"{len(variables)} variables x {len(regions)} regions, {args.times} initialisations x 3 leads on "
          f"{args.nlat} x {args.nlon}: {values} scores")
    print(f"baseline (d6a4a4a)  {base_s:8.2f} s")
    print(f"candidate           {cand_s:8.2f} s   speed-up {base_s / cand_s:.1f}x")
    print(f"same scores: largest relative difference {worst:.2e}, NaN in different places {nan_mismatch}")
    result = {"variables": len(variables), "regions": len(regions), "times": args.times, "nlat": args.nlat,
              "nlon": args.nlon, "baseline_seconds": base_s, "candidate_seconds": cand_s,
              "scoring_speedup": base_s / cand_s, "max_relative_difference": worst, "nan_mismatches": nan_mismatch}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
