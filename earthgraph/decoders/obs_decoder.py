"""Decoder: mesh latents -> values at any points (observation locations or a grid).

Each target point gathers messages from its k nearest mesh nodes (latent plus
edge geometry), averages them, and a per-type head maps the result together
with the point's own features (position, time in window, insolation,
surface type, metadata) to the type's normalised channels.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from earthgraph.data.batch import ObsSet
from earthgraph.graphs.edges import EDGE_FEATURE_DIM
from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.graphs.point_sets import PointGraph, decoder_graph, graphs_per_set
from earthgraph.kernels import Segments, segment_mean
from earthgraph.layers import MLP, EdgeMessage

POSITION_FEATURES = 4  # xyz and time in window


class ObservationDecoder(nn.Module):
    """``batch_types``: build the mesh -> point graphs of every type in one pass
    (:mod:`earthgraph.graphs.point_sets`); False builds them type by type, the
    reference the tests compare with. Messages stay per type either way: joined,
    their (edges x latent) tensors outgrow the CPU's caches and run slower."""

    def __init__(self, type_dims: dict[str, tuple[int, int]], latent_dim: int, hidden: int,
                 point_feature_dim: int, k: int = 4, batch_types: bool = True):
        super().__init__()
        self.k = k
        self.batch_types = batch_types
        self.message = EdgeMessage(latent_dim, EDGE_FEATURE_DIM)
        self.heads = nn.ModuleDict({
            name: MLP(latent_dim + POSITION_FEATURES + point_feature_dim + m, c, hidden, layers=3, layer_norm=False)
            for name, (c, m) in type_dims.items()
        })

    def graphs(self, targets: dict[str, ObsSet], mesh: MeshGraph) -> dict[str, PointGraph]:
        """Each predicted type's mesh -> point graph (``k`` edges per point, grouped by
        point), its points numbered from 0."""
        predicted = {name: t for name, t in targets.items() if name in self.heads and len(t)}
        build = functools.partial(decoder_graph, mesh=mesh, k=self.k)
        return graphs_per_set({name: t.lat for name, t in predicted.items()},
                              {name: t.lon for name, t in predicted.items()}, build, joined=self.batch_types)

    def forward(self, h: torch.Tensor, targets: dict[str, ObsSet], target_features: dict[str, torch.Tensor], mesh: MeshGraph,
                graphs: dict[str, PointGraph] | None = None) -> dict[str, torch.Tensor]:
        """h (B, N, F); targets: type -> ObsSet (positions, time, meta, sample);
        target_features: type -> (n, point_feature_dim) features of each point: insolation
        and local time at its time, static fields (land-sea mask) at its place; graphs:
        ``self.graphs(targets, mesh)`` where already built. Returns type -> (n, C) normalised values."""
        b, n, d = h.shape
        flat = h.reshape(b * n, d)
        graphs = self.graphs(targets, mesh) if graphs is None else graphs
        out = {}
        for name, t in targets.items():
            if name not in self.heads:
                continue
            if len(t) == 0:
                out[name] = h.new_zeros((0, self.heads[name][-1].out_features))
                continue
            graph = graphs[name]
            msg = self.message(flat, Segments(t.sample[graph.point] * n + graph.node, b * n), graph.features)
            z = segment_mean(msg, Segments(graph.point, len(t), is_sorted=True))  # edges grouped by point
            x = torch.cat([z, graph.xyz, t.time[:, None], target_features[name], t.meta], dim=1)
            out[name] = self.heads[name](x)
        return out
