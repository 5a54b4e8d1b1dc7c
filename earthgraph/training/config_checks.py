"""A training configuration's cross-field checks, run when it is parsed: before any data is
read or any model is built (``EarthgraphCLI.before_instantiate_classes``).

jsonargparse already refuses a value of the wrong kind or a choice outside its
``Literal`` (``model.forecaster.processor: interacton``); the forecaster's ranges
(``ForecasterConfig.__post_init__``) are checked first here. What one field cannot know alone is
checked here against the store's schema and time range (its attributes only): the
types named in loss weights, dropout, histories and budgets exist, the periods lie
inside the observations, and windows, strides and counts make sense. Each error is a
:class:`ConfigError` naming the key and its value.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from earthgraph.data.store import ObservationStore
from earthgraph.models.config import ForecasterConfig


class ConfigError(ValueError):
    """A configuration that cannot train; the message names the key and its value."""


def _known_types(key: str, names, types: list[str]) -> None:
    unknown = sorted(set(names) - set(types))
    if unknown:
        raise ConfigError(f"{key}: observation type(s) {unknown} are not in the store, which holds {types}")


def check_budgets(budgets: Mapping | None, store: ObservationStore) -> None:
    """``model.forecaster.budgets``: each component lists ``<type>.<channel>`` names the store holds."""
    for budget, components in (budgets or {}).items():
        for component, channels in (components or {}).items():
            for ref in channels:
                name, _, channel = str(ref).partition(".")
                key = f"model.forecaster.budgets.{budget}.{component}"
                if name not in store.type_names:
                    raise ConfigError(f"{key}: {ref!r} names type {name!r}, which the store does not hold "
                                      f"({store.type_names})")
                if channel not in store.obs_type(name).channel_names:
                    raise ConfigError(f"{key}: {ref!r}: type {name!r} has no channel {channel!r}; it has "
                                      f"{store.obs_type(name).channel_names}")


def check_periods(data: Mapping, store: ObservationStore) -> None:
    """Each ``data.*_period`` is ``[start, end)`` inside the store's observations (from the
    day of the first to a day after the last)."""
    first, last = (np.datetime64(int(t), "s") for t in store.time_range)
    lo, hi = first.astype("datetime64[D]").astype("datetime64[s]"), last + np.timedelta64(1, "D")
    for key in ("train_period", "val_period", "test_period", "predict_period"):
        period = data.get(key)
        if period is None:
            continue
        try:
            start, end = (np.datetime64(str(x), "s") for x in period)
        except (TypeError, ValueError):
            raise ConfigError(f"data.{key}: expected [start, end) ISO dates, got {list(period)!r}") from None
        if not (lo <= start < end <= hi):
            raise ConfigError(f"data.{key}: {[str(x) for x in period]} is not inside the store's observations, "
                              f"{first} .. {last} ({data.get('store')})")


def check_weighted_types_observed(type_weights: Mapping | None, data: Mapping, store: ObservationStore) -> None:
    """Warn when ``model.type_weights`` weights a type with no observation in ``data.train_period``
    (from each type's time range in the store's attributes): its weight would change nothing."""
    period = data.get("train_period")
    if not type_weights or period is None:
        return
    start, end = (int(np.datetime64(str(x), "s").astype(np.int64)) for x in period)
    for name, weight in type_weights.items():
        span = store.type_time_range(name)
        if weight and (span is None or span[1] < start or span[0] >= end):
            held = ("none" if span is None else
                    f"{np.datetime64(span[0], 's')} .. {np.datetime64(span[1], 's')}")
            warnings.warn(f"model.type_weights.{name}: {weight!r}, but the store has no {name!r} observation in "
                          f"data.train_period {[str(x) for x in period]} (it has {held}): the weight changes "
                          "nothing", stacklevel=2)


def check_counts(data: Mapping) -> None:
    """Windows, strides and counts: positive, and windows of whole seconds."""
    for key in ("window_hours", "stride_hours"):
        value = data.get(key)
        if value is not None and (not value > 0 or abs(value * 3600 - round(value * 3600)) > 1e-6):
            raise ConfigError(f"data.{key}: {value!r} must be a positive number of hours, in whole seconds")
    for key, least in (("rollout", 1), ("input_windows", 1), ("batch_size", 1), ("cycle_windows", 0),
                       ("max_targets_per_type", 1)):
        value = data.get(key)
        if value is not None and value < least:
            raise ConfigError(f"data.{key}: {value!r} must be at least {least}")


def check_forecaster(forecaster: Mapping) -> None:
    """``model.forecaster``'s ranges (``ensemble_members >= 1``, ...), as :class:`ForecasterConfig` checks them."""
    try:
        ForecasterConfig(**forecaster)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def check_config(model: Mapping, data: Mapping) -> None:
    """Every cross-field check of a ``fit``/``validate``/``test``/``predict`` config, against
    the store's attributes (schema, time range). Raises :class:`ConfigError`."""
    forecaster = dict(model.get("forecaster") or {})
    check_forecaster(forecaster)
    check_counts(data)
    store = ObservationStore(data["store"], data.get("storage_options"))
    types = store.type_names
    _known_types("model.type_weights", (model.get("type_weights") or {}), types)
    spheres = sorted({store.obs_type(n).sphere for n in types})
    unknown = sorted(set(model.get("sphere_weights") or {}) - set(spheres))
    if unknown:
        raise ConfigError(f"model.sphere_weights: sphere(s) {unknown} have no observation type in the store "
                          f"(its spheres: {spheres})")
    dropout = data.get("dropout")
    if isinstance(dropout, Mapping):
        _known_types("data.dropout", dropout, types)
    _known_types("data.history_windows", (data.get("history_windows") or {}), types)
    check_budgets(forecaster.get("budgets"), store)
    check_periods(data, store)
    check_weighted_types_observed(model.get("type_weights"), data, store)
