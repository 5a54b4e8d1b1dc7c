"""Lightning callbacks for what a W&B user expects to see: throughput and forecast maps, and a
progress line on the console for long CPU runs."""

from __future__ import annotations

import math
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from earthgraph.data.grid import regular_grid_degrees
from earthgraph.data.obs_types import products_for
from earthgraph.progress import clock


class ThroughputMonitor(L.Callback):
    """Logs ``train/samples_per_second`` and ``train/observations_per_second`` (inputs and
    targets of the batch) from the wall time of each training batch."""

    def __init__(self) -> None:
        self._start: float | None = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self._start is None:
            return
        seconds = max(time.perf_counter() - self._start, 1e-9)
        samples = len(batch["init_time"])
        inputs = batch["cycle_inputs"] if "cycle_inputs" in batch else [batch["inputs"]]
        observations = sum(len(o) for window in inputs for o in window.values())
        observations += sum(len(o) for window in batch["targets"] for o in window.values())
        module.log("train/samples_per_second", samples / seconds, on_step=True, on_epoch=False, batch_size=samples)
        module.log("train/observations_per_second", observations / seconds, on_step=True, on_epoch=False,
                   batch_size=samples)


class ProgressLine(L.Callback):
    """Prints one line at most every ``every_seconds`` of training (and at the first and last
    step): the step out of the total, the step's loss, seconds per step and the time elapsed
    and left, from the mean pace since the fit started (validation included). For runs whose
    console is a log file or a CI job, where Lightning's redrawn bar is noise; the quickstart
    prints it instead of staying silent for its minutes of training."""

    def __init__(self, every_seconds: float = 30.0) -> None:
        if every_seconds < 0:
            raise ValueError(f"ProgressLine: every_seconds must be >= 0, got {every_seconds}")
        self.every = every_seconds
        self._start = self._last = None

    def on_train_start(self, trainer, module) -> None:
        self._start, self._last = time.perf_counter(), None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero or self._start is None:
            return
        now = time.perf_counter()
        step, total = trainer.global_step, trainer.estimated_stepping_batches
        last = math.isfinite(total) and step >= total
        if self._last is not None and now - self._last < self.every and not last:
            return
        self._last = now
        elapsed = now - self._start
        pace = elapsed / max(step, 1)  # seconds per step
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        parts = [f"step {step}/{int(total)}" if math.isfinite(total) else f"step {step}",
                 f"loss {float(loss):.4g}" if loss is not None else "loss skipped (non-finite)",
                 f"{pace:.2f} s/step", f"elapsed {clock(elapsed)}"]
        if math.isfinite(total):
            parts.append(f"left {clock(pace * max(total - step, 0))}")
        print("  ".join(parts), flush=True)


class ForecastMaps(L.Callback):
    """After every ``every_n_validations``-th validation, forecasts ``variables`` on a
    global ``grid_degrees`` grid from the first validation initialisation, at
    ``lead_hours``, and logs the maps as images (W&B loggers only).

    ``variables`` default to the model's headline products, or all its products
    when none is a headline one (a model of a user's own types,
    :func:`~earthgraph.data.obs_types.products_for`). A named variable the model
    does not forecast is an error at the first validation, naming the ones it does.
    """

    def __init__(self, variables: list[str] | None = None, lead_hours: float = 24.0, grid_degrees: float = 4.0,
                 every_n_validations: int = 1):
        self.variables = variables
        self.lead_hours, self.grid_degrees, self.every = lead_hours, grid_degrees, every_n_validations
        self._validations = 0

    def on_validation_epoch_end(self, trainer, module) -> None:
        from lightning.pytorch.loggers import WandbLogger

        self._validations += 1
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        dataset = getattr(trainer.datamodule, "datasets", {}).get("val") if trainer.datamodule else None
        if trainer.sanity_checking or not loggers or dataset is None or len(dataset.init_times) == 0:
            return
        if (self._validations - 1) % self.every or not trainer.is_global_zero:
            return
        products = products_for(module.model.schema)
        variables = self.variables or ([p.variable for p in products if p.headline] or [p.variable for p in products])
        unknown = sorted(set(variables) - {p.variable for p in products})
        if unknown:
            raise ValueError(f"ForecastMaps: variables {unknown} are not forecast by this model; it forecasts "
                             f"{[p.variable for p in products]}")
        images = forecast_map_images(module.model, dataset, variables, self.lead_hours, self.grid_degrees)
        for name, image in images.items():
            for lg in loggers:
                lg.log_image(key=f"maps/{name}", images=[image], step=trainer.global_step)


