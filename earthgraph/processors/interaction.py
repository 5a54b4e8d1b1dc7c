"""Interaction-network processor on the mesh (GraphCast's processor).

One call advances the latent state by one window: forcings of the new window
are injected, then ``layers`` rounds of edge update (MLP of edge, sender and
receiver latents) and node update (MLP of node latent and summed incoming
edges), each with a residual connection and LayerNorm inside the MLPs.
"""

from __future__ import annotations

import torch
import torch.utils.checkpoint
from torch import nn

from earthgraph.graphs.edges import EDGE_FEATURE_DIM
from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.kernels import edge_layer, segment_sum
from earthgraph.layers import MLP


class EdgeUpdate(nn.Module):
    """MLP over ``[e, h_sender, h_receiver]`` without building the concatenation.

    Its first layer is split into three linear maps; the node terms are
    computed once per node and gathered, so they cost N rather than E rows
    (GraphCast's trick), and the sum and SiLU are one fused op
    (:func:`earthgraph.kernels.edge_layer`). Then a second linear layer and LayerNorm.
    """

    def __init__(self, latent_dim: int, hidden: int):
        super().__init__()
        self.edge = nn.Linear(latent_dim, hidden)
        self.sender = nn.Linear(latent_dim, hidden, bias=False)
        self.receiver = nn.Linear(latent_dim, hidden, bias=False)
        self.out = nn.Sequential(nn.Linear(hidden, latent_dim), nn.LayerNorm(latent_dim))

    def forward(self, h: torch.Tensor, e: torch.Tensor, mesh: MeshGraph) -> torch.Tensor:
        """h (B, N, F) nodes, e (B, E, F) edges (a broadcast view is fine) -> (B, E, F)."""
        x = edge_layer(e, self.edge.weight, self.edge.bias, self.sender(h), mesh.sender_segments,
                       self.receiver(h), mesh.receiver_segments)
        return self.out(x)


class InteractionLayer(nn.Module):
    def __init__(self, latent_dim: int, hidden: int):
        super().__init__()
        self.edge_mlp = EdgeUpdate(latent_dim, hidden)
        self.node_mlp = MLP(2 * latent_dim, latent_dim, hidden)

    def forward(self, h: torch.Tensor, e: torch.Tensor, mesh: MeshGraph):
        """h (B, N, F) nodes, e (B, E, F) edges -> updated (h, e); edges are summed into
        their receivers."""
        e_new = e + self.edge_mlp(h, e, mesh)
        h_new = h + self.node_mlp(torch.cat([h, segment_sum(e_new, mesh.receiver_segments, dim=1)], dim=-1))
        return h_new, e_new


class InteractionNetworkProcessor(nn.Module):
    """``layers`` interaction layers advancing the latents by one window. With
    ``checkpointing`` each layer's activations are recomputed in the backward pass
    instead of stored (less memory, about a third more compute)."""

    def __init__(self, latent_dim: int, hidden: int, layers: int, forcing_dim: int,
                 edge_feature_dim: int = EDGE_FEATURE_DIM, checkpointing: bool = False):
        super().__init__()
        self.checkpointing = checkpointing
        self.edge_embed = MLP(edge_feature_dim, latent_dim, hidden)
        self.forcing = MLP(latent_dim + forcing_dim, latent_dim, hidden)
        self.layers = nn.ModuleList([InteractionLayer(latent_dim, hidden) for _ in range(layers)])

    def forward(self, h: torch.Tensor, forcing: torch.Tensor, mesh: MeshGraph) -> torch.Tensor:
        """Advance (B, N, F) latents by one window, given (B, N, forcing_dim) forcings."""
        h = h + self.forcing(torch.cat([h, forcing], dim=-1))
        e = self.edge_embed(mesh.edge_features).unsqueeze(0).expand(h.shape[0], -1, -1)
        for layer in self.layers:
            if self.checkpointing and torch.is_grad_enabled():
                h, e = torch.utils.checkpoint.checkpoint(layer, h, e, mesh, use_reentrant=False)
            else:
                h, e = layer(h, e, mesh)
        return h
