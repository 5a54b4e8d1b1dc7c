"""Scoring step: the forecast, the baselines beside it and every score, chunk by chunk of
initialisations (:mod:`earthgraph.scoring.chunked`), on this machine's threads or a
dask.distributed cluster; then the notes that explain every score that is not finite.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import xarray as xr

from earthgraph.evaluate.errors import EvaluationError, reported
from earthgraph.evaluate.inputs import ScoringInputs
from earthgraph.evaluate.options import Scoring
from earthgraph.scoring import chunked, evaluation

NOTES = {"truth_missing": "NaN truth value(s) (--no-skipna: its scores there are NaN)",
         "truth_infinite": "infinite truth value(s), treated as missing",
         "forecast_missing": "NaN forecast value(s) where the truth exists (its scores there are NaN)",
         "forecast_infinite": "infinite forecast value(s) where the truth exists (its scores there are inf or NaN)",
         "climatology_missing": "non-finite climatology value(s) where the truth exists (its acc there is NaN)",
         "too_large": "value(s) too large to square in float64 (its scores there may be inf)"}
"""The counts (``evaluation.value_counts``) that explain a NaN or inf score, printed when not 0."""

Scored = dict[str, xr.Dataset]
"""Forecast name -> its WB2 results, per variable (metric, region, lead_time[, level])."""


@contextmanager
def scheduler(address: str | None) -> Iterator[object | None]:
    """A dask.distributed Client of the cluster at ``address`` (the default scheduler while
    inside), closed after; None (this machine's threads) without an address."""
    if address is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise EvaluationError("--scheduler needs dask.distributed: pip install 'earthgraph[distributed]'") from None
    try:
        client = Client(address)  # waits distributed.comm.timeouts.connect (30 s) for it
    except (OSError, TimeoutError) as err:
        raise EvaluationError(f"--scheduler {address}: cannot connect: {err}") from err
    try:
        yield client
    finally:
        client.close()


def reference_forecasts(scoring: Scoring, inp: ScoringInputs) -> dict[str, xr.Dataset | chunked.Baseline]:
    """The baselines asked for: persistence and climatology by name (the scoring makes
    them chunk by chunk), the perfect model in the forecast's layout (a nature-run truth
    only: it is the nature run itself from a perturbed true state)."""
    init, leads = inp.forecast.time.values, inp.forecast.prediction_timedelta.values
    out: dict[str, xr.Dataset | chunked.Baseline] = {}
    if "persistence" in scoring.baselines:
        out["persistence"] = "persistence"
    if "climatology" in scoring.baselines:
        out["climatology"] = "climatology"
    if "perfect_model" in scoring.baselines:
        if "config" not in inp.truth.attrs:
            print("note: no perfect_model baseline: the truth is not an earthgraph nature run")
            return out
        from earthgraph.data.perfect_model import nature_config_from_truth, perfect_model_forecast

        lead_h = [float(x / np.timedelta64(1, "h")) for x in leads]
        out["perfect_model"] = perfect_model_forecast(nature_config_from_truth(inp.truth), init, lead_h,
                                                      scoring.perfect_model_perturbation, variables=inp.variables)
    return out


def forecasts_to_score(scoring: Scoring, inp: ScoringInputs) -> dict[str, xr.Dataset | chunked.Baseline]:
    """The forecast, what is scored beside it (a cycling model's memoryless self), the baselines."""
    also = {n: f[inp.variables].sel(time=inp.forecast.time) for n, f in inp.origin.also_scored.items()}
    return {inp.name: inp.forecast, **also, **reference_forecasts(scoring, inp)}


def score(scoring: Scoring, inp: ScoringInputs, forecasts: dict[str, xr.Dataset | chunked.Baseline],
          client=None) -> Scored:
    """Every forecast's WB2 results, chunk by chunk of initialisations; ``client``: a
    dask.distributed Client or None."""
    parallel = sum(client.nthreads().values()) if client is not None else 1
    with reported():
        return chunked.score_forecasts(forecasts, inp.truth[inp.variables], inp.climatology, inp.scored, inp.regions,
                                       inp.variables, scoring.skipna, scoring.chunk_inits, parallel,
                                       inp.truth_source)


def value_notes(results: Scored, no_skipna: bool) -> dict[str, dict[str, dict[str, int]]]:
    """Print a note for every forecast and variable whose verified values include some
    that make its scores NaN or inf (:data:`NOTES`; NaN truth only with --no-skipna, else
    it is left out), so no score is non-finite without a reason. Returns every count that
    is not 0, the truth's (the same for every forecast) under "truth", for the summary."""
    counted: dict[str, dict[str, dict[str, int]]] = {}
    for name, ds in results.items():
        for var, da in ds.data_vars.items():
            counts = {k: int(da.attrs[k]) for k in evaluation.COUNTS if da.attrs.get(k, 0)}
            own = {k: n for k, n in counts.items() if not k.startswith("truth_")}
            truth = {k: n for k, n in counts.items() if k.startswith("truth_")}
            if truth and var not in counted.get("truth", {}):
                counted.setdefault("truth", {})[var] = truth
                shown = {k: n for k, n in truth.items() if k == "truth_infinite" or no_skipna}
                if shown:
                    print(f"note: truth {var}: " + ", ".join(f"{n} {NOTES[k]}" for k, n in shown.items()))
            if own:
                counted.setdefault(name, {})[var] = own
                print(f"note: {name} {var}: " + ", ".join(f"{n} {NOTES[k]}" for k, n in own.items()))
    return counted


def left_out(results: Scored, inp: ScoringInputs, scoring: Scoring, computed_climatology: bool) -> dict:
    """The counts of the values left out or not finite (:func:`value_notes`, printed), and
    those a climatology computed from the truth left out of its averages."""
    counted = value_notes(results, not scoring.skipna)
    averaged = {} if not computed_climatology else {
        v: {"truth_missing": int(inp.climatology[v].attrs["missing_values"])} for v in inp.variables
        if inp.climatology[v].attrs.get("missing_values", 0)}
    if averaged:
        counted["truth_in_climatology_period"] = averaged
    return counted
