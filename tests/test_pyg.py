"""Open to PyG: the model's graphs export to HeteroData, and a PyG layer trains as the processor
with the budgets' conservation intact around it."""

import copy

import pytest
import torch
from torch import nn

from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.graphs.pyg import to_hetero_data
from earthgraph.models import ForecasterConfig, GraphDOPForecaster
from earthgraph.processors.pyg import PyGProcessor, batched_edges
from earthgraph.processors.registry import CustomProcessor, build_processor

from test_conservation import SCHEMA, WATER, _obs  # the conservation tests' water budget and observations

GAT = {"class_path": "earthgraph.processors.pyg.PyGProcessor", "init_args": {"conv": "GATConv",
                                                                              "conv_args": {"heads": 2}}}
FLOAT32_EPS = torch.finfo(torch.float32).eps


def _great_circle(x_a, x_b):
    """Haversine distance (radians) between (E, 2) float64 (lat, lon) rows, independent of the model's maths."""
    (la, lo), (lb, lob) = x_a.double().unbind(1), x_b.double().unbind(1)
    h = torch.sin((lb - la) / 2) ** 2 + torch.cos(la) * torch.cos(lb) * torch.sin((lob - lo) / 2) ** 2
    return 2 * torch.asin(h.clamp(max=1).sqrt())


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    config = ForecasterConfig(nside=4, latent_dim=16, hidden_dim=16, processor_layers=1, budgets=WATER,
                              multiscale_levels=2, processor=CustomProcessor(**GAT),
                              graph_cache_dir=str(tmp_path_factory.mktemp("graphs")))
    return GraphDOPForecaster(SCHEMA, config=config)


def test_the_export_holds_the_models_graphs_edge_for_edge_under_anemois_names(model):
    obs = {"mw_sounder": _obs(300, 2, 1), "snow": _obs(80, 1, 0, seed=1)}
    targets = {"mw_sounder": _obs(60, 2, 1, seed=2)}  # the next window's: other points, so another node set
    mesh = model.mesh
    data = to_hetero_data(mesh, encode={n: (o.lat, o.lon) for n, o in obs.items()},
                          decode={"targets": (targets["mw_sounder"].lat, targets["mw_sounder"].lon)},
                          encoder_neighbours=model.encoder.neighbours, decoder_k=model.config.decoder_k)
    assert set(data.node_types) == {"hidden", "mw_sounder", "snow", "targets"}
    assert set(data.edge_types) == {("hidden", "to", "hidden"), ("mw_sounder", "to", "hidden"),
                                    ("snow", "to", "hidden"), ("hidden", "to", "targets")}
    hidden = data["hidden"]
    assert hidden.num_nodes == mesh.npix and set(hidden.keys()) == {"x", "area_weight"}
    assert torch.equal(hidden.x, torch.stack([mesh.lat, mesh.lon], dim=1))
    assert hidden.area_weight.shape == (mesh.npix, 1) and float(hidden.area_weight.max()) == 1.0
    # The processor's edges, every scale, sender -> receiver, exactly the mesh's.
    processor = data["hidden", "to", "hidden"]
    assert torch.equal(processor.edge_index, torch.stack([mesh.senders, mesh.receivers]))
    assert torch.equal(processor.edge_attr, mesh.edge_features)
    # Encoder and decoder edges are the ones the model builds for these points.
    encoder, decoder = model.encoder.graphs(obs, mesh), model.decoder_graphs(targets)
    for name, graph in encoder.items():
        assert torch.equal(data[name, "to", "hidden"].edge_index, torch.stack([graph.point, graph.node]))
        assert torch.equal(data[name, "to", "hidden"].edge_attr, graph.features)
    graph = decoder["mw_sounder"]
    assert torch.equal(data["hidden", "to", "targets"].edge_index, torch.stack([graph.node, graph.point]))
    assert torch.equal(data["hidden", "to", "targets"].edge_attr, graph.features)
    # anemoi's edge attributes mean what anemoi's mean: length in radians, a unit direction.
    for edge_type in data.edge_types:
        store, (src, _, dst) = data[edge_type], edge_type
        assert set(store.keys()) == {"edge_index", "edge_length", "edge_dirs", "edge_attr"}
        senders, receivers = store.edge_index
        expected = _great_circle(data[src].x[senders], data[dst].x[receivers])
        torch.testing.assert_close(store.edge_length.squeeze(1).double(), expected, rtol=0, atol=2e-6)
        moved = store.edge_length.squeeze(1) > 1e-6
        torch.testing.assert_close(store.edge_dirs[moved].norm(dim=1), torch.ones(int(moved.sum())))
    assert data.validate()
    # One point set to encode and decode (anemoi's "data" nodes): one node set, both edge sets.
    grid = (targets["mw_sounder"].lat, targets["mw_sounder"].lon)
    both = to_hetero_data(mesh, encode={"data": grid}, decode={"data": grid})
    assert set(both.node_types) == {"hidden", "data"} and ("data", "to", "hidden") in both.edge_types
    assert ("hidden", "to", "data") in both.edge_types


