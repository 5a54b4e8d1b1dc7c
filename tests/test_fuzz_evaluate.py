"""Property-based (fuzz) tests of earthgraph-evaluate's (evaluate.py's) inputs: the forecast, truth and climatology
zarr stores, damaged (chunks and metadata overwritten, truncated, emptied, deleted), out of
order, non-finite or huge, or with wrong coordinates. Every case ends in correct scores or a
named error (an EvaluationError naming the input, its path and the field); never an unhandled
exception, a changed input, results left behind by a failed run, or a value moved.

Real zarr stores on disk (a fresh temporary folder per case), a 4 x 8 grid, 4
initialisations of 2 leads: cheap enough for hypothesis. The ``ci`` profile (default)
replays a fixed set; ``--hypothesis-profile=fuzz`` draws many fresh ones (``make fuzz``).

Byte corruption inside a chunk is only detectable where the store carries checksums (the
crc32c codec) or the damage breaks the codec: a zstd frame without a checksum can decode
into other numbers. Those cases are held to the weaker property (a named error or a
completed run, inputs untouched); checksummed stores to the strong one (a named error or the
undamaged scores)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from zarr.codecs import Crc32cCodec, ZstdCodec

from earthgraph.evaluate import EvaluationError
from earthgraph.evaluate.cli import parse_options, run
from earthgraph.evaluate.inputs import RESULTS
from earthgraph.evaluate.report import Stopwatch
from earthgraph.evaluate.run import load_inputs
from earthgraph.evaluate.scoring import score, value_notes
from earthgraph.scoring import evaluation

# Stores of text coordinates are written on purpose (zarr 3 has no stable spec for them), and
# infinities meet in sums (inf - inf): the warnings of both are expected here.
pytestmark = [pytest.mark.filterwarnings("ignore::zarr.errors.UnstableSpecificationWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]

LAT = np.array([-67.5, -22.5, 22.5, 67.5])
LON = np.arange(8) * 45.0
TIMES = pd.date_range("2020-01-01", periods=8, freq="12h").values
INITS = TIMES[:4]
LEADS = pd.to_timedelta([12, 24], unit="h").values
STORES = {"forecast": "fc.zarr", "truth": "truth.zarr", "climatology": "clim.zarr"}
CHUNKS = {"forecast": {"time": 1}, "truth": {"time": 2}, "climatology": {"dayofyear": 61}}
REGIONS = ["global", "northern-hemisphere"]
KEY = ["forecast", "variable", "region", "lead_hours", "metric"]
# A full evaluation that succeeds draws its pictures too (about a second a case): a third
# of the profile's cases (20 in ci, 500 in fuzz).
EXPENSIVE = settings(max_examples=max(10, settings.default.max_examples // 3))


def make_inputs(seed: int = 0, dtype=np.float64) -> dict[str, xr.Dataset]:
    """Truth (8 twelve-hourly times), forecast (4 initialisations, leads 12 and 24 h: the
    truth at the valid time plus noise) and WB2 climatology (hours 0 and 12), in canonical order."""
    rng = np.random.default_rng(seed)
    grid = {"latitude": LAT, "longitude": LON}
    truth = 280 + 5 * rng.normal(size=(len(TIMES), len(LAT), len(LON)))
    fc = np.stack([truth[i + 1:i + 3] for i in range(len(INITS))]) + rng.normal(size=(len(INITS), 2, 4, 8))
    clim = 280 + rng.normal(size=(2, 366, len(LAT), len(LON)))
    return {"truth": xr.Dataset({"t2m": (("time", "latitude", "longitude"), truth.astype(dtype))},
                                coords={"time": TIMES, **grid}),
            "forecast": xr.Dataset({"t2m": (("time", "prediction_timedelta", "latitude", "longitude"),
                                            fc.astype(dtype))},
                                   coords={"time": INITS, "prediction_timedelta": LEADS, **grid}),
            "climatology": xr.Dataset({"t2m": (("hour", "dayofyear", "latitude", "longitude"), clim.astype(dtype))},
                                      coords={"hour": [0, 12], "dayofyear": np.arange(1, 367), **grid})}


def write_store(ds: xr.Dataset, path: Path, chunks: dict[str, int], checksum: bool = False) -> None:
    """Zarr 3 with zstd (and a crc32c checksum of every chunk, with ``checksum``)."""
    compressors = [ZstdCodec(level=1), Crc32cCodec()] if checksum else [ZstdCodec(level=1)]
    enc = {v: {"compressors": compressors, "chunks": tuple(chunks.get(d, max(ds.sizes[d], 1)) for d in ds[v].dims)}
           for v in ds.data_vars}
    for c in ds.coords:
        enc[c] = {"compressors": compressors}
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False, encoding=enc)


def write_inputs(root: Path, inputs: dict[str, xr.Dataset], checksum: bool = False) -> dict[str, Path]:
    paths = {what: root / name for what, name in STORES.items()}
    for what, ds in inputs.items():
        write_store(ds, paths[what], CHUNKS[what], checksum)
    return paths


def arguments(paths: dict[str, Path], out: Path, *extra: str, computed: bool = False) -> list[str]:
    """The evaluation's command line; ``computed``: the climatology computed from the truth
    (over its whole record) instead of read from the climatology store."""
    climatology = (["--climatology-period", str(TIMES[0])[:10], str(TIMES[-1])[:10]] if computed
                   else ["--climatology", str(paths["climatology"])])
    return ["--forecast", str(paths["forecast"]), "--truth", str(paths["truth"]), *climatology, "--name", "fc",
            "--out", str(out), "--regions", *REGIONS, "--baselines", "persistence", "climatology", *extra]


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file under ``folders``: its path and the sha256 of its bytes."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for f in folders if f.exists()
            for p in sorted(f.rglob("*")) if p.is_file()}


def run_main(argv: list[str]) -> tuple[pd.DataFrame, dict] | str:
    """The evaluation's table and its JSON summary line, or the message of the EvaluationError
    that ended it (any other exception fails the test: it is an unnamed error)."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            table = run(argv).table
    except EvaluationError as err:
        assert str(err), "refused with no message"
        return str(err)
    return table, json.loads(printed.getvalue().splitlines()[-1])


