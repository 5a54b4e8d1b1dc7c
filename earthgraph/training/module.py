"""The LightningModule: wraps the forecaster with the loss, optimiser and logging."""

from __future__ import annotations

import math

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from earthgraph.forecaster import GraphDOPForecaster
from earthgraph.training.epoch_means import EpochMeans
from earthgraph.training.loss import observation_loss
from earthgraph.training.rollout import parse_curriculum, rollout_windows
from earthgraph.training.run_info import data_summary, git_revision, graph_summary
from earthgraph.training.writers import observation_forecasts


class ForecastModule(L.LightningModule):
    """Trains a :class:`GraphDOPForecaster` on observation windows.

    ``schema`` and ``static`` come from the data module (linked by the CLI) and
    are saved in the checkpoint, so a checkpoint alone can make forecasts.
    """

    def __init__(self, schema: dict | None = None, static: dict | None = None, nside: int = 8,
                 latent_dim: int = 64, hidden_dim: int = 64, processor_layers: int = 4, decoder_k: int = 4,
                 window_hours: float = 12.0, lr: float = 1e-3, weight_decay: float = 0.01,
                 warmup_steps: int = 50, min_lr_ratio: float = 0.05, type_weights: dict[str, float] | None = None,
                 encoder_neighbours: bool = True, mesh: str = "healpix", mesh_level: int = 4,
                 multiscale_levels: int = 1, graph_cache_dir: str | None = "default",
                 budgets: dict[str, dict[str, list[str]]] | None = None, transport_substeps: int = 2,
                 processor: str = "interaction", attention_heads: int = 4, activation_checkpointing: bool = False,
                 max_nonfinite_steps: int = 5, ensemble_members: int = 1, noise_dim: int = 8,
                 rollout_curriculum: dict[int, int] | None = None, sphere_weights: dict[str, float] | None = None,
                 kernel_backend: str = "auto"):
        super().__init__()
        if not schema:
            raise ValueError("ForecastModule needs the observation schema (the CLI links it from the data module)")
        # Everything goes into the checkpoint; the logger gets a compact summary
        # (the schema's statistics and the static grids would swamp a W&B config).
        self.save_hyperparameters(logger=False)
        self.model = GraphDOPForecaster(schema, nside=nside, latent_dim=latent_dim, hidden_dim=hidden_dim,
                                        processor_layers=processor_layers, decoder_k=decoder_k,
                                        window_hours=window_hours, static=static,
                                        encoder_neighbours=encoder_neighbours, mesh=mesh, mesh_level=mesh_level,
                                        multiscale_levels=multiscale_levels, graph_cache_dir=graph_cache_dir,
                                        budgets=budgets, transport_substeps=transport_substeps, processor=processor,
                                        attention_heads=attention_heads, activation_checkpointing=activation_checkpointing,
                                        ensemble_members=ensemble_members, noise_dim=noise_dim,
                                        kernel_backend=kernel_backend)
        # A type's weight in the loss: its own (type_weights) times its sphere's (sphere_weights).
        unknown = set(sphere_weights or {}) - {s["sphere"] for s in schema.values()}
        if unknown:
            raise ValueError(f"sphere_weights names spheres no observation type has: {sorted(unknown)}")
        self.type_weights = {name: (type_weights or {}).get(name, 1.0) * (sphere_weights or {}).get(s["sphere"], 1.0)
                             for name, s in schema.items()}
        self.nonfinite_in_a_row = self.skipped_steps = 0
        self.curriculum = parse_curriculum(rollout_curriculum)
        spheres = sorted({s["sphere"] for s in schema.values()})
        self.eval_means = EpochMeans([f"loss_{n}" for n in schema] + [f"loss_sphere_{s}" for s in spheres])

    def on_fit_start(self) -> None:
        if self.logger is None:
            return
        hp = {k: v for k, v in self.hparams.items() if k not in ("schema", "static")}
        hp["observation_types"] = {n: s["channels"] for n, s in self.hparams.schema.items()}
        hp["graph"] = graph_summary(self.model.mesh)
        hp["data"] = data_summary(self.trainer.datamodule)
        hp["git"] = git_revision()
        hp["parameters"] = sum(p.numel() for p in self.parameters())
        self.logger.log_hyperparams(hp)

    def on_train_start(self) -> None:
        data_rollout = getattr(getattr(self.trainer, "datamodule", None), "hparams", {}).get("rollout")
        parse_curriculum(self.curriculum, data_rollout)

    def forward(self, batch: dict) -> list[dict[str, torch.Tensor]]:
        return self.model(batch["inputs"], batch["init_time"], batch["targets"])

    def _shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        if stage == "train":
            windows = rollout_windows(self.curriculum, self.global_step)
            if windows is not None:
                batch = {**batch, "targets": batch["targets"][:windows]}
                self.log("train/rollout_windows", float(windows), batch_size=len(batch["init_time"]))
        preds = self(batch)
        loss, per_type = observation_loss(preds, batch["targets"], self.type_weights)
        if torch.isfinite(loss):  # a skipped step must not turn the epoch means into NaN
            self._log_losses(loss, per_type, stage, len(batch["init_time"]))
        return loss

    def _log_losses(self, loss: torch.Tensor, per_type: dict[str, torch.Tensor], stage: str, bs: int) -> None:
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, on_step=stage == "train", on_epoch=True,
                 sync_dist=stage != "train")
        spheres: dict[str, list[torch.Tensor]] = {}
        for name, v in per_type.items():
            spheres.setdefault(self.hparams.schema[name]["sphere"], []).append(v)
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
        """Forecasts at the batch's target observations (see ``training.writers``)."""
        return observation_forecasts(self, batch)

    def on_before_optimizer_step(self, optimizer) -> None:
        # The gradient norm before clipping: the first thing to look at when training misbehaves.
        norms = [p.grad.detach().norm() for p in self.parameters() if p.grad is not None]
        if norms:
            self.log("train/grad_norm", torch.stack(norms).norm(), on_step=True, on_epoch=False)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(self.hparams.warmup_steps, total // 2)
        floor = self.hparams.min_lr_ratio

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
