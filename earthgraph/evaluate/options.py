"""An evaluation's settings, typed: the command line parsed once (``cli.parse_options``) into
these groups, each step given the groups it needs.

Times are ISO strings (``"2020-03-09"``) or datetimes numpy reads; periods are ``[start,
end)``; leads and durations are hours unless a name says days or minutes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from earthgraph.scoring import sources

Baseline = Literal["persistence", "climatology", "perfect_model"]
BASELINES: tuple[Baseline, ...] = ("persistence", "climatology", "perfect_model")
Verify = Literal["valid", "init"]
Interpolation = Literal["nearest", "bilinear"]
Period = tuple[str, str]
DEVICE = re.compile(r"cpu|auto|cuda(:\d+)?")
"""What --device accepts: cpu, auto (CUDA when there is one), cuda or cuda:N."""
DEFAULT_CHECKPOINT = "outputs/quickstart/checkpoints/last.ckpt"
DEFAULT_LEADS = (12.0, 24.0, 48.0)
"""A checkpoint's leads (hours) unless --leads says otherwise."""


@dataclass(frozen=True)
class Inputs:
    """What is scored and against what (--checkpoint or --forecast, --data-dir, --truth, --store)."""

    checkpoint: str | None  # a Lightning checkpoint of an earthgraph model (None: --forecast)
    forecast: str | None  # a WB2-layout forecast zarr, path or fsspec URL (None: --checkpoint)
    name: str | None  # the forecast's name in the results (None: earthgraph, or the zarr's stem)
    data_dir: str  # folder or URL holding truth.zarr and obs.zarr
    truth: str | None  # gridded truth zarr (None: DATA_DIR/truth.zarr)
    store: str | None  # observation store (None: DATA_DIR/obs.zarr for a checkpoint)
    storage_options: dict | None  # fsspec options for URL inputs
    variables: list[str] | None  # variables to score (None: all the forecast and the truth share)

    @property
    def forecast_name(self) -> str:
        """The scored forecast's name: --name, else earthgraph (a checkpoint) or the zarr's stem."""
        return self.name or ("earthgraph" if self.checkpoint else sources.stem(self.forecast))

    @property
    def truth_location(self) -> str | Path:
        return self.truth or sources.join(self.data_dir, "truth.zarr")

    @property
    def store_location(self) -> str | Path:
        return self.store or sources.join(self.data_dir, "obs.zarr")


@dataclass(frozen=True)
class Verification:
    """Which initialisations and leads are verified."""

    period: Period | None  # None: the checkpoint's test period, or all a --forecast and the truth share
    by: Verify  # valid: every valid time in the period at every lead; init: the initialisations in it
    leads: list[float] | None  # hours (None: DEFAULT_LEADS for a checkpoint, all of a --forecast's)
    init_every_hours: float  # spacing of a checkpoint's initialisations
    spin_up_days: float  # a cycling checkpoint's cycle starts cold this long before the first one


@dataclass(frozen=True)
class Climatology:
    """The climatology of acc and the climatology baseline: a zarr, or computed from the truth."""

    path: str | None  # a WB2 climatology zarr (hour, dayofyear, ...)
    period: Period | None  # truth period averaged into one (None: the checkpoint's training period)
    window_days: int  # WB2's smoothing window


@dataclass(frozen=True)
class Scoring:
    """How the forecasts are scored."""

    baselines: tuple[Baseline, ...]  # reference forecasts scored in the same run
    perfect_model_perturbation: float  # relative size of the perfect model's initial perturbation
    regions: list[str] | None  # None: all
    reference: str  # the forecast skill is measured against
    skipna: bool  # NaN truth left out (default) rather than making its region's score NaN
    chunk_inits: int | None  # initialisations per chunk (None: sized by memory)
    scheduler: str | None  # a dask.distributed scheduler's address (None: this machine's threads)


@dataclass(frozen=True)
class ObservationSpace:
    """fc - ob departures at the observations."""

    enabled: bool
    forecast_obs: str | None  # a forecast store from train.py predict (None: made from the checkpoint)
    lead_bin_hours: float | None  # None: the model's window, else 12


@dataclass(frozen=True)
class Stations:
    """Verification at point observations (--stations-obs)."""

    obs: str | None  # a parquet/CSV table or an observation store (None: no station verification)
    layout: Literal["long", "wide"]  # the table's layout
    forecasts: list[str]  # station forecast zarrs to score too
    variables: list[str] | None  # checkpoint mode: the heads forecast at the stations (None: all observed)
    interpolation: list[Interpolation]  # how a gridded forecast is taken to the stations
    tolerance_minutes: float  # largest gap between a valid time and the observation paired with it
    persistence_max_age_hours: float | None  # None: persistence is the observation exactly at the init
    block_length: int | Literal["auto", "cube_root"]  # bootstrap blocks of consecutive initialisations
    bootstrap_resamples: int


@dataclass(frozen=True)
class Model:
    """How a checkpoint's model is run."""

    device: str  # cpu, cuda, cuda:N or auto
    batch_size: int  # initialisations per model call
    diagnostic_days: float  # length of the long forecast of the physical diagnostics (0: none)


@dataclass(frozen=True)
class Outputs:
    """Where the results go."""

    out: str | None  # None: a new outputs/evaluate/<forecast>-<UTC time>
    overwrite: bool  # write into an --out holding an earlier evaluation's results
    map_lead: float  # lead of the maps, hours
    wandb_dir: str | None  # also log to a W&B run in this folder
    wandb_project: str
    wandb_run_id: str | None  # add to this run instead of a new one


@dataclass(frozen=True)
class EvaluationOptions:
    """Everything an evaluation is told, grouped by the step that uses it."""

    inputs: Inputs
    verification: Verification
    climatology: Climatology
    scoring: Scoring
    obs_space: ObservationSpace
    stations: Stations
    model: Model
    outputs: Outputs
