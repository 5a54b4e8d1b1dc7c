"""A processor made of any PyG ``MessagePassing`` layer: bring your own graph layer.

Chosen by class path in the config (see :mod:`earthgraph.processors.registry`)::

    processor:
      class_path: earthgraph.processors.pyg.PyGProcessor
      init_args: {conv: GATConv, conv_args: {heads: 4}}

One call advances the latents by one window, as our own processors do: the
window's forcing is injected (an MLP of ``[h, forcing]`` added to ``h``), then
``layers`` blocks, each ``h + conv(LayerNorm(h))`` followed by ``h + MLP(LayerNorm(h))``
(pre-norm residual blocks, as the graph transformer). The conv runs over the
mesh's directed processor edges (every scale), sender -> receiver; a batch of B
graphs is one graph of B x N nodes, each sample's node indices offset by N. Convs
that take ``edge_dim`` receive the mesh's edge features
(:func:`earthgraph.graphs.edges.edge_features`) as ``edge_attr``.

PyG aggregates with its own scatter ops, not earthgraph's kernels, so
``kernel_backend`` does not apply inside the conv. Budgets are untouched here: they
move only through the conservative transport after the processor.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from earthgraph.graphs.edges import EDGE_FEATURE_DIM
from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.graphs.pyg import import_torch_geometric
from earthgraph.layers import MLP

# Set by the processor from the model's sizes; a conv_args entry for them is refused.
SIZED_BY_THE_MODEL = ("in_channels", "out_channels", "edge_dim")


def conv_class(conv: str) -> type:
    """The ``MessagePassing`` subclass ``conv`` names: a name in ``torch_geometric.nn``
    ('GATConv', 'TransformerConv') or a class path ('package.module.Class')."""
    pyg = import_torch_geometric()
    module_name, _, name = conv.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name) if module_name else pyg.nn, name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"PyGProcessor conv {conv!r}: no such layer in torch_geometric.nn, nor an importable "
                         f"'package.module.Class' ({e})") from e
    if not (inspect.isclass(cls) and issubclass(cls, pyg.nn.MessagePassing)):
        raise ValueError(f"PyGProcessor conv {conv!r} is not a torch_geometric MessagePassing layer")
    return cls


def _setting(name: str, conv_args: dict[str, Any], params: Mapping[str, inspect.Parameter], absent: Any) -> Any:
    """A conv argument as given, else the conv's default, else ``absent`` (a conv without it)."""
    if name in conv_args:
        return conv_args[name]
    return params[name].default if name in params else absent


def conv_arguments(cls: type, latent_dim: int, edge_dim: int, conv_args: dict[str, Any]) -> dict[str, Any]:
    """``conv_args`` plus the sizes ``cls`` takes, so that it maps ``latent_dim`` features to
    ``latent_dim``: with H concatenated heads (PyG's default where there are heads) each
    head gets ``latent_dim / H`` channels."""
    given = sorted(set(conv_args) & set(SIZED_BY_THE_MODEL))
    if given:
        raise ValueError(f"PyGProcessor conv_args {given}: set from the model's latent_dim and edge features")
    params = inspect.signature(cls.__init__).parameters
    heads, concat = _setting("heads", conv_args, params, 1), _setting("concat", conv_args, params, False)
    out_channels = latent_dim
    if concat and heads > 1:
        if latent_dim % heads:
            raise ValueError(f"PyGProcessor: latent_dim {latent_dim} is not divisible by {heads} concatenated heads "
                             "(give conv_args concat: false, or another number of heads)")
        out_channels = latent_dim // heads
    sizes = {"in_channels": latent_dim, "out_channels": out_channels, "edge_dim": edge_dim}
    return {**{k: v for k, v in sizes.items() if k in params}, **conv_args}


def batched_edges(mesh: MeshGraph, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mesh's directed edges repeated for ``batch`` samples of N nodes each, sample b's
    nodes numbered from b x N: edge_index (2, B x E) int64 (senders, receivers) and
    edge_attr (B x E, EDGE) features."""
    offsets = torch.arange(batch, device=mesh.senders.device).mul(mesh.npix).view(-1, 1)
    senders = (mesh.senders.view(1, -1) + offsets).reshape(-1)
    receivers = (mesh.receivers.view(1, -1) + offsets).reshape(-1)
    return torch.stack([senders, receivers]), mesh.edge_features.repeat(batch, 1)


class PyGBlock(nn.Module):
    """``x + conv(LayerNorm(x))``, then ``x + MLP(LayerNorm(x))``, on (B x N, F) nodes."""

    def __init__(self, conv: nn.Module, latent_dim: int, hidden_dim: int, takes_edges: bool):
        super().__init__()
        self.conv, self.takes_edges = conv, takes_edges
        self.norm = nn.LayerNorm(latent_dim)
        self.mlp_norm = nn.LayerNorm(latent_dim)
        self.mlp = MLP(latent_dim, latent_dim, hidden_dim, layer_norm=False)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        y = self.norm(x)
        y = self.conv(y, edge_index, edge_attr=edge_attr) if self.takes_edges else self.conv(y, edge_index)
        if y.shape != x.shape:
            raise ValueError(f"PyGProcessor: {type(self.conv).__name__} returned {tuple(y.shape)} features for "
                             f"{tuple(x.shape)} latents; its conv_args must keep the width (heads, concat)")
        x = x + y
        return x + self.mlp(self.mlp_norm(x))


class PyGProcessor(nn.Module):
    """``layers`` blocks of a PyG conv advancing (B, N, latent_dim) latents by one window.

    conv: a layer of ``torch_geometric.nn`` by name, or a class path; conv_args: its
    other arguments (``heads``, ``dropout``, ``aggr`` ...); edge_feature_dim: width of the
    mesh's edge features. The signature's first four are every processor's
    (:func:`earthgraph.processors.registry.build_processor`).
    """

    def __init__(self, latent_dim: int, hidden_dim: int, layers: int, forcing_dim: int, conv: str = "GATConv",
                 conv_args: dict[str, Any] | None = None, edge_feature_dim: int = EDGE_FEATURE_DIM):
        super().__init__()
        cls = conv_class(conv)
        kwargs = conv_arguments(cls, latent_dim, edge_feature_dim, dict(conv_args or {}))
        takes_edges = "edge_dim" in kwargs
        try:
            convs = [cls(**kwargs) for _ in range(layers)]
        except TypeError as e:
            raise ValueError(f"PyGProcessor conv {conv!r} with arguments {kwargs}: {e}") from e
        self.forcing = MLP(latent_dim + forcing_dim, latent_dim, hidden_dim)
        self.blocks = nn.ModuleList([PyGBlock(c, latent_dim, hidden_dim, takes_edges) for c in convs])

    def forward(self, h: torch.Tensor, forcing: torch.Tensor, mesh: MeshGraph) -> torch.Tensor:
        """h (B, N, F) latents, forcing (B, N, forcing_dim) -> (B, N, F) one window later."""
        h = h + self.forcing(torch.cat([h, forcing], dim=-1))
        b, n, f = h.shape
        edge_index, edge_attr = batched_edges(mesh, b)
        x = h.reshape(b * n, f)
        for block in self.blocks:
            x = block(x, edge_index, edge_attr.to(x.dtype))
        return x.view(b, n, f)
