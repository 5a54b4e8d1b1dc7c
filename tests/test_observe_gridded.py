"""`python -m earthgraph.data observe`: an OSSE on a user's gridded file, streamed in bounded memory."""

import json
import re
import resource
import subprocess
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from earthgraph.data import obs_types
from earthgraph.data.cli import main
from earthgraph.data.generate import observe_gridded
from earthgraph.data.gridded import open_gridded, time_step_warning
from earthgraph.data.observing import ObservingConfig, ObservingNetwork, systems_for
from earthgraph.data.sampler import TruthSampler
from earthgraph.data.store import ObservationStore
from earthgraph.data.store_writer import StoreWriter
from test_gridded import era5_sample  # noqa: F401  (a module fixture, shared by import: conftest.py is not ours)

REPO = Path(__file__).resolve().parents[1]


def _fields(hours, lat=None, lon=None) -> xr.Dataset:
    """ERA5-named surface fields (t2m in K, sst in degC, NaN over land, siconc) and an lsm."""
    lat = np.arange(-87.5, 90, 5.0) if lat is None else lat
    lon = np.arange(0.0, 360.0, 5.0) if lon is None else lon
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    land = ((np.abs(la) < 50) & (lo < 100)) | (la < -70)
    h = np.asarray(hours, np.float64)[:, None, None]
    t2m = 290 - 30 * np.sin(np.radians(la)) ** 2 + 3 * np.sin(2 * np.pi * h / 24 + np.radians(lo))
    sst = np.where(land, np.nan, 27 - 30 * np.sin(np.radians(la)) ** 2 + 0.01 * h)
    ice = np.where(land, np.nan, np.clip((np.abs(la) - 60) / 20, 0, 1) + 0 * h)
    dims = ("time", "latitude", "longitude")
    return xr.Dataset(
        {"t2m": (dims, t2m.astype(np.float32), {"units": "K"}),
         "sst": (dims, sst.astype(np.float32), {"units": "degC"}),
         "siconc": (dims, ice.astype(np.float32), {"units": "(0-1)"}),
         "lsm": (("latitude", "longitude"), land.astype(np.float32), {"units": "(0-1)"})},
        coords={"time": pd.Timestamp("2021-06-01") + pd.to_timedelta(np.asarray(hours), "h"),
                "latitude": lat, "longitude": lon})


def open_gridded_like(ds: xr.Dataset) -> xr.Dataset:
    """ERA5 names to earthgraph's, as open_gridded does for a file (without the file)."""
    return ds.rename(t2m="air_temperature", sst="sea_surface_temperature", siconc="sea_ice_concentration",
                     lsm="land_sea_mask")


def _arrays(path) -> dict[str, np.ndarray]:
    out = {}

    def walk(g, prefix):
        for k, a in g.arrays():
            out[prefix + k] = a[...]
        for k, sub in g.groups():
            walk(sub, prefix + k + "/")

    walk(zarr.open_group(str(path), mode="r"), "")
    return out


