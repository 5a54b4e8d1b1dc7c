"""Checkpoint format versions, and the migrations that read older checkpoints.

Every checkpoint earthgraph writes records, under ``checkpoint["earthgraph"]``,
its format (:data:`FORMAT`, an integer) and the earthgraph version that wrote
it. Reading a checkpoint (:func:`read_checkpoint`: evaluation, prediction,
``train.py --ckpt_path``, ``--fork_from``, ``--warm_start``) upgrades an older
format in memory by the registered migrations, one format at a time, in order;
``python -m earthgraph.training migrate CKPT`` rewrites the file itself. A
checkpoint of a newer format than this code reads, or of no format it knows,
is refused with a :class:`CheckpointError` saying which format it has and
which this code reads. A checkpoint that cannot be read at all (truncated,
corrupt, not a checkpoint) is refused by name too.

Every change of what a checkpoint holds (a renamed parameter or hyperparameter,
a moved buffer, a new required key) raises :data:`FORMAT` by one and adds the
migration from the format before; ``tests/fixtures/checkpoint-format-1`` keeps a
checkpoint of format 1 that the tests load and forecast with, so every later
format must still read it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from earthgraph import __version__

FORMAT = 2
"""The checkpoint format this code writes and reads."""
KEY = "earthgraph"

Migration = Callable[[dict], None]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


def _from_format_0(checkpoint: dict) -> None:
    """Format 0, the checkpoints written before formats were recorded (up to b305d02):
    they hold what format 1 holds; only the record of the format is new."""


# The forecaster's options as format 1 kept them, flat among the training options. Written
# out, not read from ForecasterConfig: a later option must not change what format 1 held.
FORMAT_1_FORECASTER_KEYS = (
    "nside", "latent_dim", "hidden_dim", "processor_layers", "decoder_k", "window_hours", "encoder_neighbours",
    "mesh", "mesh_level", "multiscale_levels", "graph_cache_dir", "budgets", "transport_substeps", "processor",
    "attention_heads", "activation_checkpointing", "ensemble_members", "noise_dim", "kernel_backend", "cycling",
    "analysis_layers", "batch_types", "state_norm", "latent_noise", "processor_statics",
)


def _from_format_1(checkpoint: dict) -> None:
    """Format 1 (up to 6dc9078) kept the forecaster's options flat among the module's
    hyperparameters (``nside``, ``latent_dim``, ...); format 2 nests them under
    ``forecaster`` (``model.forecaster`` of a config). The weights are the same."""
    hparams = checkpoint.get("hyper_parameters")
    if not hparams or "forecaster" in hparams:
        return
    hparams["forecaster"] = {k: hparams.pop(k) for k in FORMAT_1_FORECASTER_KEYS if k in hparams}


MIGRATIONS: dict[int, Migration] = {0: _from_format_0, 1: _from_format_1}
"""Format n -> the migration that turns a checkpoint of format n into one of format n + 1."""


def stamp(checkpoint: dict) -> None:
    """Record this code's format and version in a checkpoint being saved."""
    checkpoint[KEY] = {"format": FORMAT, "version": __version__}


def format_of(checkpoint: dict, source: str) -> int:
    """The format a checkpoint records (0 when it records none)."""
    record = checkpoint.get(KEY, {"format": 0})
    fmt = record.get("format") if isinstance(record, dict) else None
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 0:
        raise CheckpointError(f"checkpoint {source}: unknown format record {record!r}; this earthgraph "
                              f"({__version__}) reads formats 0 to {FORMAT}")
    return fmt


def upgrade(checkpoint: dict, source: str, migrations: dict[int, Migration] | None = None,
            current: int | None = None) -> list[int]:
    """Bring ``checkpoint`` to the current format in place; returns the formats migrated
    from, in order (empty when it is current). ``migrations``/``current``: defaults
    :data:`MIGRATIONS` and :data:`FORMAT` (tests pass their own)."""
    migrations = MIGRATIONS if migrations is None else migrations
    current = FORMAT if current is None else current
    fmt = format_of(checkpoint, source)
    if fmt > current:
        written = checkpoint.get(KEY, {}).get("version", "an unknown version")
        raise CheckpointError(f"checkpoint {source}: format {fmt} (written by earthgraph {written}) is newer than "
                              f"this earthgraph ({__version__}) reads, formats 0 to {current}: upgrade earthgraph")
    applied = []
    while fmt < current:
        if fmt not in migrations:
            raise CheckpointError(f"checkpoint {source}: no migration from format {fmt}; this earthgraph "
                                  f"({__version__}) reads formats {sorted(migrations)} and {current}")
        migrations[fmt](checkpoint)
        applied.append(fmt)
        fmt += 1
    if applied:  # the writer's version stays; the record says where the migrations began
        written = checkpoint.get(KEY, {}).get("version", "unrecorded")
        checkpoint[KEY] = {"format": current, "version": written, "migrated_from": applied[0]}
    return applied


def load_file(path: str | os.PathLike, map_location=None) -> dict:
    """``torch.load`` of a checkpoint file, its failures named: a missing file, a truncated or
    corrupt one, one that holds no Lightning checkpoint."""
    if "://" not in str(path) and not Path(path).is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # pickle, zip and torch errors of truncated or foreign files
        raise CheckpointError(f"checkpoint {path} cannot be read (truncated or corrupt?): "
                              f"{type(e).__name__}: {e}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"checkpoint {path}: not a Lightning checkpoint (no state_dict)")
    return checkpoint


def read_checkpoint(path: str | os.PathLike, map_location=None) -> dict:
    """A checkpoint file in the current format (:func:`load_file`, then :func:`upgrade`)."""
    checkpoint = load_file(path, map_location)
    upgrade(checkpoint, str(path))
    return checkpoint


def load_weights(module: torch.nn.Module, path: str | os.PathLike) -> None:
    """A checkpoint's weights into ``module`` (a warm start): every parameter and buffer
    of the module must be in the checkpoint with the same shape, and nothing else may
    be there; what differs is refused, naming each key and both shapes."""
    state = read_checkpoint(path, map_location=lambda storage, loc: storage)["state_dict"]
    own = module.state_dict()
    problems = [f"{k}: not in the checkpoint" for k in sorted(set(own) - set(state))]
    problems += [f"{k}: in the checkpoint, not in this model" for k in sorted(set(state) - set(own))]
    problems += [f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
                 for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise CheckpointError(f"checkpoint {path}: its weights do not fit this model ({len(problems)} "
                              f"difference(s)): {shown}")
    module.load_state_dict(state)


def newest_intact(folders: list[str | os.PathLike], warn: Callable[[str], None] = print) -> Path | None:
    """The newest checkpoint in ``folders`` (by modification time: ``*.ckpt`` and the
    ``*.ckpt.previous`` copies that the writer keeps) that reads; each newer one that does
    not is named through ``warn``. None when there is none."""
    candidates = [p for d in folders if Path(d).is_dir()
                  for p in [*Path(d).glob("*.ckpt"), *Path(d).glob("*.ckpt.previous")] if p.is_file()]
    for path in sorted(candidates, key=lambda p: p.stat().st_mtime_ns, reverse=True):
        try:
            load_file(path, map_location=lambda storage, loc: storage)
        except CheckpointError as e:
            warn(f"resume: {e}; trying an older checkpoint")
            continue
        return path
    return None
