"""Windows of observations as training samples.

A sample is anchored at an initialisation time ``t0``: its inputs are the
observations of the ``input_windows`` windows before it, ``[t0 - n W, t0)``,
and its targets the observations of the ``rollout`` windows
``[t0 + (k-1) W, t0 + k W)``, k = 1..rollout. Each observation's ``time`` is
its offset from its window's start in units of W: in [-n, 0) for inputs
(relative to ``t0``), in [0, 1) for targets.

``history_windows`` gives chosen types a longer history than the other
inputs: ``{"soil_moisture": 20}`` puts the last ten days of soil-moisture
retrievals in every sample's inputs (times in [-20, 0)). A slow field seen
with a large retrieval error (soil moisture changes by 0.002 a day and is
retrieved to 0.05) is only estimated well from many days of retrievals, which
the memoryless model otherwise never sees.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.utils.data import Dataset

from earthgraph.data.batch import ObsSet, columns_to_obsset, metadata_features
from earthgraph.data.schema import ObservationSchema, TypeSchema
from earthgraph.data.store import ObservationStore


def observation_schema(store: ObservationStore, stats_period: tuple | None = None) -> ObservationSchema:
    """What a model needs to know about the store's types: channels, metadata
    features, sphere, and the normalisation statistics.

    stats_period: ``(start, end)`` (ISO dates or datetime64) over which the
    statistics are computed, the training period, so that nothing of the
    validation or test periods reaches the model; None: the whole store's. A
    channel without a single observation in that period falls back to the
    store's statistics, with a warning naming it.
    """
    schema = {}
    for name in store.type_names:
        t = store.obs_type(name)
        stats = store.stats(name)
        if stats_period is not None:
            t0, t1 = (int(np.datetime64(x, "s").astype(np.int64)) for x in stats_period)
            period = store.period_stats(name, t0, t1)
            empty = [c.name for c, n in zip(t.channels, period["count"]) if n < 2]
            if empty:
                warnings.warn(f"store {store.path}, type {name!r}: channel(s) {empty} have no observations in "
                              f"{stats_period[0]} .. {stats_period[1]}; their normalisation uses the whole "
                              "store's statistics", stacklevel=2)
            period["mean"] = [m if n >= 2 else s for m, s, n in zip(period["mean"], stats["mean"], period["count"])]
            period["std"] = [m if n >= 2 else s for m, s, n in zip(period["std"], stats["std"], period["count"])]
            stats = period
        std = [s if s > 0 else 1.0 for s in stats["std"]]
        schema[name] = TypeSchema.of(t, metadata_features(t.metadata), stats["mean"], std)
    return ObservationSchema(schema)


# GraphDOP drops 25% of satellite and 50% of conventional (in-situ) observations from the inputs.
GRAPHDOP_DROPOUT = {"satellite": 0.25, "conventional": 0.5}


def resolve_dropout(store: ObservationStore, dropout: dict[str, float] | str | None) -> dict[str, float]:
    """Input-dropout fractions per observation type.

    dropout: a mapping type -> fraction; ``"graphdop"`` for GraphDOP's defaults
        (25% of satellite and 50% of conventional observations); or None.
    A mapping with ``"graphdop"`` as a key starts from those defaults and overrides them.
    """
    if dropout is None:
        return {}
    if isinstance(dropout, str) and dropout != "graphdop":
        raise ValueError(f"dropout {dropout!r}: expected a mapping of observation types to fractions or 'graphdop'")
    given = {"graphdop": 1.0} if dropout == "graphdop" else dict(dropout)
    out = {}
    if given.pop("graphdop", None) is not None:
        out = {n: GRAPHDOP_DROPOUT["conventional" if store.obs_type(n).conventional else "satellite"]
               for n in store.type_names}
    for name, fraction in given.items():
        if name not in store.type_names:
            raise ValueError(f"dropout names observation type {name!r}, which store {store.path} does not hold; "
                             f"it holds {store.type_names}")
        if not 0.0 <= float(fraction) < 1.0:
            raise ValueError(f"dropout for {name!r} is {fraction}; a fraction in [0, 1) was expected")
        out[name] = float(fraction)
    return out


class WindowDataset(Dataset):
    """Samples anchored at ``init_times`` (int seconds since 1970).

    ``cycle_windows`` > 0 (training a cycling model): instead of the packed input
    windows, each sample carries that many consecutive windows before ``t0``, oldest
    first, each twice: as the analysis's inputs (``cycle_inputs``: dropout applied,
    times relative to the window's end, in [-1, 0)) and as the targets of the
    forecast made before they are assimilated (``cycle_targets``: capped like the
    other targets, times in [0, 1)).

    ``history_windows``: per type, how many windows of its observations the inputs hold
    when that is more than ``input_windows`` (the module docstring).
    """

    def __init__(self, store: ObservationStore, init_times: np.ndarray, schema: ObservationSchema,
                 window_hours: float = 12.0, rollout: int = 1, dropout: dict[str, float] | None = None,
                 max_targets_per_type: int | None = None, input_windows: int = 1, seed: int = 0,
                 cycle_windows: int = 0, history_windows: dict[str, int] | None = None):
        if len(init_times) == 0:
            raise ValueError(f"WindowDataset over {store.path}: no initialisation times (empty period)")
        if input_windows < 1:
            raise ValueError(f"WindowDataset: input_windows must be >= 1, got {input_windows}")
        if rollout < 1:
            raise ValueError(f"WindowDataset: rollout must be >= 1, got {rollout}")
        if cycle_windows < 0:
            raise ValueError(f"WindowDataset: cycle_windows must be >= 0, got {cycle_windows}")
        self.history = check_history_windows(history_windows, schema, input_windows)
        if self.history and cycle_windows:
            raise ValueError("WindowDataset: history_windows and cycle_windows exclude each other (a cycling model "
                             "carries its own memory from window to window); set one of them")
        self.cycle_windows = cycle_windows
        self.store = store
        self.init_times = np.asarray(init_times, dtype=np.int64)
        self.schema = schema
        self.window = int(round(window_hours * 3600))
        self.rollout = rollout
        self.input_windows = input_windows
        self.dropout = dropout or {}
        self.max_targets = max_targets_per_type
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.init_times)

    def describe(self, key: int | tuple[int, int]) -> str:
        """Sample ``key`` (an index, or ``(index, epoch)``) in words: its initialisation time and
        the observations it reads (UTC)."""
        i = key[0] if isinstance(key, tuple) else key
        t0 = int(self.init_times[i])
        first = t0 - self.windows_before * self.window
        last = t0 + self.rollout * self.window

        def iso(t: int) -> str:
            return str(np.datetime64(t, "s"))

        return (f"sample {i}, initialised {iso(t0)}, observations {iso(first)} to {iso(last)} from store "
                f"{self.store.path}")

    @property
    def windows_before(self) -> int:
        """How many windows of data before ``t0`` a sample's inputs reach back."""
        return windows_before(self.input_windows, self.history, self.cycle_windows)

    def _window(self, t0: int, rng: np.random.Generator | None, dropout: dict[str, float],
                max_rows: int | None, n_windows: int = 1, origin: int | None = None,
                history: dict[str, int] | None = None) -> dict[str, ObsSet]:
        """Observations in [t0, t0 + n_windows W), times relative to ``origin`` (default t0);
        a type in ``history`` from that many windows before ``origin`` instead."""
        out = {}
        origin = t0 if origin is None else origin
        for name, spec in self.schema.items():
            first = origin - history[name] * self.window if history and name in history else t0
            cols = self.store.read(name, first, t0 + n_windows * self.window)
            if rng is not None and dropout.get(name, 0.0) > 0:
                keep = rng.uniform(size=len(cols["time"])) >= dropout[name]
                cols = {k: v[keep] for k, v in cols.items()}
            if rng is not None and max_rows is not None and len(cols["time"]) > max_rows:
                keep = np.sort(rng.choice(len(cols["time"]), size=max_rows, replace=False))
                cols = {k: v[keep] for k, v in cols.items()}
            out[name] = columns_to_obsset(cols, spec.metadata, np.asarray(spec.mean, np.float32),
                                          np.asarray(spec.std, np.float32), origin, self.window, 0)
        return out

    def input_window(self, t0: int) -> dict[str, ObsSet]:
        """The (undropped) input observations for initialisation time ``t0``."""
        t0 = int(t0)
        return self._window(t0 - self.input_windows * self.window, None, {}, None, self.input_windows, t0,
                            self.history)

    def analysis_window(self, start: int) -> dict[str, ObsSet]:
        """Every observation of the window from ``start`` on, as an analysis takes them:
        times relative to the window's end, in [-1, 0)."""
        start = int(start)
        return self._window(start, None, {}, None, 1, start + self.window)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """Sample ``key``, or ``(sample, epoch)``: the epoch of its random draws, when the one
        in ``self.epoch`` may be stale (a copy of the dataset in a persistent loader worker)."""
        i, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        t0 = int(self.init_times[i])
        # Input dropout and target subsampling: a fresh, reproducible draw per (seed, epoch, sample).
        random = bool(self.dropout) or self.max_targets is not None
        rng = np.random.default_rng([self.seed, epoch, i]) if random else None
        item = {"init_time": t0, "input_windows": self.input_windows}
        if self.cycle_windows:
            starts = [t0 - (self.cycle_windows - k) * self.window for k in range(self.cycle_windows)]
            item["cycle_inputs"] = [self._window(s, rng, self.dropout, None, 1, s + self.window) for s in starts]
            item["cycle_targets"] = [self._window(s, rng, {}, self.max_targets) for s in starts]
        else:
            item["inputs"] = self._window(t0 - self.input_windows * self.window, rng, self.dropout, None,
                                          self.input_windows, t0, self.history)
        item["targets"] = [self._window(t0 + k * self.window, rng, {}, self.max_targets) for k in range(self.rollout)]
        return item


