"""Shared fixtures: one small OSSE (nature run + observations) per test session."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# Without a GPU the Triton kernels are tested in Triton's interpreter, which triton
# switches on when a kernel is defined: this must come before anything imports them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from earthgraph.data.generate import generate_osse  # noqa: E402
from earthgraph.data.nature_run import NatureRunConfig  # noqa: E402
from earthgraph.data.observing import ObservingConfig  # noqa: E402

SMALL_NATURE = dict(nlat=16, nlon=32, days=12.0, spinup_days=10.0, start="2020-03-01T00:00", seed=3,
                    statics="synthetic")


@pytest.fixture(scope="session")
def small_osse(tmp_path_factory):
    """A 12-day, 16x32 nature run with a thinned observing network, on disk."""
    out = tmp_path_factory.mktemp("osse")
    summary = generate_osse(out, NatureRunConfig(**SMALL_NATURE), ObservingConfig(seed=3, scale=0.25))
    return out, summary
