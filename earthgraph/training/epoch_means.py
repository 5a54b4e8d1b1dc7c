"""Weighted means over an evaluation epoch that are exact under DDP.

Lightning's ``self.log(..., sync_dist=True)`` needs every rank to log the same
names at the same steps, but an observation type can be missing from one rank's
batch and present in another's. So per-type and per-sphere losses are summed
here, under fixed names on every rank, and reduced once at the epoch's end:
the result is the mean over every batch of every rank that had the type, as one
process going through all the batches would compute it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class EpochMeans:
    """Running ``sum(value * weight) / sum(weight)`` for a fixed list of names.

    names: every name that may be added, in the same order on every rank (the
        sums travel as one tensor).
    """

    def __init__(self, names: list[str]):
        self.names = list(names)
        self.index = {n: k for k, n in enumerate(self.names)}
        self.reset(torch.device("cpu"))

    def reset(self, device: torch.device) -> None:
        self.sums = torch.zeros(len(self.names), dtype=torch.float64, device=device)
        self.weights = torch.zeros_like(self.sums)

    def add(self, name: str, value: torch.Tensor, weight: float) -> None:
        """Add one batch's ``value`` (a scalar) with ``weight`` (its sample count)."""
        k = self.index[name]
        self.sums[k] += value.detach().to(self.sums) * weight
        self.weights[k] += weight

    def compute(self, reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Means of the names added at least once on some rank. ``reduce_sum``: a collective
        sum over ranks (every rank must call this), or None in a single process."""
        both = torch.cat([self.sums, self.weights])
        if reduce_sum is not None:
            both = reduce_sum(both)
        sums, weights = both.split(len(self.names))
        return {n: (sums[k] / weights[k]).float() for n, k in self.index.items() if weights[k] > 0}
