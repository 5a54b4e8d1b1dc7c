"""Tabular point observations (CSV, parquet, netCDF point files) into an observation store.

A user's table becomes rows of one registered observation type. Every row is
checked; a rejected row is counted under the first reason it fails
(:data:`REJECT_REASONS`), never dropped silently, and the counts come back in
an :class:`IngestReport`. A file that cannot be read, a column that is not
there or a unit that cannot be converted raises :class:`IngestError` naming
the file, the field and the value. Writing goes through
:class:`~earthgraph.data.store.StoreWriter`, so an existing store is either
replaced whole by the merged result or left exactly as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.data import obs_types
from earthgraph.data.obs_types import ObservationType
from earthgraph.data.store import ObservationStore, StoreWriter
from earthgraph.data.units import UnitsError, convert_units

REJECT_REASONS = ("unparseable_time", "bad_latitude", "bad_longitude", "missing_value", "out_of_range", "duplicate")


class IngestError(ValueError):
    """A table that cannot be ingested; the message names the file and the field."""


@dataclass
class TableSpec:
    """How a table's columns map onto an observation type.

    ``values`` maps channel names to column names; ``units`` gives a column's
    units where they differ from the channel's. A station or buoy file without
    coordinate columns gives ``fixed_lat``/``fixed_lon`` (degrees) instead.
    ``errors`` overrides channels' declared observation errors; ``metadata``
    maps metadata names to a column name or a constant.
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


