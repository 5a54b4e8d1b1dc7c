"""Graph-transformer processor: multi-head attention over each node's incoming mesh
edges (as anemoi's GraphTransformer), edge features entering keys and values.

One layer: pre-LayerNorm; per head ``a_e = q_dst . (k_src + k_e) / sqrt(d)``,
softmax over the edges into each node, messages ``a_e (v_src + v_e)`` summed per
node; output projection and residual; then a node MLP with its own residual.
"""

from __future__ import annotations

import math

import torch
import torch.utils.checkpoint
from torch import nn

from earthgraph.graphs.edges import EDGE_FEATURE_DIM
from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.kernels import gather, segment_softmax, segment_sum
from earthgraph.layers import MLP


class GraphTransformerLayer(nn.Module):
    def __init__(self, latent_dim: int, hidden: int, heads: int, edge_dim: int):
        super().__init__()
        if latent_dim % heads:
            raise ValueError(f"graph transformer: latent_dim {latent_dim} is not divisible by heads {heads}")
        self.heads, self.head_dim = heads, latent_dim // heads
        self.norm = nn.LayerNorm(latent_dim)
        self.query = nn.Linear(latent_dim, latent_dim)
        self.key_value = nn.Linear(latent_dim, 2 * latent_dim)
        self.edge_key_value = nn.Linear(edge_dim, 2 * latent_dim, bias=False)
        self.out = nn.Linear(latent_dim, latent_dim)
        self.mlp = MLP(latent_dim, latent_dim, hidden, layer_norm=False)
        self.mlp_norm = nn.LayerNorm(latent_dim)

    def forward(self, h: torch.Tensor, e: torch.Tensor, mesh: MeshGraph) -> torch.Tensor:
        """h (B, N, F); e (E, edge_dim) edge features of the mesh's edges. Returns (B, N, F)."""
        b, n, f = h.shape
        receivers = mesh.receiver_segments
        x = self.norm(h)
        q = gather(self.query(x), receivers, dim=1)                                  # (B, E, F)
        k, v = (gather(self.key_value(x), mesh.sender_segments, dim=1) + self.edge_key_value(e)).chunk(2, dim=-1)
        shape = (b, -1, self.heads, self.head_dim)
        q, k, v = q.reshape(shape), k.reshape(shape), v.reshape(shape)
        score = (q * k).sum(-1) / math.sqrt(self.head_dim)                         # (B, E, H)
        weight = segment_softmax(score, receivers, dim=1)
        msg = (weight.unsqueeze(-1) * v).reshape(b, -1, f)
        h = h + self.out(segment_sum(msg, receivers, dim=1))
        return h + self.mlp(self.mlp_norm(h))


class GraphTransformerProcessor(nn.Module):
    """``layers`` graph-transformer layers advancing the latents by one window."""

    def __init__(self, latent_dim: int, hidden: int, layers: int, forcing_dim: int, heads: int = 4,
                 edge_feature_dim: int = EDGE_FEATURE_DIM, checkpointing: bool = False):
        super().__init__()
        self.checkpointing = checkpointing
        self.forcing = MLP(latent_dim + forcing_dim, latent_dim, hidden)
        self.layers = nn.ModuleList([GraphTransformerLayer(latent_dim, hidden, heads, edge_feature_dim)
                                     for _ in range(layers)])

    def forward(self, h: torch.Tensor, forcing: torch.Tensor, mesh: MeshGraph) -> torch.Tensor:
        h = h + self.forcing(torch.cat([h, forcing], dim=-1))
        for layer in self.layers:
            if self.checkpointing and torch.is_grad_enabled():
                h = torch.utils.checkpoint.checkpoint(layer, h, mesh.edge_features, mesh, use_reentrant=False)
            else:
                h = layer(h, mesh.edge_features, mesh)
        return h
