"""Station forecasts: a station list, any head of the model at its points, a zarr and a tidy table."""

import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from earthgraph.data.obs_types import Channel, ObservationType, products_for
from earthgraph.data.stations import StationListError, read_stations, station_list, wrap_longitude
from earthgraph.data.store import ObservationStore
from earthgraph.data.store_writer import StoreWriter
from earthgraph.data.windows import WindowDataset, collate_windows, init_times_between, observation_schema
from earthgraph.models import ForecasterConfig, GraphDOPForecaster
from earthgraph.training.datamodule import ObservationDataModule
from earthgraph.training.module import ForecastModule
from earthgraph.training.predict import (
    UnknownVariableError,
    forecast_on_grid,
    point_targets,
    radians32,
    station_forecasts,
    station_heads,
)
from earthgraph.training.writers import TABLE_COLUMNS, station_table, write_station_forecasts

REPO = Path(__file__).resolve().parents[1]
TINY = dict(nside=4, latent_dim=16, hidden_dim=16, processor_layers=1)
STATION_WIND = ObservationType(
    "station_wind", "atmosphere", (Channel("u", "m s-1", -60.0, 60.0, 1.5), Channel("v", "m s-1", -60.0, 60.0, 1.5)),
    metadata=("station_id",), description="a user's own anemometer network", conventional=True)


def _setup(osse_dir, members=1):
    store = ObservationStore(osse_dir / "obs.zarr").load()
    schema = observation_schema(store)
    torch.manual_seed(0)
    config = ForecasterConfig(graph_cache_dir=None, ensemble_members=members, **TINY)
    model = GraphDOPForecaster(schema, static=store.static(), config=config).eval()
    times = init_times_between(np.datetime64("2020-03-05"), np.datetime64("2020-03-07"), 12, 2, 12,
                               store.time_range, 2)[:3]
    return store, schema, model, times, WindowDataset(store, times, schema, 12, 2, input_windows=2)


def test_stations_on_grid_points_get_the_gridded_values_and_no_mask(small_osse):
    """A station list holding every grid point (longitudes given in [-180, 180)) gets exactly the
    gridded values, and a station's own value where the grid masks a product. A few of the grid's
    points alone get them to float32 rounding: torch's CPU atan2 (the decoder edges' great-circle
    distance) rounds an element in a vectorised block and in a tensor's scalar tail differently,
    and a point's edges fall in one or the other depending on how many points are decoded."""
    store, schema, model, times, dataset = _setup(small_osse[0])
    static = store.static()
    lat, lon = np.asarray(static["latitude"]), np.asarray(static["longitude"])
    products = products_for(schema)
    leads = [6.0, 12.0, 30.0]
    grid = forecast_on_grid(model, dataset, times, leads, lat, lon, products, np.asarray(static["land_sea_mask"]))
    i, j = (a.ravel() for a in np.meshgrid(np.arange(len(lat)), np.arange(len(lon)), indexing="ij"))
    given_lon = np.where(lon[j] >= 180.0, lon[j] - 360.0, lon[j])
    every = station_list(pd.DataFrame({"id": np.arange(len(i)), "lat": lat[i], "lon": given_lon}))
    np.testing.assert_array_equal(every.lon, lon[j])
    some = np.random.default_rng(0).choice(len(i), 13, replace=False)
    few = station_list(pd.DataFrame({"id": some, "lat": lat[i[some]], "lon": given_lon[some]}))
    at_every = station_forecasts(model, dataset, times, leads, every)
    at_few = station_forecasts(model, dataset, times, leads, few, batch_size=2)
    assert list(at_every.data_vars) == [p.variable for p in products]
    masked = 0
    for p in products:
        want = grid[p.variable].values.reshape(len(times), len(leads), -1)
        where = np.isfinite(want)
        np.testing.assert_array_equal(at_every[p.variable].values[where], want[where], err_msg=p.variable)
        assert np.isfinite(at_every[p.variable].values).all(), f"{p.variable}: stations get their own value"
        masked += int((~where).sum())
        # Decoding 13 points instead of the whole grid rounds a few float32 steps differently
        # (torch's atan2 in the edge features): one step of the normalised value, times the
        # channel's spread, so the absolute tolerance scales with the field (winds near 0).
        scale = float(np.abs(at_every[p.variable].values).max())
        np.testing.assert_allclose(at_few[p.variable].values, at_every[p.variable].values[..., some], rtol=2e-6,
                                   atol=1e-6 * scale, err_msg=p.variable)
    assert masked > 0, "some grid points are masked for a land- or ocean-only product"


