"""Property-based (hypothesis) tests of the gridded reader: open_gridded, the streamed
TruthSampler, and ``observe --gridded`` (observe_file).

A small valid global grid is drawn (latitudes ascending, descending or shuffled, longitudes in
[0, 360), [-180, 180) or 20..380, float32 or float64 values in K or degC, netCDF-4, netCDF-3
or zarr), one fault is injected (NaN and inf, huge values and unmasked fill values, wrong
units, out-of-range, non-finite, duplicate, missing and wrong-typed coordinates, unparseable,
time-zoned, other-calendar, unordered, duplicate, missing and empty times, a bad land-sea
mask, an empty file, truncation at a random byte, corrupted bytes in a file or a zarr chunk),
and the file is written to disk and read back. Every case must end in either

* reading right: each value the reader returns, and each value the sampler interpolates
  at a grid point, is the file's value at that coordinate (after reordering and units
  conversion), NaN where the file has none, never shifted; or
* a named error (GriddedError; observe's KeyError, StoreError, StaticsError) whose message
  names the file and, where one is at fault, the coordinate or variable,

never a raw exception from xarray, netCDF, HDF5 or a codec; and a failed observe leaves an
existing store byte for byte as it was. ``--hypothesis-profile=fuzz`` draws many more cases
(``make fuzz``), and ``--hypothesis-show-statistics`` shows how they ended (events).

Not fuzzed: bytes corrupted in the metadata of an HDF5 (netCDF-4) file, on which libhdf5 can
loop forever or crash inside C (HDFGroup/hdf5#1707, Unidata/netcdf4-python#967 and #1456);
no Python reader can turn that into an error. Bytes corrupted in its data are fuzzed.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from earthgraph.data.generate import observe_file
from earthgraph.data.gridded import PLAUSIBLE_RANGE, GriddedError, open_gridded
from earthgraph.data.observing import ObservingConfig
from earthgraph.data.sampler import TruthSampler
from earthgraph.data.statics import StaticsError
from earthgraph.data.store import ObservationStore, StoreError
from earthgraph.data.units import affine_conversion

T0 = np.datetime64("2021-03-01T00:00", "ns")
HOUR = np.timedelta64(3600, "s")
NAMED = (GriddedError, StoreError, StaticsError, KeyError)  # what `observe` reports as one line (cli.py)
FORMATS = ("netcdf4", "netcdf3", "zarr")
# The end-to-end observe cases run the whole command: half as many.
OBSERVE_EXAMPLES = max(10, settings.default.max_examples // 2)


@dataclass(frozen=True)
class Case:
    """A gridded file as it is written (``ds``: ERA5 names t2m and lsm) and what reading it must
    give: per position along each axis the true latitude, longitude (degrees, as written) and
    time (UTC), and the true 2 m temperature in K (NaN where the file has none)."""

    ds: xr.Dataset
    lat: np.ndarray
    lon: np.ndarray
    times: np.ndarray
    kelvin: np.ndarray  # (time, lat, lon) float64
    fmt: str


# --- a valid file ----------------------------------------------------------------------------------

@st.composite
def valid_cases(draw) -> Case:
    nlat, nlon, nt = draw(st.integers(3, 8)), draw(st.integers(4, 16)), draw(st.integers(2, 5))
    lat = -90.0 + 180.0 / nlat * (np.arange(nlat) + 0.5)
    lon = draw(st.sampled_from([0.0, -180.0, 20.0])) + 360.0 / nlon * np.arange(nlon)
    times = T0 + np.arange(nt) * draw(st.sampled_from([1, 3, 6])) * HOUR
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # Distinct random values: a value read at the wrong place differs by tens of K.
    kelvin = rng.uniform(220.0, 320.0, (nt, nlat, nlon))
    for axis, order in ((1, draw(st.sampled_from(["ascending", "descending", "shuffled"]))),
                        (2, draw(st.sampled_from(["ascending", "descending", "shuffled"])))):
        n = kelvin.shape[axis]
        perm = {"ascending": np.arange(n), "descending": np.arange(n)[::-1]}.get(order)
        perm = np.asarray(draw(st.permutations(range(n)))) if perm is None else perm
        kelvin = np.take(kelvin, perm, axis=axis)
        lat, lon = (lat[perm], lon) if axis == 1 else (lat, lon[perm])
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    kelvin = kelvin.astype(dtype).astype(np.float64)  # what the file holds, exactly
    units = draw(st.sampled_from(["K", "degC"]))
    stored = (kelvin - 273.15 if units == "degC" else kelvin).astype(dtype)
    if units == "degC":
        kelvin = stored.astype(np.float64) + 273.15
    land = (rng.uniform(size=(nlat, nlon)) < 0.3).astype(np.float32)
    dims = ("time", "latitude", "longitude")
    ds = xr.Dataset({"t2m": (dims, stored, {"units": units}),
                     "lsm": (dims[1:], land, {"units": "(0-1)"})},
                    coords={"time": times, "latitude": lat, "longitude": lon})
    return Case(ds, lat, lon, times, kelvin, draw(st.sampled_from(FORMATS)))


def _write(case: Case, folder: Path, encoding: dict | None = None) -> Path:
    """The case's file in ``folder``. The writer's own errors pass: a fault it refuses to write is
    no case for the reader (the tests count them as events)."""
    path = folder / ("f.zarr" if case.fmt == "zarr" else "f.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow to inf in float32, non-standard calendars
        if case.fmt == "zarr":
            case.ds.to_zarr(path, zarr_format=3, consolidated=False, encoding=encoding)
        else:
            case.ds.to_netcdf(path, format="NETCDF4" if case.fmt == "netcdf4" else "NETCDF3_64BIT",
                              encoding=encoding)
    return path


# --- reading right, or failing named ---------------------------------------------------------------

def _message(e: BaseException) -> str:
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)


def _assert_named(e: BaseException, path: Path, *fields: str) -> None:
    """``e`` is a named error: its message names the file and, given ``fields``, one of them."""
    assert isinstance(e, NAMED), f"a raw {type(e).__name__}: {e}"
    message = _message(e)
    assert str(path) in message, f"the error does not name the file: {message}"
    assert not fields or any(f in message for f in fields), f"the error names none of {fields}: {message}"


def _positions(values: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Where each of ``values`` sits on the reader's sorted ``axis``; each must be there exactly."""
    at = np.clip(np.searchsorted(axis, values), 0, len(axis) - 1)
    assert np.array_equal(axis[at], values), f"coordinates {values} read as {axis}"
    return at


