"""Tabular point observations (CSV, parquet, netCDF point files) into an observation store.

A user's table becomes rows of one observation type: a built-in one, one
already in the store, or one declared in YAML (:mod:`earthgraph.data.type_files`).
Every row is checked; a rejected row is counted under the first reason it fails
(:data:`REJECT_REASONS`), with an example value and its column, never dropped
silently, and the counts come back in an :class:`IngestReport`. Duplicates are
judged among the rows that pass every other check, and against what the store
already holds, so ingesting a file twice adds nothing.

What is stored is what the file says, or the row is rejected: longitudes are taken
in [-360, 360] and shifted into [-180, 180) exactly (a longitude beyond is
``bad_longitude``); text where a value belongs is ``missing_value`` (a value that is
no number), and inf or a value that float32 (the store's values) cannot hold is
``out_of_range``. An identifier column is stored as text codes unless it holds only
integers that float32 keeps exact (up to 2**24).

A file that cannot be read (a truncated netCDF or CSV too), a column that is not
there, a metadata name the type does not declare, a variable with extra
dimensions, units that cannot be converted, numeric times without units or
identifiers that need text codes where the store holds that field as numbers
raise :class:`IngestError` naming the file, the field and the value. Writing
goes through :class:`~earthgraph.data.store_writer.StoreWriter`, so an existing store
is either replaced whole by the merged result or left exactly as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from earthgraph.data import obs_types
from earthgraph.data.identifiers import MAX_CODES, as_text, encode_text, is_text
from earthgraph.data.obs_types import ObservationType, is_identifier
from earthgraph.data.point_tables import IngestError, TableSpec, read_table, table_times
from earthgraph.data.store import ObservationStore
from earthgraph.data.store_writer import StoreWriter
from earthgraph.data.units import UnitsError, convert_units
from earthgraph.progress import progress

__all__ = ["REJECT_REASONS", "IngestError", "IngestReport", "TableSpec", "ingest_tables", "read_table",
           "table_to_columns"]

REJECT_REASONS = ("unparseable_time", "bad_latitude", "bad_longitude", "missing_value", "out_of_range", "duplicate",
                  "already_stored")
# Text that pandas' CSV reader reads as missing: the same text in a parquet or netCDF
# column is missing too, not a wrong-typed value.
MISSING_TEXT = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                          "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


@dataclass
class IngestReport:
    """What became of one file's rows: counts by reason, and an example of each reason."""

    file: str
    rows_read: int
    rows_accepted: int
    rejected: dict[str, int]
    examples: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        bad = ", ".join(f"{k} {v}" + (f" ({self.examples[k]})" if k in self.examples else "")
                        for k, v in self.rejected.items() if v) or "none"
        return f"{self.file}: {self.rows_read} rows read, {self.rows_accepted} accepted; rejected: {bad}"


class _Rejections:
    """Each row's first reason for rejection, with an example per reason."""

    def __init__(self, n: int):
        self.reason = np.full(n, "", dtype=object)
        self.examples: dict[str, str] = {}

    @property
    def alive(self) -> np.ndarray:
        return self.reason == ""

    def reject(self, mask: np.ndarray, why: str, column: str | None = None, raw=None) -> None:
        new = self.alive & mask
        if new.any() and why not in self.examples:
            row = int(np.flatnonzero(new)[0])
            where = f"row {row + 1}" + (f", column {column!r}" if column else "")
            self.examples[why] = f"{where}: {_plain(raw[row])!r}" if raw is not None else where
        self.reason[new] = why

    def counts(self) -> dict[str, int]:
        return {r: int(np.sum(self.reason == r)) for r in REJECT_REASONS}


