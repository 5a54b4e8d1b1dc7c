"""Scoring forecasts of any size: chunk by chunk of initialisations, in bounded memory, equal
to the in-memory path; inputs at fsspec URLs; --out; --scheduler on a dask.distributed
cluster (--device: tests/test_evaluate.py). Real zarr stores on disk, no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from zarr.codecs import ZstdCodec

from earthgraph.evaluate import EvaluationError
from earthgraph.evaluate.cli import run
from earthgraph.scoring import baselines, chunked, evaluation
from earthgraph.scoring.climatology import hourly_dayofyear_climatology, smoothed_dayofyear_mean
from earthgraph.scoring.regions import standard_regions

ROOT = Path(__file__).resolve().parents[1]
KEY = ["forecast", "variable", "region", "lead_hours", "metric"]

# The memory cap of the scoring subprocess is on its data segment, RLIMIT_DATA: private writable
# memory (heap, anonymous mappings, where numpy's arrays live); an allocation beyond it raises
# MemoryError. RLIMIT_AS does not bind reliably here: it counts all address space, shared
# libraries' code and the PROT_NONE reservations of malloc arenas (64 MiB each) too, so what fails
# first varies (measured: at 400 MiB `import dask` failed, at 600 MiB 20 MiB could be allocated).
# The interpreter with numpy, xarray, dask, zarr, matplotlib and pyarrow takes about 450 MiB of
# RLIMIT_DATA (thread stacks and allocator reservations count, touched or not).
CAP_MIB = 512
N_INIT = 2400  # 12-hourly initialisations, 3.3 years: the forecast is 600 MiB uncompressed


def _write(ds: xr.Dataset, path: Path, chunks: dict[str, int]) -> None:
    """Zarr with zstd, chunked along time (the whole grid per chunk)."""
    enc = {v: {"compressors": [ZstdCodec(level=1)],
               "chunks": tuple(chunks.get(d, ds.sizes[d]) for d in ds[v].dims)} for v in ds.data_vars}
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False, encoding=enc)


def write_stores(root: Path, n_init: int, nlat: int = 64, nlon: int = 128,
                 variables: tuple[str, ...] = ("t2m", "z500")) -> dict[str, int]:
    """A forecast (float64, leads 12 and 24 h), its truth (float32, 12-hourly) and a WB2
    climatology (hours 0 and 12) on one grid, cheap on disk: smooth travelling waves plus a
    little noise, on a 1/64 grid of values (so the low mantissa bytes are zero and zstd
    compresses them). Returns the uncompressed sizes, bytes."""
    lat = np.linspace(-90 + 90 / nlat, 90 - 90 / nlat, nlat)
    lon = np.arange(nlon) * 360.0 / nlon
    times = np.datetime64("2020-01-01T00", "ns") + np.timedelta64(12, "h") * np.arange(n_init + 2)
    days = (times - times[0]) / np.timedelta64(1, "D")
    la, lo = np.radians(lat)[None, :, None], np.radians(lon)[None, None, :]
    rng = np.random.default_rng(0)
    truth, fc = {}, {}
    for i, v in enumerate(variables):
        field = (280.0 + 20 * np.cos(la) ** 2 + 5 * np.cos(la) * np.sin((i + 2) * lo + 0.7 * days[:, None, None])
                 + 2 * np.sin(2 * np.pi * days / 365.25)[:, None, None])
        field = np.round(field * 64) / 64
        truth[v] = (("time", "latitude", "longitude"), field.astype(np.float32))
        f = np.stack([field[1:n_init + 1], field[2:n_init + 2]], axis=1)  # the truth at init + lead ...
        f += 0.25 + 0.25 * np.cos(3 * lo)[:, None]  # ... with a bias and a pattern ...
        f += rng.integers(-2, 3, size=f.shape, dtype=np.int8) / 64  # ... and a little noise
        fc[v] = (("time", "prediction_timedelta", "latitude", "longitude"), f)
    grid = {"latitude": lat, "longitude": lon}
    truth = xr.Dataset(truth, coords={**grid, "time": times})
    fc = xr.Dataset(fc, coords={**grid, "time": times[:n_init],
                                "prediction_timedelta": np.array([12, 24], "timedelta64[h]").astype("m8[ns]")})
    doy = np.arange(1, 367)
    seasonal = np.broadcast_to(280.0 + 20 * np.cos(la) ** 2 + 2 * np.sin(2 * np.pi * doy / 365.25)[:, None, None],
                               (366, nlat, nlon))
    clim = xr.Dataset({v: (("hour", "dayofyear", "latitude", "longitude"),
                           np.stack([seasonal, seasonal + 0.5]).astype(np.float32)) for v in variables},
                      coords={**grid, "hour": [0, 12], "dayofyear": doy})
    _write(truth, root / "truth.zarr", {"time": 16})
    _write(fc, root / "fc.zarr", {"time": 8})
    _write(clim, root / "clim.zarr", {"dayofyear": 61})
    return {"forecast": fc.nbytes, "truth": truth.nbytes}


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _start_capped(code: str, cap_bytes: int, timeout: float) -> tuple[subprocess.Popen, float]:
    """Start ``code`` in a fresh interpreter whose data segment it first caps at ``cap_bytes``
    (before any import); it prints one JSON line: what ``code`` put in ``out``, ``error``
    "MemoryError" if it ran out, and its peak resident memory ``peak_mib``: VmHWM, the
    high-water mark of its own memory since exec (ru_maxrss would not do: Linux carries the
    parent's maximum over to a forked child, here the pytest process's gigabytes).

    glibc is told to keep two malloc arenas and to hand every array of 1 MiB or more back to
    the kernel when freed (a fixed mmap threshold), so that the cap counts what is in use and
    not what the allocator keeps for later; OpenBLAS to use one thread (the dask threads and
    the parent share the two cores: spinning BLAS threads would only wait for each other)."""
    script = "\n".join([
        "import json, resource, sys",
        f"resource.setrlimit(resource.RLIMIT_DATA, ({cap_bytes}, {cap_bytes}))",
        f"sys.path.insert(0, {str(ROOT)!r})",
        "out = {}",
        "try:",
        textwrap.indent(textwrap.dedent(code).strip(), "    "),
        "except MemoryError:",
        "    out['error'] = 'MemoryError'",
        "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')][0]",
        "out['peak_mib'] = int(hwm.split()[1]) / 1024",
        "print(json.dumps(out))"])
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": str(1 << 20), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    return proc, timeout


def _result(started: tuple[subprocess.Popen, float]) -> dict:
    proc, timeout = started
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # a cap far too low can leave a thread pool spinning
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the capped subprocess ran past {timeout} s: {err[-2000:]}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"the capped subprocess printed no result (rc {proc.returncode}): {err[-3000:]}"
    return json.loads(lines[-1])


def _same_scores(a: pd.DataFrame, b: pd.DataFrame, rtol: float) -> float:
    """Assert that two score tables hold the same rows with the same values to ``rtol``
    relative (NaN where NaN); returns the largest relative difference. A score near zero
    (a bias of 1e-9 K) is compared relative to its metric's scale (its largest magnitude
    for that forecast and variable): sums of a few 1e-16 roundings are not 1e-12 of it."""
    m = a.merge(b, on=KEY, suffixes=("_a", "_b"), validate="one_to_one")
    assert len(m) == len(a) == len(b)
    np.testing.assert_array_equal(np.isnan(m.value_a), np.isnan(m.value_b))
    scale = m.assign(magnitude=abs(m.value_a)).groupby(["forecast", "variable", "metric"]).magnitude.transform("max")
    ok = np.isfinite(m.value_a) & (scale > 0)
    rel = (abs(m.value_b - m.value_a) / np.maximum(abs(m.value_a), scale))[ok]
    assert (rel <= rtol).all(), m[ok][rel > rtol].assign(rel=rel[rel > rtol]).head()
    return float(rel.max())


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    root = tmp_path_factory.mktemp("large")
    sizes = write_stores(root, N_INIT)
    return root, sizes


def test_a_forecast_larger_than_the_memory_cap_is_scored_under_it_as_in_memory(large, tmp_path):
    root, sizes = large
    cap = CAP_MIB << 20
    assert sizes["forecast"] > cap, "the forecast must not fit under the cap"
    # persistence: the truth at the initialisations, chunk by chunk; acc: the climatology at
    # the valid times, chunk by chunk (its baseline would only add time).
    args = ["--forecast", str(root / "fc.zarr"), "--truth", str(root / "truth.zarr"),
            "--climatology", str(root / "clim.zarr"), "--regions", "global", "tropics", "--baselines", "persistence"]
    # Scored chunk by chunk under the cap (in a subprocess) while the parent scores the same
    # data in memory, as one chunk: the two cores work at once. The control: under the same
    # cap, the forecast cannot even be loaded whole.
    capped = _start_capped(f"""
        from earthgraph.evaluate.cli import run
        run({args + ["--out", str(tmp_path / "capped"), "--chunk-inits", "32"]!r})
        out["scored"] = True
    """, cap, timeout=240)
    control = _start_capped(f"""
        import xarray as xr
        xr.open_zarr({str(root / "fc.zarr")!r}, consolidated=False).load()
    """, cap, timeout=120)
    run(args + ["--out", str(tmp_path / "memory"), "--chunk-inits", str(N_INIT)])
    chunks, whole = _result(capped), _result(control)
    assert chunks.get("scored") and "error" not in chunks, chunks
    assert whole.get("error") == "MemoryError", whole
    worst = _same_scores(pd.read_csv(tmp_path / "memory" / "scores.csv"),
                         pd.read_csv(tmp_path / "capped" / "scores.csv"), rtol=1e-10)
    table = pd.read_csv(tmp_path / "capped" / "scores.csv")
    assert set(table.forecast) == {"fc", "persistence"} and {"acc", "rmse"} <= set(table.metric)
    print(f"\ncap: RLIMIT_DATA {CAP_MIB} MiB; forecast {sizes['forecast'] / 2**20:.0f} MiB and truth "
          f"{sizes['truth'] / 2**20:.0f} MiB uncompressed ({_disk_bytes(root / 'fc.zarr') / 2**20:.0f} and "
          f"{_disk_bytes(root / 'truth.zarr') / 2**20:.0f} MiB on disk); scored in chunks of 32 initialisations "
          f"with peak RSS (VmHWM) {chunks['peak_mib']:.0f} MiB; loading the forecast whole under the cap: "
          f"MemoryError at {whole['peak_mib']:.0f} MiB; largest relative difference to the in-memory scores {worst:.1e}")


def _forecast_case(members: int, gaps: bool) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset, xr.DataArray]:
    """A forecast with levels, a wind pair, ``members`` members (0: deterministic) and
    (``gaps``) a truth whose gaps move, with its truth, climatology and verified pairs."""
    rng = np.random.default_rng(5)
    lat, lon = np.linspace(-80, 80, 9), np.arange(0, 360, 30.0)
    init = pd.date_range("2020-01-01", periods=11, freq="12h").values
    leads = pd.to_timedelta([12, 24, 48], unit="h").values
    times = pd.date_range("2019-12-31", periods=20, freq="12h").values
    dims = ("time", "level", "latitude", "longitude")
    shape = (len(times), 2, len(lat), len(lon))
    coords = {"time": times, "level": [500, 850], "latitude": lat, "longitude": lon}
    truth = xr.Dataset({v: (dims, 280 + rng.normal(size=shape)) for v in
                        ("t", "u_component_of_wind", "v_component_of_wind")}, coords=coords)
    if gaps:
        truth["t"] = truth.t.where(rng.random(shape) > 0.1)
    aligned = baselines.align_truth(truth, init, leads)
    fc = [aligned + xr.DataArray(rng.normal(size=aligned.t.shape), dims=aligned.t.dims) for _ in range(max(members, 1))]
    if members:
        fc = xr.concat(fc, dim="realization").transpose("time", "prediction_timedelta", "realization", ...)
    else:
        fc = fc[0]
    clim = truth.mean("time").expand_dims(dayofyear=np.arange(1, 367)).copy()
    scored = baselines.verification_pairs(init, leads, ("2020-01-02", "2020-01-06"), times)
    return fc, truth, clim, scored


@pytest.mark.parametrize(("members", "gaps"), [(2, False), (0, True)])
def test_chunks_of_any_size_give_the_in_memory_scores(members, gaps):
    fc, truth, clim, scored = _forecast_case(members, gaps)
    regions = standard_regions(names=["global", "tropics", "arctic"])
    variables = list(fc.data_vars)
    init, leads = fc.time.values, fc.prediction_timedelta.values
    aligned = baselines.align_truth(truth, init, leads, scored=scored)
    reference = {"model": evaluation.score_forecast(fc, aligned, regions, baselines.climatology_forecast(
                     clim, init, leads), variables, True, scored),
                 "persistence": evaluation.score_forecast(baselines.persistence(truth, init, leads), aligned, regions,
                                                          baselines.climatology_forecast(clim, init, leads),
                                                          variables, True, scored)}
    forecasts = {"model": fc, "persistence": "persistence"}
    for size in (None, 2):  # the in-memory path; uneven chunks (11 initialisations)
        got = chunked.score_forecasts(forecasts, truth, clim, scored, regions, variables, chunk_inits=size)
        assert list(got) == ["model", "persistence"]
        for name, ref in reference.items():
            assert list(got[name].data_vars) == list(ref.data_vars) == variables + ["wind_vector"]
            for var in ref.data_vars:
                assert got[name][var].dims == ref[var].dims and got[name][var].attrs == ref[var].attrs
                assert list(got[name][var].metric.values) == list(ref[var].metric.values)
                if size is None:  # one chunk: the in-memory path itself, bit for bit
                    assert got[name][var].values.tobytes() == ref[var].values.tobytes(), (name, var)
                else:
                    np.testing.assert_allclose(got[name][var].values, ref[var].values, rtol=1e-12)
    assert ("crps" in reference["model"].metric.values) == bool(members)
    assert np.isfinite(reference["model"]["t"].values).any()
    with pytest.raises(ValueError, match="forecast 'c' is the climatology, and none was given"):
        chunked.score_forecasts({"c": "climatology"}, truth, None, scored, regions, variables)


def test_the_climatology_streams_a_long_record_a_year_at_a_time(tmp_path):
    """Computed from a lazily opened 20-year truth, it needs far less memory than the record
    and equals the in-memory computation bit for bit."""
    times = pd.date_range("2000-01-01", "2019-12-31", freq="D")
    lat, lon = np.linspace(-80, 80, 16), np.arange(0, 360, 11.25)
    rng = np.random.default_rng(2)
    days = np.asarray(times.dayofyear, float)
    values = (10 * np.sin(2 * np.pi * days / 365.25)[:, None, None] + rng.normal(size=(len(times), 16, 32)))
    truth = xr.Dataset({"t": (("time", "latitude", "longitude"), values.astype(np.float32))},
                       coords={"time": times.values, "latitude": lat, "longitude": lon})
    _write(truth, tmp_path / "truth.zarr", {"time": 30})
    record = truth.t.size * 8  # the record in float64, as an in-memory computation holds it
    lazy = xr.open_zarr(tmp_path / "truth.zarr", consolidated=False, chunks={})
    hourly_dayofyear_climatology(lazy, ("2000-01-01", "2000-12-31"))  # the imports and caches of a first read
    tracemalloc.start()
    clim = hourly_dayofyear_climatology(lazy, ("2000-01-01", "2019-12-31"), read_whole_bytes=0)  # stream it
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.5 * record, (peak, record)  # measured: 12 MB against the record's 30 MB
    direct = smoothed_dayofyear_mean(values.astype(np.float32).astype(np.float64), times)
    assert clim.t.values[0].tobytes() == direct.astype(np.float32).tobytes()
    whole = hourly_dayofyear_climatology(lazy, ("2000-01-01", "2019-12-31"))  # 15 MB: read in one go
    assert whole.t.values.tobytes() == clim.t.values.tobytes()
    assert clim.t.dims == ("hour", "dayofyear", "latitude", "longitude")


def _small_forecast(small_osse, path: Path | str) -> None:
    """A WB2 forecast from the small OSSE's truth: its values 6 h after the valid time."""
    out, _ = small_osse
    truth = xr.open_zarr(out / "truth.zarr", consolidated=False)
    init = truth.time.values[8:40:4]
    leads = pd.to_timedelta([12, 24], unit="h").values
    src = xr.DataArray(init[:, None] + leads[None, :] + np.timedelta64(6, "h"), dims=("time", "prediction_timedelta"))
    fc = truth[["air_temperature", "u_component_of_wind", "v_component_of_wind", "sea_surface_temperature"]]
    fc = fc.sel(time=src).drop_vars("time").assign_coords(time=init, prediction_timedelta=leads)
    fc.transpose("time", "prediction_timedelta", ...).to_zarr(path, mode="w", consolidated=False)


