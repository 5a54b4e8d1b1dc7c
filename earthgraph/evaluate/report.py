"""What an evaluation shows: its pictures (``scorecard.png``, ``rmse_<sphere>.png``,
``maps.png``), the scorecards it prints, and its one-line JSON summary with the seconds
each stage took.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.evaluate.inputs import ScoringInputs
from earthgraph.scoring import baselines, plots, scorecard
from earthgraph.scoring.diagnostics import Diagnostics


class Stopwatch:
    """Seconds spent per stage, for the summary line: each :meth:`lap` charges the time
    since the previous one to its stage."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + now - self._t, 1)
        self._t = now

    def timed(self, summary: dict) -> dict:
        """``summary`` with the seconds per stage and their total."""
        return {**summary, "seconds": self.seconds, "seconds_total": round(sum(self.seconds.values()), 1)}


def draw_pictures(inp: ScoringInputs, table: pd.DataFrame, reference: str, map_lead_hours: float,
                  out: Path) -> list[Path]:
    """scorecard.png, rmse_<sphere>.png and (lat-lon grids) maps.png at ``map_lead_hours`` (or
    the first lead when it is not forecast). A forecast without one finite RMSE (all NaN: see
    the notes on non-finite values) has no skill to draw: it is left out of the scorecard,
    and no scorecard is drawn when that is the reference."""
    rmse = table[(table.metric == "rmse") & np.isfinite(table.value)]
    drawn = table[table.forecast.isin(set(rmse.forecast))]
    pictures = []
    if reference in set(rmse.forecast):
        pictures.append(plots.plot_scorecard(drawn, out / "scorecard.png", reference, variables=inp.variables))
    else:
        print(f"note: no scorecard.png: the reference {reference} has no finite RMSE")
    pictures += plots.plot_metric_by_lead(table, out)
    if "latitude" in inp.forecast.dims:
        pictures += draw_maps(inp, map_lead_hours, out)
    return pictures


def draw_maps(inp: ScoringInputs, map_lead_hours: float, out: Path) -> list[Path]:
    """maps.png: forecast, truth and error of the single-level headline variables at the
    first initialisation; [] when every variable has levels."""
    fc, leads = inp.forecast, inp.forecast.prediction_timedelta.values
    map_lead = pd.Timedelta(hours=map_lead_hours).to_timedelta64()
    mapped = [v for v in (inp.origin.headline or inp.variables) if "level" not in fc[v].dims]
    if not mapped:
        return []
    first = inp.scored.isel(time=[0])
    truth = inp.truth[mapped].sel(time=baselines.truth_times_needed(first)).load()
    aligned = baselines.align_truth(truth, first.time.values, leads, inp.truth_source, first)
    return [plots.plot_maps(fc.isel(time=[0]), aligned, mapped, map_lead if map_lead in leads else leads[0],
                            out / "maps.png")]


def describe_pairs(scored: xr.DataArray) -> str:
    """What was verified, in words: the valid times and the initialisations.
    scored: (time, prediction_timedelta) bool, the verified pairs."""
    valid = baselines.valid_times(scored.time.values, scored.prediction_timedelta.values).values[scored.values]
    init = scored.time.values[scored.any("prediction_timedelta").values]
    lead_h = [f"{x / np.timedelta64(1, 'h'):g}" for x in scored.prediction_timedelta.values]
    per_lead = sorted(set(scored.sum("time").values.tolist()))
    return (f"valid {str(valid.min())[:16]} .. {str(valid.max())[:16]} at leads {', '.join(lead_h)} h, "
            f"{'/'.join(map(str, per_lead))} forecasts per lead from {len(init)} initialisations "
            f"{str(init[0])[:16]} .. {str(init[-1])[:16]}")


@dataclass
class Verified:
    """Everything one evaluation scored, for the printed report."""

    inputs: ScoringInputs
    table: pd.DataFrame  # every score (scores.csv's rows)
    reference: str  # the forecast skill is measured against
    obs_stats: pd.DataFrame | None = None  # obs_space.csv's rows
    diagnostics: Diagnostics | None = None
    stations: pd.DataFrame | None = None  # station_scores' rows
    stations_obs: str | None = None  # where the station observations came from
    outputs: list[Path] = field(default_factory=list)  # every file written, for the summary


def print_report(v: Verified) -> None:
    """The scorecards: global RMSE with the skill against the reference, the variance ratio,
    the departures in observation space, the physical diagnostics and the stations' scores."""
    from earthgraph.scoring.station_evaluation import format_station_scorecard

    run = v.inputs.origin.run
    cycled = (f"; cycled from a cold start {run.spin_up_windows} windows before the first initialisation"
              if run is not None and run.spin_up_windows is not None else "")
    print(f"{v.inputs.name} scorecard: {describe_pairs(v.inputs.scored)}{cycled} (global RMSE; skill = 1 - RMSE / "
          f"RMSE_{v.reference})")
    print(scorecard.format_scorecard(v.table, reference=v.reference))
    print("spatial variance ratio to the truth (global; 1 = as varied as the truth, < 1 = smoothed)")
    print(scorecard.format_metric(v.table, "variance_ratio"))
    if v.obs_stats is not None:
        print("observation space (global): fc - ob departures")
        print(scorecard.format_obs_space(v.obs_stats))
    if v.diagnostics is not None:
        print(scorecard.format_diagnostics(v.diagnostics))
    if v.stations is not None:
        print(f"stations of {v.stations_obs} (difference from {v.reference} with its bootstrap interval)")
        print(format_station_scorecard(v.stations, v.reference))


def summary(v: Verified, out: Path, left_out: dict) -> dict:
    """The JSON summary: whether the forecast beats the reference per headline variable and
    lead, where the results are, what was left out."""
    headline = v.inputs.origin.headline or v.inputs.variables
    return {"forecast": v.inputs.name,
            f"beats_{v.reference}": scorecard.beats(v.table, v.inputs.name, v.reference, headline),
            "out": str(out), "outputs": sorted(str(p) for p in v.outputs), "left_out": left_out}


def print_summary(summary: dict) -> None:
    """The last line an evaluation prints: its summary as JSON."""
    print(json.dumps(summary))
