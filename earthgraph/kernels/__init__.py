"""Aggregation ops used by every message-passing layer.

This first version provides the CPU/torch reference backend; custom GPU
kernels (Triton, CUDA) register behind the same functions.
"""

from earthgraph.kernels.segment import segment_mean, segment_softmax, segment_sum

__all__ = ["segment_sum", "segment_mean", "segment_softmax"]