SMALL = ["--climatology-period", "2020-03-01", "2020-03-12", "--regions", "global", "tropics", "land", "--baselines",
         "persistence", "climatology"]


def test_inputs_open_from_fsspec_urls(small_osse, tmp_path):
    import fsspec

    out, _ = small_osse
    _small_forecast(small_osse, tmp_path / "fc.zarr")
    local = run(["--forecast", str(tmp_path / "fc.zarr"), "--truth", str(out / "truth.zarr"),
                 "--store", str(out / "obs.zarr"), "--out", str(tmp_path / "local"), *SMALL]).table
    memory = fsspec.filesystem("memory")
    memory.put(str(tmp_path / "fc.zarr"), "/urltest/fc.zarr", recursive=True)
    memory.put(str(out / "obs.zarr"), "/urltest/obs.zarr", recursive=True)
    truth = xr.open_zarr(out / "truth.zarr", consolidated=False)  # the climatology the local run computes
    hourly_dayofyear_climatology(truth, ("2020-03-01", "2020-03-12")).to_zarr("memory://urltest/clim.zarr")
    via_urls = run(["--forecast", "memory://urltest/fc.zarr", "--truth", (out / "truth.zarr").as_uri(),
                    "--store", "memory://urltest/obs.zarr", "--climatology", "memory://urltest/clim.zarr",
                    "--storage-options", "{}", "--out", str(tmp_path / "urls"), *SMALL]).table
    # The same numbers (in another row order: fsspec lists a store's arrays sorted, the disk as it lists them).
    assert _same_scores(local, via_urls, rtol=0) == 0
    obs = [pd.read_csv(tmp_path / d / "obs_space.csv").sort_values(["obs_type", "channel", "region", "lead_hours"],
                                                                    ignore_index=True) for d in ("local", "urls")]
    pd.testing.assert_frame_equal(obs[0], obs[1], check_exact=True)
    assert set(via_urls.forecast) == set(local.forecast) == {"fc", "persistence", "climatology"}
    with pytest.raises(EvaluationError, match="forecast memory://urltest/nothing.zarr does not exist"):
        run(["--forecast", "memory://urltest/nothing.zarr", "--truth", str(out / "truth.zarr"),
                       "--out", str(tmp_path / "none"), *SMALL])
    memory.rm("/urltest", recursive=True)


