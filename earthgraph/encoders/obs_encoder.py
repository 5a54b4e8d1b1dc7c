"""Encoder: observations of every type -> latent state on the mesh.

Each type has its own embedding of (normalised values, normalised errors,
position, time in window, metadata); messages along observation->mesh edges
combine the embedding with the edge geometry
(:class:`earthgraph.layers.EdgeMessage`); each type's messages are averaged per
mesh node and the types are summed with learned gates. A node MLP then adds
static features, forcings and per-type observation counts. Types missing
from a window and cells without observations simply contribute zeros.
"""

from __future__ import annotations

import torch
from torch import nn

from earthgraph.data.batch import ObsSet
from earthgraph.graphs.edges import edge_features, lat_lon_to_xyz, points_to_mesh
from earthgraph.kernels import segment_mean
from earthgraph.layers import MLP, EdgeMessage

POINT_FEATURES = 4  # xyz + time in window
EDGE_FEATURES = 3


class ObservationEncoder(nn.Module):
    def __init__(self, type_dims: dict[str, tuple[int, int]], latent_dim: int, node_feature_dim: int, hidden: int,
                 neighbours: bool = True):
        """type_dims: name -> (channels, metadata features). ``neighbours``: connect each
        observation to its cell's neighbours too (9 edges), or to its own cell only."""
        super().__init__()
        self.neighbours = neighbours
        self.latent_dim = latent_dim
        self.types = list(type_dims)
        self.embed = nn.ModuleDict({
            name: MLP(2 * c + m + POINT_FEATURES, latent_dim, hidden) for name, (c, m) in type_dims.items()
        })
        self.message = nn.ModuleDict({name: EdgeMessage(latent_dim, EDGE_FEATURES) for name in type_dims})
        self.gate = nn.Parameter(torch.ones(len(self.types)))
        self.node = MLP(latent_dim + node_feature_dim + len(self.types), latent_dim, hidden)

    def forward(self, obs: dict[str, ObsSet], mesh, node_features: torch.Tensor) -> torch.Tensor:
        """obs: type -> ObsSet; node_features: (B, N, node_feature_dim). Returns (B, N, latent)."""
        b, n, _ = node_features.shape
        d = self.latent_dim
        agg = node_features.new_zeros((b * n, d))
        counts = []
        for k, name in enumerate(self.types):
            o = obs.get(name)
            if o is None or len(o) == 0:
                counts.append(node_features.new_zeros(b * n))
                continue
            xyz = lat_lon_to_xyz(o.lat, o.lon)
            x = torch.cat([o.values, o.error, o.meta, xyz, o.time[:, None]], dim=1)
            emb = self.embed[name](x)
            point, node = points_to_mesh(mesh.nside, mesh.neighbours, o.lat, o.lon, self.neighbours)
            ef = edge_features(xyz[point], mesh.xyz[node], mesh.spacing)
            msg = self.message[name](emb, point, ef)
            target = o.sample[point] * n + node
            agg = agg + self.gate[k] * segment_mean(msg, target, b * n)
            counts.append(torch.log1p(torch.bincount(target, minlength=b * n).to(agg.dtype)))
        x = torch.cat([agg.view(b, n, d), node_features, torch.stack(counts, dim=-1).view(b, n, -1)], dim=-1)
        return self.node(x)
