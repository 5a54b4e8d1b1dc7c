"""The LightningModule: wraps the forecaster with the loss, optimiser and logging."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import asdict

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from earthgraph.data.schema import ObservationSchema
from earthgraph.models import ForecasterConfig, GraphDOPForecaster
from earthgraph.training.checkpoint_format import read_checkpoint, stamp
from earthgraph.training.cycling import ReplayBuffer, cold_start, cycled_predictions
from earthgraph.training.epoch_means import EpochMeans
from earthgraph.training.loss import observation_loss
from earthgraph.training.obs_forecasts import observation_forecasts
from earthgraph.training.rollout import parse_curriculum, rollout_windows
from earthgraph.training.run_info import data_summary, git_revision, graph_summary


class ForecastModule(L.LightningModule):
    """Trains a :class:`GraphDOPForecaster` on observation windows.

    ``schema`` and ``static`` come from the data module (linked by the CLI) and
    are saved in the checkpoint, so a checkpoint alone can make forecasts.

    Args:
        schema: The observation schema (linked from data.schema).
        static: The store's static fields (linked from data.static).
        forecaster: The forecaster's architecture (earthgraph.models.ForecasterConfig).
        lr: Peak learning rate of AdamW.
        weight_decay: AdamW's weight decay.
        warmup_steps: Steps of linear warm-up before the cosine decay (at most half the run).
        min_lr_ratio: The learning rate at the end of the cosine, as a fraction of lr.
        type_weights: Loss weight per observation type (default 1).
        sphere_weights: Loss weight per sphere, multiplying its types' own.
        max_nonfinite_steps: Steps in a row with a non-finite loss that are skipped before training stops.
        rollout_curriculum: {from step: rollout windows}: how many target windows a training step rolls
            out to (at most data.rollout).
        replay_buffer_states: Cycled analyses kept between training steps, to start later cycles from
            (cycling; earthgraph.training.cycling).
        cold_start_fraction: Fraction of training cycles that start from the learned background, not the
            replay buffer (in [0, 1]).
        error_floor: Each departure is divided by at least this fraction of its channel's spread (>= 0).
    """

    def __init__(self, schema: ObservationSchema | dict | None = None, static: dict | None = None,
                 forecaster: ForecasterConfig = ForecasterConfig(), lr: float = 1e-3, weight_decay: float = 0.01,
                 warmup_steps: int = 50, min_lr_ratio: float = 0.05, type_weights: dict[str, float] | None = None,
                 sphere_weights: dict[str, float] | None = None, max_nonfinite_steps: int = 5,
                 rollout_curriculum: dict[int, int] | None = None, replay_buffer_states: int = 0,
                 cold_start_fraction: float = 0.1, error_floor: float = 0.0):
        super().__init__()
        if not schema:
            raise ValueError("ForecastModule needs the observation schema (the CLI links it from the data module)")
        if error_floor < 0:
            raise ValueError(f"model.error_floor must be >= 0, got {error_floor}")
        if not 0.0 <= cold_start_fraction <= 1.0:
            raise ValueError(f"model.cold_start_fraction must be in [0, 1], got {cold_start_fraction}")
        if isinstance(forecaster, Mapping):  # a checkpoint's hyperparameters
            forecaster = ForecasterConfig(**forecaster)
        self.model = GraphDOPForecaster(schema, static, forecaster)
        schema = self.model.schema
        # Everything goes into the checkpoint, as plain data; the logger gets a compact summary
        # (the schema's statistics and the static grids would swamp a W&B config).
        self.save_hyperparameters(ignore=["schema", "forecaster"], logger=False)
        self.hparams.update(schema=schema.to_dict(), forecaster=asdict(forecaster))
        # Cycled analyses kept between training steps (see training.cycling); not checkpointed.
        self.replay = ReplayBuffer(replay_buffer_states)
        # A type's weight in the loss: its own (type_weights) times its sphere's (sphere_weights).
        unknown = set(sphere_weights or {}) - set(schema.spheres)
        if unknown:
            raise ValueError(f"sphere_weights names spheres no observation type has: {sorted(unknown)}")
        self.type_weights = {name: (type_weights or {}).get(name, 1.0) * (sphere_weights or {}).get(s.sphere, 1.0)
                             for name, s in schema.items()}
        self.nonfinite_in_a_row = self.skipped_steps = 0
        self.curriculum = parse_curriculum(rollout_curriculum)
        self.eval_means = EpochMeans([f"loss_{n}" for n in schema] + [f"loss_sphere_{s}" for s in schema.spheres])

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        stamp(checkpoint)  # the format and version that wrote it (training.checkpoint_format)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, hparams_file=None, strict=None,
                             weights_only=None, **kwargs):
        """Lightning's ``load_from_checkpoint`` of a checkpoint read through its format: an
        older format is migrated first (``training.checkpoint_format``), a newer, truncated
        or corrupt one refused by name."""
        checkpoint = read_checkpoint(checkpoint_path, map_location)
        buffer = io.BytesIO()  # the upgraded checkpoint, handed to Lightning's loader as a file
        torch.save(checkpoint, buffer)
        buffer.seek(0)
        return super().load_from_checkpoint(buffer, map_location=map_location, hparams_file=hparams_file,
                                            strict=strict, weights_only=False, **kwargs)

    def on_fit_start(self) -> None:
        if self.logger is None:
            return
        hp = {k: v for k, v in self.hparams.items() if k not in ("schema", "static", "_instantiator")}
        hp["observation_types"] = {n: list(s.channels) for n, s in self.model.schema.items()}
        hp["graph"] = graph_summary(self.model.mesh)
        hp["data"] = data_summary(self.trainer.datamodule)
        hp["git"] = git_revision()
        hp["parameters"] = sum(p.numel() for p in self.parameters())
        self.logger.log_hyperparams(hp)

    def on_train_start(self) -> None:
        data = getattr(getattr(self.trainer, "datamodule", None), "hparams", {})
        parse_curriculum(self.curriculum, data.get("rollout"))
        if data.get("cycle_windows", 0) and not self.model.cycling:
            raise ValueError(f"data.cycle_windows is {data['cycle_windows']} but model.forecaster.cycling is false: "
                             "the cycle windows train a cycling model's analysis; set model.forecaster.cycling: true or "
                             "data.cycle_windows: 0")

    def forward(self, batch: dict) -> list[dict[str, torch.Tensor]]:
        return self.model(batch.get("inputs"), batch["init_time"], batch["targets"],
                          input_windows=batch.get("input_windows", 1))

    def _predictions(self, batch: dict, stage: str) -> tuple[list[dict], list[dict]]:
        """(predictions, their targets) of a batch: the rollout's; with cycle windows also the
        backgrounds' of the cycle (in training: from the replay buffer or a cold start;
        in validation and testing: a cold start, and only the rollout is scored)."""
        if "cycle_inputs" not in batch:
            return self(batch), batch["targets"]
        bs = len(batch["init_time"])
        first = batch["init_time"] - len(batch["cycle_inputs"]) * self.model.window_seconds
        if stage == "train" and not cold_start(self.global_step, self.hparams.cold_start_fraction):
            start, hits = self.replay.start_states(self.model, first)
            self.log("train/replay_hits", hits / bs, batch_size=bs, on_step=False, on_epoch=True)
        else:
            start = self.model.cold_state(bs, first.device)
        spin_up, spin_targets, rollout, analyses = cycled_predictions(self.model, batch, start)
        if stage != "train":
            return rollout, batch["targets"]
        for k, state in enumerate(analyses):
            self.replay.put(first + (k + 1) * self.model.window_seconds, state, self.model.members)
        return spin_up + rollout, spin_targets + batch["targets"]

    def _shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        if stage == "train":
            windows = rollout_windows(self.curriculum, self.global_step)
            if windows is not None:
                batch = {**batch, "targets": batch["targets"][:windows]}
                self.log("train/rollout_windows", float(windows), batch_size=len(batch["init_time"]))
        preds, targets = self._predictions(batch, stage)
        loss, per_type = observation_loss(preds, targets, self.type_weights, self.hparams.error_floor)
        if torch.isfinite(loss):  # a skipped step must not turn the epoch means into NaN
            self._log_losses(loss, per_type, stage, len(batch["init_time"]))
        return loss

    def _log_losses(self, loss: torch.Tensor, per_type: dict[str, torch.Tensor], stage: str, bs: int) -> None:
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, on_step=stage == "train", on_epoch=True,
                 sync_dist=stage != "train")
        spheres: dict[str, list[torch.Tensor]] = {}
        for name, v in per_type.items():
            spheres.setdefault(self.model.schema[name].sphere, []).append(v)
        parts = {f"loss_{n}": v for n, v in per_type.items()}
        parts.update({f"loss_sphere_{s}": torch.stack(vs).mean() for s, vs in spheres.items()})
        for name, v in parts.items():
            if stage == "train":  # rank 0's under DDP: a synchronised log every step would cost a collective each
                self.log(f"train/{name}", v, batch_size=bs, on_step=False, on_epoch=True)
            else:  # reduced over ranks at the epoch's end (a type may be missing from one rank's batch)
                self.eval_means.add(name, v, bs)

    def _log_eval_means(self, stage: str) -> None:
        # The strategy's reduce is the identity in one process and an all-reduce under DDP.
        reduce_sum = lambda t: self.trainer.strategy.reduce(t, reduce_op="sum")  # noqa: E731
        for name, v in self.eval_means.compute(reduce_sum).items():
            self.log(f"{stage}/{name}", v, on_step=False, on_epoch=True)

    def on_validation_epoch_start(self) -> None:
        self.eval_means.reset(self.device)

    def on_validation_epoch_end(self) -> None:
        self._log_eval_means("val")

    def on_test_epoch_start(self) -> None:
        self.eval_means.reset(self.device)

    def on_test_epoch_end(self) -> None:
        self._log_eval_means("test")

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        loss = self._shared_step(batch, "train")
        # A NaN or Inf loss (a corrupt batch, an overflow) skips the step: returning None
        # makes Lightning skip the backward pass and the optimiser step. Too many in a
        # row means something is broken, not unlucky.
        finite = bool(torch.isfinite(loss))
        if self.trainer.world_size > 1:  # skip together, or DDP would wait forever for the skipping rank
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if finite:
            self.nonfinite_in_a_row = 0
            return loss
        self.nonfinite_in_a_row += 1
        self.skipped_steps += 1
        self.log("train/skipped_nonfinite_steps", float(self.skipped_steps), batch_size=len(batch["init_time"]))
        starts = [str(t) for t in batch["init_time"].to(torch.int64).cpu().numpy().astype("datetime64[s]")]
        if self.nonfinite_in_a_row > self.hparams.max_nonfinite_steps:
            raise FloatingPointError(
                f"training stopped: {self.nonfinite_in_a_row} steps in a row with a non-finite loss (last: batch "
                f"{batch_idx}, initialisations {starts}); max_nonfinite_steps is {self.hparams.max_nonfinite_steps}")
        rank_zero_warn(f"skipping step {self.global_step}: non-finite loss {float(loss)} (batch {batch_idx}, "
                       f"initialisations {starts})")
        return None

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "test")

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """Forecasts at the batch's target observations (see ``training.writers``), from the
        cycled analyses when the prediction writer has made them (a cycling model)."""
        starts = getattr(self, "predict_start_states", None)
        start = None
        if starts is not None:
            start = starts(batch["init_time"].cpu().numpy().astype("int64")).to(self.device)
        return observation_forecasts(self, batch, start)

    def on_before_optimizer_step(self, optimizer) -> None:
        # The gradient norm before clipping: the first thing to look at when training misbehaves.
        norms = [p.grad.detach().norm() for p in self.parameters() if p.grad is not None]
        if norms:
            self.log("train/grad_norm", torch.stack(norms).norm(), on_step=True, on_epoch=False)

    def configure_optimizers(self):
        # foreach: one multi-tensor update of all ~400 parameter tensors, bit-identical to
        # the per-tensor loop torch picks on the CPU and 1.6x faster there (fused: 4x, last bits differ)
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                                foreach=True)
        estimated = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(self.hparams.warmup_steps, estimated // 2)
        floor = self.hparams.min_lr_ratio

        def total() -> int:
            # Read at every step: a callback may shorten max_steps mid-run (callbacks.TimeBudget),
            # and the cosine should then still end at the new stop.
            steps = self.trainer.max_steps if self._trainer is not None else -1
            return min(steps, estimated) if steps is not None and steps > 0 else estimated

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total() - warmup, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
