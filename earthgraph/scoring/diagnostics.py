"""Physical diagnostics of a long forecast: budgets, stability, coupling.

Inputs are a long forecast from one initialisation in the WB2 layout
(``time`` of length 1, ``prediction_timedelta`` e.g. daily to 365 days), the
truth aligned to it, and the budget totals the forecast carried. Nothing here
knows about models.

- Budgets: each total's relative change from its start, largest on the way and
  at the end, beside the truth's own total where it has one.
- Stability: finite everywhere the truth is; the drift of the global mean
  (mean over the last ``span_days`` minus the first; a quarter of the forecast
  if that is shorter) and the spatial variance against the truth's, at the
  start and at the end; ``blew_up`` when values become non-finite or
  the spatial standard deviation exceeds ``blow_up_factor`` times the truth's;
  ``drifted`` when the mean drifts from the truth's by more than
  ``drift_factor`` times the truth's spatial standard deviation; ``collapsed``
  when the variance ratio ends below ``collapse_ratio`` (a field gone flat).
- Coupling: the correlation, over points and times, between the anomalies
  (from the climatology valid at the same time) of two variables where both
  exist, e.g. SST and air temperature over the ocean, soil moisture and land
  temperature over land; forecast beside truth.

:func:`diagnose` computes all three for a long forecast (:class:`Diagnostics`, written as
``diagnostics.csv`` and ``diagnostics.json``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.scoring import baselines
from earthgraph.scoring.metrics import region_weights, spatial_average

# (name, variable a, variable b): the cross-sphere links scored by default.
COUPLINGS = (("sst_vs_air_temperature", "sea_surface_temperature", "air_temperature"),
             ("soil_moisture_vs_land_temperature", "soil_moisture", "land_surface_temperature"))


def budget_drift(totals: np.ndarray, truth_totals: np.ndarray | None = None) -> dict[str, float]:
    """Relative change of a budget total along a forecast.

    totals: (n_steps + 1,) the total at the start and after each step (any unit).
    truth_totals: the truth's total over the same period, if it has one.
    """
    t = np.asarray(totals, dtype=np.float64)
    if t.ndim != 1 or len(t) < 2 or t[0] == 0 or not np.isfinite(t[0]):
        raise ValueError(f"budget_drift: need a 1-D series of at least two totals with a finite, nonzero start, "
                         f"got shape {t.shape} starting {t[:1]}")
    out = {"relative_change_end": float(abs(t[-1] - t[0]) / abs(t[0])),
           "relative_change_max": float(np.nanmax(np.abs(t - t[0])) / abs(t[0])),
           "finite": bool(np.all(np.isfinite(t)))}
    if truth_totals is not None and len(truth_totals) > 1:
        tt = np.asarray(truth_totals, dtype=np.float64)
        out["truth_relative_change_max"] = float(np.max(np.abs(tt - tt[0])) / abs(tt[0]))
    return out


def _global_series(x: xr.DataArray, skipna: bool = True) -> tuple[xr.DataArray, xr.DataArray]:
    """Area-weighted spatial mean and variance of ``x`` at each lead (time dim of one)."""
    w = region_weights(x)
    mean = spatial_average(x, w, skipna)
    var = spatial_average((x - mean) ** 2, w, skipna)
    return mean, var


def stability(forecast: xr.DataArray, truth: xr.DataArray, span_days: float = 30.0,
              blow_up_factor: float = 10.0, drift_factor: float = 1.0,
              collapse_ratio: float = 0.1) -> dict[str, float | bool | None]:
    """Stability of one variable of a long forecast against the truth aligned to it."""
    f, t = forecast.isel(time=0, drop=True), truth.isel(time=0, drop=True)
    exists = t.notnull()
    bad = (~np.isfinite(f)) & exists
    bad_leads = bad.any([d for d in bad.dims if d != "prediction_timedelta"])
    first_bad = (float(f.prediction_timedelta.values[bad_leads.values][0] / np.timedelta64(1, "D"))
                 if bad_leads.any() else None)
    fm, fv = _global_series(f.where(np.isfinite(f)))
    tm, tv = _global_series(t)
    days = f.prediction_timedelta.values / np.timedelta64(1, "D")
    span = min(span_days, (days[-1] - days[0]) / 4)  # the two spans never overlap
    first, last = days <= days[0] + span, days >= days[-1] - span
    ratio_std = np.sqrt(fv / tv)
    out = {
        "finite": not bool(bad_leads.any()), "first_nonfinite_day": first_bad,
        "mean_drift": float(fm.values[last].mean() - fm.values[first].mean()),
        "truth_mean_drift": float(tm.values[last].mean() - tm.values[first].mean()),
        "variance_ratio_start": float((fv.values[first] / tv.values[first]).mean()),
        "variance_ratio_end": float((fv.values[last] / tv.values[last]).mean()),
        "max_std_ratio": float(np.nanmax(ratio_std.values)) if np.isfinite(ratio_std.values).any() else None,
    }
    out["blew_up"] = bool(first_bad is not None or (out["max_std_ratio"] or 0.0) > blow_up_factor)
    truth_std = float(np.sqrt(tv.values).mean())
    out["drifted"] = bool(abs(out["mean_drift"] - out["truth_mean_drift"]) > drift_factor * truth_std)
    out["collapsed"] = bool(out["variance_ratio_end"] < collapse_ratio)
    return out


def anomaly_correlation(a: xr.DataArray, b: xr.DataArray) -> float:
    """Pearson correlation of two anomaly fields over every point and time where both exist."""
    x, y = np.asarray(a.values, np.float64).ravel(), np.asarray(b.values, np.float64).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan")
    x, y = x[ok] - x[ok].mean(), y[ok] - y[ok].mean()
    den = np.sqrt((x ** 2).sum() * (y ** 2).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def coupling(forecast: xr.Dataset, truth: xr.Dataset, climatology: xr.Dataset,
             pairs=COUPLINGS) -> dict[str, dict[str, float]]:
    """Anomaly correlations of each (a, b) pair present, forecast beside truth.

    forecast, truth, climatology: the same layout (climatology valid at the same times).
    """
    out = {}
    for name, a, b in pairs:
        if not all(v in ds for v in (a, b) for ds in (forecast, truth, climatology)):
            continue
        fc = anomaly_correlation(forecast[a] - climatology[a], forecast[b] - climatology[b])
        tr = anomaly_correlation(truth[a] - climatology[a], truth[b] - climatology[b])
        out[name] = {"forecast": fc, "truth": tr, "difference": fc - tr}
    return out


def diagnostics_table(budgets: dict[str, dict], stable: dict[str, dict], coupled: dict[str, dict]) -> pd.DataFrame:
    """All diagnostics as a long table: kind, name, quantity, value."""
    rows = [("budget", n, k, v) for n, d in budgets.items() for k, v in d.items()]
    rows += [("stability", n, k, v) for n, d in stable.items() for k, v in d.items()]
    rows += [("coupling", n, k, v) for n, d in coupled.items() for k, v in d.items()]
    return pd.DataFrame(rows, columns=["kind", "name", "quantity", "value"])


@dataclass(frozen=True)
class Diagnostics:
    """The physical diagnostics of one long forecast."""

    init: str  # its initialisation, ISO to the second
    days: int  # its length
    spin_up_windows: int  # windows its cycle ran before the initialisation (0: not cycled)
    budgets: dict[str, dict]  # budget name -> :func:`budget_drift`
    stability: dict[str, dict]  # variable -> :func:`stability`
    coupling: dict[str, dict]  # pair name -> forecast, truth and difference of :func:`anomaly_correlation`

    def table(self) -> pd.DataFrame:
        """:func:`diagnostics_table`: kind, name, quantity, value."""
        return diagnostics_table(self.budgets, self.stability, self.coupling)

    def write(self, out_dir: str | Path) -> None:
        """``diagnostics.csv`` (the table) and ``diagnostics.json`` (everything) in ``out_dir``."""
        self.table().to_csv(Path(out_dir) / "diagnostics.csv", index=False)
        (Path(out_dir) / "diagnostics.json").write_text(json.dumps(asdict(self), indent=1))


def diagnose(forecast: xr.Dataset, totals: dict[str, np.ndarray], truth: xr.Dataset, climatology: xr.Dataset,
             days: int, spin_up_windows: int = 0) -> Diagnostics:
    """Budgets, stability and coupling of a long forecast.

    forecast: WB2 layout, ``time`` of length 1, leads e.g. daily (any variables the truth has).
    totals: budget name -> (n_windows + 1,) its global total along the forecast; the water
        budget is compared with the truth's ``water_total`` where the truth has one.
    truth: (time, latitude, longitude), covering the forecast's valid times.
    climatology: (hour, dayofyear, latitude, longitude) of the forecast's variables.
    """
    init, leads = forecast.time.values, forecast.prediction_timedelta.values
    variables = list(forecast.data_vars)
    aligned = baselines.align_truth(truth[variables], init, leads)
    clim = baselines.climatology_forecast(climatology[variables], init, leads)
    span = baselines.valid_times(init, np.concatenate([[np.timedelta64(0, "h")], leads]))
    truth_water = (truth["water_total"].sel(time=slice(span.values[0, 0], span.values[0, -1])).values
                   if "water_total" in truth else None)
    budgets = {n: budget_drift(t, truth_water if n == "water" else None) for n, t in totals.items()}
    stable = {v: stability(forecast[v], aligned[v]) for v in variables}
    return Diagnostics(str(init[0])[:19], days, spin_up_windows, budgets, stable, coupling(forecast, aligned, clim))
