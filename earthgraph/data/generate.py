"""Generate an OSSE: the nature run's truth (gridded zarr) and its observations (store)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import xarray as xr

from earthgraph import __version__
from earthgraph.data import obs_types
from earthgraph.data.atomic import atomic_replace, sibling_path
from earthgraph.data.nature_run import NatureRunConfig, run_nature
from earthgraph.data.observing import ObservingConfig, ObservingNetwork
from earthgraph.data.store import StoreWriter

CHUNK_SECONDS = 86400


def write_zarr_atomic(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Write a dataset to zarr beside ``path`` and move it into place when complete."""
    path = Path(path)
    tmp = sibling_path(path, "tmp")
    try:
        ds.to_zarr(tmp, mode="w", consolidated=False, zarr_format=3)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_replace(tmp, path)


def generate_osse(out_dir: str | os.PathLike, nature: NatureRunConfig, observing: ObservingConfig,
                  overwrite: bool = True, systems: tuple[str, ...] | None = None) -> dict:
    """Run the nature run, write ``truth.zarr`` and ``obs.zarr`` into ``out_dir``.

    ``systems``: the observing systems to run (default: every one).

    Returns a summary (paths, counts per type, time range).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth = run_nature(nature)
    write_zarr_atomic(truth, out / "truth.zarr")

    provenance = {
        "generator": f"earthgraph {__version__} nature run",
        "nature_run": asdict(nature),
        "observing": asdict(observing),
    }
    summary = {"truth": str(out / "truth.zarr"),
               **observe_gridded(truth, out / "obs.zarr", observing, systems=systems, provenance=provenance,
                                 overwrite=overwrite),
               "grid": [nature.nlat, nature.nlon]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def observe_gridded(truth: xr.Dataset, store: str | os.PathLike, observing: ObservingConfig,
                    systems: tuple[str, ...] | None = None, provenance: dict | None = None,
                    overwrite: bool = True) -> dict:
    """Sample gridded fields (the nature run, or a user's dataset from
    :func:`earthgraph.data.gridded.open_gridded`) with the observing systems into a store.

    ``systems``: default every system whose variables ``truth`` holds. Returns the
    store path, time range and counts per system.
    """
    available = ObservingNetwork.systems_for(truth)
    systems = available if systems is None else tuple(systems)
    missing = {n: [v for v in ObservingNetwork.REQUIRES.get(n, ()) if v not in truth.data_vars] for n in systems}
    unknown = [n for n in systems if n not in ObservingNetwork.REQUIRES]
    if unknown or any(missing.values()) or not systems:
        raise KeyError(f"cannot observe {truth.attrs.get('source_file', 'the gridded truth')}: unknown systems "
                       f"{unknown}, missing variables {({k: v for k, v in missing.items() if v})}; "
                       f"systems it supports: {list(available)}")
    network = ObservingNetwork(truth, observing)
    t_start, t_end = network.sampler.t_start, network.sampler.t_end
    counts = {n: 0 for n in systems}
    with StoreWriter(store, [obs_types.get(n) for n in systems], provenance=provenance or {},
                     overwrite=overwrite) as writer:
        static = {k: truth[k].values for k in ("land_sea_mask", "geopotential_at_surface") if k in truth}
        writer.add_static(truth.latitude.values, truth.longitude.values, static)
        t = t_start
        while t < t_end:
            t1 = min(t + CHUNK_SECONDS, t_end)
            for name in systems:
                cols = network.observe(name, t, t1)
                writer.append(name, cols)
                counts[name] += len(cols["time"])
            t = t1
    return {
        "observations": str(store),
        "time_range": [str(np.datetime64(int(t_start), "s")), str(np.datetime64(int(t_end), "s"))],
        "counts": counts,
    }
