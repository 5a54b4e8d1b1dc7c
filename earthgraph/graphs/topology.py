"""Processor-edge bookkeeping: undirected pairs, their directed CSR views, checks.

A processor graph is stored once per undirected pair ``(i, j)`` with ``i < j``.
The kernels need two directed views of the same ``2E`` half-edges:

* sorted by receiver (then sender), with ``receiver_ptr`` so that node ``n``'s
  incoming edges are ``receiver_ptr[n]:receiver_ptr[n+1]`` (forward aggregation);
* sorted by sender, as a permutation ``by_sender`` of the receiver-sorted edges
  with ``sender_ptr`` (the backward pass of a gather is a segment-sum over senders).

``reverse[k]`` is the index of edge k's opposite half-edge, and ``pair[k]`` the
undirected pair it came from, with ``sign[k]`` = +1 when it runs ``i -> j``: a
flux ``F_pair`` added at ``j`` and taken from ``i`` is ``sign * F[pair]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


@dataclass(frozen=True)
class DirectedEdges:
    """Both directions of every undirected pair, with CSR views (all int64 numpy)."""

    num_nodes: int
    senders: np.ndarray       # (2E,) sorted by receiver, then sender
    receivers: np.ndarray     # (2E,) non-decreasing
    receiver_ptr: np.ndarray  # (N+1,)
    by_sender: np.ndarray     # (2E,) permutation: edges in sender order
    sender_ptr: np.ndarray    # (N+1,)
    reverse: np.ndarray       # (2E,) index of the opposite half-edge
    pair: np.ndarray          # (2E,) index into the undirected pairs
    sign: np.ndarray          # (2E,) +1 for i -> j, -1 for j -> i

    @property
    def num_edges(self) -> int:
        return len(self.senders)

    def in_degree(self) -> np.ndarray:
        return np.diff(self.receiver_ptr)


def canonical_pairs(pairs: np.ndarray, num_nodes: int, name: str = "edges") -> np.ndarray:
    """(E, 2) pairs -> sorted unique ``i < j`` pairs; raises on out-of-range nodes.
    Self-loops are dropped (a node does not exchange with itself)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= num_nodes):
        raise ValueError(f"{name}: node index out of range [0, {num_nodes}): min {pairs.min()}, max {pairs.max()}")
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0)


def directed_views(pairs: np.ndarray, num_nodes: int) -> DirectedEdges:
    """Build :class:`DirectedEdges` from canonical undirected ``pairs`` (E, 2), ``i < j``."""
    e = len(pairs)
    senders = np.concatenate([pairs[:, 0], pairs[:, 1]])
    receivers = np.concatenate([pairs[:, 1], pairs[:, 0]])
    pair = np.concatenate([np.arange(e), np.arange(e)])
    sign = np.concatenate([np.ones(e, np.int64), -np.ones(e, np.int64)])
    order = np.lexsort((senders, receivers))
    senders, receivers, pair, sign = senders[order], receivers[order], pair[order], sign[order]
    position = np.empty(2 * e, np.int64)
    position[order] = np.arange(2 * e)
    # The half-edge i->j sat at k in the concatenation and j->i at k +- e.
    unsorted_reverse = np.concatenate([np.arange(e, 2 * e), np.arange(e)])
    reverse = position[unsorted_reverse[order]]
    by_sender = np.lexsort((receivers, senders))
    return DirectedEdges(num_nodes, senders, receivers, csr_pointers(receivers, num_nodes), by_sender,
                         csr_pointers(senders, num_nodes), reverse, pair, sign)


def csr_pointers(index: np.ndarray, num_nodes: int) -> np.ndarray:
    """(N+1,) int64 offsets of each node's rows once the rows of ``index`` (E,) are in node order."""
    return np.concatenate([[0], np.cumsum(np.bincount(index, minlength=num_nodes))]).astype(np.int64)


def csr_grouping(index: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray | None]:
    """CSR view of rows grouped by ``index`` (E,): ``ptr`` (N+1,) offsets into the rows in
    node order, and that order (a stable argsort), or None when ``index`` is sorted."""
    index = np.asarray(index, np.int64)
    order = None if np.all(index[1:] >= index[:-1]) else np.argsort(index, kind="stable")
    return csr_pointers(index, num_nodes), order


def component_count(pairs: np.ndarray, num_nodes: int) -> int:
    """Number of connected components of the undirected graph."""
    m = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(num_nodes, num_nodes))
    return int(connected_components(m, directed=False)[0])


def check_processor_edges(pairs: np.ndarray, num_nodes: int, name: str) -> None:
    """Raise unless ``pairs`` are canonical (``i < j``, unique) and connect every node."""
    if len(pairs) == 0:
        raise ValueError(f"{name}: no edges")
    if np.any(pairs[:, 0] >= pairs[:, 1]):
        raise ValueError(f"{name}: pairs must be stored once with i < j (no self-loops)")
    if len(np.unique(pairs, axis=0)) != len(pairs):
        raise ValueError(f"{name}: duplicate pairs")
    n = component_count(pairs, num_nodes)
    if n != 1:
        raise ValueError(f"{name}: graph has {n} connected components, expected 1")
