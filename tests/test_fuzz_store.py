"""Property-based tests of opening and reading an observation store (``make fuzz`` runs many
more cases). A damaged store -- a file truncated, emptied, deleted or overwritten, a byte
flipped, an attribute changed -- is refused with a StoreError naming it, or read with every
value as written: never a raw exception, never a changed value. Reading changes nothing on
disk, and a window holds exactly the observations of its time span."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from earthgraph.data.obs_types import registered
from earthgraph.data.store import ObservationStore, StoreError
from earthgraph.data.store_writer import StoreWriter

T0 = 1583020800  # 2020-03-01T00:00Z


def write_store(path: Path, times: dict[str, np.ndarray], resolution_s: int = 3600) -> dict[str, dict]:
    """A store of synop and amv observations at ``times`` (sorted), with a static field;
    returns the columns written."""
    rng = np.random.default_rng(len(times["synop"]) + len(times["amv"]))
    types = registered()
    written = {}
    with StoreWriter(path, [types["synop"], types["amv"]], index_resolution_s=resolution_s, overwrite=True) as w:
        for name, meta, channels in (("synop", "station_id", 1), ("amv", "satellite_zenith", 2)):
            n = len(times[name])
            cols = {"time": times[name], "lat": rng.uniform(-90, 90, n), "lon": rng.uniform(-180, 180, n),
                    "values": rng.normal(280, 10, (n, channels)).astype(np.float32),
                    "error": np.ones((n, channels), np.float32), meta: rng.uniform(0, 9, n).astype(np.float32)}
            w.append(name, cols)
            written[name] = cols
        w.add_static(np.linspace(-80, 80, 4), np.arange(0.0, 360.0, 45.0),
                     {"land_sea_mask": rng.uniform(size=(4, 8)).astype(np.float32)})
    return written


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("fuzz-store") / "obs.zarr"
    rng = np.random.default_rng(0)
    times = {"synop": np.sort(T0 + rng.integers(0, 5 * 86400, 3000)),
             "amv": np.sort(T0 + rng.integers(0, 5 * 86400, 2000))}
    return path, write_store(path, times)


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


def read_everything(path: Path) -> dict:
    """Every column of every type, and the static fields, through the store's reader."""
    store = ObservationStore(path)
    t0, t1 = store.time_range
    out = {name: store.read(name, t0, t1 + 1) for name in store.type_names}
    out["static"] = store.static()
    return out


def damage(path: Path, data: st.DataObject) -> str:
    """Damage one file of the store at ``path`` in one of several ways; returns what was done."""
    files = sorted(p for p in path.rglob("*") if p.is_file())
    victim = data.draw(st.sampled_from(files), label="file")
    raw = victim.read_bytes()
    how = data.draw(st.sampled_from(["truncate", "flip", "overwrite", "empty", "delete", "append"]), label="how")
    if how == "truncate":
        victim.write_bytes(raw[:data.draw(st.integers(0, max(len(raw) - 1, 0)), label="keep")])
    elif how == "flip" and raw:
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        bit = data.draw(st.integers(0, 7), label="bit")
        victim.write_bytes(raw[:at] + bytes([raw[at] ^ (1 << bit)]) + raw[at + 1:])
    elif how == "overwrite":
        junk = data.draw(st.binary(min_size=1, max_size=64), label="junk")
        at = data.draw(st.integers(0, len(raw)), label="at")
        victim.write_bytes(raw[:at] + junk + raw[at + len(junk):])
    elif how == "empty":
        victim.write_bytes(b"")
    elif how == "delete":
        victim.unlink()
    else:
        victim.write_bytes(raw + data.draw(st.binary(min_size=1, max_size=16), label="tail"))
    return f"{how} {victim.relative_to(path)}"


def assert_same(read: dict, written: dict) -> None:
    for name, cols in written.items():
        for column, values in cols.items():
            np.testing.assert_array_equal(read[name][column], np.asarray(values).astype(read[name][column].dtype),
                                          err_msg=f"{name}.{column} read differently from what was written")


@contextlib.contextmanager
def copy_of(store: Path):
    """A copy of ``store`` in a temporary folder, removed afterwards: each case damages its own."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "obs.zarr"
        shutil.copytree(store, path)
        yield path


@given(data=st.data())
def test_a_damaged_store_is_refused_by_name_or_read_as_written(pristine, data):
    source, written = pristine
    with copy_of(source) as path:
        what = damage(path, data)
        before = digest(path)
        try:
            read = read_everything(path)
        except StoreError as e:
            assert str(path) in str(e), f"{what}: the error does not name the store: {e}"
        else:
            assert_same(read, written)
        assert digest(path) == before, f"{what}: reading changed the store"


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False)
                           | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


@given(data=st.data())
def test_a_changed_attribute_is_refused_by_name(pristine, data):
    source, written = pristine
    with copy_of(source) as path:
        meta = path / data.draw(st.sampled_from(["zarr.json", "synop/zarr.json", "amv/zarr.json"]), label="doc")
        doc = json.loads(meta.read_text())
        keys = sorted(doc["attributes"])
        key = data.draw(st.sampled_from(keys), label="key")
        value = data.draw(json_values, label="value")
        doc["attributes"][key] = value
        meta.write_text(json.dumps(doc))
        try:
            read = read_everything(path)
        except StoreError as e:
            assert str(path) in str(e)
        else:
            assert_same(read, written)  # only when the value drawn was the value there


@settings(max_examples=max(settings.default.max_examples // 3, 10))  # each case writes a store
@given(times=st.dictionaries(st.sampled_from(["synop", "amv"]),
                             st.lists(st.integers(-86400 * 400, 86400 * 400), min_size=0, max_size=60),
                             min_size=2, max_size=2),
       resolution=st.sampled_from([1, 60, 3600, 6 * 3600, 86400, 7 * 86400]),
       spans=st.lists(st.tuples(st.integers(-86400 * 500, 86400 * 500), st.integers(0, 86400 * 30)),
                      min_size=1, max_size=5))
def test_a_window_holds_exactly_the_observations_of_its_span(times, resolution, spans):
    sorted_times = {n: np.sort(T0 + np.asarray(t, np.int64)) for n, t in times.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "obs.zarr"
        written = write_store(path, sorted_times, resolution)
        for in_memory in (False, True):
            store = ObservationStore(path)
            if in_memory:
                store.load()
            for name, cols in written.items():
                for start, length in spans:
                    t0 = T0 + start
                    got = store.read(name, t0, t0 + length)
                    keep = (cols["time"] >= t0) & (cols["time"] < t0 + length)
                    np.testing.assert_array_equal(got["time"], cols["time"][keep])
                    np.testing.assert_array_equal(got["values"], cols["values"][keep])
                    np.testing.assert_array_equal(got["lat"], cols["lat"][keep])
