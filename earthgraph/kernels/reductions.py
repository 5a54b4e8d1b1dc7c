"""Reductions built on the primitives of :mod:`earthgraph.kernels.ops`: segment means
(encoder and decoder aggregation) and the segment softmax (graph-transformer attention)."""

from __future__ import annotations

import torch

from earthgraph.kernels.ops import gather, segment_sum
from earthgraph.kernels.segments import Segments


def segment_mean(values: torch.Tensor, segments: Segments, dim: int = 0) -> torch.Tensor:
    """Mean of each segment's rows (E at ``dim``); zero for empty segments."""
    total = segment_sum(values, segments, dim=dim)
    count = segments.counts().clamp(min=1).to(values.dtype)
    shape = [1] * values.dim()
    shape[dim] = -1
    return total / count.view(shape)


def segment_softmax(scores: torch.Tensor, segments: Segments, dim: int = 0) -> torch.Tensor:
    """Softmax of ``scores`` over the rows of each segment (e.g. the edges into a node).

    scores: (..., E, ...) with E at ``dim``. The segment maximum is subtracted first,
    so large scores do not overflow; it is a max, the same in any order, and is not
    differentiated through (the softmax does not depend on it).
    """
    shape = list(scores.shape)
    shape[dim] = segments.num_segments
    idx_shape = [1] * scores.dim()
    idx_shape[dim] = -1
    expanded = segments.index.view(idx_shape).expand_as(scores)
    peak = scores.new_full(shape, -torch.inf).scatter_reduce(dim, expanded, scores.detach(), "amax", include_self=True)
    ex = torch.exp(scores - gather(peak, segments, dim=dim))
    total = segment_sum(ex, segments, dim=dim)
    return ex / gather(total, segments, dim=dim)
