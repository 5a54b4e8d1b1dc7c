"""The forecaster as a plain nn.Module: shapes, missing data, determinism."""

import numpy as np
import pytest
import torch

from earthgraph.data.batch import ObsSet
from earthgraph.models import ForecasterConfig, GraphDOPForecaster
from earthgraph.models.statics import PointStatics
from earthgraph.training.loss import observation_loss

SCHEMA = {
    "synop": {"sphere": "atmosphere", "channels": ["t2m"], "metadata": [], "mean": [280.0], "std": [10.0],
              "units": ["K"], "valid_min": [180.0], "valid_max": [340.0]},
    "mw_sounder": {"sphere": "atmosphere", "channels": ["tb", "tcwv"], "metadata": ["scan_angle"],
                   "mean": [260.0, 20.0], "std": [10.0, 10.0], "units": ["K", "kg m-2"],
                   "valid_min": [150.0, 0.0], "valid_max": [330.0, 100.0]},
}


def _obs(n, c, m, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ObsSet(
        values=torch.randn(n, c, generator=g), error=torch.full((n, c), 0.1),
        lat=torch.asin(torch.rand(n, generator=g) * 2 - 1), lon=(torch.rand(n, generator=g) * 2 - 1) * np.pi,
        time=torch.rand(n, generator=g), meta=torch.randn(n, m, generator=g),
        sample=torch.randint(0, batch, (n,), generator=g),
    )


def _model(seed=0):
    torch.manual_seed(seed)
    return GraphDOPForecaster(SCHEMA, config=ForecasterConfig(nside=4, latent_dim=16, hidden_dim=16,
                                                              processor_layers=2))


def test_forward_shapes_over_a_rollout():
    model = _model()
    inputs = {"synop": _obs(300, 1, 0), "mw_sounder": _obs(500, 2, 1)}
    targets = [{"synop": _obs(50, 1, 0, seed=k), "mw_sounder": _obs(70, 2, 1, seed=k)} for k in range(3)]
    out = model(inputs, torch.tensor([1.6e9, 1.6e9 + 43200], dtype=torch.float64), targets)
    assert len(out) == 3
    assert out[2]["synop"].shape == (50, 1) and out[2]["mw_sounder"].shape == (70, 2)
    assert all(torch.isfinite(v).all() for step in out for v in step.values())


def test_a_missing_type_and_empty_cells_still_forecast():
    model = _model()
    init = torch.tensor([1.6e9], dtype=torch.float64)
    only_few = {"synop": _obs(3, 1, 0, batch=1)}  # most cells see nothing, the sounder is absent
    out = model(only_few, init, [{"mw_sounder": _obs(40, 2, 1, batch=1)}])
    assert out[0]["mw_sounder"].shape == (40, 2) and torch.isfinite(out[0]["mw_sounder"]).all()
    empty = {"synop": _obs(0, 1, 0, batch=1), "mw_sounder": _obs(0, 2, 1, batch=1)}
    out = model(empty, init, [{"synop": _obs(10, 1, 0, batch=1)}])
    assert torch.isfinite(out[0]["synop"]).all()


def test_missing_channels_are_neither_seen_nor_scored():
    # A two-channel instrument whose second channel is missing in half the rows
    # (a microwave imager's SST over land): forecasts and loss stay finite, and a
    # missing target value adds nothing to the loss.
    model = _model().eval()
    init = torch.tensor([1.6e9, 1.6e9], dtype=torch.float64)
    snd = _obs(400, 2, 1)
    snd.values[::2, 1] = float("nan")
    tgt = _obs(60, 2, 1, seed=5)
    with torch.no_grad():
        out = model({"mw_sounder": snd}, init, [{"mw_sounder": tgt}])
    assert torch.isfinite(out[0]["mw_sounder"]).all()
    full, _ = observation_loss(out, [{"mw_sounder": tgt}])
    tgt.values[:30, 0] = float("nan")
    gappy, _ = observation_loss(out, [{"mw_sounder": tgt}])
    d = ((out[0]["mw_sounder"] - tgt.values) / tgt.error) ** 2
    torch.testing.assert_close(gappy, d[torch.isfinite(d)].mean())
    assert torch.isfinite(full) and not torch.isclose(full, gappy)


def test_samples_in_a_batch_do_not_leak_into_each_other():
    model = _model().eval()
    init = torch.tensor([1.6e9, 1.6e9], dtype=torch.float64)
    a = _obs(200, 1, 0, batch=1, seed=1)
    b = _obs(200, 1, 0, batch=1, seed=2)
    b_in_1 = ObsSet(b.values, b.error, b.lat, b.lon, b.time, b.meta, torch.ones_like(b.sample))
    tgt = _obs(30, 1, 0, batch=1, seed=3)
    tgt_both = ObsSet.cat([tgt, ObsSet(tgt.values, tgt.error, tgt.lat, tgt.lon, tgt.time, tgt.meta, torch.ones_like(tgt.sample))])
    with torch.no_grad():
        joint = model({"synop": ObsSet.cat([a, b_in_1])}, init, [{"synop": tgt_both}])[0]["synop"]
        alone = model({"synop": a}, init[:1], [{"synop": tgt}])[0]["synop"]
    torch.testing.assert_close(joint[:30], alone, rtol=1e-5, atol=1e-5)


def test_seeded_training_is_bitwise_reproducible_on_cpu():
    def run():
        model = _model(seed=7)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        inputs = {"synop": _obs(300, 1, 0), "mw_sounder": _obs(300, 2, 1)}
        targets = [{"synop": _obs(60, 1, 0, seed=5), "mw_sounder": _obs(60, 2, 1, seed=6)}]
        init = torch.tensor([1.6e9, 1.6e9 + 3600], dtype=torch.float64)
        losses = []
        for _ in range(3):
            loss, _ = observation_loss(model(inputs, init, targets), targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    assert run() == run()


@pytest.mark.parametrize("neighbours", [True, False])
def test_graphs_of_all_types_in_one_pass_predict_what_type_by_type_does(neighbours):
    """batch_types (the default, faster on a CPU) joins every type's points to build the
    observation graphs once; each type must get the graph it has alone: the same
    predictions and gradients, to float32 round-off."""
    def run(batch_types):
        torch.manual_seed(3)
        model = GraphDOPForecaster(SCHEMA, config=ForecasterConfig(nside=4, latent_dim=16, hidden_dim=16,
                                                                   processor_layers=2, encoder_neighbours=neighbours,
                                                                   batch_types=batch_types))
        # A type the model does not know is ignored, as type by type.
        inputs = {"synop": _obs(300, 1, 0), "unknown": _obs(10, 1, 0), "mw_sounder": _obs(400, 2, 1, seed=4)}
        targets = [{"synop": _obs(50, 1, 0, seed=k), "mw_sounder": _obs(70, 2, 1, seed=k + 9)} for k in range(2)]
        out = model(inputs, torch.tensor([1.6e9, 1.6e9 + 43200], dtype=torch.float64), targets)
        loss, _ = observation_loss(out, targets)
        loss.backward()
        return [v for step in out for v in step.values()] + [p.grad for p in model.parameters()]

    joined, alone = run(True), run(False)
    assert len(joined) == len(alone)
    for a, b in zip(joined, alone):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_bad_mesh_size_is_rejected():
    with pytest.raises(ValueError, match="nside must be a power of two"):
        GraphDOPForecaster(SCHEMA, config=ForecasterConfig(nside=6))


def test_point_statics_give_the_surface_under_each_point():
    lat = np.arange(-87.5, 90, 5.0)  # 36 cell centres
    lon = np.arange(0, 360, 10.0)  # 36, periodic
    mask = (np.arange(36)[:, None] + np.arange(36)[None, :]) % 2  # a checkerboard: neighbours differ
    statics = PointStatics({"latitude": lat, "longitude": lon, "land_sea_mask": mask})
    rad = lambda d: torch.tensor(np.radians(d))  # noqa: E731
    # At cell centres, a hair off them, across the dateline and beyond the last row.
    got = statics(rad([-87.5, -85.1, 2.4, 2.6, -0.1, -0.1, 89.9, -90.0]),
                  rad([0.0, 10.0, 354.9, -5.1, 355.1, -4.9, 170.0, 180.0]))[:, 0].numpy()
    expect = [mask[0, 0], mask[0, 1], mask[18, 35], mask[18, 35], mask[17, 0], mask[17, 0], mask[35, 17], mask[0, 18]]
    np.testing.assert_array_equal(got, expect)
    # Surface height comes along in km when the store has geopotential; zero otherwise.
    assert (statics(rad([10.0]), rad([20.0]))[:, 1] == 0).all()
    height_m = np.arange(36 * 36, dtype=float).reshape(36, 36)
    with_height = PointStatics({"latitude": lat, "longitude": lon, "land_sea_mask": mask,
                                "geopotential_at_surface": 9.80665 * height_m})
    got = with_height(rad([2.4, -87.5]), rad([354.9, 10.0])).numpy()
    np.testing.assert_allclose(got[:, 1], [height_m[18, 35] / 1000, height_m[0, 1] / 1000], rtol=1e-6)
    assert PointStatics(None)(rad([10.0]), rad([20.0])).tolist() == [[0.0, 0.0]]
    with pytest.raises(ValueError, match="latitude is not ascending and evenly spaced"):
        PointStatics({"latitude": lat[::-1], "longitude": lon, "land_sea_mask": mask})


def test_insolation_history_is_the_mean_of_past_sunlight():
    from earthgraph.data import solar
    from earthgraph.models.features import mean_insolation

    lat = torch.tensor(np.radians([0.0, 45.0, -70.0]), dtype=torch.float64)
    lon = torch.tensor(np.radians([10.0, -100.0, 150.0]), dtype=torch.float64)
    t = torch.full((3,), 1.6e9 + 5 * 3600.0, dtype=torch.float64)
    fine = torch.stack([solar.insolation(lat, lon, t - s, xp=torch) for s in np.linspace(0, 6 * 3600, 2001)]).mean(0)
    got = mean_insolation(lat, lon, t, 6.0)
    torch.testing.assert_close(got, fine, atol=15.0, rtol=0.03)  # W m-2: 4-point midpoint rule
    assert (got >= 0).all() and got.max() > 100


@pytest.mark.parametrize("mesh,extra", [("icosahedral", dict(mesh_level=2)), ("healpix", dict(nside=4, multiscale_levels=3))])
def test_the_forecaster_runs_on_either_mesh_with_multiscale_edges(mesh, extra, tmp_path):
    torch.manual_seed(0)
    static = {"latitude": np.linspace(-87.1875, 87.1875, 32), "longitude": np.arange(64) * 5.625,
              "land_sea_mask": (np.random.default_rng(0).random((32, 64)) > 0.7).astype(np.float32)}
    config = ForecasterConfig(latent_dim=16, hidden_dim=16, processor_layers=2, mesh=mesh,
                              multiscale_levels=extra.pop("multiscale_levels", 2), graph_cache_dir=str(tmp_path), **extra)
    model = GraphDOPForecaster(SCHEMA, static=static, config=config)
    # Node statics are the conservatively remapped land fraction: the area-weighted land
    # total of the grid is kept.
    land = model.node_static[:, -2].double()
    lat_w = np.cos(np.radians(static["latitude"]))[:, None] * np.ones((1, 64))
    grid_frac = float((static["land_sea_mask"] * lat_w).sum() / lat_w.sum())
    mesh_frac = float((land * model.mesh.areas).sum() / model.mesh.areas.sum())
    assert abs(mesh_frac - grid_frac) < 2e-3  # the grid's cos-latitude weights are themselves approximate
    inputs = {"synop": _obs(300, 1, 0), "mw_sounder": _obs(500, 2, 1)}
    targets = [{"synop": _obs(50, 1, 0, seed=1)}]
    out = model(inputs, torch.tensor([1.6e9, 1.6e9 + 43200], dtype=torch.float64), targets)
    assert out[0]["synop"].shape == (50, 1) and torch.isfinite(out[0]["synop"]).all()
    loss, _ = observation_loss(out, targets)
    loss.backward()
    assert all(p.grad is not None for p in model.processor.parameters())


@pytest.mark.parametrize("processor", ["interaction", "transformer"])
def test_processors_train_with_checkpointing_and_run_under_bf16_autocast(processor, tmp_path):
    def build(checkpointing):
        torch.manual_seed(0)
        return GraphDOPForecaster(SCHEMA, config=ForecasterConfig(nside=4, latent_dim=16, hidden_dim=16,
                                                                  processor_layers=2, processor=processor,
                                                                  attention_heads=4,
                                                                  activation_checkpointing=checkpointing,
                                                                  graph_cache_dir=str(tmp_path)))

    inputs = {"synop": _obs(300, 1, 0), "mw_sounder": _obs(500, 2, 1)}
    targets = [{"synop": _obs(50, 1, 0, seed=1)}, {"mw_sounder": _obs(60, 2, 1, seed=2)}]
    init = torch.tensor([1.6e9, 1.6e9 + 43200], dtype=torch.float64)
    grads = []
    for checkpointing in (False, True):
        model = build(checkpointing)
        loss, _ = observation_loss(model(inputs, init, targets), targets)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.processor.parameters()]))
    # Recomputing activations in the backward pass changes memory, not gradients.
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)
    assert grads[0].abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = build(False)(inputs, init, targets)
    assert all(torch.isfinite(v.float()).all() for step in out for v in step.values())
    with pytest.raises(ValueError, match="unknown processor 'gnn'"):
        GraphDOPForecaster(SCHEMA, config=ForecasterConfig(nside=4, processor="gnn", graph_cache_dir=str(tmp_path)))


