import json
import subprocess
import sys
from pathlib import Path

import xarray as xr

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
