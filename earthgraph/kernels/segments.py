"""How E rows (edges, observations) are grouped into S segments (nodes, points).

Every aggregation in the model is a segment-sum: row ``k`` of a message tensor
is added into segment ``index[k]``. The deterministic kernels need the
grouping in CSR form: ``ptr`` (S+1,), so that segment ``s`` owns positions
``ptr[s]:ptr[s+1]`` of the rows in segment order, and ``order`` (E,), the row
at each of those positions (``None`` when the rows are already sorted by
segment, as the mesh's receiver-sorted edges are). The same grouping also
describes the backward pass of a gather ``x[index]``.

A :class:`Segments` built from an unsorted index computes ``ptr`` and
``order`` only when a kernel asks for them (the torch backend never does), by a
stable sort, so the order of summation is fixed.
"""

from __future__ import annotations

import torch


def csr_pointers(sorted_index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(S+1,) int64 offsets of each segment in a non-decreasing ``sorted_index`` (E,)."""
    bounds = torch.arange(num_segments + 1, device=sorted_index.device, dtype=sorted_index.dtype)
    return torch.searchsorted(sorted_index, bounds).to(torch.int64)


class Segments:
    """E rows grouped into ``num_segments`` segments.

    index: (E,) int64 segment of each row, on the rows' device.
    ptr: (S+1,) CSR offsets into the rows in segment order; derived if not given.
    order: (E,) rows in segment order, or None when ``index`` is non-decreasing
        (``is_sorted=True``, or ``ptr`` given without ``order``).
    """

    def __init__(self, index: torch.Tensor, num_segments: int, ptr: torch.Tensor | None = None,
                 order: torch.Tensor | None = None, is_sorted: bool = False):
        if index.dim() != 1:
            raise ValueError(f"Segments: index must be 1-D, got shape {tuple(index.shape)}")
        if num_segments < 0:
            raise ValueError(f"Segments: num_segments must be >= 0, got {num_segments}")
        self.index = index
        self.num_segments = int(num_segments)
        self._ptr = ptr
        self._order = order
        self._counts: torch.Tensor | None = None
        self._sorted = is_sorted or (ptr is not None and order is None)

    @property
    def num_rows(self) -> int:
        return self.index.numel()

    @property
    def order(self) -> torch.Tensor | None:
        """(E,) rows in segment order (stable), or None if the rows are already in it."""
        if self._sorted:
            return None
        if self._order is None:
            self._order = torch.sort(self.index, stable=True).indices
        return self._order

    @property
    def ptr(self) -> torch.Tensor:
        """(S+1,) int64 CSR offsets."""
        if self._ptr is None:
            order = self.order
            sorted_index = self.index if order is None else self.index.index_select(0, order)
            self._ptr = csr_pointers(sorted_index, self.num_segments)
        return self._ptr

    def counts(self) -> torch.Tensor:
        """(S,) int64 number of rows in each segment (computed once)."""
        if self._counts is None:
            if self._ptr is not None:
                self._counts = self._ptr.diff()
            else:
                self._counts = torch.bincount(self.index, minlength=self.num_segments)
        return self._counts


class HalfEdges:
    """The conservative flux graph: one flux per undirected pair ``(i, j)``, added at
    ``j`` and taken from ``i``.

    pair_i, pair_j: (P,) ends of each pair; the half-edges (2P) sorted by the node
    they end at, with ``ptr`` (N+1,), the ``pair`` each comes from and its ``sign``
    (+1 at ``j``, -1 at ``i``): node ``n`` changes by
    ``sum_{k in ptr[n]:ptr[n+1]} sign[k] * F[pair[k]]``.
    """

    def __init__(self, pair_i: torch.Tensor, pair_j: torch.Tensor, num_nodes: int, ptr: torch.Tensor,
                 pair: torch.Tensor, sign: torch.Tensor):
        self.pair_i, self.pair_j, self.num_nodes = pair_i, pair_j, int(num_nodes)
        self.ptr, self.pair, self.sign = ptr, pair, sign

    @property
    def num_pairs(self) -> int:
        return self.pair_i.numel()
