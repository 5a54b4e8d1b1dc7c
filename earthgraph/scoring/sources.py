"""Where scored inputs live: local paths or fsspec URLs.

Forecasts, truths and climatologies are zarr stores on local disk or at any URL
fsspec understands (``file://``, ``memory://``, and ``s3://``, ``gs://`` ... when
their fsspec package, s3fs or gcsfs, is installed); ``storage_options`` (credentials,
anonymous access, caching) go to fsspec. They are opened lazily: dask arrays in the
store's own chunks, read when a chunk of the scoring needs them.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import xarray as xr


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
    :class:`UnreadableInputError` (naming the location and the reason) when it is not a
    zarr dataset."""
    if not exists(location, storage_options):
        raise MissingInputError(f"{what} {location} does not exist")
    url = is_url(location)
    try:
        # Remote stores are usually consolidated (one metadata read instead of one per
        # array); local ones written here are not.
        return xr.open_zarr(str(location), consolidated=None if url else False,
                            storage_options=(storage_options or {}) if url else None,
                            chunks={} if chunks is None else chunks)
    except Exception as err:  # zarr and fsspec raise several types for foreign or damaged stores
        raise UnreadableInputError(f"cannot read {what} {location}: {type(err).__name__}: {err}") from err
