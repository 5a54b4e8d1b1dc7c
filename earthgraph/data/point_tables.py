"""Reading users' point tables: CSV (optionally gzipped), parquet and netCDF point files,
and their times, in whatever form real files hold them.

Times may be ISO 8601 or other text (``1995-03-17 23:45``, ``b'1995 03 17 23:45
UTC'`` byte strings from netCDF character arrays, or a ``time_format``),
datetimes (netCDF times CF-decoded by xarray), or numbers with CF units
(``seconds since 1970-01-01``, ``hours since 1900-01-01 00:00``), which must be
given: a number alone does not say what it counts. Times with a UTC offset are
converted to UTC; times without one are UTC. Every time is rounded to the nearest
second (what the store holds). A time is left unparsed (the row is counted as
rejected) rather than guessed: text that leaves out the year, month or day
(``12:00``, ``may``: a parser would take them from today), a two-digit year, a
zone name other than UTC/GMT/Z (a parser would drop it), ``UTC+2`` (POSIX reads it
as two hours *behind* UTC), or a number that is no time in years 1 to 9999.

A CSV file that does not end with a line break is refused: its last line may have
been cut inside a number (``15.25`` read as ``15.2``).

A netCDF variable is one column per entry of the rows' dimensions (those of
the time, latitude and longitude variables). A variable with a further
dimension (cloud layers, say) would multiply the rows: it is refused, naming the
dimension, unless ``select`` picks one index of it. Only the variables the spec
uses are read. A truncated classic netCDF file is refused
(:mod:`earthgraph.data.netcdf_classic`), where the netCDF library would read its
missing tail as zeros.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from earthgraph.data.netcdf_classic import check_not_truncated
from earthgraph.data.obs_types import is_identifier

_CF_TIME_UNITS = re.compile(r"^\s*(second|minute|hour|day)s?\s+since\s+(.+?)\s*$", re.IGNORECASE)
_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# "UTC+2" / "GMT-3": POSIX zones, which dateutil reads with the sign reversed.
_POSIX_ZONE = re.compile(r"(?i)\b(gmt|utc)\s*[+-]")
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TICKS_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}  # pandas' datetime resolutions
# The seconds since 1970 of 0001-01-01 and 9999-12-31T23:59:59: the times a date can spell.
_FIRST_SECOND, _LAST_SECOND = -62135596800, 253402300799


class IngestError(ValueError):
    """A table that cannot be ingested; the message names the file and the field."""


@dataclass
class TableSpec:
    """How a table's columns map onto an observation type.

    ``values`` maps channel names to column names; ``units`` gives a column's
    units where they differ from the channel's (any units pint knows: knots,
    degF, hPa, mm, percent ...). A station or buoy file without coordinate
    columns gives ``fixed_lat``/``fixed_lon`` (degrees) instead. ``errors``
    overrides channels' declared observation errors; ``metadata`` maps metadata
    names to a column name or a constant. ``time_units`` (CF, ``seconds since
    1970-01-01``) reads a numeric time column; ``time_format`` (strftime) reads
    text times no automatic parser understands. ``select`` picks one index of a
    netCDF variable's extra dimension (``{"layer": 0}``).
    """

    values: dict[str, str]
    time: str = "time"
    lat: str | None = "lat"
    lon: str | None = "lon"
    units: dict[str, str] = field(default_factory=dict)
    fixed_lat: float | None = None
    fixed_lon: float | None = None
    errors: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, str | float] = field(default_factory=dict)
    time_units: str | None = None
    time_format: str | None = None
    select: dict[str, int] = field(default_factory=dict)

    def columns(self) -> list[str]:
        """Every column the spec reads."""
        named = [self.time, self.lat, self.lon, *self.values.values(),
                 *(v for v in self.metadata.values() if isinstance(v, str))]
        return list(dict.fromkeys(c for c in named if c is not None))


def read_table(path: str | os.PathLike, spec: TableSpec | None = None) -> pd.DataFrame:
    """A CSV (optionally gzipped), parquet or netCDF point file as a DataFrame.

    With a ``spec``, a netCDF file gives only the columns the spec uses (and is
    checked for extra dimensions); other formats give every column.
    """
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    try:
        if name.endswith((".csv", ".csv.gz", ".txt")):
            if not name.endswith(".gz"):  # gzip's own length check catches a cut .gz
                _check_ends_with_line_break(path)
            # Identifiers as text: "06260" must not become the number 6260.
            ids = {} if spec is None else {c: str for m, c in spec.metadata.items()
                                           if isinstance(c, str) and is_identifier(m)}
            return pd.read_csv(path, dtype=ids)
        if name.endswith((".parquet", ".pq")):
            return _read_parquet(path)
        if name.endswith((".nc", ".nc4", ".cdf")):
            return _read_netcdf(path, spec)
    except IngestError:
        raise
    except ImportError as e:
        raise IngestError(f"{path}: reading this format needs a package that is not installed ({e})") from e
    except Exception as e:  # pandas/xarray raise many types for damaged files
        raise IngestError(f"{path}: cannot be read as a table: {type(e).__name__}: {e}") from e
    raise IngestError(f"{path}: unknown table format (expected .csv, .csv.gz, .parquet or .nc)")


def _read_parquet(path: Path) -> pd.DataFrame:
    """A parquet file as pandas reads it, its data checked first: a damaged file can hold text
    that is not UTF-8, which pandas would meet only when the column is used (an ArrowException)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    table.validate(full=True)
    return table.to_pandas()


