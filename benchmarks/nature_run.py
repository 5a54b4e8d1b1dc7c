"""The nature run's cost, conservation and chaos.

Three figures, on the grid given (default 64x128, about 2.8 degrees), 6-hourly output:

- ``seconds_per_simulated_year``: wall time of one simulated year (spin-up excluded);
- ``water_budget_relative_residual``: max |W(t) - W(0)| / |W(0)| over that year, where W is the
  global water of the closed budget (vapour + soil water + snow + sea ice + ocean freshwater),
  float64;
- ``error_doubling_days``: two runs whose air temperatures differ by ``--perturbation`` K after
  spin-up; the RMS difference of air temperature grows as exp(t / T); doubling = T ln 2, fitted
  where the difference is well above the perturbation and well below saturation. ``null`` when the
  difference does not grow (a nature run that is not chaotic).

The baseline printed beside the default grid is the 32x64 test grid, run in the same process.
Last line: one JSON object with every figure.

    python benchmarks/nature_run.py [--nlat 64 --nlon 128] [--days 365] [--chaos-days 30]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from earthgraph.data.nature_run import NatureRunConfig, run_nature


def timed_year(nlat: int, nlon: int, days: float, spinup_days: float) -> tuple[float, float]:
    """(seconds per simulated year, water budget relative residual) of one run."""
    spin = NatureRunConfig(nlat=nlat, nlon=nlon, days=1.0 / 24, output_hours=1.0, spinup_days=spinup_days)
    start = time.perf_counter()
    run_nature(spin)
    spin_seconds = time.perf_counter() - start
    cfg = NatureRunConfig(nlat=nlat, nlon=nlon, days=days, output_hours=6.0, spinup_days=spinup_days)
    start = time.perf_counter()
    truth = run_nature(cfg)
    seconds = time.perf_counter() - start - spin_seconds
    total = truth.water_total.values
    residual = float(np.max(np.abs(total - total[0])) / abs(total[0]))
    return seconds * 365.0 / days, residual


def doubling_days(nlat: int, nlon: int, days: float, perturbation: float, spinup_days: float) -> dict:
    """Error growth between a run and its perturbed twin (air temperature, K)."""
    base = dict(nlat=nlat, nlon=nlon, days=days, output_hours=6.0, spinup_days=spinup_days, output_dtype="float64")
    a = run_nature(NatureRunConfig(**base)).air_temperature.values.astype(np.float64)
    b = run_nature(NatureRunConfig(perturbation_K=perturbation, **base)).air_temperature.values.astype(np.float64)
    rms = np.sqrt(np.mean((a - b) ** 2, axis=(1, 2)))
    t_days = np.arange(len(rms)) * 0.25
    # Fit the exponential phase: from 10x the perturbation to a tenth of the largest separation.
    phase = (rms > 10 * perturbation) & (rms < 0.1 * rms.max())
    growing = bool(rms[-1] > 10 * perturbation) and phase.sum() >= 3
    days_to_double = None
    if growing:
        rate = np.polyfit(t_days[phase], np.log(rms[phase]), 1)[0]
        days_to_double = float(math.log(2) / rate) if rate > 0 else None
    return {"error_doubling_days": days_to_double, "rms_start_K": float(rms[0]), "rms_end_K": float(rms[-1]),
            "fitted_points": int(phase.sum())}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nlat", type=int, default=64)
    p.add_argument("--nlon", type=int, default=128)
    p.add_argument("--days", type=float, default=365.0)
    p.add_argument("--spinup-days", type=float, default=60.0)
    p.add_argument("--chaos-days", type=float, default=30.0)
    p.add_argument("--perturbation", type=float, default=1e-6, help="K of air-temperature noise")
    args = p.parse_args(argv)

    sec, residual = timed_year(args.nlat, args.nlon, args.days, args.spinup_days)
    sec_small, _ = timed_year(32, 64, min(args.days, 60.0), args.spinup_days)
    chaos = doubling_days(args.nlat, args.nlon, args.chaos_days, args.perturbation, args.spinup_days)
    print(f"{args.nlat}x{args.nlon}: {sec:.1f} s per simulated year (32x64: {sec_small:.1f} s)")
    print(f"water budget relative residual over {args.days:g} days: {residual:.2e}")
    print(f"air-temperature difference {chaos['rms_start_K']:.2e} K -> {chaos['rms_end_K']:.2e} K in "
          f"{args.chaos_days:g} days; doubling time {chaos['error_doubling_days']} days")
    result = {
        "grid": [args.nlat, args.nlon],
        "simulated_days": args.days,
        "seconds_per_simulated_year": sec,
        "baseline_32x64_seconds_per_simulated_year": sec_small,
        "ratio_to_32x64": sec / sec_small,
        "water_budget_relative_residual": residual,
        **chaos,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
