"""The observation store: a zarr (format 3) directory, one group per observation type.

Layout::

    store.zarr/
      zarr.json                 attrs: schema_version, earthgraph_version, provenance, time range
      static/                   optional gridded static fields (land_sea_mask, ...)
      <type>/                   attrs: obs_type (schema), stats, rows, time_min/time_max, codes
        time      int64 (n,)    seconds since 1970-01-01, sorted ascending
        lat, lon  float64 (n,)  degrees, lon in [-180, 180)
        values    float32 (n, C)
        error     float32 (n, C) observation-error standard deviation
        <meta>    float32 (n,)  one column per metadata field; a text identifier (station
                                "06260") is stored as an integer code, its text in the
                                group's ``codes`` attribute (``codes[field][code]``)
        window_start int64 (B+1,) first row of each index bin

``window_start[b]`` is the first row with ``time >= index_origin +
b * index_resolution_s``, so reading any time window costs two lookups and one
contiguous slice. Normalisation statistics (per-channel mean and standard
deviation) are accumulated while the columns stream in.

Writes are atomic: a store is written beside its destination and moved into
place only when complete, so an interrupted write leaves the previous store
untouched.

The layout is versioned (``schema_version``): older stores are read through the
migrations of :mod:`earthgraph.data.store_schema` and rewritten in the current
layout by :func:`earthgraph.data.store_upgrade.upgrade_store`. Stores are written by
:class:`earthgraph.data.store_writer.StoreWriter`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from earthgraph.data.obs_types import ObservationType
from earthgraph.data.store_schema import (INTEGRITY, SCHEMA_VERSION, StoreAttributes, StoreSchemaError,
                                          current_attributes, integrity_digest, missing_chunks)
STATIC_GROUP = "static"
COLUMN_CHUNK = 1 << 16
# Every type's own columns: a metadata field of one of these names would overwrite it.
STORE_COLUMNS = ("time", "lat", "lon", "values", "error", "window_start")
# A type's or metadata field's name becomes a folder or array name: a letter, then letters, digits, _ or -.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def check_names(obs_types: list[ObservationType], store: str) -> None:
    """Raise :class:`StoreError` unless every type and metadata name can be a zarr name and
    none is taken by the store's own group or columns."""
    for t in obs_types:
        if not NAME.fullmatch(t.name) or t.name == STATIC_GROUP:
            raise StoreError(f"store {store}: type name {t.name!r} cannot be a group of the store: a letter, then "
                             f"letters, digits, '_' or '-', and not {STATIC_GROUP!r}")
        for m in t.metadata:
            if not NAME.fullmatch(m) or m in STORE_COLUMNS:
                raise StoreError(f"store {store}, type {t.name!r}: metadata name {m!r} cannot be a column of the "
                                 f"store: a letter, then letters, digits, '_' or '-', and none of {STORE_COLUMNS}")


def observed_column(channel: str) -> str:
    """The column of a forecast store (``train.py predict``, ``evaluate.py``) holding the
    observed value of ``channel`` beside the forecast in ``values``."""
    return f"observed_{channel}"


class StoreError(ValueError):
    """A store that cannot be written or read as asked; the message names the store and field."""


@dataclass
class RunningStats:
    """Per-channel count, mean and M2 (Chan et al.'s parallel update), float64."""

    n_channels: int
    count: np.ndarray = field(init=False)
    mean: np.ndarray = field(init=False)
    m2: np.ndarray = field(init=False)

    def __post_init__(self):
        self.count = np.zeros(self.n_channels)
        self.mean = np.zeros(self.n_channels)
        self.m2 = np.zeros(self.n_channels)

    def update(self, values: np.ndarray) -> None:
        x = values.astype(np.float64)
        n_b = np.sum(np.isfinite(x), axis=0)
        if not np.any(n_b):
            return
        mean_b = np.where(n_b > 0, np.nansum(x, axis=0) / np.maximum(n_b, 1), 0.0)
        m2_b = np.nansum((x - mean_b) ** 2, axis=0)
        n = self.count + n_b
        delta = mean_b - self.mean
        safe_n = np.maximum(n, 1)
        self.mean = self.mean + delta * n_b / safe_n
        self.m2 = self.m2 + m2_b + delta**2 * self.count * n_b / safe_n
        self.count = n

    def as_dict(self) -> dict:
        std = np.sqrt(self.m2 / np.maximum(self.count - 1, 1))
        return {"count": self.count.tolist(), "mean": self.mean.tolist(), "std": std.tolist()}


