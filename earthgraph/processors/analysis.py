"""The learned analysis: a window's forecast state corrected by that window's observations.

This is what turns the forecaster into a cycled system, the way a
data-assimilation cycle works but in latent space. The state at an
initialisation time is not rebuilt from the last windows' observations alone:
it is the forecast made one window earlier (the *background*, ``h_f``),
updated with the observations of that window (their encoding ``e``, from the
observation encoder). Information then accumulates from window to window, so
slow fields (soil moisture, SST, sea ice) are estimated from days to weeks of
observations instead of the last 24 hours.

The update is a gated blend, as in a GRU:

    c   = spread(MLP([h_f, e]))                the candidate state
    g   = sigmoid(W [h_f, c] + b)              per node and feature, in (0, 1)
    h_a = (1 - g) * h_f + g * c                the analysis

``spread`` is a few interaction layers on the mesh: an observation informs the
cells around it, as a background-error covariance spreads an increment. The
gate is the learned gain: near 0 where the background is trusted (no new
observation, a slow field), near 1 where the observations win. Because the
blend is convex and ``c`` ends in a LayerNorm, the analysis cannot run away
from the range the background and the candidate span.

The budgets' amounts (conserved quantities) get the same treatment: a convex
blend, per node and component, of the background's amounts and the amounts
the analysed latents imply; positive in, positive out. The blend is a source
or sink of the budget, like any analysis increment; the conservation
guarantee is about the forecast steps between analyses.
"""

from __future__ import annotations

import torch
from torch import nn

from earthgraph.graphs.edges import EDGE_FEATURE_DIM
from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.layers import MLP
from earthgraph.processors.interaction import InteractionLayer


class GatedAnalysis(nn.Module):
    """``h_a = (1 - g) h_f + g c`` from the background latents and the encoded observations.

    latent_dim: size of ``h``; hidden: MLP width; layers: interaction layers that
    spread the candidate over the mesh (0: each node on its own); edge_dim: the
    mesh's edge features; components: budget components whose amounts are blended
    too (0: none).
    """

    def __init__(self, latent_dim: int, hidden: int, layers: int = 1, edge_dim: int = EDGE_FEATURE_DIM,
                 components: int = 0):
        super().__init__()
        self.candidate = MLP(2 * latent_dim, latent_dim, hidden)
        self.edge_embed = MLP(edge_dim, latent_dim, hidden) if layers else None
        self.spread = nn.ModuleList([InteractionLayer(latent_dim, hidden) for _ in range(layers)])
        self.gate = nn.Linear(2 * latent_dim, latent_dim)
        self.amount_gate = nn.Linear(latent_dim, components) if components else None

    def forward(self, background: torch.Tensor, observed: torch.Tensor, mesh: MeshGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """background, observed: (B, N, F) -> (analysis (B, N, F), gate (B, N, F))."""
        c = self.candidate(torch.cat([background, observed], dim=-1))
        if self.spread:
            e = self.edge_embed(mesh.edge_features).unsqueeze(0).expand(c.shape[0], -1, -1)
            for layer in self.spread:
                c, e = layer(c, e, mesh)
        g = torch.sigmoid(self.gate(torch.cat([background, c], dim=-1)))
        return background + g * (c - background), g

    def blend_amounts(self, analysis: torch.Tensor, background_amounts: torch.Tensor,
                      implied_amounts: torch.Tensor) -> torch.Tensor:
        """(B, N, C) amounts: per node and component a convex blend of the background's
        and those the analysed latents imply, with a gate from the analysis."""
        a = torch.sigmoid(self.amount_gate(analysis)).to(background_amounts.dtype)
        return background_amounts + a * (implied_amounts - background_amounts)