def test_an_ensemble_keeps_its_members_at_stations(small_osse):
    """Each member of each initialisation at each station is the model's own decode of that
    member there (two initialisations in one batch: members are kept member-major)."""
    store, schema, model, times, dataset = _setup(small_osse[0], members=3)
    stations = station_list(pd.DataFrame({"id": ["a", "b"], "lat": [40.0, -12.5], "lon": [10.0, 200.0]}))
    torch.manual_seed(5)
    at = station_forecasts(model, dataset, times[:2], [18.0], stations, ["synop.t2m"])
    assert at["synop.t2m"].dims == ("time", "prediction_timedelta", "realization", "station")
    torch.manual_seed(5)  # the same noise: the same batch, as above
    with torch.no_grad():
        init = torch.tensor(times[:2].astype(np.float64), dtype=torch.float64)
        inputs = collate_windows([{"init_time": int(t), "inputs": dataset.input_window(int(t)), "targets": []}
                                  for t in times[:2]])
        state = model.encode(inputs["inputs"], init, 2)
        for k in range(2):
            state = model.step(state, init + k * model.window_seconds)
        tgt = point_targets(radians32(stations.lat), radians32(stations.lon), 2, 0.5, 0)
        pred = model.decode(state, {"synop": tgt}, init + model.window_seconds)["synop"][..., 0].numpy()  # (M, 2 n)
    spec = schema["synop"]
    want = np.clip(pred * spec.std[0] + spec.mean[0], spec.valid_min[0], spec.valid_max[0])
    want = want.reshape(3, 2, 2).transpose(1, 0, 2)  # (M, sample, station) -> (time, realization, station)
    np.testing.assert_allclose(at["synop.t2m"].values[:, 0], want, rtol=1e-6)
    assert np.ptp(want, axis=1).min() > 0 and np.ptp(want, axis=0).min() > 0, "members and times differ"
    table = station_table(at)
    assert list(table.columns) == ["station", "init_time", "lead_hours", "valid_time", "variable", "realization",
                                   "value"]
    assert len(table) == 2 * 3 * 2 and set(table.realization) == {0, 1, 2}


def test_the_table_and_the_zarr_hold_the_same_numbers_and_string_ids_survive(small_osse, tmp_path):
    store, schema, model, times, dataset = _setup(small_osse[0])
    csv = tmp_path / "stations.csv"
    csv.write_text("id, lat, lon, elevation\n007,51.5,-0.1,35\nLHR-2,40.0,250.0,\n12,-33.9,18.4,12.5\n")
    variables = ["air_temperature", "sea_surface_temperature", "synop.t2m"]
    ds = station_forecasts(model, dataset, times, [12.0, 24.0], csv, variables)
    for table_name in ("f.parquet", "f.csv"):
        write_station_forecasts(ds, tmp_path / "f.zarr", tmp_path / table_name)
        back = xr.open_zarr(tmp_path / "f.zarr", consolidated=False).load()
        table = (pd.read_parquet(tmp_path / table_name) if table_name.endswith("parquet") else
                 pd.read_csv(tmp_path / table_name, dtype={"station": str}, parse_dates=["init_time", "valid_time"]))
        assert tuple(table.columns) == TABLE_COLUMNS
        assert list(back.station.values) == ["007", "LHR-2", "12"] and set(table.station) == {"007", "LHR-2", "12"}
        np.testing.assert_array_equal(back.elevation.values, [35.0, np.nan, 12.5])
        assert back["synop.t2m"].attrs["units"] == "K" and back["air_temperature"].attrs["source"] == "synop.t2m"
        assert len(table) == 3 * 3 * 2 * 3
        assert (table.valid_time - table.init_time == pd.to_timedelta(table.lead_hours, unit="h")).all()
        for name in back.data_vars:  # each row's value is the zarr's at its station, time and lead
            rows = table[table.variable == name]
            want = back[name].to_series().reindex(pd.MultiIndex.from_arrays(
                [rows.init_time, pd.to_timedelta(rows.lead_hours, unit="h"), rows.station]))
            np.testing.assert_allclose(rows.value.to_numpy(), want.to_numpy(), rtol=1e-7, atol=0, err_msg=name)
    np.testing.assert_array_equal(back["air_temperature"].values, back["synop.t2m"].values)


