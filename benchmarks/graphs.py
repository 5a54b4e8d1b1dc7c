"""How fast per-batch observation graphs are built: obs -> mesh edges on CPU and GPU,
against a scikit-learn BallTree (haversine) k-nearest-neighbour search.

For each mesh (HEALPix nside 32/64/128, icosahedral levels 5/6/7) and each
number of observations (1e5, 1e6, 1e7, uniform on the sphere, float32 like a
batch), times the encoder graph exactly as the model builds it: locate each
point's containing cell (torch ``ang2pix`` or the bucket index), then gather
the cell and its neighbours. The baseline, in the same process, finds the
same number of nearest nodes (9 for HEALPix, 7 for icosahedral) with a
BallTree over the mesh nodes, built once and not timed (like the static graph).
The decoder graph (k = 4 nearest nodes) is timed beside it.

Medians of ``--repeats`` runs after one warm-up; GPU timings synchronise.
Last line: one JSON object with every figure, keyed like ``cpu_ms_1e6_nside64``,
``balltree_ms_1e6_nside64`` and ``speedup_vs_balltree_1e6_nside64_cpu``.

    python benchmarks/graphs.py [--sizes 1e5 1e6 1e7] [--devices cpu cuda] [--balltree-max 1e6]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from earthgraph.graphs.edges import mesh_to_points, points_to_mesh
from earthgraph.graphs.healpix import ang2pix_nested
from earthgraph.graphs.locate import nearest_in_buckets
from earthgraph.graphs.mesh import mesh_graph

MESHES = [("healpix", 32, "nside32"), ("healpix", 64, "nside64"), ("healpix", 128, "nside128"),
          ("icosahedral", 5, "ico5"), ("icosahedral", 6, "ico6"), ("icosahedral", 7, "ico7")]


def size_label(n: int) -> str:
    e = int(round(np.log10(n)))
    return f"1e{e}" if 10**e == n else str(n)


def timed(fn, device: str, repeats: int) -> float:
    """Median wall time of ``fn()`` in ms, after one warm-up."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e5, 1e6, 1e7])
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    ap.add_argument("--meshes", nargs="+", default=[m[2] for m in MESHES])
    ap.add_argument("--balltree-max", type=float, default=1e6, help="largest size the (slow) baseline runs at")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cache-dir", default="default")
    args = ap.parse_args()
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    from sklearn.neighbors import BallTree

    info = {"torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    print(f"graph build benchmark: {info}")
    results: dict = {"info": info}
    rng = np.random.default_rng(0)
    points = {}
    for n in map(int, args.sizes):
        points[n] = (np.arcsin(rng.uniform(-1, 1, n)).astype(np.float32), rng.uniform(-np.pi, np.pi, n).astype(np.float32))

    print(f"{'mesh':>9} {'nodes':>8} {'obs':>6} {'device':>6} {'encoder ms':>11} {'edges':>10} "
          f"{'decoder k=4 ms':>15} {'BallTree ms':>12} {'speedup':>8}")
    for kind, res, label in MESHES:
        if label not in args.meshes:
            continue
        g = mesh_graph(kind, res, 1, None if args.cache_dir == "none" else args.cache_dir)
        k_base = 1 + g.neighbours.shape[1]
        tree = BallTree(np.stack([g.lat, g.lon], axis=1), metric="haversine")
        for n, (lat_np, lon_np) in points.items():
            tag = f"{size_label(n)}_{label}"
            base_ms = None
            if n <= args.balltree_max:
                query = np.stack([lat_np, lon_np], axis=1).astype(np.float64)
                base_ms = timed(lambda: tree.query(query, k=k_base, return_distance=False), "cpu", 1)
                results[f"balltree_ms_{tag}"] = round(base_ms, 2)
            for device in devices:
                nb = torch.from_numpy(g.neighbours).to(device)
                xyz = torch.from_numpy(g.xyz).float().to(device)
                lookup = torch.from_numpy(g.lookup).to(device)
                lat, lon = torch.from_numpy(lat_np).to(device), torch.from_numpy(lon_np).to(device)
                if kind == "healpix":
                    locate = lambda la, lo: ang2pix_nested(res, la, lo)  # noqa: E731
                else:
                    locate = lambda la, lo: nearest_in_buckets(xyz, lookup, g.lookup_nside, la, lo)  # noqa: E731
                edges = points_to_mesh(locate(lat, lon), nb)
                n_edges = int(edges[0].numel())
                del edges
                enc_ms = timed(lambda: points_to_mesh(locate(lat, lon), nb), device, args.repeats)
                dec_ms = timed(lambda: mesh_to_points(locate(lat, lon), nb, xyz, lat, lon, 4), device, args.repeats)
                dev = "gpu" if device.startswith("cuda") else "cpu"
                results[f"{dev}_ms_{tag}"] = round(enc_ms, 3)
                results[f"{dev}_decoder_ms_{tag}"] = round(dec_ms, 3)
                speed = ""
                if base_ms is not None:
                    results[f"speedup_vs_balltree_{tag}_{dev}"] = round(base_ms / enc_ms, 1)
                    speed = f"{base_ms / enc_ms:8.1f}"
                print(f"{label:>9} {g.num_nodes:>8} {size_label(n):>6} {dev:>6} {enc_ms:11.1f} {n_edges:>10} "
                      f"{dec_ms:15.1f} {base_ms if base_ms is not None else float('nan'):12.1f} {speed:>8}")
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
