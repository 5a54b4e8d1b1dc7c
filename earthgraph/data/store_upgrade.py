"""Rewriting an observation store of an older schema in the current one.

``python -m earthgraph.data upgrade STORE [--out NEW]`` runs :func:`upgrade_store`: the
store's attributes are migrated (:mod:`earthgraph.data.store_schema`), every array is
re-encoded with the current codecs, and the finished copy replaces the old store
atomically.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import zarr

from earthgraph.data.atomic import atomic_replace, sibling_path
from earthgraph.data.store import StoreError
from earthgraph.data.store_schema import (INTEGRITY, StoreAttributes, StoreSchemaError, current_attributes,
                                          integrity_digest, new_array)


def upgrade_store(path: str | Path, out: str | Path | None = None) -> StoreAttributes:
    """Rewrite the local store at ``path`` in the current layout, at ``out`` (default: in place).

    The store is copied beside the destination, the copy's attributes are rewritten,
    and only the complete copy is moved into place: an interruption at any point leaves
    the old store as it was (and at worst a hidden ``.<name>.upgrade-*`` sibling). Returns
    the attributes with the migrations that were applied (none for a current store, which
    is left alone unless ``out`` asks for a copy)."""
    source = Path(path)
    if "://" in str(path):
        raise StoreError(f"observation store {path}: upgrade rewrites local stores only; copy it to a local "
                         "folder, upgrade that, and copy it back")
    if not (source / "zarr.json").exists():
        raise StoreError(f"observation store {source}: no zarr.json there, so there is no store to upgrade")
    try:
        attrs = current_attributes(zarr.open_group(str(source), mode="r"), str(source))
    except StoreSchemaError as e:
        raise StoreError(str(e)) from None
    target = Path(out) if out is not None else source
    if out is not None and target.exists():
        raise StoreError(f"upgrade of {source}: {target} already exists; name a new folder")
    if not attrs.applied and target == source:
        return attrs
    staging = sibling_path(target, "upgrade")
    try:
        reencode(zarr.open_group(str(source), mode="r"), staging, attrs)
    except OSError as e:  # a full disk, a file-size limit, a read-only folder
        shutil.rmtree(staging, ignore_errors=True)
        raise StoreError(f"upgrade of {source}: writing the new copy failed ({type(e).__name__}: {e}); the "
                         "store there is unchanged") from e
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    atomic_replace(staging, target)
    return attrs


def reencode(source: zarr.Group, path: Path, attrs: StoreAttributes) -> None:
    """Write the store ``source`` anew at ``path`` in the current layout: every array with the
    current chunk codecs (checksummed), copied a column chunk at a time; the attributes
    ``attrs`` (already migrated) and the integrity digest last."""
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    for name, group in source.groups():
        target = root.create_group(name)
        for key, array in group.arrays():
            copy = new_array(target, key, array.shape, array.dtype, array.chunks)
            step = max(array.chunks[0], 1)  # the store's arrays are columns and grids: never 0-d
            for start in range(0, array.shape[0], step):
                copy[start:start + step] = array[start:start + step]
        target.attrs.put(attrs.types.get(name, dict(group.attrs)))
    root.attrs.put({k: v for k, v in attrs.root.items() if k != INTEGRITY})
    written = zarr.open_group(str(path), mode="r")
    root.attrs[INTEGRITY] = integrity_digest(written, current_attributes(written, str(path)))
