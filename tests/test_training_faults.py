"""Faults during training survived: a run killed between validations resumes from its periodic
checkpoint; a damaged last checkpoint falls back to the newest intact one; a full disk while
writing a checkpoint or a store leaves the previous file intact with a named error."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from earthgraph.training.checkpoint_format import CheckpointError
from earthgraph.training.cli import main as train_cli
from test_training import _resume_config

REPO = Path(__file__).resolve().parents[1]


def _periodic_config(tmp_path, out, run) -> Path:
    """The resume config with validation-time checkpoints only (as the committed configs have)
    plus a PeriodicCheckpoint every 3 steps."""
    cfg = _resume_config(tmp_path, out, run)
    text = cfg.read_text().replace("every_n_train_steps: 4, save_top_k: -1", "save_top_k: 0")
    text = text.replace("  callbacks:\n", "  callbacks:\n    - class_path: earthgraph.training.callbacks.PeriodicCheckpoint\n"
                                         "      init_args: {every_n_train_steps: 3}\n")
    cfg.write_text(text)
    return cfg


def test_a_damaged_last_checkpoint_resumes_from_the_newest_intact_one(small_osse, tmp_path, capsys):
    out, _ = small_osse
    cfg = _periodic_config(tmp_path, out, "run")
    train_cli(["fit", "--config", str(cfg), "--trainer.max_steps", "7", "--trainer.logger", "false"])
    ckpts = tmp_path / "run" / "ckpt"
    last, periodic, previous = ckpts / "last.ckpt", ckpts / "periodic.ckpt", ckpts / "periodic.ckpt.previous"
    # No validation ran (limit_val_batches 0): the periodic saves at steps 3 and 6, and the end's.
    assert [torch.load(p, weights_only=False)["global_step"] for p in (last, periodic, previous)] == [7, 6, 3]
    for damaged in (last, periodic):  # a crash of the disk, not of our writer
        damaged.write_bytes(damaged.read_bytes()[:3000])
    capsys.readouterr()
    train_cli(["fit", "--config", str(cfg), "--trainer.max_steps", "9", "--trainer.logger", "false",
               "--ckpt_path", "last"])
    printed = capsys.readouterr().out
    assert "last.ckpt cannot be read (truncated or corrupt?)" in printed
    assert "periodic.ckpt cannot be read (truncated or corrupt?)" in printed
    assert f"resume: from {previous}" in printed
    assert torch.load(periodic, weights_only=False)["global_step"] == 9, "resumed from step 3 and trained on"
    with pytest.raises(CheckpointError, match=r"broken\.ckpt cannot be read"):  # a named file is not replaced
        (ckpts / "broken.ckpt").write_bytes(b"\x00" * 100)
        train_cli(["fit", "--config", str(cfg), "--ckpt_path", str(ckpts / "broken.ckpt")])


FULL_DISK = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    import numpy as np
    import torch
    from earthgraph.training.checkpoint_io import AtomicCheckpointIO
    from earthgraph.data.store import StoreWriter
    from earthgraph.data import obs_types
    what, path = sys.argv[1], Path(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # files of 200 kB at most
    try:
        if what == "checkpoint":
            AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(1_000_000)}}, path)
        else:
            cols = {"time": np.arange(200_000, dtype=np.int64), "lat": np.zeros(200_000),
                    "lon": np.zeros(200_000), "values": np.random.default_rng(0).normal(size=(200_000, 1)),
                    "error": np.ones((200_000, 1)), "station_id": np.zeros(200_000)}
            with StoreWriter(path, [obs_types.get("synop")], overwrite=True) as w:
                w.append("synop", cols)
    except Exception as e:
        print(f"{type(e).__name__}: {e}")
        sys.exit(3)
""")


def test_a_full_disk_leaves_the_previous_checkpoint_and_store_intact_with_a_named_error(small_osse, tmp_path):
    from earthgraph.data.store import ObservationStore

    out, _ = small_osse
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"w": torch.ones(3)}}, ckpt)
    before = ckpt.read_bytes()
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, "checkpoint", str(ckpt)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"CheckpointError: checkpoint {ckpt}: writing failed (")
    assert "the previous checkpoint there is intact" in proc.stdout
    assert ckpt.read_bytes() == before and not list(tmp_path.glob(".model.ckpt*")), "no partial file left"

    store = tmp_path / "obs.zarr"
    subprocess.run(["cp", "-r", str(out / "obs.zarr"), str(store)], check=True)
    rows = ObservationStore(store).rows("synop")
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, "store", str(store)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"StoreError: store {store}: writing failed (")
    assert ObservationStore(store).rows("synop") == rows, "the store there is unchanged"
