"""Paired block-bootstrap confidence intervals for score differences.

A score difference ``S(forecast) - S(reference)`` (RMSE, MAE, bias or CRPS) is
uncertain because the initialisations scored are a sample. Consecutive
initialisations share weather regimes, so their errors are correlated and
resampling them one by one would give intervals that are too narrow. We
resample *blocks* of consecutive initialisation times instead:

- ``circular`` (default; Politis & Romano 1992): block starts uniform over all
  initialisations, blocks wrap around the end, so every initialisation is
  equally likely to be drawn;
- ``moving`` (Kuensch 1989): block starts uniform over ``0 .. n - L``, no wrap;
  the first and last ``L - 1`` initialisations are drawn less often.

Enough blocks of length ``L`` are drawn to cover ``n`` initialisations and the
series is cut to ``n``. The comparison is *paired*: one resample draws the same
initialisations for the forecast and the reference (and for every group with
the same block length), so what both get right or wrong together cancels.

Block length ``L``: an int, or

- ``"auto"`` (default): Wilks' (1997, J. Climate 10, 65-82) rule for an AR(1)
  series, the solution of ``L = (n - L + 1) ** ((2/3) (1 - n'/n))`` with the
  effective sample size ``n' = n (1 - r) / (1 + r)``, ``r`` the lag-1
  autocorrelation of the per-initialisation score difference of that group
  (``L = 1`` for ``r <= 0``; about 12 for n = 300, r = 0.5; 36 for r = 0.9);
- ``"cube_root"``: ``round(n ** (1/3))`` whatever the autocorrelation.

Intervals are percentile intervals of the resampled differences at
``(1 - confidence) / 2`` and ``(1 + confidence) / 2``; ``significant`` when the
interval excludes 0. The difference itself is the full-sample one.

Everything works on per-initialisation sums: for each initialisation ``t`` and
group ``g`` (a lead and a region or station), the sum of the statistic (squared
error, absolute error, error, CRPS) over the paired samples and their count. A
resample is then a count of how often each initialisation is drawn, and the
resampled sums of all groups are one matrix product ``counts @ sums``. An
initialisation without samples in a group keeps its slot (blocks stay
contiguous in time) and adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

Metric = Literal["rmse", "mae", "bias", "crps"]
Scheme = Literal["circular", "moving"]
BlockRule = Literal["auto", "cube_root"]
STATISTIC: dict[str, str] = {"rmse": "squared_error", "mae": "absolute_error", "bias": "error", "crps": "crps"}
BOOTSTRAP_COLUMNS = ["difference", "lower", "upper", "confidence", "block_length", "n_inits", "n_resamples",
                     "significant"]


def value_from_sums(metric: str, total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The score from summed statistics: ``total / count``, rooted for RMSE (the root
    after the mean over initialisations, WB2's); NaN where ``count`` is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)
    return np.sqrt(mean) if metric == "rmse" else mean


def lag1_autocorrelation(series: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation of each column of ``series`` (time, groups) over the pairs
    of consecutive times both ``present``; NaN with fewer than 3 present values."""
    x = np.where(present, series, 0.0)
    n = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        anomaly = np.where(present, x - x.sum(axis=0) / n, 0.0)
        pairs = present[1:] & present[:-1]
        cov = np.where(pairs, anomaly[1:] * anomaly[:-1], 0.0).sum(axis=0) / np.maximum(pairs.sum(axis=0), 1)
        var = (anomaly ** 2).sum(axis=0) / n
        r = cov / var
    return np.where((n >= 3) & (var > 0), r, np.nan)


