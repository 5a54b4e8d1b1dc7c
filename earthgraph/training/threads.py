"""How many CPU threads training uses: set once, deliberately, not left to torch.

torch's default is one intra-op thread per logical core, in every process. With
DataLoader workers, or another job on the machine, the processes then fight
over the cores, and OpenMP threads that spin at every barrier make it far
worse: on a busy 2-core machine one training step took 7.0 s with torch's two
threads against 0.5 s with one. The policy here:

* the training process takes the cores available to it (its CPU affinity),
  less one per DataLoader worker, at least one;
* each DataLoader worker takes one thread (:func:`single_thread_worker`);
* ``--threads N`` on ``train.py`` overrides the first (``--threads 1`` on a
  machine shared with other work).
"""

from __future__ import annotations

import os

import torch


def available_cores() -> int:
    """Logical CPUs this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def training_threads(num_workers: int, override: int | None = None) -> int:
    """Intra-op threads for the training process under the policy above."""
    if override is not None:
        if override < 1:
            raise ValueError(f"--threads must be >= 1, got {override}")
        return override
    return max(1, available_cores() - max(0, num_workers))


def apply(num_workers: int, override: int | None = None) -> int:
    """Set torch's intra-op threads by the policy; returns the count set."""
    n = training_threads(num_workers, override)
    torch.set_num_threads(n)
    return n


def single_thread_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one thread per worker (its work is numpy slicing)."""
    torch.set_num_threads(1)
