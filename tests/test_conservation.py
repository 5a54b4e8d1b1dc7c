"""Conservation-aware message passing: budgets are kept whatever the weights."""

import numpy as np
import pytest
import torch

from earthgraph.data.batch import ObsSet
from earthgraph.data.schema import ObservationSchema
from earthgraph.models import ForecasterConfig, GraphDOPForecaster
from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.processors.conservation import (
    Budget,
    ConservativeTransport,
    component_scales,
    limit_outgoing,
    observed_components,
    parse_budgets,
)

COMPONENTS = ("atmosphere", "snow", "soil", "ocean")
SCHEMA = ObservationSchema.from_dict({
    "mw_sounder": {"sphere": "atmosphere", "channels": ["tb_temperature", "tcwv"], "metadata": ["scan_angle"],
                   "mean": [260.0, 20.0], "std": [10.0, 10.0], "units": ["K", "kg m-2"],
                   "valid_min": [150.0, 0.0], "valid_max": [330.0, 100.0]},
    "snow": {"sphere": "land", "channels": ["swe"], "metadata": [], "mean": [30.0], "std": [40.0],
             "units": ["kg m-2"], "valid_min": [0.0], "valid_max": [2000.0]},
})
WATER = {"water": {"atmosphere": ["mw_sounder.tcwv"], "snow": ["snow.swe"], "soil": [], "ocean": []}}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    return MeshGraph("healpix", 8, multiscale_levels=3, cache_dir=tmp_path_factory.mktemp("graphs"))


