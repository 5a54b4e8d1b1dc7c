"""The per-batch graphs of several point sets (one per observation type) built in one pass.

A batch holds a few thousand points of each of about ten observation types. Built
type by type, the geometry (locating each point's cell, choosing its edges, their
features) is a hundred small tensor ops per type, and on a CPU their fixed cost
was a sixth of a training step. Here the sets are joined, the graph is built once,
and each set reads its own contiguous slice back (:meth:`PointGraph.part`). Every
op is elementwise or per point, so a set's slice is the graph it would have had
alone (to the last bit but for the vectorised maths of a row that moves between a
loop's vector body and its tail, which can differ by an ulp).

Conventions as :mod:`earthgraph.graphs.edges`: latitude and longitude in radians,
edges grouped by point, ``mesh`` anything with ``locate``, ``neighbours``, ``xyz``
and ``spacing`` (:class:`earthgraph.graphs.mesh_graph.MeshGraph`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from earthgraph.graphs.edges import edge_features, mesh_to_points, points_to_mesh
from earthgraph.graphs.sphere import lat_lon_to_xyz


@dataclass
class PointGraph:
    """Edges between the joined points of ``names`` and the mesh nodes.

    point, node: (E,) int64, grouped by point; ``point`` indexes the joined points
        (set k's points are rows ``point_offsets[k]:point_offsets[k+1]``).
    features: (E, 3) edge features (:func:`earthgraph.graphs.edges.edge_features`).
    xyz: (P, 3) unit position of each joined point.
    point_offsets, edge_offsets: (K+1,) Python ints, where each set's points and edges begin.
    """

    names: list[str]
    point: torch.Tensor
    node: torch.Tensor
    features: torch.Tensor
    xyz: torch.Tensor
    point_offsets: list[int]
    edge_offsets: list[int]

    def part(self, name: str) -> "PointGraph":
        """The graph of one set alone, its points numbered from 0."""
        k = self.names.index(name)
        p0, p1 = self.point_offsets[k], self.point_offsets[k + 1]
        e0, e1 = self.edge_offsets[k], self.edge_offsets[k + 1]
        return PointGraph([name], self.point[e0:e1] - p0, self.node[e0:e1], self.features[e0:e1],
                          self.xyz[p0:p1], [0, p1 - p0], [0, e1 - e0])


def _offsets(sizes: list[int]) -> list[int]:
    out = [0]
    for s in sizes:
        out.append(out[-1] + s)
    return out


def _edge_offsets(point: torch.Tensor, point_offsets: list[int]) -> list[int]:
    """Where each set's edges begin in edges grouped by (non-decreasing) point."""
    bounds = torch.tensor(point_offsets, dtype=point.dtype, device=point.device)
    return torch.searchsorted(point, bounds).tolist()


def _joined(lat: dict[str, torch.Tensor], lon: dict[str, torch.Tensor]):
    """The sets' names, joined latitudes and longitudes, their unit positions, and point offsets."""
    names = list(lat)
    all_lat, all_lon = torch.cat([lat[n] for n in names]), torch.cat([lon[n] for n in names])
    return names, all_lat, all_lon, lat_lon_to_xyz(all_lat, all_lon, xp=torch), _offsets([len(lat[n]) for n in names])


def encoder_graph(lat: dict[str, torch.Tensor], lon: dict[str, torch.Tensor], mesh,
                  include_neighbours: bool = True) -> PointGraph:
    """Point -> mesh edges of every set at once: each point to its containing cell and,
    with ``include_neighbours``, that cell's neighbours. lat, lon: name -> (n,) radians.
    Features are of the point (sender) seen from the node (receiver)."""
    names, all_lat, all_lon, xyz, offsets = _joined(lat, lon)
    point, node = points_to_mesh(mesh.locate(all_lat, all_lon), mesh.neighbours, include_neighbours)
    features = edge_features(xyz[point], mesh.xyz[node], mesh.spacing)
    return PointGraph(names, point, node, features, xyz, offsets, _edge_offsets(point, offsets))


def decoder_graph(lat: dict[str, torch.Tensor], lon: dict[str, torch.Tensor], mesh, k: int) -> PointGraph:
    """Mesh -> point edges of every set at once: each point from its ``k`` nearest nodes.
    Features are of the node (sender) seen from the point (receiver)."""
    names, all_lat, all_lon, xyz, offsets = _joined(lat, lon)
    node, point = mesh_to_points(mesh.locate(all_lat, all_lon), mesh.neighbours, mesh.xyz, all_lat, all_lon, k)
    features = edge_features(mesh.xyz[node], xyz[point], mesh.spacing)
    return PointGraph(names, point, node, features, xyz, offsets, [k * o for o in offsets])


def graphs_per_set(lat: dict[str, torch.Tensor], lon: dict[str, torch.Tensor],
                   build: Callable[[dict, dict], PointGraph], joined: bool = True) -> dict[str, PointGraph]:
    """Each set's own graph, its points numbered from 0: ``build(lat, lon)`` (one of the
    builders above, its other arguments bound) run once over all sets (``joined``) or
    once per set, the type-by-type reference."""
    groups = [list(lat)] if joined else [[name] for name in lat]
    out = {}
    for group in filter(None, groups):
        graph = build({name: lat[name] for name in group}, {name: lon[name] for name in group})
        out.update({name: graph.part(name) for name in group})
    return out