def test_out_defaults_to_a_new_folder_and_an_earlier_run_is_never_overwritten(small_osse, tmp_path, monkeypatch):
    out, _ = small_osse
    _small_forecast(small_osse, tmp_path / "fc.zarr")
    args = ["--forecast", str(tmp_path / "fc.zarr"), "--truth", str(out / "truth.zarr"), *SMALL, "--baselines",
            "persistence", "--variables", "air_temperature"]
    monkeypatch.chdir(tmp_path)
    run(args)
    run(args)
    runs = sorted((tmp_path / "outputs" / "evaluate").iterdir())
    assert len(runs) == 2 and all(r.name.startswith("fc-") and (r / "scores.csv").exists() for r in runs)
    with pytest.raises(EvaluationError, match="holds an earlier evaluation's results .*scores.csv.*--overwrite"):
        run([*args, "--out", str(runs[0])])
    before = (runs[0] / "scores.csv").stat().st_mtime_ns
    run([*args, "--out", str(runs[0]), "--overwrite"])
    assert (runs[0] / "scores.csv").stat().st_mtime_ns > before
    beside = tmp_path / "beside_a_checkpoint"  # a folder with other files, but no results, is fine
    beside.mkdir()
    (beside / "last.ckpt").write_bytes(b"x")
    run([*args, "--out", str(beside)])
    assert (beside / "scores.csv").exists() and (beside / "last.ckpt").read_bytes() == b"x"


