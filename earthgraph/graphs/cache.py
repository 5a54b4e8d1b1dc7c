"""Static graphs cached on disk, one ``.npz`` per configuration.

The file name is a hash of the configuration and of :data:`FORMAT_VERSION`,
so a changed builder never reads an old file: bump the version whenever what
a builder returns changes. Files are written beside their final name and
moved into place, so a crash leaves no half-written cache; an unreadable
file is reported, rebuilt and replaced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from earthgraph.data.atomic import sibling_path

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``~/.cache/earthgraph/graphs`` (beside the statics cache)."""
    return Path.home() / ".cache" / "earthgraph" / "graphs"


def cache_key(config: dict) -> str:
    """A short stable hash of a JSON-serialisable configuration."""
    text = json.dumps({"format": FORMAT_VERSION, **config}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_arrays(config: dict, build: Callable[[], dict[str, np.ndarray]],
                  cache_dir: str | Path | None) -> tuple[dict[str, np.ndarray], Path | None]:
    """The arrays ``build()`` returns for ``config``, from ``cache_dir`` when present.

    ``cache_dir=None`` builds without caching. Returns (arrays, path of the cache file).
    """
    if cache_dir is None:
        return build(), None
    path = Path(cache_dir) / f"{config.get('name', 'graph')}-{cache_key(config)}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}, path
        except Exception as err:  # a truncated or foreign file: rebuild it
            log.warning("graph cache %s is unreadable (%s); rebuilding it", path, err)
    arrays = build()
    tmp = Path(sibling_path(path, "tmp"))
    tmp = tmp.with_name(tmp.name + ".npz")  # np.savez appends .npz to any other name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        (path.with_suffix(".json")).write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    except OSError as err:  # a read-only home must not stop training: go on uncached
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        log.warning("cannot write graph cache %s (%s); continuing without it", path, err)
        return arrays, None
    return arrays, path
