"""Generate an OSSE: the nature run's truth (gridded zarr) and its observations (store); or observe
a user's gridded file (:func:`observe_file`) with the same observing systems."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import xarray as xr

from earthgraph import __version__
from earthgraph.data import obs_types
from earthgraph.data.atomic import atomic_replace, sibling_path
from earthgraph.data.gridded import (GriddedError, observing_period, open_gridded, time_step_warning,
                                     with_land_sea_mask)
from earthgraph.data.nature_run import NatureRunConfig, run_nature
from earthgraph.data.observing import OBSERVING_SYSTEMS, ObservingConfig, ObservingNetwork, systems_for
from earthgraph.data.sampler import FIELD_DIMS
from earthgraph.data.store_statics import store_statics
from earthgraph.data.store_writer import StoreWriter
from earthgraph.progress import progress

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
                  overwrite: bool = True, systems: tuple[str, ...] | None = None, show_progress: bool = True) -> dict:
    """Run the nature run, write ``truth.zarr`` and ``obs.zarr`` into ``out_dir``.

    ``systems``: the observing systems to run (default: every one). ``show_progress``:
    progress bars of the nature run and of the observing (:mod:`earthgraph.progress`).

    Returns a summary (paths, counts per type, time range).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth = run_nature(nature, show_progress)
    write_zarr_atomic(truth, out / "truth.zarr")

    provenance = {
        "generator": f"earthgraph {__version__} nature run",
        "nature_run": asdict(nature),
        "observing": asdict(observing),
    }
    summary = {"truth": str(out / "truth.zarr"),
               **observe_gridded(truth, out / "obs.zarr", observing, systems=systems, provenance=provenance,
                                 overwrite=overwrite, show_progress=show_progress),
               "grid": [nature.nlat, nature.nlon]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _check_systems(truth: xr.Dataset, systems: tuple[str, ...] | None) -> tuple[str, ...]:
    """The systems to run (default: every one whose variables ``truth`` holds); KeyError naming the
    file for unknown systems or missing variables, GriddedError for a field the sampler cannot read."""
    file = truth.attrs.get("source_file", "the gridded truth")
    available = systems_for(truth)
    if systems is None and not available:
        needed = sorted({v for s in OBSERVING_SYSTEMS.values() for v in s.requires})
        raise KeyError(f"cannot observe {file}: no observing system finds its variables there; it has "
                       f"{sorted(map(str, truth.data_vars))}, the systems read {needed}")
    systems = available if systems is None else tuple(systems)
    unknown = [n for n in systems if n not in OBSERVING_SYSTEMS]
    if unknown:
        raise KeyError(f"cannot observe {file}: unknown system(s) {unknown}; known: {list(OBSERVING_SYSTEMS)}")
    requires = {n: OBSERVING_SYSTEMS[n].requires for n in systems}
    missing = {n: [v for v in requires[n] if v not in truth.data_vars] for n in systems}
    if any(missing.values()) or not systems:
        raise KeyError(f"cannot observe {file}: missing variables {({k: v for k, v in missing.items() if v})}; "
                       f"systems it supports: {list(available)}")
    for name in sorted({v for n in systems for v in requires[n]}):
        dims = truth[name].dims
        if set(dims) != set(FIELD_DIMS):
            raise GriddedError(f"{file}, variable {name!r}: dims {list(dims)}; the observing systems sample "
                               f"fields with dims {list(FIELD_DIMS)} (select one level or member first)")
    return systems


def _chunks(t0: float, t1: float, chunk_seconds: float) -> list[tuple[float, float]]:
    """Consecutive [a, b) spans of ``chunk_seconds`` covering [t0, t1) (the last one shorter)."""
    out, t = [], t0
    while t < t1:
        b = min(t + chunk_seconds, t1)
        out.append((t, b))
        t = b
    return out


def _truth_statics(truth: xr.Dataset) -> dict[str, np.ndarray]:
    """The truth's land-sea mask and orography (first time step where they have one) on its grid."""
    static = {"latitude": truth.latitude.values, "longitude": truth.longitude.values}
    for k in ("land_sea_mask", "geopotential_at_surface"):
        if k in truth:
            da = truth[k].isel(time=0) if "time" in truth[k].dims else truth[k]
            static[k] = da.transpose("latitude", "longitude").values
    return static


def observe_gridded(truth: xr.Dataset, store: str | os.PathLike, observing: ObservingConfig,
                    systems: tuple[str, ...] | None = None, provenance: dict | None = None,
                    overwrite: bool = True, period: tuple[str, str] | None = None,
                    chunk_hours: float = CHUNK_SECONDS / 3600, static: dict[str, np.ndarray] | None = None,
                    show_progress: bool = True) -> dict:
    """Sample gridded fields (the nature run, or a user's dataset from
    :func:`earthgraph.data.gridded.open_gridded`) with the observing systems into a store.

    The fields are streamed: chunk by chunk of ``chunk_hours``, the sampler holds
    only the time steps that chunk's observations interpolate from, so memory
    grows with the chunk, not the record. The chunk length also keys each
    chunk's random draws: the same seed and chunk length give the same store.

    ``systems``: default every system whose variables ``truth`` holds.
    ``period``: (START, END), ISO; observe [START, END) of the fields' span
    (default all of it: [first step, last step)). ``static``: the static fields
    to store, in :func:`earthgraph.data.store_statics.store_statics`'s layout (default
    the truth's own land-sea mask and orography). ``show_progress``: a progress
    bar over the chunks on standard error. Returns the store path, time range,
    counts per system, and per field the points sampled where it had no value
    (NaN: the other surface, missing data), which gave no observation there.
    Raises KeyError or GriddedError naming the file and field; a failed run
    leaves the store path as it was (no store, or the previous one).
    """
    systems = _check_systems(truth, systems)
    if not chunk_hours > 0:
        raise ValueError(f"chunk_hours must be positive, got {chunk_hours}")
    network = ObservingNetwork(truth, observing)
    sampler = network.sampler
    t_start, t_end = observing_period(sampler.seconds, period, sampler.file)
    chunks = _chunks(t_start, t_end, chunk_hours * 3600.0)
    counts = {n: 0 for n in systems}
    static = _truth_statics(truth) if static is None else dict(static)
    with StoreWriter(store, [obs_types.get(n) for n in systems], provenance=provenance or {},
                     overwrite=overwrite) as writer:
        writer.add_static(static.pop("latitude"), static.pop("longitude"), static)
        try:
            desc = f"observing {Path(sampler.file).name}" if "source_file" in truth.attrs else "observing"
            for t0, t1 in progress(chunks, desc=desc, unit="chunk", enabled=show_progress):
                sampler.hold(t0, t1)
                for name in systems:
                    cols = network.observe(name, t0, t1)
                    writer.append(name, cols)
                    counts[name] += len(cols["time"])
        finally:
            sampler.release()
    return {
        "observations": str(store),
        "time_range": [str(np.datetime64(int(t_start), "s")), str(np.datetime64(int(t_end), "s"))],
        "counts": counts,
        "points_without_truth": dict(sorted(sampler.missing.items())),
    }


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _land_sea_mask(truth: xr.Dataset, path: str, statics: str, seed: int,
                   note: Callable[[str], None]) -> tuple[xr.Dataset, dict[str, np.ndarray], str]:
    """The truth with a land-sea mask, the static fields to store, and where the mask came from.

    The file's own mask (ERA5 ``lsm``; first time step) comes first; otherwise the
    ``statics`` choice of :func:`~earthgraph.data.store_statics.store_statics`, regridded onto the
    file's grid by nearest neighbour (the store keeps it on its own grid)."""
    if "land_sea_mask" in truth:
        if statics != "none":
            note(f"note: {path} has its own land_sea_mask; --statics {statics} is not used")
        return truth, store_statics(path), f"{path} (its own land_sea_mask)"
    static = store_statics(statics, seed=seed)
    if static is None:
        raise GriddedError(f"{path}: no land_sea_mask variable (nor ERA5's lsm), which the observing systems need "
                           "to tell land from sea; give one with --statics synthetic, climt or PATH")
    return with_land_sea_mask(truth, static), static, f"--statics {statics} (nearest neighbour onto the file's grid)"


def observe_file(path: str, out: str | os.PathLike, observing: ObservingConfig, *,
                 systems: tuple[str, ...] | None = None, period: tuple[str, str] | None = None,
                 chunk_hours: float = CHUNK_SECONDS / 3600, statics: str = "none", overwrite: bool = False,
                 rename: dict[str, str] | None = None, note: Callable[[str], None] = _stderr_line) -> dict:
    """An OSSE on a user's gridded file: ``python -m earthgraph.data observe``.

    path: a WB2/ERA5-style zarr store or CF netCDF file (local path or fsspec URL),
    read lazily by :func:`~earthgraph.data.gridded.open_gridded` and streamed through
    :func:`observe_gridded` into the store ``out``. ``statics``: ``none``,
    ``synthetic``, ``climt`` or a path (:func:`~earthgraph.data.store_statics.store_statics`),
    the land-sea mask used when the file has none. ``rename``: the file's variable
    names to earthgraph's (``{"UWND": "u_component_of_wind"}``). ``note``: where warning
    lines go (coarse time steps, an unused ``statics``). Returns the summary that the
    command prints.
    """
    truth = open_gridded(path, rename=rename)
    # The cheap checks first, so that a wrong file or period fails at once and alone.
    systems = _check_systems(truth, systems)
    seconds = truth.time.values.astype("datetime64[s]").astype(np.int64)
    observing_period(seconds, period, str(path))
    truth, static, mask_from = _land_sea_mask(truth, str(path), statics, observing.seed, note)
    warning = time_step_warning(seconds, str(path))
    if warning:
        note(warning)
    provenance = {"generator": f"earthgraph {__version__} observe", "gridded": str(path), "period": period,
                  "chunk_hours": chunk_hours, "land_sea_mask": mask_from, "observing": asdict(observing)}
    summary = observe_gridded(truth, out, observing, systems=systems, provenance=provenance, overwrite=overwrite,
                              period=period, chunk_hours=chunk_hours, static=static)
    return {"gridded": str(path), **summary, "grid": [truth.sizes["latitude"], truth.sizes["longitude"]],
            "land_sea_mask_from": mask_from}