def _assert_reads_right(truth: xr.Dataset, case: Case) -> None:
    """Every value of the opened field is the file's value at the same (time, lat, lon)."""
    assert "air_temperature" in truth, f"no air_temperature: {sorted(truth.data_vars)}"
    assert truth["air_temperature"].dims == ("time", "latitude", "longitude")
    assert truth["air_temperature"].attrs["units"] == "K"
    order = np.argsort(truth.time.values)
    k = order[_positions(case.times, truth.time.values[order])]
    j = _positions(case.lat, truth.latitude.values)
    i = _positions(np.mod(case.lon, 360.0), truth.longitude.values)
    got = truth["air_temperature"].values.astype(np.float64)[np.ix_(k, j, i)]
    np.testing.assert_allclose(got, case.kelvin, rtol=0, atol=1e-3, equal_nan=True)


def _assert_samples_right(truth: xr.Dataset, case: Case) -> None:
    """The sampler at every grid point at each step (but the last, which it blends with the one
    before by 1e-6) gives the file's value there; NaN where the file has none, and counted."""
    sampler = TruthSampler(truth)
    nt = len(case.times)
    lat, lon = np.meshgrid(case.lat, case.lon, indexing="ij")
    nan_count = 0
    for k in np.argsort(case.times)[:-1]:
        seconds = np.full(lat.size, case.times[k].astype("datetime64[s]").astype(np.int64), np.float64)
        got = sampler.sample("air_temperature", seconds, lat.ravel(), lon.ravel()).reshape(lat.shape)
        nan_count += int(np.isnan(got).sum())
        want, after = case.kelvin[k], case.kelvin[min(k + 1, nt - 1)]
        assert np.all(np.isnan(got[np.isnan(want)])), "a point without a value got one"
        assert np.all(np.isfinite(got[np.isfinite(want) & np.isfinite(after)])), "a value was lost"
        ok = np.isfinite(got)
        np.testing.assert_allclose(got[ok], want[ok], rtol=0, atol=1e-3)
    assert sampler.missing.get("air_temperature", 0) == nan_count, "points without a value are counted"


