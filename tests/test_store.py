import numpy as np
import pytest

from earthgraph.data import obs_types
from earthgraph.data.store import ObservationStore, StoreError
from earthgraph.data.store_writer import StoreWriter


def _columns(rng, n, t0, c=1, meta=()):
    t = np.sort(rng.integers(t0, t0 + 86400, n))
    cols = {
        "time": t, "lat": rng.uniform(-90, 90, n), "lon": rng.uniform(-180, 180, n),
        "values": rng.normal(280, 10, (n, c)).astype(np.float32),
        "error": np.full((n, c), 0.5, np.float32),
    }
    for m in meta:
        cols[m] = rng.uniform(-50, 50, n).astype(np.float32)
    return cols


def _write(path, chunks, **kw):
    with StoreWriter(path, [obs_types.SYNOP, obs_types.MW_SOUNDER], provenance={"test": True}, **kw) as w:
        for name, cols in chunks:
            w.append(name, cols)


T0 = 1_600_000_000  # 2020-09-13T12:26:40Z, s since 1970


def _synop_day(path, rows: int) -> tuple[np.random.Generator, dict[str, np.ndarray]]:
    """A store at ``path`` of ``rows`` SYNOP rows in the day from T0, and that day read back
    (with the generator, for more rows of the same kind)."""
    rng = np.random.default_rng(1)
    _write(path, [("synop", _columns(rng, rows, T0, 1, ("station_id",)))])
    return rng, ObservationStore(path).read("synop", T0, T0 + 86400)


def test_store_round_trips_columns_windows_and_stats(tmp_path):
    rng = np.random.default_rng(0)
    t0 = 1_600_000_000
    a = _columns(rng, 500, t0, 1, ("station_id",))
    b = _columns(rng, 400, t0 + 86400, 1, ("station_id",))
    s = _columns(rng, 300, t0, 2, ("scan_angle",))
    _write(tmp_path / "s.zarr", [("synop", a), ("synop", b), ("mw_sounder", s)])

    store = ObservationStore(tmp_path / "s.zarr")
    assert store.type_names == ["synop", "mw_sounder"]
    assert store.obs_type("mw_sounder") == obs_types.MW_SOUNDER
    assert store.attrs["provenance"] == {"test": True}

    full = {k: np.concatenate([a[k], b[k]]) for k in a}
    got = store.read("synop", t0 - 10, t0 + 3 * 86400)
    for k in full:
        np.testing.assert_array_equal(got[k], full[k].astype(got[k].dtype))

    # Windows not aligned to the index bins return exactly the rows inside.
    for lo, hi in [(t0 + 1234, t0 + 50000), (t0 + 86399, t0 + 86401), (t0 + 7200, t0 + 7200)]:
        w = store.read("synop", lo, hi)
        expect = (full["time"] >= lo) & (full["time"] < hi)
        np.testing.assert_array_equal(w["time"], full["time"][expect])
        np.testing.assert_array_equal(w["values"], full["values"][expect])
    assert len(store.read("synop", t0 - 10**6, t0 - 10**5)["time"]) == 0

    stats = store.stats("mw_sounder")
    np.testing.assert_allclose(stats["mean"], s["values"].astype(np.float64).mean(0), rtol=1e-10)
    np.testing.assert_allclose(stats["std"], s["values"].astype(np.float64).std(0, ddof=1), rtol=1e-8)
    stats = store.stats("synop")
    np.testing.assert_allclose(stats["mean"], full["values"].astype(np.float64).mean(0), rtol=1e-10)

    # In memory or from disk: the same windows.
    mem = ObservationStore(tmp_path / "s.zarr").load()
    np.testing.assert_array_equal(mem.read("synop", t0 + 5000, t0 + 90000)["lat"], store.read("synop", t0 + 5000, t0 + 90000)["lat"])


def test_failed_write_leaves_previous_store_intact(tmp_path):
    t0 = T0
    rng, before = _synop_day(tmp_path / "s.zarr", 200)

    later = _columns(rng, 100, t0, 1, ("station_id",))
    unsorted = dict(later, time=later["time"][::-1].copy())
    with pytest.raises(StoreError, match="sorted by time"):
        _write(tmp_path / "s.zarr", [("synop", later), ("synop", unsorted)], overwrite=True)

    after = ObservationStore(tmp_path / "s.zarr").read("synop", t0, t0 + 86400)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"], "no temporary store left behind"


def test_store_rejects_bad_input_with_named_errors(tmp_path):
    rng = np.random.default_rng(2)
    cols = _columns(rng, 10, 1_600_000_000, 1, ("station_id",))
    with pytest.raises(StoreError, match="unknown observation type 'radar'"):
        _write(tmp_path / "a.zarr", [("radar", cols)])
    bad = dict(cols, lat=cols["lat"][:5])
    with pytest.raises(StoreError, match="field 'lat'"):
        _write(tmp_path / "b.zarr", [("synop", bad)])
    _write(tmp_path / "c.zarr", [("synop", cols)])
    with pytest.raises(StoreError, match="already exists"):
        _write(tmp_path / "c.zarr", [("synop", cols)])
    with pytest.raises(StoreError, match="does not exist"):
        ObservationStore(tmp_path / "missing.zarr")
    with pytest.raises(KeyError, match="no type 'drifter'"):
        ObservationStore(tmp_path / "c.zarr").read("drifter", 0, 1)


