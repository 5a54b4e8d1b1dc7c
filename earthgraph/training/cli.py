"""``train.py``'s LightningCLI: fit / validate / test with YAML configs."""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import WandbLogger

from earthgraph.training.checkpoint_io import AtomicCheckpointIO
from earthgraph.training.datamodule import ObservationDataModule
from earthgraph.training.module import ForecastModule


class EarthgraphCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # The model's input/output layout is the data's: declared once, in data.
        parser.link_arguments("data.schema", "model.schema", apply_on="instantiate")
        parser.link_arguments("data.static", "model.static", apply_on="instantiate")
        parser.link_arguments("data.window_hours", "model.window_hours")

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


def main(args: list[str] | None = None) -> EarthgraphCLI:
    return EarthgraphCLI(ForecastModule, ObservationDataModule, save_config_kwargs={"overwrite": True}, args=args,
                         trainer_defaults={"plugins": [AtomicCheckpointIO()]})
