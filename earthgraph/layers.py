"""Building blocks shared by encoders, processors and decoders."""

from __future__ import annotations

import torch
from torch import nn

from earthgraph.kernels import Segments, edge_layer


class MLP(nn.Sequential):
    """Linear -> SiLU -> ... -> Linear, optionally followed by LayerNorm (as GraphCast)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, layers: int = 2, layer_norm: bool = True):
        mods: list[nn.Module] = []
        d = in_dim
        for _ in range(layers - 1):
            mods += [nn.Linear(d, hidden), nn.SiLU()]
            d = hidden
        mods.append(nn.Linear(d, out_dim))
        if layer_norm:
            mods.append(nn.LayerNorm(out_dim))
        super().__init__(*mods)


class EdgeMessage(nn.Module):
    """``silu(A x[sender] + B e + c)``: the first layer of an edge MLP over
    ``[x_sender, e]`` computed without building the concatenation.

    The projection of ``x`` is done once per sender, not once per edge, so the
    per-edge cost is a gather and an add (GraphCast's trick). The second layer
    of the MLP is left to the receiver, after aggregation (a linear map
    commutes with the mean).
    """

    def __init__(self, latent_dim: int, edge_dim: int):
        super().__init__()
        self.sender = nn.Linear(latent_dim, latent_dim)
        self.edge = nn.Linear(edge_dim, latent_dim, bias=False)

    def forward(self, x: torch.Tensor, senders: Segments, edge_features: torch.Tensor) -> torch.Tensor:
        """x (S, F) sender latents; senders: the sender of each of the E edges, grouped
        over the S senders; edge_features (E, edge_dim) -> (E, F)."""
        return edge_layer(edge_features, self.edge.weight, None, self.sender(x), senders)
