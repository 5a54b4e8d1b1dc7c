"""``train.py``'s LightningCLI: fit / validate / test / predict with YAML configs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import WandbLogger

from earthgraph.training import threads
from earthgraph.training.datamodule import ObservationDataModule
from earthgraph.training.module import ForecastModule
from earthgraph.training.writers import ForecastWriter


class EarthgraphCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--threads", type=Optional[int], default=None,
                            help="CPU threads of the training process (default: the cores available less one per "
                                 "DataLoader worker; see earthgraph.training.threads)")
        # The model's input/output layout is the data's: declared once, in data.
        parser.link_arguments("data.schema", "model.schema", apply_on="instantiate")
        parser.link_arguments("data.static", "model.static", apply_on="instantiate")
        parser.link_arguments("data.window_hours", "model.window_hours")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        threads.apply(int(config.get("data", {}).get("num_workers", 0) or 0), config.get("threads"))

    def _finish_wandb(self) -> None:
        # Close the W&B run so that an offline run is complete on disk for `wandb sync`.
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger) and logger._experiment is not None:
                logger.experiment.finish()

    def after_fit(self) -> None:
        self._finish_wandb()

    def after_validate(self) -> None:
        self._finish_wandb()

    def after_test(self) -> None:
        self._finish_wandb()

    def before_predict(self) -> None:
        # `train.py predict` writes its forecasts without extra configuration.
        if not any(isinstance(cb, ForecastWriter) for cb in self.trainer.callbacks):
            self.trainer.callbacks.append(ForecastWriter(str(Path(self.trainer.default_root_dir) / "predictions")))

    def after_predict(self) -> None:
        self._finish_wandb()


def main(args: list[str] | None = None, run: bool = True) -> EarthgraphCLI:
    """``train.py``; with ``run=False`` only builds the model, data and trainer (no subcommand)."""
    return EarthgraphCLI(ForecastModule, ObservationDataModule, save_config_kwargs={"overwrite": True}, args=args, run=run,
                         trainer_defaults={"plugins": [{"class_path": "earthgraph.training.checkpoint_io.AtomicCheckpointIO"}]})
