"""Checkpoints written atomically: a crash or SIGKILL during a save leaves the
previous checkpoint intact, never a truncated file under the final name; and read
through their format (``checkpoint_format``): an older one migrated, a newer, truncated
or corrupt one refused by name."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from earthgraph.data.atomic import sibling_path
from earthgraph.training.checkpoint_format import CheckpointError, read_checkpoint


PREVIOUS_SUFFIX = ".previous"


def keep_previous(path: Path) -> None:
    """Keep the checkpoint about to be replaced at ``path`` as ``<path>.previous`` (a hard
    link where the filesystem has them: ``path`` itself stays in place until replaced)."""
    if not path.exists():
        return
    previous = path.with_name(path.name + PREVIOUS_SUFFIX)
    staged = Path(sibling_path(previous, "tmp"))
    try:
        os.link(path, staged)
    except OSError:  # no hard links here: a copy
        shutil.copyfile(path, staged)
    os.replace(staged, previous)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a hidden sibling, flushed to disk, then ``os.replace`` onto the
    final name, the checkpoint it replaces kept as ``<name>.previous``; a failed write (a full
    disk) is a :class:`CheckpointError` that leaves the previous file as it was. Remote
    (fsspec URL) paths fall back to Lightning's own writer. Loading (``train.py fit
    --ckpt_path``) reads through the checkpoint's format."""

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        # Lightning's default keeps every tensor where it is read (the CPU), whatever device saved it.
        return read_checkpoint(path, map_location if map_location is not None else (lambda storage, loc: storage))

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(sibling_path(path, "tmp"))
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            keep_previous(path)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as e:  # a full disk, a file-size limit (torch wraps some in RuntimeError)
            raise CheckpointError(f"checkpoint {path}: writing failed ({type(e).__name__}: {e}); the previous "
                                  "checkpoint there is intact") from e
        finally:
            tmp.unlink(missing_ok=True)
