"""Text scorecards: what ``earthgraph-evaluate`` (``evaluate.py``) prints."""

from __future__ import annotations

import pandas as pd

from earthgraph.scoring.diagnostics import Diagnostics

FORMAT = {"display.width": 200, "display.max_columns": 30, "display.float_format": "{:.4g}".format}


def single_level(table: pd.DataFrame, metric: str, region: str | None = "global") -> pd.DataFrame:
    """The rows of one metric (and region, unless None) of single-level variables."""
    rows = (table.metric == metric) & table.level.isna()
    if region is not None:
        rows &= table.region == region
    return table[rows]


def skill(value, reference):
    """``1 - value / reference`` (> 0: better than the reference); undefined (NaN)
    where the reference is perfect (0), e.g. sea ice where there is none."""
    return 1.0 - value / reference.where(reference > 0)


def format_scorecard(table: pd.DataFrame, metric: str = "rmse", reference: str = "persistence",
                     region: str = "global") -> str:
    """``metric`` of each forecast per variable and lead in ``region``, and the skill
    against ``reference`` (``1 - m / m_reference``; > 0 means better)."""
    piv = single_level(table, metric, region).pivot_table(index=["sphere", "variable", "lead_hours"],
                                                          columns="forecast", values="value")
    if reference in piv:
        for fc in [c for c in piv.columns if c != reference]:
            piv[f"skill_{fc}"] = skill(piv[fc], piv[reference])
    with pd.option_context(*[x for kv in FORMAT.items() for x in kv]):
        return piv.to_string()


def format_metric(table: pd.DataFrame, metric: str, region: str = "global") -> str:
    """``metric`` of each forecast per variable and lead in ``region``, without skills
    (e.g. ``variance_ratio``, whose ideal is 1, not 0)."""
    piv = single_level(table, metric, region).pivot_table(index=["sphere", "variable", "lead_hours"],
                                                          columns="forecast", values="value")
    with pd.option_context(*[x for kv in FORMAT.items() for x in kv]):
        return piv.to_string()


def beats(table: pd.DataFrame, forecast: str, reference: str, variables: list[str], metric: str = "rmse",
          region: str = "global") -> dict[str, dict[str, bool]]:
    """{variable: {lead hours: forecast's metric < reference's}} for ``variables``."""
    piv = single_level(table, metric, region).pivot_table(index=["variable", "lead_hours"], columns="forecast",
                                                          values="value")
    if forecast not in piv or reference not in piv:
        return {}
    return {v: {f"{h:g}h": bool(piv.loc[(v, h), forecast] < piv.loc[(v, h), reference])
                for h in piv.loc[v].index} for v in variables if v in piv.index.get_level_values(0)}


def format_obs_space(stats: pd.DataFrame, region: str = "global") -> str:
    """Departure statistics per type, channel and lead bin in ``region``."""
    sub = stats[stats.region == region].drop(columns="region").set_index(["obs_type", "channel", "lead_hours"])
    with pd.option_context(*[x for kv in FORMAT.items() for x in kv]):
        return sub.to_string()


def format_diagnostics(diag: Diagnostics) -> str:
    """Budgets, stability and coupling of the long forecast, a line each."""
    lines = [f"physical diagnostics: {diag.days}-day forecast from {diag.init}"]
    for name, b in diag.budgets.items():
        truth = b.get("truth_relative_change_max")
        lines.append(f"  budget {name}: relative change {b['relative_change_end']:.2e} at the end, "
                     f"{b['relative_change_max']:.2e} at most" + (f"; truth {truth:.2e}" if truth is not None else ""))
    for var, s in diag.stability.items():
        lines.append(f"  {var}: {'finite' if s['finite'] else 'NON-FINITE from day %s' % s['first_nonfinite_day']}"
                     f"{', BLEW UP' if s['blew_up'] else ''}{', DRIFTED' if s['drifted'] else ''}"
                     f"{', VARIANCE COLLAPSED' if s['collapsed'] else ''}; mean drift {s['mean_drift']:+.3g} "
                     f"(truth {s['truth_mean_drift']:+.3g}); variance ratio to truth "
                     f"{s['variance_ratio_start']:.3g} -> {s['variance_ratio_end']:.3g}")
    for name, c in diag.coupling.items():
        lines.append(f"  coupling {name}: anomaly correlation {c['forecast']:.3f} (truth {c['truth']:.3f})")
    return "\n".join(lines)
