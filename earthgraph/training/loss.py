"""Observation-space loss.

For each observation type, departures (prediction - observation) are divided
by the observation error (both in the same normalised units), squared,
masked where the observation is missing (NaN), and averaged over the valid
values, so a type's loss does not grow with its number of observations and
reaches about 1 when the model is as close to the observations as their own
errors allow (a chi-squared per degree of freedom). Types are then combined
with per-type weights; rollout windows are averaged.
"""

from __future__ import annotations

import torch

from earthgraph.data.batch import ObsSet


def type_loss(pred: torch.Tensor, obs: ObsSet) -> torch.Tensor | None:
    """Mean squared departure in units of observation error; None if no valid values."""
    valid = torch.isfinite(obs.values) & torch.isfinite(obs.error) & (obs.error > 0)
    if not bool(valid.any()):
        return None
    d = torch.where(valid, (pred - torch.nan_to_num(obs.values)) / obs.error.clamp(min=1e-6), torch.zeros_like(pred))
    return (d * d).sum() / valid.sum()


def observation_loss(preds: list[dict[str, torch.Tensor]], targets: list[dict[str, ObsSet]],
                     type_weights: dict[str, float] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and the per-type losses (averaged over rollout windows)."""
    type_weights = type_weights or {}
    per_type: dict[str, list[torch.Tensor]] = {}
    window_losses = []
    for pred, tgt in zip(preds, targets):
        num, den = 0.0, 0.0
        for name, p in pred.items():
            loss = type_loss(p, tgt[name])
            if loss is None:
                continue
            w = type_weights.get(name, 1.0)
            num = num + w * loss
            den += w
            per_type.setdefault(name, []).append(loss.detach())
        if den > 0:
            window_losses.append(num / den)
    if not window_losses:
        raise ValueError("observation_loss: no valid target observations in any window of the batch")
    total = torch.stack(window_losses).mean()
    return total, {k: torch.stack(v).mean() for k, v in per_type.items()}