def _read_back(path: Path, case: Case) -> str:
    """Open, check every value, sample every grid point at every step: "read" or raises."""
    truth = open_gridded(path)
    _assert_reads_right(truth, case)
    _assert_samples_right(truth, case)
    return "read"


def _outcome(path: Path, case: Case, must_fail: bool, *fields: str) -> str:
    """Read the file back; a named error naming ``fields`` (when given) is the other way out."""
    try:
        _read_back(path, case)
    except AssertionError:
        raise
    except Exception as e:
        note(f"{type(e).__name__}: {e}")
        _assert_named(e, path, *fields)
        return f"named error ({type(e).__name__})"
    assert not must_fail, "a faulted file was read as if it were right"
    return "read right"


# --- coordinate faults -----------------------------------------------------------------------------

COORD_FAULTS = ["none", "nan", "inf", "out_of_range", "duplicate", "text", "empty", "no_values", "two_dims"]


@st.composite
def coordinate_faults(draw, case: Case) -> tuple[Case, str, str]:
    """The case with one fault in its latitude or longitude axis: (case, axis name, fault)."""
    name = draw(st.sampled_from(["latitude", "longitude"]))
    fault = draw(st.sampled_from(COORD_FAULTS))
    values = case.ds[name].values.copy()
    n, at = len(values), draw(st.integers(0, len(values) - 1))
    ds = case.ds
    if fault in ("nan", "inf", "out_of_range"):
        limit = 90.0 if name == "latitude" else 720.0
        bad = {"nan": np.nan, "inf": draw(st.sampled_from([np.inf, -np.inf])),
               "out_of_range": draw(st.floats(limit, 1e300, exclude_min=True)) * draw(st.sampled_from([1, -1]))}
        values[at] = bad[fault]
        ds = ds.assign_coords({name: values})
    elif fault == "duplicate":
        other = (at + draw(st.integers(1, n - 1))) % n
        # A longitude one turn away is the same meridian: a duplicate once wrapped.
        values[at] = values[other] + (360.0 if name == "longitude" and draw(st.booleans()) else 0.0)
        ds = ds.assign_coords({name: values})
    elif fault == "text":
        ds = ds.assign_coords({name: np.array([f"{v:g}" for v in values])})
    elif fault == "empty":
        ds = ds.isel({name: slice(0, 0)})
    elif fault == "no_values":  # a dimension without a coordinate variable
        ds = ds.drop_vars(name)
    elif fault == "two_dims":  # a curvilinear grid: 2-D latitude and longitude on dims (y, x)
        lat2d, lon2d = np.meshgrid(ds.latitude.values, ds.longitude.values, indexing="ij")
        ds = ds.rename_dims(latitude="y", longitude="x").drop_vars(["latitude", "longitude"])
        ds = ds.assign_coords(latitude=(("y", "x"), lat2d), longitude=(("y", "x"), lon2d))
        name = "latitude"  # the first axis the reader looks at
    return replace(case, ds=ds), name, fault


def _write_and_read(case: Case, label: str, must_fail: bool, field: str) -> None:
    """Write ``case`` to a file and read it back through the reader (:func:`_outcome`): read right,
    or, if ``must_fail``, refused with an error naming ``field``."""
    event(label)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = _write(case, Path(tmp))
        except Exception as e:  # the writer's refusal is no reader's case
            event(f"writer refused: {type(e).__name__}")
            return
        event(_outcome(path, case, must_fail, field))