def test_store_written_in_many_chunks_reads_back_in_order(tmp_path):
    # 100k rows in 5 appends: the writer flushes buffered rows once they pass a
    # column chunk and the remainder at the end; every row must land in order.
    rng = np.random.default_rng(3)
    t0 = 1_600_000_000
    chunks = [_columns(rng, 20_000, t0 + k * 86400, 1, ("station_id",)) for k in range(5)]
    _write(tmp_path / "s.zarr", [("synop", c) for c in chunks])
    store = ObservationStore(tmp_path / "s.zarr")
    full = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    assert store.rows("synop") == 100_000 and store.rows("mw_sounder") == 0
    got = store.read("synop", t0, t0 + 6 * 86400)
    for k in full:
        np.testing.assert_array_equal(got[k], full[k].astype(got[k].dtype))
    day3 = store.read("synop", t0 + 3 * 86400, t0 + 4 * 86400)
    np.testing.assert_array_equal(day3["time"], chunks[3]["time"])


def test_stores_open_from_fsspec_urls(tmp_path):
    import fsspec

    t0 = T0
    _, local = _synop_day(tmp_path / "s.zarr", 300)
    # The same bytes behind a file:// URL and in fsspec's in-memory filesystem (a stand-in for a bucket).
    via_file = ObservationStore(f"file://{tmp_path / 's.zarr'}").read("synop", t0, t0 + 86400)
    mem = fsspec.filesystem("memory")
    mem.put(str(tmp_path / "s.zarr"), "/bucket/s.zarr", recursive=True)
    via_memory = ObservationStore("memory://bucket/s.zarr").read("synop", t0, t0 + 86400)
    for k in local:
        np.testing.assert_array_equal(via_file[k], local[k])
        np.testing.assert_array_equal(via_memory[k], local[k])
    with pytest.raises(StoreError, match=r"observation store memory://bucket/missing.zarr cannot be opened"):
        ObservationStore("memory://bucket/missing.zarr")


def test_stores_are_written_to_fsspec_urls_and_replaced_only_when_complete():
    import fsspec

    rng = np.random.default_rng(2)
    t0 = 1_600_000_000
    url = "memory://writes/written.zarr"
    first = _columns(rng, 200, t0, 1, ("station_id",))
    _write(url, [("synop", first)])
    np.testing.assert_array_equal(ObservationStore(url).read("synop", t0, t0 + 86400)["time"], first["time"])
    with pytest.raises(StoreError, match="memory://writes/written.zarr already exists"):
        _write(url, [("synop", first)])
    with pytest.raises(StoreError, match="store memory://writes/written.zarr: unknown observation type 'radar'"):
        _write(url, [("radar", first)], overwrite=True)

    # A write that fails half-way leaves the store at the URL as it was, and no debris.
    second = _columns(rng, 300, t0, 1, ("station_id",))
    with pytest.raises(RuntimeError, match="disk on fire"):
        with StoreWriter(url, [obs_types.SYNOP], overwrite=True) as w:
            w.append("synop", second)
            raise RuntimeError("disk on fire")
    np.testing.assert_array_equal(ObservationStore(url).read("synop", t0, t0 + 86400)["time"], first["time"])
    assert fsspec.filesystem("memory").ls("/writes", detail=False) == ["/writes/written.zarr"]

    _write(url, [("synop", second)], overwrite=True)
    np.testing.assert_array_equal(ObservationStore(url).read("synop", t0, t0 + 86400)["time"], second["time"])
    assert fsspec.filesystem("memory").ls("/writes", detail=False) == ["/writes/written.zarr"]


@pytest.mark.parametrize("name, metadata, match", [
    ("..", (), r"type name '\.\.' cannot be a group of the store"),
    ("static", (), r"type name 'static' cannot be a group"),
    ("buoy", ("time",), r"type 'buoy': metadata name 'time' cannot be a column of the store"),
    ("buoy", ("a/b",), r"metadata name 'a/b' cannot be a column"),
])
def test_names_that_would_overwrite_or_escape_the_store_are_refused(tmp_path, name, metadata, match):
    from earthgraph.data.obs_types import Channel, ObservationType

    t = ObservationType(name, "ocean", (Channel("sst", "K", 250.0, 320.0, 0.3),), metadata=metadata)
    with pytest.raises(StoreError, match=match):
        StoreWriter(tmp_path / "s.zarr", [t])
    assert not list(tmp_path.iterdir()), "nothing written"