def _store_with_station_wind(osse_dir: Path, path: Path) -> Path:
    """The OSSE's observations plus a user-declared type observed at the synop stations."""
    src = ObservationStore(osse_dir / "obs.zarr")
    t0, t1 = src.time_range
    static = src.static()
    with StoreWriter(path, [src.obs_type(n) for n in src.type_names] + [STATION_WIND], overwrite=True) as w:
        w.add_static(static.pop("latitude"), static.pop("longitude"), static)
        for name in src.type_names:
            w.append(name, src.read(name, t0, t1 + 1))
        syn = src.read("synop", t0, t1 + 1)
        phase = np.radians(syn["lon"]) + 2 * np.pi * syn["time"] / 86400.0
        values = np.stack([10 * np.cos(np.radians(syn["lat"])) + 3 * np.sin(phase), 4 * np.cos(phase)], axis=1)
        w.append("station_wind", {"time": syn["time"], "lat": syn["lat"], "lon": syn["lon"], "values": values,
                                  "error": np.full_like(values, 1.5), "station_id": syn["station_id"]})
    return path


@pytest.fixture(scope="module")
def station_wind_run(small_osse, tmp_path_factory):
    """A model trained two steps on a store with the user's ``station_wind`` type, and its checkpoint."""
    tmp = tmp_path_factory.mktemp("station_wind")
    store = _store_with_station_wind(small_osse[0], tmp / "obs.zarr")
    L.seed_everything(0)
    dm = ObservationDataModule(str(store), train_period=("2020-03-01", "2020-03-09"),
                               val_period=("2020-03-09", "2020-03-11"), rollout=1, batch_size=2)
    module = ForecastModule(schema=dm.schema, static=dm.static,
                            forecaster=ForecasterConfig(graph_cache_dir=None, **TINY))
    trainer = L.Trainer(max_steps=2, limit_val_batches=0, logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, default_root_dir=tmp, accelerator="cpu")
    trainer.fit(module, dm)
    trainer.save_checkpoint(tmp / "m.ckpt")
    return tmp, store, module


def test_a_user_declared_types_head_is_forecast_at_stations_and_on_the_grid(station_wind_run):
    tmp, path, module = station_wind_run
    store = ObservationStore(path).load()
    schema = module.model.schema
    assert [p.variable for p in products_for(schema) if p.obs_type == "station_wind"] == ["station_wind_u",
                                                                                           "station_wind_v"]
    times = init_times_between(np.datetime64("2020-03-09"), np.datetime64("2020-03-10"), 12, 1, 12,
                               store.time_range, 1)
    lat, lon = np.array([-60.0, 0.0, 45.0]), np.array([0.0, 90.0, 180.0, 270.0])
    dataset = WindowDataset(store, times, schema, 12, 1)
    grid = forecast_on_grid(module.model, dataset, times, [12.0], lat, lon, products_for(schema))
    assert grid["station_wind_u"].attrs["units"] == "m s-1" and np.isfinite(grid["station_wind_u"].values).all()
    stations = station_list(pd.DataFrame({"id": ["n", "e"], "lat": [45.0, 0.0], "lon": [-90.0, 90.0]}))
    at = station_forecasts(module, store, times, [12.0], stations, ["station_wind.u", "station_wind_v"])
    on_grid = grid["station_wind_u"].values[:, 0, [2, 1], [3, 1]]  # (time, station)
    np.testing.assert_allclose(at["station_wind.u"].values[:, 0], on_grid, rtol=2e-6, atol=1e-6)
    assert at["station_wind.u"].attrs["source"] == "station_wind.u"
    assert np.all(np.abs(at["station_wind_v"].values) <= 60.0)