def test_scoring_on_a_dask_distributed_cluster_gives_the_same_scores(small_osse, tmp_path):
    from distributed import LocalCluster

    out, _ = small_osse
    _small_forecast(small_osse, tmp_path / "fc.zarr")
    args = ["--forecast", str(tmp_path / "fc.zarr"), "--truth", str(out / "truth.zarr"), *SMALL, "--chunk-inits", "3"]
    run([*args, "--out", str(tmp_path / "threads")])
    with LocalCluster(n_workers=1, processes=False, threads_per_worker=2, dashboard_address=None) as cluster:
        run([*args, "--out", str(tmp_path / "cluster"), "--scheduler", cluster.scheduler_address])
        assert "chunk_terms" in cluster.scheduler.task_prefixes  # the chunks were scored on its worker
    assert (tmp_path / "cluster" / "scores.csv").read_bytes() == (tmp_path / "threads" / "scores.csv").read_bytes()
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), \
            pytest.raises(EvaluationError, match="--scheduler tcp://127.0.0.1:1: cannot connect"):
        run([*args, "--out", str(tmp_path / "nowhere"), "--scheduler", "tcp://127.0.0.1:1"])


def test_without_dask_distributed_the_scheduler_option_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['distributed'] = None; sys.path.insert(0, %r); "
            "from earthgraph.evaluate.cli import main; "
            "sys.exit(main(['--forecast', 'x.zarr', '--out', %r, '--scheduler', 'tcp://127.0.0.1:8786']))"
            % (str(ROOT), str(tmp_path / "x")))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "--scheduler needs dask.distributed: pip install 'earthgraph[distributed]'" in run.stderr
