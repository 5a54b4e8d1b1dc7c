"""The LightningDataModule: observation windows split by time."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from types import MappingProxyType

import lightning as L
import numpy as np
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader, Sampler
from torch.utils.data.distributed import DistributedSampler

from earthgraph.data.obs_types import ObservationType
from earthgraph.data.store import ObservationStore
from earthgraph.data.type_files import read_types
from earthgraph.training.loader_workers import TrackedWindows, WatchedDataLoader, name_worker_death
from earthgraph.training.threads import single_thread_worker
from earthgraph.data.windows import (
    WindowDataset,
    check_history_windows,
    collate_windows,
    init_times_between,
    observation_schema,
    resolve_dropout,
    windows_before,
)


class ResumableShuffleSampler(DistributedSampler):
    """A fresh permutation every epoch, a pure function of (seed, epoch), that can
    start part-way through one: how training resumes mid-epoch on exactly the
    batches it would have seen. Each ``iter()`` begins the next epoch and yields
    ``(sample, epoch)`` keys (:meth:`WindowDataset.__getitem__` takes either).

    Under DDP (``replicas`` > 1) rank ``rank`` takes every ``replicas``-th sample of
    the permutation, padded with its first samples to a multiple of ``replicas`` as
    torch's DistributedSampler pads, and ``skip`` counts this rank's samples. Being a
    DistributedSampler, Lightning uses it as it is instead of wrapping it in one
    (a wrapper would shard a list that a resume has already shortened).
    """

    def __init__(self, size: int, seed: int, epoch: int = 0, skip: int = 0, replicas: int = 1, rank: int = 0):
        # Not DistributedSampler.__init__, which asks torch.distributed for the world: this one is told it.
        if not 0 <= rank < replicas:
            raise ValueError(f"ResumableShuffleSampler: rank {rank} is not one of {replicas} replicas")
        self.size, self.seed, self.epoch, self.skip = size, seed, epoch, skip
        self.num_replicas, self.rank = replicas, rank
        self.shuffle, self.drop_last = True, False
        self.on_epoch = None  # called with the epoch number at the start of each one

    def __len__(self) -> int:
        return -(-self.size // self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        if self.num_replicas > 1:
            padded = np.concatenate([order, order[:len(self) * self.num_replicas - self.size]])
            order = padded[self.rank::self.num_replicas]
        start, self.skip = self.skip, 0
        if self.on_epoch is not None:
            self.on_epoch(self.epoch)
        epoch, self.epoch = self.epoch, self.epoch + 1
        # (sample, epoch) keys: persistent data-loader workers hold copies of the dataset made
        # when they started, so the epoch of a sample's random draws must travel with it.
        return iter([(i, epoch) for i in order[start:].tolist()])


def check_periods_disjoint(periods: dict[str, tuple[str, str] | None]) -> None:
    """Raise unless every period is a [start, end) with start < end and no two overlap
    (a validation or test target inside the training period would be scored on data
    the model was fitted to)."""
    spans = {}
    for key, period in periods.items():
        if period is None:
            continue
        try:
            start, end = (np.datetime64(x, "s") for x in period)
        except (TypeError, ValueError) as err:
            raise ValueError(f"data.{key}: expected [start, end) ISO dates, got {period!r}") from err
        if not start < end:
            raise ValueError(f"data.{key}: start {period[0]} is not before end {period[1]}")
        spans[key] = (start, end)
    names = list(spans)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (s1, e1), (s2, e2) = spans[a], spans[b]
            if s1 < e2 and s2 < e1:
                raise ValueError(f"data.{a} {list(periods[a])} overlaps data.{b} {list(periods[b])}; the periods "
                                 "must be disjoint")


def check_declared_types(store: ObservationStore, declared: list[ObservationType], source: str) -> None:
    """Raise unless every declared type is in ``store`` with the same definition."""
    for t in declared:
        if t.name not in store.type_names:
            raise ValueError(f"data.types: {source} declares {t.name!r}, which store {store.path} does not hold; "
                             f"it holds {store.type_names}")
        if store.obs_type(t.name) != t:
            raise ValueError(f"data.types: {source} declares {t.name!r} as {t.to_dict()}, but store {store.path} "
                             f"holds it as {store.obs_type(t.name).to_dict()}")


class StoreChangedError(RuntimeError):
    """The observation store was rewritten while a run was reading it."""


class ObservationDataModule(L.LightningDataModule):
    """Windows of a store for training, validation and testing.

    Each sample sees ``input_windows`` windows of observations before its
    initialisation time and is trained on the ``rollout`` windows after it.

    Periods are ``[start, end)`` ISO dates; each split's initialisation times
    are every ``stride_hours`` inside its period whose windows lie in the data.
    ``dropout`` maps observation types to the fraction of their input
    observations dropped at random in training (GraphDOP-style augmentation);
    ``"graphdop"`` drops 25% of satellite and 50% of conventional observations;
    ``max_targets_per_type`` caps, by random subsampling, the target
    observations of each type per window in training (an unbiased estimate of
    the loss at a fraction of the decoder's cost). Validation and test use all.
    ``store`` is a local path or an fsspec URL (``storage_options`` for its filesystem).
    ``predict_period`` (default: the test period) holds the initialisations ``predict`` forecasts from.
    ``cycle_windows`` > 0 trains a cycling model (``model.cycling``): each sample carries that many
    windows before its initialisation to cycle through (see :mod:`earthgraph.training.cycling`)
    instead of the packed input windows. ``history_windows`` gives chosen types more input windows
    than ``input_windows`` (``{"soil_moisture": 20}``: ten days of retrievals of a slow field; see
    :mod:`earthgraph.data.windows`). ``types``: a YAML file of observation types
    (:mod:`earthgraph.data.type_files`) the store must hold as declared; a type declared
    there but missing from the store, or stored with another definition, is refused.
    A store without static fields trains with a warning: the model then sees no land-sea
    mask or orography. A store rewritten while training runs (``ingest`` into it, say) stops
    the run at the next epoch with a :class:`StoreChangedError`; a data-loader worker that
    dies is named with the window it was reading (:mod:`earthgraph.training.loader_workers`).
    """

    def __init__(self, store: str, train_period: tuple[str, str], val_period: tuple[str, str],
                 test_period: tuple[str, str] | None = None, window_hours: float = 12.0, rollout: int = 1,
                 batch_size: int = 4, num_workers: int = 0, stride_hours: float = 3.0,
                 dropout: dict[str, float] | str | None = None, max_targets_per_type: int | None = None,
                 input_windows: int = 1, seed: int = 0, in_memory: bool = True,
                 storage_options: dict | None = None, predict_period: tuple[str, str] | None = None,
                 cycle_windows: int = 0, history_windows: dict[str, int] | None = None, types: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        check_periods_disjoint({"train_period": train_period, "val_period": val_period, "test_period": test_period})
        self.store = ObservationStore(store, storage_options)
        if types is not None:
            check_declared_types(self.store, read_types(types), types)
        # Normalisation from the training period only: the statistics go into the checkpoint.
        self.schema = observation_schema(self.store, tuple(train_period))
        self.history = check_history_windows(history_windows, self.schema, input_windows)
        self.dropout = resolve_dropout(self.store, dropout)
        static = self.store.static()
        self.static = {k: v.tolist() for k, v in static.items()} if static else None
        if not static:
            warnings.warn(f"observation store {store} has no static fields: the model sees no land-sea mask or "
                          "orography (zeros in their place). Add them with `python -m earthgraph.data ingest "
                          "--statics synthetic|climt|FILE` (README, 'Your own observations')", stacklevel=2)
        self.window_hours = window_hours
        self._datasets: dict[str, WindowDataset] = {}
        self._sampler: ResumableShuffleSampler | None = None
        self._resume: dict | None = None
        self._tracked: dict[str, TrackedWindows] = {}

    @property
    def datasets(self) -> Mapping[str, WindowDataset]:
        """The windows of each split set up so far (``train``, ``val``, ``test``, ``predict``), read-only."""
        return MappingProxyType(self._datasets)

    def _dataset(self, period, stride_hours: float, dropout=None, max_targets=None,
                 targets_in_period: bool = True) -> WindowDataset:
        hp = self.hparams
        before = windows_before(hp.input_windows, self.history, hp.cycle_windows)
        times = init_times_between(np.datetime64(period[0]), np.datetime64(period[1]), hp.window_hours, hp.rollout,
                                   stride_hours, self.store.time_range, before, targets_in_period)
        return WindowDataset(self.store, times, self.schema, hp.window_hours, hp.rollout, dropout=dropout,
                             max_targets_per_type=max_targets, input_windows=hp.input_windows, seed=hp.seed,
                             cycle_windows=hp.cycle_windows, history_windows=self.history)

    def setup(self, stage: str | None = None) -> None:
        if self.hparams.in_memory:
            self.store.load()
        hp = self.hparams
        if stage in (None, "fit"):
            self._datasets["train"] = self._dataset(hp.train_period, hp.stride_hours, self.dropout,
                                                    hp.max_targets_per_type)
        if stage in (None, "fit", "validate"):
            self._datasets["val"] = self._dataset(hp.val_period, hp.window_hours)
        if stage in (None, "test") and hp.test_period:
            self._datasets["test"] = self._dataset(hp.test_period, hp.window_hours)
        if stage == "predict":
            period = hp.predict_period or hp.test_period
            if not period:
                raise ValueError("predict needs data.predict_period (or data.test_period): [start, end)")
            # Forecasts from every initialisation of the period, verifying wherever the data reaches.
            self._datasets["predict"] = self._dataset(period, hp.window_hours, targets_in_period=False)

    def _loader(self, split: str, sampler: Sampler | None = None) -> DataLoader:
        workers = self.hparams.num_workers
        data = self._datasets[split]
        if workers > 0:  # in worker processes: track what each reads, to name it if one dies
            data = TrackedWindows(data, workers)
            self._tracked[split] = data
        return WatchedDataLoader(data, batch_size=self.hparams.batch_size, sampler=sampler, num_workers=workers,
                                 collate_fn=collate_windows, persistent_workers=workers > 0,
                                 worker_init_fn=single_thread_worker if workers > 0 else None)

    def worker_error(self, error: BaseException) -> Exception | None:
        """``error`` named with the windows being read, when it is torch's report of a dead
        data-loader worker (which can surface anywhere in a training step); else None."""
        return name_worker_death(error, list(self._tracked.values()))

    def check_store_unchanged(self, epoch: int) -> None:
        """Raise :class:`StoreChangedError` when the store on disk is no longer the one this run
        opened: its windows and normalisation came from the old one, and the two must not mix."""
        change = self.store.changed_on_disk()
        if change is not None:
            raise StoreChangedError(
                f"observation store {self.store.path} changed under this run, found at the start of epoch {epoch}: "
                f"{change}. The run stops rather than train on two stores; its checkpoints are intact. Put the "
                "old store back and resume with --ckpt_path last, or start a new run (or --fork_from) on the new "
                "store")

    def train_dataloader(self) -> DataLoader:
        data = self._datasets["train"]
        epoch = self.trainer.current_epoch if self.trainer else 0
        skip = 0
        if self._resume and self._resume["epoch"] == epoch:  # restarting mid-epoch from a checkpoint
            skip = self._resume["samples"]
        self._resume = None
        replicas, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        self._sampler = ResumableShuffleSampler(len(data), self.hparams.seed, epoch, skip, replicas, rank)

        def start_epoch(e: int) -> None:  # the dropout and target draws change with the epoch
            self.check_store_unchanged(e)
            data.epoch = e

        self._sampler.on_epoch = start_epoch
        return self._loader("train", self._sampler)

    def state_dict(self) -> dict:
        """Where training is in the current epoch, saved in every checkpoint (under DDP, per
        rank: the ranks step together)."""
        # While fitting (also in a validation run mid-epoch, where checkpoints are often saved).
        if self.trainer is None or self._sampler is None or self.trainer.state.fn != TrainerFn.FITTING:
            return {}
        processed = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"epoch": self._sampler.epoch - 1, "samples": processed * self.hparams.batch_size}

    def load_state_dict(self, state: dict) -> None:
        self._resume = state or None

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
