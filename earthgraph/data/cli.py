"""Command line (also ``earthgraph-data``):

``python -m earthgraph.data generate ...`` makes a nature-run OSSE;
``python -m earthgraph.data observe ...`` makes an OSSE on a user's gridded reanalysis (zarr, netCDF);
``python -m earthgraph.data ingest ...`` puts a user's point tables into a store;
``python -m earthgraph.data types`` prints the built-in observation types as YAML, a template;
``python -m earthgraph.data upgrade STORE`` rewrites a store of an older schema in the current one;
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
from earthgraph.data.nature_run import ATMOSPHERES, NatureRunConfig
from earthgraph.data.observing import OBSERVING_SYSTEMS, ObservingConfig
from earthgraph.data.statics import StaticsError, default_statics_dir, fetch_climt_statics
from earthgraph.data.store import ObservationStore, StoreError
from earthgraph.data.store_upgrade import upgrade_store
from earthgraph.data.store_schema import SCHEMA_VERSION


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
                     help="synthetic (default: the same planet everywhere), climt (the real land-sea mask and "
                          "orography, fetched from PyPI when absent), or a folder of climt's files")
    gen.add_argument("--atmosphere", default=NatureRunConfig.atmosphere, choices=ATMOSPHERES,
                     help="what drives the weather: vorticity, a chaotic barotropic vorticity model (default); "
                          "waves, prescribed westerlies and travelling waves, smooth and not chaotic (quickstart)")
    gen.add_argument("--systems", nargs="+", default=None, metavar="SYSTEM", choices=list(OBSERVING_SYSTEMS),
                     help=f"observing systems to run, of {', '.join(OBSERVING_SYSTEMS)} (default: all)")
    _add_observe_parser(sub)
    fetch = sub.add_parser("fetch-statics", help="download the real land-sea mask and orography (climt, PyPI)")
    fetch.add_argument("--out", default=None, help=f"folder (default {default_statics_dir()})")
    _add_ingest_parser(sub)
    types = sub.add_parser("types", help="print the built-in observation types as YAML, a template for your own")
    types.add_argument("--file", default=None, help="print the types of this YAML file instead, once checked")
    upgrade = sub.add_parser("upgrade", help=f"rewrite an observation store of an older schema in schema "
                                             f"{SCHEMA_VERSION} (atomic: the old store stays until the new one is "
                                             "complete)")
    upgrade.add_argument("store", help="the store's folder")
    upgrade.add_argument("--out", default=None, help="write the upgraded store here and leave the old one "
                                                     "(default: replace it)")
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
    elif args.command == "observe":
        return _observe(args)
    elif args.command == "fetch-statics":
        try:
            print(f"static fields in {fetch_climt_statics(args.out)}")
        except StaticsError as e:
            print(f"fetch-statics failed: {e}", file=sys.stderr)
            return 2
    elif args.command == "ingest":
        return _ingest(args)
    elif args.command == "types":
        return _types(args)
    elif args.command == "upgrade":
        return _upgrade(args)
    return 0


def _upgrade(args) -> int:
    try:
        attrs = upgrade_store(args.store, args.out)
    except StoreError as e:
        print(f"upgrade failed: {e}", file=sys.stderr)
        return 2
    where = args.out or args.store
    if not attrs.applied:
        print(f"{args.store} is already in schema {SCHEMA_VERSION}" + (f"; copied to {where}" if args.out else ""))
        return 0
    print(f"{where}: schema {attrs.written_version} -> {SCHEMA_VERSION}")
    for step in attrs.applied:
        print(f"  {step}")
    return 0


def _add_observe_parser(sub) -> None:
    obs = sub.add_parser("observe", help="sample a gridded reanalysis (WB2/ERA5 zarr, CF netCDF) with the observing "
                                         "systems into an observation store, streamed in bounded memory")
    obs.add_argument("--gridded", required=True, metavar="PATH_OR_URL",
                     help="zarr store or netCDF file (or fsspec URL)")
    obs.add_argument("--out", required=True, help="observation store to write")
    # No argparse choices here: an unknown name is refused with the file's name, by observe_file.
    obs.add_argument("--systems", nargs="+", default=None, metavar="SYSTEM",
                     help=f"observing systems to run, of {', '.join(OBSERVING_SYSTEMS)} (default: every one whose "
                          "variables the file holds)")
    obs.add_argument("--period", nargs=2, default=None, metavar=("START", "END"),
                     help="observe [START, END) of the file (ISO dates or times; default: all of it)")
    obs.add_argument("--obs-scale", type=_positive, default=1.0, help="multiplies every observing system's density")
    obs.add_argument("--seed", type=int, default=0)
    obs.add_argument("--chunk-hours", type=_positive, default=24.0,
                     help="hours observed at a time: memory grows with it (it also keys the random draws)")
    obs.add_argument("--statics", default="none", metavar="{none,synthetic,climt,PATH}",
                     help="land-sea mask (and orography) when the file has no land_sea_mask (ERA5 lsm): synthetic, "
                          "climt (real, from PyPI) or a gridded file, regridded by nearest neighbour; default none")
    obs.add_argument("--rename", action="append", default=[], metavar="FILE_NAME=EARTHGRAPH_NAME",
                     help="a variable's earthgraph name where the file uses another (UWND=u_component_of_wind; ERA5 "
                          "and WB2 names are known)")
    obs.add_argument("--overwrite", action="store_true", help="replace an existing store at --out")


def _observe(args) -> int:
    from pathlib import Path

    from earthgraph.data.generate import observe_file
    from earthgraph.data.gridded import GriddedError
    from earthgraph.data.store import StoreError

    t = time.perf_counter()
    if "://" not in args.out and Path(args.out).exists() and not args.overwrite:
        print(f"observe failed: store {args.out} already exists; pass --overwrite to replace it", file=sys.stderr)
        return 2
    try:
        summary = observe_file(args.gridded, args.out, ObservingConfig(seed=args.seed, scale=args.obs_scale),
                               systems=tuple(args.systems) if args.systems else None,
                               period=tuple(args.period) if args.period else None, chunk_hours=args.chunk_hours,
                               statics=args.statics, overwrite=args.overwrite,
                               rename=_pairs(args.rename, "--rename"))
    except (GriddedError, StaticsError, StoreError, KeyError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e  # KeyError's str() adds quotes
        print(f"observe failed, store {args.out} unchanged: {message}", file=sys.stderr)
        return 2
    summary["seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(summary, indent=2))
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _add_ingest_parser(sub) -> None:
    ing = sub.add_parser("ingest", help="validate point tables (CSV, parquet, netCDF) and add them to a store")
    ing.add_argument("--store", required=True, help="observation store (created, or appended to)")
    ing.add_argument("--type", required=True,
                     help="observation type: built-in (e.g. drifter), already in the store, or declared in --types")
    ing.add_argument("--types", default=None, metavar="YAML",
                     help="observation types declared in YAML (`python -m earthgraph.data types` prints a template)")
    ing.add_argument("--file", action="append", required=True, help="table to ingest (repeat for several)")
    ing.add_argument("--value", action="append", required=True, metavar="CHANNEL=COLUMN")
    ing.add_argument("--units", action="append", default=[], metavar="CHANNEL=UNITS",
                     help="units of a value column when they differ from the channel's (degC, knots, hPa, %%, ...)")
    ing.add_argument("--error", action="append", default=[], metavar="CHANNEL=SIGMA",
                     help="observation error of a channel, in the channel's units (default: the type's)")
    ing.add_argument("--time", default="time", help="time column")
    ing.add_argument("--time-units", default=None, metavar="CF_UNITS",
                     help="units of a numeric time column, e.g. 'seconds since 1970-01-01'")
    ing.add_argument("--time-format", default=None, metavar="STRFTIME",
                     help="format of text times the automatic parser does not read, e.g. '%%Y %%m %%d %%H:%%M UTC'")
    ing.add_argument("--lat", default="lat", help="latitude column (degrees)")
    ing.add_argument("--lon", default="lon", help="longitude column (degrees within ±360; shifted by whole turns to [-180, 180))")
    ing.add_argument("--fixed-lat", type=float, default=None, help="position of a fixed station without coordinates")
    ing.add_argument("--fixed-lon", type=float, default=None)
    ing.add_argument("--meta", action="append", default=[], metavar="NAME=COLUMN_OR_NUMBER")
    ing.add_argument("--select", action="append", default=[], metavar="DIM=INDEX",
                     help="netCDF: one index of a variable's extra dimension (cloud layers, levels)")
    ing.add_argument("--statics", default=None, metavar="SOURCE",
                     help="static fields to write into the store: synthetic, climt (real, from PyPI), a gridded file "
                          "with land_sea_mask [and geopotential_at_surface], or none; default: an existing store's "
                          "own, else none (the model then has no land-sea mask or orography)")


def _ingest(args) -> int:
    from earthgraph.data.store_statics import store_statics
    from earthgraph.data.type_files import TypeFileError, read_types

    try:
        spec = TableSpec(values=_pairs(args.value, "--value"), units=_pairs(args.units, "--units"),
                         errors={k: _number(v, "--error") for k, v in _pairs(args.error, "--error").items()},
                         time=args.time, time_units=args.time_units, time_format=args.time_format,
                         lat=args.lat, lon=args.lon, fixed_lat=args.fixed_lat, fixed_lon=args.fixed_lon,
                         metadata={k: _number_or_name(v) for k, v in _pairs(args.meta, "--meta").items()},
                         select={k: int(_number(v, "--select")) for k, v in _pairs(args.select, "--select").items()})
        types = read_types(args.types) if args.types else None
        static = store_statics(args.statics) if args.statics else None
        reports = ingest_tables(args.store, args.type, [(f, spec) for f in args.file], types=types, static=static,
                                show_progress=True)
    except (IngestError, TypeFileError, StaticsError, ValueError, KeyError) as e:
        print(f"ingest failed, store {args.store} unchanged: {e}", file=sys.stderr)
        return 2
    for r in reports:
        print(r)
    if all(r.rows_accepted == 0 for r in reports):
        print(f"nothing new: every valid row is in {args.store} already; the store is unchanged")
    elif not args.statics and not ObservationStore(args.store).static():
        print(f"note: {args.store} has no static fields; a model trained on it sees no land-sea mask or "
              "orography (add them with --statics synthetic|climt|FILE)")
    return 0


def _types(args) -> int:
    from dataclasses import replace

    from earthgraph.data import obs_types
    from earthgraph.data.type_files import TypeFileError, read_types, types_yaml

    if args.file:
        try:
            print(types_yaml(read_types(args.file)), end="")
        except TypeFileError as e:
            print(f"types: {e}", file=sys.stderr)
            return 2
        return 0
    # The built-in types with the gridded products the model makes of them, as a template.
    builtin = [replace(t, products=tuple(p for p in obs_types.DEFAULT_PRODUCTS if p.obs_type == t.name))
               for t in obs_types.registered().values() if t.name in obs_types.BUILTIN_TYPES]
    print("# earthgraph's built-in observation types. Copy one, rename it and edit it to declare your own;\n"
          "# pass the file to `python -m earthgraph.data ingest --types FILE`.")
    print(types_yaml(builtin), end="")
    return 0


def _number(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SystemExit(f"{flag} expects NAME=NUMBER, got {text!r}") from None


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
