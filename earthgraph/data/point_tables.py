"""Reading users' point tables: CSV (optionally gzipped), parquet and netCDF point files,
and their times, in whatever form real files hold them.

Times may be ISO 8601 or other text (``1995-03-17 23:45``, ``b'1995 03 17 23:45
UTC'`` byte strings from netCDF character arrays, or a ``time_format``),
datetimes (netCDF times CF-decoded by xarray), or numbers with CF units
(``seconds since 1970-01-01``, ``hours since 1900-01-01 00:00``), which must be
given: a number alone does not say what it counts.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from earthgraph.data.netcdf_classic import check_not_truncated
from earthgraph.data.obs_types import is_identifier

_CF_TIME_UNITS = re.compile(r"^\s*(second|minute|hour|day)s?\s+since\s+(.+?)\s*$", re.IGNORECASE)
_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


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
            # Identifiers as text: "06260" must not become the number 6260.
            ids = {} if spec is None else {c: str for m, c in spec.metadata.items()
                                           if isinstance(c, str) and is_identifier(m)}
            return pd.read_csv(path, dtype=ids)
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".nc", ".nc4", ".cdf")):
            return _read_netcdf(path, spec)
    except IngestError:
        raise
    except ImportError as e:
        raise IngestError(f"{path}: reading this format needs a package that is not installed ({e})") from e
    except Exception as e:  # pandas/xarray raise many types for damaged files
        raise IngestError(f"{path}: cannot be read as a table: {type(e).__name__}: {e}") from e
    raise IngestError(f"{path}: unknown table format (expected .csv, .csv.gz, .parquet or .nc)")


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
        times = pd.to_datetime(series, utc=True)
    elif series.dtype.kind in "biuf" and spec.time_format is None:
        times = _numeric_times(series, spec, file)
    elif series.dtype.kind in "biuf":  # dates written as numbers, 19950317 with time_format "%Y%m%d"
        times = _text_times(series.map(lambda v: str(int(v)) if float(v).is_integer() else str(v)), spec)
    else:
        times = _text_times(series.map(lambda v: v.decode(errors="replace") if isinstance(v, bytes) else v), spec)
    parsed = times.notna().to_numpy()
    seconds = np.zeros(len(series), np.int64)
    seconds[parsed] = times[parsed].dt.tz_localize(None).to_numpy().astype("datetime64[s]").astype(np.int64)
    return seconds, parsed


def _numeric_times(series: pd.Series, spec: TableSpec, file: str) -> pd.Series:
    """Numbers with CF units ``<seconds|minutes|hours|days> since <date>`` as UTC datetimes."""
    if spec.time_units is None:
        example = (series.dropna() if series.notna().any() else series).iloc[0].item()
        raise IngestError(f"{file}, column {spec.time!r}: times are numbers (e.g. {example!r}) without units; give "
                          "them with --time-units, e.g. 'seconds since 1970-01-01' (CF)")
    match = _CF_TIME_UNITS.match(spec.time_units)
    reference = pd.to_datetime(match.group(2), utc=True, errors="coerce") if match else pd.NaT
    if match is None or pd.isna(reference):
        raise IngestError(f"{file}, column {spec.time!r}: time units {spec.time_units!r} are not "
                          "'<seconds|minutes|hours|days> since <date>'")
    offsets = pd.to_timedelta(series.astype(np.float64) * _SECONDS[match.group(1).lower()], unit="s")
    return reference + offsets


def _text_times(series: pd.Series, spec: TableSpec) -> pd.Series:
    if spec.time_format is not None:
        return pd.to_datetime(series, format=spec.time_format, errors="coerce", utc=True)
    times = pd.to_datetime(series, errors="coerce", utc=True, format="ISO8601")
    retry = times.isna() & series.notna()
    if retry.any():  # not ISO 8601: parse those entries one by one
        times[retry] = pd.to_datetime(series[retry], errors="coerce", utc=True, format="mixed")
    return times
