"""Property-based (hypothesis) tests of the point-table ingest (CSV, parquet, netCDF).

A valid table is drawn, faults are injected row by row (NaN and inf, out-of-range and
wrong-typed coordinates, unparseable, time-zoned and unordered times, duplicates, huge
values) and file by file (empty, header only, truncated at a random byte, a corrupted
byte); the file goes into a fresh store or into an existing one. An independent model of
the ingest rules says what must become of every row, and each case must end in either

* success: every row counted under its one reason (stored + rejected = rows in the file),
  and the store holding exactly the expected rows, bit for bit (times, coordinates, values
  after unit conversion, identifiers), or
* an :class:`IngestError` whose message names the file, with an existing store unchanged
  byte for byte,

never another exception. ``--hypothesis-profile=fuzz`` draws many more cases (``make fuzz``).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import string
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import event, given, note
from hypothesis import strategies as st

from earthgraph.data.ingest import REJECT_REASONS, IngestError, TableSpec, ingest_tables
from earthgraph.data.store import ObservationStore

EPOCH = datetime(1970, 1, 1)
T_MIN, T_MAX = -2208988800, 4102444800  # 1900-01-01 .. 2100-01-01, seconds since 1970
F32_EXACT = 1 << 24  # float32 holds every integer up to 2**24 exactly, and not 2**24 + 1
COLUMNS = ["time", "lat", "lon", "temp_c", "buoy"]
SPEC = TableSpec(values={"sst": "temp_c"}, units={"sst": "degC"}, metadata={"buoy_id": "buoy"})
SST_MIN, SST_MAX = 269.0, 310.0  # the drifter type's valid range, K
# Numeric (CF) time units: their reference in seconds since 1970 and the seconds per unit.
TIME_UNITS = {"seconds since 1970-01-01": (0, 1), "minutes since 2000-01-01 00:00": (946684800, 60),
              "hours since 1900-01-01": (-2208988800, 3600), "days since 1970-01-01T00:00:00Z": (0, 86400)}


@dataclass(frozen=True)
class Row:
    """One row as written (``cells``) and what the ingest must make of it: ``reason`` (the first
    check it fails before duplicates are judged, None when it passes them all), its ``key``
    (time, lat, normalised lon; None when one of them is bad) and its stored ``value`` (float32 K)."""

    cells: tuple
    reason: str | None
    key: tuple | None = None
    value: np.float32 | None = None
    ident: int = 0


def _iso(t: int) -> str:
    return (EPOCH + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%S")


def _normal_lon(lon: float) -> float:
    """Longitude in [-180, 180), exactly: a shift by 360 is exact for |lon| <= 360 (Sterbenz)."""
    return lon - 360.0 if lon >= 180.0 else lon + 360.0 if lon < -180.0 else lon


# --- what a valid row's cells look like --------------------------------------------------------

@st.composite
def text_times(draw, t: int) -> tuple[str, int]:
    """A text time meaning ``t`` and the second the store must hold for it."""
    style = draw(st.sampled_from(["z", "naive", "offset", "space_offset", "fraction", "minutes_utc", "words"]))
    if style == "z":
        return _iso(t) + "Z", t
    if style == "naive":  # no zone: UTC
        return _iso(t).replace("T", " "), t
    if style in ("offset", "space_offset"):  # a local time and its offset: converted, never shifted
        minutes = draw(st.integers(-48, 56)) * 15
        sign, hh, mm = "+" if minutes >= 0 else "-", abs(minutes) // 60, abs(minutes) % 60
        local = _iso(t + 60 * minutes)
        return (local + f"{sign}{hh:02d}:{mm:02d}" if style == "offset" else
                local.replace("T", " ") + f" {sign}{hh:02d}{mm:02d}"), t
    if style == "fraction":  # to the nearest second
        ms = draw(st.integers(0, 999).filter(lambda m: m != 500))
        return f"{_iso(t)}.{ms:03d}Z", t + (ms > 500)
    if style == "minutes_utc":  # as netCDF character arrays hold them
        return (EPOCH + timedelta(seconds=t)).strftime("%Y %m %d %H:%M UTC"), t - t % 60
    return (EPOCH + timedelta(seconds=t)).strftime("%d %b %Y %H:%M:%S"), t


# Text that is no time (or no complete one): each must be counted as unparseable_time.
BAD_TIMES = ["yesterday", "today", "now", "may", "March 5", "12:00", "2020-13-01T00:00Z", "2021-02-29",
             "2016-12-31T23:59:60Z", "95-03-17", "17/03/95", "1995-03-17 23:45 EST", "Mar 17 1995 23:45 GMT+2",
             "1995-03-17T23:45+25:00", "2020-01-01T25:00", "", "T", "NaT", "3e5", "-"]
bad_text_time = st.one_of(st.sampled_from(BAD_TIMES), st.text(string.ascii_letters, min_size=1, max_size=6))
# Numbers in a table's time column that are no time in years 1..9999.
bad_number_time = st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, 1e17, -1e17])
PLACE_REASONS = ("unparseable_time", "bad_latitude", "bad_longitude")
BAD_TEXT = ["N45", "45°N", "abc", "12,5", "--", "?", "1.2.3", "warm", "0x1A"]


@st.composite
def rows(draw, time_mode: str, units: str | None, allow_text: bool, n_max: int = 10) -> list[Row]:
    """Rows of a drifter table, each valid or carrying one fault, with what must become of it."""
    times = draw(st.lists(st.integers(T_MIN, T_MAX), max_size=n_max, unique=True))
    faults = ["none"] * 6 + ["time", "lat", "lon", "value_nan", "value_inf", "value_range", "huge", "copy"]
    faults += ["lat_text", "lon_text", "value_text"] if allow_text else []
    big_ids = draw(st.booleans())
    out: list[Row] = []
    for t in times:
        fault = draw(st.sampled_from(faults))
        lat = draw(st.floats(-90.0, 90.0))
        lon = draw(st.one_of(st.floats(-180.0, 180.0, exclude_max=True), st.floats(180.0, 360.0),
                             st.floats(-360.0, -180.0, exclude_max=True)))
        x = draw(st.floats(-4.0, 36.7))  # degC, inside the drifter's 269 .. 310 K
        ident = draw(st.integers(0, 2**31 - 1) | st.sampled_from([F32_EXACT, F32_EXACT + 1]) if big_ids
                     else st.integers(0, 9999))
        # A copy: the time and place of an earlier row (as written), another value; the first row
        # of a table has nothing to copy and stays valid.
        if fault == "copy" and out:
            src = out[draw(st.integers(0, len(out) - 1))]
            reason = src.reason if src.reason in PLACE_REASONS else None
            out.append(Row((*src.cells[:3], x, ident), reason, src.key, np.float32(x + 273.15), ident))
            continue
        if time_mode == "text":
            cell_t, second = draw(text_times(t))
        elif time_mode == "numeric":
            ref, per = TIME_UNITS[units]
            cell_t, second = (t - ref) / per, t
        else:  # datetime: a parquet timestamp column
            cell_t, second = t, t
        cells, reason = [cell_t, lat, lon, x, ident], None
        if fault == "time":
            # A numeric time column may hold text too (then it is read as text, number by number).
            cells[0] = draw(bad_text_time if time_mode == "text" else st.one_of(bad_number_time, st.sampled_from(
                ["soon", "2020-01-01", ""])) if time_mode == "numeric" else st.just(None))
            reason = "unparseable_time"
        elif fault == "lat":
            cells[1] = draw(st.one_of(st.floats(min_value=90.0, exclude_min=True),
                                      st.floats(max_value=-90.0, exclude_max=True),
                                      st.sampled_from([math.nan, "1e400", "-1e400"])))  # beyond float64
            reason = "bad_latitude"
        elif fault == "lat_text":
            cells[1], reason = draw(st.sampled_from(BAD_TEXT)), "bad_latitude"
        elif fault == "lon":
            cells[2] = draw(st.one_of(st.floats(min_value=360.0, exclude_min=True),
                                      st.floats(max_value=-360.0, exclude_max=True), st.just(math.nan)))
            reason = "bad_longitude"
        elif fault == "lon_text":
            cells[2], reason = draw(st.sampled_from(BAD_TEXT)), "bad_longitude"
        elif fault == "value_nan":
            cells[3], reason = math.nan, "missing_value"
        elif fault == "value_text":
            cells[3], reason = draw(st.sampled_from(BAD_TEXT)), "missing_value"
        elif fault == "value_inf":  # a value, but no number the channel can take
            cells[3], reason = draw(st.sampled_from([math.inf, -math.inf])), "out_of_range"
        elif fault == "value_range":
            cells[3] = draw(st.one_of(st.floats(37.0, 1e30), st.floats(-1e30, -4.2)))
            reason = "out_of_range"
        elif fault == "huge":  # beyond float32 (or float64), and beyond any valid temperature
            cells[3] = draw(st.sampled_from([1e300, -1e300, 3.5e38, -1e39, 1.7976931348623157e308] +
                                            (["1e400", "-1e400"] if allow_text else [])))
            reason = "out_of_range"
        key = None if reason in PLACE_REASONS else (second, lat, _normal_lon(lon))
        out.append(Row(tuple(cells), reason, key, np.float32(x + 273.15), ident))
    return out


# --- writing tables ----------------------------------------------------------------------------

def _cell_text(v) -> str:
    return repr(v) if isinstance(v, float) else "" if v is None else str(v)


def write_csv(path: Path, table: list[Row]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in table:
        w.writerow([_cell_text(v) for v in r.cells])
    path.write_bytes(buf.getvalue().encode())


def _frame(table: list[Row], time_mode: str, zone: int) -> pd.DataFrame:
    """The table as columns a binary format can hold: a column with any text is text throughout."""
    cols = {}
    for i, name in enumerate(COLUMNS):
        cells = [r.cells[i] for r in table]
        if name == "buoy":
            cols[name] = np.array(cells, dtype=np.int64)
        elif name == "time" and time_mode == "datetime":
            utc = pd.Series([pd.NaT if c is None else EPOCH + timedelta(seconds=c) for c in cells],
                            dtype="datetime64[us]").dt.tz_localize("UTC")
            cols[name] = utc.dt.tz_convert(timezone(timedelta(minutes=zone)))  # one offset per column
        elif any(isinstance(c, str) for c in cells) or (name == "time" and time_mode == "text"):
            cols[name] = np.array([_cell_text(c) for c in cells], dtype=object)
        else:
            cols[name] = np.array(cells, dtype=np.float64)
    return pd.DataFrame(cols)


def write_table(path: Path, table: list[Row], time_mode: str, zone: int = 0) -> None:
    if path.suffix == ".csv":
        write_csv(path, table)
    elif path.suffix == ".gz":
        write_csv(path, table)
        path.write_bytes(gzip.compress(path.read_bytes(), mtime=0))
    elif path.suffix == ".parquet":
        _frame(table, time_mode, zone).to_parquet(path)
    else:
        import xarray as xr

        frame = _frame(table, time_mode, zone)
        kinds = {"i": np.int32, "f": np.float64}  # netCDF-3 has no int64; text as characters
        ds = xr.Dataset({c: ("obs", frame[c].to_numpy().astype(kinds.get(frame[c].dtype.kind, str)))
                         for c in COLUMNS})
        ds.to_netcdf(path, format="NETCDF3_CLASSIC")


# --- the model of the ingest rules -------------------------------------------------------------

@dataclass
class Expected:
    """What one ingest must do: raise (``error``), leave the store as it is (``noop``), or
    store ``rows`` (time, lat, lon, value, id in time order) with ``counts`` by reason."""

    error: bool = False
    noop: bool = False
    counts: dict | None = None
    rows: list | None = None


def expect(table: list[Row], stored: list[tuple], stored_uses_codes: bool | None) -> Expected:
    """Apply the ingest rules to ``table``: rejections by reason, duplicates judged last among the
    rows that pass every other check (then against the store), the accepted rows merged into
    ``stored`` (rows already in the store, in store order) stably by time."""
    counts = dict.fromkeys(REJECT_REASONS, 0)
    seen, old = set(), {r[:3] for r in stored}
    new = []
    for r in table:
        reason = r.reason
        if reason is None:
            reason = "duplicate" if r.key in seen else "already_stored" if r.key in old else None
            seen.add(r.key)
        if reason is None:
            new.append((*r.key, r.value, r.ident))
        else:
            counts[reason] += 1
    # Identifiers beyond float32's exact integers are stored as text codes; a store that holds
    # numeric identifiers cannot take them.
    needs_codes = any(r.ident > F32_EXACT for r in table)
    if needs_codes and stored_uses_codes is False:
        return Expected(error=True)
    if not new:
        only_stored = sum(counts.values()) == counts["already_stored"]
        return Expected(noop=True, counts=counts) if stored and only_stored else Expected(error=True)
    merged = stored + new
    order = sorted(range(len(merged)), key=lambda i: merged[i][0])  # stable: the store's rows first
    return Expected(counts=counts, rows=[merged[i] for i in order])


# --- reading back --------------------------------------------------------------------------------

def snapshot(store: Path) -> dict[str, str]:
    """Every file of a store and a hash of its bytes."""
    if not store.exists():
        return {}
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*")) if p.is_file()}


def stored_rows(store: Path) -> list[tuple]:
    """The drifter rows of a store as (time, lat, lon, value, id), ids read through their codes."""
    s = ObservationStore(store)
    lo, hi = s.time_range
    got = s.read("drifter", lo, hi + 1)
    texts = s.codes("drifter").get("buoy_id")
    assert np.all(got["error"] == np.float32(0.25))
    ids = [_ident(texts[int(c)] if texts is not None and np.isfinite(c) else c) for c in got["buoy_id"]]
    assert len(ids) == s.rows("drifter")
    return [(int(t), float(a), float(o), np.float32(v), i) for t, a, o, v, i in
            zip(got["time"], got["lat"], got["lon"], got["values"][:, 0], ids)]


def _ident(v):
    """A stored identifier (a code's text or a float32) as the integer it was, where it is one."""
    try:
        return int(v) if float(v) == int(float(v)) else v
    except (ValueError, OverflowError):
        return v


def check_invariants(store: Path, report, before: list[tuple]) -> None:
    """What holds whatever the file held: counts add up, the old rows stay, every row is valid."""
    assert report.rows_accepted + sum(report.rejected.values()) == report.rows_read, report
    got = stored_rows(store)
    assert len(got) == len(before) + report.rows_accepted
    remaining = list(got)
    for row in before:  # every stored row is still there, bit for bit
        assert row in remaining, f"stored row {row} lost"
        remaining.remove(row)
    times = [r[0] for r in got]
    assert times == sorted(times)
    for t, lat, lon, v, _ in got:
        assert -90.0 <= lat <= 90.0 and -180.0 <= lon < 180.0 and SST_MIN <= float(v) <= SST_MAX, (t, lat, lon, v)


def run_ingest(store: Path, path: Path, spec: TableSpec, expected: Expected | None, before: list[tuple]):
    """Ingest one file and check the outcome against ``expected`` (None: check invariants only)."""
    snap = snapshot(store)
    try:
        (report,) = ingest_tables(store, "drifter", [(path, spec)])
    except IngestError as e:
        event(f"{''.join(path.suffixes)}: IngestError")
        note(f"IngestError: {e}")
        assert str(path) in str(e), f"the error does not name the file: {e}"
        assert snapshot(store) == snap, "a failed ingest changed the store"
        assert not any(p.name.startswith(f".{store.name}.") for p in store.parent.iterdir()), "staging left behind"
        assert expected is None or expected.error, f"unexpected IngestError: {e}"
        return None
    note(f"report: {report}")
    event(f"{''.join(path.suffixes)}: ingested")
    assert expected is None or not expected.error, f"expected an IngestError, got {report}"
    if expected is None:
        check_invariants(store, report, before)
        return report
    assert report.rejected == expected.counts, report
    assert report.rows_accepted + sum(report.rejected.values()) == report.rows_read
    if expected.noop:
        assert report.rows_accepted == 0 and snapshot(store) == snap
    else:
        got = stored_rows(store)
        assert got == expected.rows
    return report


# --- the properties ------------------------------------------------------------------------------

@st.composite
def cases(draw):
    fmt = draw(st.sampled_from([".csv", ".csv", ".csv.gz", ".parquet", ".nc"]))
    time_mode = draw(st.sampled_from(["text", "text", "numeric"] + (["datetime"] if fmt == ".parquet" else [])))
    units = draw(st.sampled_from(sorted(TIME_UNITS))) if time_mode == "numeric" else None
    table = draw(rows(time_mode, units, allow_text=True))
    zone = draw(st.integers(-48, 56)) * 15
    # An existing store holding some of the table's valid rows (already_stored) and rows of its own.
    existing = draw(st.booleans())
    old = [r for r in table if r.reason is None and draw(st.booleans())] if existing else []
    extra = draw(rows("numeric", "seconds since 1970-01-01", False, n_max=3)) if existing else []
    extra = [r for r in extra if r.reason is None]
    return fmt, time_mode, units, table, zone, existing, old + extra


def _existing_store(store: Path, rows_: list[Row], d: Path) -> list[tuple]:
    """A store holding ``rows_`` (valid rows, written as clean ISO times): its rows as stored."""
    table = [replace(r, cells=(_iso(r.key[0]) + "Z", *r.cells[1:])) for r in rows_]
    src = d / "old.csv"
    write_csv(src, table)
    (report,) = ingest_tables(store, "drifter", [(src, SPEC)])
    assert report.rows_read == len(table)
    got = stored_rows(store)
    return got


@given(case=cases(), fault=st.sampled_from(["none", "truncate", "corrupt", "none", "header_only", "empty", "none"]),
       data=st.data())
def test_a_table_with_faults_is_ingested_row_by_row_or_refused_by_name(case, fault, data):
    fmt, time_mode, units, table, zone, existing, old_rows = case
    spec = replace(SPEC, time_units=units)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        store, path = d / "s.zarr", d / f"obs{fmt}"
        before, uses_codes = [], None
        if existing and old_rows:
            before = _existing_store(store, old_rows, d)
            uses_codes = any(r.ident > F32_EXACT for r in old_rows)
        if fault == "header_only":
            table = []
        write_table(path, table, time_mode, zone)
        expected = expect(table, before, uses_codes)
        event(f"fault: {fault}")
        if fault == "empty":
            path.write_bytes(b"")
            expected = Expected(error=True)
        elif fault in ("truncate", "corrupt"):
            raw = path.read_bytes()
            at = data.draw(st.integers(0, len(raw) - 1), label="at")
            if fault == "truncate":
                path.write_bytes(raw[:at])
                # A cut CSV is read line by line; gzip and parquet know their length; a classic
                # netCDF file is checked against its header (it may end in padding, though).
                expected = (_truncated_csv(raw[:at], table, before, uses_codes) if fmt == ".csv" else
                            Expected(error=True) if fmt in (".csv.gz", ".parquet") else None)
            else:
                byte = data.draw(st.integers(0, 255).filter(lambda b: b != raw[at]), label="byte")
                path.write_bytes(raw[:at] + bytes([byte]) + raw[at + 1:])
                expected = None  # a changed digit is a valid number: only the invariants can hold
        note(f"expected: {expected}")
        run_ingest(store, path, spec, expected, before)


def _truncated_csv(kept: bytes, table: list[Row], before, uses_codes) -> Expected:
    """A CSV cut short: whole lines kept are read as they are; a cut inside a line (its value
    could be cut to another number) is refused by name."""
    if not kept.endswith(b"\n"):
        return Expected(error=True)
    return expect(table[:kept.count(b"\n") - 1], before, uses_codes)


# --- a type declared in YAML: several channels in other units, text identifiers, numeric metadata ---

TYPES_YAML = """
types:
  - name: buoy_met
    sphere: ocean
    channels:
      - {name: airt, units: K, valid_min: 180, valid_max: 340, error: 1}
      - {name: mslp, units: hPa, valid_min: 850, valid_max: 1090, error: 1}
      - {name: count, units: "1", valid_min: -1.0e300, valid_max: 1.0e300, error: 1}
    metadata: [station_id, tilt]
"""
MET_COLUMNS = ["time", "lat", "lon", "t_c", "p_pa", "n_pct", "sid", "tilt"]
MET_SPEC = TableSpec(values={"airt": "t_c", "mslp": "p_pa", "count": "n_pct"},
                     units={"airt": "degC", "mslp": "Pa", "count": "percent"},
                     metadata={"station_id": "sid", "tilt": "tilt"})
# Per channel: valid values in the file's units, and how the store must hold them.
CHANNEL_VALUES = [st.floats(-90.0, 65.0), st.floats(85100.0, 108900.0), st.floats(-1e30, 1e30)]
CONVERT = [lambda x: x + 273.15, lambda x: x / 100.0, lambda x: x / 100.0]
OUTSIDE = [st.floats(70.0, 1e300) | st.floats(-1e300, -100.0), st.floats(110000.0, 1e300) | st.floats(-1e300, 80000.0),
           st.sampled_from([1e41, -1e41, 1e300, 3.5e40])]  # count: valid, but beyond float32


@st.composite
def met_rows(draw) -> tuple[list[tuple], list[str | None], list[tuple | None]]:
    """Cells, the expected reason, and the expected stored (time, lat, lon, values, id, tilt)."""
    times = draw(st.lists(st.integers(T_MIN, T_MAX), max_size=8, unique=True))
    cells, reasons, stored = [], [], []
    for t in times:
        lat, lon = draw(st.floats(-90.0, 90.0)), draw(st.floats(-180.0, 180.0, exclude_max=True))
        sid = draw(st.sampled_from(["06260", "EGLL", "10865", "A1", "007"]))
        tilt = draw(st.floats(-90.0, 90.0) | st.just(math.nan))
        time_cell, reason = _iso(t) + "Z", None
        place = draw(st.sampled_from(["ok"] * 4 + ["time", "lat"]))
        if place == "time":
            time_cell, reason = draw(bad_text_time), "unparseable_time"
        elif place == "lat":
            lat, reason = draw(st.floats(min_value=90.0, exclude_min=True)), "bad_latitude"
        values, kinds = [], []
        for c in range(3):
            kind = draw(st.sampled_from(["ok"] * 3 + ["missing", "text", "inf", "outside"]))
            cell = {"ok": CHANNEL_VALUES[c], "missing": st.just(math.nan), "text": st.sampled_from(BAD_TEXT),
                    "inf": st.sampled_from([math.inf, -math.inf]), "outside": OUTSIDE[c]}[kind]
            values.append(draw(cell))
            kinds.append(kind)
        if reason is None:  # the first check each row fails, in the ingest's order
            reason = ("missing_value" if "text" in kinds or all(k == "missing" for k in kinds) else
                      "out_of_range" if {"inf", "outside"} & set(kinds) else None)
        row_values = tuple(np.float32(CONVERT[c](x)) if k == "ok" else np.float32(np.nan)
                           for c, (k, x) in enumerate(zip(kinds, values)))
        cells.append((time_cell, lat, lon, *values, sid, tilt))
        reasons.append(reason)
        stored.append((t, lat, lon, row_values, sid, np.float32(tilt)) if reason is None else None)
    return cells, reasons, stored


@given(case=met_rows(), tilt_text=st.booleans(), fmt=st.sampled_from([".csv", ".parquet"]))
def test_a_declared_type_stores_each_channel_converted_exactly_or_rejects_the_row(case, tilt_text, fmt):
    from earthgraph.data.type_files import read_types

    cells, reasons, stored = case
    if tilt_text and cells:  # text in numeric metadata: the whole file is refused, by column
        cells[0] = (*cells[0][:7], "steep")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "types.yaml").write_text(TYPES_YAML)
        types = read_types(d / "types.yaml")
        path, store = d / f"met{fmt}", d / "s.zarr"
        frame = pd.DataFrame({c: [_cell_text(r[i]) if any(isinstance(q[i], str) for q in cells) and i != 0
                                  else r[i] for r in cells] for i, c in enumerate(MET_COLUMNS)}, columns=MET_COLUMNS)
        if fmt == ".csv":
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows([MET_COLUMNS, *[[_cell_text(v) for v in r] for r in cells]])
            path.write_text(buf.getvalue())
        else:
            frame.astype({c: str for c in ("time", "sid")}).to_parquet(path)
        accepted = [s for s in stored if s is not None]
        try:
            (report,) = ingest_tables(store, "buoy_met", [(path, MET_SPEC)], types=types)
        except IngestError as e:
            note(str(e))
            event(f"{fmt}: IngestError")
            assert str(path) in str(e)
            if tilt_text and cells:
                assert "column 'tilt'" in str(e) and "'steep'" in str(e)
            else:
                assert not accepted, f"unexpected IngestError: {e}"
            assert not store.exists()
            return
        event(f"{fmt}: ingested")
        assert not (tilt_text and cells) and accepted
        counts = dict.fromkeys(REJECT_REASONS, 0)
        for r in filter(None, reasons):
            counts[r] += 1
        assert report.rejected == counts
        assert report.rows_accepted == len(accepted)
        s = ObservationStore(store)
        got = s.read("buoy_met", s.time_range[0], s.time_range[1] + 1)
        texts = s.codes("buoy_met").get("station_id")  # none when every identifier is a plain integer
        accepted.sort(key=lambda r: r[0])
        assert got["time"].tolist() == [r[0] for r in accepted]
        assert got["lat"].tolist() == [r[1] for r in accepted] and got["lon"].tolist() == [r[2] for r in accepted]
        np.testing.assert_array_equal(got["values"], np.array([r[3] for r in accepted], np.float32).reshape(-1, 3))
        ids = [texts[int(c)] if texts else str(int(c)) for c in got["station_id"]]
        assert ids == [r[4] for r in accepted], "identifiers keep their text"
        np.testing.assert_array_equal(got["tilt"], np.array([r[5] for r in accepted], np.float32))