def test_fair_crps_matches_its_definition():
    from earthgraph.training.loss import fair_crps

    y = torch.tensor([1.0])
    assert float(fair_crps(torch.tensor([[1.0], [1.0], [1.0]]), y)) == 0.0
    assert float(fair_crps(torch.tensor([[0.0], [0.0]]), y)) == pytest.approx(1.0)
    # Two members straddling the observation: skill 1, spread term 4 / (2 * 2 * 1) = 1.
    assert float(fair_crps(torch.tensor([[0.0], [2.0]]), y)) == pytest.approx(0.0, abs=1e-7)
    g = torch.Generator().manual_seed(0)
    x, obs = torch.randn(5, 7, generator=g), torch.randn(7, generator=g)
    brute = torch.stack([
        sum(abs(x[i, k] - obs[k]) for i in range(5)) / 5
        - sum(abs(x[i, k] - x[j, k]) for i in range(5) for j in range(5)) / (2 * 5 * 4) for k in range(7)])
    torch.testing.assert_close(fair_crps(x, obs), brute)
    with pytest.raises(ValueError, match="at least 2 members"):
        fair_crps(x[:1], obs)


def test_an_ensemble_gives_distinct_members_trains_on_crps_and_is_reproducible(tmp_path):
    def run(seed):
        torch.manual_seed(seed)
        model = GraphDOPForecaster(SCHEMA, config=ForecasterConfig(nside=4, latent_dim=16, hidden_dim=16,
                                                                   processor_layers=1, ensemble_members=3,
                                                                   graph_cache_dir=str(tmp_path)))
        inputs = {"synop": _obs(300, 1, 0), "mw_sounder": _obs(500, 2, 1)}
        targets = [{"synop": _obs(50, 1, 0, seed=1)}, {"mw_sounder": _obs(60, 2, 1, seed=2)}]
        out = model(inputs, torch.tensor([1.6e9, 1.6e9 + 43200], dtype=torch.float64), targets)
        return model, out, targets

    model, out, targets = run(0)
    assert out[0]["synop"].shape == (3, 50, 1) and out[1]["mw_sounder"].shape == (3, 60, 2)
    assert float(out[1]["mw_sounder"].std(dim=0).mean()) > 1e-3, "members differ"
    loss, _ = observation_loss(out, targets)
    loss.backward()
    assert model.noise.weight.grad.abs().sum() > 0, "the CRPS trains the noise injection"
    _, again, _ = run(0)
    torch.testing.assert_close(again[1]["mw_sounder"], out[1]["mw_sounder"], rtol=0, atol=0)


