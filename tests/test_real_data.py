"""A real station record through the whole path, as the README's "Your own observations" walks it:
declare the type, ingest with statics, train, forecast at the station, score with intervals.

The record is Wageningen's daily weather 1976-1999, from the pcse wheel this test downloads from
PyPI (skipped, saying why, when it cannot).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import download_from_pypi

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "wageningen"


@pytest.fixture(scope="module")
def wageningen_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("pcse")
    wheel = download_from_pypi("pcse==6.0.13", d, "pcse-*.whl", "pcse (Wageningen's station record)")
    spec = importlib.util.spec_from_file_location("cabo_to_csv", EXAMPLE / "cabo_to_csv.py")
    cabo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cabo)
    table = cabo.wheel_record(wheel)
    path = d / "wageningen.csv"
    table.to_csv(path, index=False)
    return path, table


def _train_a_small_model(dm, steps: int, checkpoint: Path) -> None:
    """A few steps of a small model on ``dm`` with a real Trainer, saved at ``checkpoint``."""
    import lightning as L

    from earthgraph.models import ForecasterConfig
    from earthgraph.training.module import ForecastModule

    forecaster = ForecasterConfig(window_hours=dm.window_hours, nside=4, latent_dim=32, hidden_dim=32,
                                  processor_layers=2)
    module = ForecastModule(schema=dm.schema, static=dm.static, forecaster=forecaster, warmup_steps=5)
    trainer = L.Trainer(max_steps=steps, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, dm)
    trainer.save_checkpoint(checkpoint)


def test_the_cabo_record_reads_as_24_years_of_daily_reports(wageningen_csv):
    _, table = wageningen_csv
    times = pd.to_datetime(table.time)
    assert times.min() == pd.Timestamp("1976-01-01T12:00Z") and times.max() == pd.Timestamp("1999-12-31T12:00Z")
    assert times.is_monotonic_increasing and not times.duplicated().any(), "flag rows are not reports"
    assert len(table) > 8600
    assert -25 < table.tmin.min() and table.tmax.max() < 40 and (table.tmin <= table.tmax + 1e-9).all()


def test_a_real_station_is_declared_ingested_trained_forecast_and_scored(wageningen_csv, tmp_path):
    import lightning as L

    from earthgraph.evaluate.cli import run
    from earthgraph.data.ingest import TableSpec, ingest_tables
    from earthgraph.data.store_statics import store_statics
    from earthgraph.data.store import ObservationStore
    from earthgraph.data.type_files import read_types
    from earthgraph.training.datamodule import ObservationDataModule

    csv, _ = wageningen_csv
    store = tmp_path / "obs.zarr"
    spec = TableSpec(values={"t_min": "tmin", "t_max": "tmax", "vapour_pressure": "vapour_pressure",
                             "wind_speed": "wind", "precipitation": "rain"},
                     units={"t_min": "degC", "t_max": "degC", "vapour_pressure": "kPa", "precipitation": "mm"},
                     metadata={"station_id": "station"})
    (report,) = ingest_tables(store, "daily_station", [(csv, spec)], types=read_types(EXAMPLE / "types.yaml"),
                              static=store_statics("synthetic"))
    assert report.rows_accepted == report.rows_read, str(report)
    assert ObservationStore(store).codes("daily_station") == {"station_id": ["NL-Wageningen"]}

    L.seed_everything(0)
    dm = ObservationDataModule(str(store), ("1976-01-01", "1994-01-01"), ("1994-01-01", "1996-01-01"),
                               ("1996-01-01", "2000-01-01"), window_hours=24, input_windows=4, rollout=2,
                               batch_size=16, stride_hours=24, types=str(EXAMPLE / "types.yaml"))
    _train_a_small_model(dm, 40, tmp_path / "model.ckpt")

    out = tmp_path / "scores"
    run(["--checkpoint", str(tmp_path / "model.ckpt"), "--store", str(store), "--stations-obs", str(store),
         "--data-dir", str(tmp_path), "--period", "1998-01-01", "1999-01-01", "--by", "init",
         "--init-every-hours", "24", "--leads", "12", "36", "--persistence-max-age-hours", "24",
         "--bootstrap-resamples", "300", "--out", str(out)])
    table = pd.read_csv(out / "station_scores.csv", dtype={"station": str})
    scores = table[(table.region == "global") & table.reference.isna() & (table.metric == "rmse")]
    rmse = scores.set_index(["forecast", "variable", "lead_hours"]).value
    assert set(rmse.index.get_level_values("forecast")) == {"earthgraph", "persistence", "climatology"}
    # The real record's own baselines, as a forecaster knows them for a mid-latitude station: the
    # next day's maximum temperature is 2-3.5 K from today's, 3-5 K from the climatology.
    assert 2.0 < rmse[("persistence", "max_temperature", 12.0)] < 3.5
    assert 3.0 < rmse[("climatology", "max_temperature", 12.0)] < 5.0
    assert np.isfinite(rmse[("earthgraph", "max_temperature", 36.0)])
    count = table[(table.region == "global") & (table.metric == "count") & table.reference.isna()]
    assert (count.value >= 360).all(), "a year of daily initialisations, every one paired"
    diffs = table[(table.reference == "persistence") & (table.region == "global") & (table.metric == "rmse")]
    assert len(diffs) == 2 * 4 * 2, "earthgraph and climatology, four variables, two leads"
    assert (diffs.lower <= diffs.upper).all() and (diffs.n_inits >= 360).all()
    assert diffs.block_length.notna().all()


@pytest.fixture(scope="module")
def navy_winds(tmp_path_factory):
    """The US Navy's monthly surface winds 1982-1992 (2.5 degrees, public domain), from Debian's
    ferret-datasets package, unpacked without installing it."""
    import shutil
    import subprocess

    d = tmp_path_factory.mktemp("ferret")
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("apt-get/dpkg-deb not on this machine: Debian's ferret-datasets (real winds) cannot be fetched")
    try:
        subprocess.run(["apt-get", "download", "ferret-datasets"], cwd=d, check=True, capture_output=True, timeout=300)
        deb = next(d.glob("ferret-datasets_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(d / "x")], check=True, capture_output=True, timeout=300)
    except (subprocess.SubprocessError, StopIteration, OSError) as e:
        pytest.skip(f"Debian's ferret-datasets could not be downloaded ({type(e).__name__}); real-winds test skipped")
    return d / "x" / "usr" / "share" / "ferret-vis" / "data" / "monthly_navy_winds.cdf"


def test_a_real_gridded_file_is_observed_trained_and_verified_at_moorings(navy_winds, tmp_path):
    import lightning as L

    from earthgraph.evaluate.cli import run
    from earthgraph.data.cli import main as data_cli
    from earthgraph.data.store import ObservationStore
    from earthgraph.training.datamodule import ObservationDataModule

    rename = ["--rename", "UWND=u_component_of_wind", "--rename", "VWND=v_component_of_wind"]
    store = tmp_path / "obs.zarr"
    assert data_cli(["observe", "--gridded", str(navy_winds), *rename, "--systems", "amv", "--obs-scale", "0.1",
                     "--statics", "synthetic", "--period", "1982-02-01", "1983-06-01", "--out", str(store)]) == 0
    amv = ObservationStore(store).read("amv", 0, 2**40)
    assert len(amv["time"]) > 10_000 and np.nanmax(np.abs(amv["values"])) < 30.0, "surface winds, m/s"

    spec = importlib.util.spec_from_file_location("moorings", REPO / "examples" / "navy_winds" / "moorings.py")
    moorings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(moorings)
    table = moorings.mooring_table(str(navy_winds), {"UWND": "u_component_of_wind", "VWND": "v_component_of_wind"})
    table[table.time < "1983-06-01"].to_parquet(tmp_path / "moorings.parquet")

    L.seed_everything(0)
    dm = ObservationDataModule(str(store), ("1982-02-01", "1983-01-01"), ("1983-01-01", "1983-02-01"),
                               ("1983-02-01", "1983-06-01"), rollout=1, batch_size=4, stride_hours=12)
    _train_a_small_model(dm, 30, tmp_path / "model.ckpt")
    out = tmp_path / "scores"
    run(["--checkpoint", str(tmp_path / "model.ckpt"), "--store", str(store), "--data-dir", str(tmp_path),
         "--stations-obs", str(tmp_path / "moorings.parquet"), "--by", "init", "--init-every-hours", "24",
         "--leads", "12", "36", "--persistence-max-age-hours", "24", "--bootstrap-resamples", "200",
         "--out", str(out)])
    scores = pd.read_parquet(out / "station_scores.parquet")
    glob = scores[(scores.region == "global") & scores.reference.isna()]
    rmse = glob[glob.metric == "rmse"].set_index(["forecast", "variable", "lead_hours"]).value
    assert set(rmse.index.get_level_values("forecast")) == {"earthgraph", "persistence", "climatology"}
    # Daily reports of monthly winds: persistence errs by about the reports' own error, sqrt(2) x 0.5 m/s.
    assert 0.5 < rmse[("persistence", "u_component_of_wind", 12.0)] < 1.2
    assert np.isfinite(rmse[("earthgraph", "u_component_of_wind", 36.0)])
    diffs = scores[(scores.reference == "persistence") & (scores.metric == "rmse") & (scores.region == "global")]
    assert len(diffs) == 2 * 2 * 2, "earthgraph and climatology, two variables, two leads"
    assert diffs.block_length.notna().all() and (diffs.lower <= diffs.upper).all()
