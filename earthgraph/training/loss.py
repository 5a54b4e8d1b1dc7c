"""Observation-space loss.

For each observation type, departures (prediction - observation) are divided
by the observation error (both in the same normalised units), squared,
masked where the observation is missing (NaN), and averaged over the valid
values, so a type's loss does not grow with its number of observations and
reaches about 1 when the model is as close to the observations as their own
errors allow (a chi-squared per degree of freedom). An error floor (in the
same normalised units, i.e. a fraction of the channel's standard deviation)
stands for the representation error an observation error leaves out: the
mesh cannot resolve a profiling float's 0.02 K, and a type observed that
precisely would otherwise weigh thousands of times the rest. Types are then combined
with per-type weights; rollout windows are averaged. An ensemble's predictions
(a leading member dimension) are scored with the fair CRPS in the same units.
"""

from __future__ import annotations

import torch

from earthgraph.data.batch import ObsSet


def type_loss(pred: torch.Tensor, obs: ObsSet, error_floor: float = 0.0) -> torch.Tensor | None:
    """Mean squared departure in units of observation error (at least ``error_floor``), or
    for an ensemble (pred (members, n, C)) the mean fair CRPS in those units; None if no
    valid values."""
    valid = torch.isfinite(obs.values) & torch.isfinite(obs.error) & (obs.error > 0)
    if not bool(valid.any()):
        return None
    scale = obs.error.clamp(min=max(error_floor, 1e-6))
    if pred.dim() == 3:
        crps = fair_crps(pred / scale, torch.nan_to_num(obs.values) / scale)
        return torch.where(valid, crps, torch.zeros_like(crps)).sum() / valid.sum()
    d = torch.where(valid, (pred - torch.nan_to_num(obs.values)) / scale, torch.zeros_like(pred))
    return (d * d).sum() / valid.sum()


def fair_crps(members: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """Fair (unbiased for the ensemble size) CRPS of an ensemble, elementwise.

    members: (M, ...) with M >= 2; obs: (...). Returns (...):
    ``mean_i |x_i - y| - sum_{i, j} |x_i - x_j| / (2 M (M - 1))`` (Ferro 2014; as AIFS-CRPS).
    """
    m = members.shape[0]
    if m < 2:
        raise ValueError(f"fair_crps needs at least 2 members, got {m}")
    skill = (members - obs.unsqueeze(0)).abs().mean(dim=0)
    spread = (members.unsqueeze(0) - members.unsqueeze(1)).abs().sum(dim=(0, 1))
    return skill - spread / (2 * m * (m - 1))


def observation_loss(preds: list[dict[str, torch.Tensor]], targets: list[dict[str, ObsSet]],
                     type_weights: dict[str, float] | None = None, error_floor: float = 0.0
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and the per-type losses (averaged over rollout windows); ``error_floor``:
    the smallest observation error divided by, in units of each channel's standard deviation."""
    type_weights = type_weights or {}
    per_type: dict[str, list[torch.Tensor]] = {}
    window_losses = []
    for pred, tgt in zip(preds, targets):
        num, den = 0.0, 0.0
        for name, p in pred.items():
            loss = type_loss(p, tgt[name], error_floor)
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