@given(st.data())
def test_coordinates_read_right_or_fail_named(data):
    case = data.draw(valid_cases())
    case, name, fault = data.draw(coordinate_faults(case))
    _write_and_read(case, f"fault: {name} {fault}, {case.fmt}", fault != "none", name)


# --- time faults -----------------------------------------------------------------------------------

TIME_FAULTS = ["zone", "no_units", "bad_units", "text", "nat", "huge", "calendar", "empty",
               "descending", "shuffled", "duplicate"]
ZONES = {"+05:30": -330, "-05:00": 300, "+00:00": 0, "Z": 0, " +0100": -60}  # offset -> minutes to add for UTC


@st.composite
def time_faults(draw, case: Case) -> tuple[Case, str]:
    fault = draw(st.sampled_from(TIME_FAULTS))
    ds, times, nt = case.ds, case.times, len(case.times)
    hours = ((times - T0) // HOUR).astype(np.float64)
    kelvin = case.kelvin
    if fault == "zone":  # CF units with a time zone: the file's times are local, the reader's UTC
        zone = draw(st.sampled_from(sorted(ZONES)))
        ds = ds.assign_coords(time=("time", hours, {"units": f"hours since 2021-03-01 00:00:00{zone}"}))
        times = times + np.timedelta64(ZONES[zone], "m")
    elif fault == "no_units":  # bare numbers: no reader can know their epoch
        ds = ds.assign_coords(time=("time", hours))
    elif fault == "bad_units":
        units = draw(st.sampled_from(["hours since yesterday", "fortnights since 2021-03-01", "hours",
                                      "hours since 2021-13-45", "since 2021"]) | st.text(max_size=20))
        ds = ds.assign_coords(time=("time", hours, {"units": units}))
    elif fault == "text":
        ds = ds.assign_coords(time=np.array([str(t)[:draw(st.sampled_from([10, 16, 19]))] for t in times]))
    elif fault == "nat":
        hours[draw(st.integers(0, nt - 1))] = np.nan
        ds = ds.assign_coords(time=("time", hours, {"units": "hours since 2021-03-01"}))
    elif fault == "huge":
        hours[draw(st.integers(0, nt - 1))] = draw(st.sampled_from([1e300, -1e300, 1e18, 9.96921e36]))
        ds = ds.assign_coords(time=("time", hours, {"units": "hours since 2021-03-01"}))
    elif fault == "calendar":
        calendar = draw(st.sampled_from(["360_day", "noleap", "julian", "all_leap"]))
        ds = ds.assign_coords(time=("time", hours, {"units": "hours since 2021-03-01", "calendar": calendar}))
    elif fault == "empty":
        ds = ds.isel(time=slice(0, 0))
    else:  # rows out of order, or one step twice
        perm = {"descending": np.arange(nt)[::-1],
                "shuffled": np.asarray(draw(st.permutations(range(nt)))),
                "duplicate": np.r_[np.arange(nt), draw(st.integers(0, nt - 1))]}[fault]
        if fault == "shuffled" and np.all(perm == np.arange(nt)):
            perm = perm[::-1]
        ds, times, kelvin = ds.isel(time=perm), times[perm], kelvin[perm]
    return replace(case, ds=ds, times=times, kelvin=kelvin), fault


@given(st.data())
def test_times_read_right_or_fail_named(data):
    case = data.draw(valid_cases())
    case, fault = data.draw(time_faults(case))
    # Times in another zone are read right (in UTC); every other fault must fail, naming time.
    _write_and_read(case, f"fault: time {fault}, {case.fmt}", fault != "zone", "time")


# --- field value faults ----------------------------------------------------------------------------

VALUE_FAULTS = ["nan", "inf", "huge", "fill", "units", "land_sea_mask"]


@st.composite
def value_faults(draw, case: Case) -> tuple[Case, str, bool]:
    """(case, fault, whether it must fail)."""
    fault = draw(st.sampled_from(VALUE_FAULTS))
    ds, kelvin = case.ds.copy(deep=True), case.kelvin.copy()
    t2m = ds["t2m"].values
    at = tuple(draw(st.integers(0, n - 1)) for n in t2m.shape)
    if fault == "nan":  # missing values: no value there, and no error
        mask = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).uniform(size=t2m.shape) < \
            draw(st.floats(0.0, 1.0))
        t2m[mask], kelvin[mask] = np.nan, np.nan
        return replace(case, ds=ds, kelvin=kelvin), fault, False
    if fault in ("inf", "huge", "fill"):
        value = draw({"inf": st.sampled_from([np.inf, -np.inf]),
                      "huge": st.sampled_from([1e300, -1e300, 3.4e38, 1e30, -1e20]) | st.floats(1e4, 1e300),
                      "fill": st.sampled_from([9.96921e36, -32767.0, -9999.0, -999.0, 1e20, 0.0])}[fault])
        with np.errstate(over="ignore"):  # 1e300 in a float32 field is inf
            t2m[at] = value
        # 0 in a degC field is 273.15 K, a value; beyond the variable's plausible range it is none.
        kelvin[at] = float(t2m[at]) + (273.15 if ds["t2m"].attrs["units"] == "degC" else 0.0)
        lo, hi = PLAUSIBLE_RANGE["air_temperature"]
        return replace(case, ds=ds, kelvin=kelvin), fault, not lo <= kelvin[at] <= hi
    if fault == "units":  # a units attribute that is wrong, unknown or garbage
        units = draw(st.sampled_from(["m s-1", "kg m-2", "degF", "degC", "mK", "", "1", "%", "furlongs", "K K",
                                      "degrees_north", "hours since 2021-01-01"]) | st.text(max_size=12))
        ds["t2m"].attrs["units"] = units
        note(f"units {units!r}")
        try:  # What the units say the values are, in K: the reader must read that, or fail.
            a, b = affine_conversion(units.strip(), "K")
        except Exception:  # UnitsError; pint's parser raises others too ("(K": TokenError)
            return replace(case, ds=ds, kelvin=np.full_like(kelvin, np.nan)), fault, True
        return replace(case, ds=ds, kelvin=a * t2m.astype(np.float64) + b), fault, False
    lsm = ds["lsm"].values
    lsm[at[1:]] = draw(st.sampled_from([np.nan, 2.0, -1.0, np.inf, 1e30]))
    return replace(case, ds=ds), fault, True


