"""The cycled system: cycle windows, the learned analysis, the replay buffer, cycled evaluation."""

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from earthgraph.data.store import ObservationStore
from earthgraph.data.windows import WindowDataset, collate_windows, init_times_between, observation_schema
from earthgraph.models import ForecasterConfig, GraphDOPForecaster
from earthgraph.models.state import split_windows
from earthgraph.training.cycling import ReplayBuffer, cold_start
from earthgraph.training.datamodule import ObservationDataModule
from earthgraph.training.module import ForecastModule
from earthgraph.training.predict import cycled_analyses, stack_states

W = 43200
TINY = dict(nside=4, latent_dim=16, hidden_dim=16, processor_layers=1)
WATER = {"water": {"atmosphere": ["mw_sounder.tcwv"], "soil": []}}


@pytest.fixture(scope="module")
def store(small_osse):
    return ObservationStore(small_osse[0] / "obs.zarr").load()


@pytest.fixture(scope="module")
def schema(store):
    return observation_schema(store)


def _model(store, schema, **kw) -> GraphDOPForecaster:
    torch.manual_seed(0)
    config = ForecasterConfig(graph_cache_dir=None, cycling=True, **{**TINY, "nside": 4}, **kw)
    return GraphDOPForecaster(schema, static=store.static(), config=config).eval()


def test_cycle_windows_are_the_consecutive_windows_before_the_initialisation(store, schema):
    times = init_times_between(np.datetime64("2020-03-05"), np.datetime64("2020-03-07"), 12, 1, 12,
                               store.time_range, 3)
    ds = WindowDataset(store, times, schema, 12, rollout=1, max_targets_per_type=50, cycle_windows=3)
    item = ds[1]
    t0 = int(times[1])
    assert "inputs" not in item and len(item["cycle_inputs"]) == len(item["cycle_targets"]) == 3
    for k in range(3):
        start = t0 - (3 - k) * W
        raw = store.read("synop", start, start + W)
        inputs, targets = item["cycle_inputs"][k]["synop"], item["cycle_targets"][k]["synop"]
        assert len(inputs) == len(raw["time"]) and len(targets) == min(50, len(raw["time"]))
        np.testing.assert_allclose(inputs.time.numpy(), (raw["time"] - start - W) / W, atol=1e-6)  # [-1, 0)
        assert 0 <= targets.time.min() and targets.time.max() < 1
    batch = collate_windows([ds[0], ds[1]])
    assert len(batch["cycle_inputs"]) == 3 and set(batch["cycle_inputs"][2]["synop"].sample.tolist()) == {0, 1}


def test_packed_input_windows_split_into_the_analysis_windows(store, schema):
    t0 = int(np.datetime64("2020-03-05", "s").astype(np.int64))
    ds = WindowDataset(store, np.array([t0]), schema, 12, input_windows=2)
    windows = split_windows(collate_windows([{"init_time": t0, "inputs": ds.input_window(t0), "targets": []}])
                            ["inputs"], 2)
    for k, start in enumerate((t0 - 2 * W, t0 - W)):
        alone = ds.analysis_window(start)
        for name in ("synop", "geo_ir"):
            np.testing.assert_array_equal(windows[k][name].lat.numpy(), alone[name].lat.numpy())
            np.testing.assert_allclose(windows[k][name].time.numpy(), alone[name].time.numpy(), atol=1e-6)


def test_the_analysis_is_a_convex_blend_of_background_and_candidate(store, schema):
    model = _model(store, schema)
    torch.manual_seed(1)
    hf, obs = torch.randn(2, model.mesh.npix, 16), torch.randn(2, model.mesh.npix, 16)
    ha, gate = model.analysis(hf, obs, model.mesh)
    candidate = hf + (ha - hf) / gate
    assert ((gate > 0) & (gate < 1)).all()
    lo, hi = torch.minimum(hf, candidate), torch.maximum(hf, candidate)
    assert ((ha >= lo - 1e-5) & (ha <= hi + 1e-5)).all()


