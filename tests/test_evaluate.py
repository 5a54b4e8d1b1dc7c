"""evaluate.py end to end on a tiny trained model, checked against hand computations."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import evaluate
from earthgraph.scoring.metrics import latitude_weights


@pytest.fixture(scope="module")
def scored(small_osse, tmp_path_factory):
    import lightning as L

    from earthgraph.training.datamodule import ObservationDataModule
    from earthgraph.training.module import ForecastModule

    out, _ = small_osse
    work = tmp_path_factory.mktemp("eval")
    L.seed_everything(0)
    dm = ObservationDataModule(str(out / "obs.zarr"), ("2020-03-01", "2020-03-08"), ("2020-03-08", "2020-03-09"),
                               ("2020-03-08", "2020-03-11"), rollout=1, batch_size=2)
    module = ForecastModule(schema=dm.schema, static=dm.static, nside=4, latent_dim=16, hidden_dim=16,
                            processor_layers=1)
    trainer = L.Trainer(max_steps=2, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, dm)
    trainer.save_checkpoint(work / "model.ckpt")
    table = evaluate.main(["--checkpoint", str(work / "model.ckpt"), "--data-dir", str(out), "--out", str(work)])
    return out, work, table


def test_evaluate_writes_scorecard_netcdf_plot_and_wb2_forecast(scored):
    _, work, table = scored
    csv = pd.read_csv(work / "scorecard.csv")
    assert list(csv.columns) == ["forecast", "sphere", "variable", "lead_hours", "metric", "value"]
    assert set(csv.forecast) == {"earthgraph", "persistence", "climatology"}
    assert set(csv.sphere) == {"atmosphere", "ocean", "land", "cryosphere"}
    assert {12.0, 24.0, 48.0} <= set(csv.lead_hours)
    assert np.isfinite(csv.value).all()
    ds = xr.open_dataset(work / "scores.nc")
    assert ds["air_temperature"].dims == ("forecast", "metric", "region", "lead_time")
    assert (work / "scorecard.png").stat().st_size > 10_000
    fc = xr.open_zarr(work / "forecast.zarr", consolidated=False)
    assert fc["air_temperature"].dims == ("time", "prediction_timedelta", "latitude", "longitude")


def _hand_rmse(forecast, truth, lat_deg):
    """RMSE by hand: cos-weighted cell areas, NaNs skipped, time mean, then the root."""
    lat = np.radians(lat_deg)
    d = np.pi / len(lat)
    w = (np.sin(lat + d / 2) - np.sin(lat - d / 2))[:, None] * np.ones(forecast.shape[-1])
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
    for lead_h in (12.0, 24.0):
        lead = pd.Timedelta(hours=lead_h)
        f = fc[variable].sel(prediction_timedelta=lead).values.astype(np.float64)
        valid = fc.time.values + lead.to_timedelta64()
        t = truth[variable].sel(time=valid).values.astype(np.float64)
        t_init = truth[variable].sel(time=fc.time.values).values.astype(np.float64)
        got = table[(table.variable == variable) & (table.lead_hours == lead_h) & (table.metric == "rmse")]
        model_rmse = got[got.forecast == "earthgraph"].value.item()
        pers_rmse = got[got.forecast == "persistence"].value.item()
        assert model_rmse == pytest.approx(_hand_rmse(f, t, truth.latitude.values), rel=1e-5)
        assert pers_rmse == pytest.approx(_hand_rmse(t_init, t, truth.latitude.values), rel=1e-5)


def test_latitude_weights_match_wb2_closed_form():
    lat = xr.DataArray(np.array([-75.0, -45.0, -15.0, 15.0, 45.0, 75.0]), dims=["latitude"], name="latitude")
    lat = lat.assign_coords(latitude=lat.values)
    w = latitude_weights(lat).values
    edges = np.radians(np.array([-90, -60, -30, 0, 30, 60, 90.0]))
    expect = np.diff(np.sin(edges))
    np.testing.assert_allclose(w, expect / expect.mean(), rtol=1e-12)
    assert w.mean() == pytest.approx(1.0)
