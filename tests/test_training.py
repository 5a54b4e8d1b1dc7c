"""The model learns, Lightning trains it, W&B records it, the CLI drives it."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger

from earthgraph.models import ForecasterConfig
from earthgraph.training.callbacks import ForecastMaps, ProgressLine, ThroughputMonitor, TimeBudget
from earthgraph.training.datamodule import ObservationDataModule
from earthgraph.training.loss import observation_loss
from earthgraph.training.module import ForecastModule
from earthgraph.training.wandb_offline import read_config, read_history

REPO = Path(__file__).resolve().parents[1]
PERIODS = dict(train_period=("2020-03-01", "2020-03-09"), val_period=("2020-03-09", "2020-03-11"),
               test_period=("2020-03-11", "2020-03-13"))
SMALL = ForecasterConfig(nside=4, latent_dim=32, hidden_dim=32, processor_layers=2)
SMALL_MODEL = dict(forecaster=SMALL, warmup_steps=2)


def _datamodule(osse_dir, **kw):
    return ObservationDataModule(str(osse_dir / "obs.zarr"), **PERIODS, rollout=2, batch_size=2, **kw)


def test_optimiser_steps_reduce_the_loss_on_a_fixed_batch(small_osse):
    out, _ = small_osse
    torch.manual_seed(0)
    dm = _datamodule(out)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    module = ForecastModule(schema=dm.schema, static=dm.static, **SMALL_MODEL)
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss, _ = observation_loss(module(batch), batch["targets"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_loss_ignores_missing_observations_and_weights_by_error():
    from earthgraph.data.batch import ObsSet

    def obs(values, error):
        n = len(values)
        return ObsSet(torch.tensor(values)[:, None], torch.tensor(error)[:, None], torch.zeros(n), torch.zeros(n),
                      torch.zeros(n), torch.zeros(n, 0), torch.zeros(n, dtype=torch.long))

    pred = torch.tensor([[1.0], [0.0], [5.0]])
    o = obs([0.0, 0.0, float("nan")], [1.0, 0.5, 1.0])
    total, per = observation_loss([{"t": pred}], [{"t": o}])
    # departures 1 and 0 in units of errors 1 and 0.5; the NaN row is masked.
    assert float(total) == pytest.approx((1.0 + 0.0) / 2)
    o = obs([0.0, 1.0, float("nan")], [1.0, 0.5, 1.0])
    total, _ = observation_loss([{"t": pred}], [{"t": o}])
    assert float(total) == pytest.approx((1.0 + (1.0 / 0.5) ** 2) / 2)
    with pytest.raises(ValueError, match="no valid target"):
        observation_loss([{"t": pred}], [{"t": obs([float("nan")] * 3, [1.0] * 3)}])


def test_an_error_floor_stops_a_precise_type_from_outweighing_the_rest():
    """A profiling float's 0.02 K error is a fraction of a percent of its channel's spread; a
    model error the mesh cannot avoid then costs thousands. The floor caps what it costs and
    leaves types with larger errors as they were."""
    from earthgraph.data.batch import ObsSet

    def obs(values, error):
        n = len(values)
        return ObsSet(torch.tensor(values)[:, None], torch.tensor(error)[:, None], torch.zeros(n), torch.zeros(n),
                      torch.zeros(n), torch.zeros(n, 0), torch.zeros(n, dtype=torch.long))

    pred = {"float": torch.tensor([[0.1], [0.1]]), "station": torch.tensor([[0.1], [0.1]])}
    target = {"float": obs([0.0, 0.0], [0.002, 0.002]), "station": obs([0.0, 0.0], [0.1, 0.1])}
    _, unfloored = observation_loss([pred], [target])
    total, floored = observation_loss([pred], [target], error_floor=0.05)
    assert float(unfloored["float"]) == pytest.approx((0.1 / 0.002) ** 2)  # 2500: the float is all the loss
    assert float(floored["float"]) == pytest.approx((0.1 / 0.05) ** 2)
    assert float(floored["station"]) == pytest.approx(float(unfloored["station"])) == pytest.approx(1.0)
    assert float(total) == pytest.approx((4.0 + 1.0) / 2)


def test_lightning_fit_logs_metrics_to_an_offline_wandb_run(small_osse, tmp_path):
    out, _ = small_osse
    L.seed_everything(0)
    dm = _datamodule(out)
    # A curriculum too: through `train.py` with the W&B logger its step keys reached
    # on_train_start as strings, and training refused it.
    module = ForecastModule(schema=dm.schema, static=dm.static, rollout_curriculum={0: 1, 4: 2}, **SMALL_MODEL)
    logger = WandbLogger(project="earthgraph-test", offline=True, save_dir=str(tmp_path))
    trainer = L.Trainer(max_steps=6, limit_val_batches=2, val_check_interval=3, log_every_n_steps=1,
                        logger=logger, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, accelerator="cpu",
                        callbacks=[ThroughputMonitor(), ForecastMaps(every_n_validations=2)])
    trainer.fit(module, dm)
    run_dir = Path(logger.experiment.dir).parent
    logger.experiment.finish()
    assert run_dir.name.startswith("offline-run-")
    assert list(run_dir.glob("run-*.wandb")), "the offline run's file exists for `wandb sync`"

    history = read_history(run_dir)
    logged = {k for row in history for k in row}
    for key in ("train/loss_step", "val/loss", "val/loss_synop", "val/loss_sphere_ocean", "val/loss_sphere_cryosphere",
                "train/grad_norm", "train/samples_per_second", "train/observations_per_second",
                "maps/air_temperature_24h/_type", "maps/sea_surface_temperature_24h/_type"):
        assert key in logged, key
    maps = [row["maps/air_temperature_24h/_type"] for row in history if "maps/air_temperature_24h/_type" in row]
    assert maps == ["images/separated"], "one map image, at the first of two validations"
    train = [row["train/loss_step"] for row in history if "train/loss_step" in row]
    assert len(train) == 6 and all(np.isfinite(train))
    assert [row["train/rollout_windows"] for row in history if "train/rollout_windows" in row] == [1, 1, 1, 1, 2, 2]
    steps = [row["trainer/global_step"] for row in history if "val/loss" in row]
    assert steps == [2, 5], "validation every 3 steps"
    config = read_config(run_dir)
    assert config["forecaster"]["nside"] == 4 and config["forecaster"]["latent_dim"] == 32
    assert config["graph"]["nodes"] == 192 and config["data"]["types"] == sorted(dm.schema)
    assert len(config["git"]["commit"] or "") in (0, 40)  # a checkout records its commit


@pytest.mark.parametrize("every_seconds, printed", [(0.0, ["1/3", "2/3", "3/3"]), (3600.0, ["1/3", "3/3"])])
def test_the_progress_line_reports_step_loss_and_time_left(small_osse, tmp_path, capsys, every_seconds, printed):
    """A console that is a log file still shows a run is alive: every line names the step out of
    the total, a finite loss and the time left; an hour's interval still prints the first and last."""
    out, _ = small_osse
    L.seed_everything(0)
    dm = _datamodule(out)
    module = ForecastModule(schema=dm.schema, static=dm.static, **SMALL_MODEL)
    trainer = L.Trainer(max_steps=3, limit_val_batches=0, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                        accelerator="cpu", callbacks=[ProgressLine(every_seconds=every_seconds)])
    capsys.readouterr()
    trainer.fit(module, dm)
    lines = [line.split("  ") for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert [fields[0].split()[1] for fields in lines] == printed
    for fields in lines:
        assert np.isfinite(float(fields[1].split()[1]))
        assert fields[-1].startswith("left ")
    assert lines[-1][-1] == "left 0:00"
    with pytest.raises(ValueError, match="every_seconds"):
        ProgressLine(every_seconds=-1)


def _fit_with_budget(out, tmp_path, budget: TimeBudget | None) -> tuple[L.Trainer, ForecastModule]:
    """20 seeded steps with a last-checkpoint callback and, if given, a time budget."""
    L.seed_everything(0)
    dm = _datamodule(out)
    module = ForecastModule(schema=dm.schema, static=dm.static, **SMALL_MODEL)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=0)
    trainer = L.Trainer(max_steps=20, max_epochs=-1, val_check_interval=1000, check_val_every_n_epoch=None,
                        limit_val_batches=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, accelerator="cpu",
                        callbacks=[checkpoints] + ([budget] if budget else []))
    trainer.fit(module, dm)
    return trainer, module


