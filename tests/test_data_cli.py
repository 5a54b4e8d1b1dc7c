import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from earthgraph.data.cli import main
from earthgraph.data.store import ObservationStore

REPO = Path(__file__).resolve().parents[1]


def test_generate_command_writes_truth_and_observations(tmp_path):
    out = tmp_path / "osse"
    proc = subprocess.run(
        [sys.executable, "-m", "earthgraph.data", "generate", "--out", str(out), "--days", "2", "--nlat", "8",
         "--nlon", "16", "--spinup-days", "1", "--obs-scale", "0.1", "--seed", "4"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    truth = xr.open_zarr(out / "truth.zarr", consolidated=False)
    assert truth.sizes == {"time": 17, "latitude": 8, "longitude": 16}
    assert {"air_temperature", "sea_surface_temperature", "land_surface_temperature", "sea_ice_concentration"} <= set(truth.data_vars)
    store = ObservationStore(out / "obs.zarr")
    assert store.attrs["provenance"]["nature_run"]["seed"] == 4
    assert {n: store.rows(n) for n in store.type_names} == summary["counts"]


def test_generate_refuses_an_unknown_system_before_running_the_nature_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--out", str(tmp_path / "osse"), "--systems", "synop", "radar"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "invalid choice: 'radar'" in err and "soil_moisture" in err, err
    assert not (tmp_path / "osse").exists()


def test_ingest_command_reports_rejections_and_refuses_bad_units(tmp_path):
    table = tmp_path / "station.csv"
    table.write_text("when,t\n2021-01-01T00:00Z,12.5\n2021-01-01T03:00Z,n/a\nnot a time,11.0\n2021-01-01T06:00Z,13.0\n")
    base = [sys.executable, "-m", "earthgraph.data", "ingest", "--store", str(tmp_path / "s.zarr"), "--type", "synop",
            "--file", str(table), "--time", "when", "--fixed-lat", "52.0", "--fixed-lon", "5.7",
            "--meta", "station_id=7"]
    proc = subprocess.run(base + ["--value", "t2m=t", "--units", "t2m=degC"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ("4 rows read, 2 accepted; rejected: unparseable_time 1 (row 3, column 'when': 'not a time'), "
            "missing_value 1 (row 2)") in proc.stdout
    got = ObservationStore(tmp_path / "s.zarr").read("synop", 0, 2**40)
    np.testing.assert_allclose(got["values"][:, 0], [285.65, 286.15], atol=1e-4)
    assert got["station_id"].tolist() == [7.0, 7.0]

    proc = subprocess.run(base + ["--value", "t2m=t", "--units", "t2m=m s-1"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    assert "station.csv, column 't': cannot convert units 'm s-1' to 'K'" in proc.stderr and "unchanged" in proc.stderr
    assert ObservationStore(tmp_path / "s.zarr").rows("synop") == 2