@given(st.data())
def test_field_values_read_right_or_fail_named(data):
    case = data.draw(valid_cases())
    case, fault, must_fail = data.draw(value_faults(case))
    field = "land_sea_mask" if fault == "land_sea_mask" else "air_temperature"
    _write_and_read(case, f"fault: {fault}, {case.fmt}", must_fail, field)


# --- damaged files ---------------------------------------------------------------------------------

DAMAGE = ["corrupt", "truncate", "empty"]


def _t2m_payload(case: Case, path: Path, compressed: bool) -> tuple[int, int] | None:
    """(offset, length) of the t2m values' bytes in a netCDF-4 file (written contiguous, or as one
    zlib chunk without shuffle, whose stream is then found by compressing the same bytes)."""
    raw = np.ascontiguousarray(case.ds["t2m"].values).astype(case.ds["t2m"].dtype.newbyteorder("<")).tobytes()
    payload = zlib.compress(raw, 4) if compressed else raw
    at = path.read_bytes().find(payload)
    return None if at < 0 else (at, len(payload))


def _damage_target(case: Case, path: Path, compressed: bool, draw) -> tuple[Path, int, int] | None:
    """(file, first byte, length) that corruption may touch: the whole file (netCDF-3), the t2m
    data (netCDF-4: see the module docstring; None where they are not found), one chunk or
    metadata file of a zarr store (truncation may cut any file anywhere)."""
    if case.fmt == "zarr":
        target = draw(st.sampled_from(sorted(p for p in path.rglob("*") if p.is_file())))
        return target, 0, target.stat().st_size
    if case.fmt == "netcdf4":
        span = _t2m_payload(case, path, compressed)
        return None if span is None else (path, *span)
    return path, 0, path.stat().st_size