def test_a_cycled_state_remembers_windows_older_than_any_input_window(store, schema):
    """The state after cycling through four windows depends on the first one's observations,
    which no memoryless model with fewer than four input windows sees."""
    model = _model(store, schema)
    t0 = int(np.datetime64("2020-03-06", "s").astype(np.int64))
    ds = WindowDataset(store, np.array([t0]), schema, 12)
    starts = [t0 - (4 - k) * W for k in range(4)]
    windows = [collate_windows([{"init_time": t0, "inputs": ds.analysis_window(s), "targets": []}])["inputs"]
               for s in starts]
    first = torch.tensor([float(starts[0])], dtype=torch.float64)
    oldest = windows[0]["synop"]
    oldest.values.requires_grad_(True)
    state, _, analyses = model.cycle(model.cold_state(1), windows, first)
    assert len(analyses) == 4
    (grad,) = torch.autograd.grad(state.h.square().sum(), oldest.values)
    assert grad.abs().max() > 0


def test_budgets_are_conserved_by_the_forecast_steps_of_a_cycle(store, schema):
    model = _model(store, schema, budgets=WATER)
    t0 = int(np.datetime64("2020-03-06", "s").astype(np.int64))
    ds = WindowDataset(store, np.array([t0]), schema, 12)
    obs = collate_windows([{"init_time": t0, "inputs": ds.analysis_window(t0 - W), "targets": []}])["inputs"]
    start = torch.tensor([float(t0 - W)], dtype=torch.float64)
    with torch.no_grad():
        state = model.assimilate(model.step(model.cold_state(1), start), obs, start)
        before = model.budget_totals(state)["water"]
        for k in range(20):
            state = model.step(state, start + (k + 1) * W)
        after = model.budget_totals(state)["water"]
    assert float(abs(after - before) / before) < 1e-5
    assert (state.amounts >= 0).all()


def test_replay_buffer_keeps_finite_states_by_time_and_forgets_the_oldest(store, schema):
    model = _model(store, schema)
    buffer = ReplayBuffer(capacity=2)
    cold = model.cold_state(3)
    h = torch.randn_like(cold.h.contiguous())
    h[1, 0, 0] = float("nan")
    buffer.put(torch.tensor([100.0, 200.0, 300.0], dtype=torch.float64), type(cold)(h), members=1)
    assert len(buffer) == 2  # 200 s was not finite: 100 and 300 are kept
    assert buffer.start_states(model, torch.tensor([200.0], dtype=torch.float64))[1] == 0
    buffer.put(torch.tensor([400.0], dtype=torch.float64), type(cold)(h[:1] + 1), members=1)
    start, hits = buffer.start_states(model, torch.tensor([100.0, 300.0, 400.0], dtype=torch.float64))
    assert hits == 2 and len(buffer) == 2  # 100 s, the oldest, made room for 400 s
    torch.testing.assert_close(start.h[1], h[2])
    torch.testing.assert_close(start.h[2], h[0] + 1)
    torch.testing.assert_close(start.h[0], cold.h[0])
    # The cold-start draw is a pure function of the step.
    draws = [cold_start(step, 0.3) for step in range(200)]
    assert draws == [cold_start(step, 0.3) for step in range(200)] and 0.2 < np.mean(draws) < 0.4


def test_cycled_analyses_equal_one_batched_cycle_from_the_same_cold_start(store, schema):
    model = _model(store, schema, budgets=WATER)
    t0 = int(np.datetime64("2020-03-06", "s").astype(np.int64))
    inits = np.array([t0, t0 + W, t0 + 2 * W])
    ds = WindowDataset(store, inits, schema, 12)
    starts, info = cycled_analyses(model, ds, inits, spin_up_windows=3)
    assert info == {"spin_up_windows": 3, "windows_cycled": 5}
    windows = [collate_windows([{"init_time": t0, "inputs": ds.analysis_window(s), "targets": []}])["inputs"]
               for s in range(t0 - 3 * W, t0 + 2 * W, W)]
    with torch.no_grad():
        _, _, analyses = model.cycle(model.cold_state(1), windows, torch.tensor([float(t0 - 3 * W)],
                                                                                  dtype=torch.float64))
    got = starts(inits[1:])
    want = stack_states([analyses[3], analyses[4]], 1)
    torch.testing.assert_close(got.h, want.h)
    torch.testing.assert_close(got.amounts, want.amounts)


