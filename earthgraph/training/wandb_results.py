"""An evaluation's results logged to a Weights & Biases run (``earthgraph-evaluate --wandb-dir``).

Offline unless ``WANDB_MODE`` says otherwise (read when a run is logged, never at import):
``wandb sync`` uploads it later, and :mod:`earthgraph.training.wandb_offline` reads it back.
Logged under ``evaluate/``: each picture (an image), the scores and the observation-space
statistics (tables), every global RMSE of a single-level variable per forecast and lead
(run summary, ``evaluate/<forecast>/<variable>/rmse_<lead>h``) and the JSON summary line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from earthgraph.scoring.scorecard import single_level


def log_evaluation(table: pd.DataFrame, obs_stats: pd.DataFrame | None, pictures: list[Path], summary: dict,
                   directory: str, project: str = "earthgraph", run_id: str | None = None) -> str:
    """Log an evaluation to a W&B run in ``directory`` (a new run, or the run ``run_id``,
    e.g. the training run, resumed); returns the run's id.

    table: the scores (``scores.csv``'s rows); obs_stats: ``obs_space.csv``'s rows or None;
    pictures: PNG files; summary: the evaluation's JSON summary.
    """
    import wandb

    run = wandb.init(project=project, dir=directory, id=run_id, resume="allow" if run_id else None,
                     job_type="evaluate", mode=os.environ.get("WANDB_MODE", "offline"))
    logged = {f"evaluate/{p.stem}": wandb.Image(str(p)) for p in pictures}
    logged["evaluate/scores"] = wandb.Table(dataframe=table)
    if obs_stats is not None and len(obs_stats):
        logged["evaluate/obs_space"] = wandb.Table(dataframe=obs_stats)
    run.log(logged)
    for r in single_level(table, "rmse").itertuples():
        run.summary[f"evaluate/{r.forecast}/{r.variable}/rmse_{r.lead_hours:g}h"] = r.value
    run.summary["evaluate/summary"] = json.dumps(summary)
    run.finish()
    return run.id