@given(st.data())
def test_damaged_files_read_right_or_fail_named(data):
    case = data.draw(valid_cases())
    damage = data.draw(st.sampled_from(DAMAGE))
    compressed = data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as tmp:
        if case.fmt == "netcdf4":
            encoding = {"t2m": {"zlib": True, "complevel": 4, "shuffle": False, "chunksizes": case.ds["t2m"].shape}
                        if compressed else {"contiguous": True}}
        elif case.fmt == "zarr" and not compressed:
            encoding = {"t2m": {"compressors": None}}
        else:
            encoding = None
        path = _write(case, Path(tmp), encoding)
        found = _damage_target(case, path, compressed, data.draw)
        if found is None:
            event("netCDF-4 data bytes not found: skipped")
            return
        target, start, length = found
        if damage == "empty":
            what = "store" if case.fmt == "zarr" else "file"
        elif case.fmt == "zarr":  # "t2m chunk", "latitude zarr.json", "group zarr.json"
            parts = target.relative_to(path).parts
            what = "group zarr.json" if len(parts) == 1 else f"{parts[0]} {'chunk' if 'c' in parts else parts[-1]}"
        else:
            what = "data" if length < path.stat().st_size else "file"
        event(f"damage: {damage} {what}, {case.fmt}{' compressed' if compressed else ''}")
        if damage == "empty":
            if case.fmt == "zarr":
                shutil.rmtree(path)
                path.mkdir()
            else:
                path.write_bytes(b"")
        elif damage == "truncate":  # anywhere: the end of a file is where downloads stop
            raw = target.read_bytes()
            target.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1))])
        else:
            raw = bytearray(target.read_bytes())
            offsets = data.draw(st.lists(st.integers(start, start + length - 1), min_size=1, max_size=4))
            for at in offsets:
                raw[at] ^= data.draw(st.integers(1, 255))  # a changed byte
            target.write_bytes(bytes(raw))
        try:
            _read_back(path, case)
            event("read right")
        except AssertionError:
            if damage != "corrupt":
                raise  # a truncated or emptied file must never read as data
            # Without checksums (netCDF, an uncompressed or zstd chunk) changed bytes can be valid
            # values: no reader can tell them. It must not crash, and values stay in their range.
            event("corrupt bytes read as values (no checksum in the format)")
        except Exception as e:
            note(f"{type(e).__name__}: {e}")
            _assert_named(e, path)
            event(f"named error ({type(e).__name__})")


