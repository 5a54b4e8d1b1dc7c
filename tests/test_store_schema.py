"""Store schema versions: an old store is read through migrations, upgraded atomically, and a
newer or unknown one refused by name. ``fixtures/store-schema-1`` was written by the schema-1 code
(``fixtures/make_store_fixture.py``) and must stay readable with every value as written."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from earthgraph.data.cli import main as data_cli
from earthgraph.data.store import ObservationStore, StoreError
from earthgraph.data.store_upgrade import upgrade_store
from earthgraph.data.store_writer import StoreWriter
from earthgraph.data.store_schema import SCHEMA_VERSION

FIXTURE = Path(__file__).parent / "fixtures" / "store-schema-1"
REPO = Path(__file__).resolve().parents[1]


def tree_digest(folder: Path) -> str:
    """One digest of every file's path and bytes under ``folder``."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


def raw_columns(folder: Path, name: str) -> dict[str, np.ndarray]:
    """A type's columns read with zarr alone, bypassing the store's reader and its migrations."""
    g = zarr.open_group(str(folder), mode="r")[name]
    return {k: g[k][:] for k in g.array_keys() if k != "window_start"}


def open_quietly(path) -> ObservationStore:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ObservationStore(path)


@pytest.fixture()
def old_store(tmp_path) -> Path:
    path = tmp_path / "old.zarr"
    shutil.copytree(FIXTURE, path)
    return path


def test_a_schema_1_store_is_read_through_its_migration_without_being_written(old_store):
    before = tree_digest(old_store)
    with pytest.warns(UserWarning, match=r"written in schema 1 and is read through a migration .*"
                                         r"python -m earthgraph.data upgrade"):
        store = ObservationStore(old_store)
    assert tree_digest(old_store) == before, "opening an old store changes nothing on disk"
    assert store.attrs["schema_version"] == SCHEMA_VERSION
    for name in ("synop", "amv"):
        raw = raw_columns(old_store, name)
        read = store.read(name, *(t + d for t, d in zip(store.time_range, (0, 1))))
        assert set(read) == set(raw)
        for column, values in raw.items():
            np.testing.assert_array_equal(read[column], values, err_msg=f"{name}.{column}")
        # what the migration adds: each type's time range, from its own rows
        assert store.type_time_range(name) == (int(raw["time"][0]), int(raw["time"][-1]))
    assert store.type_time_range("amv") != store.type_time_range("synop")
    assert store.codes("synop") == {"station_id": ["06260", "10384", "A-17"]}
    assert store.static()["land_sea_mask"].shape == (8, 16)


def test_upgrade_rewrites_the_store_in_the_current_schema_with_the_same_observations(old_store, capsys):
    migrated = open_quietly(old_store)
    assert data_cli(["upgrade", str(old_store)]) == 0
    assert "schema 1 -> 2" in capsys.readouterr().out
    assert not list(old_store.parent.glob(f".{old_store.name}.*")), "no staging copy left behind"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no migration warning any more
        upgraded = ObservationStore(old_store)
    assert zarr.open_group(str(old_store), mode="r").attrs["schema_version"] == SCHEMA_VERSION
    assert upgraded.fingerprint == migrated.fingerprint, "the upgraded store's attributes are the migrated ones"
    for name in ("synop", "amv"):
        t0, t1 = upgraded.time_range
        a, b = upgraded.read(name, t0, t1 + 1), migrated.read(name, t0, t1 + 1)
        for column in a:
            np.testing.assert_array_equal(a[column], b[column])
    before = tree_digest(old_store)
    assert data_cli(["upgrade", str(old_store)]) == 0  # a current store is left alone
    assert "already in schema" in capsys.readouterr().out
    assert tree_digest(old_store) == before


def test_upgrade_to_another_folder_leaves_the_old_store(old_store, tmp_path):
    before = tree_digest(old_store)
    attrs = upgrade_store(old_store, tmp_path / "new.zarr")
    assert attrs.written_version == 1 and len(attrs.applied) == SCHEMA_VERSION - 1
    assert tree_digest(old_store) == before
    assert open_quietly(tmp_path / "new.zarr").rows("amv") == 200
    with pytest.raises(StoreError, match=r"new\.zarr already exists"):
        upgrade_store(old_store, tmp_path / "new.zarr")


FULL_DISK_UPGRADE = textwrap.dedent("""
    import resource, sys
    from earthgraph.data.store import StoreError
    from earthgraph.data.store_upgrade import upgrade_store
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))  # smaller than the store's largest chunk files
    try:
        upgrade_store(sys.argv[1])
    except StoreError as e:
        print(f"StoreError: {e}")
        sys.exit(3)
""")


def test_an_upgrade_that_cannot_finish_leaves_the_old_store_as_it_was(old_store):
    before = tree_digest(old_store)
    proc = subprocess.run([sys.executable, "-c", FULL_DISK_UPGRADE, str(old_store)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"StoreError: upgrade of {old_store}: writing the new copy failed (")
    assert "the store there is unchanged" in proc.stdout
    assert tree_digest(old_store) == before
    assert not list(old_store.parent.glob(f".{old_store.name}.*")), "the partial copy is removed"


def set_root_attribute(store: Path, key: str, value) -> None:
    meta = store / "zarr.json"
    doc = json.loads(meta.read_text())
    if value is None:
        doc["attributes"].pop(key)
    else:
        doc["attributes"][key] = value
    meta.write_text(json.dumps(doc))


@pytest.mark.parametrize("version, message", [
    (SCHEMA_VERSION + 1, rf"schema_version {SCHEMA_VERSION + 1}, this earthgraph reads schema versions "
                         r"\[1, 2\]; it was written by a newer earthgraph"),
    ("two", r"schema_version 'two', this earthgraph reads schema versions \[1, 2\]"),
    (0, r"schema_version 0, this earthgraph reads"),
    (None, r"no schema_version in its attributes \(zarr.json\), so it was not written by earthgraph"),
])
def test_a_newer_unknown_or_missing_schema_is_refused_by_name(old_store, version, message):
    set_root_attribute(old_store, "schema_version", version)
    before = tree_digest(old_store)
    with pytest.raises(StoreError, match=rf"observation store {old_store}: {message}"):
        ObservationStore(old_store)
    assert data_cli(["upgrade", str(old_store)]) == 2
    assert tree_digest(old_store) == before


def test_a_store_rewritten_in_place_is_told_apart_from_the_one_opened(old_store):
    store = open_quietly(old_store)
    assert store.changed_on_disk() is None
    columns = raw_columns(old_store, "synop")
    columns["values"] = columns["values"] + 1.0  # the same rows, other values
    with StoreWriter(old_store, [store.obs_type(n) for n in ("synop", "amv")], overwrite=True,
                     codes={"synop": store.codes("synop")}) as w:
        w.append("synop", columns)
        w.append("amv", raw_columns(old_store, "amv"))
    assert store.changed_on_disk() == "changed: root, type synop", "the types it changed, not the others"
    shutil.rmtree(old_store)
    assert "can no longer be opened" in store.changed_on_disk()
