"""Milliseconds per training step, split into phases, baseline against candidate.

Builds a config's data module and model as ``train.py fit`` does (no Trainer: the
step is the module's forward, the observation loss, backward, gradient clipping and
AdamW), then times ``--steps`` steps after ``--warmup`` untimed ones, twice in one
process on the same batches from the same initial weights, alternating step by step:

- baseline: the step as it was at 2791e59: ``model.forecaster.batch_types: false`` (observation
  graphs built type by type) and the torch backend's gathers and segment-sums along
  dim 1 of (B, rows, F) tensors (patched in from this script), and AdamW's per-tensor
  loop (torch's CPU default; the module asks for ``foreach``);
- candidate: the config as given (graphs of all types in one pass, the torch backend's
  rows of every batch member as one flat table).

Each step is split into exclusive phases (a phase's time excludes the phases called
inside it):

    data       the next batch from the DataLoader (the config's workers)
    graphs     per-batch observation->mesh and mesh->target graphs and edge features
    encode     observations -> mesh latents (embeddings, messages, node MLP, forcings)
    process    the processor (and conservative transport) over the rollout windows
    decode     mesh latents -> predictions at the targets
    loss       the observation loss
    backward   loss.backward()
    optimiser  gradient clipping, AdamW step, zero_grad

Both variants train on each batch in turn, so the data phase is timed once and shared.
It prints how far apart the two runs are: the first step's loss (the same computation
gives the same number), and the largest loss and weight differences over the run,
where training amplifies any round-off a change of summation order makes.
Thread count: the training policy (``earthgraph.training.threads``) unless ``--threads``.
Last line: one JSON object with every figure.

    python benchmarks/train_step.py [--config configs/quickstart.yaml] [--steps 20] [--warmup 3]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml

from earthgraph.kernels import ops as kernel_ops
from earthgraph.training import threads
from earthgraph.training.datamodule import ObservationDataModule
from earthgraph.training.loss import observation_loss
from earthgraph.training.module import ForecastModule

PHASES = ("data", "graphs", "encode", "process", "decode", "loss", "backward", "optimiser")


class PhaseClock:
    """Exclusive wall time per phase: time spent in a nested phase is not its parent's."""

    def __init__(self):
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []  # [phase, start, time in children]

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._stack.append([name, time.perf_counter(), 0.0])
        try:
            yield
        finally:
            name, start, children = self._stack.pop()
            elapsed = time.perf_counter() - start
            self.totals[name] += elapsed - children
            if self._stack:
                self._stack[-1][2] += elapsed

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            with self.phase(name):
                return fn(*args, **kwargs)
        return timed


@contextlib.contextmanager
def instrumented(module: ForecastModule, clock: PhaseClock) -> Iterator[None]:
    """Time the forecaster's parts by wrapping its methods (restored on exit)."""
    model = module.model
    patches = [(model, "_encode_observations", "encode"), (model, "step", "process"), (model, "decode", "decode"),
               (model.encoder, "graphs", "graphs"), (model.decoder, "graphs", "graphs")]
    for obj, attr, phase in patches:
        setattr(obj, attr, clock.wrap(phase, getattr(obj, attr)))
    try:
        yield
    finally:
        for obj, attr, _ in patches:
            delattr(obj, attr)  # the instance attribute shadowed the method


def build(config: dict, root: Path) -> tuple[ObservationDataModule, dict]:
    data = dict(config["data"])
    store = Path(data["store"])
    data["store"] = str(store if store.is_absolute() else root / store)
    dm = ObservationDataModule(**data)
    dm.setup("fit")
    return dm, dict(config.get("model", {}))