# --- observe end to end ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def existing_store(tmp_path_factory) -> Path:
    """A store that a failed observe must leave as it was, made once from a valid file."""
    folder = tmp_path_factory.mktemp("existing")
    rng = np.random.default_rng(0)
    lat, lon = np.arange(-80.0, 81.0, 40.0), np.arange(0.0, 360.0, 45.0)
    times = T0 + np.arange(3) * 3 * HOUR
    xr.Dataset({"t2m": (("time", "latitude", "longitude"), rng.uniform(250, 300, (3, 5, 8)), {"units": "K"}),
                "lsm": (("latitude", "longitude"), (rng.uniform(size=(5, 8)) < 0.4).astype(np.float32))},
               coords={"time": times, "latitude": lat, "longitude": lon}).to_netcdf(folder / "ok.nc")
    observe_file(str(folder / "ok.nc"), folder / "obs.zarr", ObservingConfig(seed=1, scale=0.05), systems=("synop",),
                 note=lambda line: None)
    return folder / "obs.zarr"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _reference(case: Case, t: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The file's field, interpolated linearly in time, latitude and longitude (around the
    circle) by xarray: an independent reference; NaN outside the outermost latitudes."""
    field = xr.DataArray(case.kelvin, dims=("time", "latitude", "longitude"),
                         coords={"time": case.times, "latitude": case.lat, "longitude": np.mod(case.lon, 360.0)})
    field = field.sortby(["time", "latitude", "longitude"])
    first = float(field.longitude[0])  # the first meridian again, one turn on: the dateline's interval
    field = xr.concat([field, field.isel(longitude=0).assign_coords(longitude=first + 360.0)], "longitude")
    pts = dict(time=xr.DataArray(t.astype("datetime64[s]").astype("datetime64[ns]"), dims="obs"),
               latitude=xr.DataArray(lat, dims="obs"),
               longitude=xr.DataArray(first + np.mod(lon - first, 360.0), dims="obs"))
    return field.interp(**pts).values


@st.composite
def observe_cases(draw) -> tuple[Case, str, bool]:
    """A case with a fault from any family (or none): (case, fault, whether it must fail)."""
    case = draw(valid_cases())
    family = draw(st.sampled_from(["none", "coordinate", "time", "value", "damage"]))
    if family == "coordinate":
        case, name, fault = draw(coordinate_faults(case))
        return case, f"{name} {fault}", fault != "none"
    if family == "time":
        case, fault = draw(time_faults(case))
        return case, f"time {fault}", fault != "zone"
    if family == "value":
        return draw(value_faults(case))
    if family == "damage":
        return case, draw(st.sampled_from(["truncate", "corrupt"])), False
    return case, "none", False


@settings(max_examples=OBSERVE_EXAMPLES)
@given(data=st.data())
def test_observe_stores_right_values_or_fails_named_leaving_the_store(existing_store, data):
    case, fault, must_fail = data.draw(observe_cases())
    chunk_hours = data.draw(st.sampled_from([1.0, 3.0, 24.0]))
    event(f"fault: {fault}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            path = _write(case, tmp)
        except Exception as e:
            event(f"writer refused: {type(e).__name__}")
            return
        damaged = fault in ("truncate", "corrupt")
        if damaged:  # one zarr chunk or the netCDF-3 file; netCDF-4: its data bytes
            found = _damage_target(case, path, False, data.draw)
            if found is None:
                event("netCDF-4 data bytes not found: skipped")
                return
            target, start, length = found
            raw = bytearray(target.read_bytes())
            if fault == "truncate":
                raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
            else:
                at = data.draw(st.integers(start, start + length - 1))
                raw[at] ^= data.draw(st.integers(1, 255))
            target.write_bytes(bytes(raw))
        out = tmp / "out" / "obs.zarr"
        shutil.copytree(existing_store, out)
        before = _snapshot(out.parent)
        try:
            summary = observe_file(str(path), out, ObservingConfig(seed=2, scale=0.05), systems=("synop",),
                                   chunk_hours=chunk_hours, overwrite=True, note=lambda line: None)
        except Exception as e:
            note(f"{type(e).__name__}: {e}")
            _assert_named(e, path)
            assert _snapshot(out.parent) == before, "a failed observe changed the existing store"
            event(f"named error ({type(e).__name__}), store unchanged")
            return
        assert not must_fail, "a faulted file was observed as if it were right"
        assert [p.name for p in out.parent.iterdir()] == ["obs.zarr"], "a staging copy left behind"
        store = ObservationStore(out)
        if summary["counts"]["synop"] == 0:  # every point without a value
            assert store.rows("synop") == 0
            event("observed right (no observations)")
            return
        obs = store.read("synop", *np.array(store.time_range) + [0, 1])
        assert summary["counts"]["synop"] == len(obs["time"]) == store.rows("synop")
        assert np.all(np.isfinite(obs["values"])), "a stored observation without a value"
        ref = _reference(case, obs["time"], obs["lat"], obs["lon"])
        dep = obs["values"][:, 0] - ref
        dep = dep[np.isfinite(dep)]
        if damaged and np.any(np.abs(dep) > 6.0):
            event("corrupt bytes observed as values (no checksum in the format)")
            return
        # synop's error is 1 K; a value from the wrong place is off by tens of K.
        assert np.all(np.abs(dep) < 6.0), f"observations off the file's values by up to {np.abs(dep).max():.1f} K"
        event("observed right" + (", some points without a value (counted)"
                                  if summary["points_without_truth"].get("air_temperature") else ""))
