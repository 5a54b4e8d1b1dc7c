"""``python -m earthgraph.graphs describe``: build (or load) a mesh graph and print
its node and edge counts, degree statistics, edge lengths and cell areas."""

from __future__ import annotations

import argparse
import json
import sys

from earthgraph.graphs.mesh import MESH_KINDS, mesh_graph


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m earthgraph.graphs", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("describe", help="build or load a mesh graph and describe it")
    d.add_argument("--mesh", choices=MESH_KINDS, default="healpix")
    d.add_argument("--resolution", type=int, default=8, help="nside (HEALPix) or refinement level (icosahedral)")
    d.add_argument("--multiscale-levels", type=int, default=1, help="1: neighbours only; L: plus L-1 coarser levels")
    d.add_argument("--cache-dir", default="default", help="cache folder; 'none' to build without caching")
    d.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)
    try:
        g = mesh_graph(args.mesh, args.resolution, args.multiscale_levels,
                       None if args.cache_dir.lower() == "none" else args.cache_dir)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    info = g.describe()
    if args.json:
        print(json.dumps(info))
        return 0
    deg, length, area = info["degree"], info["edge_length_km"], info["cell_area_km2"]
    print(f"{args.mesh} resolution {info['resolution']}, multiscale levels {info['multiscale_levels']}")
    print(f"  nodes              {info['nodes']:,}")
    print(f"  edges              {info['undirected_edges']:,} undirected, {info['directed_edges']:,} directed")
    print(f"  degree             min {deg['min']:.0f}  mean {deg['mean']:.2f}  max {deg['max']:.0f}   histogram {deg['histogram']}")
    print(f"  edge length (km)   min {length['min']:.1f}  mean {length['mean']:.1f}  max {length['max']:.1f}")
    print(f"  cell area (km2)    min {area['min']:.4g}  mean {area['mean']:.4g}  max {area['max']:.4g}   "
          f"sum - 4 pi = {info['area_sum_minus_4pi']:.2e} sr")
    if info["lookup_nside"]:
        print(f"  point lookup       HEALPix nside {info['lookup_nside']}, {info['lookup_candidates']} candidates per pixel")
    print(f"  cache              {info['cache'] or '(not cached)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