# --- names in a types file become the store's folders and arrays ---------------------------------

GOOD_NAME = st.sampled_from(["ok", "sst", "T2m", "x-1", "buoy_id", "tilt"])
NAMES = st.one_of(GOOD_NAME, GOOD_NAME, GOOD_NAME, st.text(max_size=5), st.sampled_from(
    ["..", ".", "a/b", "/abs", "static", "", "time", "values", "window_start", "error", "lat", "zarr.json", ".zattrs",
     "a b", "_x"]))
LOW = st.sampled_from([-math.inf, 0.0, 250.0, 300.0, 350.0, math.nan, 1e39])
HIGH = st.sampled_from([math.inf, 300.0, 350.0, 1e39, 0.0, math.nan])
ERROR = st.one_of(st.sampled_from([1.0, 0.25]), st.sampled_from([1.0, 0.25]), st.floats(),
                  st.sampled_from([1e39, 0.0, -1.0]))


@given(name=NAMES, channel=NAMES, meta=NAMES, lo=LOW, hi=HIGH, error=ERROR)
def test_a_types_file_is_refused_by_name_or_makes_a_store_that_reads_back(name, channel, meta, lo, hi, error):
    import yaml

    from earthgraph.data.type_files import TypeFileError, read_types

    doc = {"types": [{"name": name, "sphere": "ocean", "metadata": [meta], "channels": [
        {"name": channel, "units": "K", "valid_min": lo, "valid_max": hi, "error": error}]}]}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "t.yaml").write_text(yaml.safe_dump(doc))
        try:
            (the_type,) = read_types(d / "t.yaml")
        except TypeFileError as e:
            assert str(e).startswith(f"{d / 't.yaml'}: "), str(e)
            event("refused")
            return
        event("read")
        (d / "a.csv").write_text("time,lat,lon,v,m\n2020-01-01T00:00Z,1.5,2.5,300.0,7.25\n")
        spec = TableSpec(values={channel: "v"}, metadata={meta: "m"})
        try:
            (report,) = ingest_tables(d / "s.zarr", the_type, [(d / "a.csv", spec)])
        except IngestError as e:  # the one value is outside the declared range
            assert not lo <= 300.0 <= hi and "out_of_range 1" in str(e), str(e)
            return
        assert report.rows_accepted == 1
        s = ObservationStore(d / "s.zarr")
        assert s.type_names == [name] and s.obs_type(name) == the_type
        got = s.read(name, 0, 2**62)
        assert sorted(got) == sorted(["time", "lat", "lon", "values", "error", meta])
        assert got["time"].tolist() == [1577836800] and got["lat"].tolist() == [1.5] and got["lon"].tolist() == [2.5]
        codes = s.codes(name).get(meta)  # an identifier (``*_id``) that is no integer is kept as text
        assert got["values"].tolist() == [[300.0]]
        assert (codes[int(got[meta][0])] == "7.25") if meta.endswith("_id") else got[meta].tolist() == [7.25]
        assert got["error"].tolist() == [[float(np.float32(error))]] and np.isfinite(got["error"]).all()