def test_a_time_budget_stops_early_with_the_schedule_finished_and_the_model_saved(small_osse, tmp_path, capsys):
    """A run that would overrun its wall-time budget stops at a step that fits, says so, ends
    its learning-rate decay there and leaves a last checkpoint of that step; a generous budget
    (the negative control) changes nothing, bit for bit."""
    out, _ = small_osse
    budget = TimeBudget(minutes=1e-6, check_every_steps=5, round_to=1)  # overrun at the first decision
    trainer, module = _fit_with_budget(out, tmp_path / "cut", budget)
    # Step 5 only starts the pace's clock (the first steps are slower); step 10 decides.
    assert trainer.global_step == budget.stop_step == 11 and budget.configured_steps == 20
    assert "TimeBudget:" in capsys.readouterr().out
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(module.hparams.lr * module.hparams.min_lr_ratio)
    saved = torch.load(tmp_path / "cut" / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == 11

    reference, ref_module = _fit_with_budget(out, tmp_path / "none", None)
    generous = TimeBudget(minutes=600, check_every_steps=5)
    roomy, roomy_module = _fit_with_budget(out, tmp_path / "roomy", generous)
    assert reference.global_step == roomy.global_step == 20 and generous.stop_step is None
    for a, b in zip(ref_module.parameters(), roomy_module.parameters()):
        assert torch.equal(a, b)
    for bad in (dict(minutes=0), dict(minutes=float("nan")), dict(minutes=5, check_every_steps=0),
                dict(minutes=5, round_to=0)):
        with pytest.raises(ValueError, match="TimeBudget"):
            TimeBudget(**bad)


def _fit_with_cli(tmp_path, out, seed: int, trainer_extra: str = "") -> subprocess.CompletedProcess:
    """Run ``train.py fit`` on a tiny config (3 steps, checkpoints in tmp_path/ckpt)."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"""
seed_everything: {seed}
trainer:
  max_steps: 3
  accelerator: cpu
  limit_val_batches: 1
  enable_progress_bar: false
  default_root_dir: {tmp_path}
  logger: false
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {{dirpath: {tmp_path}/ckpt, save_last: true}}
{trainer_extra}
model: {{forecaster: {{nside: 4, latent_dim: 16, hidden_dim: 16, processor_layers: 1}}}}
data:
  store: {out}/obs.zarr
  train_period: [2020-03-01, 2020-03-09]
  val_period: [2020-03-09, 2020-03-11]
  test_period: [2020-03-11, 2020-03-13]
  batch_size: 2
""")
    proc = subprocess.run([sys.executable, "train.py", "fit", "--config", str(cfg)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_train_cli_fits_and_writes_a_checkpoint(small_osse, tmp_path):
    out, _ = small_osse
    _fit_with_cli(tmp_path, out, seed=1)
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 3
    assert set(ckpt["hyper_parameters"]["schema"]) >= {"synop", "drifter", "seaice_conc", "geo_ir"}
    assert ckpt["datamodule_hyper_parameters"]["test_period"] == ["2020-03-11", "2020-03-13"]


class _CorruptInitTimes(L.Callback):
    """Turns the n-th training batches (counted from 0) into NaN, as a corrupt batch's
    forcing would; ``from_batch`` corrupts every batch from then on."""

    def __init__(self, batches=(), from_batch=None):
        self.batches, self.from_batch, self.seen = set(batches), from_batch, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if self.seen in self.batches or (self.from_batch is not None and self.seen >= self.from_batch):
            batch["init_time"] = torch.full_like(batch["init_time"], float("nan"))
        self.seen += 1


def test_a_nonfinite_loss_skips_the_step_and_too_many_stop_training(small_osse, tmp_path):
    out, _ = small_osse
    L.seed_everything(0)
    dm = _datamodule(out)
    module = ForecastModule(schema=dm.schema, static=dm.static, max_nonfinite_steps=2, **SMALL_MODEL)
    trainer = L.Trainer(max_steps=6, limit_val_batches=0, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                        accelerator="cpu", callbacks=[_CorruptInitTimes({2, 3})])
    with pytest.warns(UserWarning, match="skipping step 2: non-finite loss"):
        trainer.fit(module, dm)
    assert module.skipped_steps == 2 and trainer.global_step == 6, "two batches skipped, six steps taken"
    assert all(torch.isfinite(p).all() for p in module.parameters()), "no NaN reached the weights"
    module = ForecastModule(schema=dm.schema, static=dm.static, max_nonfinite_steps=2, **SMALL_MODEL)
    trainer = L.Trainer(max_steps=10, limit_val_batches=0, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                        accelerator="cpu", callbacks=[_CorruptInitTimes(from_batch=2)])
    with pytest.raises(FloatingPointError, match="3 steps in a row with a non-finite loss"):
        trainer.fit(module, dm)


def test_an_ensemble_with_a_water_budget_trains_reloads_and_is_scored(small_osse, tmp_path):
    from earthgraph.evaluate.cli import run

    out, _ = small_osse
    L.seed_everything(0)
    dm = _datamodule(out)
    water = {"water": {"atmosphere": ["mw_sounder.tcwv"], "snow": ["snow.swe"], "soil": [], "ocean": []}}
    module = ForecastModule(schema=dm.schema, static=dm.static, warmup_steps=2,
                            forecaster=replace(SMALL, ensemble_members=2, budgets=water))
    trainer = L.Trainer(max_steps=3, limit_val_batches=1, val_check_interval=3, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                        accelerator="cpu")
    trainer.fit(module, dm)
    assert module.skipped_steps == 0 and np.isfinite(float(trainer.callback_metrics["val/loss"]))
    trainer.save_checkpoint(tmp_path / "ens.ckpt")
    reloaded = ForecastModule.load_from_checkpoint(tmp_path / "ens.ckpt", map_location="cpu")
    assert reloaded.model.members == 2 and [b.name for b in reloaded.model.budgets] == ["water"]
    table = run(["--checkpoint", str(tmp_path / "ens.ckpt"), "--data-dir", str(out), "--out", str(tmp_path),
                 "--period", "2020-03-09", "2020-03-11", "--climatology-period", "2020-03-01", "2020-03-09",
                 "--leads", "12", "24"]).table
    glob = table[(table.region == "global") & (table.metric != "acc")]
    assert len(glob) and np.isfinite(glob.value).all()
    assert {"earthgraph", "persistence", "climatology", "perfect_model"} == set(glob.forecast)


def test_the_rollout_curriculum_lengthens_training_windows(small_osse, tmp_path):
    from earthgraph.training.rollout import parse_curriculum, rollout_windows

    plan = parse_curriculum({"3": 2, "0": 1})  # as YAML may give it: string keys, any order
    assert plan == {0: 1, 3: 2}
    assert [rollout_windows(plan, s) for s in range(5)] == [1, 1, 1, 2, 2]
    assert rollout_windows(None, 7) is None
    with pytest.raises(ValueError, match="from step 0"):
        parse_curriculum({5: 2})
    with pytest.raises(ValueError, match="integers"):
        parse_curriculum({"first": 2})
    out, _ = small_osse
    seen = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            seen.append(float(trainer.callback_metrics["train/rollout_windows"]))

    dm = _datamodule(out)
    module = ForecastModule(schema=dm.schema, static=dm.static, rollout_curriculum={0: 1, 3: 2}, **SMALL_MODEL)
    trainer = L.Trainer(max_steps=5, limit_val_batches=0, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                        accelerator="cpu", callbacks=[Spy()])
    trainer.fit(module, dm)
    assert seen == [1, 1, 1, 2, 2]
    module = ForecastModule(schema=dm.schema, static=dm.static, rollout_curriculum={0: 3}, **SMALL_MODEL)
    trainer = L.Trainer(max_steps=1, limit_val_batches=0, logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, default_root_dir=tmp_path, accelerator="cpu")
    with pytest.raises(ValueError, match="loads only 2"):
        trainer.fit(module, dm)


def test_ddp_on_two_cpu_processes_trains_and_checkpoints(small_osse, tmp_path):
    out, _ = small_osse
    proc = _fit_with_cli(tmp_path, out, seed=3, trainer_extra="  devices: 2\n  strategy: ddp")
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stderr + proc.stdout
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_ddp_validation_losses_per_type_are_the_mean_over_every_rank(small_osse, tmp_path):
    """Per-type and per-sphere validation losses under two DDP processes equal one process's
    over the same samples (each rank sees half of them; a type may be missing from one)."""
    import pandas as pd

    out, _ = small_osse
    _fit_with_cli(tmp_path, out, seed=1)

    def validate(run: str, extra: list[str]) -> dict[str, float]:
        cfg = tmp_path / f"{run}.yaml"
        cfg.write_text(f"""
seed_everything: 1
trainer:
  accelerator: cpu
  enable_progress_bar: false
  default_root_dir: {tmp_path}/{run}
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args: {{save_dir: {tmp_path}/{run}, name: csv}}
model: {{forecaster: {{nside: 4, latent_dim: 16, hidden_dim: 16, processor_layers: 1}}}}
data:
  store: {out}/obs.zarr
  train_period: [2020-03-01, 2020-03-09]
  val_period: [2020-03-09, 2020-03-12]
  batch_size: 1
""")
        proc = subprocess.run([sys.executable, "train.py", "validate", "--config", str(cfg), "--ckpt_path",
                               str(tmp_path / "ckpt" / "last.ckpt")] + extra,
                              cwd=REPO, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        row = pd.read_csv(next((tmp_path / run).glob("csv/version_*/metrics.csv"))).iloc[-1]
        return {k: float(v) for k, v in row.items() if k.startswith("val/") and np.isfinite(v)}

    one = validate("one", [])
    two = validate("two", ["--trainer.devices", "2", "--trainer.strategy", "ddp"])
    types = {k for k in one if k.startswith("val/loss_") and "sphere" not in k}
    assert len(types) >= 5 and {"val/loss_sphere_ocean", "val/loss_sphere_cryosphere"} <= set(one)
    assert set(two) == set(one)
    for key, value in one.items():
        assert two[key] == pytest.approx(value, rel=1e-5), key


def _resume_config(tmp_path, out, run):
    cfg = tmp_path / f"{run}.yaml"
    cfg.write_text(f"""
seed_everything: 5
trainer:
  max_steps: 40
  accelerator: cpu
  limit_val_batches: 0
  enable_progress_bar: false
  default_root_dir: {tmp_path}/{run}
  log_every_n_steps: 1
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args: {{save_dir: {tmp_path}/{run}, name: csv}}
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {{dirpath: {tmp_path}/{run}/ckpt, save_last: true, every_n_train_steps: 4, save_top_k: -1,
                   filename: "{{step}}"}}
model: {{forecaster: {{nside: 4, latent_dim: 16, hidden_dim: 16, processor_layers: 1}}, warmup_steps: 3}}
data:
  store: {out}/obs.zarr
  train_period: [2020-03-01, 2020-03-09]
  val_period: [2020-03-09, 2020-03-11]
  batch_size: 2
  dropout: graphdop
  max_targets_per_type: 200
""")
    return cfg


def _step_losses(run_dir):
    import pandas as pd

    rows = pd.concat([pd.read_csv(f) for f in sorted(Path(run_dir).glob("csv/version_*/metrics.csv"))])
    rows = rows.dropna(subset=["train/loss_step"])
    return dict(zip(rows["step"].astype(int), rows["train/loss_step"]))


def test_resuming_after_sigkill_mid_epoch_follows_the_same_loss_curve(small_osse, tmp_path):
    import signal
    import time

    out, _ = small_osse
    train = [sys.executable, "train.py", "fit", "--config"]
    whole = subprocess.run(train + [str(_resume_config(tmp_path, out, "whole"))], cwd=REPO, capture_output=True,
                           text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    reference = _step_losses(tmp_path / "whole")
    assert len(reference) == 40

    cfg = _resume_config(tmp_path, out, "killed")
    proc = subprocess.Popen(train + [str(cfg)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt_dir = tmp_path / "killed" / "ckpt"
    deadline = time.time() + 300
    while not (ckpt_dir / "last.ckpt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=False)
    resumed_from = saved["global_step"]
    assert 4 <= resumed_from < 40, "killed mid-run, after a checkpoint"

    again = subprocess.run(train + [str(cfg), "--ckpt_path", "last"], cwd=REPO, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    after = {s: v for s, v in _step_losses(tmp_path / "killed").items() if s >= resumed_from}
    assert sorted(after) == list(range(resumed_from, 40))
    for step, loss in after.items():
        assert loss == pytest.approx(reference[step], rel=1e-6, abs=0), f"step {step}"


def test_resuming_ddp_mid_epoch_follows_the_same_loss_curve(small_osse, tmp_path):
    """Two CPU processes under DDP, resumed from a checkpoint in the middle of an epoch:
    each rank must skip exactly the samples it had seen, so that the run goes on as if
    it had never stopped, through the next epoch too."""
    out, _ = small_osse
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_steps", "20"]
    train = [sys.executable, "train.py", "fit", "--config"]
    whole = subprocess.run(train + [str(_resume_config(tmp_path, out, "whole"))] + ddp, cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    reference = _step_losses(tmp_path / "whole")
    assert sorted(reference) == list(range(20))
    start = tmp_path / "whole" / "ckpt" / "step=8.ckpt"
    saved = torch.load(start, map_location="cpu", weights_only=False)
    epoch_batches = saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"]
    assert saved["epoch"] == 0 and 0 < epoch_batches and saved["ObservationDataModule"]["samples"] == 2 * epoch_batches

    again = subprocess.run(train + [str(_resume_config(tmp_path, out, "resumed"))] + ddp + ["--ckpt_path", str(start)],
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    final = torch.load(tmp_path / "resumed" / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert final["epoch"] >= 1, "the resumed run went on into the next epoch"
    after = _step_losses(tmp_path / "resumed")
    assert sorted(after) == list(range(8, 20))
    for step, loss in after.items():
        assert loss == pytest.approx(reference[step], rel=1e-6, abs=0), f"step {step}"
    expected = torch.load(tmp_path / "whole" / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    for name, value in expected["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][name], value, rtol=1e-5, atol=1e-7, msg=name)


def test_predict_writes_wb2_zarr_and_an_observation_space_store(small_osse, tmp_path):
    import xarray as xr

    from earthgraph.data.store import ObservationStore

    out, _ = small_osse
    L.seed_everything(0)
    dm = _datamodule(out)
    module = ForecastModule(schema=dm.schema, static=dm.static, **SMALL_MODEL)
    ckpt = tmp_path / "m.ckpt"
    trainer = L.Trainer(max_steps=1, limit_val_batches=0, logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, default_root_dir=tmp_path, accelerator="cpu")
    trainer.fit(module, dm)
    trainer.save_checkpoint(ckpt)
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"""
trainer: {{accelerator: cpu, logger: false, enable_progress_bar: false, default_root_dir: {tmp_path}}}
model: {{forecaster: {{nside: 4, latent_dim: 32, hidden_dim: 32, processor_layers: 2}}}}
data:
  store: {out}/obs.zarr
  train_period: [2020-03-01, 2020-03-09]
  val_period: [2020-03-09, 2020-03-11]
  predict_period: [2020-03-10, 2020-03-11]
  rollout: 2
  batch_size: 2
""")
    proc = subprocess.run([sys.executable, "train.py", "predict", "--config", str(cfg), "--ckpt_path", str(ckpt)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fc = xr.open_zarr(tmp_path / "predictions" / "forecast.zarr", consolidated=False)
    assert fc["air_temperature"].dims == ("time", "prediction_timedelta", "latitude", "longitude")
    assert list(fc.prediction_timedelta.values.astype("timedelta64[h]").astype(int)) == [12, 24]
    assert len(fc.time) == 2 and np.isfinite(fc["air_temperature"].values).all()
    store = ObservationStore(str(tmp_path / "predictions" / "forecast_obs.zarr"))
    obs = ObservationStore(str(out / "obs.zarr"))
    synop = store.read("synop", *store.time_range)
    assert len(synop["time"]) > 0 and np.all(np.diff(synop["time"]) >= 0)
    assert set(np.unique(synop["window"])) == {1.0, 2.0}
    assert np.all((synop["hours_since_init"] >= 0) & (synop["hours_since_init"] < 24))
    t2m = synop["values"][:, 0]
    assert np.isfinite(t2m).all() and 200 < t2m.mean() < 320, "physical units (K)"
    # Every forecast row sits on a real observation of that time and place.
    real = obs.read("synop", int(synop["time"].min()), int(synop["time"].max()) + 1)
    keys = set(zip(real["time"].tolist(), np.round(real["lat"], 3).tolist()))
    assert all((t, round(la, 3)) in keys for t, la in zip(synop["time"][:200].tolist(), synop["lat"][:200].tolist()))


def test_checkpoints_are_replaced_atomically_and_the_cli_uses_it(small_osse, tmp_path):
    from earthgraph.training.checkpoint_format import CheckpointError
    from earthgraph.training.checkpoint_io import AtomicCheckpointIO
    from earthgraph.training.cli import main

    io = AtomicCheckpointIO()
    path = tmp_path / "ckpt" / "last.ckpt"
    io.save_checkpoint({"global_step": 4, "w": torch.ones(3)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(CheckpointError, match=r"last\.ckpt: writing failed \(RuntimeError: disk full\); the previous "
                                              r"checkpoint there is intact"):
        io.save_checkpoint({"global_step": 8, "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=False)["global_step"] == 4, "the previous checkpoint survives"
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"], "no half-written debris"
    out, _ = small_osse
    cli = main(["--trainer.logger", "false", "--trainer.accelerator", "cpu", "--data.store", str(out / "obs.zarr"),
                "--data.train_period", "[2020-03-01, 2020-03-09]", "--data.val_period", "[2020-03-09, 2020-03-11]",
                "--model.forecaster.nside", "4"], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)


COMMITTED_CONFIGS = sorted(str(p.relative_to(REPO)) for p in [*(REPO / "configs").glob("*.yaml"),
                                                              *(REPO / "examples").glob("*/train.yaml")])


@pytest.mark.parametrize("config", COMMITTED_CONFIGS)
def test_every_committed_config_parses_with_the_cli(config):
    # A typo in a key, a wrong class path or a bad type fails here, before anyone's
    # GPU hour does (the configs name stores that need not exist yet).
    proc = subprocess.run([sys.executable, "train.py", "fit", "--config", config, "--print_config"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import yaml

    written = yaml.safe_load((REPO / config).read_text())
    parsed = yaml.safe_load(proc.stdout)
    forecaster = written["model"].pop("forecaster", {})  # only the options it sets; the rest are defaults
    sections = {"model": (written["model"], parsed["model"]), "data": (written["data"], parsed["data"]),
                "model.forecaster": (forecaster, parsed["model"]["forecaster"])}
    for section, (given, read) in sections.items():
        for key, value in given.items():
            got = read[key]
            if isinstance(value, dict):  # YAML mapping keys may come back as strings
                value, got = {str(k): v for k, v in value.items()}, {str(k): v for k, v in got.items()}
            assert got == value, f"{config}: {section}.{key} read as {got!r}, written {value!r}"


def test_a_store_without_statics_warns_and_declared_types_must_match_the_store(small_osse, tmp_path):
    import pandas as pd

    from earthgraph.data.ingest import TableSpec, ingest_tables

    out, _ = small_osse
    # A store made by ingest without --statics: training warns once, naming the store.
    times = pd.date_range("2020-03-01", "2020-03-12", freq="3h")
    pd.DataFrame({"time": times, "lat": 52.0, "lon": 5.0, "t": 280.0 + np.arange(len(times)) % 5}
                 ).to_csv(tmp_path / "t.csv", index=False)
    ingest_tables(tmp_path / "s.zarr", "synop", [(tmp_path / "t.csv", TableSpec(values={"t2m": "t"}))])
    with pytest.warns(UserWarning, match=r"s\.zarr has no static fields: the model sees no land-sea mask"):
        ObservationDataModule(str(tmp_path / "s.zarr"), **PERIODS)
    # The OSSE's store has them: no warning.
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _datamodule(out)
    # data.types: a declared type must be in the store as declared.
    (tmp_path / "types.yaml").write_text(
        "types:\n- name: synop\n  sphere: atmosphere\n  channels:\n"
        "  - {name: t2m, units: K, valid_min: 180, valid_max: 340, error: 2.0}\n  metadata: [station_id]\n")
    with pytest.raises(ValueError, match=r"data\.types: .*types\.yaml declares 'synop' as .*'error': 2\.0.*but store"):
        _datamodule(out, types=str(tmp_path / "types.yaml"))
