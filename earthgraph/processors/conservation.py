"""Conservation-aware message passing: physical budgets that the network can move
around but never create or destroy.

Beside its latent ``h``, the model carries for every configured budget (water,
say) an amount ``M[b, n, c]`` of each component ``c`` (atmospheric vapour,
snow, soil water, ...) on each mesh node ``n``, in the observed unit times
steradians (kg m-2 * sr for water: density times cell area). It changes only
through

* a flux per undirected mesh edge ``(i, j)``: ``F`` leaves ``i`` and arrives at
  ``j`` (``F < 0`` runs the other way), from the latents at both ends and the
  edge geometry, antisymmetric by construction; and
* an exchange per pair of components of one budget at one node (evaporation,
  melt, ...): ``T`` leaves one component and joins the other.

Every transfer is added once and subtracted once, so ``sum_n sum_c M[b, n, c]``
is unchanged by any weights, up to rounding. Transfers are upwind (a fraction
of the donor's amount), and positivity is kept by limiting: where the
transfers out of a (node, component) would exceed what it holds, all of
them are scaled down by the same factor. Nothing is clamped.

The budgets' components are observed through observation channels in the
same unit (``mw_sounder.tcwv`` for atmospheric water, kg m-2): the forecaster
predicts those channels from the component's density at the point, so the
conserved state is what the observations see.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from earthgraph.data.schema import ObservationSchema
from earthgraph.graphs.edges import EDGE_FEATURE_DIM
from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.graphs.point_sets import PointGraph
from earthgraph.kernels import Segments, flux_scatter, gather, segment_sum
from earthgraph.layers import MLP

# Scale the limiter's factor down by a few float32 epsilons so that rounding in the
# subtraction cannot take an emptied amount below zero.
LIMITER_SAFETY = 1.0 - 8.0 * torch.finfo(torch.float32).eps


@dataclass(frozen=True)
class Budget:
    """A conserved quantity: its components and, for each, the observation channels
    ('type.channel') that observe its density (same unit). Unobserved components are
    latent reservoirs (the ocean's freshwater, say)."""

    name: str
    components: tuple[str, ...]
    observed_by: dict[str, tuple[str, ...]]

    @property
    def exchange_pairs(self) -> list[tuple[int, int]]:
        """Pairs of component indices that exchange at a node."""
        c = len(self.components)
        return [(a, b) for a in range(c) for b in range(a + 1, c)]


def parse_budgets(config: dict | None, schema: ObservationSchema) -> list[Budget]:
    """``{budget: {component: ['type.channel', ...]}}`` -> budgets, checked against the
    observation schema (every named type and channel must exist)."""
    budgets = []
    for name, components in (config or {}).items():
        if not isinstance(components, dict) or not components:
            raise ValueError(f"budget {name!r}: expected a mapping of components to observing channels, got {components!r}")
        observed = {}
        for comp, channels in components.items():
            channels = tuple(channels or ())
            for spec in channels:
                obs_type, _, channel = str(spec).partition(".")
                if obs_type not in schema:
                    raise ValueError(f"budget {name!r}, component {comp!r}: unknown observation type {obs_type!r} "
                                     f"in {spec!r} (known: {sorted(schema)})")
                if channel not in schema[obs_type].channels:
                    raise ValueError(f"budget {name!r}, component {comp!r}: {obs_type!r} has no channel {channel!r} "
                                     f"(channels: {list(schema[obs_type].channels)})")
            observed[str(comp)] = channels
        budgets.append(Budget(str(name), tuple(observed), observed))
    return budgets


def observed_components(budgets: list[Budget], schema: ObservationSchema) -> dict[str, list[tuple[int, int]]]:
    """Per observation type, (channel index, component column) of each channel a budget observes.

    Component columns number the components of all budgets in order: the last dimension
    of the amounts ``M`` (B, N, C)."""
    pairs: dict[str, list[tuple[int, int]]] = {}
    column = 0
    for b in budgets:
        for comp in b.components:
            for spec in b.observed_by[comp]:
                obs_type, _, channel = spec.partition(".")
                pairs.setdefault(obs_type, []).append((schema[obs_type].channels.index(channel), column))
            column += 1
    return pairs


def component_scales(budgets: list[Budget], schema: ObservationSchema) -> list[float]:
    """Per component column, the typical density :class:`InitialAmounts` starts from: the
    normalisation mean of the channel observing it (the last one named, when several do),
    1 when none does; at least 1e-6, so that no component starts at zero."""
    scales = []
    for b in budgets:
        for comp in b.components:
            scale = 1.0
            for spec in b.observed_by[comp]:
                obs_type, _, channel = spec.partition(".")
                spec_type = schema[obs_type]
                scale = float(spec_type.mean[spec_type.channels.index(channel)])
            scales.append(max(scale, 1e-6))
    return scales


def density_at_points(density: torch.Tensor, graph: PointGraph, sample: torch.Tensor) -> torch.Tensor:
    """Each point's density (n, C): the mean over its ``k`` nearest mesh nodes (``graph``, a
    decoder graph of k edges per point, point-major) of ``density`` (B, N, C), in its own
    sample ``sample`` (n,) of the batch."""
    batch, nodes = density.shape[:2]
    rows = Segments(sample[graph.point] * nodes + graph.node, batch * nodes)
    return gather(density.flatten(0, 1), rows).view(len(sample), -1, density.shape[2]).mean(dim=1)


def predict_observed_channels(pred: torch.Tensor, at_points: torch.Tensor, pairs: list[tuple[int, int]],
                              mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """A type's normalised predictions (n, C_type) with each channel a budget observes replaced
    by its component's density ``at_points`` (n, C), normalised by the channel's ``mean`` and
    ``std``: the conserved state is what those observations see. ``pairs``: the type's
    (channel index, component column) from :func:`observed_components`."""
    pred = pred.clone()
    for k, column in pairs:
        pred[:, k] = (at_points[:, column] - float(mean[k])) / float(std[k])
    return pred


def limit_outgoing(amount: torch.Tensor, outgoing: torch.Tensor) -> torch.Tensor:
    """Factor in (0, 1] per (node, component) so that what leaves never exceeds what is held."""
    ratio = amount / outgoing.clamp(min=torch.finfo(amount.dtype).tiny)
    return torch.where(outgoing > amount, ratio * LIMITER_SAFETY, torch.ones_like(amount)).clamp(min=0.0)


class ConservativeTransport(nn.Module):
    """Moves the budgets' amounts along mesh edges and between components at a node.

    latent_dim: size of ``h``; budgets: from :func:`parse_budgets`; edge_dim: edge
    features per pair; substeps: transport steps per call (each moves at most
    ``max_fraction`` of a donor's amount along one edge); the pair-level graph
    comes from the mesh (``pair_i``, ``pair_j``, ``pair_features``,
    ``pair_features_reverse``).
    """

    def __init__(self, latent_dim: int, budgets: list[Budget], hidden: int, edge_dim: int = EDGE_FEATURE_DIM,
                 substeps: int = 2, max_fraction: float = 0.5):
        super().__init__()
        self.budgets = budgets
        self.num_components = sum(len(b.components) for b in budgets)
        self.substeps = substeps
        self.max_fraction = max_fraction
        c = self.num_components
        self.flux = MLP(2 * latent_dim + edge_dim, c, hidden, layer_norm=False)
        offsets, pairs = 0, []
        for b in budgets:
            pairs += [(offsets + a, offsets + d) for a, d in b.exchange_pairs]
            offsets += len(b.components)
        self.register_buffer("exchange_from", torch.tensor([a for a, _ in pairs], dtype=torch.long), persistent=False)
        self.register_buffer("exchange_to", torch.tensor([d for _, d in pairs], dtype=torch.long), persistent=False)
        self.exchange = MLP(latent_dim, len(pairs), hidden, layer_norm=False) if pairs else None
        self.feedback = nn.Linear(c, latent_dim)

    def budget_slices(self) -> dict[str, slice]:
        """Component columns of each budget in ``M``."""
        out, start = {}, 0
        for b in self.budgets:
            out[b.name] = slice(start, start + len(b.components))
            start += len(b.components)
        return out

    def rates(self, h: torch.Tensor, mesh: MeshGraph) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Upwind velocities in (-1, 1): (B, P, C) per undirected pair and (B, N, X) per exchange."""
        a, b = self._edge_views(h, mesh)
        # phi(i -> j) - phi(j -> i): swapping the ends flips the sign exactly.
        v = torch.tanh(a - b)
        x = torch.tanh(self.exchange(h)) if self.exchange is not None else None
        return v, x

    def _edge_views(self, h: torch.Tensor, mesh: MeshGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """phi seen from i towards j and from j towards i, (B, P, C) each."""
        hi, hj = gather(h, mesh.pair_i_segments, dim=1), gather(h, mesh.pair_j_segments, dim=1)
        e_fwd = mesh.pair_features.unsqueeze(0).expand(h.shape[0], -1, -1)
        e_rev = mesh.pair_features_reverse.unsqueeze(0).expand(h.shape[0], -1, -1)
        return self.flux(torch.cat([hi, hj, e_fwd], -1)), self.flux(torch.cat([hj, hi, e_rev], -1))

    def plain_message_passing_step(self, h: torch.Tensor, m: torch.Tensor, mesh: MeshGraph) -> torch.Tensor:
        """The baseline the conservation tests and benchmark compare against: the same
        upwind transport written as ordinary message passing, where each node sums
        the messages it computes itself (``phi`` from its own side of each edge), so
        what leaves one end is not exactly what arrives at the other. Not for models."""
        a, b = self._edge_views(h, mesh)
        at_i, at_j = mesh.pair_i_segments, mesh.pair_j_segments
        mi, mj = gather(m, at_i, dim=1), gather(m, at_j, dim=1)
        f = self.max_fraction
        seen_by_i = f * (torch.relu(torch.tanh(a)) * mi - torch.relu(-torch.tanh(a)) * mj)   # i's view of i -> j
        seen_by_j = f * (torch.relu(-torch.tanh(b)) * mi - torch.relu(torch.tanh(b)) * mj)   # j's view of i -> j
        return m + segment_sum(seen_by_j, at_j, dim=1) - segment_sum(seen_by_i, at_i, dim=1)

    def transport(self, m: torch.Tensor, v: torch.Tensor, x: torch.Tensor | None, mesh: MeshGraph) -> torch.Tensor:
        """One limited, conservative step of the amounts ``m`` (B, N, C)."""
        at_i, at_j = mesh.pair_i_segments, mesh.pair_j_segments
        mi, mj = gather(m, at_i, dim=1), gather(m, at_j, dim=1)
        # Upwind: a positive velocity carries a fraction of i's amount to j, a negative one of j's to i.
        fwd = self.max_fraction * torch.relu(v) * mi        # i -> j, >= 0
        bwd = self.max_fraction * torch.relu(-v) * mj       # j -> i, >= 0
        outgoing = segment_sum(fwd, at_i, dim=1) + segment_sum(bwd, at_j, dim=1)
        if x is not None:
            give = self.max_fraction * torch.relu(x) * m.index_select(2, self.exchange_from)    # from -> to
            take = self.max_fraction * torch.relu(-x) * m.index_select(2, self.exchange_to)     # to -> from
            outgoing = outgoing.index_add(2, self.exchange_from, give).index_add(2, self.exchange_to, take)
        alpha = limit_outgoing(m, outgoing)
        fwd = fwd * gather(alpha, at_i, dim=1)
        bwd = bwd * gather(alpha, at_j, dim=1)
        net = fwd - bwd                                     # one signed flux per pair: i loses, j gains
        delta = flux_scatter(net, mesh.half_edges, dim=1)
        if x is not None:
            give = give * alpha.index_select(2, self.exchange_from)
            take = take * alpha.index_select(2, self.exchange_to)
            swap = give - take
            delta = delta.index_add(2, self.exchange_to, swap).index_add(2, self.exchange_from, -swap)
        return m + delta

    def forward(self, h: torch.Tensor, m: torch.Tensor, mesh: MeshGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance the amounts (B, N, C) by ``substeps`` transport steps driven by ``h``
        (B, N, F); returns (h informed of the new densities, new amounts).

        Budgets stay in float32 under bf16 autocast: rounding of the amounts, not the
        latents, is what the conservation error is made of."""
        with torch.autocast(h.device.type, enabled=False):
            v, x = self.rates(h.float(), mesh)
            m = m.float()
            for _ in range(self.substeps):
                m = self.transport(m, v, x, mesh)
            density = m / mesh.areas.float().view(1, -1, 1)
            return h + self.feedback(torch.log1p(density.clamp(min=0.0))).to(h.dtype), m


def budget_totals(m: torch.Tensor, slices: dict[str, slice]) -> dict[str, torch.Tensor]:
    """(B,) total amount of each budget, summed in float64."""
    return {name: m[..., s].double().sum(dim=(1, 2)) for name, s in slices.items()}


class InitialAmounts(nn.Module):
    """The budgets' amounts at the start of a forecast, from the encoded latents:
    ``area * scale_c * softplus(linear(h))``, positive; ``scale_c`` is the mean of
    the channel observing component c (1 when unobserved)."""

    def __init__(self, latent_dim: int, scales: list[float]):
        super().__init__()
        self.linear = nn.Linear(latent_dim, len(scales))
        self.register_buffer("scales", torch.tensor(scales, dtype=torch.float32), persistent=False)

    def forward(self, h: torch.Tensor, areas: torch.Tensor) -> torch.Tensor:
        """h (B, N, F), areas (N,) sr -> (B, N, C) amounts."""
        return torch.nn.functional.softplus(self.linear(h)) * self.scales * areas.to(h.dtype).view(1, -1, 1)
