"""Checkpoints written atomically: a crash or SIGKILL during a save leaves the
previous checkpoint intact, never a truncated file under the final name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from earthgraph.data.atomic import sibling_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a hidden sibling, flushed to disk, then ``os.replace`` onto the
    final name. Remote (fsspec URL) paths fall back to Lightning's own writer."""

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
