"""Building blocks shared by encoders, processors and decoders."""

from __future__ import annotations

import torch
from torch import nn


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


def gather_nodes(h: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """h (B, N, F), index (E,) -> (B, E, F)."""
    return h.index_select(1, index)
