"""The CUDA C++ segment-sum (``csrc/segment_sum.cu``), compiled on first use.

``torch.utils.cpp_extension.load`` builds it with ``nvcc`` into torch's extension
cache (``~/.cache/torch_extensions``, or ``TORCH_EXTENSIONS_DIR``) and reuses the
build while the source is unchanged; the first call takes a minute or so.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

SOURCE = Path(__file__).parent / "csrc" / "segment_sum.cu"


@functools.cache
def extension():
    """The compiled module (``segment_sum(values, ptr, order)``); raises naming what is missing."""
    from torch.utils import cpp_extension

    if torch.version.cuda is None:
        raise RuntimeError(f"kernel backend 'cuda' needs a CUDA build of torch (this is {torch.__version__})")
    if cpp_extension.CUDA_HOME is None:
        raise RuntimeError("kernel backend 'cuda' compiles csrc/segment_sum.cu on first use and needs nvcc "
                           "(set CUDA_HOME); the 'triton' backend needs no compiler")
    return cpp_extension.load(name="earthgraph_segment_sum", sources=[str(SOURCE)],
                              extra_cuda_cflags=["-O3"], verbose=False)


def segment_sum(values: torch.Tensor, ptr: torch.Tensor, order: torch.Tensor | None) -> torch.Tensor:
    """values (B, R, F) CUDA -> (B, S, F), S = len(ptr) - 1, in CSR order."""
    empty = ptr.new_empty(0)
    return extension().segment_sum(values, ptr, order if order is not None else empty)