def test_without_torch_geometric_the_export_says_what_to_install(model, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torch_geometric", None)
    with pytest.raises(ImportError, match=r"pip install 'torch_geometric>=2.5'"):
        to_hetero_data(model.mesh)


def test_a_batch_is_one_graph_per_sample(model):
    # Offsetting the node indices must keep the samples apart: sample 1's output is its
    # output alone, whatever sample 0 holds.
    torch.manual_seed(1)
    processor = PyGProcessor(16, 16, 2, 6, conv="TransformerConv", conv_args={"heads": 4})
    h, forcing = torch.randn(2, model.mesh.npix, 16), torch.randn(2, model.mesh.npix, 6)
    with torch.no_grad():
        both = processor(h, forcing, model.mesh)
        alone = processor(h[1:], forcing[1:], model.mesh)
        h[0] += 5.0
        moved = processor(h, forcing, model.mesh)
    torch.testing.assert_close(both[1:], alone, rtol=1e-5, atol=1e-5)
    assert torch.equal(moved[1], both[1]) and not torch.allclose(moved[0], both[0])


def test_a_processor_is_refused_by_name_when_its_layer_cannot_be_built():
    with pytest.raises(ValueError, match="GATConf.*no such layer"):
        build_processor(CustomProcessor(GAT["class_path"], {"conv": "GATConf"}), 16, 16, 1, 6)
    with pytest.raises(ValueError, match="not divisible by 3 concatenated heads"):
        build_processor(CustomProcessor(GAT["class_path"], {"conv": "GATConv", "conv_args": {"heads": 3}}), 16, 16, 1, 6)
    with pytest.raises(ValueError, match="cannot be imported"):
        CustomProcessor.parse({"class_path": "earthgraph.processors.pyg.PyGProcesor"})


def _fit_config(tmp_path, store) -> str:
    """The run's config, in one place (the layout of configs/*.yaml): a GATConv processor by
    class path and a water budget, 6 steps on the small OSSE."""
    config = tmp_path / "pyg.yaml"
    config.write_text(f"""
seed_everything: 0
trainer:
  max_steps: 6
  accelerator: cpu
  limit_val_batches: 0
  enable_progress_bar: false
  enable_model_summary: false
  default_root_dir: {tmp_path}
  logger: false
  enable_checkpointing: false
model:
  lr: 0.003
  warmup_steps: 2
  forecaster:
    nside: 4
    latent_dim: 16
    hidden_dim: 16
    processor_layers: 2
    processor:
      class_path: {GAT["class_path"]}
      init_args: {{conv: GATConv, conv_args: {{heads: 2}}}}
    budgets:
      water: {{atmosphere: [mw_sounder.tcwv], snow: [snow.swe], soil: [], ocean: []}}
data:
  store: {store}
  train_period: [2020-03-01, 2020-03-09]
  val_period: [2020-03-09, 2020-03-11]
  rollout: 2
  batch_size: 2
""")
    return str(config)


def _budget_drift(model, batch, windows: int) -> tuple[torch.Tensor, float]:
    """Each window's largest relative change of the water total over a rollout of ``windows``,
    and the smallest amount seen."""
    with torch.no_grad():
        state = model.encode(batch["inputs"], batch["init_time"], batch.get("input_windows", 1))
        totals, lowest = [model.budget_totals(state)["water"]], float(state.amounts.min())
        for k in range(windows):
            state = model.step(state, batch["init_time"] + k * model.window_seconds)
            totals.append(model.budget_totals(state)["water"])
            lowest = min(lowest, float(state.amounts.min()))
    totals = torch.stack(totals)
    return ((totals[1:] - totals[:-1]).abs() / totals[:-1]).amax(dim=1), lowest


def test_a_gat_processor_by_class_path_trains_and_the_water_budget_still_holds(small_osse, tmp_path):
    from earthgraph.training.cli import main
    from earthgraph.training.loss import observation_loss
    from earthgraph.training.module import ForecastModule

    out, _ = small_osse
    cli = main(["--config", _fit_config(tmp_path, out / "obs.zarr")], run=False)
    module, dm = cli.model, cli.datamodule
    assert isinstance(module.model.processor, PyGProcessor)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(observation_loss(module(batch), batch["targets"], module.type_weights)[0])

    before = fixed_loss()
    initial = copy.deepcopy(module.model.processor.state_dict())
    cli.trainer.fit(module, dm)
    assert cli.trainer.global_step == 6 and module.skipped_steps == 0
    module.eval()
    after = fixed_loss()
    assert after < before, (before, after)
    trained = module.model.processor.state_dict()
    attention = [k for k in initial if k.startswith("blocks.") and ".conv." in k]
    assert attention and all(not torch.equal(initial[k], trained[k]) for k in attention), "every GAT weight learned"
    # Around any processor the budgets move only by the conservative transport, so over a
    # rollout of 8 windows of the trained model each window changes the water total by float32
    # rounding of the amounts alone (summed in float64), and no amount goes negative.
    drift, lowest = _budget_drift(module.model, batch, windows=8)
    assert float(drift.max()) < 10 * FLOAT32_EPS, drift
    assert lowest >= 0.0
    # The processor by class path survives its checkpoint.
    cli.trainer.save_checkpoint(tmp_path / "pyg.ckpt")
    reloaded = ForecastModule.load_from_checkpoint(tmp_path / "pyg.ckpt", map_location="cpu")
    assert isinstance(reloaded.model.processor, PyGProcessor)
    torch.testing.assert_close(reloaded.model.processor.state_dict(), trained)


class MassMakingProcessor(nn.Module):
    """Not conservative on purpose: each window every node adds the sum of its neighbours'
    latents (PyG's SimpleConv) and a constant source to its own. A processor's signature,
    no parameters."""

    def __init__(self, latent_dim: int, hidden_dim: int, layers: int, forcing_dim: int, source: float = 1.0):
        super().__init__()
        from torch_geometric.nn import SimpleConv

        self.conv, self.source = SimpleConv(aggr="sum"), source

    def forward(self, h: torch.Tensor, forcing: torch.Tensor | None, mesh: MeshGraph) -> torch.Tensor:
        b, n, f = h.shape
        x = h.reshape(b * n, f)
        return (x + self.conv(x, batched_edges(mesh, b)[0]) + self.source).view(b, n, f)


def test_a_processor_that_makes_mass_cannot_make_water(tmp_path):
    # Negative control. The guarantee does not rest on the processor behaving: the processor
    # maps latents to latents and never receives the amounts. The amounts change only in
    # ConservativeTransport, where each edge's flux is subtracted at one end and added at the
    # other and each exchange leaves one component for another, so whatever the latents say
    # (here: growing about ninefold a window), the totals move by rounding alone. The same processor
    # handed the amounts, as a model carrying water in its latents would, makes water at once.
    torch.manual_seed(0)
    config = ForecasterConfig(nside=4, latent_dim=16, hidden_dim=16, processor_layers=1, budgets=WATER,
                              processor=CustomProcessor(f"{__name__}.MassMakingProcessor"), graph_cache_dir=str(tmp_path))
    model = GraphDOPForecaster(SCHEMA, config=config)
    init = torch.tensor([1.6e9], dtype=torch.float64)
    batch = {"inputs": {"mw_sounder": _obs(400, 2, 1), "snow": _obs(100, 1, 0)}, "init_time": init}
    with torch.no_grad():
        state = model.encode(batch["inputs"], init)
        grown = model.step(state, init).h
        leaked = model.processor(state.amounts, None, model.mesh)
    assert float(grown.abs().sum() / state.h.abs().sum()) > 5, "the processor does make latent mass"
    drift, lowest = _budget_drift(model, batch, windows=8)
    assert float(drift.max()) < 10 * FLOAT32_EPS and lowest >= 0.0, drift
    water = model.transport.budget_slices()["water"]
    made = leaked[..., water].double().sum() / state.amounts[..., water].double().sum()
    assert float(made) > 5, "the control: handed the amounts, it multiplies the water"
