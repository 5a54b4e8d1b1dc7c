"""Versions of the observation store's layout, and the migrations from each to the next.

A store records the layout it was written in as the root attribute
``schema_version``. This code writes :data:`SCHEMA_VERSION` and reads every
earlier version through the registered :data:`MIGRATIONS`, applied in order to
the store's attributes as it is opened: an old store is read as if it had been
written now, and is never written to (``python -m earthgraph.data upgrade STORE``
rewrites it in the current layout, atomically). A store of a newer or unknown
version is refused by name.

Schemas:

1. (to 2026-12-06) the layout described in :mod:`earthgraph.data.store`.
2. Each type's group records the time of its first and last observation
   (``time_min``, ``time_max``: seconds since 1970; absent for a type with no rows),
   so that a configuration can be checked against the types it names without
   reading their columns; the root records the ``earthgraph_version`` that wrote
   the store. Damage is detected instead of read as data: every chunk carries a
   checksum (zstd's content checksum: a flipped byte in a schema-1 chunk
   decompresses to other numbers without complaint), and the root's ``integrity``
   is a digest of all attributes and every array's shape, type and chunking,
   checked when the store is opened, with the presence of every chunk. Read through the migration, a schema-1 store
   gets the time ranges but not the checksums, which only ``upgrade`` (re-encoding
   every chunk) adds.

A change of layout adds a version here, a migration from the previous one (a
function of the old store that returns its attributes in the new layout; columns
it needs it reads, and it changes nothing on disk), a fixture store written by the
old code under ``tests/fixtures/``, and keeps ``tests/test_store_schema.py`` passing.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

import zarr
from zarr.codecs import ZstdCodec

import earthgraph

SCHEMA_VERSION = 2
INTEGRITY = "integrity"


def new_array(group: zarr.Group, key: str, shape: tuple[int, ...], dtype, chunks: tuple[int, ...]) -> zarr.Array:
    """An array as the current schema writes it: every chunk zstd-compressed with its content
    checksum (verified on every read), and every chunk written even when it holds only the
    fill value, so that a chunk file missing later is damage, not zeros (zarr reads a missing
    chunk as its fill value)."""
    return group.create_array(key, shape=shape, dtype=dtype, chunks=chunks,
                              compressors=(ZstdCodec(level=0, checksum=True),),
                              config={"write_empty_chunks": True})


class StoreSchemaError(ValueError):
    """A store whose layout this code cannot read: newer, unknown, or not recorded
    (:class:`earthgraph.data.store.ObservationStore` raises it as a ``StoreError``)."""


@dataclass
class StoreAttributes:
    """A store's attributes in the current layout: the root's, each type group's, and the
    migrations applied to get there (empty for a store of the current schema)."""

    root: dict
    types: dict[str, dict]
    applied: list[str] = field(default_factory=list)

    @property
    def written_version(self) -> int:
        """The schema the store on disk is written in."""
        return SCHEMA_VERSION - len(self.applied)


@dataclass(frozen=True)
class Migration:
    """How to read a store of schema ``from_version`` in the layout of ``from_version + 1``.

    ``apply(group, attrs)`` updates ``attrs`` (a private copy) in place; ``group`` is the
    store opened read-only, for columns the new attributes are computed from."""

    from_version: int
    summary: str
    apply: Callable[[zarr.Group, StoreAttributes], None]


def _type_time_ranges(group: zarr.Group, attrs: StoreAttributes) -> None:
    """Schema 1 -> 2: each type's first and last observation time, from its (sorted) time column,
    and the version that wrote the store, unknown for schema 1."""
    for name, type_attrs in attrs.types.items():
        rows = int(type_attrs.get("rows", 0))
        if rows:
            time = group[name]["time"]
            type_attrs["time_min"] = int(time[0])
            type_attrs["time_max"] = int(time[rows - 1])
    attrs.root["earthgraph_version"] = "unknown (schema 1)"


MIGRATIONS: dict[int, Migration] = {
    1: Migration(1, "schema 1 -> 2: each type's time range (time_min, time_max) in its group's attributes",
                 _type_time_ranges),
}


def current_attributes(group: zarr.Group, where: str) -> StoreAttributes:
    """The attributes of the store opened as ``group`` (read-only) in the current layout,
    migrated from an older schema if need be; ``where`` names the store in errors.

    Raises :class:`StoreSchemaError` naming the store, the version it has and the versions
    this code reads when the version is missing, unknown or newer."""
    root = copy.deepcopy(dict(group.attrs))
    version = root.get("schema_version")
    readable = sorted({*MIGRATIONS, SCHEMA_VERSION})
    if version is None:
        raise StoreSchemaError(f"observation store {where}: no schema_version in its attributes (zarr.json), so "
                               f"it was not written by earthgraph; this earthgraph reads schema versions "
                               f"{readable}")
    if not isinstance(version, int) or isinstance(version, bool) or version not in readable:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        hint = ("; it was written by a newer earthgraph: upgrade earthgraph to read it" if newer else "")
        raise StoreSchemaError(f"observation store {where}: schema_version {version!r}, this earthgraph reads "
                               f"schema versions {readable}{hint}")
    types = {name: copy.deepcopy(dict(group[name].attrs)) for name in root.get("types", [])}
    attrs = StoreAttributes(root, types)
    while version < SCHEMA_VERSION:
        migration = MIGRATIONS[version]
        migration.apply(group, attrs)
        attrs.applied.append(migration.summary)
        version += 1
    attrs.root["schema_version"] = SCHEMA_VERSION
    return attrs


def writer_attributes() -> dict:
    """Root attributes every store written by this code records about its writer."""
    return {"schema_version": SCHEMA_VERSION, "earthgraph_version": earthgraph.__version__}


def integrity_digest(group: zarr.Group, attrs: StoreAttributes) -> str:
    """A digest of a store's attributes (the root's but its ``integrity``, each type's) and of
    every array's shape, data type and chunks: what a reader relies on to find each value.

    A byte changed in any metadata file changes it, so a store whose recorded digest
    differs was damaged after it was written (the chunks have checksums of their own)."""
    arrays = {}
    for name, child in group.groups():
        for key, array in child.arrays():
            arrays[f"{name}/{key}"] = [list(array.shape), str(array.dtype), list(array.chunks)]
    described = {"root": {k: v for k, v in attrs.root.items() if k != INTEGRITY}, "types": attrs.types,
                 "arrays": arrays}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def missing_chunks(group: zarr.Group) -> list[str]:
    """The arrays of a schema-2 store (written with every chunk) that lack chunk files:
    ``"synop/values (3 of 4 chunks)"``. Costs one listing per array."""
    return [f"{name}/{key} ({array.nchunks_initialized} of {array.nchunks} chunks)"
            for name, child in group.groups() for key, array in child.arrays()
            if array.nchunks_initialized != array.nchunks]
