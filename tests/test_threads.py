"""The training process's thread policy."""

import pytest
import torch

from earthgraph.training import threads


def test_threads_are_the_available_cores_less_the_workers_and_can_be_overridden():
    cores = threads.available_cores()
    assert threads.training_threads(0) == cores
    assert threads.training_threads(cores + 3) == 1  # never below one
    assert threads.training_threads(0, override=3) == 3
    with pytest.raises(ValueError, match="--threads must be >= 1"):
        threads.training_threads(0, override=0)
    before = torch.get_num_threads()
    try:
        assert threads.apply(0, override=1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
