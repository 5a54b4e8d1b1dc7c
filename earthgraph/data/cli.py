"""Command line: ``python -m earthgraph.data generate ...`` (also ``earthgraph-data``)."""

from __future__ import annotations

import argparse
import json
import time

from earthgraph.data.generate import generate_osse
from earthgraph.data.nature_run import NatureRunConfig
from earthgraph.data.observing import ObservingConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m earthgraph.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="run the nature run and write truth.zarr + obs.zarr")
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument("--days", type=float, default=NatureRunConfig.days)
    gen.add_argument("--start", default=NatureRunConfig.start)
    gen.add_argument("--nlat", type=int, default=NatureRunConfig.nlat)
    gen.add_argument("--nlon", type=int, default=NatureRunConfig.nlon)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--spinup-days", type=float, default=NatureRunConfig.spinup_days)
    gen.add_argument("--obs-scale", type=float, default=1.0, help="multiplies every observing system's density")
    args = parser.parse_args(argv)

    if args.command == "generate":
        t = time.perf_counter()
        nature = NatureRunConfig(nlat=args.nlat, nlon=args.nlon, days=args.days, start=args.start,
                                 seed=args.seed, spinup_days=args.spinup_days)
        observing = ObservingConfig(seed=args.seed, scale=args.obs_scale)
        summary = generate_osse(args.out, nature, observing)
        summary["seconds"] = round(time.perf_counter() - t, 1)
        print(json.dumps(summary, indent=2))
    return 0