def _trainer(steps, **kw):
    return L.Trainer(max_steps=steps, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                     accelerator="cpu", **kw)


def test_a_cycling_model_trains_through_lightning_from_its_replay_buffer(small_osse):
    out, _ = small_osse
    L.seed_everything(0)
    dm = ObservationDataModule(str(out / "obs.zarr"), ("2020-03-01", "2020-03-09"), ("2020-03-09", "2020-03-11"),
                               rollout=2, batch_size=2, cycle_windows=2, max_targets_per_type=200)
    module = ForecastModule(schema=dm.schema, static=dm.static, replay_buffer_states=500, cold_start_fraction=0.2,
                            forecaster=ForecasterConfig(**TINY, cycling=True, budgets=WATER), lr=3e-3, warmup_steps=2)
    losses = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = _trainer(40, limit_val_batches=2, callbacks=[Record()])
    trainer.fit(module, dm)
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5]), losses
    assert len(module.replay) > 20 and module.replay.hits > 0
    assert np.isfinite(float(trainer.callback_metrics["val/loss"]))
    # A cycle through data.cycle_windows needs a cycling model, and says so before training.
    plain = ForecastModule(schema=dm.schema, static=dm.static, forecaster=ForecasterConfig(**TINY))
    with pytest.raises(ValueError, match="data.cycle_windows is 2 but model.forecaster.cycling is false"):
        _trainer(1, limit_val_batches=0).fit(plain, dm)


def test_evaluate_scores_the_cycled_system_beside_its_memoryless_self(small_osse, tmp_path):
    from earthgraph.evaluate.cli import run

    out, _ = small_osse
    L.seed_everything(0)
    dm = ObservationDataModule(str(out / "obs.zarr"), ("2020-03-01", "2020-03-08"), ("2020-03-08", "2020-03-09"),
                               ("2020-03-09", "2020-03-11"), rollout=1, batch_size=2, cycle_windows=2)
    module = ForecastModule(schema=dm.schema, static=dm.static, forecaster=ForecasterConfig(**TINY, cycling=True),
                            replay_buffer_states=100)
    trainer = _trainer(3, limit_val_batches=0)
    trainer.fit(module, dm)
    trainer.save_checkpoint(tmp_path / "cycled.ckpt")
    table = run(["--checkpoint", str(tmp_path / "cycled.ckpt"), "--data-dir", str(out), "--out",
                 str(tmp_path), "--diagnostic-days", "3", "--spin-up-days", "2", "--no-obs-space",
                 "--baselines", "persistence"]).table
    rmse = table[(table.metric == "rmse") & (table.region == "global") & (table.variable == "air_temperature")]
    by = rmse.pivot_table(index="lead_hours", columns="forecast", values="value")
    assert {"earthgraph", "earthgraph_memoryless", "persistence"} <= set(by.columns)
    assert np.isfinite(by.values).all()
    assert not np.allclose(by.earthgraph, by.earthgraph_memoryless)  # different initial states
    assert set(pd.read_csv(tmp_path / "scores.csv").metric) >= {"rmse", "variance_ratio"}
    # train.py predict's writer forecasts from the cycled analyses too: a cycle from the same cold
    # start (03-05, four days before its first initialisation) gives the same gridded values.
    import xarray as xr

    from earthgraph.training.writers import ForecastWriter

    writer = ForecastWriter(str(tmp_path / "predictions"), leads_hours=[12.0], spin_up_days=4)
    L.Trainer(logger=False, enable_progress_bar=False, accelerator="cpu", callbacks=[writer]).predict(
        module, datamodule=dm)
    predicted = xr.open_zarr(tmp_path / "predictions" / "forecast.zarr", consolidated=False)
    scored = xr.open_zarr(tmp_path / "forecast.zarr", consolidated=False)
    both = np.intersect1d(predicted.time.values, scored.time.values)
    assert len(both) >= 3
    a = predicted.air_temperature.sel(time=both, prediction_timedelta=pd.Timedelta(hours=12)).values
    b = scored.air_temperature.sel(time=both, prediction_timedelta=pd.Timedelta(hours=12)).values
    np.testing.assert_allclose(a, b, rtol=1e-5)