def _plain(value):
    """A value as Python prints it for a user (95.0, not np.float64(95.0))."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value.item() if isinstance(value, np.generic) else value


def _column(df: pd.DataFrame, name: str, file: str, role: str) -> np.ndarray:
    if name not in df.columns:
        raise IngestError(f"{file}: no column {name!r} for {role}; columns are {list(df.columns)}")
    return df[name].to_numpy()


def _coordinate(df: pd.DataFrame, col: str | None, fixed: float | None, role: str, file: str) -> np.ndarray:
    if col is not None and col in df.columns:
        return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    if fixed is None:
        raise IngestError(f"{file}: no column {col!r} for {role} and no fixed_{role[:3]} given; "
                          f"columns are {list(df.columns)}")
    return np.full(len(df), float(fixed))


def _values(df: pd.DataFrame, obs_type: ObservationType, spec: TableSpec, file: str,
            rows: "_Rejections") -> np.ndarray:
    """(n, C) float64 channel values in the type's units; NaN where a channel is not given.
    A row with text that is no number where a value belongs is rejected as ``missing_value``."""
    values = np.full((len(df), len(obs_type.channels)), np.nan)
    for c, ch in enumerate(obs_type.channels):
        if ch.name not in spec.values:
            continue
        col = spec.values[ch.name]
        cells = pd.Series(_column(df, col, file, f"channel {ch.name!r}"))
        raw = pd.to_numeric(cells, errors="coerce")
        text = np.zeros(len(cells), bool)
        for i in np.flatnonzero((raw.isna() & cells.notna()).to_numpy()):  # few: look at each
            text[i] = not _is_missing(cells.iloc[i])
        rows.reject(text, "missing_value", col, cells.to_numpy())
        try:
            values[:, c] = convert_units(raw.to_numpy(np.float64), spec.units.get(ch.name, ch.units), ch.units,
                                         f"{file}, column {col!r}")
        except UnitsError as e:
            raise IngestError(str(e)) from None
    return values


def _is_missing(cell) -> bool:
    """Whether a value cell is empty (NaN, None, "", "n/a" ...), as opposed to holding text."""
    if isinstance(cell, bytes):
        cell = cell.decode(errors="replace")
    return cell.strip() in MISSING_TEXT if isinstance(cell, str) else bool(pd.isna(cell))


def _normal_longitude(lon: np.ndarray) -> np.ndarray:
    """Longitudes in [-360, 360] moved into [-180, 180) exactly: adding or subtracting 360 to
    a number between 180 and 360 in size is exact (Sterbenz), where ``(lon + 180) % 360 - 180``
    would round every longitude (20.1 became 20.099999999999994)."""
    return np.where(lon >= 180.0, lon - 360.0, np.where(lon < -180.0, lon + 360.0, lon))


def _metadata(df: pd.DataFrame, obs_type: ObservationType, spec: TableSpec, file: str,
              codes: dict[str, list[str]], numeric: set[str]) -> dict[str, np.ndarray]:
    """One float32 column per metadata field of the type; text identifiers become codes
    (``codes`` is extended in place). ``numeric``: the identifiers the store already holds as
    numbers, which codes cannot join (a stored 3 would read as the third code's text)."""
    unknown = sorted(set(spec.metadata) - set(obs_type.metadata))
    if unknown:
        raise IngestError(f"{file}: observation type {obs_type.name!r} has no metadata {unknown}; "
                          f"it declares {list(obs_type.metadata)}")
    out = {}
    for m in obs_type.metadata:
        src = spec.metadata.get(m, np.nan)
        if not isinstance(src, str):
            out[m] = np.full(len(df), float(src), np.float32)
            continue
        col = _column(df, src, file, f"metadata {m!r}")
        if not is_identifier(m):
            numbers = pd.to_numeric(pd.Series(col), errors="coerce")
            text = pd.Series(col)[numbers.isna() & pd.Series(col).notna()]
            if len(text):
                raise IngestError(f"{file}, column {src!r}: metadata {m!r} is a number the model reads, but the "
                                  f"column holds text such as {_plain(text.iloc[0])!r}; text is kept only for "
                                  "identifiers (metadata named *_id)")
            out[m] = numbers.to_numpy(np.float32)
        elif m in codes or is_text(col):
            if m in numeric:
                example = next(t for t in as_text(col).dropna() if is_text(np.array([t], dtype=object)))
                raise IngestError(f"{file}, column {src!r}: identifiers such as {example!r} are stored as text "
                                  f"codes, but the store holds {m!r} of type {obs_type.name!r} as numbers, which "
                                  "codes cannot join; ingest this file into a new store")
            out[m], codes[m] = encode_text(col, codes.get(m, []))
            if len(codes[m]) > MAX_CODES:
                raise IngestError(f"{file}, column {src!r}: more than {MAX_CODES} distinct identifiers for {m!r}")
        else:
            out[m] = pd.to_numeric(pd.Series(col), errors="coerce").to_numpy(np.float32)
    return out


def _numeric_identifiers(obs_type: ObservationType, codes: dict[str, list[str]],
                         stored: dict[str, np.ndarray] | None) -> set[str]:
    """The identifier fields that stored rows hold as numbers (not as codes)."""
    if stored is None:
        return set()
    return {m for m in obs_type.metadata if is_identifier(m) and m not in codes and np.isfinite(stored[m]).any()}


def _stored_keys(stored: dict[str, np.ndarray] | None) -> pd.MultiIndex | None:
    if stored is None or not len(stored["time"]):
        return None
    return pd.MultiIndex.from_arrays([stored["time"], stored["lat"], stored["lon"]])


def _reject_repeats(rows: _Rejections, seconds: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                    stored: dict[str, np.ndarray] | None) -> None:
    """Reject the rows at the time and place of an earlier row (``duplicate``) or of a stored one
    (``already_stored``). Run last, among the rows every other check let through."""
    alive = np.flatnonzero(rows.alive)
    keys = pd.MultiIndex.from_arrays([seconds[alive], lat[alive], lon[alive]])
    repeated = np.zeros(len(rows.alive), bool)
    repeated[alive[keys.duplicated(keep="first")]] = True
    rows.reject(repeated, "duplicate")
    stored_keys = _stored_keys(stored)
    if stored_keys is not None:
        again = np.zeros(len(rows.alive), bool)
        again[alive[keys.isin(stored_keys)]] = True
        rows.reject(again, "already_stored")


def table_to_columns(df: pd.DataFrame, obs_type: ObservationType, spec: TableSpec, file: str,
                     codes: dict[str, list[str]] | None = None, stored: dict[str, np.ndarray] | None = None
                     ) -> tuple[dict[str, np.ndarray], IngestReport]:
    """Validate a table's rows; returns the accepted rows as store columns (sorted by time)
    and the report of what was rejected and why.

    ``codes``: the text of each identifier code so far, per metadata field (extended in
    place by new identifiers). ``stored``: the columns already in the store for this type;
    a row at the same time and place as a stored one is rejected as ``already_stored``.
    """
    unknown = sorted(set(spec.values) - set(obs_type.channel_names))
    if unknown:
        raise IngestError(f"{file}: observation type {obs_type.name!r} has no channel(s) {unknown}; "
                          f"it has {obs_type.channel_names}")
    codes = {} if codes is None else codes
    n = len(df)
    rows = _Rejections(n)
    seconds, parsed = table_times(_column(df, spec.time, file, "time"), spec, file)
    rows.reject(~parsed, "unparseable_time", spec.time, df[spec.time].to_numpy())
    lat = _coordinate(df, spec.lat, spec.fixed_lat, "latitude", file)
    lon = _coordinate(df, spec.lon, spec.fixed_lon, "longitude", file)
    rows.reject(~np.isfinite(lat) | (np.abs(lat) > 90.0), "bad_latitude", spec.lat, lat)
    rows.reject(~np.isfinite(lon) | (np.abs(lon) > 360.0), "bad_longitude", spec.lon, lon)
    lon = _normal_longitude(lon)

    values = _values(df, obs_type, spec, file, rows)
    given = ~np.isnan(values)
    rows.reject(~given.any(axis=1), "missing_value")
    lo = np.array([c.valid_min for c in obs_type.channels])
    hi = np.array([c.valid_max for c in obs_type.channels])
    with np.errstate(over="ignore"):  # inf in float32 is what is tested for
        unstorable = np.isinf(values.astype(np.float32))
    outside = given & ((values < lo) | (values > hi) | unstorable)
    rows.reject(outside.any(axis=1), "out_of_range", raw=[dict(zip(obs_type.channel_names, v)) for v in values]
                if outside.any() else None)
    meta = _metadata(df, obs_type, spec, file, codes, _numeric_identifiers(obs_type, codes, stored))

    _reject_repeats(rows, seconds, lat, lon, stored)

    keep = rows.alive
    order = np.argsort(seconds[keep], kind="stable")
    errors = np.array([spec.errors.get(c.name, c.error) for c in obs_type.channels], dtype=np.float32)
    cols = {
        "time": seconds[keep][order],
        "lat": lat[keep][order],
        "lon": lon[keep][order],
        "values": values[keep][order].astype(np.float32),
        "error": np.broadcast_to(errors, (int(keep.sum()), len(errors))).copy(),
        **{m: v[keep][order] for m, v in meta.items()},
    }
    return cols, IngestReport(file, n, int(keep.sum()), rows.counts(), rows.examples)


def resolve_type(name: str, declared: list[ObservationType] | None, existing: ObservationStore | None
                 ) -> ObservationType:
    """The type to ingest as: declared (a types file) first, then the store's own, then a
    built-in. A declaration that differs from the store's definition is refused."""
    mine = {t.name: t for t in declared or []}
    in_store = existing.obs_type(name) if existing is not None and name in existing.type_names else None
    if name in mine:
        if in_store is not None and in_store != mine[name]:
            raise IngestError(f"observation type {name!r} is declared differently from its definition in store "
                              f"{existing.path}: declared {mine[name].to_dict()}, stored {in_store.to_dict()}")
        return mine[name]
    if in_store is not None:
        return in_store
    try:
        return obs_types.get(name)
    except KeyError as e:
        raise IngestError(f"{e.args[0]}; declare it in a types file (python -m earthgraph.data types prints "
                          "the built-in ones as a template) and pass it with --types") from None


def ingest_tables(store: str | os.PathLike, obs_type: str | ObservationType,
                  sources: list[tuple[str | os.PathLike, TableSpec]], *, append: bool = True,
                  types: list[ObservationType] | None = None, static: dict[str, np.ndarray] | None = None,
                  show_progress: bool = False) -> list[IngestReport]:
    """Validate tables and write their rows as observations of ``obs_type`` into ``store``.

    ``obs_type``: a name (resolved by :func:`resolve_type` among ``types``, the store's
    types and the built-in ones) or an :class:`ObservationType`. With ``append`` (the
    default) an existing store keeps everything it holds and gains the new rows
    (rewritten beside it, then swapped in); without it an existing store is an error.
    ``static``: static fields to write (``earthgraph.data.store_statics.store_statics``); by
    default an existing store keeps its own. Nothing is written unless every file was
    read and at least one new row was accepted; when every valid row is already stored,
    the store is left as it is.
    """
    store = Path(store)
    existing = None
    if store.exists():
        if not append:
            raise IngestError(f"store {store} exists; ingest with append=True to add to it")
        existing = ObservationStore(store).load()
    if isinstance(obs_type, ObservationType):
        types = [obs_type, *(types or [])]
        obs_type = obs_type.name
    the_type = resolve_type(obs_type, types, existing)
    codes = existing.codes(obs_type) if existing is not None and obs_type in existing.type_names else {}
    stored = None
    if existing is not None and obs_type in existing.type_names:
        lo, hi = existing.time_range
        stored = existing.read(obs_type, lo, hi + 1)
    reports, parts = [], []
    for path, spec in progress(sources, desc=f"ingest {obs_type}", unit="file", enabled=show_progress):
        cols, report = table_to_columns(read_table(path, spec), the_type, spec, str(path), codes,
                                        _merge_sorted(stored, *parts) if parts else stored)
        reports.append(report)
        parts.append(cols)
    accepted = sum(r.rows_accepted for r in reports)
    only_stored = all(sum(r.rejected.values()) == r.rejected["already_stored"] for r in reports)
    if accepted == 0 and only_stored and existing is not None:
        return reports  # everything valid is stored already: nothing to write
    if accepted == 0:
        raise IngestError("no valid rows to ingest: " + "; ".join(str(r) for r in reports))
    _write(store, existing, the_type, _merge_sorted(*parts), codes, [str(p) for p, _ in sources], static)
    return reports


def _write(store: Path, existing: ObservationStore | None, the_type: ObservationType, new: dict[str, np.ndarray],
           codes: dict[str, list[str]], files: list[str], static: dict[str, np.ndarray] | None) -> None:
    """Write ``existing``'s rows and ``new`` rows of ``the_type`` as a new store at ``store``."""
    types = [existing.obs_type(n) for n in existing.type_names] if existing else []
    if the_type.name not in [t.name for t in types]:
        types.append(the_type)
    provenance = dict(existing.attrs.get("provenance", {})) if existing else {}
    provenance["ingested"] = list(provenance.get("ingested", [])) + files
    all_codes = {t.name: existing.codes(t.name) for t in types if existing and t.name in existing.type_names}
    all_codes[the_type.name] = codes
    if static is None and existing is not None:
        static = existing.static() or None
    with StoreWriter(store, types, provenance=provenance, overwrite=existing is not None,
                     codes={k: v for k, v in all_codes.items() if v}) as writer:
        if static:
            static = dict(static)
            lat, lon = static.pop("latitude"), static.pop("longitude")
            writer.add_static(lat, lon, static)
        for t in types:
            cols = None
            if existing is not None and t.name in existing.type_names:
                lo, hi = existing.time_range  # inclusive
                cols = existing.read(t.name, lo, hi + 1)
            if t.name == the_type.name:
                cols = new if cols is None else _merge_sorted(cols, new)
            if cols is not None and len(cols["time"]):
                writer.append(t.name, cols)


def _merge_sorted(*parts: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Column sets into one, stably sorted by time (earlier parts' rows first at equal times)."""
    parts = [p for p in parts if p is not None]
    merged = {k: np.concatenate([p[k].astype(parts[0][k].dtype) for p in parts]) for k in parts[0]}
    order = np.argsort(merged["time"], kind="stable")
    return {k: v[order] for k, v in merged.items()}