def _check_ends_with_line_break(path: Path) -> None:
    """Refuse a text table whose last line is not ended: the file may have been cut inside a
    number, which would then be read as another number."""
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return  # empty: pandas says so
        f.seek(-1, os.SEEK_END)
        if f.read(1) in (b"\n", b"\r"):
            return
        f.seek(max(f.tell() - 80, 0))
        last = f.read().decode(errors="replace").splitlines()[-1]
    raise IngestError(f"{path}: the file ends inside a line ({last!r}), as a truncated file does; a value there "
                      "may be cut short. If the file is complete, end its last line with a line break")


def _read_netcdf(path: Path, spec: TableSpec | None) -> pd.DataFrame:
    import xarray as xr

    try:
        check_not_truncated(path)
    except EOFError as e:
        raise IngestError(f"{path}: cannot be read as a table: {e}") from None
    with xr.open_dataset(path) as ds:
        if spec is None:
            return ds.load().to_dataframe().reset_index()
        wanted = [c for c in spec.columns() if c in ds.variables]
        missing = [c for c in spec.columns() if c not in ds.variables and c not in (spec.lat, spec.lon)]
        if missing:
            raise IngestError(f"{path}: no variable {missing[0]!r}; variables are {sorted(map(str, ds.variables))}")
        ds = _select(ds[wanted], spec.select, path)
        row_dims = {d for c in (spec.time, spec.lat, spec.lon) if c in ds.variables for d in ds[c].dims}
        for c in wanted:
            extra = [d for d in ds[c].dims if d not in row_dims]
            if extra:
                sizes = ", ".join(f"{d} ({ds.sizes[d]} entries)" for d in extra)
                raise IngestError(f"{path}, variable {c!r}: dims {list(ds[c].dims)} go beyond the rows' "
                                  f"{sorted(row_dims)}: {sizes} would multiply its rows; pick one with "
                                  f"--select {extra[0]}=INDEX")
        return ds.load().to_dataframe().reset_index()


def _select(ds, select: dict[str, int], path: Path):
    for dim, index in select.items():
        if dim not in ds.dims:
            raise IngestError(f"{path}: --select {dim}={index}: no dimension {dim!r}; dims are {dict(ds.sizes)}")
        if not isinstance(index, (int, np.integer)) or not -ds.sizes[dim] <= index < ds.sizes[dim]:
            raise IngestError(f"{path}: --select {dim}={index}: expected an index in 0 .. {ds.sizes[dim] - 1}")
        ds = ds.isel({dim: int(index)})
    return ds


def table_times(raw: np.ndarray, spec: TableSpec, file: str) -> tuple[np.ndarray, np.ndarray]:
    """A time column as ``(seconds since 1970 (n,) int64, parsed (n,) bool)``; unparsed rows get 0."""
    series = pd.Series(raw)
    if series.dtype.kind == "M" or isinstance(series.dtype, pd.DatetimeTZDtype):
        return _seconds(pd.to_datetime(series, utc=True))
    if series.dtype.kind in "biuf" and spec.time_format is not None:
        # Dates written as numbers, 19950317 with time_format "%Y%m%d".
        return _text_times(series.map(lambda v: str(int(v)) if float(v).is_integer() else str(v)), spec)
    if series.dtype.kind in "biuf":
        return _numeric_times(series, spec, file)
    text = series.map(_decoded)
    if spec.time_units is not None and spec.time_format is None:
        # Numbers among text (a number column with a stray word): each read as a number, and
        # text among them is no time. A column of text alone is read as text times.
        numbers = pd.to_numeric(text, errors="coerce")
        if numbers.notna().any():
            return _numeric_times(numbers, spec, file)
    return _text_times(text, spec)