def _rollout(transport, mesh, steps, conservative, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = (torch.rand(2, mesh.npix, 4, generator=g) + 0.1) * mesh.areas.float().view(1, -1, 1)
    totals, lowest = [m.double().sum(dim=(1, 2))], float(m.min())
    for _ in range(steps):
        h = 3 * torch.randn(2, mesh.npix, 16, generator=g)
        if conservative:
            m = transport.transport(m, *transport.rates(h, mesh), mesh)
        else:
            m = transport.plain_message_passing_step(h, m, mesh)
        totals.append(m.double().sum(dim=(1, 2)))
        lowest = min(lowest, float(m.min()))
    return torch.stack(totals), lowest


@pytest.mark.parametrize("seed", [0, 1])
def test_random_weights_keep_the_budget_where_plain_message_passing_drifts(mesh, seed):
    torch.manual_seed(seed)
    transport = ConservativeTransport(16, [Budget("water", COMPONENTS, {c: () for c in COMPONENTS})], hidden=32,
                                      max_fraction=0.9)
    with torch.no_grad():
        totals, lowest = _rollout(transport, mesh, 300, conservative=True, seed=seed)
        base, _ = _rollout(transport, mesh, 300, conservative=False, seed=seed)
    eps = torch.finfo(torch.float32).eps
    drift = ((totals[-1] - totals[0]).abs() / totals[0]).max()
    per_step = ((totals[1:] - totals[:-1]).abs() / totals[:-1]).max()
    # The baseline may blow up to NaN: take its largest finite departure.
    base_departure = (base - base[0]).abs() / base[0]
    base_drift = base_departure[torch.isfinite(base_departure)].max()
    assert drift < 1e-5 and per_step < 10 * eps
    assert lowest >= 0.0, "limited outgoing fluxes keep every amount non-negative"
    assert base_drift > 1e3 * drift and base_drift > 1e-3


def test_the_limiter_never_lets_more_leave_than_is_held():
    amount = torch.tensor([1.0, 2.0, 0.0, 5.0])
    outgoing = torch.tensor([4.0, 1.0, 3.0, 5.0])
    alpha = limit_outgoing(amount, outgoing)
    assert torch.all(alpha * outgoing <= amount)
    assert torch.all((alpha > 0.0) | (amount == 0)), "only an empty cell is stopped entirely"
    assert alpha[1] == 1.0 and alpha[0] == pytest.approx(0.25, rel=1e-6)


def test_flux_direction_flips_when_the_ends_are_swapped(mesh):
    # Antisymmetry: relabelling an edge's ends reverses its flux exactly.
    torch.manual_seed(0)
    transport = ConservativeTransport(16, [Budget("water", ("a",), {"a": ()})], hidden=32)
    h = torch.randn(1, mesh.npix, 16)
    v, _ = transport.rates(h, mesh)

    class Swapped:
        pair_i_segments, pair_j_segments = mesh.pair_j_segments, mesh.pair_i_segments
        pair_features, pair_features_reverse = mesh.pair_features_reverse, mesh.pair_features

    v_swapped, _ = transport.rates(h, Swapped)
    torch.testing.assert_close(v_swapped, -v, rtol=0, atol=1e-6)


def test_budgets_are_checked_against_the_observations():
    assert parse_budgets(WATER, SCHEMA)[0].components == COMPONENTS
    with pytest.raises(ValueError, match="unknown observation type 'radar'"):
        parse_budgets({"water": {"atmosphere": ["radar.tcwv"]}}, SCHEMA)
    with pytest.raises(ValueError, match="'mw_sounder' has no channel 'iwv'"):
        parse_budgets({"water": {"atmosphere": ["mw_sounder.iwv"]}}, SCHEMA)
    with pytest.raises(ValueError, match="expected a mapping"):
        parse_budgets({"water": ["atmosphere"]}, SCHEMA)


def test_each_observed_channel_names_its_component_and_sets_its_starting_scale():
    budgets = parse_budgets(WATER, SCHEMA)
    # Components are columns in budget order: atmosphere 0, snow 1, soil 2, ocean 3.
    assert observed_components(budgets, SCHEMA) == {"mw_sounder": [(1, 0)], "snow": [(0, 1)]}
    # The observing channel's mean (tcwv 20, swe 30 kg m-2); 1 for the unobserved reservoirs.
    assert component_scales(budgets, SCHEMA) == [20.0, 30.0, 1.0, 1.0]


def _obs(n, c, m, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ObsSet(values=torch.randn(n, c, generator=g), error=torch.full((n, c), 0.1),
                  lat=torch.asin(torch.rand(n, generator=g) * 2 - 1), lon=(torch.rand(n, generator=g) * 2 - 1) * np.pi,
                  time=torch.rand(n, generator=g), meta=torch.randn(n, m, generator=g),
                  sample=torch.randint(0, batch, (n,), generator=g))


def test_a_forecaster_with_a_water_budget_keeps_it_over_a_long_rollout(tmp_path):
    torch.manual_seed(0)
    model = GraphDOPForecaster(SCHEMA, config=ForecasterConfig(nside=4, latent_dim=16, hidden_dim=16,
                                                               processor_layers=1, budgets=WATER,
                                                               graph_cache_dir=str(tmp_path), multiscale_levels=2))
    init = torch.tensor([1.6e9], dtype=torch.float64)
    state = model.encode({"mw_sounder": _obs(400, 2, 1), "snow": _obs(100, 1, 0)}, init)
    start = model.budget_totals(state)["water"]
    with torch.no_grad():
        for k in range(120):  # 60 days of 12-hour windows
            state = model.step(state, init + k * 43200.0)
    end = model.budget_totals(state)["water"]
    assert float((end - start).abs().max() / start.max()) < 1e-5
    assert float(state.amounts.min()) >= 0.0
    # The observed channel is the component's density at the point, in the channel's units.
    targets = {"mw_sounder": _obs(50, 2, 1, seed=3)}
    pred = model.decode(state, targets, init)["mw_sounder"]
    density = (state.amounts[0, :, 0] / model.mesh.areas).float()
    tcwv = pred[:, 1] * 10.0 + 20.0
    assert float(tcwv.min()) >= float(density.min()) - 1e-4 and float(tcwv.max()) <= float(density.max()) + 1e-4
    # Gradients reach the transport through the observed channel.
    state = model.encode({"mw_sounder": _obs(400, 2, 1)}, init)
    state = model.step(state, init)
    model.decode(state, targets, init)["mw_sounder"][:, 1].sum().backward()
    assert model.transport.flux[0].weight.grad is not None and model.transport.flux[0].weight.grad.abs().sum() > 0