def wilks_block_length(n: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Wilks' (1997) block length for ``n`` values of lag-1 autocorrelation ``r`` (arrays
    of one shape): ints in [1, max(n, 1)]; 1 where ``r`` <= 0 or is NaN."""
    n = np.maximum(np.asarray(n, np.float64), 1.0)
    r = np.clip(np.nan_to_num(np.asarray(r, np.float64), nan=0.0), 0.0, 0.99)
    exponent = (2.0 / 3.0) * (1.0 - (1.0 - r) / (1.0 + r))
    length = np.ones_like(n)
    for _ in range(50):  # a contraction: |dL/dL'| = e L / (n - L + 1) < 1 for these L
        length = np.clip((n - length + 1.0) ** exponent, 1.0, n)
    return np.rint(length).astype(np.int64)


def resample_counts(n_units: int, block_length: int, n_resamples: int, seed: int,
                    scheme: Scheme = "circular") -> np.ndarray:
    """How often each of ``n_units`` consecutive units is drawn in each resample:
    (n_resamples, n_units) int, rows summing to ``n_units``. Seeded by ``(seed,
    block_length)``, so groups sharing a block length share their resamples."""
    if n_units < 1:
        raise ValueError(f"bootstrap: nothing to resample (n_units={n_units})")
    length = int(min(max(block_length, 1), n_units))
    rng = np.random.default_rng([seed, length])
    n_blocks = -(-n_units // length)
    high = n_units if scheme == "circular" else n_units - length + 1
    starts = rng.integers(0, high, size=(n_resamples, n_blocks))
    index = (starts[:, :, None] + np.arange(length)).reshape(n_resamples, -1)[:, :n_units] % n_units
    flat = index + n_units * np.arange(n_resamples)[:, None]
    return np.bincount(flat.ravel(), minlength=n_resamples * n_units).reshape(n_resamples, n_units)


def _block_lengths(block_length: int | BlockRule, forecast: np.ndarray, reference: np.ndarray,
                   count: np.ndarray) -> np.ndarray:
    """(groups,) block lengths from the rule or the int given."""
    present = count > 0
    n = present.sum(axis=0)
    if isinstance(block_length, (int, np.integer)) and not isinstance(block_length, bool):
        if block_length < 1:
            raise ValueError(f"bootstrap: block_length must be >= 1, got {block_length}")
        return np.full(forecast.shape[1], int(block_length))
    if block_length == "cube_root":
        return np.maximum(np.rint(np.maximum(n, 1) ** (1.0 / 3.0)), 1).astype(np.int64)
    if block_length == "auto":
        with np.errstate(invalid="ignore", divide="ignore"):
            per_init = (forecast - reference) / np.where(present, count, 1)
        return wilks_block_length(n, lag1_autocorrelation(per_init, present))
    raise ValueError(f"bootstrap: block_length must be an int, 'auto' or 'cube_root', got {block_length!r}")


def paired_bootstrap(forecast: np.ndarray, reference: np.ndarray, count: np.ndarray, metric: Metric, *,
                     block_length: int | BlockRule = "auto", n_resamples: int = 1000, confidence: float = 0.95,
                     seed: int = 0, scheme: Scheme = "circular") -> dict[str, np.ndarray]:
    """Interval for ``S(forecast) - S(reference)`` per group.

    forecast, reference: (time, groups) per-initialisation sums of the metric's
        statistic (:data:`STATISTIC`) over paired samples; time in order.
    count: (time, groups) samples per initialisation (the same for both: paired).
    Returns {column: (groups,) array} for :data:`BOOTSTRAP_COLUMNS`.
    """
    if metric not in STATISTIC:
        raise ValueError(f"bootstrap: metric must be one of {list(STATISTIC)}, got {metric!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"bootstrap: confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"bootstrap: n_resamples must be >= 1, got {n_resamples}")
    if scheme not in ("circular", "moving"):
        raise ValueError(f"bootstrap: scheme must be 'circular' or 'moving', got {scheme!r}")
    forecast, reference, count = (np.asarray(a, np.float64) for a in (forecast, reference, count))
    if not forecast.shape == reference.shape == count.shape or forecast.ndim != 2:
        raise ValueError(f"bootstrap: forecast, reference and count must be (time, groups) arrays of one shape, got "
                         f"{forecast.shape}, {reference.shape}, {count.shape}")
    lengths = _block_lengths(block_length, forecast, reference, count)
    lengths = np.minimum(lengths, forecast.shape[0])
    n_time, n_groups = forecast.shape
    lower, upper = np.full(n_groups, np.nan), np.full(n_groups, np.nan)
    alpha = (1.0 - confidence) / 2.0
    for length in np.unique(lengths):
        g = lengths == length
        draws = resample_counts(n_time, int(length), n_resamples, seed, scheme).astype(np.float64)
        n = draws @ count[:, g]
        diff = value_from_sums(metric, draws @ forecast[:, g], n) - value_from_sums(metric, draws @ reference[:, g], n)
        diff = np.where(np.isfinite(diff), diff, np.nan)  # a resample without samples has no score
        some = np.isfinite(diff).any(axis=0)
        if not some.any():  # groups without a sample (a region without stations) keep NaN
            continue
        index = np.flatnonzero(g)[some]
        lower[index], upper[index] = np.nanquantile(diff[:, some], [alpha, 1 - alpha], axis=0)
    total = count.sum(axis=0)
    difference = value_from_sums(metric, forecast.sum(axis=0), total) - value_from_sums(metric, reference.sum(axis=0),
                                                                                        total)
    return {"difference": difference, "lower": lower, "upper": upper, "confidence": np.full(n_groups, confidence),
            "block_length": lengths, "n_inits": (count > 0).sum(axis=0), "n_resamples": np.full(n_groups, n_resamples),
            "significant": (lower > 0) | (upper < 0)}


def bootstrap_differences(sums: xr.Dataset, forecast: str, reference: str = "persistence",
                          metrics: Sequence[Metric] = ("rmse", "mae", "bias"), *,
                          block_length: int | BlockRule = "auto", n_resamples: int = 1000, confidence: float = 0.95,
                          seed: int = 0, scheme: Scheme = "circular") -> pd.DataFrame:
    """Intervals for every group of per-initialisation sums.

    sums: dims (forecast, time, <group dims...>), a ``count`` variable without the
        forecast dim (paired samples) and one variable per statistic (:data:`STATISTIC`).
    Returns one row per group and metric: the group dims' coordinates as columns
    (``prediction_timedelta`` as ``lead_hours``), ``forecast``, ``reference``,
    ``metric`` and :data:`BOOTSTRAP_COLUMNS`.
    """
    names = [str(f) for f in sums.forecast.values]
    for name in (forecast, reference):
        if name not in names:
            raise ValueError(f"bootstrap: no forecast {name!r} in the sums; they hold {names}")
    groups = [d for d in sums["count"].dims if d != "time"]
    count = sums["count"].transpose("time", *groups)
    frames = []
    for metric in metrics:
        stat = STATISTIC.get(metric)
        if stat not in sums:
            raise ValueError(f"bootstrap: metric {metric!r} needs statistic {stat!r}, not in the sums "
                             f"({sorted(map(str, sums.data_vars))})")
        pair = [sums[stat].sel(forecast=name).transpose("time", *groups).values.reshape(count.sizes["time"], -1)
                for name in (forecast, reference)]
        out = paired_bootstrap(pair[0], pair[1], count.values.reshape(count.sizes["time"], -1), metric,
                               block_length=block_length, n_resamples=n_resamples, confidence=confidence, seed=seed,
                               scheme=scheme)
        index = pd.MultiIndex.from_product([count[d].values for d in groups], names=groups)
        frame = pd.DataFrame({k: np.asarray(v).reshape(-1) for k, v in out.items()}, index=index).reset_index()
        frame.insert(0, "metric", metric)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    if "prediction_timedelta" in table:
        table["lead_hours"] = table.pop("prediction_timedelta") / pd.Timedelta(hours=1)
    table.insert(0, "reference", reference)
    table.insert(0, "forecast", forecast)
    return table
