"""Which processor a forecaster runs: one of ours by name, or any module by its class path.

A processor advances the latent state on the mesh by one window. Its contract:

    processor = cls(latent_dim=F, hidden_dim=H, layers=L, forcing_dim=Ff, **init_args)
    h_next = processor(h, forcing, mesh)    # h (B, N, F), forcing (B, N, Ff) -> (B, N, F)

with ``mesh`` a :class:`~earthgraph.graphs.mesh_graph.MeshGraph`. Ours are named
('interaction', 'transformer'); a user's, for example a stack of PyG ``MessagePassing``
layers (:mod:`earthgraph.processors.pyg`), is named by ``class_path`` in the config:

    processor:
      class_path: earthgraph.processors.pyg.PyGProcessor
      init_args: {conv: GATConv, conv_args: {heads: 2, concat: false}}

Budgets never pass through the processor: they move only by the conservative transport
after it (:mod:`earthgraph.processors.conservation`), so any processor keeps them exact.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from torch import nn

from earthgraph.processors.interaction import InteractionNetworkProcessor
from earthgraph.processors.transformer import GraphTransformerProcessor

ProcessorName = Literal["interaction", "transformer"]


@dataclass
class CustomProcessor:
    """A processor class of anyone's, by import path, with its own arguments."""

    class_path: str
    init_args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any) -> "CustomProcessor":
        """``{class_path: ..., init_args: {...}}`` (as a config gives it) -> a CustomProcessor whose
        class imports, so that a wrong path is refused when the config is parsed; a ValueError
        names what is wrong."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict) or "class_path" not in value or set(value) - {"class_path", "init_args"}:
            raise ValueError(f"expected {{class_path: package.module.Class, init_args: {{...}}}}, got {value!r}")
        init_args = value.get("init_args") or {}
        if not isinstance(init_args, dict):
            raise ValueError(f"processor.init_args: expected a mapping, got {init_args!r}")
        processor_class(str(value["class_path"]))
        return cls(str(value["class_path"]), dict(init_args))


ProcessorChoice = Union[ProcessorName, CustomProcessor]


def processor_class(class_path: str) -> type[nn.Module]:
    """The ``nn.Module`` subclass at ``package.module.Class``; a ValueError names what is wrong."""
    module_name, _, name = class_path.rpartition(".")
    if not module_name:
        raise ValueError(f"processor.class_path {class_path!r}: expected 'package.module.Class'")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"processor.class_path {class_path!r} cannot be imported: {e}") from e
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise ValueError(f"processor.class_path {class_path!r} is not a torch.nn.Module subclass")
    return cls


def build_processor(choice: ProcessorChoice, latent_dim: int, hidden_dim: int, layers: int, forcing_dim: int,
                    attention_heads: int = 4, checkpointing: bool = False) -> nn.Module:
    """The processor ``choice`` names, for latents of ``latent_dim`` features and a forcing of
    ``forcing_dim`` features per node."""
    if choice == "interaction":
        return InteractionNetworkProcessor(latent_dim, hidden_dim, layers, forcing_dim, checkpointing=checkpointing)
    if choice == "transformer":
        return GraphTransformerProcessor(latent_dim, hidden_dim, layers, forcing_dim, heads=attention_heads,
                                         checkpointing=checkpointing)
    if isinstance(choice, dict):  # as a config file gives it, before it is parsed into the dataclass
        choice = CustomProcessor.parse(choice)
    if not isinstance(choice, CustomProcessor):
        raise ValueError(f"unknown processor {choice!r}; expected 'interaction', 'transformer' or "
                         "{class_path: package.module.Class, init_args: {...}}")
    cls = processor_class(choice.class_path)
    try:
        return cls(latent_dim=latent_dim, hidden_dim=hidden_dim, layers=layers, forcing_dim=forcing_dim,
                   **choice.init_args)
    except TypeError as e:
        raise ValueError(f"processor {choice.class_path}: {e} (a processor takes latent_dim, hidden_dim, layers "
                         "and forcing_dim, then its init_args)") from e
