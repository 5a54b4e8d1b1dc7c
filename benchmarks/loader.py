"""How fast the observation loader feeds training: windows and observations per second.

Builds the training DataLoader of a store exactly as training does (one worker
process, the quickstart's sample layout: two input windows, rollout 2, target
cap) and times a fixed number of batches, twice in one process:

- candidate: the store read from disk (zarr) on every window;
- baseline: the same store loaded into memory first (``ObservationStore.load``),
  which is what ``ObservationDataModule(in_memory=True)`` does.

Without ``--store`` it generates a 30-day nature-run store first (not timed).
Last line: one JSON object with every figure.

    python benchmarks/loader.py [--store PATH] [--batches 60] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from earthgraph.data.generate import generate_osse
from earthgraph.data.nature_run import NatureRunConfig
from earthgraph.data.observing import ObservingConfig
from earthgraph.data.store import ObservationStore
from earthgraph.data.windows import WindowDataset, collate_windows, init_times_between, observation_schema


def time_loader(store: ObservationStore, batches: int, workers: int, batch_size: int, seed: int) -> dict:
    """Iterate ``batches`` shuffled training batches; returns rates per second."""
    schema = observation_schema(store)
    lo, hi = store.time_range
    times = init_times_between(np.datetime64(int(lo), "s"), np.datetime64(int(hi), "s"), 12.0, 2, 3.0,
                               (lo, hi), input_windows=2)
    ds = WindowDataset(store, times, schema, 12.0, rollout=2, max_targets_per_type=1500, input_windows=2, seed=seed)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, collate_fn=collate_windows)
    it = iter(loader)
    next(it)  # worker start-up and first reads are not the steady state
    n_obs, start = 0, time.perf_counter()
    for _ in range(batches):
        b = next(it)
        n_obs += sum(len(o) for o in b["inputs"].values()) + sum(len(o) for t in b["targets"] for o in t.values())
    seconds = time.perf_counter() - start
    windows = batches * batch_size * 4  # two input windows and two target windows per sample
    return {"seconds": seconds, "windows_per_second": windows / seconds, "observations_per_second": n_obs / seconds,
            "samples_per_second": batches * batch_size / seconds}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default=None, help="observation store (default: generate a 30-day one)")
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = args.store
        if path is None:
            generate_osse(tmp, NatureRunConfig(days=30, spinup_days=10), ObservingConfig(scale=0.5))
            path = str(Path(tmp) / "obs.zarr")
        disk = time_loader(ObservationStore(path), args.batches, args.workers, args.batch_size, seed=0)
        memory = time_loader(ObservationStore(path).load(), args.batches, args.workers, args.batch_size, seed=0)
    for name, r in (("from disk", disk), ("in memory", memory)):
        print(f"{name:10s} {r['windows_per_second']:8.1f} windows/s  {r['observations_per_second']:10.0f} obs/s")
    result = {
        "store": args.store or "generated 30-day nature run, obs-scale 0.5",
        "workers": args.workers,
        "batch_size": args.batch_size,
        "windows_per_second": disk["windows_per_second"],
        "observations_per_second": disk["observations_per_second"],
        "in_memory_windows_per_second": memory["windows_per_second"],
        "in_memory_observations_per_second": memory["observations_per_second"],
        "in_memory_speedup": memory["windows_per_second"] / disk["windows_per_second"],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