@pytest.mark.parametrize("state_norm", [False, True])
def test_a_state_normed_free_run_keeps_its_latents_at_the_scale_of_the_first_windows(state_norm):
    """The year-long forecast's failure, in small: without the norm the residual updates pile up
    over a free run; with it, the latents after 20 windows are as large as after 2."""
    torch.manual_seed(0)
    model = GraphDOPForecaster(SCHEMA, config=ForecasterConfig(nside=4, latent_dim=16, hidden_dim=16,
                                                               processor_layers=2, state_norm=state_norm))
    start = torch.tensor([1.6e9, 1.6e9], dtype=torch.float64)
    with torch.no_grad():
        state = model.encode({"synop": _obs(300, 1, 0), "mw_sounder": _obs(500, 2, 1)}, start)
        sizes = []
        for k in range(20):
            state = model.step(state, start + k * model.window_seconds)
            sizes.append(float(state.h.pow(2).mean().sqrt()))
    growth = sizes[-1] / sizes[1]
    if state_norm:
        assert growth == pytest.approx(1.0, rel=1e-3)
    else:
        assert growth > 3.0  # the negative control: the unnormed latents do grow


def test_latent_noise_perturbs_training_steps_at_its_relative_size_and_never_a_forecast():
    torch.manual_seed(0)
    model = GraphDOPForecaster(SCHEMA, config=ForecasterConfig(nside=4, latent_dim=16, hidden_dim=16,
                                                               processor_layers=2, latent_noise=0.1))
    clean = GraphDOPForecaster(SCHEMA, config=ForecasterConfig(nside=4, latent_dim=16, hidden_dim=16,
                                                               processor_layers=2))
    clean.load_state_dict(model.state_dict())
    start = torch.tensor([1.6e9, 1.6e9], dtype=torch.float64)
    with torch.no_grad():
        state = clean.encode({"synop": _obs(300, 1, 0), "mw_sounder": _obs(500, 2, 1)}, start)
        model.eval()
        torch.testing.assert_close(model.step(state, start).h, clean.step(state, start).h, rtol=0, atol=0)
        model.train()
        noisy = [model.step(state, start).h for _ in range(2)]
    assert not torch.equal(noisy[0], noisy[1])
    # The noise enters before the processor; measured on the processor's input, it is 10% of
    # each feature's spread over the mesh.
    seen = []
    handle = model.processor.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    with torch.no_grad():
        model.step(state, start)
    handle.remove()
    relative = ((seen[0] - state.h).std(dim=1) / state.h.std(dim=1)).mean()
    assert float(relative) == pytest.approx(0.1, rel=0.15)
    with pytest.raises(ValueError, match="latent_noise"):
        GraphDOPForecaster(SCHEMA, config=ForecasterConfig(nside=4, latent_dim=16, hidden_dim=16, processor_layers=2,
                                                           latent_noise=-0.1))


