"""Scorecards: tables, WB2-style netCDF and plots of forecast scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.scoring import metrics

COLUMNS = ["forecast", "sphere", "variable", "lead_hours", "metric", "value"]


def score_forecasts(forecasts: dict[str, xr.Dataset], truth: xr.Dataset, spheres: dict[str, str],
                    metric_names: tuple[str, ...] = ("rmse", "bias", "mae")) -> pd.DataFrame:
    """Score each named forecast (WB2 layout) against truth aligned the same way.

    truth: dims (time, prediction_timedelta, latitude, longitude), valid at init + lead.
    Returns a long table with :data:`COLUMNS`.
    """
    rows = []
    for name, fc in forecasts.items():
        for var, sphere in spheres.items():
            if var not in fc:
                continue
            for m in metric_names:
                values = metrics.METRICS[m](fc[var], truth[var])
                for lead, v in zip(values.prediction_timedelta.values, values.values):
                    hours = float(pd.Timedelta(lead) / pd.Timedelta(hours=1))
                    rows.append((name, sphere, var, hours, m, float(v)))
    return pd.DataFrame(rows, columns=COLUMNS)


def to_wb2_netcdf(table: pd.DataFrame, path: str | Path, region: str = "global") -> xr.Dataset:
    """Write scores as netCDF in WB2's results layout: one data variable per
    forecast variable with dims (forecast, metric, region, lead_time)."""
    idx = table.set_index(["variable", "forecast", "metric", "lead_hours"]).value
    forecasts = sorted(table.forecast.unique())
    metric_names = sorted(table.metric.unique())
    leads = sorted(table.lead_hours.unique())
    data = {}
    for var in sorted(table.variable.unique()):
        arr = np.full((len(forecasts), len(metric_names), 1, len(leads)), np.nan)
        for i, fc in enumerate(forecasts):
            for j, m in enumerate(metric_names):
                for k, lead in enumerate(leads):
                    arr[i, j, 0, k] = idx.get((var, fc, m, lead), np.nan)
        data[var] = (("forecast", "metric", "region", "lead_time"), arr)
    ds = xr.Dataset(data, coords={
        "forecast": forecasts, "metric": metric_names, "region": [region],
        "lead_time": pd.to_timedelta(leads, unit="h").values,
    })
    ds.attrs["conventions"] = "WeatherBench2 results layout (metric, region, lead_time), one entry per forecast"
    ds.to_netcdf(path, engine="netcdf4")
    return ds


def plot_rmse(table: pd.DataFrame, path: str | Path, variables: list[str]) -> None:
    """RMSE against lead time, one panel per variable, one line per forecast."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(variables), figsize=(4.2 * len(variables), 3.6), squeeze=False)
    styles = {"earthgraph": ("C0", "o-"), "persistence": ("C3", "s--"), "climatology": ("C2", "^:")}
    for ax, var in zip(axes[0], variables):
        sub = table[(table.variable == var) & (table.metric == "rmse")]
        for fc, g in sub.groupby("forecast"):
            color, style = styles.get(fc, (None, "o-"))
            g = g.sort_values("lead_hours")
            ax.plot(g.lead_hours, g.value, style, color=color, label=fc)
        sphere = sub.sphere.iloc[0] if len(sub) else ""
        ax.set_title(f"{var}\n({sphere})", fontsize=10)
        ax.set_xlabel("lead time (h)")
        ax.set_xticks(sorted(sub.lead_hours.unique()))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("RMSE")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_scorecard(table: pd.DataFrame, metric: str = "rmse", reference: str = "persistence") -> str:
    """A text table: RMSE of each forecast per variable and lead, and the skill
    against ``reference`` (1 - rmse / rmse_reference; > 0 means better)."""
    sub = table[table.metric == metric]
    piv = sub.pivot_table(index=["sphere", "variable", "lead_hours"], columns="forecast", values="value")
    if reference in piv:
        for fc in [c for c in piv.columns if c != reference]:
            piv[f"skill_{fc}"] = 1.0 - piv[fc] / piv[reference]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        return piv.to_string()