def _decoded(value):
    """A time cell as text: bytes (netCDF characters) decoded, missing entries kept missing."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value.strip() if isinstance(value, str) else value if pd.isna(value) else str(value)


def _seconds(times: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """UTC datetimes (any resolution, NaT where missing) as whole seconds, rounded to the
    nearest (half up), and which were present."""
    parsed = times.notna().to_numpy().copy()  # writable: text times fill it in
    stamps = times.dt.tz_convert(None).to_numpy()
    per_second = _TICKS_PER_SECOND[np.datetime_data(stamps.dtype)[0]]
    # divmod floors: no overflow near the ends of int64, where NaT lies.
    whole, rest = np.divmod(stamps.view(np.int64), per_second)
    return np.where(parsed, whole + (2 * rest >= per_second), 0).astype(np.int64), parsed


def _numeric_times(numbers: pd.Series, spec: TableSpec, file: str) -> tuple[np.ndarray, np.ndarray]:
    """Numbers with CF units ``<seconds|minutes|hours|days> since <date>`` as seconds since 1970.

    Computed in seconds, not through datetimes: a number that is no time in years 1 to 9999
    (inf, 1e300) is left unparsed rather than overflowing."""
    if spec.time_units is None:
        example = (numbers.dropna() if numbers.notna().any() else numbers).iloc[0].item()
        raise IngestError(f"{file}, column {spec.time!r}: times are numbers (e.g. {example!r}) without units; give "
                          "them with --time-units, e.g. 'seconds since 1970-01-01' (CF)")
    match = _CF_TIME_UNITS.match(spec.time_units)
    reference = pd.to_datetime(match.group(2), utc=True, errors="coerce") if match else pd.NaT
    if match is None or pd.isna(reference):
        raise IngestError(f"{file}, column {spec.time!r}: time units {spec.time_units!r} are not "
                          "'<seconds|minutes|hours|days> since <date>'")
    since = reference.to_pydatetime(warn=False) - _UNIX_EPOCH
    whole = since.days * 86400 + since.seconds  # exact; the reference's fraction joins the offsets
    with np.errstate(over="ignore", invalid="ignore"):
        offsets = np.floor(numbers.to_numpy(np.float64) * _SECONDS[match.group(1).lower()]
                           + since.microseconds / 1e6 + 0.5)
    parsed = np.isfinite(offsets) & (offsets >= _FIRST_SECOND - whole) & (offsets <= _LAST_SECOND - whole)
    seconds = np.zeros(len(offsets), np.int64)
    seconds[parsed] = whole + offsets[parsed].astype(np.int64)
    return seconds, parsed


def _text_times(text: pd.Series, spec: TableSpec) -> tuple[np.ndarray, np.ndarray]:
    """Text times: with ``time_format`` as it says, else ISO 8601 and then, entry by entry,
    the forms :func:`_loose_time` reads."""
    # pandas reads "now" and "today" as the clock's time: no time a table can mean.
    text = text.mask(text.map(lambda v: isinstance(v, str) and v.lower() in ("now", "today")).astype(bool))
    if spec.time_format is not None:
        return _seconds(pd.to_datetime(text, format=spec.time_format, errors="coerce", utc=True))
    seconds, parsed = _seconds(pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601"))
    for i in np.flatnonzero(~parsed & text.notna().to_numpy()):
        loose = _loose_time(text.iloc[i])
        if loose is not None:
            seconds[i], parsed[i] = loose, True
    return seconds, parsed


def _loose_time(text: str) -> int | None:
    """Seconds since 1970 of a time written otherwise than in ISO 8601 (``1995 03 17 23:45 UTC``,
    ``17 Mar 1995 23:45``), or None where reading it would be a guess.

    dateutil takes what the text leaves out from a default date (today, for pandas' "mixed"
    parser, which also reads "now"), guesses a century for a two-digit year, drops a zone name
    it does not know and reverses the sign of ``UTC+2``: each of these is refused here.
    """
    from dateutil import parser

    if _POSIX_ZONE.search(text):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", parser.UnknownTimezoneWarning)
            first = parser.parse(text, default=datetime(2000, 1, 1))
            second = parser.parse(text, default=datetime(2001, 2, 2))  # differs wherever the text is silent
        if first != second or f"{first.year:04d}" not in text:
            return None
        since = (first if first.tzinfo is not None else first.replace(tzinfo=timezone.utc)) - _UNIX_EPOCH
    except (ValueError, OverflowError, TypeError, parser.UnknownTimezoneWarning):
        return None  # ParserError is a ValueError; so is an offset of a day or more
    return since.days * 86400 + since.seconds + (since.microseconds >= 500_000)