# --- units as files write them ---------------------------------------------------------------------

TARGETS = st.sampled_from(["K", "m s-1", "hPa", "kg m-2", "1"])
KNOWN_UNITS = st.sampled_from([("degC", "K"), ("degF", "K"), ("knots", "m s-1"), ("m/s", "m s-1"), ("Pa", "hPa"),
                               ("%", "1"), ("g kg-1", "1"), ("mm", "kg m-2"), ("K", "K")])
UNIT_TEXT = st.one_of(st.text("ms-1^*/()%degCFKkg0123456789 .eE_", max_size=10), st.text(max_size=6),
                      st.sampled_from(["1/0", "g(", "m**1e400", "0 K", "1e400 m"]))


@given(known=KNOWN_UNITS, other=st.tuples(UNIT_TEXT, TARGETS), pick_known=st.booleans())
def test_units_convert_affinely_or_are_refused_by_name(known, other, pick_known):
    units, to = known if pick_known else other
    from earthgraph.data.units import UnitsError, convert_units

    x = np.array([1.0, 2.0, 3.0])
    try:
        out = convert_units(x, units, to, "obs.csv, column 'v'")
    except UnitsError as e:
        assert str(e).startswith("obs.csv, column 'v': "), str(e)
        event("refused")
        return
    event("converted")
    # A conversion is affine and one to one: finite, and no two values made equal.
    assert np.all(np.isfinite(out)) and out[0] != out[1] != out[2]
    assert np.isclose(out[2] - out[1], out[1] - out[0], rtol=1e-12)