@pytest.mark.parametrize("processor_statics", [False, True])
def test_processor_statics_tell_every_step_the_surface_under_each_node(processor_statics):
    """The same state stepped over two planets that differ only in their land: with
    processor_statics the step sees the land fraction and the states part; without it
    (the negative control) the step is blind to it and they stay equal."""
    lat, lon = np.arange(-87.5, 90, 5.0), np.arange(0, 360, 5.0)
    land = (np.abs(lat)[:, None] < 30) & (lon[None, :] < 120)
    planets = [{"latitude": lat, "longitude": lon, "land_sea_mask": mask.astype(float)}
               for mask in (land, ~land)]
    models = []
    config = ForecasterConfig(nside=2, latent_dim=16, hidden_dim=16, processor_layers=1,
                              processor_statics=processor_statics)
    for static in planets:
        torch.manual_seed(0)
        models.append(GraphDOPForecaster(SCHEMA, static=static, config=config))
    models[1].load_state_dict(models[0].state_dict())
    start = torch.tensor([1.6e9], dtype=torch.float64)
    with torch.no_grad():
        state = models[0].encode({"synop": _obs(200, 1, 0, batch=1)}, start)
        stepped = [m.step(state, start).h for m in models]
    if processor_statics:
        assert float((stepped[0] - stepped[1]).abs().max()) > 1e-3
    else:
        torch.testing.assert_close(stepped[0], stepped[1], rtol=0, atol=0)
