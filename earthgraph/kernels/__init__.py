"""Aggregation ops used by every message-passing layer, on a selectable backend.

``segment_sum``, ``gather``, ``flux_scatter`` (and its adjoint ``pair_difference``) and
``edge_layer`` run as plain torch code on the ``torch`` backend and as deterministic
custom kernels (Triton; the segment-sum also in CUDA C++) on the others; see
:mod:`earthgraph.kernels.backends` for the choice and :mod:`earthgraph.kernels.ops`
for the definitions.
"""

from earthgraph.kernels.backends import BACKENDS, check_backend, get_backend, set_backend, use_backend
from earthgraph.kernels.ops import edge_layer, flux_scatter, gather, pair_difference, segment_sum
from earthgraph.kernels.reductions import segment_mean, segment_softmax
from earthgraph.kernels.segments import HalfEdges, Segments

__all__ = [
    "BACKENDS", "HalfEdges", "Segments", "check_backend", "edge_layer", "flux_scatter", "gather", "get_backend",
    "pair_difference",
    "segment_mean", "segment_softmax", "segment_sum", "set_backend", "use_backend",
]
