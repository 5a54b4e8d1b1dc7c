"""One entry point for the model's mesh: build (or load from the cache) every
static array the encoder, processor and decoder need.

:func:`mesh_graph` returns a :class:`MeshGraphData` of plain numpy arrays for
either mesh; :meth:`MeshGraphData.describe` gives the statistics that
``python -m earthgraph.graphs describe`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from earthgraph.graphs.cache import cached_arrays, default_cache_dir
from earthgraph.graphs.healpix import HealpixMesh
from earthgraph.graphs.icosahedral import IcosahedralMesh
from earthgraph.graphs.locate import bucket_table
from earthgraph.graphs.sphere import great_circle_distance, lat_lon_from_xyz
from earthgraph.graphs.topology import DirectedEdges, check_processor_edges, directed_views

MESH_KINDS = ("healpix", "icosahedral")
EARTH_RADIUS_KM = 6371.0


def make_mesh(kind: str, resolution: int) -> HealpixMesh | IcosahedralMesh:
    """``kind`` 'healpix' (``resolution`` = nside) or 'icosahedral' (refinement level)."""
    if kind == "healpix":
        return HealpixMesh(resolution)
    if kind == "icosahedral":
        return IcosahedralMesh(resolution)
    raise ValueError(f"unknown mesh kind {kind!r}; expected one of {MESH_KINDS}")


@dataclass(frozen=True)
class MeshGraphData:
    """A mesh and its processor graph, as numpy arrays (float64 geometry, int64 indices).

    xyz (N, 3) node unit vectors; areas (N,) cell areas, steradians, summing to
    4 pi; neighbours (N, K) immediate neighbours, -1 padded; pairs (E, 2)
    processor edges stored once (``i < j``), multi-scale when asked; lookup
    (P, C) the icosahedral mesh's bucket index over a HEALPix grid of
    ``lookup_nside`` (empty for HEALPix, located by ``ang2pix`` directly).
    """

    kind: str
    resolution: int
    multiscale_levels: int
    xyz: np.ndarray
    areas: np.ndarray
    neighbours: np.ndarray
    pairs: np.ndarray
    spacing: float
    cell_radius: float
    lookup: np.ndarray
    lookup_nside: int
    cache_path: Path | None = None

    @property
    def num_nodes(self) -> int:
        return len(self.xyz)

    @property
    def lat(self) -> np.ndarray:
        return lat_lon_from_xyz(self.xyz)[0]

    @property
    def lon(self) -> np.ndarray:
        return lat_lon_from_xyz(self.xyz)[1]

    def directed(self) -> DirectedEdges:
        return directed_views(self.pairs, self.num_nodes)

    def mesh(self) -> HealpixMesh | IcosahedralMesh:
        return make_mesh(self.kind, self.resolution)

    def describe(self) -> dict:
        """Node and edge counts, degree statistics, edge lengths (km), cell areas (km2)."""
        d = self.directed()
        degree = d.in_degree()
        length = great_circle_distance(self.xyz[self.pairs[:, 0]], self.xyz[self.pairs[:, 1]]) * EARTH_RADIUS_KM
        area = self.areas * EARTH_RADIUS_KM**2
        stats = lambda x: {"min": float(x.min()), "mean": float(x.mean()), "max": float(x.max())}  # noqa: E731
        return {
            "mesh": self.kind, "resolution": self.resolution, "multiscale_levels": self.multiscale_levels,
            "nodes": self.num_nodes, "undirected_edges": len(self.pairs), "directed_edges": d.num_edges,
            "degree": {**stats(degree), "histogram": {int(k): int(v) for k, v in zip(*np.unique(degree, return_counts=True))}},
            "edge_length_km": stats(length),
            "cell_area_km2": stats(area), "area_sum_minus_4pi": float(self.areas.sum() - 4 * np.pi),
            "spacing_km": self.spacing * EARTH_RADIUS_KM,
            "lookup_nside": self.lookup_nside, "lookup_candidates": int(self.lookup.shape[1]) if self.lookup.size else 0,
            "cache": str(self.cache_path) if self.cache_path else None,
        }


def _build(kind: str, resolution: int, multiscale_levels: int) -> dict[str, np.ndarray]:
    mesh = make_mesh(kind, resolution)
    pairs = mesh.multiscale_edges(multiscale_levels)
    check_processor_edges(pairs, mesh.num_nodes, f"{kind} {resolution} processor edges")
    if kind == "healpix":
        lookup, lookup_nside = np.zeros((0, 0), np.int64), 0
    else:
        lookup, lookup_nside = bucket_table(mesh.xyz, mesh.cell_radius)
    return {"xyz": mesh.xyz, "areas": mesh.areas, "neighbours": mesh.neighbours, "pairs": pairs,
            "spacing": np.float64(mesh.spacing), "cell_radius": np.float64(mesh.cell_radius),
            "lookup": lookup, "lookup_nside": np.int64(lookup_nside)}


def mesh_graph(kind: str = "healpix", resolution: int = 8, multiscale_levels: int = 1,
               cache_dir: str | Path | None = "default") -> MeshGraphData:
    """Build or load the mesh graph. ``cache_dir``: 'default' for
    ``~/.cache/earthgraph/graphs``, a folder, or None to always build."""
    make_mesh(kind, resolution)  # validates before anything is cached
    if multiscale_levels < 1:
        raise ValueError(f"multiscale_levels must be >= 1, got {multiscale_levels}")
    config = {"name": f"{kind}{resolution}-ms{multiscale_levels}", "kind": kind,
              "resolution": int(resolution), "multiscale_levels": int(multiscale_levels)}
    folder = default_cache_dir() if cache_dir == "default" else cache_dir
    arrays, path = cached_arrays(config, lambda: _build(kind, resolution, multiscale_levels), folder)
    names = {f.name for f in fields(MeshGraphData)}
    values = {k: (v.item() if v.ndim == 0 else v) for k, v in arrays.items() if k in names}
    return MeshGraphData(kind=kind, resolution=int(resolution), multiscale_levels=int(multiscale_levels),
                         cache_path=path, **values)
