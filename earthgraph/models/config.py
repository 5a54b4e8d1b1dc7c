"""The forecaster's architecture options, declared once.

:class:`ForecasterConfig` is what ``GraphDOPForecaster`` is built from and what a
training config's ``model.forecaster`` section holds: jsonargparse turns each field
into an option (``--model.forecaster.nside 16``), shows its docstring line in
``--help``, refuses a ``Literal`` choice outside its list when the config is parsed,
and runs :meth:`ForecasterConfig.__post_init__`'s range checks when it builds the
dataclass, naming the option.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from earthgraph.processors.registry import ProcessorChoice

MeshChoice = Literal["healpix", "icosahedral"]
KernelBackendChoice = Literal["auto", "torch", "triton", "cuda", "torch_scatter"]


@dataclass(frozen=True)
class ForecasterConfig:
    """Architecture of a :class:`~earthgraph.models.forecaster.GraphDOPForecaster`.

    Args:
        nside: HEALPix resolution of the latent mesh (mesh: healpix): 12 * nside**2 nodes.
        latent_dim: Features of the latent state on each mesh node.
        hidden_dim: Width of every MLP's hidden layer.
        processor_layers: Message-passing layers of the processor, per window.
        decoder_k: Mesh nodes each decoded point reads from (its k nearest).
        window_hours: Length of one window in hours (linked from data.window_hours).
        encoder_neighbours: Encode each observation into its cell's neighbours too, not only its cell.
        mesh: The latent mesh: 'healpix' (of nside) or 'icosahedral' (refined mesh_level times).
        mesh_level: Refinements of the icosahedron (mesh: icosahedral).
        multiscale_levels: Levels of processor edges; > 1 adds those of that many coarser meshes
            (GraphCast's multi-mesh).
        graph_cache_dir: Where static graphs are cached ('default': ~/.cache/earthgraph/graphs;
            null: rebuilt every time).
        budgets: Conserved quantities, {budget: {component: ['type.channel', ...]}}
            (earthgraph.processors.conservation): their amounts move only by conservative transport,
            and the channels named are predicted from the component's density.
        transport_substeps: Conservative transport steps per window.
        processor: 'interaction' (GraphCast's interaction network), 'transformer' (attention over
            incoming edges) or {class_path, init_args} of any processor module
            (earthgraph.processors.registry).
        attention_heads: Attention heads of the transformer processor.
        activation_checkpointing: Recompute each processor layer in the backward pass to save memory.
        ensemble_members: Members of an ensemble (>= 1); > 1: members differ by Gaussian noise added
            to the latents at every window, predictions gain a leading member dimension and train
            with the fair CRPS.
        noise_dim: Features of an ensemble's noise, projected onto the latents.
        kernel_backend: How aggregations run (earthgraph.kernels.backends): 'auto' (deterministic
            Triton kernels on a GPU, torch on the CPU), 'torch', 'triton', 'cuda' or 'torch_scatter'.
        cycling: A cycled system (earthgraph.processors.analysis): the state at an initialisation is
            the previous window's forecast updated by a learned analysis with the new window's
            observations, from a learned background; false: encoded from the input windows alone.
        analysis_layers: Interaction layers that spread each analysis over the mesh (cycling).
        batch_types: Build the per-batch observation graphs of all types in one pass (false: type by
            type; the same numbers, slower on a CPU).
        state_norm: LayerNorm the latent state after every window's step, so that a long free run's
            state keeps the scale the decoder was trained on.
        latent_noise: In training only, Gaussian noise added to the state before every window's step,
            relative to each latent feature's spread over the mesh (>= 0; 0: none).
        processor_statics: Give the processor each node's static features (position, land fraction,
            surface height) at every step, not only the encoder.
    """

    nside: int = 8
    latent_dim: int = 64
    hidden_dim: int = 64
    processor_layers: int = 4
    decoder_k: int = 4
    window_hours: float = 12.0
    encoder_neighbours: bool = True
    mesh: MeshChoice = "healpix"
    mesh_level: int = 4
    multiscale_levels: int = 1
    graph_cache_dir: str | None = "default"
    budgets: dict[str, dict[str, list[str]]] | None = None
    transport_substeps: int = 2
    processor: ProcessorChoice = "interaction"
    attention_heads: int = 4
    activation_checkpointing: bool = False
    ensemble_members: int = 1
    noise_dim: int = 8
    kernel_backend: KernelBackendChoice = "auto"
    cycling: bool = False
    analysis_layers: int = 1
    batch_types: bool = True
    state_norm: bool = False
    latent_noise: float = 0.0
    processor_statics: bool = False

    def __post_init__(self) -> None:
        at_least = {"nside": 1, "latent_dim": 1, "hidden_dim": 1, "processor_layers": 1, "decoder_k": 1,
                    "mesh_level": 0, "multiscale_levels": 1, "transport_substeps": 1, "attention_heads": 1,
                    "ensemble_members": 1, "noise_dim": 1, "analysis_layers": 1}
        for name, least in at_least.items():
            if getattr(self, name) < least:
                raise ValueError(f"model.forecaster.{name} must be >= {least}, got {getattr(self, name)}")
        if not self.window_hours > 0:
            raise ValueError(f"model.forecaster.window_hours must be > 0, got {self.window_hours}")
        if self.latent_noise < 0:
            raise ValueError(f"model.forecaster.latent_noise must be >= 0, got {self.latent_noise}")

    @property
    def resolution(self) -> int:
        """The mesh's resolution parameter: ``nside`` (HEALPix) or ``mesh_level`` (icosahedral)."""
        return self.nside if self.mesh == "healpix" else self.mesh_level