def windows_before(input_windows: int, history_windows: dict[str, int] | None = None, cycle_windows: int = 0) -> int:
    """How many windows of data before an initialisation its inputs need: the packed input
    windows, the longest per-type history, or the cycle windows, whichever reaches furthest."""
    return max([input_windows, cycle_windows, *(history_windows or {}).values()])


def check_history_windows(history_windows: dict[str, int] | None, schema: ObservationSchema, input_windows: int
                          ) -> dict[str, int]:
    """The per-type input histories that reach further back than ``input_windows``, checked."""
    history = {}
    for name, n in (history_windows or {}).items():
        if name not in schema:
            raise ValueError(f"history_windows names observation type {name!r}, which the schema does not hold; "
                             f"it holds {sorted(schema)}")
        if int(n) != n or n < 1:
            raise ValueError(f"history_windows[{name!r}] is {n}; a whole number of windows >= 1 was expected")
        if n > input_windows:
            history[name] = int(n)
    return history


def collate_windows(items: list[dict]) -> dict:
    """Pack samples: concatenate each type's observations, tagging rows by sample."""

    def pack(sets: list[dict[str, ObsSet]]) -> dict[str, ObsSet]:
        out = {}
        for name in sets[0]:
            parts = []
            for b, s in enumerate(sets):
                o = s[name]
                parts.append(ObsSet(o.values, o.error, o.lat, o.lon, o.time, o.meta, torch.full_like(o.sample, b)))
            out[name] = ObsSet.cat(parts)
        return out

    rollout = len(items[0]["targets"])
    batch = {
        "init_time": torch.tensor([it["init_time"] for it in items], dtype=torch.float64),
        "input_windows": items[0].get("input_windows", 1),
        "targets": [pack([it["targets"][k] for it in items]) for k in range(rollout)],
    }
    if "inputs" in items[0]:
        batch["inputs"] = pack([it["inputs"] for it in items])
    for key in ("cycle_inputs", "cycle_targets"):
        if key in items[0]:
            batch[key] = [pack([it[key][k] for it in items]) for k in range(len(items[0][key]))]
    return batch


def init_times_between(start: np.datetime64, end: np.datetime64, window_hours: float, rollout: int,
                       stride_hours: float, data_range: tuple[int, int], input_windows: int = 1,
                       targets_in_period: bool = True) -> np.ndarray:
    """Initialisation times ``t0`` in [start, end) on the stride whose input windows
    lie in the data and whose ``rollout`` target windows, ``[t0, t0 + rollout W)``,
    lie inside the data and (``targets_in_period``, as for training, validation and
    testing) inside the period too: no target of one split is an observation of
    the next. Inputs may reach back before ``start``. ``targets_in_period=False``
    (forecasts to make, ``predict``) bounds only the initialisations by ``end``."""
    w = int(round(window_hours * 3600))
    s = max(int(np.datetime64(start, "s").astype(np.int64)), data_range[0] + input_windows * w)
    end_s = int(np.datetime64(end, "s").astype(np.int64))
    e = min(end_s + (rollout * w - 1 if not targets_in_period else 0), data_range[1] + 1) - rollout * w + 1
    stride = int(round(stride_hours * 3600))
    s = -(-s // stride) * stride  # align to the stride (00/12 UTC for 12 h)
    return np.arange(s, e, stride, dtype=np.int64) if e > s else np.zeros(0, np.int64)
