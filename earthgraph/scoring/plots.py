"""The pictures people read: a coloured scorecard, RMSE against lead per sphere,
and forecast / truth / error maps. Each function writes one PNG and returns
its path; inputs are the long results table (``evaluation.results_table``) or
datasets in the WB2 forecast layout on a lat-lon grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.scoring.ensemble import ensemble_dim
from earthgraph.scoring.scorecard import single_level, skill

# The regions a scorecard shows by default (the CSV and netCDF hold all of them).
SCORECARD_REGIONS = ("global", "tropics", "northern-hemisphere", "southern-hemisphere", "europe", "north-america",
                     "arctic", "antarctic", "land", "ocean", "sea-ice")
STYLES = {"earthgraph": ("C0", "o-"), "persistence": ("C3", "s--"), "climatology": ("C2", "^:"),
          "perfect_model": ("C7", "d-.")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def skill_table(table: pd.DataFrame, forecast: str, reference: str, metric: str = "rmse",
                regions: list[str] | None = None, variables: list[str] | None = None) -> pd.DataFrame:
    """Skill of ``forecast`` against ``reference`` in percent, ``100 (1 - m / m_ref)``
    (> 0: better), rows (variable, region), columns lead hours. A variable on
    levels has a row per level, labelled ``variable level``."""
    sub = table[table.metric == metric]
    if regions is not None:
        sub = sub[sub.region.isin(regions)]
    if variables is not None:
        sub = sub[sub.variable.isin(variables)]
    label = sub.variable.where(sub.level.isna(), sub.variable + " " + sub.level.map("{:g}".format))
    piv = sub.assign(variable=label).pivot_table(index=["variable", "region"], columns=["forecast", "lead_hours"],
                                                 values="value", sort=False)
    if forecast not in piv.columns.get_level_values(0) or reference not in piv.columns.get_level_values(0):
        raise ValueError(f"skill_table: need both {forecast!r} and {reference!r} in the table "
                         f"(it has {sorted(table.forecast.unique())})")
    return 100.0 * skill(piv[forecast], piv[reference])


def plot_scorecard(table: pd.DataFrame, path: str | Path, reference: str = "persistence", metric: str = "rmse",
                   regions: list[str] | None = SCORECARD_REGIONS, variables: list[str] | None = None) -> Path:
    """One coloured card per forecast other than ``reference``: skill in percent per
    variable x region (rows) and lead (columns); blue better, red worse."""
    plt = _pyplot()
    others = [f for f in table.forecast.unique() if f != reference]
    if regions is not None:
        regions = [r for r in regions if r in set(table.region)]
    cards = [(f, skill_table(table, f, reference, metric, regions, variables)) for f in others]
    rows = max(len(c) for _, c in cards) if cards else 1
    fig, axes = plt.subplots(1, max(len(cards), 1), figsize=(3.5 + 2.6 * max(len(cards), 1), 1.0 + 0.2 * rows),
                             squeeze=False, sharey=True)
    for ax, (name, card) in zip(axes[0], cards):
        values = card.values
        im = ax.imshow(np.clip(values, -50, 50), cmap="RdBu", vmin=-50, vmax=50, aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(v) > 30 else "black")
        ax.set_xticks(range(card.shape[1]), [f"{h:g}h" for h in card.columns])
        ax.set_yticks(range(card.shape[0]), [f"{v} / {r}" for v, r in card.index], fontsize=6)
        ax.set_title(f"{name}\nvs {reference}, {metric} skill %", fontsize=8)
    if cards:
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="skill %, > 0 better")
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_metric_by_lead(table: pd.DataFrame, out_dir: str | Path, metric: str = "rmse", region: str = "global",
                        prefix: str = "rmse") -> list[Path]:
    """``<prefix>_<sphere>.png`` for each sphere: ``metric`` against lead time, one
    panel per variable, one line per forecast."""
    plt = _pyplot()
    sub = single_level(table, metric, region)
    paths = []
    for sphere, by_sphere in sub.groupby("sphere"):
        variables = list(dict.fromkeys(by_sphere.variable))
        fig, axes = plt.subplots(1, len(variables), figsize=(4.2 * len(variables), 3.4), squeeze=False)
        for ax, var in zip(axes[0], variables):
            for fc, g in by_sphere[by_sphere.variable == var].groupby("forecast"):
                color, style = STYLES.get(fc, (None, "o-"))
                g = g.sort_values("lead_hours")
                ax.plot(g.lead_hours, g.value, style, color=color, label=fc)
            ax.set_title(var, fontsize=9)
            ax.set_xlabel("lead time (h)")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel(f"{metric} ({region})")
        axes[0][-1].legend(fontsize=7)
        fig.suptitle(f"{sphere}", fontsize=10)
        fig.tight_layout()
        path = Path(out_dir) / f"{prefix}_{sphere or 'other'}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_maps(forecast: xr.Dataset, truth: xr.Dataset, variables: list[str], lead: np.timedelta64,
              path: str | Path, init_index: int = 0) -> Path:
    """Forecast, truth and error maps (rows: variables) at one lead, for the
    ``init_index``-th initialisation; lat-lon grids (forecast and aligned truth)."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(variables), 3, figsize=(12, 2.6 * len(variables)), squeeze=False)
    init = forecast.time.values[init_index]
    for row, var in zip(axes, variables):
        f = forecast[var].sel(prediction_timedelta=lead).isel(time=init_index)
        member = ensemble_dim(f)
        if member:
            f = f.mean(member)
        t = truth[var].sel(prediction_timedelta=lead).isel(time=init_index)
        lo, hi = np.nanpercentile(np.concatenate([f.values.ravel(), t.values.ravel()]), [1, 99])
        err = (f - t).values
        lim = float(np.nanmax(np.abs(err))) if np.isfinite(err).any() else 1.0
        lon, lat = f.longitude.values, f.latitude.values
        units = truth[var].attrs.get("units", "")
        for ax, field, title, kw in ((row[0], f.values, "forecast", dict(cmap="viridis", vmin=lo, vmax=hi)),
                                     (row[1], t.values, "truth", dict(cmap="viridis", vmin=lo, vmax=hi)),
                                     (row[2], err, "forecast - truth", dict(cmap="RdBu_r", vmin=-lim, vmax=lim))):
            mesh = ax.pcolormesh(lon, lat, field, shading="auto", **kw)
            fig.colorbar(mesh, ax=ax, label=units, shrink=0.85)
            ax.set_title(f"{var}: {title}", fontsize=9)
    hours = lead / np.timedelta64(1, "h")
    fig.suptitle(f"+{hours:g} h from {np.datetime_as_string(init, unit='h')}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
