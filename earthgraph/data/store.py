"""The observation store: a zarr (format 3) directory, one group per observation type.

Layout::

    store.zarr/
      zarr.json                 attrs: schema_version, provenance, time range
      static/                   optional gridded static fields (land_sea_mask, ...)
      <type>/                   attrs: obs_type (schema), stats, window index spec
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
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import zarr
from fsspec.core import url_to_fs

from earthgraph.data.atomic import atomic_replace, sibling_path
from earthgraph.data.obs_types import ObservationType

SCHEMA_VERSION = 1
STATIC_GROUP = "static"
COLUMN_CHUNK = 1 << 16


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


class StoreWriter:
    """Streams time-sorted chunks of observations into a new store.

    Use as a context manager; on a clean exit the store is moved atomically to
    ``path`` (replacing an existing one only if ``overwrite``); on an error the
    partial copy is deleted and ``path`` is left as it was.
    """

    def __init__(self, path: str | os.PathLike, obs_types: list[ObservationType], *,
                 provenance: dict | None = None, index_resolution_s: int = 3600, overwrite: bool = False,
                 storage_options: dict | None = None, codes: dict[str, dict[str, list[str]]] | None = None):
        """``codes``: per type and metadata field, the text of each integer code the field's
        column holds (``{"synop": {"station_id": ["06260", "10384"]}}``)."""
        # An fsspec URL is written locally first and uploaded on a clean exit (``_publish_url``).
        self.url = str(path) if "://" in str(path) else None
        self.storage_options = storage_options or {}
        if self.url is not None:
            fs, target = url_to_fs(self.url, **self.storage_options)
            exists = fs.exists(target)
            self.path = Path(tempfile.mkdtemp(prefix="earthgraph-store-")) / "store.zarr"
        else:
            self.path = Path(path)
            exists = self.path.exists()
        self.name = self.url or str(self.path)  # what messages call the store: the URL, not the staging copy
        if exists and not overwrite:
            self._drop_staging()
            raise StoreError(f"store {self.name} already exists; pass overwrite=True to replace it")
        if index_resolution_s <= 0:
            self._drop_staging()
            raise StoreError(f"store {self.name}: index_resolution_s must be positive, got {index_resolution_s}")
        self.tmp = sibling_path(self.path, "tmp")
        self.types = {t.name: t for t in obs_types}
        self.provenance = provenance or {}
        self.resolution = int(index_resolution_s)
        self.overwrite = overwrite
        self._rows = {name: 0 for name in self.types}
        # Appends are validated at once but written in column-chunk-sized pieces:
        # one zarr resize per small chunk dominated the cost of writing a store.
        self._pending: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in self.types}
        self._pending_rows = {name: 0 for name in self.types}
        self._dtypes: dict[str, dict[str, np.dtype]] = {}
        self._last_time = {name: None for name in self.types}
        self._stats = {name: RunningStats(len(t.channels)) for name, t in self.types.items()}
        self._root = None
        self._static: dict[str, np.ndarray] = {}
        self._static_coords: tuple[np.ndarray, np.ndarray] | None = None
        self.codes = {name: {m: list(map(str, texts)) for m, texts in fields.items()}
                      for name, fields in (codes or {}).items()}
        unknown = sorted(set(self.codes) - set(self.types))
        unknown += [f"{n}.{m}" for n, fields in self.codes.items() if n in self.types
                    for m in fields if m not in self.types[n].metadata]
        if unknown:
            self._drop_staging()
            raise StoreError(f"store {self.name}: codes given for {unknown}, which are not declared metadata")

    def add_static(self, lat_deg: np.ndarray, lon_deg: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        """Static gridded fields (land-sea mask, orography) that models may use as inputs.

        lat_deg: (nlat,), lon_deg: (nlon,), each field (nlat, nlon).
        """
        for k, v in fields.items():
            if v.shape != (len(lat_deg), len(lon_deg)):
                raise StoreError(f"store {self.name}, static field {k!r}: shape {v.shape}, expected {(len(lat_deg), len(lon_deg))}")
        self._static_coords = (np.asarray(lat_deg, np.float64), np.asarray(lon_deg, np.float64))
        self._static.update({k: np.asarray(v, np.float32) for k, v in fields.items()})

    def __enter__(self) -> "StoreWriter":
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self._root = zarr.open_group(str(self.tmp), mode="w", zarr_format=3)
        for name, t in self.types.items():
            g = self._root.create_group(name)
            c = len(t.channels)
            g.create_array("time", shape=(0,), dtype="int64", chunks=(COLUMN_CHUNK,))
            g.create_array("lat", shape=(0,), dtype="float64", chunks=(COLUMN_CHUNK,))
            g.create_array("lon", shape=(0,), dtype="float64", chunks=(COLUMN_CHUNK,))
            g.create_array("values", shape=(0, c), dtype="float32", chunks=(COLUMN_CHUNK, c))
            g.create_array("error", shape=(0, c), dtype="float32", chunks=(COLUMN_CHUNK, c))
            for m in t.metadata:
                g.create_array(m, shape=(0,), dtype="float32", chunks=(COLUMN_CHUNK,))
            # Column dtypes kept here: asking zarr for an array is a metadata read.
            self._dtypes[name] = {k: g[k].dtype for k in g.array_keys()}
        return self

    def append(self, name: str, columns: dict[str, np.ndarray]) -> None:
        """Append a chunk of one type; its times must not precede earlier chunks'."""
        if name not in self.types:
            raise StoreError(f"store {self.name}: unknown observation type {name!r}; declared: {sorted(self.types)}")
        t = self.types[name]
        required = ["time", "lat", "lon", "values", "error", *t.metadata]
        missing = [k for k in required if k not in columns]
        if missing:
            raise StoreError(f"store {self.name}, type {name!r}: missing columns {missing}")
        n = len(columns["time"])
        if n == 0:
            return
        time = np.asarray(columns["time"], dtype=np.int64)
        if np.any(np.diff(time) < 0) or (self._last_time[name] is not None and time[0] < self._last_time[name]):
            raise StoreError(f"store {self.name}, type {name!r}, field 'time': chunks must arrive sorted by time")
        for k in required:
            if len(columns[k]) != n:
                raise StoreError(f"store {self.name}, type {name!r}, field {k!r}: {len(columns[k])} rows, expected {n}")
        dtypes = self._dtypes[name]
        self._pending[name].append({k: np.asarray(columns[k]).astype(dtypes[k]) for k in required})
        self._pending_rows[name] += n
        self._stats[name].update(np.asarray(columns["values"]))
        self._last_time[name] = int(time[-1])
        if self._pending_rows[name] >= COLUMN_CHUNK:
            self._flush(name)

    def _flush(self, name: str) -> None:
        """Write the buffered rows of one type to its arrays."""
        parts = self._pending[name]
        if not parts:
            return
        g = self._root[name]
        start, n = self._rows[name], self._pending_rows[name]
        try:
            for k in parts[0]:
                arr = g[k]
                arr.resize((start + n, *arr.shape[1:]))
                arr[start:start + n] = np.concatenate([p[k] for p in parts])
        except OSError as e:  # a full disk, a file-size limit
            raise StoreError(f"store {self.name}: writing failed ({type(e).__name__}: {e}); the store there is "
                             "unchanged") from e
        self._rows[name] = start + n
        self._pending[name], self._pending_rows[name] = [], 0

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self._drop_staging()
            return
        try:
            self._finalise()
        except OSError as e:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self._drop_staging()
            raise StoreError(f"store {self.name}: writing failed ({type(e).__name__}: {e}); the store there is "
                             "unchanged") from e
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self._drop_staging()
            raise
        atomic_replace(self.tmp, self.path)
        if self.url is not None:
            try:
                self._publish_url()
            finally:
                self._drop_staging()

    def _drop_staging(self) -> None:
        if self.url is not None:
            shutil.rmtree(self.path.parent, ignore_errors=True)

    def _publish_url(self) -> None:
        """Upload the finished local store to a hidden sibling of the URL, then swap it in.

        The old store at the URL is touched only after the upload is complete. On
        filesystems with atomic renames (local, memory) the swap is atomic; on object
        stores a rename is a copy, so a crash inside the swap can leave the old store
        under its hidden ``.old`` name rather than at the URL (never a partial store).
        """
        fs, target = url_to_fs(self.url, **self.storage_options)
        target = target.rstrip("/")
        staged = str(sibling_path(PurePosixPath(target), "tmp"))
        try:
            fs.put(str(self.path), staged, recursive=True)
        except Exception as e:
            if fs.exists(staged):
                fs.rm(staged, recursive=True)
            raise StoreError(f"store {self.name}: upload failed, the store there is unchanged: {e}") from e
        old = None
        if fs.exists(target):
            old = str(sibling_path(PurePosixPath(target), "old"))
            fs.mv(target, old, recursive=True)
        fs.mv(staged, target, recursive=True)
        if old is not None:
            fs.rm(old, recursive=True)

    def _finalise(self) -> None:
        for name in self.types:
            self._flush(name)
        t_min = min((self._root[n]["time"][0] for n in self.types if self._rows[n]), default=0)
        t_max = max((self._root[n]["time"][self._rows[n] - 1] for n in self.types if self._rows[n]), default=0)
        origin = int(t_min) // self.resolution * self.resolution
        n_bins = (int(t_max) - origin) // self.resolution + 2
        edges = origin + np.arange(n_bins + 1, dtype=np.int64) * self.resolution
        for name, t in self.types.items():
            g = self._root[name]
            time = g["time"][:] if self._rows[name] else np.zeros(0, np.int64)
            starts = np.searchsorted(time, edges, side="left").astype(np.int64)
            g.create_array("window_start", shape=starts.shape, dtype="int64", chunks=starts.shape)[:] = starts
            g.attrs.update({
                "obs_type": t.to_dict(),
                "stats": self._stats[name].as_dict(),
                "rows": self._rows[name],
            })
            if self.codes.get(name):
                g.attrs["codes"] = self.codes[name]
        if self._static_coords is not None:
            sg = self._root.create_group(STATIC_GROUP)
            for k, v in {"latitude": self._static_coords[0], "longitude": self._static_coords[1], **self._static}.items():
                sg.create_array(k, shape=v.shape, dtype=v.dtype, chunks=v.shape)[...] = v
        self._root.attrs.update({
            "schema_version": SCHEMA_VERSION,
            "provenance": json.loads(json.dumps(self.provenance, default=str)),
            "types": list(self.types),
            "time_min": int(t_min),
            "time_max": int(t_max),
            "index_origin": origin,
            "index_resolution_s": self.resolution,
        })


