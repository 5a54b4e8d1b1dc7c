"""Per-batch bipartite graphs between points (observations, targets) and mesh
nodes, and the geometric edge features, all in torch on the batch's device.

The graphs are built from each point's containing cell (see
:mod:`earthgraph.graphs.locate`) and the mesh's neighbour table, so they work
for any mesh and need no CPU round trip.

Conventions: a graph is a pair of index tensors ``(senders, receivers)``; latitude
and longitude are radians; distances are radians on the unit sphere.
"""

from __future__ import annotations

import torch

from earthgraph.graphs.sphere import candidate_chords2, lat_lon_to_xyz

EDGE_FEATURE_DIM = 3
"""Width of :func:`edge_features`: great-circle distance, east and north displacement."""


def candidate_nodes(containing: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """(n, 1 + K) each point's containing cell followed by that cell's K neighbours
    (-1 where a cell has fewer). containing: (n,) node index; neighbours: (N, K)."""
    return torch.cat([containing[:, None], neighbours[containing]], dim=1)


def points_to_mesh(containing: torch.Tensor, neighbours: torch.Tensor,
                   include_neighbours: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder graph: each point -> its containing cell and (optionally) that cell's neighbours.

    Returns (point_index, node_index), each (E,), grouped by point, the
    containing cell first. Every point has at least one edge (its own cell),
    so every observation reaches the mesh.
    """
    point = torch.arange(len(containing), device=containing.device)
    if not include_neighbours:
        return point, containing
    cand = candidate_nodes(containing, neighbours)
    ok = cand >= 0
    return point[:, None].expand_as(cand)[ok], cand[ok]


def mesh_to_points(containing: torch.Tensor, neighbours: torch.Tensor, node_xyz: torch.Tensor,
                   lat: torch.Tensor, lon: torch.Tensor, k: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder graph: each target point <- its ``k`` nearest mesh nodes.

    The nearest nodes are searched among the containing cell and its
    neighbours, which holds the true k nearest for k <= 4 on HEALPix and k <= 3
    on the icosahedral mesh but for rare points near cell corners.
    Returns (node_index, point_index), each (n * k,), grouped by point.
    """
    cand = candidate_nodes(containing, neighbours)
    if not 1 <= k <= cand.shape[1] - 1:
        raise ValueError(f"mesh_to_points: k must be in [1, {cand.shape[1] - 1}] for this mesh, got {k}")
    xyz = lat_lon_to_xyz(lat.double(), lon.double(), xp=torch).to(node_xyz.dtype)
    d2 = candidate_chords2(node_xyz, cand, xyz)
    nearest = torch.topk(d2, k, dim=1, largest=False).indices
    nodes = torch.gather(cand, 1, nearest)
    point = torch.arange(len(lat), device=lat.device)[:, None].expand_as(nodes)
    return nodes.reshape(-1), point.reshape(-1)


def edge_features(sender_xyz: torch.Tensor, receiver_xyz: torch.Tensor, length_scale: float) -> torch.Tensor:
    """(E, EDGE_FEATURE_DIM) great-circle distance and the sender's east/north displacement in the
    receiver's local tangent frame, all divided by ``length_scale`` (radians).

    At the poles, where east is undefined, the frame of longitude 0 is used.
    """
    rx, ry, rz = receiver_xyz.unbind(-1)
    horiz = torch.sqrt(rx * rx + ry * ry)
    at_pole = horiz < 1e-12
    cos_lon = torch.where(at_pole, torch.ones_like(rx), rx / horiz.clamp(min=1e-12))
    sin_lon = torch.where(at_pole, torch.zeros_like(rx), ry / horiz.clamp(min=1e-12))
    east = torch.stack([-sin_lon, cos_lon, torch.zeros_like(rx)], dim=-1)
    north = torch.stack([-rz * cos_lon, -rz * sin_lon, horiz], dim=-1)
    d = sender_xyz - receiver_xyz
    dist = torch.atan2(torch.linalg.cross(sender_xyz, receiver_xyz).norm(dim=-1), (sender_xyz * receiver_xyz).sum(-1))
    return torch.stack([dist, (d * east).sum(-1), (d * north).sum(-1)], dim=-1) / length_scale
