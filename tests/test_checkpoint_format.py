"""Checkpoint formats: the committed format-1 checkpoint still loads and forecasts what it did
when it was made; older formats are migrated, newer and broken ones refused by name; and the
three ways to start from a checkpoint (resume, fork, warm start) do what they say."""

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from earthgraph.data.batch import ObsSet
from earthgraph.models import ForecasterConfig
from earthgraph.training import checkpoint_format
from earthgraph.training.checkpoint_format import CheckpointError, read_checkpoint, upgrade
from earthgraph.training.cli import main as train_cli
from earthgraph.training.module import ForecastModule
from test_training import _resume_config

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "checkpoint-format-1"


def _sets(plain: dict) -> dict[str, ObsSet]:
    return {name: ObsSet(**{f.name: cols[f.name] for f in fields(ObsSet)}) for name, cols in plain.items()}


def test_the_format_1_checkpoint_forecasts_what_it_did_when_it_was_made():
    raw = torch.load(FIXTURE / "model.ckpt", map_location="cpu", weights_only=False)
    assert raw["earthgraph"] == {"format": 1, "version": "0.1.0"}, "a checkpoint records its format and version"
    module = ForecastModule.load_from_checkpoint(FIXTURE / "model.ckpt", map_location="cpu").eval()
    saved = torch.load(FIXTURE / "batch_and_forecasts.pt", map_location="cpu", weights_only=False)
    batch = {"init_time": saved["init_time"], "inputs": _sets(saved["inputs"]),
             "targets": [_sets(t) for t in saved["targets"]], "input_windows": saved["input_windows"]}
    with torch.no_grad():
        (predictions,) = module(batch)
    assert set(predictions) == set(saved["predictions"]) == {"synop", "drifter"}
    for name, expected in saved["predictions"].items():
        torch.testing.assert_close(predictions[name], expected, rtol=1e-5, atol=1e-6, msg=name)


def test_format_1_hyperparameters_move_under_the_forecaster_and_build_the_same_model():
    """Format 2 nests the forecaster's options (``model.forecaster``); format 1 kept them flat."""
    raw = torch.load(FIXTURE / "model.ckpt", map_location="cpu", weights_only=False)
    flat = raw["hyper_parameters"]
    ckpt = read_checkpoint(FIXTURE / "model.ckpt")
    assert ckpt["earthgraph"] == {"format": 2, "version": "0.1.0", "migrated_from": 1}
    hparams = ckpt["hyper_parameters"]
    assert set(hparams["forecaster"]) == set(checkpoint_format.FORMAT_1_FORECASTER_KEYS) & set(flat)
    assert hparams["forecaster"]["nside"] == flat["nside"] and hparams["lr"] == flat["lr"]
    assert not set(hparams) & set(checkpoint_format.FORMAT_1_FORECASTER_KEYS), "nothing left flat"
    module = ForecastModule.load_from_checkpoint(FIXTURE / "model.ckpt", map_location="cpu")
    assert module.model.config == ForecasterConfig(**hparams["forecaster"])
    assert set(module.hparams["forecaster"]) == {f.name for f in fields(ForecasterConfig)}


