"""Where scored inputs live: local paths or fsspec URLs.

Forecasts, truths and climatologies are zarr stores on local disk or at any URL
fsspec understands (``file://``, ``memory://``, and ``s3://``, ``gs://`` ... when
their fsspec package, s3fs or gcsfs, is installed); ``storage_options`` (credentials,
anonymous access, caching) go to fsspec. They are opened lazily: dask arrays in the
store's own chunks, read when a chunk of the scoring needs them.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path, PurePosixPath

import dask.array
import numpy as np
import xarray as xr

METADATA_FILES = ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")
"""The JSON documents of a zarr store (v3, and v2 with its consolidated metadata)."""


class MissingInputError(FileNotFoundError):
    """An input (forecast, truth, climatology, store) is not where it was said to be."""


class UnreadableInputError(ValueError):
    """An input exists but cannot be opened as a zarr dataset."""


def is_url(location: str | Path) -> bool:
    """Whether ``location`` names its protocol (``memory://x``, ``s3://bucket/x``, ``file:///x``)."""
    return "://" in str(location)


def exists(location: str | Path, storage_options: dict | None = None) -> bool:
    """Whether ``location`` (a path or fsspec URL) exists. A URL whose protocol has no
    installed fsspec package raises :class:`MissingInputError` saying which package."""
    if not is_url(location):
        return Path(location).exists()
    from fsspec.core import url_to_fs

    try:
        fs, path = url_to_fs(str(location), **(storage_options or {}))
    except (ImportError, ValueError) as err:  # fsspec: "Install s3fs to access S3", unknown protocol
        raise MissingInputError(f"{location}: cannot reach it: {err}") from None
    return bool(fs.exists(path))


def join(base: str | Path, name: str) -> str | Path:
    """``base/name`` for a path (a Path) or a URL (a str)."""
    if is_url(base):
        return str(base).rstrip("/") + "/" + name
    return Path(base) / name


def stem(location: str | Path) -> str:
    """The last component of a path or URL without its suffix: ``s3://b/ifs.zarr`` -> ``ifs``."""
    return PurePosixPath(str(location).rstrip("/").split("://")[-1]).stem


def open_zarr(location: str | Path, what: str, storage_options: dict | None = None,
              chunks: dict | None = None) -> xr.Dataset:
    """The zarr dataset at ``location``, opened lazily (dask arrays in the store's own
    chunks unless ``chunks`` says otherwise); ``what`` names it in errors.

    Raises :class:`MissingInputError` when nothing is there and
    :class:`UnreadableInputError` (naming the location, the damaged file or array and the
    reason) when it is not a readable zarr dataset. Its variables are read when a
    computation needs them (:class:`NamedReads`): a chunk that cannot be read then also
    raises :class:`UnreadableInputError`, naming the variable and the chunk."""
    if not exists(location, storage_options):
        raise MissingInputError(f"{what} {location} does not exist")
    url = is_url(location)
    try:
        # Remote stores are usually consolidated (one metadata read instead of one per
        # array); local ones written here are not. chunks=None: lazy, not yet dask (below).
        ds = xr.open_zarr(str(location), consolidated=None if url else False,
                          storage_options=(storage_options or {}) if url else None, chunks=None)
    except Exception as err:  # zarr and fsspec raise several types for foreign or damaged stores
        culprit = _damage(location, storage_options) or f"{type(err).__name__}: {err}"
        raise UnreadableInputError(f"cannot read {what} {location}: {culprit}") from err
    _check_arrays(what, location, storage_options)
    _check_coordinate_chunks(ds, what, location, storage_options)
    ds = _with_named_reads(ds, what, location)
    return ds.chunk(chunks) if chunks else ds


class NamedReads:
    """One variable of an input, read chunk by chunk as dask's ``from_array`` source. A
    chunk that cannot be read (damaged, truncated, lost with the connection) raises
    :class:`UnreadableInputError` naming the input, its location, the variable and the
    chunk: without this the codec's bare error (``RuntimeError: Zstd decompression error``)
    surfaces from deep inside a dask task, naming nothing."""

    def __init__(self, variable: xr.Variable, name: str, what: str, location: str | Path,
                 chunks: tuple[int, ...], labels: dict[str, np.ndarray]):
        self.variable, self.name, self.what, self.location = variable, name, what, location
        self.chunks, self.labels = chunks, labels
        self.shape, self.dtype, self.ndim = variable.shape, variable.dtype, variable.ndim

    def __getitem__(self, key: tuple) -> np.ndarray:
        try:
            return np.asarray(self.variable[key].values)
        except Exception as err:  # any codec, store or decoding failure of this chunk
            raise UnreadableInputError(f"cannot read {self.what} {self.location}: variable {self.name!r}, "
                                       f"{self.where(key)}: {type(err).__name__}: {err}") from err

    def where(self, key: tuple) -> str:
        """The chunk of ``key`` (dask's slices of one block) in words: its index on the
        store's chunk grid and the labels it covers (the initialisation time)."""
        starts = [(k.start or 0) if isinstance(k, slice) else int(k) for k in key]
        grid = tuple(s // c for s, c in zip(starts, self.chunks))
        labels = [f"{d} {value_label(self.labels[d][s])}" for d, s, n, c in
                  zip(self.variable.dims, starts, self.shape, self.chunks) if d in self.labels and s < n and c < n]
        return f"chunk {grid}" + (f" (starting at {', '.join(labels)})" if labels else "")


def value_label(value) -> str:
    """A coordinate value in words, for errors: a time to the second, a lead in hours, a number."""
    if isinstance(value, np.datetime64):
        return str(value.astype("datetime64[s]"))
    if isinstance(value, np.timedelta64):
        return f"{value / np.timedelta64(1, 'h'):g} h"
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def _with_named_reads(ds: xr.Dataset, what: str, location: str | Path) -> xr.Dataset:
    """``ds`` (opened lazily, chunks=None) with every variable that is not an index (those
    are in memory) as a dask array in the store's chunks, read through :class:`NamedReads`."""
    labels = {d: ds.indexes[d].values for d in ds.dims if d in ds.indexes}
    variables = {}
    for name, var in ds.variables.items():
        if name in ds.indexes:
            continue
        preferred = var.encoding.get("preferred_chunks") or {}
        chunks = tuple(int(preferred.get(d, n)) or 1 for d, n in zip(var.dims, var.shape))
        source = NamedReads(var, str(name), what, location, chunks, labels)
        data = dask.array.from_array(source, chunks=chunks, name=f"{what}-{name}-{uuid.uuid4().hex}",
                                     meta=np.empty((0,) * var.ndim, var.dtype))
        variables[name] = xr.Variable(var.dims, data, var.attrs, var.encoding)
    return ds.assign({n: v for n, v in variables.items() if n in ds.data_vars}).assign_coords(
        {n: v for n, v in variables.items() if n not in ds.data_vars})


def _fs(location: str | Path, storage_options: dict | None):
    """fsspec's filesystem and path of ``location``."""
    from fsspec.core import url_to_fs

    return url_to_fs(str(location), **((storage_options or {}) if is_url(location) else {}))


def _group(location: str | Path, storage_options: dict | None):
    """The zarr group at ``location``, read-only, opened as :func:`open_zarr` opens it."""
    import zarr

    url = is_url(location)
    return zarr.open_group(str(location), mode="r", use_consolidated=None if url else False,
                           storage_options=(storage_options or {}) if url else None)


def _folders(location: str | Path, storage_options: dict | None):
    """fsspec's filesystem, and the store's root folder and the folders directly in it (its
    arrays and subgroups), without listing any array's chunks."""
    fs, root = _fs(location, storage_options)
    return fs, [root.rstrip("/")] + [e["name"].rstrip("/") for e in fs.ls(root, detail=True)
                                     if e["type"] == "directory"]


def _metadata(fs, folder: str) -> list[str]:
    """The metadata documents (:data:`METADATA_FILES`) in ``folder``."""
    return [f"{folder}/{name}" for name in METADATA_FILES if fs.exists(f"{folder}/{name}")]


def _damage(location: str | Path, storage_options: dict | None) -> str:
    """Which file or array of the store at ``location`` cannot be read, and why, in words
    (its metadata documents are parsed, its one-dimensional arrays, the coordinates, read),
    or '' when none is found: called when opening it failed, to name the culprit."""
    try:
        fs, folders = _folders(location, storage_options)
        for path in (p for folder in folders for p in _metadata(fs, folder)):
            try:
                json.loads(fs.cat_file(path))
            except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
                return f"its metadata file {path[len(folders[0]) + 1:]} is damaged: {err}"
        for name, array in _group(location, storage_options).arrays():
            if array.ndim <= 1:
                try:
                    array[...]
                except Exception as err:  # a damaged coordinate chunk: the codec's own error type
                    return f"its array {name!r} cannot be read: {type(err).__name__}: {err}"
    except Exception:  # the culprit cannot be found: the caller reports the original error
        return ""
    return ""


def _check_arrays(what: str, location: str | Path, storage_options: dict | None) -> None:
    """Raise :class:`UnreadableInputError` when a folder of the store holds chunks but no
    array metadata (``zarr.json``, or v2's ``.zarray``): zarr then does not see the array at
    all, and a variable lost that way would silently drop out of the scores."""
    try:
        fs, folders = _folders(location, storage_options)
    except Exception:  # not listable (some object stores): zarr itself is the judge
        return
    for folder in folders[1:]:
        if _metadata(fs, folder):
            continue
        names = {n.rstrip("/").rsplit("/", 1)[-1] for n in fs.ls(folder, detail=False)}
        if "c" in names or any(re.fullmatch(r"\d+([./]\d+)*", n) for n in names):
            raise UnreadableInputError(f"cannot read {what} {location}: its array {folder.rsplit('/', 1)[-1]!r} has "
                                       "chunks but no metadata file (zarr.json): a damaged or partly copied store")


def _check_coordinate_chunks(ds: xr.Dataset, what: str, location: str | Path, storage_options: dict | None) -> None:
    """Raise :class:`UnreadableInputError` when a stored index coordinate (time, latitude ...)
    lacks a chunk on disk: zarr reads a missing chunk as its fill value (0, the units'
    epoch, for times), which would silently move values to other times or places; a data
    variable's missing chunk is legitimately NaN (all-NaN chunks are not written)."""
    try:
        arrays = dict(_group(location, storage_options).arrays())
    except Exception as err:  # xarray opened it: this is unexpected, but name it anyway
        raise UnreadableInputError(f"cannot read {what} {location}: {type(err).__name__}: {err}") from err
    for name in ds.indexes:
        array = arrays.get(str(name))
        if array is not None and array.nchunks_initialized < array.nchunks:
            raise UnreadableInputError(f"cannot read {what} {location}: its coordinate {name!r} lacks "
                                       f"{array.nchunks - array.nchunks_initialized} of its {array.nchunks} "
                                       "chunk(s) (a deleted or never-written chunk file)")
