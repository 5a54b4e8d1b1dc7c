"""The GraphDOP-style forecaster: encoder -> processor (per window) -> decoder.

A plain ``nn.Module`` (no Lightning): ``training/`` wraps it for training and
``evaluate.py`` uses it for products. It carries its mesh as buffers so that it
moves with ``.to(device)``, and the observation schema (channels, statistics)
so that a checkpoint is self-describing.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from earthgraph.data import solar
from earthgraph.data.batch import ObsSet
from earthgraph.data.statics import GRAVITY
from earthgraph.decoders import ObservationDecoder
from earthgraph.encoders import ObservationEncoder
from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.graphs.point_sets import PointGraph
from earthgraph.graphs.remap import nearest_grid_cell, regular_grid_spacing
from earthgraph.kernels import Segments, check_backend, gather, use_backend
from earthgraph.layers import MLP
from earthgraph.processors.analysis import GatedAnalysis
from earthgraph.processors.conservation import ConservativeTransport, InitialAmounts, budget_totals, parse_budgets
from earthgraph.processors.registry import ProcessorChoice, build_processor

FORCING_DIM = 6
POINT_FORCING_DIM = 6
INSOLATION_HISTORY_HOURS = (3.0, 6.0)  # surface temperatures answer sunlight with a lag of hours
# Static fields a point or mesh node carries: land-sea mask (fraction) and surface
# height in km (from ``geopotential_at_surface``; zero when the store has none).
STATIC_FIELDS = ("land_sea_mask", "orography_km")
POINT_STATIC_DIM = len(STATIC_FIELDS)


def static_feature_grids(static: dict | None) -> np.ndarray | None:
    """(len(STATIC_FIELDS), nlat, nlon) float32 feature grids from a store's static fields, or None."""
    if not static or "land_sea_mask" not in static:
        return None
    mask = np.asarray(static["land_sea_mask"], np.float32)
    height = np.zeros_like(mask)
    if "geopotential_at_surface" in static:
        height = np.asarray(static["geopotential_at_surface"], np.float32) / (GRAVITY * 1000.0)
    return np.stack([mask, height])


@dataclass
class ModelState:
    """What the forecaster carries from window to window: latents ``h`` (B, N, F) and,
    with budgets configured, their amounts (B, N, C) (density x cell area)."""

    h: torch.Tensor
    amounts: torch.Tensor | None = None

    def to(self, device) -> "ModelState":
        return ModelState(self.h.to(device), None if self.amounts is None else self.amounts.to(device))


