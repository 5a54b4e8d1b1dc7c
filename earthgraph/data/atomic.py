"""Atomic replacement of directory stores (zarr) on a local filesystem.

A store is written completely beside its destination, then moved into place
with ``os.replace``; the previous store is removed only after the new one is
in place, so a crash at any point leaves a complete store at the destination
(the old or the new one) and at worst a stray hidden sibling.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path, PurePath


def sibling_path(path: PurePath, tag: str) -> PurePath:
    """A hidden, unique path beside ``path``: ``.<name>.<tag>-<random>`` (also for URL paths
    given as ``PurePosixPath``)."""
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:8]}")


def atomic_replace(src: Path, dst: Path) -> None:
    """Move the complete directory ``src`` to ``dst``, replacing any old ``dst``."""
    if dst.exists():
        old = sibling_path(dst, "old")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)
