"""earthgraph-evaluate (evaluate.py) end to end: a tiny trained model and a foreign WB2-layout ensemble
forecast, scored against the nature run, checked against hand computations."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from earthgraph.evaluate import EvaluationError
from earthgraph.evaluate.cli import main, parse_options, run
from earthgraph.models import ForecasterConfig
from earthgraph.scoring.areas import latitude_weights


@pytest.fixture(scope="module")
def scored(small_osse, tmp_path_factory):
    import lightning as L

    from earthgraph.training.datamodule import ObservationDataModule
    from earthgraph.training.module import ForecastModule

    out, _ = small_osse
    work = tmp_path_factory.mktemp("eval")
    L.seed_everything(0)
    dm = ObservationDataModule(str(out / "obs.zarr"), ("2020-03-01", "2020-03-08"), ("2020-03-08", "2020-03-09"),
                               ("2020-03-09", "2020-03-11"), rollout=1, batch_size=2)
    water = {"water": {"atmosphere": ["mw_sounder.tcwv"], "soil": []}}
    module = ForecastModule(schema=dm.schema, static=dm.static,
                            forecaster=ForecasterConfig(nside=4, latent_dim=16, hidden_dim=16, processor_layers=1,
                                                        budgets=water))
    trainer = L.Trainer(max_steps=2, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, dm)
    trainer.save_checkpoint(work / "model.ckpt")
    table = run(["--checkpoint", str(work / "model.ckpt"), "--data-dir", str(out), "--out", str(work),
                 "--diagnostic-days", "6", "--wandb-dir", str(work / "wb"), "--device", "cpu"]).table
    return out, work, table


def test_evaluate_writes_wb2_results_tables_pictures_and_forecasts(scored):
    _, work, table = scored
    csv = pd.read_csv(work / "scores.csv")
    assert list(csv.columns) == ["forecast", "sphere", "variable", "region", "lead_hours", "level", "metric", "value"]
    assert set(csv.forecast) == {"earthgraph", "persistence", "climatology", "perfect_model"}
    assert set(csv.sphere) == {"atmosphere", "ocean", "land", "cryosphere"}
    assert {"global", "tropics", "europe", "arctic", "land", "ocean", "sea-ice"} <= set(csv.region)
    assert {"mse", "rmse", "bias", "mae", "acc"} <= set(csv.metric)
    assert {12.0, 24.0, 48.0} <= set(csv.lead_hours)
    glob = csv[csv.region == "global"]
    undefined = (glob.forecast == "climatology") & (glob.metric == "acc")  # no anomaly: 0 / 0
    assert np.isfinite(glob.value[~undefined]).all() and np.isnan(glob.value[undefined]).all()
    for name in ("earthgraph", "persistence", "climatology", "perfect_model"):
        ds = xr.open_dataset(work / "scores" / f"{name}.nc")
        assert ds["air_temperature"].dims == ("metric", "region", "lead_time")
        assert ds.lead_time.dtype.kind == "m"
    for picture in ("scorecard.png", "rmse_atmosphere.png", "rmse_ocean.png", "rmse_land.png", "rmse_cryosphere.png",
                    "maps.png"):
        assert (work / picture).stat().st_size > 10_000, picture
    fc = xr.open_zarr(work / "forecast.zarr", consolidated=False)
    assert fc["air_temperature"].dims == ("time", "prediction_timedelta", "latitude", "longitude")


def _hand_rmse(forecast, truth, lat_deg):
    """RMSE by hand: WB2 cell areas (poles as outer edges), NaNs skipped, time mean, then the root."""
    lat = np.radians(lat_deg)
    edges = np.concatenate([[-np.pi / 2], (lat[1:] + lat[:-1]) / 2, [np.pi / 2]])
    w = np.diff(np.sin(edges))[:, None] * np.ones(forecast.shape[-1])
    per_time = []
    for f, t in zip(forecast, truth):
        ok = np.isfinite(f) & np.isfinite(t)
        per_time.append(np.sum(w[ok] * (f[ok] - t[ok]) ** 2) / np.sum(w[ok]))
    return float(np.sqrt(np.mean(per_time)))


@pytest.mark.parametrize("variable", ["air_temperature", "sea_surface_temperature", "sea_ice_concentration"])
def test_rmse_equals_hand_computation(scored, variable):
    out, work, table = scored
    fc = xr.open_zarr(work / "forecast.zarr", consolidated=False)
    truth = xr.open_zarr(out / "truth.zarr", consolidated=False)
    period = np.datetime64("2020-03-09"), np.datetime64("2020-03-11")  # the checkpoint's test period
    for lead_h in (12.0, 24.0, 48.0):
        lead = pd.Timedelta(hours=lead_h)
        # Every valid time of the test period is verified at every lead, by the initialisations it takes.
        valid = fc.time.values + lead.to_timedelta64()
        verified = (valid >= period[0]) & (valid < period[1])
        assert verified.sum() == 4  # 03-09T00 .. 03-10T12
        f = fc[variable].sel(prediction_timedelta=lead).values[verified].astype(np.float64)
        t = truth[variable].sel(time=valid[verified]).values.astype(np.float64)
        t_init = truth[variable].sel(time=fc.time.values[verified]).values.astype(np.float64)
        got = table[(table.variable == variable) & (table.lead_hours == lead_h) & (table.metric == "rmse")
                    & (table.region == "global")]
        assert got[got.forecast == "earthgraph"].value.item() == pytest.approx(
            _hand_rmse(f, t, truth.latitude.values), rel=1e-5)
        assert got[got.forecast == "persistence"].value.item() == pytest.approx(
            _hand_rmse(t_init, t, truth.latitude.values), rel=1e-5)


def test_observation_space_and_diagnostics(scored):
    out, work, _ = scored
    stats = pd.read_csv(work / "obs_space.csv")
    assert {"synop", "drifter", "seaice_conc"} <= set(stats.obs_type)
    assert set(stats.lead_hours) == {12.0, 24.0, 36.0, 48.0}
    assert (stats["count"] > 0).all() and np.isfinite(stats[["bias", "rmse", "stde"]].values).all()
    np.testing.assert_allclose(stats.rmse ** 2, stats.bias ** 2 + stats.stde ** 2, rtol=1e-6)
    nc = xr.open_dataset(work / "obs_space.nc")
    assert nc["rmse"].dims == ("obs_type_channel", "region", "lead_time")
    # The forecast store holds what the statistics came from: recompute one by hand.
    from earthgraph.data.store import ObservationStore

    store = ObservationStore(work / "forecast_obs.zarr")
    t0, t1 = store.time_range
    cols = store.read("synop", t0, t1 + 1)
    # Only observations of the test period are verified (03-09 .. 03-11).
    in_period = (cols["time"] >= np.datetime64("2020-03-09", "s").astype(np.int64)) & (
        cols["time"] < np.datetime64("2020-03-11", "s").astype(np.int64))
    first = (cols["hours_since_init"] < 12) & in_period
    d = (cols["values"][:, 0] - cols["observed_t2m"])[first]
    d = d[np.isfinite(d)].astype(np.float64)
    row = stats[(stats.obs_type == "synop") & (stats.region == "global") & (stats.lead_hours == 12.0)].iloc[0]
    assert row["count"] == len(d) and row.rmse == pytest.approx(np.sqrt(np.mean(d ** 2)), rel=1e-5)

    diag = json.loads((work / "diagnostics.json").read_text())
    assert diag["days"] >= 2 and diag["budgets"]["water"]["relative_change_max"] < 1e-5
    assert diag["stability"]["air_temperature"]["finite"]
    assert set(diag["coupling"]) == {"sst_vs_air_temperature", "soil_moisture_vs_land_temperature"}
    assert -1 <= diag["coupling"]["sst_vs_air_temperature"]["truth"] <= 1


def test_scores_and_pictures_reach_the_offline_wandb_run(scored):
    from earthgraph.training.wandb_offline import read_history

    _, work, _ = scored
    runs = list((work / "wb").glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    (row,) = read_history(runs[0])
    for picture in ("scorecard", "maps", "rmse_atmosphere", "rmse_cryosphere"):
        assert row[f"evaluate/{picture}/_type"] == "image-file", picture
    assert row["evaluate/scores/_type"] == "table-file"
    assert row["evaluate/scores/nrows"] == len(pd.read_csv(work / "scores.csv"))
    assert row["evaluate/obs_space/nrows"] == len(pd.read_csv(work / "obs_space.csv"))


def test_perfect_model_bound_is_better_than_persistence(scored):
    _, _, table = scored
    r = table[(table.region == "global") & (table.metric == "rmse") & (table.variable == "sea_surface_temperature")]
    pivot = r.pivot_table(index="lead_hours", columns="forecast", values="value")
    assert (pivot.perfect_model < pivot.persistence).all()


def test_a_foreign_wb2_ensemble_forecast_is_scored(small_osse, tmp_path):
    """Any WB2-layout zarr (here: a 3-member ensemble, truth plus noise) scored with no model."""
    out, _ = small_osse
    truth = xr.open_zarr(out / "truth.zarr", consolidated=False)
    init = truth.time.values[8:24:4]
    leads = pd.to_timedelta([6, 24], unit="h").values
    valid = xr.DataArray(init[:, None] + leads[None, :], dims=("time", "prediction_timedelta"))
    base = truth[["air_temperature", "u_component_of_wind", "v_component_of_wind"]].sel(time=valid).drop_vars("time")
    base = base.assign_coords(time=init, prediction_timedelta=leads)
    rng = np.random.default_rng(0)
    shape, dims = base["air_temperature"].shape, base["air_temperature"].dims
    members = [base + xr.DataArray(rng.normal(scale=0.5, size=shape), dims=dims) for _ in range(3)]
    fc = xr.concat(members, dim="realization").transpose("time", "prediction_timedelta", "realization", ...)
    fc.to_zarr(tmp_path / "other_model.zarr", consolidated=False)
    table = run(["--forecast", str(tmp_path / "other_model.zarr"), "--truth", str(out / "truth.zarr"),
                 "--climatology-period", "2020-03-01", "2020-03-12", "--out", str(tmp_path / "res"),
                 "--baselines", "persistence", "--regions", "global", "tropics",
                 "--store", str(out / "obs.zarr")]).table
    res = xr.open_dataset(tmp_path / "res" / "scores" / "other_model.nc")
    assert {"crps", "ensemble_mean_rmse", "spread", "spread_skill_ratio"} <= set(res.metric.values)
    assert res["wind_vector"].dims == ("metric", "region", "lead_time")
    # Noise of 0.5 K about the truth: ensemble-mean error 0.5 / sqrt(3), spread 0.5.
    g = res["air_temperature"].sel(region="global")
    assert float(g.sel(metric="ensemble_mean_rmse").mean()) == pytest.approx(0.5 / np.sqrt(3), rel=0.1)
    assert float(g.sel(metric="spread").mean()) == pytest.approx(0.5, rel=0.1)
    assert set(table.forecast) == {"other_model", "persistence"}
    # Verified at the observations too: SYNOP air temperature, sampled between the leads (6 to 24 h).
    stats = pd.read_csv(tmp_path / "res" / "obs_space.csv")
    synop = stats[(stats.obs_type == "synop") & (stats.region == "global")]
    assert set(synop.lead_hours) == {12.0, 24.0} and (synop["count"] > 100).all()
    assert ((synop.rmse > 0.3) & (synop.rmse < 3.0)).all()  # the observation error (1 K) and the noise
    # A forecast on another grid is refused with the file and coordinate named.
    fc.isel(latitude=slice(2, None)).to_zarr(tmp_path / "cut.zarr", consolidated=False)
    with pytest.raises(EvaluationError, match="cut.zarr: 14 latitude values, .*truth.zarr has 16"):
        run(["--forecast", str(tmp_path / "cut.zarr"), "--truth", str(out / "truth.zarr"),
                       "--climatology-period", "2020-03-01", "2020-03-12", "--out", str(tmp_path / "res2")])


def test_the_model_runs_on_the_device_asked_for_and_a_missing_one_is_named(scored, tmp_path):
    import torch

    from earthgraph.training.model_forecasts import DeviceUnavailableError, model_device

    out, work, _ = scored  # made with --device cpu
    assert model_device("cpu") == torch.device("cpu")
    assert model_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceUnavailableError, match=r"--device cuda:99: this machine has \d+ CUDA device"):
        model_device("cuda:99")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="--device cuda: this machine has 0 CUDA device"):
            model_device("cuda")
    with pytest.raises(EvaluationError, match="--device cuda:99: this machine has"):
        run(["--checkpoint", str(work / "model.ckpt"), "--data-dir", str(out), "--out", str(tmp_path),
                       "--device", "cuda:99"])
    with pytest.raises(SystemExit):  # not a device: argparse says which are
        parse_options(["--device", "gpu"])


def test_latitude_weights_used_are_wb2s():
    lat = xr.DataArray(np.array([-75.0, -45.0, -15.0, 15.0, 45.0, 75.0]), dims=["latitude"], name="latitude")
    w = latitude_weights(lat.assign_coords(latitude=lat.values)).values
    expect = np.diff(np.sin(np.radians([-90, -60, -30, 0, 30, 60, 90.0])))
    np.testing.assert_allclose(w, expect / expect.mean(), rtol=1e-12)


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for option in ("--checkpoint", "--forecast", "--truth", "--climatology", "--regions", "--baselines",
                   "--diagnostic-days", "--wandb-dir", "scores/<forecast>.nc", "obs_space.csv", "scorecard.png",
                   "--chunk-inits", "--scheduler", "--device", "--overwrite", "--storage-options",
                   "outputs/evaluate/<forecast>-<UTC time>"):
        assert option in text, option


def test_a_checkpoint_is_verified_at_the_stations_of_a_store_without_a_gridded_truth(scored, tmp_path):
    """Station-only data: no truth.zarr, the store's fixed SYNOP stations verify the checkpoint's
    forecasts decoded at them, beside their own persistence and climatology, with intervals."""
    from earthgraph.data.obs_types import DEFAULT_PRODUCTS
    from earthgraph.data.store import ObservationStore
    from earthgraph.scoring.station_obs import observations_from_store

    out, work, _ = scored
    run(["--checkpoint", str(work / "model.ckpt"), "--data-dir", str(tmp_path / "no_truth_here"),
         "--store", str(out / "obs.zarr"), "--stations-obs", str(out / "obs.zarr"),
         "--stations-variables", "air_temperature", "--by", "init", "--leads", "12", "24",
         "--bootstrap-resamples", "200", "--out", str(tmp_path / "st")])
    table = pd.read_csv(tmp_path / "st" / "station_scores.csv", dtype={"station": str})
    assert set(table.forecast) == {"earthgraph", "persistence", "climatology"}
    glob = table[(table.region == "global") & table.reference.isna()]
    rmse = glob[glob.metric == "rmse"].set_index(["forecast", "lead_hours"]).value
    assert np.isfinite(rmse).all() and set(rmse.index.get_level_values(1)) == {12.0, 24.0}
    # Persistence by hand: the station's own report at the initialisation, paired with the one at
    # init + 12 h, over the fixed stations (the ships move: they are not stations).
    obs = observations_from_store(ObservationStore(out / "obs.zarr"), [DEFAULT_PRODUCTS[0]])
    assert obs.attrs["moving_platforms_left_out"] > 0
    t2m = obs["air_temperature"]
    inits = pd.date_range("2020-03-09", "2020-03-10T12:00", freq="12h")
    now, later = t2m.sel(time=inits.values), t2m.sel(time=(inits + pd.Timedelta(hours=12)).values)
    earthgraph = xr.open_dataset(tmp_path / "st" / "station_scores" / "earthgraph_stations.nc")
    paired = np.isfinite(now.values) & np.isfinite(later.values)  # the earthgraph forecast is finite everywhere
    hand = np.sqrt(np.mean((now.values - later.values)[paired] ** 2))
    assert rmse[("persistence", 12.0)] == pytest.approx(hand, rel=1e-9)
    assert earthgraph["air_temperature"].dims == ("metric", "station", "lead_time")
    diffs = table[(table.reference == "persistence") & (table.region == "global") & (table.metric == "rmse")]
    assert set(diffs.forecast) == {"earthgraph", "climatology"}
    assert (diffs.lower <= diffs.difference).all() and (diffs.difference <= diffs.upper).all()
    assert (diffs.block_length >= 1).all() and (diffs.n_resamples == 200).all()
    assert (tmp_path / "st" / "station_skill_earthgraph_air_temperature.png").stat().st_size > 10_000


def test_a_gridded_forecast_is_interpolated_to_the_stations_of_a_parquet_table(small_osse, tmp_path):
    out, _ = small_osse
    truth = xr.open_zarr(out / "truth.zarr", consolidated=False)
    t2m = truth["air_temperature"].load()
    inits = t2m.time.values[8:40:4]
    leads = pd.to_timedelta([6, 12], unit="h").values
    # A forecast that is the truth itself: interpolated to stations it errs only by the interpolation.
    fc = xr.concat([t2m.sel(time=inits + lead).assign_coords(time=inits) for lead in leads],
                   dim=pd.Index(leads, name="prediction_timedelta")).transpose("time", "prediction_timedelta", ...)
    fc.to_dataset(name="air_temperature").to_zarr(tmp_path / "fc.zarr", consolidated=False)
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-60, 60, 12), rng.uniform(-180, 180, 12)
    rows = []
    for time in t2m.time.values[:48]:
        field = t2m.sel(time=time)
        value = field.interp(latitude=xr.DataArray(lat, dims="s"), longitude=xr.DataArray(lon % 360, dims="s"))
        rows += [{"station": f"S{i:02d}", "time": time, "variable": "air_temperature", "value": float(v),
                  "lat": lat[i], "lon": lon[i]} for i, v in enumerate(value.values) if np.isfinite(v)]
    pd.DataFrame(rows).to_parquet(tmp_path / "obs.parquet")
    run(["--forecast", str(tmp_path / "fc.zarr"), "--data-dir", str(tmp_path / "none"),
         "--stations-obs", str(tmp_path / "obs.parquet"), "--interpolation", "nearest", "bilinear",
         "--bootstrap-resamples", "100", "--out", str(tmp_path / "st")])
    table = pd.read_parquet(tmp_path / "st" / "station_scores.parquet")
    rmse = table[(table.region == "global") & (table.metric == "rmse") & table.reference.isna()]
    by = rmse.groupby("forecast").value.mean()
    assert set(by.index) == {"fc_nearest", "fc_bilinear", "persistence"}
    # Bilinear interpolation of the truth reproduces xarray's bilinear observations away from the
    # poles, to rounding (NaN-free field); nearest cannot.
    assert by["fc_bilinear"] < 1e-3 < by["fc_nearest"] < by["persistence"]


def test_the_console_script_python_m_and_the_shim_run_and_bad_input_ends_in_one_named_exit(tmp_path, capsys):
    """earthgraph-evaluate (pyproject's entry point), python -m earthgraph.evaluate and python
    evaluate.py are one command: a missing input ends it with exit status 1 and one line naming
    the input and its path, no traceback and no --out left behind; a wrong command line, 2."""
    import importlib
    import os
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    target = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]["earthgraph-evaluate"]
    module, function = target.split(":")
    console_main = getattr(importlib.import_module(module), function)
    missing, out = tmp_path / "nothing.zarr", tmp_path / "out"
    given = ["--forecast", str(tmp_path / "fc.zarr"), "--truth", str(missing), "--out", str(out)]
    assert console_main(given) == 1
    assert f"truth {missing} does not exist" in capsys.readouterr().err
    assert not out.exists()

    env = {**os.environ, "PYTHONPATH": str(root)}

    def command(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=300)

    shown = command("-m", "earthgraph.evaluate", "--help")
    assert shown.returncode == 0 and "usage: python -m earthgraph.evaluate" in shown.stdout
    assert "--checkpoint" in shown.stdout and "scores/<forecast>.nc" in shown.stdout
    refused = command(str(root / "evaluate.py"), *given)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == f"evaluate.py: truth {missing} does not exist"
    assert "Traceback" not in refused.stderr and not out.exists()
    wrong = command(str(root / "evaluate.py"), *given, "--checkpoint", "x.ckpt")
    assert wrong.returncode == 2 and "give --checkpoint or --forecast, not both" in wrong.stderr


def test_a_checkpoint_is_read_once_into_the_module_lightning_loads(monkeypatch):
    """load_forecaster reads the file once (through its format) and builds the module that
    ForecastModule.load_from_checkpoint builds: the same weights and hyperparameters."""
    from pathlib import Path

    import torch

    from earthgraph.training.model_forecasts import load_forecaster
    from earthgraph.training.module import ForecastModule

    path = Path(__file__).resolve().parent / "fixtures" / "checkpoint-format-1" / "model.ckpt"
    reads, torch_load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: reads.append(f) or torch_load(f, *a, **k))
    module, setup = load_forecaster(path, "cpu")
    assert reads == [path]
    monkeypatch.undo()
    reference = ForecastModule.load_from_checkpoint(path, map_location="cpu")
    ours, theirs = module.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert dict(module.hparams) == dict(reference.hparams)
    assert setup.window_hours == reference.model.config.window_hours == 12.0 and setup.train_period == ("2020-03-01", "2020-03-05")
