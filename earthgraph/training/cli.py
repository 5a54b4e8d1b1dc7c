"""``train.py``'s LightningCLI: fit / validate / test / predict with YAML configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from jsonargparse.typing import register_type
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import WandbLogger

from earthgraph.processors.registry import CustomProcessor
from earthgraph.training import threads
from earthgraph.training.callbacks import PeriodicCheckpoint
from earthgraph.training.checkpoint_format import load_weights, newest_intact, read_checkpoint
from earthgraph.training.config_checks import check_config
from earthgraph.training.datamodule import ObservationDataModule
from earthgraph.training.module import ForecastModule
from earthgraph.training.writers import ForecastWriter

# `model.forecaster.processor: {class_path, init_args}` is a user's processor for build_processor to build with
# the model's sizes, not a class for jsonargparse to instantiate: parsed (and its class imported) as data.
register_type(CustomProcessor, serializer=dataclasses.asdict, deserializer=CustomProcessor.parse)

# Top-level options of `train.py predict` that configure its ForecastWriter's station forecasts.
STATION_OPTIONS = {"stations": "stations", "station_variables": "station_variables",
                   "station_leads": "station_leads_hours"}


class EarthgraphCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--threads", type=Optional[int], default=None,
                            help="CPU threads of the training process (default: the cores available less one per "
                                 "DataLoader worker; see earthgraph.training.threads)")
        # Station forecasts from the command line, without a ForecastWriter in the config
        # (every subcommand parses them; only predict accepts them: before_instantiate_classes).
        parser.add_argument("--stations", type=Optional[str], default=None,
                            help="predict only: a CSV or parquet station list (columns id, lat, lon[, elevation]); "
                                 "writes forecast_stations.zarr and forecast_stations.parquet beside forecast.zarr")
        parser.add_argument("--station_variables", type=str, nargs="+", default=None,
                            help="predict only: products (air_temperature) or heads (synop.t2m) to forecast at "
                                 "the stations (default: every product)")
        parser.add_argument("--station_leads", type=float, nargs="+", default=None,
                            help="predict only: station forecast leads in hours (default: the gridded forecast's)")
        # Starting from another run's checkpoint (README, "Resume, fork and warm start").
        parser.add_argument("--fork_from", type=Optional[str], default=None,
                            help="fit only: a new run from a checkpoint's weights, optimiser, schedule and step, "
                                 "writing where this config says (--ckpt_path resumes the same run)")
        parser.add_argument("--warm_start", type=Optional[str], default=None,
                            help="fit only: a new run from a checkpoint's weights alone (a new optimiser from step "
                                 "0; the config may differ wherever the weights' shapes agree)")
        # The model's input/output layout is the data's: declared once, in data.
        parser.link_arguments("data.schema", "model.schema", apply_on="instantiate")
        parser.link_arguments("data.static", "model.static", apply_on="instantiate")
        parser.link_arguments("data.window_hours", "model.forecaster.window_hours")

    def _parse_ckpt_path(self) -> None:
        """Lightning's (a resumed run takes its model's hyperparameters from the checkpoint), with
        the checkpoint read through its format: migrated when older (format 1's flat model options
        reach the parser as model.forecaster.*), refused by name when newer, truncated or corrupt
        (Lightning's own read fails with an unpickling error)."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        hparams = dict(read_checkpoint(ckpt_path, map_location="cpu").get("hyper_parameters", {}))
        hparams.pop("_instantiator", None)
        if hparams:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        threads.apply(int(config.get("data", {}).get("num_workers", 0) or 0), config.get("threads"))
        given = [f"--{k}" for k in STATION_OPTIONS if config.get(k) is not None]
        if given and self.subcommand != "predict":
            raise ValueError(f"{', '.join(given)}: station forecasts are made by `train.py predict` only, not "
                             f"`{self.subcommand or 'train.py'}`")
        if self.subcommand and config.get("data") and config.get("model"):
            # The cross-field checks, before any data is read or model built.
            check_config(config["model"].as_dict(), config["data"].as_dict())
        starts = [f"--{k}" for k in ("fork_from", "warm_start") if config.get(k)]
        if starts and self.subcommand != "fit":
            raise ValueError(f"{', '.join(starts)}: only `train.py fit` starts a run from a checkpoint")
        if len(starts) + bool(config.get("ckpt_path")) > 1:
            raise ValueError(f"{', '.join(starts + (['--ckpt_path'] if config.get('ckpt_path') else []))}: give one "
                             "of --ckpt_path (resume this run), --fork_from (a new run from a checkpoint's training "
                             "state) and --warm_start (a new run from its weights)")

    def before_fit(self) -> None:
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path") == "last":
            self._resume_from_newest_intact(config)
        if config.get("warm_start"):
            load_weights(self.model, config["warm_start"])
        if config.get("fork_from"):
            # Lightning's restore of a checkpoint's whole training state, into this config's run.
            config["ckpt_path"] = config["fork_from"]

    def _resume_from_newest_intact(self, config) -> None:
        """``--ckpt_path last``: the newest checkpoint of the run's checkpoint folders that reads
        (a truncated or corrupt ``last.ckpt`` falls back to ``last.ckpt.previous`` or an
        older one, each skipped one named); none at all leaves Lightning's "last", which
        starts afresh with a warning."""
        from lightning.pytorch.callbacks import ModelCheckpoint

        folders = [cb.dirpath for cb in self.trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.dirpath]
        folders += [str(cb.folder(self.trainer)) for cb in self.trainer.callbacks if isinstance(cb, PeriodicCheckpoint)]
        found = newest_intact(list(dict.fromkeys(folders)), warn=lambda line: print(line, flush=True))
        if found is not None:
            print(f"resume: from {found}", flush=True)
            config["ckpt_path"] = str(found)

    def _run_subcommand(self, subcommand: str) -> None:
        # torch reports a dead data-loader worker from a signal handler, wherever the main
        # process is (a training step, too): name the window it was reading wherever it surfaces.
        try:
            super()._run_subcommand(subcommand)
        except RuntimeError as e:
            named = self.datamodule.worker_error(e) if isinstance(self.datamodule, ObservationDataModule) else None
            if named is None:
                raise
            raise named from e

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
        writers = [cb for cb in self.trainer.callbacks if isinstance(cb, ForecastWriter)]
        if not writers:
            writers = [ForecastWriter(str(Path(self.trainer.default_root_dir) / "predictions"))]
            self.trainer.callbacks.append(writers[0])
        config = self.config[self.subcommand]
        for option, attribute in STATION_OPTIONS.items():  # the command line's options win over the config's writer
            if config.get(option) is not None:
                for writer in writers:
                    setattr(writer, attribute, config[option])

    def after_predict(self) -> None:
        self._finish_wandb()


def main(args: list[str] | None = None, run: bool = True) -> EarthgraphCLI:
    """``train.py``; with ``run=False`` only builds the model, data and trainer (no subcommand)."""
    return EarthgraphCLI(ForecastModule, ObservationDataModule, save_config_kwargs={"overwrite": True}, args=args, run=run,
                         trainer_defaults={"plugins": [{"class_path": "earthgraph.training.checkpoint_io.AtomicCheckpointIO"}]})
