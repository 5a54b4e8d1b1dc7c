"""The nature run's cost, conservation and chaos.

Three figures, on the grid given (default 64x128, about 2.8 degrees), 6-hourly output:

- ``seconds_per_simulated_year``: wall time of one simulated year (spin-up excluded);
- ``water_budget_relative_residual``: max |W(t) - W(0)| / |W(0)| over that year, where W is the
  global water of the closed budget (vapour + soil water + snow + sea ice + ocean freshwater),
  float64;
- ``error_doubling_days``: two runs whose vorticity differs by one part in ``1/--perturbation``
  (relative RMS, 1e-6 by default) after spin-up; the RMS difference of their winds grows as
  exp(t / T); doubling = T ln 2, fitted where the difference is well above the initial one and
  well below saturation. ``null`` when the difference does not grow (a nature run that is not
  chaotic). The same fit on air temperature is printed beside it.

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


def fitted_doubling(rms: np.ndarray, t_days: np.ndarray) -> tuple[float | None, int]:
    """Doubling time (days) of an exponentially growing RMS difference, and the points fitted.

    Fits from 10x the first non-zero difference to a tenth of the largest one.
    """
    first = rms[rms > 0][0] if np.any(rms > 0) else 0.0
    phase = (rms > 10 * first) & (rms < 0.1 * rms.max()) & (t_days > 0)
    if first == 0.0 or phase.sum() < 3:
        return None, int(phase.sum())
    rate = np.polyfit(t_days[phase], np.log(rms[phase]), 1)[0]
    return (float(math.log(2) / rate) if rate > 0 else None), int(phase.sum())


def doubling_days(nlat: int, nlon: int, days: float, perturbation: float, spinup_days: float) -> dict:
    """Error growth between a run and its twin whose vorticity is perturbed after spin-up."""
    base = dict(nlat=nlat, nlon=nlon, days=days, output_hours=6.0, spinup_days=spinup_days, output_dtype="float64")
    a = run_nature(NatureRunConfig(**base))
    b = run_nature(NatureRunConfig(perturbation=perturbation, **base))
    t_days = np.arange(a.sizes["time"]) * 0.25
    wind = np.sqrt(np.mean((a.u_component_of_wind.values - b.u_component_of_wind.values) ** 2
                           + (a.v_component_of_wind.values - b.v_component_of_wind.values) ** 2, axis=(1, 2)))
    temp = np.sqrt(np.mean((a.air_temperature.values - b.air_temperature.values) ** 2, axis=(1, 2)))
    wind_days, wind_points = fitted_doubling(wind, t_days)
    temp_days, _ = fitted_doubling(temp, t_days)
    return {"error_doubling_days": wind_days, "air_temperature_doubling_days": temp_days,
            "wind_rms_difference_start_m_per_s": float(wind[0]), "wind_rms_difference_end_m_per_s": float(wind[-1]),
            "air_temperature_rms_difference_end_K": float(temp[-1]), "fitted_points": wind_points,
            "statics": a.attrs["statics"]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nlat", type=int, default=64)
    p.add_argument("--nlon", type=int, default=128)
    p.add_argument("--days", type=float, default=365.0)
    p.add_argument("--spinup-days", type=float, default=60.0)
    p.add_argument("--chaos-days", type=float, default=30.0)
    p.add_argument("--perturbation", type=float, default=1e-6, help="relative vorticity perturbation")
    args = p.parse_args(argv)

    sec, residual = timed_year(args.nlat, args.nlon, args.days, args.spinup_days)
    sec_small, _ = timed_year(32, 64, min(args.days, 60.0), args.spinup_days)
    chaos = doubling_days(args.nlat, args.nlon, args.chaos_days, args.perturbation, args.spinup_days)
    print(f"{args.nlat}x{args.nlon}: {sec:.1f} s per simulated year (32x64: {sec_small:.1f} s)")
    print(f"water budget relative residual over {args.days:g} days: {residual:.2e}")
    print(f"wind difference {chaos['wind_rms_difference_start_m_per_s']:.2e} -> "
          f"{chaos['wind_rms_difference_end_m_per_s']:.2e} m/s in {args.chaos_days:g} days; doubling time "
          f"{chaos['error_doubling_days']} days (air temperature: {chaos['air_temperature_doubling_days']} days)")
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