def strided_sum_rows(values: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """The torch backend's segment-sum before the flat tables: index_add_ along dim 1."""
    b, _, f = values.shape
    return values.new_zeros((b, num_segments, f)).index_add_(1, index, values)


def strided_select_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The torch backend's gather before the flat tables: index_select along dim -2."""
    return x.index_select(-2, index)


# The step as it was before the speed-ups (2791e59): what the baseline patches in.
BASELINE_OPS = {"_torch_sum_rows": strided_sum_rows, "_torch_select_rows": strided_select_rows}


@contextlib.contextmanager
def patched(module, replacements: dict) -> Iterator[None]:
    originals = {name: getattr(module, name) for name in replacements}
    for name, fn in replacements.items():
        setattr(module, name, fn)
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


class Trainee:
    """One variant's module and optimiser, seeded identically, stepped on given batches."""

    def __init__(self, dm: ObservationDataModule, model_args: dict, seed: int, clip: float, ops: dict,
                 foreach: bool | None):
        self.ops = ops  # replacements for earthgraph.kernels.ops functions during its steps
        torch.manual_seed(seed)
        self.module = ForecastModule(schema=dm.schema, static=dm.static, **model_args)
        hp = self.module.hparams
        # foreach as ForecastModule.configure_optimizers sets it (None: torch's per-tensor CPU loop)
        self.opt = torch.optim.AdamW(self.module.parameters(), lr=hp.lr, weight_decay=hp.weight_decay,
                                     foreach=foreach)
        self.clip = clip
        self.clock, self.losses, self.seconds = PhaseClock(), [], []

    def step(self, batch: dict, timed: bool) -> None:
        clock, module = self.clock, self.module
        start = time.perf_counter()
        with instrumented(module, clock), patched(kernel_ops, self.ops):
            preds = module(batch)
            with clock.phase("loss"):
                loss, _ = observation_loss(preds, batch["targets"], module.type_weights,
                                           module.hparams.error_floor)
            with clock.phase("backward"):
                loss.backward()
            with clock.phase("optimiser"):
                torch.nn.utils.clip_grad_norm_(module.parameters(), self.clip)
                self.opt.step()
                self.opt.zero_grad()
        self.losses.append(float(loss))
        if timed:
            self.seconds.append(time.perf_counter() - start)
        else:
            clock.totals.clear()

    def summary(self, data_ms: float) -> dict:
        steps = len(self.seconds)
        ms = {p: 1e3 * self.clock.totals.get(p, 0.0) / steps for p in PHASES}
        ms["data"] = data_ms
        step_ms = 1e3 * sum(self.seconds) / steps + data_ms
        ms["other"] = step_ms - sum(ms.values())
        return {"ms_per_step": step_ms, "phases_ms": ms}


def run(dm: ObservationDataModule, variants: dict[str, tuple[dict, dict, bool | None]], seed: int, steps: int, warmup: int,
        clip: float) -> tuple[dict[str, Trainee], float]:
    """Train every variant ``warmup + steps`` steps from the same seeded weights on the same
    seeded batches, alternating step by step so that the machine's load hits them alike.
    Returns the variants and the data phase (ms per batch, shared by all)."""
    trainees = {name: Trainee(dm, args, seed, clip, ops, foreach) for name, (args, ops, foreach) in variants.items()}
    loader = dm._loader("train", torch.utils.data.RandomSampler(dm.datasets["train"],
                                                                generator=torch.Generator().manual_seed(seed)))
    batches, data_seconds = iter(loader), 0.0
    for k in range(warmup + steps):
        start = time.perf_counter()
        batch = next(batches)
        if k >= warmup:
            data_seconds += time.perf_counter() - start
        for trainee in trainees.values():
            trainee.step(batch, timed=k >= warmup)
    return trainees, 1e3 * data_seconds / steps


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/quickstart.yaml")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the training policy)")
    args = p.parse_args(argv)

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / args.config).read_text() if not Path(args.config).is_absolute()
                            else Path(args.config).read_text())
    dm, model_args = build(config, root)
    n_threads = threads.apply(dm.hparams.num_workers, args.threads)
    seed = int(config.get("seed_everything", 0) or 0)
    clip = float(config.get("trainer", {}).get("gradient_clip_val") or float("inf"))
    baseline = {**model_args, "forecaster": {**model_args.get("forecaster", {}), "batch_types": False}}
    variants = {"baseline": (baseline, BASELINE_OPS, None),
                "candidate": (copy.deepcopy(model_args), {}, True)}
    trainees, data_ms = run(dm, variants, seed, args.steps, args.warmup, clip)
    base, cand = (trainees[v].summary(data_ms) for v in ("baseline", "candidate"))
    pairs = list(zip(trainees["baseline"].losses, trainees["candidate"].losses))
    first_diff = abs(pairs[0][0] - pairs[0][1]) / abs(pairs[0][0])
    loss_diff = max(abs(a - b) / max(abs(a), 1e-12) for a, b in pairs)
    weight_diff = max(float((a - b).abs().max()) for a, b in
                      zip(trainees["baseline"].module.parameters(), trainees["candidate"].module.parameters()))

    print(f"{args.config}: {args.steps} steps after {args.warmup} warm-up, {n_threads} threads")
    print(f"{'phase':10s} {'baseline':>10s} {'candidate':>10s}  (ms per step)")
    for phase in (*PHASES, "other"):
        print(f"{phase:10s} {base['phases_ms'][phase]:10.1f} {cand['phases_ms'][phase]:10.1f}")
    speedup = base["ms_per_step"] / cand["ms_per_step"]
    print(f"{'step':10s} {base['ms_per_step']:10.1f} {cand['ms_per_step']:10.1f}  speed-up {speedup:.2f}x")
    print(f"same computation: relative loss difference {first_diff:.2e} at the first step, at most {loss_diff:.2e} "
          f"over the run; largest weight difference after {args.warmup + args.steps} steps {weight_diff:.2e}")
    result = {
        "config": args.config, "steps": args.steps, "threads": n_threads,
        "baseline_ms_per_step": base["ms_per_step"], "candidate_ms_per_step": cand["ms_per_step"],
        "cpu_step_speedup": speedup,
        "baseline_phases_ms": base["phases_ms"], "candidate_phases_ms": cand["phases_ms"],
        "first_step_relative_loss_difference": first_diff, "max_relative_loss_difference": loss_diff,
        "max_weight_difference": weight_diff,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