class ObservationStore:
    """Read access to a store written by :class:`StoreWriter`."""

    def __init__(self, path: str | os.PathLike, storage_options: dict | None = None):
        """``path``: a local folder or an fsspec URL (``file://``, ``memory://``, ``s3://`` with
        its fsspec package installed); ``storage_options`` go to fsspec (credentials, caching)."""
        self.path = str(path)
        is_url = "://" in self.path
        if not is_url and not Path(self.path).exists():
            raise StoreError(f"observation store {self.path} does not exist")
        self._storage_options = storage_options if is_url else None
        try:
            self.root = zarr.open_group(self.path, mode="r", storage_options=self._storage_options)
        except Exception as e:  # zarr and fsspec raise several types for missing or damaged metadata
            raise StoreError(f"observation store {self.path} cannot be opened: {type(e).__name__}: {e}") from e
        try:
            current = current_attributes(self.root, self.path)
            self._check_layout(current)
            self._check_integrity(current)
        except StoreSchemaError as e:
            raise StoreError(str(e)) from None
        except StoreError:
            raise
        except Exception as e:  # damaged metadata or columns read by a migration
            raise StoreError(f"observation store {self.path} cannot be read: {type(e).__name__}: {e}") from e
        if current.applied:
            warnings.warn(f"observation store {self.path} is written in schema {current.written_version} and is "
                          f"read through a migration ({'; '.join(current.applied)}); its chunks carry no "
                          f"checksums, so damage to them can go unnoticed. `python -m earthgraph.data upgrade "
                          f"{self.path}` rewrites it in schema {SCHEMA_VERSION}", stacklevel=2)
        self.attrs = current.root
        self._type_attrs = current.types
        self.origin = int(self.attrs["index_origin"])
        self.resolution = int(self.attrs["index_resolution_s"])
        self._types = {n: ObservationType.from_dict(self._type_attrs[n]["obs_type"]) for n in self.attrs["types"]}
        self._index = {n: self._read(n, "window_start", slice(None)) for n in self._types}
        for n, index in self._index.items():
            if len(index) < 2 or index[0] != 0 or index[-1] != self.rows(n) or np.any(np.diff(index) < 0):
                raise StoreError(f"observation store {self.path}, type {n!r}, column 'window_start': not an index of "
                                 f"its {self.rows(n)} rows; the store is damaged: rewrite it from its sources")
        self._cache: dict[str, dict[str, np.ndarray]] = {}
        self.fingerprint = fingerprint(current)

    def _read(self, name: str, column: str, rows: slice) -> np.ndarray:
        """Rows of one column from disk; a damaged chunk (a checksum that fails, a truncated or
        missing file) is a StoreError naming the store, type and column."""
        try:
            return self.root[name][column][rows]
        except Exception as e:  # zarr and its codecs raise RuntimeError, ValueError, KeyError, OSError ...
            raise StoreError(f"observation store {self.path}, type {name!r}, column {column!r}: cannot be read "
                             f"({type(e).__name__}: {e}); the store is damaged: rewrite it from its sources") from e

    def _check_integrity(self, current: StoreAttributes) -> None:
        """Schema 2 and later: the recorded digest of the metadata must match what is on disk."""
        if current.written_version < 2:
            return  # schema 1 recorded none
        recorded = current.root.get(INTEGRITY)
        if recorded != integrity_digest(self.root, current):
            raise StoreError(f"observation store {self.path}: its metadata (zarr.json files) do not match the "
                             f"integrity digest recorded when it was written ({str(recorded)[:12]}...): a file was "
                             "changed or damaged since; rewrite the store from its sources")
        missing = missing_chunks(self.root)
        if missing:
            raise StoreError(f"observation store {self.path}: chunk files are missing from {missing}; the store is "
                             "damaged: rewrite it from its sources")

    def _check_layout(self, current: StoreAttributes) -> None:
        """Named errors for attributes a damaged or foreign store lacks."""
        missing = [k for k in ("types", "index_origin", "index_resolution_s", "time_min", "time_max")
                   if k not in current.root]
        missing += [f"{n}/{k}" for n, a in current.types.items() for k in ("obs_type", "stats", "rows")
                    if k not in a]
        if missing:
            raise StoreError(f"observation store {self.path}: its attributes lack {missing}; it is damaged or was "
                             "not written by earthgraph")

    def changed_on_disk(self) -> str | None:
        """What differs between the store now at this path and the one this object opened
        (its types, rows, statistics or time range), or None when it is the same store.

        Reads the metadata only (a few small files). A store rewritten in place, by
        ``ingest`` for instance, shows up here: a training run checks it between epochs."""
        try:
            root = zarr.open_group(self.path, mode="r", storage_options=self._storage_options)
            now = fingerprint(current_attributes(root, self.path))
        except Exception as e:
            return f"it can no longer be opened ({type(e).__name__}: {e})"
        if now == self.fingerprint:
            return None
        was, is_ = self.fingerprint, now
        diffs = [k for k in sorted(set(was) | set(is_)) if was.get(k) != is_.get(k)]
        more = f" and {len(diffs) - 6} more" if len(diffs) > 6 else ""
        return "changed: " + ", ".join(diffs[:6]) + more

    @property
    def type_names(self) -> list[str]:
        return list(self._types)

    def obs_type(self, name: str) -> ObservationType:
        if name not in self._types:
            raise KeyError(f"observation store {self.path} has no type {name!r}; it has {self.type_names}")
        return self._types[name]

    def static(self) -> dict[str, np.ndarray]:
        """Static gridded fields with their ``latitude``/``longitude`` (degrees); empty if none."""
        if STATIC_GROUP not in self.root:
            return {}
        return {k: self._read(STATIC_GROUP, k, slice(None)) for k in self.root[STATIC_GROUP].array_keys()}

    def codes(self, name: str) -> dict[str, list[str]]:
        """Per metadata field stored as codes, the text of each code (``codes[field][code]``);
        empty for a type whose metadata are all numbers."""
        self.obs_type(name)
        return {m: list(texts) for m, texts in dict(self._type_attrs[name].get("codes", {})).items()}

    def stats(self, name: str) -> dict:
        """Per-channel count, mean and standard deviation over the whole store (kept in its attributes)."""
        self.obs_type(name)
        return dict(self._type_attrs[name]["stats"])

    def period_stats(self, name: str, t0: int, t1: int) -> dict:
        """Per-channel count, mean and standard deviation of the observations with
        ``t0 <= time < t1`` (seconds since 1970), streamed in column chunks.

        A model's normalisation must come from its training period only: the
        store's own statistics (:meth:`stats`) see the test period too."""
        self.obs_type(name)
        lo, hi = self._row_range(name, int(t0), int(t1))
        acc = RunningStats(len(self._types[name].channels))
        src = self._cache.get(name)
        for start in range(lo, hi, COLUMN_CHUNK):
            stop = min(start + COLUMN_CHUNK, hi)
            if src is not None:
                time, values = src["time"][start:stop], src["values"][start:stop]
            else:
                time, values = (self._read(name, k, slice(start, stop)) for k in ("time", "values"))
            acc.update(values[(time >= t0) & (time < t1)])
        return acc.as_dict()

    def rows(self, name: str) -> int:
        return int(self._type_attrs[name]["rows"])

    def type_time_range(self, name: str) -> tuple[int, int] | None:
        """First and last observation time of type ``name`` (seconds since 1970, inclusive),
        or None when the store holds none of it."""
        self.obs_type(name)
        a = self._type_attrs[name]
        return (int(a["time_min"]), int(a["time_max"])) if "time_min" in a else None

    @property
    def time_range(self) -> tuple[int, int]:
        return int(self.attrs["time_min"]), int(self.attrs["time_max"])

    def load(self) -> "ObservationStore":
        """Read every column into memory (small stores; fast window reads)."""
        for name in self._types:
            self._cache[name] = {k: self._read(name, k, slice(None)) for k in self._columns(name)}
        return self

    def _columns(self, name: str) -> list[str]:
        return ["time", "lat", "lon", "values", "error", *self._types[name].metadata]

    def _row_range(self, name: str, t0: int, t1: int) -> tuple[int, int]:
        """Rows of the index bins that cover [t0, t1): a superset of the window."""
        idx = self._index[name]
        last = len(idx) - 1
        b0 = min(max((t0 - self.origin) // self.resolution, 0), last)
        b1 = min(max(-((self.origin - t1) // self.resolution), 0), last)  # ceiling division
        return int(idx[b0]), int(idx[b1])

    def read(self, name: str, t0: int, t1: int) -> dict[str, np.ndarray]:
        """Observations of type ``name`` with ``t0 <= time < t1`` (seconds since 1970)."""
        self.obs_type(name)
        lo, hi = self._row_range(name, int(t0), int(t1))
        src = self._cache.get(name)
        if src is None:
            cols = {k: self._read(name, k, slice(lo, hi)) for k in self._columns(name)}
            short = [k for k, v in cols.items() if len(v) != hi - lo]
            if short:
                raise StoreError(f"observation store {self.path}, type {name!r}: columns {short} end before row {hi} "
                                 f"of its index; the store is damaged: rewrite it from its sources")
        else:
            cols = {k: v[lo:hi] for k, v in src.items()}
        # Bins are coarser than arbitrary window edges: trim inside the slice.
        keep = (cols["time"] >= t0) & (cols["time"] < t1)
        if not keep.all():
            cols = {k: v[keep] for k, v in cols.items()}
        return cols


def fingerprint(attrs: StoreAttributes) -> dict[str, str]:
    """Per part of a store (the root, each type), a digest of its attributes: what it holds,
    how many rows, their statistics and time range. Two opens of one unchanged store agree;
    a store rewritten with other observations differs in the types it touched."""
    def digest(value) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]

    root = {k: v for k, v in attrs.root.items() if k != INTEGRITY}  # recorded by a rewrite, not a change of data
    return {"root": digest(root), **{f"type {n}": digest(a) for n, a in attrs.types.items()}}
