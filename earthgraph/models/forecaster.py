"""The GraphDOP-style forecaster: encoder -> processor (per window) -> decoder.

A plain ``nn.Module`` (no Lightning): ``training/`` wraps it for training and
``evaluate.py`` uses it for products. It carries its mesh as buffers so that it
moves with ``.to(device)``, and the observation schema (channels, statistics)
so that a checkpoint is self-describing. Its options are a
:class:`~earthgraph.models.config.ForecasterConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from earthgraph.data.batch import ObsSet
from earthgraph.data.schema import ObservationSchema
from earthgraph.decoders import ObservationDecoder
from earthgraph.encoders import ObservationEncoder
from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.graphs.point_sets import PointGraph
from earthgraph.kernels import check_backend
from earthgraph.kernels.backends import with_kernel_backend
from earthgraph.layers import MLP
from earthgraph.models.config import ForecasterConfig
from earthgraph.models.features import FORCING_DIM, POINT_FORCING_DIM, point_forcing, window_forcing
from earthgraph.models.state import ModelState, split_windows
from earthgraph.models.statics import POINT_STATIC_DIM, PointStatics, node_static_features
from earthgraph.processors.analysis import GatedAnalysis
from earthgraph.processors.conservation import (
    ConservativeTransport,
    InitialAmounts,
    budget_totals,
    component_scales,
    density_at_points,
    observed_components,
    parse_budgets,
    predict_observed_channels,
)
from earthgraph.processors.registry import build_processor


class GraphDOPForecaster(nn.Module):
    """Observations of one window in, observations (or any points) of later windows out.

    schema: per observation type, its channels, metadata features and normalisation
        statistics (``earthgraph.data.windows.observation_schema``; a checkpoint's plain
        dict is read too).
    static: optional gridded static fields ``{"latitude", "longitude", "land_sea_mask"}`` and
        optionally ``geopotential_at_surface`` (m2 s-2), remapped once onto the mesh as node
        features and looked up at every observation and query point (:mod:`.statics`).
    config: the architecture (:class:`~earthgraph.models.config.ForecasterConfig`, each
        option documented there); None: its defaults.

    A cycling model (``config.cycling``): the state at an initialisation is the previous
    window's forecast updated by a learned analysis with the new window's observations
    (:meth:`assimilate`), starting from a learned background (:meth:`cold_state`); its
    :meth:`encode` is the cycle from a cold start through the input windows.
    """

    def __init__(self, schema: ObservationSchema | Mapping[str, Mapping], static: dict | None = None,
                 config: ForecasterConfig | None = None):
        super().__init__()
        config = ForecasterConfig() if config is None else config
        self.config = config
        self.schema = ObservationSchema.coerce(schema)
        self.kernel_backend = check_backend(config.kernel_backend)
        self.members = config.ensemble_members
        self.window_seconds = config.window_hours * 3600.0
        self.cycling = config.cycling
        self.mesh = MeshGraph(config.mesh, config.resolution, config.multiscale_levels, config.graph_cache_dir)
        # Land fraction and mean surface height of each mesh cell, remapped conservatively.
        self.register_buffer("node_static", node_static_features(self.mesh, static), persistent=False)
        self.point_static = PointStatics(static)
        self._build_networks(config)
        self._build_budgets(config)
        if config.cycling:
            self._build_analysis(config)

    def _build_networks(self, config: ForecasterConfig) -> None:
        """The encoder, processor and decoder; an ensemble's noise projection; the state norm."""
        type_dims = {name: (len(s.channels), len(s.metadata)) for name, s in self.schema.items()}
        node_dim = self.node_static.shape[1]
        latent, hidden = config.latent_dim, config.hidden_dim
        self.encoder = ObservationEncoder(type_dims, latent, node_dim + FORCING_DIM, hidden, POINT_STATIC_DIM,
                                          config.encoder_neighbours, config.batch_types)
        step_forcing_dim = FORCING_DIM + (node_dim if config.processor_statics else 0)
        self.processor = build_processor(config.processor, latent, hidden, config.processor_layers, step_forcing_dim,
                                         config.attention_heads, config.activation_checkpointing)
        self.decoder = ObservationDecoder(type_dims, latent, hidden, POINT_FORCING_DIM + POINT_STATIC_DIM,
                                          config.decoder_k, config.batch_types)
        # Ensemble: members differ by Gaussian noise injected into the latents at every window.
        self.noise = nn.Linear(config.noise_dim, latent) if config.ensemble_members > 1 else None
        self.state_norm = nn.LayerNorm(latent) if config.state_norm else None

    def _build_budgets(self, config: ForecasterConfig) -> None:
        """The conserved budgets: their initial amounts, their transport, and which channels they predict."""
        self.budgets = parse_budgets(config.budgets, self.schema)
        self.transport = self.initial_amounts = None
        # (type, channel index) -> component column, for channels a budget observes.
        self.observed_components = observed_components(self.budgets, self.schema)
        if self.budgets:
            self.initial_amounts = InitialAmounts(config.latent_dim, component_scales(self.budgets, self.schema))
            self.transport = ConservativeTransport(config.latent_dim, self.budgets, config.hidden_dim,
                                                   substeps=config.transport_substeps)

    def _build_analysis(self, config: ForecasterConfig) -> None:
        """A cycling model's learned background (the cold start) and analysis step."""
        components = len(self.initial_amounts.scales) if self.initial_amounts is not None else 0
        # The cold start: a learned state per node from its static features alone.
        self.background = MLP(self.node_static.shape[1], config.latent_dim, config.hidden_dim)
        self.analysis = GatedAnalysis(config.latent_dim, config.hidden_dim, config.analysis_layers,
                                      components=components)

    def _forcing(self, window_start: torch.Tensor) -> torch.Tensor:
        return window_forcing(self.mesh.lat, self.mesh.lon, window_start, self.window_seconds)

    def _statics_and_forcing(self, window_start: torch.Tensor) -> torch.Tensor:
        """(B, N, static features + FORCING_DIM): each node's static features, then the forcing
        of the window beginning at ``window_start`` (B,)."""
        forcing = self._forcing(window_start)
        return torch.cat([self.node_static.unsqueeze(0).expand(len(forcing), -1, -1), forcing], dim=-1)

    def _encode_observations(self, inputs: dict[str, ObsSet], start: torch.Tensor) -> torch.Tensor:
        """(B, N, F) encoding of observations from ``start`` (B,) on (times relative to the window's end)."""
        names = list(inputs)
        point_static = dict(zip(names, self.point_static(torch.cat([inputs[n].lat for n in names]),
                                                         torch.cat([inputs[n].lon for n in names]))
                                .split([len(inputs[n]) for n in names]))) if names else {}
        return self.encoder(inputs, self.mesh, self._statics_and_forcing(start), point_static)

    def _for_members(self, t: torch.Tensor | None) -> torch.Tensor | None:
        """Member-major copies: rows m * B .. (m + 1) * B - 1 are member m."""
        return t.repeat(self.members, 1, 1) if t is not None and self.members > 1 else t

    @with_kernel_backend
    def encode(self, inputs: dict[str, ObsSet], init_time: torch.Tensor, input_windows: int = 1) -> ModelState:
        """State at ``init_time`` from the observations of the ``input_windows`` windows before
        it (``inputs``' times in windows relative to ``init_time``, in [-n, 0)). A cycling
        model runs its cycle from a cold start through those windows."""
        if self.cycling:
            windows = split_windows(inputs, input_windows)
            state = self.cold_state(len(init_time), init_time.device)
            first = init_time - len(windows) * self.window_seconds
            return self.cycle(state, windows, first)[0]
        h = self._encode_observations(inputs, init_time - self.window_seconds)
        amounts = self.initial_amounts(h, self.mesh.areas) if self.initial_amounts is not None else None
        return ModelState(self._for_members(h), self._for_members(amounts))

    def cold_state(self, batch: int, device=None) -> ModelState:
        """A cycling model's learned background with nothing assimilated yet, for ``batch`` samples."""
        if not self.cycling:
            raise RuntimeError("cold_state: this forecaster is not a cycling model (cycling=False)")
        h = self.background(self.node_static).unsqueeze(0).expand(batch, -1, -1)
        amounts = self.initial_amounts(h, self.mesh.areas) if self.initial_amounts is not None else None
        return ModelState(self._for_members(h), self._for_members(amounts))

    @with_kernel_backend
    def assimilate(self, background: ModelState, inputs: dict[str, ObsSet], window_start: torch.Tensor) -> ModelState:
        """The analysis at the end of the window beginning at ``window_start`` (B,): the
        ``background`` (the forecast through that window) updated with its observations
        (``inputs``, times relative to the window's end, in [-1, 0))."""
        observed = self._for_members(self._encode_observations(inputs, window_start))
        h, _ = self.analysis(background.h, observed, self.mesh)
        amounts = background.amounts
        if amounts is not None:
            amounts = self.analysis.blend_amounts(h, amounts, self.initial_amounts(h, self.mesh.areas))
        return ModelState(h, amounts)

    def cycle(self, state: ModelState, windows: list[dict[str, ObsSet]], first_start: torch.Tensor,
              targets: list[dict[str, ObsSet]] | None = None
              ) -> tuple[ModelState, list[dict[str, torch.Tensor]], list[ModelState]]:
        """Run the cycle through consecutive ``windows`` (oldest first) from ``state``, valid
        at ``first_start`` (B,): for each window, forecast through it (:meth:`step`), then
        assimilate its observations. With ``targets`` (one per window), each background is
        also decoded at them before it sees them: the background departures a cycle
        trains on. Returns (the last analysis, those predictions, every analysis)."""
        preds, analyses = [], []
        for k, obs in enumerate(windows):
            start = first_start + k * self.window_seconds
            background = self.step(state, start)
            if targets is not None:
                preds.append(self.decode(background, targets[k], start))
            state = self.assimilate(background, obs, start)
            analyses.append(state)
        return state, preds, analyses

    @with_kernel_backend
    def step(self, state: ModelState, window_start: torch.Tensor) -> ModelState:
        """Advance the state into the window beginning at ``window_start``; budgets move only
        by conservative transport."""
        h = state.h
        noise = self.config.latent_noise
        if self.training and noise > 0:
            h = h + noise * h.detach().std(dim=1, keepdim=True) * torch.randn_like(h)
        if self.noise is not None:
            h = h + self.noise(torch.randn(*h.shape[:2], self.config.noise_dim, device=h.device, dtype=h.dtype))
        starts = window_start.repeat(self.members)
        forcing = self._statics_and_forcing(starts) if self.config.processor_statics else self._forcing(starts)
        h = self.processor(h, forcing, self.mesh)
        if self.state_norm is not None:
            h = self.state_norm(h)
        if self.transport is None:
            return ModelState(h, None)
        h, amounts = self.transport(h, state.amounts, self.mesh)
        return ModelState(h, amounts)

    @with_kernel_backend
    def decode(self, state: ModelState, targets: dict[str, ObsSet], window_start: torch.Tensor,
               graphs: dict[str, PointGraph] | None = None) -> dict[str, torch.Tensor]:
        """Normalised predictions at the target points: (n, C) per type, or (members, n, C)
        for an ensemble. Channels a budget observes are its component's density there
        (mean over the k nearest nodes), not a head's output. ``graphs``: the targets'
        :meth:`decoder_graphs`, for a caller that decodes the same points window after window."""
        feats = self.target_features(targets, window_start)
        # The mesh -> point graphs, built once for the heads, the budgets' densities and every member.
        graphs = self.decoder_graphs(targets) if graphs is None else graphs
        if self.members == 1:
            return self._decode_member(state, targets, feats, graphs)
        parts = [self._decode_member(state.member(m, self.members), targets, feats, graphs) for m in range(self.members)]
        return {name: torch.stack([p[name] for p in parts]) for name in parts[0]}

    def decoder_graphs(self, targets: dict[str, ObsSet]) -> dict[str, PointGraph]:
        """The mesh -> point graph of each type's targets. They depend on the points' positions
        only, so a forecast on a fixed grid builds them once (they were a quarter of a long forecast)."""
        return self.decoder.graphs(targets, self.mesh)

    def target_features(self, targets: dict[str, ObsSet], window_start: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per type, (n, POINT_FORCING_DIM + POINT_STATIC_DIM): the forcing at each target's time
        and the static fields at its place. Computed for every type's points in one go: the
        solar terms are dozens of small float64 ops, and once per type they took a quarter of
        a CPU training step (the values are the same, point by point)."""
        names = list(targets)
        if not names:
            return {}
        joined = lambda field: torch.cat([getattr(targets[n], field) for n in names])  # noqa: E731
        lat, lon = joined("lat"), joined("lon")
        points = ObsSet(values=lat.new_zeros((len(lat), 0)), error=lat.new_zeros((len(lat), 0)), lat=lat, lon=lon,
                        time=joined("time"), meta=lat.new_zeros((len(lat), 0)), sample=joined("sample"))
        feats = torch.cat([point_forcing(points, window_start, self.window_seconds), self.point_static(lat, lon)],
                          dim=-1)
        return dict(zip(names, feats.split([len(targets[n]) for n in names])))

    def _decode_member(self, state: ModelState, targets: dict[str, ObsSet], feats: dict[str, torch.Tensor],
                       graphs: dict[str, PointGraph]) -> dict[str, torch.Tensor]:
        out = self.decoder(state.h, targets, feats, self.mesh, graphs)
        if self.observed_components:
            density = state.amounts / self.mesh.areas.to(state.amounts.dtype).view(1, -1, 1)
        for name, pairs in self.observed_components.items():
            if name not in out or len(targets[name]) == 0:
                continue
            at_points = density_at_points(density, graphs[name], targets[name].sample)   # (n, C)
            out[name] = predict_observed_channels(out[name], at_points, pairs, self.schema[name].mean,
                                                  self.schema[name].std)
        return out

    def budget_totals(self, state: ModelState) -> dict[str, torch.Tensor]:
        """(B,) float64 total of each budget (amount in the observed unit times steradians)."""
        if self.transport is None:
            return {}
        return budget_totals(state.amounts, self.transport.budget_slices())

    @with_kernel_backend
    def forward(self, inputs: dict[str, ObsSet] | None, init_time: torch.Tensor,
                targets: list[dict[str, ObsSet]], start: ModelState | None = None,
                input_windows: int = 1) -> list[dict[str, torch.Tensor]]:
        """Predict the normalised values of ``targets[k]`` (window k+1 after init), from the
        state encoded from ``inputs`` (``input_windows`` windows) or, if given, from
        ``start`` (a cycled analysis)."""
        state = start if start is not None else self.encode(inputs, init_time, input_windows)
        out = []
        for k, tgt in enumerate(targets):
            start = init_time + k * self.window_seconds
            state = self.step(state, start)
            out.append(self.decode(state, tgt, start))
        return out