def forecast_map_images(model, dataset, variables: list[str], lead_hours: float, grid_degrees: float) -> dict[str, np.ndarray]:
    """{'<variable>_<lead>h': (H, W, 3) uint8 RGB map} from the dataset's first initialisation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from earthgraph.training.predict import forecast_on_grid

    products = tuple(p for p in products_for(model.schema) if p.variable in variables)
    lat, lon = regular_grid_degrees(grid_degrees)
    was_training = model.training
    with torch.no_grad():
        ds = forecast_on_grid(model, dataset, dataset.init_times[:1], [lead_hours], lat, lon, products)
    model.train(was_training)
    out = {}
    for p in products:
        fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
        field = ds[p.variable].values[0, 0]
        mesh = ax.pcolormesh(lon, lat, field, shading="auto", cmap="viridis")
        fig.colorbar(mesh, ax=ax, label=p.units)
        ax.set_title(f"{p.variable}, +{lead_hours:g} h from {np.datetime_as_string(ds.time.values[0], unit='h')}")
        fig.canvas.draw()
        out[f"{p.variable}_{lead_hours:g}h"] = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        plt.close(fig)
    return out


class TimeBudget(L.Callback):
    """Ends training early when the configured ``max_steps`` would not fit in ``minutes`` of
    wall time, counted from the start of the fit (validation included).

    Every ``check_every_steps`` steps from the second check on, it takes the pace since the first
    check (seconds per step; the first steps are left out because they carry the first batches'
    loading and the warm-up: 0.87 s for step 1 of the quickstart against 0.33 s later). If the
    time so far plus the remaining steps at that pace would overrun the budget, it lowers
    ``trainer.max_steps`` to the last step that fits, rounded down to a multiple of ``round_to``,
    and prints one line saying so. It cuts at most once and never raises ``max_steps``; under
    DDP every rank takes rank 0's decision. The module's learning-rate schedule reads
    ``max_steps`` at every step, so the cosine decay still ends at the new stop, and the last step
    runs a validation, so that ``ModelCheckpoint(save_last=True)`` saves the model that was trained.

    Why: a fixed step count takes twice as long on a slow day of a shared 2-core machine, and
    the quickstart promises a wall-time limit, not a step count. A run whose budget is not hit
    is unchanged (bit-identical to one without the callback); one that is stopped early
    depends on the machine's speed, and its forecast is weaker for the missing steps.
    """

    def __init__(self, minutes: float, check_every_steps: int = 50, round_to: int = 50) -> None:
        if not (math.isfinite(minutes) and minutes > 0):
            raise ValueError(f"TimeBudget: minutes must be a positive number, got {minutes}")
        if check_every_steps < 1 or round_to < 1:
            raise ValueError(f"TimeBudget: check_every_steps and round_to must be >= 1, "
                             f"got {check_every_steps} and {round_to}")
        self.seconds, self.check_every, self.round_to = 60.0 * minutes, check_every_steps, round_to
        self._start: float | None = None
        self._first_check: tuple[int, float] | None = None  # (step, seconds since the start)
        self.configured_steps: int | None = None  # max_steps before any cut
        self.stop_step: int | None = None  # the step the budget cut training to, if it did

    def on_train_start(self, trainer, module) -> None:
        self._start, self.stop_step, self._first_check = time.perf_counter(), None, None
        self.configured_steps = trainer.max_steps

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self._start is None or trainer.max_steps < 0:
            return  # no step limit to shorten (an epoch-bounded run)
        step = trainer.global_step
        if self.stop_step is not None:
            if step >= self.stop_step:
                # Stopping this way (not only through max_steps) makes Lightning validate at this
                # step, and ModelCheckpoint's save_last then saves the final weights.
                trainer.should_stop = True
            return
        if step % self.check_every or step >= trainer.max_steps:
            return
        elapsed = time.perf_counter() - self._start
        if self._first_check is None:
            self._first_check = (step, elapsed)
            return
        pace = (elapsed - self._first_check[1]) / (step - self._first_check[0])
        stop = None
        if elapsed + pace * (trainer.max_steps - step) > self.seconds:
            fits = int((self.seconds - elapsed) / pace)
            stop = max(step + 1, (step + fits) // self.round_to * self.round_to)
        # Every rank checks at the same steps; each stops where rank 0 says, or they would part ways.
        stop = trainer.strategy.broadcast(stop, src=0)
        if stop is None or stop >= trainer.max_steps:
            return
        self.stop_step = stop
        trainer.fit_loop.epoch_loop.max_steps = stop
        if trainer.is_global_zero:
            needed = elapsed + pace * (self.configured_steps - step)
            print(f"TimeBudget: at {pace:.2f} s/step the configured {self.configured_steps} steps would take "
                  f"{clock(needed)}, over the {clock(self.seconds)} budget: stopping at step {stop} "
                  f"(the learning rate decays to its floor there). Fewer steps give a weaker forecast; "
                  f"for the full run, raise or remove the TimeBudget callback.", flush=True)


class PeriodicCheckpoint(L.Callback):
    """Saves ``periodic.ckpt`` every ``every_n_train_steps`` steps, beside what ``ModelCheckpoint``
    saves at validation, so that a run killed between validations can resume from at most that
    many steps back: ``train.py fit --ckpt_path last`` takes the newest intact checkpoint of the
    run's folders (``checkpoint_format.newest_intact``).

    The file goes into ``dirpath`` (default: the first ``ModelCheckpoint``'s folder, else
    ``<default_root_dir>/checkpoints``), written atomically; the copy it replaces is kept as
    ``periodic.ckpt.previous``, so a damaged file still leaves an intact one. Why not
    ``ModelCheckpoint(every_n_train_steps=...)``: that turns off its saves at validation, where
    a ``TimeBudget`` stop saves the final weights.
    """

    def __init__(self, every_n_train_steps: int = 100, dirpath: str | None = None,
                 filename: str = "periodic.ckpt") -> None:
        if every_n_train_steps < 1:
            raise ValueError(f"PeriodicCheckpoint: every_n_train_steps must be >= 1, got {every_n_train_steps}")
        self.every, self.dirpath, self.filename = every_n_train_steps, dirpath, filename

    def folder(self, trainer) -> Path:
        from lightning.pytorch.callbacks import ModelCheckpoint

        if self.dirpath is not None:
            return Path(self.dirpath)
        found = [cb.dirpath for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.dirpath]
        return Path(found[0]) if found else Path(trainer.default_root_dir) / "checkpoints"

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0 and trainer.global_step > 0:
            trainer.save_checkpoint(self.folder(trainer) / self.filename)