def score_inputs(paths: dict[str, Path], out: Path) -> dict[str, xr.Dataset] | str:
    """The evaluation's loading and scoring steps (load_inputs, score) without the pictures:
    the results per forecast, or the named error that ended it."""
    options = parse_options(arguments(paths, out))
    try:
        inp = load_inputs(options, out, Stopwatch())
        return score(options.scoring, inp, {"fc": inp.forecast, "persistence": "persistence",
                                            "climatology": "climatology"})
    except EvaluationError as err:
        return str(err)


def latitude_weights(lat: np.ndarray) -> np.ndarray:
    """WB2's cell-area weights by hand (edges midway, poles at the ends), any order."""
    order = np.argsort(lat)
    rad = np.radians(lat[order])
    edges = np.concatenate([[-np.pi / 2], (rad[1:] + rad[:-1]) / 2, [np.pi / 2]])
    w = np.empty(len(lat))
    w[order] = np.diff(np.sin(edges))
    return w


def hand_rmse(fc: np.ndarray, truth: np.ndarray, lat: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """RMSE per lead by hand, the way the evaluation defines it: area-weighted mean of the
    squared error over the points where the truth is finite (a NaN or inf forecast there
    makes it NaN or inf), the mean over initialisations, then the root. ``fc``
    (init, lead, lat, lon), ``truth`` (init, lead, lat, lon) at the valid times; ``rows``:
    only these latitudes (a region)."""
    w = np.broadcast_to(latitude_weights(lat)[:, None], fc.shape[-2:]).copy()
    if rows is not None:
        w[~rows] = 0.0
    out = []
    with np.errstate(over="ignore", invalid="ignore"):
        for lead in range(fc.shape[1]):
            per_init = []
            for f, t in zip(fc[:, lead], truth[:, lead]):
                ok = np.isfinite(t) & (w > 0)
                per_init.append(np.sum(w[ok] * (f[ok] - t[ok]) ** 2) / np.sum(w[ok]))
            out.append(np.sqrt(np.mean(per_init)))
    return np.array(out)


def aligned_truth(truth: np.ndarray) -> np.ndarray:
    """The truth (time, lat, lon) at each initialisation's valid times: (init, lead, lat, lon)."""
    return np.stack([truth[i + 1:i + 3] for i in range(len(INITS))])


def rmse_of(results: dict[str, xr.Dataset], name: str = "fc", region: str = "global") -> np.ndarray:
    """The RMSE of forecast ``name`` over ``region`` at leads 12 and 24 h (by label)."""
    return results[name]["t2m"].sel(metric="rmse", region=region, lead_time=LEADS).values


def tables_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two score tables hold the same rows and values, bit for bit (NaN where NaN)."""
    a, b = a.sort_values(KEY, ignore_index=True), b.sort_values(KEY, ignore_index=True)
    return a[KEY].equals(b[KEY]) and np.array_equal(a.value.values, b.value.values, equal_nan=True)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """The canonical stores, plain and checksummed, and their scores by the evaluation with
    the climatology store, and with a climatology computed from the truth."""
    root = tmp_path_factory.mktemp("pristine")
    inputs = make_inputs()
    plain = write_inputs(root / "plain", inputs)
    crc = write_inputs(root / "crc", inputs, checksum=True)
    tables = {computed: run(arguments(plain, root / f"out{computed}", computed=computed)).table
              for computed in (False, True)}
    for table in tables.values():
        assert np.isfinite(table[table.metric == "rmse"].value).all()
    return {False: plain, True: crc}, tables


# ---------------------------------------------------------------------------------------------
# Damaged stores


FAULTS = ("overwrite", "truncate", "empty", "delete", "append", "wipe")


def damage(target: Path, store: Path, fault: str, data) -> None:
    """Damage ``target`` (a file of ``store``) by ``fault``; ``data`` draws the details."""
    raw = target.read_bytes()
    if fault == "overwrite":
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)), label="offset")
        junk = data.draw(st.binary(min_size=1, max_size=16), label="bytes")
        raw = raw[:at] + junk + raw[at + len(junk):]
        target.write_bytes(raw)
    elif fault == "truncate":
        target.write_bytes(raw[:data.draw(st.integers(0, max(len(raw) - 1, 0)), label="length")])
    elif fault == "empty":
        target.write_bytes(b"")
    elif fault == "delete":
        target.unlink()
    elif fault == "append":
        target.write_bytes(raw + data.draw(st.binary(min_size=1, max_size=64), label="bytes"))
    elif fault == "wipe":  # the store's folder is there, its files are not
        shutil.rmtree(store)
        store.mkdir()


@EXPENSIVE
@given(data=st.data(), what=st.sampled_from(sorted(STORES)), fault=st.sampled_from(FAULTS), checksum=st.booleans(),
       computed=st.booleans())
def test_a_damaged_store_ends_in_a_named_error_or_the_undamaged_scores(pristine, data, what, fault, checksum,
                                                                       computed):
    """A chunk or metadata file of one input overwritten, truncated, emptied, deleted or
    extended, or the whole store emptied (``computed``: the climatology computed from the
    truth, read lazily a year at a time, so the climatology store is not read at all)."""
    stores, references = pristine
    reference = references[computed]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = {w: root / STORES[w] for w in STORES}
        for w in STORES:
            shutil.copytree(stores[checksum][w], paths[w])
        store = paths[what]
        files = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
        relative = data.draw(st.sampled_from(files), label="file")
        damage(store / relative, store, fault, data)
        array = relative.split("/")[0] if "/" in relative else None  # None: the group's own zarr.json
        before = snapshot(root)
        out = root / "out"
        got = run_main(arguments(paths, out, computed=computed))
        assert snapshot(root) == {**before, **snapshot(out)}, "an input was modified"
        if computed and what == "climatology":  # not an input of this run
            assert not isinstance(got, str) and tables_equal(got[0], reference), got
            return
        # Detectable damage: the codec breaks, a file is gone, or a checksum no longer matches.
        # Overwritten or extended metadata is other, valid, metadata only sometimes, and an
        # unchecked chunk may decode into other numbers: for those, a named error or a run.
        detectable = fault in ("truncate", "empty", "delete", "wipe") or (
            checksum and not relative.endswith("zarr.json"))
        if isinstance(got, str):
            assert not [r for r in RESULTS if (out / r).exists()], "a failed run left results"
            assert not out.exists(), "a failed run left its empty --out"
            if detectable:
                assert f"{what} {store}" in got, got
                if array is not None and fault != "wipe":
                    assert array in got, (array, got)
            else:
                assert any(f"{w} {p}" in got for w, p in paths.items()), got
        elif detectable:
            # A run that completes read nothing damaged, or says what it left out (a deleted
            # chunk reads as NaN: all-NaN chunks are never written, so it is a legitimate store).
            table, summary = got
            assert tables_equal(table, reference) or (fault == "delete" and summary["left_out"]), (
                what, relative, fault, summary["left_out"])


# ---------------------------------------------------------------------------------------------
# Order, longitude convention and time zone: the same scores, never a moved value


ORDERS = st.sampled_from(["ascending", "descending", "shuffled"])


@given(data=st.data(), what=st.sets(st.sampled_from(sorted(STORES)), min_size=1),
       lon_180=st.booleans(), turns=st.integers(-2, 2), zone=st.sampled_from([None, "+05:00", "-0330", "Z", " UTC"]))
def test_reordered_grids_and_zoned_times_give_the_canonical_scores(data, what, lon_180, turns, zone):
    """Latitudes descending or shuffled, longitudes in [-180, 180), beyond [0, 360) (whole
    turns added) or shuffled, initialisations and leads shuffled, times stored with a UTC
    offset: the scores are those of the canonical data (the RMSE checked against a hand
    computation), not of values moved elsewhere."""
    inputs = make_inputs()
    reference = hand_rmse(inputs["forecast"].t2m.values, aligned_truth(inputs["truth"].t2m.values), LAT)
    moved = dict(inputs)
    for w in sorted(what):
        ds = moved[w]
        rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16), label=f"{w} shuffle seed"))
        order = {d: data.draw(ORDERS, label=f"{w} {d}")
                 for d in ("latitude", "longitude", "time", "prediction_timedelta") if d in ds.dims}
        ds = ds.isel({d: {"ascending": np.arange, "descending": lambda n: np.arange(n)[::-1],
                          "shuffled": rng.permutation}[o](ds.sizes[d]) for d, o in order.items()})
        if lon_180:
            ds = ds.assign_coords(longitude=((ds.longitude + 180.0) % 360.0) - 180.0)
        moved[w] = ds.assign_coords(longitude=ds.longitude + 360.0 * turns)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = write_inputs(root, moved)
        if zone is not None and "truth" in what:
            shift_time_zone(paths["truth"], zone)
        got = score_inputs(paths, root / "out")
        assert not isinstance(got, str), got
        np.testing.assert_allclose(rmse_of(got), reference, rtol=1e-12)
        north = LAT >= 20.0
        np.testing.assert_allclose(rmse_of(got, region="northern-hemisphere"),
                                   hand_rmse(inputs["forecast"].t2m.values, aligned_truth(inputs["truth"].t2m.values),
                                             LAT, north[:, None] & np.ones(len(LON), bool)), rtol=1e-12)
        persistence = np.stack([np.repeat(inputs["truth"].t2m.values[i][None], 2, axis=0) for i in range(len(INITS))])
        np.testing.assert_allclose(rmse_of(got, "persistence"),
                                   hand_rmse(persistence, aligned_truth(inputs["truth"].t2m.values), LAT), rtol=1e-12)


def shift_time_zone(store: Path, zone: str) -> None:
    """Restate the store's times with a reference in time zone ``zone`` (an offset from UTC,
    or UTC): the same instants, other stored numbers."""
    meta_path = store / "time" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    units = meta["attributes"]["units"]
    step, ref = units.split(" since ")
    ref = pd.Timestamp(ref)
    offset = pd.Timedelta(0) if zone.strip() in ("Z", "UTC") else pd.Timedelta(
        hours=int(zone[:3]), minutes=int(zone[0] + zone[-2:]))
    # The same instant: the local reference time is UTC + offset.
    local = (ref + offset).strftime("%Y-%m-%dT%H:%M:%S")
    meta["attributes"]["units"] = f"{step} since {local}{zone}"
    meta_path.write_text(json.dumps(meta))


# ---------------------------------------------------------------------------------------------
# NaN, infinities and huge values


VALUES = st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30, 1e300, -1e300])


def climatology_at_valid_times(clim: np.ndarray) -> np.ndarray:
    """The climatology (hour 0/12, dayofyear, lat, lon) at each initialisation's valid times."""
    valid = INITS[:, None] + LEADS[None, :]
    index = pd.DatetimeIndex(valid.ravel())
    picked = clim[np.asarray(index.hour) // 12, np.asarray(index.dayofyear) - 1]
    return picked.reshape(valid.shape + clim.shape[2:])


@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]),
       where=st.sets(st.sampled_from(["forecast", "truth", "climatology"]), min_size=1))
