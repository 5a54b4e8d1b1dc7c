"""Writing an observation store (the layout is :mod:`earthgraph.data.store`'s).

:class:`StoreWriter` streams time-sorted chunks of each observation type into a
staging copy beside the destination, accumulating each channel's statistics as
they arrive, and moves the copy into place only when it is complete: an
interrupted write leaves the previous store untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np
import zarr
from fsspec.core import url_to_fs

from earthgraph.data.atomic import atomic_replace, sibling_path
from earthgraph.data.obs_types import ObservationType
from earthgraph.data.store import COLUMN_CHUNK, STATIC_GROUP, RunningStats, StoreError, check_names
from earthgraph.data.store_schema import INTEGRITY, current_attributes, integrity_digest, new_array, writer_attributes


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
        try:
            check_names(obs_types, self.name)
        except StoreError:
            self._drop_staging()
            raise
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
        self._arrays: dict[str, dict[str, zarr.Array]] = {}
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
            columns = {"time": ((0,), "int64"), "lat": ((0,), "float64"), "lon": ((0,), "float64"),
                       "values": ((0, c), "float32"), "error": ((0, c), "float32"),
                       **{m: ((0,), "float32") for m in t.metadata}}
            # The arrays are kept open: reopening one is a metadata read, and forgets new_array's settings.
            self._arrays[name] = {k: new_array(g, k, shape, dtype, (COLUMN_CHUNK, *shape[1:]))
                                  for k, (shape, dtype) in columns.items()}
            self._dtypes[name] = {k: a.dtype for k, a in self._arrays[name].items()}
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
        start, n = self._rows[name], self._pending_rows[name]
        try:
            for k in parts[0]:
                arr = self._arrays[name][k]
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
        t_min = min((self._arrays[n]["time"][0] for n in self.types if self._rows[n]), default=0)
        t_max = max((self._arrays[n]["time"][self._rows[n] - 1] for n in self.types if self._rows[n]), default=0)
        origin = int(t_min) // self.resolution * self.resolution
        n_bins = (int(t_max) - origin) // self.resolution + 2
        edges = origin + np.arange(n_bins + 1, dtype=np.int64) * self.resolution
        for name, t in self.types.items():
            g = self._root[name]
            time = self._arrays[name]["time"][:] if self._rows[name] else np.zeros(0, np.int64)
            starts = np.searchsorted(time, edges, side="left").astype(np.int64)
            new_array(g, "window_start", starts.shape, "int64", starts.shape)[:] = starts
            g.attrs.update({
                "obs_type": t.to_dict(),
                "stats": self._stats[name].as_dict(),
                "rows": self._rows[name],
            })
            if self._rows[name]:
                g.attrs.update({"time_min": int(time[0]), "time_max": int(time[-1])})
            if self.codes.get(name):
                g.attrs["codes"] = self.codes[name]
        if self._static_coords is not None:
            sg = self._root.create_group(STATIC_GROUP)
            for k, v in {"latitude": self._static_coords[0], "longitude": self._static_coords[1], **self._static}.items():
                new_array(sg, k, v.shape, v.dtype, v.shape)[...] = v
        self._root.attrs.update({
            **writer_attributes(),
            "provenance": json.loads(json.dumps(self.provenance, default=str)),
            "types": list(self.types),
            "time_min": int(t_min),
            "time_max": int(t_max),
            "index_origin": origin,
            "index_resolution_s": self.resolution,
        })
        written = zarr.open_group(str(self.tmp), mode="r")
        self._root.attrs[INTEGRITY] = integrity_digest(written, current_attributes(written, self.name))
