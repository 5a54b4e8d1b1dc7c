"""Encoder: observations of every type -> latent state on the mesh.

Each type has its own embedding of (normalised values, normalised errors,
which channels are present, position, time in window, metadata, static
fields at the point); messages along observation->mesh edges
combine the embedding with the edge geometry
(:class:`earthgraph.layers.EdgeMessage`); each type's messages are averaged per
mesh node and the types are summed with learned gates. A node MLP then adds
static features, forcings and per-type observation counts. Types missing
from a window and cells without observations simply contribute zeros.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from earthgraph.data.batch import ObsSet
from earthgraph.graphs.edges import EDGE_FEATURE_DIM
from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.graphs.point_sets import PointGraph, encoder_graph, graphs_per_set
from earthgraph.kernels import Segments, segment_mean
from earthgraph.layers import MLP, EdgeMessage

POINT_FEATURES = 4  # xyz + time in window


class ObservationEncoder(nn.Module):
    def __init__(self, type_dims: dict[str, tuple[int, int]], latent_dim: int, node_feature_dim: int, hidden: int,
                 point_feature_dim: int = 0, neighbours: bool = True, batch_types: bool = True):
        """type_dims: name -> (channels, metadata features). ``point_feature_dim``: extra
        per-observation features given to ``forward`` (static fields at the point).
        ``neighbours``: connect each observation to its cell's neighbours too (9
        edges), or to its own cell only. ``batch_types``: build every type's graph in
        one pass (False: type by type)."""
        super().__init__()
        self.neighbours = neighbours
        self.batch_types = batch_types
        self.latent_dim = latent_dim
        self.point_feature_dim = point_feature_dim
        self.types = list(type_dims)
        self.embed = nn.ModuleDict({
            name: MLP(3 * c + m + POINT_FEATURES + point_feature_dim, latent_dim, hidden) for name, (c, m) in type_dims.items()
        })
        self.message = nn.ModuleDict({name: EdgeMessage(latent_dim, EDGE_FEATURE_DIM) for name in type_dims})
        self.gate = nn.Parameter(torch.ones(len(self.types)))
        self.node = MLP(latent_dim + node_feature_dim + len(self.types), latent_dim, hidden)

    def forward(self, obs: dict[str, ObsSet], mesh: MeshGraph, node_features: torch.Tensor,
                point_features: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """obs: type -> ObsSet; node_features: (B, N, node_feature_dim); point_features:
        type -> (n, point_feature_dim), required when that is not 0. Returns (B, N, latent)."""
        b, n, _ = node_features.shape
        d = self.latent_dim
        agg = node_features.new_zeros((b * n, d))
        graphs = self.graphs({name: o for name, o in obs.items() if name in self.embed and len(o)}, mesh)
        counts = []
        for k, name in enumerate(self.types):
            if name not in graphs:
                counts.append(node_features.new_zeros(b * n))
                continue
            o, graph = obs[name], graphs[name]
            # A missing channel (NaN) enters as zero with its flag set to zero.
            present = torch.isfinite(o.values)
            parts = [torch.where(present, o.values, 0.0), torch.where(present, o.error, 0.0), present.to(o.values.dtype),
                     o.meta, graph.xyz, o.time[:, None]]
            if self.point_feature_dim:
                parts.append(point_features[name])
            x = torch.cat(parts, dim=1)
            emb = self.embed[name](x)
            msg = self.message[name](emb, Segments(graph.point, len(o), is_sorted=True), graph.features)
            cells = Segments(o.sample[graph.point] * n + graph.node, b * n)  # the (sample, node) each edge reaches
            agg = agg + self.gate[k] * segment_mean(msg, cells)
            counts.append(torch.log1p(cells.counts().to(agg.dtype)))
        x = torch.cat([agg.view(b, n, d), node_features, torch.stack(counts, dim=-1).view(b, n, -1)], dim=-1)
        return self.node(x)

    def graphs(self, obs: dict[str, ObsSet], mesh: MeshGraph) -> dict[str, PointGraph]:
        """Each type's observation -> mesh graph, its points numbered from 0."""
        build = functools.partial(encoder_graph, mesh=mesh, include_neighbours=self.neighbours)
        return graphs_per_set({name: o.lat for name, o in obs.items()}, {name: o.lon for name, o in obs.items()},
                              build, joined=self.batch_types)
