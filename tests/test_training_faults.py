"""Faults during training survived: a run killed between validations resumes from its periodic
checkpoint; a damaged last checkpoint falls back to the newest intact one; a full disk while
writing a checkpoint or a store leaves the previous file intact with a named error."""

import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
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
    from earthgraph.data.store_writer import StoreWriter
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


def _rewrite_with_other_synop_values(path: Path) -> None:
    """Rewrite the store at ``path`` in place (as ``ingest`` does): every type as it was, synop's values + 1 K."""
    from earthgraph.data.store import ObservationStore
    from earthgraph.data.store_writer import StoreWriter

    store = ObservationStore(path)
    t0, t1 = store.time_range
    columns = {n: store.read(n, t0, t1 + 1) for n in store.type_names}
    columns["synop"]["values"] = columns["synop"]["values"] + 1.0
    with StoreWriter(path, [store.obs_type(n) for n in store.type_names], overwrite=True,
                     codes={n: store.codes(n) for n in store.type_names if store.codes(n)}) as w:
        for name, cols in columns.items():
            w.append(name, cols)


class RewriteStoreAt(L.Callback):
    """A callback (named by class path in the test's config) that rewrites the store mid-epoch."""

    def __init__(self, store: str, step: int):
        self.store, self.step = Path(store), step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            _rewrite_with_other_synop_values(self.store)


def test_a_store_rewritten_under_a_running_training_stops_it_at_the_next_epoch(small_osse, tmp_path):
    from earthgraph.training.datamodule import StoreChangedError

    out, _ = small_osse
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run(["cp", "-r", str(out / "obs.zarr"), str(data / "obs.zarr")], check=True)
    cfg = _periodic_config(tmp_path, data, "run")
    text = cfg.read_text().replace(
        "  callbacks:\n",
        f"  callbacks:\n    - class_path: test_training_faults.RewriteStoreAt\n"
        f"      init_args: {{store: {data}/obs.zarr, step: 2}}\n")
    cfg.write_text(text + "  in_memory: false\n")
    with pytest.raises(StoreChangedError, match=rf"observation store {data}/obs.zarr changed under this run, found "
                                                r"at the start of epoch 1: changed: root, type "):
        train_cli(["fit", "--config", str(cfg), "--trainer.max_steps", "9", "--trainer.limit_train_batches", "4",
                   "--trainer.logger", "false"])
    ckpt = tmp_path / "run" / "ckpt" / "periodic.ckpt"
    assert torch.load(ckpt, weights_only=False)["global_step"] == 3, "the checkpoint of epoch 0 is intact"


def test_a_data_loader_worker_that_dies_is_named_with_the_window_it_was_reading(small_osse, tmp_path, monkeypatch):
    import os
    import signal

    import numpy as np

    from earthgraph.data.windows import WindowDataset
    from earthgraph.training.loader_workers import DataLoaderWorkerError

    out, _ = small_osse
    cfg = _periodic_config(tmp_path, out, "run")
    read = WindowDataset.__getitem__
    parent = os.getpid()

    def dies_in_a_worker(self, i):
        if os.getpid() != parent:  # as the out-of-memory killer would end it
            os.kill(os.getpid(), signal.SIGKILL)
        return read(self, i)

    monkeypatch.setattr(WindowDataset, "__getitem__", dies_in_a_worker)
    with pytest.raises(DataLoaderWorkerError) as caught:
        train_cli(["fit", "--config", str(cfg), "--trainer.max_steps", "2", "--trainer.logger", "false",
                   "--data.num_workers", "1"])
    message = str(caught.value)
    assert message.startswith("a data-loader worker died (DataLoader worker (pid")
    assert "lower data.num_workers or data.batch_size" in message
    # The first sample of epoch 0's shuffle (seed 0 of the data module), described by the dataset.
    cli = train_cli(["--config", str(cfg)], run=False)
    cli.datamodule.setup("fit")
    train = cli.datamodule.datasets["train"]
    first = int(np.random.default_rng([0, 0]).permutation(len(train))[0])
    assert f"was reading {train.describe(first)}" in message
    assert "initialised 2020-03-" in message and f"from store {out}/obs.zarr" in message


@pytest.mark.parametrize("text, pids", [
    ("DataLoader worker (pid 1234) is killed by signal: Killed.", {1234}),
    ("DataLoader worker (pid(s) 1234, 5678) exited unexpectedly", {1234, 5678}),
    ("CUDA out of memory", None),
])
def test_torchs_reports_of_dead_workers_are_recognised(text, pids):
    from earthgraph.training.loader_workers import dead_worker_pids

    assert dead_worker_pids(RuntimeError(text)) == pids
