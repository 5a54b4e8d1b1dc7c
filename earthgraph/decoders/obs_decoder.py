"""Decoder: mesh latents -> values at any points (observation locations or a grid).

Each target point gathers messages from its k nearest mesh nodes (latent plus
edge geometry), averages them, and a per-type head maps the result together
with the point's own features (position, time in window, insolation,
surface type, metadata) to the type's normalised channels.
"""

from __future__ import annotations

import torch
from torch import nn

from earthgraph.data.batch import ObsSet
from earthgraph.graphs.edges import edge_features, mesh_to_points
from earthgraph.graphs.sphere import lat_lon_to_xyz
from earthgraph.kernels import Segments, segment_mean
from earthgraph.layers import MLP, EdgeMessage

POSITION_FEATURES = 4  # xyz and time in window


class ObservationDecoder(nn.Module):
    def __init__(self, type_dims: dict[str, tuple[int, int]], latent_dim: int, hidden: int,
                 point_feature_dim: int, k: int = 4):
        super().__init__()
        self.k = k
        self.message = EdgeMessage(latent_dim, 3)
        self.heads = nn.ModuleDict({
            name: MLP(latent_dim + POSITION_FEATURES + point_feature_dim + m, c, hidden, layers=3, layer_norm=False)
            for name, (c, m) in type_dims.items()
        })

    def edges(self, t: ObsSet, mesh) -> tuple[torch.Tensor, torch.Tensor]:
        """The mesh -> point edges of ``t``'s points: (node, point), each (n * k,), grouped by point."""
        return mesh_to_points(mesh.locate(t.lat, t.lon), mesh.neighbours, mesh.xyz, t.lat, t.lon, self.k)

    def forward(self, h: torch.Tensor, targets: dict[str, ObsSet], target_features: dict[str, torch.Tensor], mesh,
                edges: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
        """h (B, N, F); targets: type -> ObsSet (positions, time, meta, sample);
        target_features: type -> (n, point_feature_dim) features of each point: insolation
        and local time at its time, static fields (land-sea mask) at its place; edges: type ->
        ``self.edges(targets[type], mesh)`` where already built. Returns type -> (n, C) normalised values."""
        b, n, d = h.shape
        flat = h.reshape(b * n, d)
        out = {}
        for name, t in targets.items():
            if name not in self.heads:
                continue
            if len(t) == 0:
                out[name] = h.new_zeros((0, self.heads[name][-1].out_features))
                continue
            node, point = edges[name] if edges and name in edges else self.edges(t, mesh)
            xyz = lat_lon_to_xyz(t.lat, t.lon)
            ef = edge_features(mesh.xyz[node], xyz[point], mesh.spacing)
            msg = self.message(flat, Segments(t.sample[point] * n + node, b * n), ef)
            z = segment_mean(msg, Segments(point, len(t), is_sorted=True))  # edges grouped by point
            x = torch.cat([z, xyz, t.time[:, None], target_features[name], t.meta], dim=1)
            out[name] = self.heads[name](x)
        return out