def test_train_py_predict_with_stations_writes_both_station_files(station_wind_run):
    tmp, store, _ = station_wind_run
    (tmp / "stations.csv").write_text("id,lat,lon\nA,10,20\nB,-45,-170\n")
    cfg = tmp / "p.yaml"
    cfg.write_text(f"""
trainer: {{accelerator: cpu, logger: false, enable_progress_bar: false, default_root_dir: {tmp}}}
model: {{forecaster: {{nside: 4, latent_dim: 16, hidden_dim: 16, processor_layers: 1, graph_cache_dir: null}}}}
data:
  store: {store}
  train_period: [2020-03-01, 2020-03-09]
  val_period: [2020-03-09, 2020-03-11]
  predict_period: [2020-03-10, 2020-03-11]
  rollout: 2
  batch_size: 2
""")
    proc = subprocess.run([sys.executable, "train.py", "predict", "--config", str(cfg), "--ckpt_path",
                           str(tmp / "m.ckpt"), "--stations", str(tmp / "stations.csv"), "--station_variables",
                           "air_temperature", "station_wind.u", "--station_leads", "6", "18"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp / "predictions"
    ds = xr.open_zarr(out / "forecast_stations.zarr", consolidated=False)
    assert set(ds.data_vars) == {"air_temperature", "station_wind.u"} and list(ds.station.values) == ["A", "B"]
    assert list(ds.prediction_timedelta.values.astype("timedelta64[h]").astype(int)) == [6, 18] and len(ds.time) == 2
    table = pd.read_parquet(out / "forecast_stations.parquet")
    assert len(table) == 2 * 2 * 2 * 2 and np.isfinite(table.value).all()
    assert (out / "forecast.zarr").exists() and "station forecasts" in proc.stderr


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")  # pytest's own argv
def test_station_options_are_refused_outside_predict(small_osse):
    from earthgraph.training.cli import main

    with pytest.raises(ValueError, match="--stations: station forecasts are made by `train.py predict` only"):
        main(["fit", "--trainer.logger", "false", "--data.store", str(small_osse[0] / "obs.zarr"),
              "--data.train_period", "[2020-03-01, 2020-03-09]", "--data.val_period", "[2020-03-09, 2020-03-11]",
              "--stations", "s.csv"])


@pytest.mark.parametrize("name, text, column, value", [
    ("no_lon.csv", "id,lat\n1,10\n", "['lon']", "missing column"),
    ("lat.csv", "id,lat,lon\n1,10,0\n2,95.5,0\n", "'lat'", "value 95.5 (station 2)"),
    ("nan.csv", "id,lat,lon\n1,10,\n", "'lon'", "nan"),
    ("inf.csv", "id,lat,lon\nx,10,inf\n", "'lon'", "value inf (station 'x')"),
    ("text.csv", "id,lat,lon\nx,north,3\n", "'lat'", "'north'"),
    ("dup.csv", "id,lat,lon\nx,1,2\ny,1,2\nx,3,4\n", "'id'", "['x']"),
    ("empty.csv", "id,lat,lon\n", "no stations", ""),
    ("stations.txt", "id,lat,lon\n1,2,3\n", "unknown format", "'.txt'"),
])
def test_bad_station_lists_get_named_errors(tmp_path, name, text, column, value):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(StationListError) as err:
        read_stations(path)
    assert str(path) in str(err.value) and column in str(err.value) and value in str(err.value), str(err.value)


def test_station_ids_longitudes_and_variables(small_osse, tmp_path):
    pd.DataFrame({"id": [7, 3], "lat": [1.0, 2.0], "lon": [-180.0, 540.0]}).to_parquet(tmp_path / "s.parquet")
    s = read_stations(tmp_path / "s.parquet")
    assert s.ids.dtype == np.int64 and s.elevation is None and list(s.lon) == [180.0, 180.0]
    np.testing.assert_array_equal(wrap_longitude(np.array([-1e-20, -0.0, 359.5, 360.0, -90.0])), [0, 0, 359.5, 0, 270])
    assert station_list(pd.DataFrame({"id": ["1", "2"], "lat": [0, 0], "lon": [0, 0]})).ids.dtype == np.int64
    assert station_list(pd.DataFrame({"id": ["1", "02"], "lat": [0, 0], "lon": [0, 0]})).ids.tolist() == ["1", "02"]
    schema = observation_schema(ObservationStore(small_osse[0] / "obs.zarr"))
    assert [p.variable for p in station_heads(schema)] == [p.variable for p in products_for(schema)]
    assert station_heads(schema, ["synop.t2m"])[0].channel == "t2m"
    with pytest.raises(UnknownVariableError, match=r"\['air_temp', 'synop.t3m'\]: unknown.*'synop.t2m'"):
        station_heads(schema, ["air_temperature", "air_temp", "synop.t3m"])