def node_position_features(xyz: torch.Tensor, lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
    """(N, 7): unit position, then sin and cos of latitude and of longitude."""
    return torch.cat([xyz, torch.stack([torch.sin(lat), torch.cos(lat), torch.sin(lon), torch.cos(lon)], dim=1)], dim=1)


def window_forcing(lat: torch.Tensor, lon: torch.Tensor, window_start: torch.Tensor, window_seconds: float) -> torch.Tensor:
    """(B,) window starts (s since 1970), (N,) node lat/lon -> (B, N, FORCING_DIM):
    cosine of the solar zenith angle at the window's start, middle and end,
    daily-mean insolation (/ 500 W m-2), and the day of year as sin/cos."""
    t = window_start.double()[:, None]
    la, lo = lat.double()[None, :], lon.double()[None, :]
    feats = [solar.cos_zenith(la, lo, t + f * window_seconds, xp=torch) for f in (0.0, 0.5, 1.0)]
    feats.append(solar.daily_mean_insolation(la, t + 0.5 * window_seconds, xp=torch) / 500.0 + 0 * lo)
    doy = 2 * math.pi * solar.day_of_year(t, xp=torch) / solar.DAYS_PER_YEAR
    feats += [torch.sin(doy).expand_as(feats[0]), torch.cos(doy).expand_as(feats[0])]
    return torch.stack(feats, dim=-1).float()


def mean_insolation(lat: torch.Tensor, lon: torch.Tensor, t: torch.Tensor, hours: float, samples: int = 4) -> torch.Tensor:
    """Top-of-atmosphere insolation (W m-2) averaged over the ``hours`` before ``t``
    (s since 1970), by the midpoint rule; like GraphCast's accumulated TOA flux."""
    step = hours * 3600.0 / samples
    acc = torch.zeros_like(t)
    for k in range(samples):
        acc = acc + solar.insolation(lat, lon, t - (k + 0.5) * step, xp=torch)
    return acc / samples


def point_forcing(o: ObsSet, window_start: torch.Tensor, window_seconds: float) -> torch.Tensor:
    """(n, POINT_FORCING_DIM) at each point's own time: cosine of the solar zenith
    angle, daily-mean insolation, local solar time as sin/cos (which tells morning
    from afternoon, unlike the zenith angle), and the insolation averaged over the
    past ``INSOLATION_HISTORY_HOURS`` (insolations / 500 W m-2)."""
    t = window_start.double()[o.sample] + o.time.double() * window_seconds
    lat, lon = o.lat.double(), o.lon.double()
    lst = solar.local_solar_time_angle(lon, t, xp=torch)
    history = [mean_insolation(lat, lon, t, h) / 500.0 for h in INSOLATION_HISTORY_HOURS]
    return torch.stack([
        solar.cos_zenith(lat, lon, t, xp=torch),
        solar.daily_mean_insolation(lat, t, xp=torch) / 500.0,
        torch.sin(lst), torch.cos(lst), *history,
    ], dim=-1).float()


class PointStatics(nn.Module):
    """Static fields on a regular lat-lon grid, looked up at any points (nearest cell).

    Observations and decoder queries carry the surface under them: a skin
    temperature at a coastal point is a land or a sea temperature, which a
    mesh node's land fraction cannot tell. Without static fields every point
    gets zeros.
    """

    def __init__(self, static: dict | None):
        super().__init__()
        grids = static_feature_grids(static)
        if grids is not None:
            lat, lon = np.asarray(static["latitude"], np.float64), np.asarray(static["longitude"], np.float64)
            self.grid = (float(lat[0]), regular_grid_spacing(lat, "latitude"), len(lat),
                         float(lon[0]), regular_grid_spacing(lon, "longitude"), len(lon))
            table = grids.reshape(len(STATIC_FIELDS), -1).T.copy()  # (cells, fields)
        else:
            self.grid, table = None, np.zeros((0, POINT_STATIC_DIM), np.float32)
        self.register_buffer("table", torch.from_numpy(table), persistent=False)

    def forward(self, lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
        """(n,) radians -> (n, POINT_STATIC_DIM)."""
        if self.grid is None:
            return lat.new_zeros((len(lat), POINT_STATIC_DIM), dtype=torch.float32)
        cell = nearest_grid_cell(lat, lon, *self.grid)
        return self.table[cell]


def split_windows(inputs: dict[str, ObsSet], n: int) -> list[dict[str, ObsSet]]:
    """Observations of ``n`` input windows (times in [-n, 0) windows before the initialisation)
    as n windows, oldest first, each with its times relative to its own end, in [-1, 0)."""
    windows = []
    for k in range(n):
        lo, hi = float(k - n), float(k - n + 1)
        window = {}
        for name, o in inputs.items():
            keep = (o.time >= lo) & (o.time < hi)
            window[name] = ObsSet(o.values[keep], o.error[keep], o.lat[keep], o.lon[keep], o.time[keep] - (hi - 0.0),
                                  o.meta[keep], o.sample[keep])
        windows.append(window)
    return windows


def with_kernel_backend(method):
    """Run a forecaster method with the model's ``kernel_backend`` for every aggregation op."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with use_backend(self.kernel_backend):
            return method(self, *args, **kwargs)

    return wrapper


class GraphDOPForecaster(nn.Module):
    """Observations of one window in, observations (or any points) of later windows out.

    schema: per observation type, its channels, metadata features and
        normalisation statistics (see ``earthgraph.data.windows.observation_schema``).
    static: optional gridded static fields ``{"latitude", "longitude", "land_sea_mask"}`` and
        optionally ``geopotential_at_surface`` (m2 s-2), remapped once onto the mesh as node
        features and looked up at every observation and query point.
    mesh: 'healpix' (of ``nside``) or 'icosahedral' (refined ``mesh_level`` times);
        ``multiscale_levels`` > 1 adds processor edges of that many coarser levels
        (GraphCast's multi-mesh). ``graph_cache_dir``: where static graphs are cached
        ('default': ``~/.cache/earthgraph/graphs``; None: rebuild every time).
    budgets: conserved quantities, ``{budget: {component: ['type.channel', ...]}}``
        (see :mod:`earthgraph.processors.conservation`); their amounts move only by
        conservative transport (``transport_substeps`` steps per window), and the
        channels named predict the component's density.
    processor: 'interaction' (GraphCast's interaction network) or 'transformer' (attention
        over incoming edges, ``attention_heads`` heads); ``activation_checkpointing``
        recomputes each layer in the backward pass to save memory.
    ensemble_members: > 1 makes an ensemble whose members differ by Gaussian noise
        (``noise_dim`` features, projected) added to the latents at every window;
        predictions then gain a leading member dimension and train with the fair CRPS.
    kernel_backend: how aggregations run (:mod:`earthgraph.kernels.backends`): 'auto'
        (deterministic Triton kernels on a GPU, torch on the CPU), 'triton', 'cuda',
        'torch' or 'torch_scatter'.
    cycling: a cycled system (:mod:`earthgraph.processors.analysis`): the state at an
        initialisation is the previous window's forecast updated by a learned analysis
        with the new window's observations (:meth:`assimilate`), starting from a learned
        background (:meth:`cold_state`); ``analysis_layers`` interaction layers spread
        each analysis over the mesh. False: the memoryless model, encoded from the input
        windows alone. A cycling model's :meth:`encode` is the cycle from a cold start
        through the input windows: its memoryless mode.
    batch_types: build the per-batch observation graphs of every observation type in one
        pass (False: type by type; the same numbers, slower on a CPU:
        :mod:`earthgraph.graphs.point_sets`).
    state_norm: LayerNorm the latent state after every window's step. The processor's
        residual updates otherwise add up over a long free run (the year-long forecast's
        latents grow until the decoded fields sit at their clipping bounds); normed, every
        window's state has the scale the decoder was trained on.
    latent_noise: in training only, Gaussian noise added to the state before every
        window's step, with this standard deviation relative to each latent feature's
        spread over the mesh (0: none). A free run feeds the processor its own imperfect
        states; trained on perturbed ones, it learns to pull them back (the input noise
        of learned simulators, Sanchez-Gonzalez et al. 2020). Evaluation runs without it.
    processor_statics: give the processor each node's static features (position, land fraction,
        surface height) beside the window's forcing at every step, not only the encoder: a free
        run's state then keeps being told where it is, whatever it has drifted to.
    """

    def __init__(self, schema: dict, nside: int = 8, latent_dim: int = 64, hidden_dim: int = 64,
                 processor_layers: int = 4, decoder_k: int = 4, window_hours: float = 12.0,
                 static: dict | None = None, encoder_neighbours: bool = True, mesh: str = "healpix",
                 mesh_level: int = 4, multiscale_levels: int = 1, graph_cache_dir: str | None = "default",
                 budgets: dict[str, dict[str, list[str]]] | None = None, transport_substeps: int = 2,
                 processor: ProcessorChoice = "interaction", attention_heads: int = 4, activation_checkpointing: bool = False,
                 ensemble_members: int = 1, noise_dim: int = 8, kernel_backend: str = "auto",
                 cycling: bool = False, analysis_layers: int = 1, batch_types: bool = True,
                 state_norm: bool = False, latent_noise: float = 0.0,
                 processor_statics: bool = False):
        super().__init__()
        if latent_noise < 0:
            raise ValueError(f"latent_noise must be >= 0, got {latent_noise}")
        self.latent_noise = float(latent_noise)
        self.kernel_backend = check_backend(kernel_backend)
        if ensemble_members < 1:
            raise ValueError(f"ensemble_members must be >= 1, got {ensemble_members}")
        self.members = ensemble_members
        self.noise_dim = noise_dim
        self.schema = schema
        self.window_seconds = window_hours * 3600.0
        resolution = nside if mesh == "healpix" else mesh_level
        self.mesh = MeshGraph(mesh, resolution, multiscale_levels, graph_cache_dir)
        # Land fraction and mean surface height of each mesh cell, remapped conservatively.
        node_fields = np.zeros((self.mesh.npix, len(STATIC_FIELDS)))
        grids = static_feature_grids(static)
        if grids is not None:
            remap = self.mesh.remap_from_grid(np.asarray(static["latitude"]), np.asarray(static["longitude"]))
            node_fields = remap.to_mesh(grids.astype(np.float64))[0].T
        node_static = torch.cat([node_position_features(self.mesh.xyz, self.mesh.lat, self.mesh.lon),
                                 torch.from_numpy(node_fields).float()], dim=1)
        self.register_buffer("node_static", node_static, persistent=False)
        self.point_static = PointStatics(static)
        type_dims = {name: (len(s["channels"]), len(s["metadata"])) for name, s in schema.items()}
        self.encoder = ObservationEncoder(type_dims, latent_dim, node_static.shape[1] + FORCING_DIM, hidden_dim,
                                          POINT_STATIC_DIM, encoder_neighbours, batch_types)
        self.processor_statics = processor_statics
        step_forcing_dim = FORCING_DIM + (node_static.shape[1] if processor_statics else 0)
        self.processor = build_processor(processor, latent_dim, hidden_dim, processor_layers, step_forcing_dim,
                                         attention_heads, activation_checkpointing)
        self.decoder = ObservationDecoder(type_dims, latent_dim, hidden_dim, POINT_FORCING_DIM + POINT_STATIC_DIM,
                                          decoder_k, batch_types)
        self.decoder_k = decoder_k
        # Ensemble: members differ by Gaussian noise injected into the latents at every window.
        self.noise = nn.Linear(noise_dim, latent_dim) if ensemble_members > 1 else None
        self.state_norm = nn.LayerNorm(latent_dim) if state_norm else None
        self.budgets = parse_budgets(budgets, schema)
        self.transport = self.initial_amounts = None
        # (type, channel index) -> component column, for channels a budget observes.
        self.observed_components: dict[str, list[tuple[int, int]]] = {}
        if self.budgets:
            scales, column = [], 0
            for b in self.budgets:
                for comp in b.components:
                    specs = b.observed_by[comp]
                    scale = 1.0
                    for spec in specs:
                        obs_type, _, channel = spec.partition(".")
                        k = schema[obs_type]["channels"].index(channel)
                        self.observed_components.setdefault(obs_type, []).append((k, column))
                        scale = float(schema[obs_type]["mean"][k])
                    scales.append(max(scale, 1e-6))
                    column += 1
            self.initial_amounts = InitialAmounts(latent_dim, scales)
            self.transport = ConservativeTransport(latent_dim, self.budgets, hidden_dim, substeps=transport_substeps)
        self.cycling = cycling
        if cycling:
            components = len(self.initial_amounts.scales) if self.initial_amounts is not None else 0
            # The cold start: a learned state per node from its static features alone.
            self.background = MLP(node_static.shape[1], latent_dim, hidden_dim)
            self.analysis = GatedAnalysis(latent_dim, hidden_dim, analysis_layers, components=components)

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
        if self.training and self.latent_noise > 0:
            h = h + self.latent_noise * h.detach().std(dim=1, keepdim=True) * torch.randn_like(h)
        if self.noise is not None:
            h = h + self.noise(torch.randn(*h.shape[:2], self.noise_dim, device=h.device, dtype=h.dtype))
        starts = window_start.repeat(self.members)
        forcing = self._statics_and_forcing(starts) if self.processor_statics else self._forcing(starts)
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
        b = state.h.shape[0] // self.members
        parts = [self._decode_member(ModelState(state.h[m * b:(m + 1) * b],
                                                None if state.amounts is None else state.amounts[m * b:(m + 1) * b]),
                                     targets, feats, graphs) for m in range(self.members)]
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
            t = targets[name]
            graph = graphs[name]
            rows = Segments(t.sample[graph.point] * density.shape[1] + graph.node, density.shape[0] * density.shape[1])
            at_points = gather(density.flatten(0, 1), rows).view(len(t), self.decoder_k, -1).mean(dim=1)   # (n, C)
            pred = out[name].clone()
            stats = self.schema[name]
            for k, column in pairs:
                pred[:, k] = (at_points[:, column] - float(stats["mean"][k])) / float(stats["std"][k])
            out[name] = pred
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
