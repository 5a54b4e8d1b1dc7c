"""Does conservation-aware message passing keep its budgets? Drift of a budget's
global total over a long rollout, in float32, with random (untrained) weights,
against the same transport written as plain message passing.

A water-like budget of four components (atmosphere, snow, soil, ocean) sits on a
HEALPix mesh with multi-scale edges; the latents driving the fluxes are redrawn
at every step, so the flow changes all the time. Both rollouts start from the
same positive amounts and see the same latents; totals are summed in float64.

Last line: one JSON object with ``relative_drift_fp32_1000_steps`` (target at most
1e-5), ``relative_change_per_step_max`` and the same in float32 machine epsilons
(target at most 10), ``baseline_relative_drift_1000_steps`` (up to the step
before the baseline's total becomes non-finite, if it does, given as
``baseline_first_nonfinite_step``), the minimum amount reached (positivity) and
the time per step.

    python benchmarks/conservation.py [--steps 1000] [--nside 16] [--multiscale-levels 3]
        [--checkpoint outputs/small/checkpoints/last.ckpt --data-dir outputs/quickstart/data --days 60]

With ``--checkpoint`` a trained model with budgets also forecasts 60 days from
its first test initialisation; the JSON line then holds
``trained_water_relative_drift_60_days`` and the nature run's own
``truth_water_relative_change`` over those days.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.processors.conservation import Budget, ConservativeTransport

COMPONENTS = ("atmosphere", "snow", "soil", "ocean")


def rollout(transport: ConservativeTransport, mesh: MeshGraph, steps: int, latent_dim: int, seed: int,
            conservative: bool) -> dict:
    """Totals (float64) after every step of a rollout with freshly drawn latents."""
    g = torch.Generator().manual_seed(seed)
    n = mesh.npix
    m = (torch.rand(1, n, len(COMPONENTS), generator=g) + 0.1) * mesh.areas.float().view(1, -1, 1)
    totals = [float(m.double().sum())]
    lowest = float(m.min())
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            h = torch.randn(1, n, latent_dim, generator=g)
            if conservative:
                v, x = transport.rates(h, mesh)
                m = transport.transport(m, v, x, mesh)
            else:
                m = transport.plain_message_passing_step(h, m, mesh)
            totals.append(float(m.double().sum()))
            lowest = min(lowest, float(m.min()))
    seconds = time.perf_counter() - start
    t = torch.tensor(totals, dtype=torch.float64)
    finite = torch.isfinite(t)
    first_bad = int((~finite).nonzero()[0]) if not finite.all() else None
    t = t[:first_bad]  # plain message passing can blow up: report it up to its last finite step
    return {"drift": float(abs(t[-1] - t[0]) / t[0]), "per_step_max": float(((t[1:] - t[:-1]).abs() / t[:-1]).max()),
            "lowest": lowest if np.isfinite(lowest) else -float("inf"), "first_nonfinite_step": first_bad,
            "ms_per_step": 1e3 * seconds / steps}


def trained_rollout(checkpoint: str, data_dir: str, days: float) -> dict:
    """A trained model with budgets, forecasting ``days`` ahead from the first
    initialisation of its test period: each budget's total drift, beside the nature
    run's own water total over the same days."""
    import xarray as xr

    from earthgraph.data.store import ObservationStore
    from earthgraph.data.windows import WindowDataset, collate_windows, init_times_between
    from earthgraph.training.module import ForecastModule

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    period = ckpt.get("datamodule_hyper_parameters", {}).get("test_period")
    module = ForecastModule.load_from_checkpoint(checkpoint, map_location="cpu")
    model = module.model.eval()
    if model.transport is None:
        raise SystemExit(f"{checkpoint}: the model has no budgets (model.forecaster.budgets) to check")
    store = ObservationStore(f"{data_dir}/obs.zarr").load()
    input_windows = int(ckpt.get("datamodule_hyper_parameters", {}).get("input_windows", 1))
    init = int(init_times_between(np.datetime64(period[0]), np.datetime64(period[1]), model.config.window_hours, 1,
                                  model.config.window_hours, store.time_range, input_windows)[0])
    dataset = WindowDataset(store, np.array([init]), model.schema, model.config.window_hours, 1,
                            input_windows=input_windows)
    batch = collate_windows([{"init_time": init, "inputs": dataset.input_window(init), "targets": []}])
    windows = int(round(days * 24 / model.config.window_hours))
    with torch.no_grad():
        state = model.encode(batch["inputs"], batch["init_time"])
        start = {k: float(v[0]) for k, v in model.budget_totals(state).items()}
        worst = {k: 0.0 for k in start}
        for k in range(windows):
            state = model.step(state, batch["init_time"] + k * model.window_seconds)
            for name, total in model.budget_totals(state).items():
                worst[name] = max(worst[name], abs(float(total[0]) - start[name]) / start[name])
        end = {k: float(v[0]) for k, v in model.budget_totals(state).items()}
    truth = xr.open_zarr(f"{data_dir}/truth.zarr", consolidated=False)["water_total"]
    t0 = np.datetime64(init, "s")
    covered = truth.sel(time=slice(t0, t0 + np.timedelta64(int(days * 86400), "s")))
    span = covered.values.astype(np.float64)
    truth_days = float((covered.time.values[-1] - covered.time.values[0]) / np.timedelta64(1, "D")) if len(span) else 0.0
    return {"init": str(t0), "days": days, "windows": windows,
            "drift": {k: abs(end[k] - start[k]) / start[k] for k in start}, "max_drift": worst,
            "truth_water_relative_change": float(np.abs(span - span[0]).max() / span[0]) if len(span) else None,
            "truth_days": truth_days}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", help="also roll out this trained model (with budgets) for --days")
    ap.add_argument("--data-dir", help="its data: obs.zarr and truth.zarr (with --checkpoint)")
    ap.add_argument("--days", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--nside", type=int, default=16)
    ap.add_argument("--multiscale-levels", type=int, default=3)
    ap.add_argument("--latent-dim", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    mesh = MeshGraph("healpix", args.nside, args.multiscale_levels)
    budget = Budget("water", COMPONENTS, {c: () for c in COMPONENTS})
    transport = ConservativeTransport(args.latent_dim, [budget], hidden=64)
    ours = rollout(transport, mesh, args.steps, args.latent_dim, args.seed, conservative=True)
    base = rollout(transport, mesh, args.steps, args.latent_dim, args.seed, conservative=False)
    eps = torch.finfo(torch.float32).eps
    print(f"mesh: HEALPix nside {args.nside}, {mesh.npix} nodes, {len(mesh.pair_i)} undirected edges "
          f"(multiscale levels {args.multiscale_levels}); budget of {len(COMPONENTS)} components; float32")
    print(f"{'':28}{'relative drift':>16}{'max change/step':>18}{'lowest amount':>15}{'ms/step':>9}")
    for name, r in (("conservative transport", ours), ("plain message passing", base)):
        print(f"{name:28}{r['drift']:16.3e}{r['per_step_max']:18.3e}{r['lowest']:15.3e}{r['ms_per_step']:9.2f}")
        if r["first_nonfinite_step"] is not None:
            print(f"{'':28}(total non-finite from step {r['first_nonfinite_step']}; drift shown up to the step before)")
    trained = None
    if args.checkpoint:
        trained = trained_rollout(args.checkpoint, args.data_dir, args.days)
        print(f"trained model, {trained['days']:g}-day forecast from {trained['init']} ({trained['windows']} windows): "
              + ", ".join(f"{k} drift {v:.2e} (largest on the way {trained['max_drift'][k]:.2e})"
                          for k, v in trained["drift"].items())
              + f"; the nature run's water total changed by {trained['truth_water_relative_change']:.2e} over the "
              f"{trained['truth_days']:g} days its truth covers")
    print(json.dumps({
        "steps": args.steps, "nside": args.nside, "nodes": mesh.npix, "pairs": int(len(mesh.pair_i)),
        f"relative_drift_fp32_{args.steps}_steps": ours["drift"],
        "relative_change_per_step_max": ours["per_step_max"],
        "relative_change_per_step_max_in_eps": ours["per_step_max"] / eps,
        "min_amount": ours["lowest"],
        f"baseline_relative_drift_{args.steps}_steps": base["drift"],
        "baseline_min_amount": base["lowest"] if np.isfinite(base["lowest"]) else None,
        "baseline_first_nonfinite_step": base["first_nonfinite_step"],
        "drift_ratio_baseline_over_conservative": base["drift"] / max(ours["drift"], 1e-300),
        "ms_per_step": ours["ms_per_step"], "baseline_ms_per_step": base["ms_per_step"],
        **({} if trained is None else {
            f"trained_water_relative_drift_{trained['days']:g}_days": trained["drift"].get("water"),
            f"trained_water_max_relative_drift_{trained['days']:g}_days": trained["max_drift"].get("water"),
            "truth_water_relative_change": trained["truth_water_relative_change"], "truth_days": trained["truth_days"]}),
    }))


if __name__ == "__main__":
    main()
