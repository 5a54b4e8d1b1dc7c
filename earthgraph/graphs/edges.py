"""Per-batch bipartite graphs between points (observations, targets) and mesh
nodes, and the geometric edge features, all in torch on the batch's device.

Conventions: a graph is a pair of index tensors ``(senders, receivers)``; latitude
and longitude are radians; distances are radians on the unit sphere.
"""

from __future__ import annotations

import torch

from earthgraph.graphs.healpix import ang2pix_nested


def lat_lon_to_xyz(lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
    """(n,) radians -> (n, 3) unit vectors."""
    cl = torch.cos(lat)
    return torch.stack([cl * torch.cos(lon), cl * torch.sin(lon), torch.sin(lat)], dim=-1)


def candidate_nodes(nside: int, neighbours: torch.Tensor, lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
    """(n, 9) the pixel containing each point followed by its 8 neighbours (-1 if absent).

    neighbours: (npix, 8) int64 table of the mesh, on the points' device.
    """
    pix = ang2pix_nested(nside, lat, lon)
    return torch.cat([pix[:, None], neighbours[pix]], dim=1)


def points_to_mesh(nside: int, neighbours: torch.Tensor, lat: torch.Tensor, lon: torch.Tensor,
                   include_neighbours: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder graph: each point -> its containing cell and (optionally) that cell's neighbours.

    Returns (point_index, node_index), each (E,), grouped by point, the
    containing cell first. Every point has at least one edge (its own cell),
    so every observation reaches the mesh.
    """
    if not include_neighbours:
        return torch.arange(len(lat), device=lat.device), ang2pix_nested(nside, lat, lon)
    cand = candidate_nodes(nside, neighbours, lat, lon)
    point = torch.arange(len(lat), device=lat.device)[:, None].expand_as(cand)
    ok = cand >= 0
    return point[ok], cand[ok]


def mesh_to_points(nside: int, neighbours: torch.Tensor, node_xyz: torch.Tensor,
                   lat: torch.Tensor, lon: torch.Tensor, k: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder graph: each target point <- its ``k`` nearest mesh nodes.

    The nearest nodes are searched among the containing cell and its
    neighbours, which on HEALPix holds the true k nearest for k <= 4.
    Returns (node_index, point_index), each (n * k,), grouped by point.
    """
    if not 1 <= k <= 8:
        raise ValueError(f"mesh_to_points: k must be in [1, 8], got {k}")
    cand = candidate_nodes(nside, neighbours, lat, lon)
    xyz = lat_lon_to_xyz(lat, lon).to(node_xyz.dtype)
    cos_d = (node_xyz[cand.clamp(min=0)] * xyz[:, None, :]).sum(-1)
    cos_d = torch.where(cand >= 0, cos_d, torch.full_like(cos_d, -2.0))
    nearest = torch.topk(cos_d, k, dim=1).indices
    nodes = torch.gather(cand, 1, nearest)
    point = torch.arange(len(lat), device=lat.device)[:, None].expand_as(nodes)
    return nodes.reshape(-1), point.reshape(-1)


def edge_features(sender_xyz: torch.Tensor, receiver_xyz: torch.Tensor, length_scale: float) -> torch.Tensor:
    """(E, 3) great-circle distance and the sender's east/north displacement in the
    receiver's local tangent frame, all divided by ``length_scale`` (radians).
    """
    rx, ry, rz = receiver_xyz.unbind(-1)
    horiz = torch.sqrt(rx * rx + ry * ry).clamp(min=1e-12)
    east = torch.stack([-ry / horiz, rx / horiz, torch.zeros_like(rx)], dim=-1)
    north = torch.stack([-rz * rx / horiz, -rz * ry / horiz, horiz], dim=-1)
    d = sender_xyz - receiver_xyz
    cos = (sender_xyz * receiver_xyz).sum(-1).clamp(-1.0, 1.0)
    dist = torch.arccos(cos)
    return torch.stack([dist, (d * east).sum(-1), (d * north).sum(-1)], dim=-1) / length_scale