def test_older_formats_are_migrated_in_order_and_newer_or_broken_ones_refused_by_name(tmp_path):
    old = torch.load(FIXTURE / "model.ckpt", map_location="cpu", weights_only=False)
    del old["earthgraph"]  # what every checkpoint before formats looked like: format 0
    torch.save(old, tmp_path / "format0.ckpt")
    assert upgrade(read_checkpoint(tmp_path / "format0.ckpt"), "x") == [], "read_checkpoint migrated it already"
    module = ForecastModule.load_from_checkpoint(tmp_path / "format0.ckpt", map_location="cpu")
    assert sum(p.numel() for p in module.parameters()) > 0

    # Migrations run one format at a time, in order (a made-up format 3 renaming a weight).
    ckpt = read_checkpoint(FIXTURE / "model.ckpt")
    key = next(iter(ckpt["state_dict"]))
    order = []

    def two_to_three(c):
        order.append(2)
        c["state_dict"]["renamed"] = c["state_dict"].pop(key)

    def three_to_four(c):
        order.append(3)
        assert "renamed" in c["state_dict"], "format 3's migration ran first"

    assert upgrade(ckpt, "x", {**checkpoint_format.MIGRATIONS, 2: two_to_three, 3: three_to_four}, current=4) == [2, 3]
    assert order == [2, 3] and ckpt["earthgraph"]["format"] == 4 and ckpt["earthgraph"]["migrated_from"] == 2

    newer = torch.load(FIXTURE / "model.ckpt", map_location="cpu", weights_only=False)
    newer["earthgraph"] = {"format": 3, "version": "0.3.0"}
    torch.save(newer, tmp_path / "newer.ckpt")
    with pytest.raises(CheckpointError, match=r"newer\.ckpt: format 3 \(written by earthgraph 0\.3\.0\) is newer than "
                                              r"this earthgraph \(0\.1\.0\) reads, formats 0 to 2: upgrade earthgraph"):
        ForecastModule.load_from_checkpoint(tmp_path / "newer.ckpt")
    (tmp_path / "cut.ckpt").write_bytes((FIXTURE / "model.ckpt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"cut\.ckpt cannot be read \(truncated or corrupt\?\)"):
        ForecastModule.load_from_checkpoint(tmp_path / "cut.ckpt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match=r"foreign\.ckpt: not a Lightning checkpoint"):
        read_checkpoint(tmp_path / "foreign.ckpt")


def test_a_format_1_run_resumes_from_its_flat_hyperparameters(small_osse, tmp_path):
    """``--ckpt_path`` takes the model's options from the checkpoint: a format-1 one's flat
    options are migrated before they reach the parser (which knows only model.forecaster.*)."""
    out, _ = small_osse
    config = str(_resume_config(tmp_path, out, "old"))
    train_cli(["fit", "--config", config, "--trainer.max_steps", "4"])
    path = tmp_path / "old" / "ckpt" / "last.ckpt"
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    ckpt["hyper_parameters"].update(ckpt["hyper_parameters"].pop("forecaster"))  # format 1's layout
    ckpt["earthgraph"]["format"] = 1
    torch.save(ckpt, path)
    # The config asks for a wider model; the checkpoint's own options win, so its weights fit.
    train_cli(["fit", "--config", config, "--trainer.max_steps", "8", "--ckpt_path", str(path),
               "--model.forecaster.latent_dim", "32"])
    resumed = read_checkpoint(path)
    assert resumed["global_step"] == 8 and resumed["earthgraph"]["format"] == checkpoint_format.FORMAT
    assert resumed["hyper_parameters"]["forecaster"]["latent_dim"] == 16


def test_migrate_rewrites_a_checkpoint_in_the_current_format(tmp_path):
    old = torch.load(FIXTURE / "model.ckpt", map_location="cpu", weights_only=False)
    del old["earthgraph"]
    torch.save(old, tmp_path / "old.ckpt")
    run = [sys.executable, "-m", "earthgraph.training", "migrate"]
    proc = subprocess.run(run + [str(tmp_path / "old.ckpt"), "--out", str(tmp_path / "new.ckpt")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "format 0 -> 2 (2 migration(s))" in proc.stdout
    new = torch.load(tmp_path / "new.ckpt", map_location="cpu", weights_only=False)
    assert new["earthgraph"]["format"] == 2 and new["earthgraph"]["migrated_from"] == 0
    assert new["hyper_parameters"]["forecaster"]["nside"] == old["hyper_parameters"]["nside"]
    for k, v in old["state_dict"].items():
        torch.testing.assert_close(new["state_dict"][k], v, rtol=0, atol=0)
    assert "earthgraph" not in torch.load(tmp_path / "old.ckpt", weights_only=False), "--out leaves the old one"
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    proc = subprocess.run(run + [str(tmp_path / "bad.ckpt")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "bad.ckpt cannot be read" in proc.stderr
    assert (tmp_path / "bad.ckpt").read_bytes() == b"not a checkpoint"


def test_fork_continues_a_checkpoints_training_as_a_new_run_and_warm_start_takes_its_weights_alone(
        small_osse, tmp_path):
    out, _ = small_osse
    eight = ["--trainer.max_steps", "8"]
    train_cli(["fit", "--config", str(_resume_config(tmp_path, out, "whole")), *eight])
    start = tmp_path / "whole" / "ckpt" / "step=4.ckpt"
    whole = read_checkpoint(tmp_path / "whole" / "ckpt" / "last.ckpt")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "whole" / "ckpt").iterdir()}

    # Fork: the training state of step 4 (weights, optimiser, schedule, step, data order) in a new run.
    train_cli(["fit", "--config", str(_resume_config(tmp_path, out, "fork")), *eight, "--fork_from", str(start)])
    fork = read_checkpoint(tmp_path / "fork" / "ckpt" / "last.ckpt")
    assert fork["global_step"] == 8 and not (tmp_path / "fork" / "ckpt" / "step=4.ckpt").exists()
    for name, value in whole["state_dict"].items():  # the same run, continued elsewhere
        torch.testing.assert_close(fork["state_dict"][name], value, rtol=1e-5, atol=1e-7, msg=name)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "whole" / "ckpt").iterdir()} == before

    # Warm start: step 4's weights, a new optimiser from step 0, a different learning rate.
    train_cli(["fit", "--config", str(_resume_config(tmp_path, out, "warm")), "--warm_start", str(start),
               "--model.lr", "1e-12", "--trainer.max_steps", "2"])
    warm, weights = read_checkpoint(tmp_path / "warm" / "ckpt" / "last.ckpt"), read_checkpoint(start)["state_dict"]
    assert warm["global_step"] == 2
    assert warm["optimizer_states"][0]["state"][0]["step"] == 2, "a new optimiser, two steps old"
    for name, value in weights.items():  # a learning rate of 1e-12 leaves the weights where they started
        torch.testing.assert_close(warm["state_dict"][name], value, rtol=0, atol=1e-9, msg=name)

    # The shapes must agree: a wider model is refused, naming the weights that differ.
    with pytest.raises(CheckpointError, match=r"step=4\.ckpt: its weights do not fit this model .*checkpoint "
                                              r"\(\d+, 16\), model \(\d+, 32\)"):
        train_cli(["fit", "--config", str(_resume_config(tmp_path, out, "wide")), "--warm_start", str(start),
                   "--model.forecaster.latent_dim", "32", "--model.forecaster.hidden_dim", "32"])
    with pytest.raises(ValueError, match=r"--fork_from, --ckpt_path: give one of"):
        train_cli(["fit", "--config", str(_resume_config(tmp_path, out, "both")), "--fork_from", str(start),
                   "--ckpt_path", str(start)])


def test_two_seeded_cpu_runs_write_bitwise_identical_checkpoints(small_osse, tmp_path):
    """Seeded CPU training repeats to the bit: weights, optimiser state and step, after 200
    steps with input dropout and target subsampling (both seeded)."""
    out, _ = small_osse
    two_hundred = ["--trainer.max_steps", "200", "--trainer.logger", "false"]
    for run in ("a", "b"):
        train_cli(["fit", "--config", str(_resume_config(tmp_path, out, run)), *two_hundred])
    a, b = (torch.load(tmp_path / r / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False) for r in "ab")
    assert a["global_step"] == b["global_step"] == 200
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
    for state_a, state_b in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        for key, value in state_a.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(state_b[key])), key


def test_the_random_draws_of_an_epoch_do_not_depend_on_the_number_of_loader_workers(small_osse, tmp_path):
    """Input dropout and target subsampling change with the epoch, also in persistent workers
    (which hold a copy of the dataset made when they started: the epoch travels with each key)."""
    from earthgraph.training.cli import main as train_cli
    from test_training import _resume_config

    out, _ = small_osse
    cfg = _resume_config(tmp_path, out, "run")  # graphdop dropout, 200 targets per type

    def draws(workers: int) -> list[list[tuple]]:
        dm = train_cli(["--config", str(cfg), "--data.num_workers", str(workers)], run=False).datamodule
        dm.setup("fit")
        loader = dm.train_dataloader()
        epochs = []
        for _ in range(2):
            epochs.append([(tuple(b["init_time"].tolist()), {n: round(float(s.values.nansum()), 3)
                                                             for n, s in b["inputs"].items()})
                           for _, b in zip(range(3), loader)])
        return epochs

    in_process, in_workers = draws(0), draws(2)
    assert in_workers == in_process
    first = {times: sums for times, sums in in_process[0]}
    same_sample = [(sums, first[times]) for times, sums in in_process[1] if times in first]
    assert all(a != b for a, b in same_sample), "a sample's dropout changes with the epoch"
