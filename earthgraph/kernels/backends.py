"""Which implementation the aggregation ops run on.

* ``torch``: ``index_add_`` / ``index_select`` with plain autograd. Deterministic
  on the CPU; on a GPU ``index_add_`` uses atomics, so sums change in the last
  bits from run to run.
* ``triton``: the kernels of :mod:`earthgraph.kernels.triton_kernels`: CSR
  segment-sums in a fixed order with no atomics, forward and backward; needs a
  CUDA tensor, or Triton's interpreter (``TRITON_INTERPRET=1`` in the
  environment before triton is imported), which is how the CPU tests run them.
* ``cuda``: the segment-sum written in CUDA C++ (:mod:`earthgraph.kernels.cuda_extension`,
  compiled on first use where ``nvcc`` is present); the other ops run on triton.
* ``torch_scatter``: ``torch_scatter.segment_csr`` for the sums (if installed).
* ``auto`` (the default): ``DEFAULT_GPU_BACKEND`` for CUDA tensors, ``torch`` on the CPU.

The backend is a process-wide setting changed with :func:`set_backend` or, for a
block of code, :func:`use_backend`; the forecaster sets it from its
``kernel_backend`` option around each of its calls (:func:`with_kernel_backend`).
Nothing is read from the environment.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Callable, Iterator

import torch

BACKENDS = ("auto", "torch", "triton", "cuda", "torch_scatter")
# The fastest deterministic backend on a GPU; benchmarks/kernels.py measures the
# candidates side by side (see benchmarks/results/).
DEFAULT_GPU_BACKEND = "triton"

_current = "auto"


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; expected one of {BACKENDS}")
    return name


def set_backend(name: str) -> None:
    """Make ``name`` (one of ``BACKENDS``) the backend of every aggregation op."""
    global _current
    _current = check_backend(name)


def get_backend() -> str:
    return _current


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run a block with another backend, restoring the previous one after it."""
    global _current
    previous, _current = _current, check_backend(name)
    try:
        yield
    finally:
        _current = previous


def with_kernel_backend(method: Callable) -> Callable:
    """Run a method with its object's ``kernel_backend`` (one of ``BACKENDS``) as the backend
    of every aggregation op inside it: the forecaster's calls, whatever the process-wide setting."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with use_backend(self.kernel_backend):
            return method(self, *args, **kwargs)

    return wrapper


def triton_interpreting() -> bool:
    """True when Triton runs its kernels in the CPU interpreter."""
    from earthgraph.kernels import triton_kernels

    return triton_kernels.INTERPRETED


def resolve(device: torch.device, name: str | None = None) -> str:
    """The concrete backend for tensors on ``device``; raises if it cannot run there."""
    name = check_backend(name or _current)
    if name == "auto":
        return DEFAULT_GPU_BACKEND if device.type == "cuda" and _triton_installed() else "torch"
    if name in ("triton", "cuda"):
        if not _triton_installed():
            raise RuntimeError(f"kernel backend {name!r} needs the triton package (pip install triton)")
        if device.type != "cuda" and not triton_interpreting():
            raise RuntimeError(f"kernel backend {name!r} runs on CUDA tensors (got {device}); on the CPU use 'torch', "
                               "or set TRITON_INTERPRET=1 before triton is imported to run the kernels interpreted")
    if name == "cuda" and device.type != "cuda":
        raise RuntimeError(f"kernel backend 'cuda' runs on CUDA tensors only (got {device})")
    if name == "torch_scatter" and importlib.util.find_spec("torch_scatter") is None:
        raise RuntimeError("kernel backend 'torch_scatter' needs the torch_scatter package (pip install torch_scatter; "
                           "no wheels on PyPI, it builds from source)")
    return name


def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None