@dataclass
class IngestReport:
    file: str
    rows_read: int
    rows_accepted: int
    rejected: dict[str, int]

    def __str__(self) -> str:
        bad = ", ".join(f"{k} {v}" for k, v in self.rejected.items() if v) or "none"
        return f"{self.file}: {self.rows_read} rows read, {self.rows_accepted} accepted; rejected: {bad}"


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV (optionally gzipped), parquet or netCDF point file as a DataFrame."""
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    try:
        if name.endswith((".csv", ".csv.gz", ".txt")):
            return pd.read_csv(path)
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".nc", ".nc4", ".cdf")):
            with xr.open_dataset(path) as ds:
                return ds.load().to_dataframe().reset_index()
    except ImportError as e:
        raise IngestError(f"{path}: reading this format needs a package that is not installed ({e})") from e
    except Exception as e:  # pandas/xarray raise many types for damaged files
        raise IngestError(f"{path}: cannot be read as a table: {type(e).__name__}: {e}") from e
    raise IngestError(f"{path}: unknown table format (expected .csv, .csv.gz, .parquet or .nc)")


def _column(df: pd.DataFrame, name: str, file: str, role: str) -> np.ndarray:
    if name not in df.columns:
        raise IngestError(f"{file}: no column {name!r} for {role}; columns are {list(df.columns)}")
    return df[name].to_numpy()


def table_to_columns(df: pd.DataFrame, obs_type: ObservationType, spec: TableSpec,
                     file: str) -> tuple[dict[str, np.ndarray], IngestReport]:
    """Validate a table's rows; returns the accepted rows as store columns (sorted by
    time) and the report of what was rejected and why."""
    unknown = sorted(set(spec.values) - set(obs_type.channel_names))
    if unknown:
        raise IngestError(f"{file}: observation type {obs_type.name!r} has no channel(s) {unknown}; "
                          f"it has {obs_type.channel_names}")
    n = len(df)
    reason = np.full(n, "", dtype=object)

    def reject(mask: np.ndarray, why: str) -> None:
        reason[(reason == "") & mask] = why

    raw_time = pd.Series(_column(df, spec.time, file, "time"))
    time = pd.to_datetime(raw_time, errors="coerce", utc=True, format="ISO8601")
    retry = time.isna() & raw_time.notna()
    if retry.any():  # not ISO 8601: parse those entries one by one
        time[retry] = pd.to_datetime(raw_time[retry], errors="coerce", utc=True, format="mixed")
    reject(time.isna().to_numpy(), "unparseable_time")
    seconds = np.where(time.isna(), 0, time.dt.tz_localize(None).to_numpy().astype("datetime64[s]").astype(np.int64))

    def coordinate(col: str | None, fixed: float | None, role: str) -> np.ndarray:
        if col is not None and col in df.columns:
            return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        if fixed is None:
            raise IngestError(f"{file}: no column {col!r} for {role} and no fixed_{role[:3]} given; "
                              f"columns are {list(df.columns)}")
        return np.full(n, float(fixed))

    lat = coordinate(spec.lat, spec.fixed_lat, "latitude")
    lon = coordinate(spec.lon, spec.fixed_lon, "longitude")
    reject(~np.isfinite(lat) | (np.abs(lat) > 90.0), "bad_latitude")
    reject(~np.isfinite(lon), "bad_longitude")
    lon = np.mod(np.where(np.isfinite(lon), lon, 0.0) + 180.0, 360.0) - 180.0

    values = np.full((n, len(obs_type.channels)), np.nan)
    for c, ch in enumerate(obs_type.channels):
        if ch.name not in spec.values:
            continue
        col = spec.values[ch.name]
        raw = pd.to_numeric(pd.Series(_column(df, col, file, f"channel {ch.name!r}")), errors="coerce").to_numpy(np.float64)
        try:
            values[:, c] = convert_units(raw, spec.units.get(ch.name, ch.units), ch.units, f"{file}, column {col!r}")
        except UnitsError as e:
            raise IngestError(str(e)) from e
    present = np.isfinite(values)
    reject(~present.any(axis=1), "missing_value")
    lo = np.array([c.valid_min for c in obs_type.channels])
    hi = np.array([c.valid_max for c in obs_type.channels])
    reject((present & ((values < lo) | (values > hi))).any(axis=1), "out_of_range")

    key = pd.DataFrame({"t": seconds, "la": lat, "lo": lon})
    reject(key.duplicated(keep="first").to_numpy() & (reason == ""), "duplicate")

    keep = reason == ""
    order = np.argsort(seconds[keep], kind="stable")
    errors = np.array([spec.errors.get(c.name, c.error) for c in obs_type.channels], dtype=np.float32)
    cols = {
        "time": seconds[keep][order],
        "lat": lat[keep][order],
        "lon": lon[keep][order],
        "values": values[keep][order].astype(np.float32),
        "error": np.broadcast_to(errors, (int(keep.sum()), len(errors))).copy(),
    }
    for m in obs_type.metadata:
        src = spec.metadata.get(m, np.nan)
        col = _column(df, src, file, f"metadata {m!r}") if isinstance(src, str) else np.full(n, float(src))
        cols[m] = pd.to_numeric(pd.Series(col), errors="coerce").to_numpy(np.float32)[keep][order]
    report = IngestReport(file, n, int(keep.sum()), {r: int(np.sum(reason == r)) for r in REJECT_REASONS})
    return cols, report


def ingest_tables(store: str | os.PathLike, type_name: str, sources: list[tuple[str | os.PathLike, TableSpec]],
                  *, append: bool = True) -> list[IngestReport]:
    """Validate tables and write their rows as ``type_name`` observations into ``store``.

    With ``append`` (the default) an existing store keeps everything it holds
    and gains the new rows (rewritten beside it, then swapped in); without it
    an existing store is an error. Nothing is written unless every file was
    read and at least one row was accepted.
    """
    obs_type = obs_types.get(type_name)
    reports, parts = [], []
    for path, spec in sources:
        cols, report = table_to_columns(read_table(path), obs_type, spec, str(path))
        reports.append(report)
        parts.append(cols)
    if sum(r.rows_accepted for r in reports) == 0:
        raise IngestError("no valid rows to ingest: " + "; ".join(str(r) for r in reports))
    new = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    store = Path(store)
    existing = None
    if store.exists():
        if not append:
            raise IngestError(f"store {store} exists; ingest with append=True to add to it")
        existing = ObservationStore(store).load()
    types = [existing.obs_type(n) for n in existing.type_names] if existing else []
    if type_name not in [t.name for t in types]:
        types.append(obs_type)
    provenance = dict(existing.attrs.get("provenance", {})) if existing else {}
    provenance.setdefault("ingested", [])
    provenance["ingested"] = list(provenance["ingested"]) + [str(p) for p, _ in sources]

    with StoreWriter(store, types, provenance=provenance, overwrite=existing is not None) as writer:
        if existing is not None:
            static = existing.static()
            if static:
                lat, lon = static.pop("latitude"), static.pop("longitude")
                writer.add_static(lat, lon, static)
        for t in types:
            cols = None
            if existing is not None and t.name in existing.type_names:
                lo, hi = existing.time_range  # inclusive
                cols = existing.read(t.name, lo, hi + 1)
            if t.name == type_name:
                cols = new if cols is None else _merge_sorted(cols, new)
            if cols is not None and len(cols["time"]):
                writer.append(t.name, cols)
    return reports


def _merge_sorted(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two column sets into one, stably sorted by time (a's rows first at equal times)."""
    merged = {k: np.concatenate([a[k], b[k].astype(a[k].dtype)]) for k in a}
    order = np.argsort(merged["time"], kind="stable")
    return {k: v[order] for k, v in merged.items()}
