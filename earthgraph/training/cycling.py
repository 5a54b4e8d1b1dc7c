"""Training a cycling forecaster: spin-up sequences and a replay buffer of cycled states.

A cycling model's state at an initialisation time is the end of a
data-assimilation cycle (:meth:`GraphDOPForecaster.cycle`). Training cannot run
that cycle from the start of the record for every sample, so each sample runs
a short one: ``S`` windows before ``t0`` (``data.cycle_windows``), each
forecast from the previous analysis, scored against the window's observations
before they are assimilated (the background departures), then assimilated;
then the rollout windows after ``t0`` are forecast from the last analysis.
Gradients flow through the whole sequence (backpropagation through time,
truncated at the sequence's start).

What the sequence starts from decides how far back the model can learn to
remember. From a cold start it is ``S`` windows. With a replay buffer
(``replay_buffer_states`` > 0) it is the analysis that an earlier training
step left at the sequence's start time, when there is one: each analysis of
a sequence is stored under its valid time (detached, on the CPU), and a later
sample starting at that time continues it. Chains of sequences then carry
information over many times ``S`` windows, and the model trains on states
from its own long cycles, which is what evaluation runs (a spin-up of days).
A fraction of batches (``cold_start_fraction``) starts cold all the same, so
the model keeps learning to spin up from nothing, as every evaluation begins.

The buffer holds one state per training time (ints of seconds), at most
``capacity`` of them (the oldest go first); it is not saved in checkpoints,
so a resumed run refills it and follows a slightly different path than an
uninterrupted one.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from earthgraph.data.batch import ObsSet
from earthgraph.models import GraphDOPForecaster, ModelState


class ReplayBuffer:
    """Cycled analyses of training times: ``{time (s): (h (M, N, F), amounts (M, N, C) or None)}``."""

    def __init__(self, capacity: int):
        if capacity < 0:
            raise ValueError(f"ReplayBuffer: capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._states: OrderedDict[int, tuple[torch.Tensor, torch.Tensor | None]] = OrderedDict()
        self.hits = self.lookups = 0

    def __len__(self) -> int:
        return len(self._states)

    def put(self, times: torch.Tensor, state: ModelState, members: int) -> None:
        """Store each sample's rows of ``state`` (member-major, B * members rows) under its time."""
        if self.capacity == 0:
            return
        b = len(times)
        h = state.h.detach().float().cpu().view(members, b, *state.h.shape[1:])
        amounts = (None if state.amounts is None else
                   state.amounts.detach().float().cpu().view(members, b, *state.amounts.shape[1:]))
        finite = torch.isfinite(h).flatten(2).all(-1).all(0)  # a diverged state must not seed later cycles
        for i, t in enumerate(times.tolist()):
            if not finite[i]:
                continue
            key = int(round(t))
            self._states.pop(key, None)
            self._states[key] = (h[:, i].clone(), None if amounts is None else amounts[:, i].clone())
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)

    def start_states(self, model: GraphDOPForecaster, times: torch.Tensor) -> tuple[ModelState, int]:
        """The states a batch's sequences start from at ``times`` (B,): the stored analysis
        where there is one, the model's cold start elsewhere. Returns (state, hits)."""
        cold = model.cold_state(len(times), times.device)
        found = [self._states.get(int(round(t))) for t in times.tolist()]
        hits = sum(f is not None for f in found)
        self.lookups += len(found)
        self.hits += hits
        if not hits:
            return cold, 0
        b, m = len(times), model.members
        h = cold.h.contiguous().clone()
        amounts = None if cold.amounts is None else cold.amounts.contiguous().clone()
        for i, f in enumerate(found):
            if f is None:
                continue
            rows = torch.arange(m, device=h.device) * b + i
            h[rows] = f[0].to(h.device, h.dtype)
            if amounts is not None and f[1] is not None:
                amounts[rows] = f[1].to(amounts.device, amounts.dtype)
        return ModelState(h, amounts), hits


def cold_start(step: int, fraction: float) -> bool:
    """Whether the batch of training step ``step`` starts cold: a seeded draw, the same
    on every rank and after a resume."""
    return fraction > 0 and bool(np.random.default_rng([int(step), 0x5EED]).uniform() < fraction)


def cycled_predictions(model: GraphDOPForecaster, batch: dict, start: ModelState
                       ) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, ObsSet]], list[dict[str, torch.Tensor]],
                                  list[ModelState]]:
    """Run a batch's cycle from ``start`` and its rollout from the last analysis.

    Returns (background predictions of the cycle windows, their targets, rollout
    predictions (for ``batch["targets"]``), every analysis of the cycle)."""
    windows = batch["cycle_inputs"]
    init = batch["init_time"]
    first = init - len(windows) * model.window_seconds
    state, spin_up, analyses = model.cycle(start, windows, first, batch["cycle_targets"])
    rollout = model(None, init, batch["targets"], start=state)
    return spin_up, batch["cycle_targets"], rollout, analyses