def test_nan_inf_and_huge_values_are_counted_and_scored_by_their_definition(data, dtype, where):
    """NaN truth is left out; an infinite truth is missing too; a NaN or infinite forecast
    where the truth exists makes its scores NaN or inf; values whose squares overflow make
    them inf: the RMSE is the hand computation's, each such value is counted, and a score
    that is not finite always comes with a note saying why."""
    inputs = make_inputs(dtype=dtype)
    for w in sorted(where):
        values = inputs[w].t2m.values.copy()
        # the climatology's days 1 .. 3 are those the valid times (2020-01-01 .. 03) read
        shape = values.shape if w != "climatology" else (2, 3) + values.shape[2:]
        for _ in range(data.draw(st.integers(1, 6), label=f"{w} count")):
            index = tuple(data.draw(st.integers(0, s - 1)) for s in shape)
            with np.errstate(over="ignore"):
                values[index] = dtype(data.draw(VALUES, label=f"{w} value"))
        inputs[w] = inputs[w].copy(data={"t2m": values})
    fc, truth, clim = (inputs[w].t2m.values.astype(np.float64) for w in ("forecast", "truth", "climatology"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        got = score_inputs(write_inputs(root, inputs), root / "out")
    assert not isinstance(got, str), got
    aligned, clim_valid = aligned_truth(truth), climatology_at_valid_times(clim)
    np.testing.assert_allclose(rmse_of(got), hand_rmse(fc, aligned, LAT), rtol=1e-9)
    present = np.isfinite(aligned)
    large = np.sqrt(np.finfo(np.float64).max / (len(LAT) * len(LON)))
    counts = {k: got["fc"]["t2m"].attrs[k] for k in evaluation.COUNTS}
    assert counts == {
        "truth_missing": np.isnan(aligned).sum(), "truth_infinite": np.isinf(aligned).sum(),
        "forecast_missing": (np.isnan(fc) & present).sum(), "forecast_infinite": (np.isinf(fc) & present).sum(),
        "climatology_missing": (~np.isfinite(clim_valid) & present).sum(),
        "too_large": sum(((abs(x) > large) & np.isfinite(x) & present).sum() for x in (fc, aligned, clim_valid))}
    notes = value_notes(got, no_skipna=False)
    for name, ds in got.items():  # a score that is not finite comes with a note saying why
        scores = ds["t2m"].sel(metric=["mse", "rmse", "bias", "mae"], region="global").values
        if not np.isfinite(scores).all():
            assert notes.get(name, {}).get("t2m"), (name, scores, notes)
    # Persistence is made from the truth as it is scored: an infinite truth is missing there too.
    held = np.where(np.isinf(truth), np.nan, truth)
    persistence = np.stack([np.repeat(held[i][None], 2, axis=0) for i in range(len(INITS))])
    np.testing.assert_allclose(rmse_of(got, "persistence"), hand_rmse(persistence, aligned, LAT), rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# Wrong coordinates, times, types and layouts


def _set(ds: xr.Dataset, name: str, values) -> xr.Dataset:
    return ds.assign_coords({name: values})


def _draw_index(data, n: int, label: str) -> int:
    return data.draw(st.integers(0, n - 1), label=label)


def lat_out_of_range(ds, data):
    lat = ds.latitude.values.copy()
    lat[_draw_index(data, len(lat), "index")] = data.draw(st.sampled_from([-1, 1])) * data.draw(
        st.floats(90.001, 1e300), label="latitude")
    return _set(ds, "latitude", lat)


def coordinate_nonfinite(name):
    def fault(ds, data):
        values = ds[name].values.astype(np.float64)
        values[_draw_index(data, len(values), "index")] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return _set(ds, name, values)
    return fault


def coordinate_strings(name):
    def fault(ds, data):
        return _set(ds, name, [data.draw(st.sampled_from([f"{v:g}", f"{v:g}N", "x"])) for v in ds[name].values])
    return fault


def coordinate_repeated(name):
    def fault(ds, data):
        values = ds[name].values.copy()
        i, j = data.draw(st.lists(st.integers(0, len(values) - 1), min_size=2, max_size=2, unique=True), label="rows")
        if name == "longitude":  # the same meridian, another number
            values[i] = values[j] + data.draw(st.sampled_from([0.0, 360.0, -360.0]))
        else:
            values[i] = values[j]
        return _set(ds, name, values)
    return fault


def time_strings(ds, data):
    formats = ["%Y-%m-%dT%H:%M+05:00", "%Y-%m-%d %H:%M UTC", "%d/%m/%Y", "not a time"]
    fmt = data.draw(st.sampled_from(formats), label="format")
    return _set(ds, "time", [pd.Timestamp(t).strftime(fmt) for t in ds.time.values])


def time_nat(ds, data):
    times = ds.time.values.copy()
    times[_draw_index(data, len(times), "index")] = np.datetime64("NaT")
    return _set(ds, "time", times)


def time_empty(ds, data):
    return ds.isel(time=slice(0, 0))


def lead_integers(ds, data):
    return _set(ds, "prediction_timedelta", (ds.prediction_timedelta.values / np.timedelta64(1, "h")).astype(int))


def lead_nat(ds, data):
    leads = ds.prediction_timedelta.values.copy()
    leads[_draw_index(data, len(leads), "index")] = np.timedelta64("NaT")
    return _set(ds, "prediction_timedelta", leads)


def values_wrong_type(ds, data):
    kind = data.draw(st.sampled_from(["str", "bool", "datetime"]), label="type")
    v = ds.t2m
    new = {"str": v.astype(str), "bool": v > 280, "datetime": xr.zeros_like(v, dtype="datetime64[ns]")}[kind]
    return ds.assign(t2m=new)


def grid_shifted(ds, data):
    name = data.draw(st.sampled_from(["latitude", "longitude"]), label="axis")
    shift = data.draw(st.floats(0.01, 10.0), label="shift")
    return _set(ds, name, ds[name].values + shift)


def grid_cut(ds, data):
    return ds.isel(latitude=slice(1, None))


def times_elsewhere(ds, data):
    years = data.draw(st.integers(1, 50), label="years")
    return _set(ds, "time", ds.time.values + np.timedelta64(365 * years, "D"))


def clim_days_missing(ds, data):
    needed = data.draw(st.sampled_from([1, 2, 3]), label="a day the valid times need")  # 2020-01-01 .. 03
    others = data.draw(st.integers(0, 300), label="other days dropped")
    drop = {needed} | set(np.random.default_rng(others).choice(np.arange(1, 367), others, replace=False).tolist())
    return ds.sel(dayofyear=[d for d in ds.dayofyear.values if d not in drop])


def clim_bad_hour(ds, data):
    hours = ds.hour.values.copy()
    hours[_draw_index(data, len(hours), "index")] = data.draw(st.sampled_from([24, -1, 6]), label="hour")
    return _set(ds, "hour", hours)


# Stored-metadata faults: the time units rewritten in the zarr.json (what xarray would refuse to write).
def units_zone_name(meta, data):
    zone = data.draw(st.sampled_from(["CET", "EST", "Europe/Paris", "PST8PDT", "X"]), label="zone")
    meta["attributes"]["units"] += f" {zone}"


def units_unparseable(meta, data):
    meta["attributes"]["units"] = data.draw(st.sampled_from(
        ["hours since 2020-13-45", "fortnights since 2020-01-01", "hours since", "hours after 2020-01-01", ""]))


def calendar_360_day(meta, data):
    meta["attributes"]["calendar"] = "360_day"


def time_array_missing(store: Path) -> None:
    shutil.rmtree(store / "time")


# fault -> (the inputs it applies to, how, the word the error must name)
DATASET_FAULTS = {
    "latitude out of range": (("forecast", "truth", "climatology"), lat_out_of_range, "latitude"),
    "latitude non-finite": (("forecast", "truth", "climatology"), coordinate_nonfinite("latitude"), "latitude"),
    "longitude non-finite": (("forecast", "truth", "climatology"), coordinate_nonfinite("longitude"), "longitude"),
    "latitude strings": (("forecast", "truth", "climatology"), coordinate_strings("latitude"), "latitude"),
    "longitude strings": (("forecast", "truth", "climatology"), coordinate_strings("longitude"), "longitude"),
    "latitude repeated": (("forecast", "truth", "climatology"), coordinate_repeated("latitude"), "latitude"),
    "longitude repeated": (("forecast", "truth", "climatology"), coordinate_repeated("longitude"), "longitude"),
    "time repeated": (("forecast", "truth"), coordinate_repeated("time"), "time"),
    "time strings": (("forecast", "truth"), time_strings, "time"),
    "time NaT": (("forecast", "truth"), time_nat, "time"),
    "time empty": (("forecast", "truth"), time_empty, "time"),
    "lead repeated": (("forecast",), coordinate_repeated("prediction_timedelta"), "prediction_timedelta"),
    "lead integers": (("forecast",), lead_integers, "prediction_timedelta"),
    "lead NaT": (("forecast",), lead_nat, "prediction_timedelta"),
    "values wrong type": (("forecast", "truth", "climatology"), values_wrong_type, "t2m"),
    "grid shifted": (("forecast", "climatology"), grid_shifted, "itude"),
    "grid cut": (("forecast", "climatology"), grid_cut, "latitude"),
    "times elsewhere": (("forecast",), times_elsewhere, "initialisation"),
    "climatology days missing": (("climatology",), clim_days_missing, "dayofyear"),
    "climatology hour": (("climatology",), clim_bad_hour, "hour"),
    "dayofyear repeated": (("climatology",), coordinate_repeated("dayofyear"), "dayofyear"),
}
METADATA_FAULTS = {
    "time units with a zone name": (("forecast", "truth"), units_zone_name, "time"),
    "time units unparseable": (("forecast", "truth"), units_unparseable, "time"),
    "360-day calendar": (("forecast", "truth"), calendar_360_day, "time"),
}


@given(data=st.data(), fault=st.sampled_from(sorted(DATASET_FAULTS) + sorted(METADATA_FAULTS) + ["time array missing"]),
       earlier=st.booleans())
def test_wrong_coordinates_times_and_types_end_in_a_named_error(data, fault, earlier):
    """Each fault ends the evaluation in an EvaluationError naming the input, its path and the
    field; the inputs are untouched, and the --out folder holds no new results (an earlier
    run's, replaced only by a run that succeeds with --overwrite, stay as they were)."""
    if fault == "time array missing":
        targets, how, word = ("forecast", "truth"), None, "time"
    else:
        targets, how, word = {**DATASET_FAULTS, **METADATA_FAULTS}[fault]
    what = data.draw(st.sampled_from(targets), label="input")
    inputs = make_inputs()
    if fault in DATASET_FAULTS:
        with np.errstate(invalid="ignore"):
            inputs[what] = how(inputs[what], data)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            paths = write_inputs(root, inputs)
        except (ValueError, TypeError) as err:  # xarray will not write it: not a case a store can hold
            assume(False)
            raise AssertionError from err
        if fault in METADATA_FAULTS:
            meta_path = paths[what] / "time" / "zarr.json"
            meta = json.loads(meta_path.read_text())
            how(meta, data)
            meta_path.write_text(json.dumps(meta))
        elif fault == "time array missing":
            time_array_missing(paths[what])
        out = root / "out"
        if earlier:  # an earlier run's results, which a failed run with --overwrite must leave alone
            (out / "scores").mkdir(parents=True)
            (out / "scores.csv").write_text("earlier\n")
        before = snapshot(root)
        got = run_main(arguments(paths, out, "--overwrite"))
        assert snapshot(root) == before, "an input or an earlier result was modified"
        assert isinstance(got, str), f"{fault} in the {what} was scored"
        assert f"{what} {paths[what]}" in got, got
        assert word in got, (word, got)
        assert out.exists() == earlier, "a failed run left its empty --out"