class ObservationStore:
    """Read access to a store written by :class:`StoreWriter`."""

    def __init__(self, path: str | os.PathLike, storage_options: dict | None = None):
        """``path``: a local folder or an fsspec URL (``file://``, ``memory://``, ``s3://`` with
        its fsspec package installed); ``storage_options`` go to fsspec (credentials, caching)."""
        self.path = str(path)
        is_url = "://" in self.path
        if not is_url and not Path(self.path).exists():
            raise StoreError(f"observation store {self.path} does not exist")
        try:
            self.root = zarr.open_group(self.path, mode="r", storage_options=storage_options if is_url else None)
        except Exception as e:  # zarr and fsspec raise several types for missing or damaged metadata
            raise StoreError(f"observation store {self.path} cannot be opened: {type(e).__name__}: {e}") from e
        attrs = dict(self.root.attrs)
        version = attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(f"observation store {self.path}: schema_version {version!r}, this earthgraph reads {SCHEMA_VERSION}")
        self.attrs = attrs
        self.origin = int(attrs["index_origin"])
        self.resolution = int(attrs["index_resolution_s"])
        self._types = {n: ObservationType.from_dict(self.root[n].attrs["obs_type"]) for n in attrs["types"]}
        self._index = {n: self.root[n]["window_start"][:] for n in self._types}
        self._cache: dict[str, dict[str, np.ndarray]] = {}

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
        g = self.root[STATIC_GROUP]
        return {k: g[k][...] for k in g.array_keys()}

    def codes(self, name: str) -> dict[str, list[str]]:
        """Per metadata field stored as codes, the text of each code (``codes[field][code]``);
        empty for a type whose metadata are all numbers."""
        self.obs_type(name)
        return {m: list(texts) for m, texts in dict(self.root[name].attrs.get("codes", {})).items()}

    def stats(self, name: str) -> dict:
        """Per-channel count, mean and standard deviation over the whole store (kept in its attributes)."""
        self.obs_type(name)
        return dict(self.root[name].attrs["stats"])

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
            cols = src if src is not None else self.root[name]
            time, values = cols["time"][start:stop], cols["values"][start:stop]
            acc.update(values[(time >= t0) & (time < t1)])
        return acc.as_dict()

    def rows(self, name: str) -> int:
        return int(self.root[name].attrs["rows"])

    @property
    def time_range(self) -> tuple[int, int]:
        return int(self.attrs["time_min"]), int(self.attrs["time_max"])

    def load(self) -> "ObservationStore":
        """Read every column into memory (small stores; fast window reads)."""
        for name in self._types:
            g = self.root[name]
            self._cache[name] = {k: g[k][:] for k in self._columns(name)}
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
            g = self.root[name]
            cols = {k: g[k][lo:hi] for k in self._columns(name)}
        else:
            cols = {k: v[lo:hi] for k, v in src.items()}
        # Bins are coarser than arbitrary window edges: trim inside the slice.
        keep = (cols["time"] >= t0) & (cols["time"] < t1)
        if not keep.all():
            cols = {k: v[keep] for k, v in cols.items()}
        return cols
