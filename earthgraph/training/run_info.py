"""What a training run records about itself in the logger's configuration: code
revision, data and graph summaries. Plain functions, no Lightning."""

from __future__ import annotations

import subprocess
from pathlib import Path

import earthgraph


def git_revision(path: Path | None = None) -> dict[str, str | bool | None]:
    """Commit and dirtiness of the git checkout holding ``path`` (earthgraph's own by
    default); Nones when it is not a checkout or git is missing."""
    where = Path(path or Path(earthgraph.__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def graph_summary(mesh) -> dict:
    """Mesh kind, resolution, node and edge counts of a forecaster's ``MeshGraph``."""
    return {"kind": mesh.kind, "resolution": mesh.resolution, "nodes": mesh.npix,
            "directed_edges": int(mesh.senders.numel()), "undirected_edges": int(mesh.pair_i.numel()),
            "multiscale_levels": mesh.geometry.multiscale_levels, "spacing_km": round(mesh.spacing * 6371.0, 1)}


def data_summary(datamodule) -> dict:
    """Store, periods, observation types and split sizes of an ``ObservationDataModule``."""
    if datamodule is None:
        return {}
    hp = datamodule.hparams
    sizes = {split: len(ds) for split, ds in datamodule.datasets.items()}
    return {"store": str(hp.store), "train_period": list(hp.train_period), "val_period": list(hp.val_period),
            "window_hours": hp.window_hours, "rollout": hp.rollout, "input_windows": hp.input_windows,
            "batch_size": hp.batch_size, "types": sorted(datamodule.schema), "samples": sizes}
