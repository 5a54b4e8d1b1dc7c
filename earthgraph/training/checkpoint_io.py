"""Checkpoints written atomically: a crash or SIGKILL during a save leaves the
previous checkpoint intact, never a truncated file under the final name; and read
through their format (``checkpoint_format``): an older one migrated, a newer, truncated
or corrupt one refused by name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from earthgraph.data.atomic import sibling_path
from earthgraph.training.checkpoint_format import read_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a hidden sibling, flushed to disk, then ``os.replace`` onto the
    final name. Remote (fsspec URL) paths fall back to Lightning's own writer. Loading
    (``train.py fit --ckpt_path``) reads through the checkpoint's format."""

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
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