def test_the_cli_observes_the_ecmwf_era5_sample(era5_sample, tmp_path, capsys):
    """The sample holds 850/500 hPa t and z of 10 members, 12-hourly, and no 2 m temperature
    nor land-sea mask: member 0's 850 hPa temperature stands in for t2m (ERA5's short name),
    the land-sea mask comes from --statics synthetic."""
    src = xr.open_dataset(era5_sample)
    t = src["t"].sel(isobaricInhPa=850.0, number=0).drop_vars(["isobaricInhPa", "number", "step", "valid_time"])
    xr.Dataset({"t2m": t}).to_netcdf(tmp_path / "era5_t2m.nc")
    out = tmp_path / "obs.zarr"
    rc = main(["observe", "--gridded", str(tmp_path / "era5_t2m.nc"), "--out", str(out), "--statics", "synthetic",
               "--obs-scale", "0.5", "--seed", "1"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["time_range"] == ["2017-01-01T00:00:00", "2017-01-02T12:00:00"]
    assert "era5_t2m.nc: time step 12 h, longer than 6 h" in captured.err, "coarse time steps are warned about"
    assert "diurnal cycle" in captured.err

    store = ObservationStore(out)
    assert store.type_names == ["synop"] and store.rows("synop") == summary["counts"]["synop"] > 500
    static = store.static()
    assert static["land_sea_mask"].shape == (90, 180) and "geopotential_at_surface" in static, "statics' own grid"
    obs = store.read("synop", *store.time_range)
    # An independent reference: xarray's linear interpolation in time, latitude and longitude.
    field = t.sortby("latitude")
    field = xr.concat([field, field.isel(longitude=0).assign_coords(longitude=360.0)], "longitude")
    pts = dict(time=xr.DataArray(obs["time"].astype("datetime64[s]").astype("datetime64[ns]"), dims="obs"),
               latitude=xr.DataArray(obs["lat"], dims="obs"), longitude=xr.DataArray(obs["lon"] % 360.0, dims="obs"))
    dep = obs["values"][:, 0] - field.interp(**pts).values
    assert abs(dep.mean()) < 0.1 and 0.9 < dep.std() < 1.1, (dep.mean(), dep.std())  # synop error: 1 K
    assert len(np.unique(obs["time"] % 43200)) == 4, "3-hourly reports between the 12-hourly steps"


def _observe_all_in_memory(truth: xr.Dataset, store: Path, config: ObservingConfig, chunk_hours: float) -> None:
    """The reference: the same chunks and systems as observe_gridded, with every step of the
    loaded fields held at once (one window over the whole record, never moved)."""
    network = ObservingNetwork(truth.load(), config)
    t0, t1 = network.sampler.t_start, network.sampler.t_end
    network.sampler.hold(t0, t1 + 1.0)
    systems = systems_for(truth)
    with StoreWriter(store, [obs_types.get(n) for n in systems]) as writer:
        writer.add_static(truth.latitude.values, truth.longitude.values,
                          {"land_sea_mask": truth["land_sea_mask"].values})
        t = t0
        while t < t1:
            b = min(t + chunk_hours * 3600.0, t1)
            for name in systems:
                writer.append(name, network.observe(name, t, b))
            t = b
    assert network.sampler._held == (0, truth.sizes["time"] - 1), "the window never moved"


def test_streamed_chunks_give_the_same_store_as_fields_in_memory(tmp_path):
    """Irregular steps, a field NaN over land, 12-hour chunks: a dask-backed zarr (one step per
    chunk) streamed window by window gives, byte for byte, the store of the whole record held
    in memory at once."""
    hours = [0, 3, 6, 9, 12, 18, 24, 27, 30, 36, 42, 48, 60, 66, 72]
    _fields(hours).to_zarr(tmp_path / "f.zarr", zarr_format=3, consolidated=False,
                           encoding={v: {"chunks": (1, 36, 72)} for v in ("t2m", "sst", "siconc")})
    lazy = open_gridded(tmp_path / "f.zarr")
    assert lazy["air_temperature"].chunks is not None, "opened lazily"
    config = ObservingConfig(scale=0.3, seed=4)
    summary = observe_gridded(lazy, tmp_path / "a.zarr", config, chunk_hours=12, show_progress=False)
    _observe_all_in_memory(lazy, tmp_path / "b.zarr", config, chunk_hours=12)
    assert set(summary["counts"]) == {"synop", "drifter", "seaice_conc"}
    assert min(summary["counts"].values()) > 100, summary["counts"]
    x, y = _arrays(tmp_path / "a.zarr"), _arrays(tmp_path / "b.zarr")
    assert x.keys() == y.keys()
    for k in x:
        assert x[k].dtype == y[k].dtype and x[k].tobytes() == y[k].tobytes(), k


def test_a_held_window_holds_exactly_the_steps_its_chunk_needs():
    hours = np.arange(0, 97)
    truth = open_gridded_like(_fields(hours).chunk({"time": 1}))
    s = TruthSampler(truth)
    t0 = s.t_start + 24 * 3600.0
    assert s.hold(t0, t0 + 24 * 3600.0) == (24, 48), "the chunk's 24 steps and the next one"
    rng = np.random.default_rng(0)
    t = rng.uniform(t0, t0 + 24 * 3600.0, 2000)
    s.sample("air_temperature", t, rng.uniform(-90, 90, 2000), rng.uniform(-180, 180, 2000))
    s.sample("air_temperature", np.array([t0, np.nextafter(t0 + 24 * 3600.0, 0)]), np.zeros(2), np.zeros(2))
    assert s.steps_read == 25, "read once, and only the held steps"
    # The next chunk's window: nothing stale from the last one (a fresh sampler agrees).
    s.hold(t0 + 24 * 3600.0, t0 + 48 * 3600.0)
    t2 = t + 24 * 3600.0
    lat, lon = rng.uniform(-90, 90, 2000), rng.uniform(-180, 180, 2000)
    np.testing.assert_array_equal(s.sample("air_temperature", t2, lat, lon),
                                  TruthSampler(truth.load()).sample("air_temperature", t2, lat, lon))
    assert s.steps_read == 50
    s.release()
    assert s._blocks == {}


def test_irregular_time_steps_are_interpolated_between_their_own_neighbours():
    hours = [0, 1, 3, 10, 34]
    truth = open_gridded_like(_fields(hours))
    truth["air_temperature"] = truth["air_temperature"] * 0 + np.asarray(hours, np.float32)[:, None, None]
    s = TruthSampler(truth)
    at = np.array([0.5, 2.0, 5.5, 22.0, 34.0]) * 3600 + s.t_start
    got = s.sample("air_temperature", at, np.zeros(5), np.zeros(5))
    np.testing.assert_allclose(got, [0.5, 2.0, 5.5, 22.0, 34.0], atol=1e-9)
    monthly = np.array(["2021-01-01", "2021-02-01", "2021-03-01", "2021-04-01"], "datetime64[s]").astype(np.int64)
    assert "time steps 28 days to 31 days" in time_step_warning(monthly, "m.nc")
    assert time_step_warning(np.arange(5) * 21600, "six_hourly.nc") is None


@pytest.mark.parametrize("extra, message", [
    (["--systems", "synop", "radar"], r"bad\.nc: unknown system\(s\) \['radar'\]"),
    (["--systems", "snow"], r"bad\.nc: missing variables \{'snow': \['snow_water_equivalent'\]\}"),
    (["--statics", "synthetic", "--period", "2030-01-01", "2030-02-01"],
     r"bad\.nc: period \[2030-01-01, 2030-02-01\) holds no time to observe; its time steps run from "
     r"2021-06-01T00:00:00 to 2021-06-02T00:00:00"),
    ([], r"bad\.nc: no land_sea_mask variable .*--statics synthetic, climt or PATH"),
], ids=["unknown-system", "missing-variable", "empty-period", "no-land-sea-mask"])
def test_wrong_requests_get_one_named_line_and_no_store(tmp_path, capsys, extra, message):
    _fields([0, 6, 12, 18, 24]).drop_vars("lsm").to_netcdf(tmp_path / "bad.nc")
    out = tmp_path / "obs.zarr"
    rc = main(["observe", "--gridded", str(tmp_path / "bad.nc"), "--out", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert re.search(message, err), err
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "bad.nc"], "nothing partial left"


# Run under a cap on the process's data segment (RLIMIT_DATA: heap and private writable
# mappings, where numpy and dask allocate). RLIMIT_AS would count address space that is
# reserved but never used (64 MiB per malloc arena, thread stacks, mapped libraries): a
# streaming observe whose RSS is ~330 MiB already fails at 1000 MiB of RLIMIT_AS to start a thread.
_CAPPED = """
import resource, sys
cap = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
mode, path, out = sys.argv[2:5]
if mode == "observe":
    from earthgraph.data.cli import main
    rc = main(["observe", "--gridded", path, "--out", out, "--systems", "synop", "--obs-scale", "0.2"])
else:  # what the sampler did before it streamed: the whole field read at once
    from earthgraph.data.gridded import open_gridded
    open_gridded(path)["air_temperature"].values
    rc = 0
# VmHWM is this process image's peak RSS. ru_maxrss is reported too, but on Linux exec carries
# over the RSS of the forked parent (here pytest with torch, ~430 MiB), so it overstates the child's.
hwm = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(f"PEAK_RSS {int(hwm) / 1024:.0f} MiB (ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f})")
sys.exit(rc)
"""
CAP_MIB = 768


def _write_big_record(path: Path, steps: int) -> float:
    """An hourly 1-degree t2m record, smooth and quantised to 0.25 K so that zstd packs it
    about 20:1; written chunk by chunk (dask) so this process never holds it. Returns MiB."""
    lat, lon = np.linspace(-90, 90, 181), np.arange(360.0)
    hours = da.arange(steps, chunks=24, dtype=np.float32)
    base = ((280.0 + 25.0 * np.cos(np.radians(lat)))[:, None] * np.ones(360)).astype(np.float32)
    wave = da.sin(2 * np.pi * hours[:, None, None] / 24.0 + np.radians(lon).astype(np.float32)[None, None, :])
    t2m = (da.round((base[None] + 4.0 * wave) * 4) / 4).astype(np.float32)
    land = ((np.abs(lat)[:, None] < 60) & (lon[None, :] < 120)).astype(np.float32)
    ds = xr.Dataset({"t2m": (("time", "latitude", "longitude"), t2m, {"units": "K"}),
                     "lsm": (("latitude", "longitude"), land)},
                    coords={"time": pd.date_range("2001-01-01", periods=steps, freq="h"), "latitude": lat,
                            "longitude": lon})
    codec = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
    ds.to_zarr(path, zarr_format=3, consolidated=False,
               encoding={"t2m": {"compressors": [codec], "chunks": (24, 181, 360)}})
    return t2m.nbytes / 2**20


def _capped(mode: str, path: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _CAPPED, str(CAP_MIB * 2**20), mode, str(path), str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_observing_streams_a_record_larger_than_the_memory_cap(tmp_path):
    hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
    if hard != resource.RLIM_INFINITY and hard < CAP_MIB * 2**20:
        pytest.skip(f"RLIMIT_DATA is already capped below {CAP_MIB} MiB here")
    data_mib = _write_big_record(tmp_path / "big.zarr", steps=3800)
    disk_mib = sum(f.stat().st_size for f in (tmp_path / "big.zarr").rglob("*") if f.is_file()) / 2**20
    assert data_mib > CAP_MIB * 1.2
    run = _capped("observe", tmp_path / "big.zarr", tmp_path / "obs.zarr")
    peak = run.stdout.split("PEAK_RSS")[-1].strip()
    report = (f"RLIMIT_DATA cap {CAP_MIB} MiB, record {data_mib:.0f} MiB uncompressed ({disk_mib:.0f} MiB on disk), "
              f"observe's peak RSS {peak}")
    print(report)
    assert run.returncode == 0, f"{report}\n{run.stderr[-2000:]}"
    assert ObservationStore(tmp_path / "obs.zarr").rows("synop") > 50_000, report
    # The negative control: under the same cap, reading the field whole (the old sampler) fails.
    control = _capped("load", tmp_path / "big.zarr", tmp_path / "unused.zarr")
    assert control.returncode != 0 and "MemoryError" in control.stderr, \
        f"the cap does not bind: {report}; reading it whole gave rc={control.returncode}"
