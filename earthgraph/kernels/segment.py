"""Segment reductions: sum edge rows into their receiving nodes.

``index`` gives, for each of the E rows of ``values``, the segment (node) it
belongs to; the output has one row per segment. The torch backend uses
``index_add_``; its order of accumulation is fixed on the CPU.
"""

from __future__ import annotations

import torch


def segment_sum(values: torch.Tensor, index: torch.Tensor, num_segments: int, dim: int = 0) -> torch.Tensor:
    """Sum the rows of ``values`` along ``dim`` into ``num_segments`` segments.

    values: (..., E, ...) with E at ``dim``; index: (E,) int64 segment of each row.
    Returns the same shape with E replaced by ``num_segments`` (zeros where empty).
    """
    shape = list(values.shape)
    shape[dim] = num_segments
    return values.new_zeros(shape).index_add_(dim, index, values)


def segment_mean(values: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Mean of each segment's rows; zero for empty segments."""
    total = segment_sum(values, index, num_segments)
    count = torch.bincount(index, minlength=num_segments).clamp(min=1).to(values.dtype)
    return total / count.view(-1, *([1] * (values.dim() - 1)))


def segment_softmax(scores: torch.Tensor, index: torch.Tensor, num_segments: int, dim: int = 0) -> torch.Tensor:
    """Softmax of ``scores`` over the rows of each segment (e.g. the edges into a node).

    scores: (..., E, ...) with E at ``dim``; index: (E,) segment of each row. The
    segment maximum is subtracted first, so large scores do not overflow.
    """
    shape = list(scores.shape)
    shape[dim] = num_segments
    idx_shape = [1] * scores.dim()
    idx_shape[dim] = -1
    expanded = index.view(idx_shape).expand_as(scores)
    peak = scores.new_full(shape, -torch.inf).scatter_reduce(dim, expanded, scores.detach(), "amax", include_self=True)
    ex = torch.exp(scores - peak.index_select(dim, index))
    total = segment_sum(ex, index, num_segments, dim=dim)
    return ex / total.index_select(dim, index)
