"""Scoring forecasts of any size: WB2 scores accumulated chunk by chunk of initialisations.

Every WB2 score is a time mean of per-forecast quantities, or a root or ratio of such
means: the area-weighted squared, signed and absolute errors, the anomaly correlation,
the spatial variances of forecast and truth, the fair CRPS and the members' variance,
one value per (initialisation, lead[, level], region). Those terms are small (a few
numbers per field), so the fields never need to be in memory together:

1. the forecast, the truth and the climatology are opened lazily (dask);
2. for each chunk of ``chunk_inits`` initialisations and each variable (a u/v wind pair
   together), one task reads the chunk's forecast, the truth at its verified valid
   times (and at its initialisations, for persistence) and the climatology on its days
   of the year, makes the persistence and climatology baselines from them, and returns
   the terms of every forecast (``evaluation.forecast_terms``);
3. the chunks' terms are concatenated along ``time`` and finished as
   ``evaluation.score_forecast`` finishes them (time means over the verified pairs,
   roots after the mean, ratios of means).

Tasks run on dask's scheduler: threads here, or the workers of a ``dask.distributed``
cluster when a ``Client`` is active. Memory: ``parallel`` tasks at once (one here), each
holding one chunk of one variable group, estimated by :func:`bytes_per_init` (67 MiB for
32 initialisations of 2 leads on 64 x 128 points; scoring 2,400 of them so peaked at
258 MiB RSS, 9 MiB above scoring 40), plus the zarr chunks of each input that the chunk
touches, plus the climatology when it was
computed from the truth (in memory, ``climatology.hourly_dayofyear_climatology``). One
initialisation of one variable group (all its leads, levels and members) is the least a
chunk holds.

One chunk (the default for data estimated under :data:`IN_MEMORY_BYTES`) gives exactly
the numbers of ``evaluation.score_forecast``. Several chunks change the order of some sums
(a matrix product over fewer rows in the area means; a truth mask judged fixed chunk by
chunk): measured on a 40-day 32 x 64 nature run, chunks of 1 and 7 initialisations against
one, mse, rmse, mae, acc and bias differ by at most 1.3e-15 of their metric's scale, and
variance_ratio by up to 2.3e-11 where a region's variance is small beside the field's
offset from its global mean (the one-pass variance of ``metrics.spatial_variance``
cancels there, magnifying the last bits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import dask
import numpy as np
from dask.delayed import Delayed
import xarray as xr

from earthgraph.scoring import baselines, evaluation
from earthgraph.scoring.evaluation import WIND_VECTORS, RegionTerms
from earthgraph.scoring.regions import Region

Baseline = Literal["persistence", "climatology"]
"""A reference forecast made chunk by chunk from the truth or the climatology."""

IN_MEMORY_BYTES = 4 << 30
"""Estimated memory (:func:`bytes_per_init` x initialisations, all variable groups) up to
which the scoring is one chunk, computed as in memory (the estimate counts every group's
work at once, twice what two threads hold: the quickstart estimates 0.3 GiB, the default
OSSE's six leads 2.7 GiB)."""
CHUNK_BYTES = 256 << 20
"""Estimated memory of one task (one chunk of one variable group) beyond that."""
WORK_COPIES = 12
"""Float64 copies of one variable's chunk alive at once while its terms are computed
(forecast, truth, climatology, error, anomalies, and the area mean's masks)."""


@dataclass(frozen=True)
class ChunkSetup:
    """What every chunk's task needs besides its data: the region names and their weights
    over the truth's grid (``evaluation.region_weights``), the NaN rule, the truth's name."""

    regions: list[str]
    weights: list[xr.DataArray]
    skip_missing_truth: bool
    truth_source: str


def variable_groups(variables: list[str]) -> list[list[str]]:
    """The variables scored by one task: each alone, but each (u, v) wind pair of
    ``WIND_VECTORS`` together (its vector error is scored too), in first-seen order."""
    groups, done = [], set()
    for var in variables:
        if var in done:
            continue
        group = [var]
        for u, v, _ in WIND_VECTORS:
            if var in (u, v) and u in variables and v in variables:
                group = [u, v]
        groups.append(group)
        done.update(group)
    return groups


def bytes_per_init(forecasts: Mapping[str, xr.Dataset | Baseline], group: list[str]) -> int:
    """Estimated bytes one initialisation of ``group`` takes while scored: every forecast's
    fields and the truth and climatology at their valid times (float64 at most), and
    :data:`WORK_COPIES` float64 copies of the largest variable (all leads, levels, members)."""
    fields = [f[v] for f in forecasts.values() if not isinstance(f, str) for v in group if v in f]
    if not fields:
        raise ValueError(f"chunked scoring: no forecast dataset holds {group} (baselines alone cannot be sized)")
    per_init = [int(np.prod([n for d, n in da.sizes.items() if d != "time"])) for da in fields]
    inputs = len(group) * (len(forecasts) + 2) * max(per_init)
    return 8 * (inputs + WORK_COPIES * max(per_init))


def chunk_size(n_inits: int, per_init: list[int], chunk_inits: int | None = None) -> int:
    """Initialisations per chunk: ``chunk_inits`` if given; else all of them when the
    whole scoring is estimated under :data:`IN_MEMORY_BYTES` (``per_init``: bytes per
    initialisation of each variable group), else as many as fit in :data:`CHUNK_BYTES`
    for the largest group (at least one)."""
    if chunk_inits is not None:
        if chunk_inits < 1:
            raise ValueError(f"chunked scoring: chunk_inits must be at least 1, got {chunk_inits}")
        return min(chunk_inits, n_inits)
    if sum(per_init) * n_inits <= IN_MEMORY_BYTES:
        return n_inits
    return int(min(n_inits, max(1, CHUNK_BYTES // max(per_init))))


def _chunk_terms(group: list[str], forecasts: dict[str, xr.Dataset | Baseline], truth: xr.Dataset,
                 climatology: xr.Dataset | None, scored: xr.DataArray, setup: ChunkSetup
                 ) -> dict[str, dict[str, RegionTerms]]:
    """One task: the terms of every forecast for one chunk of initialisations (``scored``:
    its (time, prediction_timedelta) pairs) and one variable group, from the chunk's data
    in memory: ``truth`` at the times it needs (``baselines.truth_times_needed``),
    ``climatology`` on the days of the year it needs."""
    init, leads = scored.time.values, scored.prediction_timedelta.values
    aligned = baselines.align_truth(truth, init, leads, setup.truth_source, scored)
    clim_valid = None if climatology is None else baselines.climatology_forecast(climatology, init, leads)
    out = {}
    for name, fc in forecasts.items():
        if isinstance(fc, str):  # a baseline, made for this chunk (checked by _check_baselines)
            # persisted from the truth as it is scored: an infinite truth is missing (evaluation.finite_truth)
            fc = (baselines.persistence(evaluation.finite_truth(truth), init, leads, setup.truth_source)
                  if fc == "persistence" else clim_valid)
        out[name] = evaluation.forecast_terms(fc, aligned, setup.regions, clim_valid, group,
                                              setup.skip_missing_truth, setup.weights, scored)
    return out


def _chunk_task(group: list[str], forecasts: Mapping[str, xr.Dataset | Baseline], truth: xr.Dataset,
                climatology: xr.Dataset | None, scored: xr.DataArray, chunk: slice, setup: Delayed) -> Delayed:
    """The delayed :func:`_chunk_terms` of one chunk and group: its inputs are lazy
    selections, read by the task itself (on a worker, under dask.distributed); ``setup``:
    the delayed :class:`ChunkSetup`."""
    sc = scored.isel(time=chunk)
    persistence = any(isinstance(f, str) and f == "persistence" for f in forecasts.values())
    t = truth[group].sel(time=baselines.truth_times_needed(sc, persistence))
    c = None
    if climatology is not None:
        days = baselines.days_of_year(sc.time.values, sc.prediction_timedelta.values)
        c = climatology[[v for v in group if v in climatology]].sel(dayofyear=days)
    fcs = {n: f if isinstance(f, str) else f[group].isel(time=chunk) for n, f in forecasts.items()}
    return dask.delayed(_chunk_terms, pure=False)(group, fcs, t, c, sc, setup)


def _check_baselines(forecasts: Mapping[str, xr.Dataset | Baseline], climatology: xr.Dataset | None) -> None:
    """Raise a ValueError naming the forecast unless each one named as a baseline can be made."""
    for name, f in forecasts.items():
        if isinstance(f, str) and f not in ("persistence", "climatology"):
            raise ValueError(f"chunked scoring: forecast {name!r} is {f!r}; a baseline is 'persistence' or "
                             "'climatology'")
        if isinstance(f, str) and f == "climatology" and climatology is None:
            raise ValueError(f"chunked scoring: forecast {name!r} is the climatology, and none was given")


def score_forecasts(forecasts: Mapping[str, xr.Dataset | Baseline], truth: xr.Dataset,
                    climatology: xr.Dataset | None, scored: xr.DataArray, regions: dict[str, Region],
                    variables: list[str], skip_missing_truth: bool = True, chunk_inits: int | None = None,
                    parallel: int = 1, truth_source: str = "truth") -> dict[str, xr.Dataset]:
    """WB2 results of every forecast, in bounded memory (see the module's docstring).

    forecasts: name -> a WB2-layout dataset (lazy or in memory) whose ``time`` and
        ``prediction_timedelta`` are those of ``scored``, or a :data:`Baseline` made here.
    truth: dims (time, [level,] <spatial>), lazy or in memory, holding every verified
        valid time (and the initialisations, for persistence).
    climatology: dims ([hour,] dayofyear, [level,] <spatial>) on the truth's grid, or None
        (no acc, no climatology baseline).
    scored: (time, prediction_timedelta) bool, the verified pairs (``baselines.verification_pairs``).
    chunk_inits: initialisations per chunk (default: :func:`chunk_size`'s choice).
    parallel: tasks in flight at once when there are several chunks (a cluster's threads).

    Returns name -> dataset with, per variable, dims (metric, region, lead_time[, level]),
    in the order of ``forecasts``: what ``evaluation.score_forecast`` gives for each.
    """
    _check_baselines(forecasts, climatology)
    groups = variable_groups(variables)
    n = scored.sizes["time"]
    per_init = [bytes_per_init(forecasts, g) for g in groups]
    size = chunk_size(n, per_init, chunk_inits)
    setup = ChunkSetup(list(regions), evaluation.region_weights(regions, truth), skip_missing_truth, truth_source)
    shared = dask.delayed(setup, traverse=False)  # sent to a cluster once, not with every task
    jobs = [(slice(a, a + size), g) for a in range(0, n, size) for g in groups]
    # Data that fit in memory: every group at once, as fast as it goes; else `parallel` at a time
    # (and their graphs built wave by wave: a year of 0.25-degree chunks would hold gigabytes).
    wave = len(jobs) if size >= n and sum(per_init) * n <= IN_MEMORY_BYTES else max(1, parallel)
    parts: dict[str, dict[str, list[RegionTerms]]] = {name: {} for name in forecasts}
    for i in range(0, len(jobs), wave):
        tasks = [_chunk_task(g, forecasts, truth, climatology, scored, chunk, shared) for chunk, g in jobs[i:i + wave]]
        for chunk_terms in dask.compute(*tasks):
            for name, terms in chunk_terms.items():
                for var, rt in terms.items():
                    parts[name].setdefault(var, []).append(rt)
    order = list(variables) + [w for u, v, w in WIND_VECTORS if u in variables and v in variables]
    return {name: evaluation.finish_scores({v: evaluation.concat_terms(parts[name][v]) for v in order}, scored)
            for name in forecasts}
