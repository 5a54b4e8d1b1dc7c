"""Command line (also ``earthgraph-data``):

``python -m earthgraph.data generate ...`` makes a nature-run OSSE;
``python -m earthgraph.data ingest ...`` puts a user's point tables into a store;
``python -m earthgraph.data fetch-statics`` downloads the real land-sea mask and
orography (from the climt wheel on PyPI) that ``generate`` then uses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from earthgraph.data.generate import generate_osse
from earthgraph.data.ingest import IngestError, TableSpec, ingest_tables
from earthgraph.data.nature_run import NatureRunConfig
from earthgraph.data.observing import ObservingConfig
from earthgraph.data.statics import StaticsError, default_statics_dir, fetch_climt_statics


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
    gen.add_argument("--statics", default=NatureRunConfig.statics,
                     help="auto (real if fetched, else synthetic), climt, synthetic, or a folder of climt files")
    gen.add_argument("--atmosphere", default=NatureRunConfig.atmosphere, choices=("vorticity", "waves"),
                     help="vorticity: chaotic barotropic model (default); waves: prescribed travelling waves")
    gen.add_argument("--systems", nargs="+", default=None, metavar="SYSTEM",
                     help="observing systems to run (default: all)")
    fetch = sub.add_parser("fetch-statics", help="download the real land-sea mask and orography (climt, PyPI)")
    fetch.add_argument("--out", default=None, help=f"folder (default {default_statics_dir()})")
    ing = sub.add_parser("ingest", help="validate point tables (CSV, parquet, netCDF) and add them to a store")
    ing.add_argument("--store", required=True, help="observation store (created, or appended to)")
    ing.add_argument("--type", required=True, help="registered observation type, e.g. drifter")
    ing.add_argument("--file", action="append", required=True, help="table to ingest (repeat for several)")
    ing.add_argument("--value", action="append", required=True, metavar="CHANNEL=COLUMN")
    ing.add_argument("--units", action="append", default=[], metavar="CHANNEL=UNITS",
                     help="units of a value column when they differ from the channel's (degC, %%)")
    ing.add_argument("--time", default="time", help="time column")
    ing.add_argument("--lat", default="lat", help="latitude column (degrees)")
    ing.add_argument("--lon", default="lon", help="longitude column (degrees; any range)")
    ing.add_argument("--fixed-lat", type=float, default=None, help="position of a fixed station without coordinates")
    ing.add_argument("--fixed-lon", type=float, default=None)
    ing.add_argument("--meta", action="append", default=[], metavar="NAME=COLUMN_OR_NUMBER")
    args = parser.parse_args(argv)

    if args.command == "generate":
        t = time.perf_counter()
        nature = NatureRunConfig(nlat=args.nlat, nlon=args.nlon, days=args.days, start=args.start,
                                 seed=args.seed, spinup_days=args.spinup_days, statics=args.statics,
                                 atmosphere=args.atmosphere)
        observing = ObservingConfig(seed=args.seed, scale=args.obs_scale)
        summary = generate_osse(args.out, nature, observing,
                                systems=tuple(args.systems) if args.systems else None)
        summary["seconds"] = round(time.perf_counter() - t, 1)
        print(json.dumps(summary, indent=2))
    elif args.command == "fetch-statics":
        try:
            print(f"static fields in {fetch_climt_statics(args.out)}")
        except StaticsError as e:
            print(f"fetch-statics failed: {e}", file=sys.stderr)
            return 2
    elif args.command == "ingest":
        spec = TableSpec(values=_pairs(args.value, "--value"), units=_pairs(args.units, "--units"), time=args.time,
                         lat=args.lat, lon=args.lon, fixed_lat=args.fixed_lat, fixed_lon=args.fixed_lon,
                         metadata={k: _number_or_name(v) for k, v in _pairs(args.meta, "--meta").items()})
        try:
            reports = ingest_tables(args.store, args.type, [(f, spec) for f in args.file])
        except (IngestError, KeyError) as e:
            print(f"ingest failed, store {args.store} unchanged: {e}", file=sys.stderr)
            return 2
        for r in reports:
            print(r)
    return 0


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} expects NAME=VALUE, got {item!r}")
        out[key] = value
    return out


def _number_or_name(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text
