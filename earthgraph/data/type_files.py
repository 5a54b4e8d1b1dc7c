"""Observation types declared in YAML: a new instrument without a line of Python.

A types file lists :class:`~earthgraph.data.obs_types.ObservationType`\\ s::

    types:
      - name: station_wind
        sphere: atmosphere
        description: 10 m wind at land stations, hourly
        conventional: true
        channels:
          - {name: u10, units: m s-1, valid_min: -75, valid_max: 75, error: 1.5}
          - {name: v10, units: m s-1, valid_min: -75, valid_max: 75, error: 1.5}
        metadata: [station_id]
        products:            # optional: gridded variables forecast from its channels
          - {variable: 10m_u_component_of_wind, channel: u10}

``python -m earthgraph.data types`` prints the built-in types in this form, as
a template. Every key is checked: an unknown or misspelt key, a missing one, a
value of the wrong kind, units that cannot be parsed, ``valid_min >=
valid_max``, an error that is not positive and finite in float32, or a name that is
not a plain name (a letter, then letters, digits, ``_`` or ``-``: type and metadata
names become folders and arrays of the store, so ``..``, ``a/b`` or ``""`` cannot be
names), a type named ``static`` or metadata named as a store column (``time``,
``values`` ...) are refused with a :class:`TypeFileError` naming the file, the type
and the key. Metadata fields whose name ends in
``_id`` are identifiers (station, buoy, float): stored, never model features;
others (angles, in degrees) are model features.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import yaml

from earthgraph import SPHERES
from earthgraph.data import obs_types
from earthgraph.data.obs_types import PRODUCT_MASKS, Channel, ObservationType, Product
from earthgraph.data.store import NAME as _NAME
from earthgraph.data.store import STATIC_GROUP
from earthgraph.data.store import STORE_COLUMNS as _STORE_COLUMNS
from earthgraph.data.units import UnitsError, check_units

_TYPE_KEYS = {"name": str, "sphere": str, "channels": list, "metadata": list, "description": str,
              "conventional": bool, "products": list}
_REQUIRED_TYPE_KEYS = ("name", "sphere", "channels")
_CHANNEL_KEYS = {"name": str, "units": str, "valid_min": float, "valid_max": float, "error": float}
_PRODUCT_KEYS = {"variable": str, "channel": str, "mask": str, "headline": bool}
# A number as YAML 1.2 writes it; PyYAML (YAML 1.1) reads 1e5 or 1.0e300 (no sign after the e) as text.
_NUMBER = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
# The store's own groups and columns, which a type or metadata name would overwrite.
_STORE_GROUPS = (STATIC_GROUP,)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class TypeFileError(ValueError):
    """A types file that cannot be used; the message names the file, the type and the key."""


def _checked(entry, keys: dict, required: Iterable[str], where: str) -> dict:
    """``entry`` (a mapping) with each value of the expected kind; names what is wrong."""
    if not isinstance(entry, dict):
        raise TypeFileError(f"{where}: expected a mapping of {sorted(keys)}, got {entry!r}")
    unknown = sorted(set(entry) - set(keys))
    if unknown:
        raise TypeFileError(f"{where}: unknown key(s) {unknown}; the keys are {list(keys)}")
    missing = [k for k in required if k not in entry]
    if missing:
        raise TypeFileError(f"{where}: missing key(s) {missing}")
    out = {}
    for key, value in entry.items():
        kind = keys[key]
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        elif kind is float and isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            value = float(value)
        elif kind is str and isinstance(value, (int, float)) and not isinstance(value, bool) and key == "units":
            value = str(value)  # units "1" parse as the number 1
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeFileError(f"{where}, key {key!r}: expected {kind.__name__}, got {value!r}")
        out[key] = value
    return out


def _check_name(name: str, where: str, taken: tuple[str, ...] = ()) -> None:
    """Refuse a name that cannot be a store's folder or array name, or is one of ``taken``."""
    if not _NAME.fullmatch(name):
        raise TypeFileError(f"{where}: {name!r} is not a name: a letter, then letters, digits, '_' or '-'")
    if name in taken:
        raise TypeFileError(f"{where}: {name!r} is taken by the store's own {list(taken)}; rename it")


def _channel(entry, where: str) -> Channel:
    c = _checked(entry, _CHANNEL_KEYS, tuple(_CHANNEL_KEYS), where)
    _check_name(c["name"], f"{where}, key 'name'")
    where = f"{where} ({c['name']!r})"
    try:
        check_units(c["units"], f"{where}, key 'units'")
    except UnitsError as e:
        raise TypeFileError(str(e)) from None
    if not c["valid_min"] < c["valid_max"]:
        raise TypeFileError(f"{where}: valid_min {c['valid_min']:g} is not below valid_max {c['valid_max']:g}")
    if not 0.0 < c["error"] <= _FLOAT32_MAX:  # stored as float32: inf or 1e39 would be inf there
        raise TypeFileError(f"{where}, key 'error': an observation error must be positive and finite in float32, "
                            f"got {c['error']:g}")
    return Channel(**c)


def _type(entry, where: str) -> ObservationType:
    t = _checked(entry, _TYPE_KEYS, _REQUIRED_TYPE_KEYS, where)
    _check_name(t["name"], f"{where}, key 'name'", _STORE_GROUPS)
    where = f"{where} ({t['name']!r})"
    if t["sphere"] not in SPHERES:
        raise TypeFileError(f"{where}, key 'sphere': {t['sphere']!r} is not one of {SPHERES}")
    channels = tuple(_channel(c, f"{where}, channels[{i}]") for i, c in enumerate(t["channels"]))
    units = {c.name: c.units for c in channels}
    products = []
    for i, p in enumerate(t.get("products", [])):
        p = _checked(p, _PRODUCT_KEYS, ("variable", "channel"), f"{where}, products[{i}]")
        if p["channel"] not in units:
            raise TypeFileError(f"{where}, products[{i}], key 'channel': {p['channel']!r} is not one of its "
                                f"channels {list(units)}")
        if p.get("mask", "all") not in PRODUCT_MASKS:
            raise TypeFileError(f"{where}, products[{i}], key 'mask': {p['mask']!r} is not one of {PRODUCT_MASKS}")
        products.append(Product(p["variable"], t["sphere"], t["name"], p["channel"], units[p["channel"]],
                                p.get("mask", "all"), p.get("headline", False)))
    metadata = t.get("metadata", [])
    if not all(isinstance(m, str) for m in metadata):
        raise TypeFileError(f"{where}, key 'metadata': expected a list of names, got {metadata!r}")
    for i, m in enumerate(metadata):
        _check_name(m, f"{where}, metadata[{i}]", _STORE_COLUMNS)
    try:
        return ObservationType(t["name"], t["sphere"], channels, tuple(metadata), t.get("description", ""),
                               t.get("conventional", False), tuple(products))
    except ValueError as e:  # sphere, duplicate names
        raise TypeFileError(f"{where}: {e}") from None


def parse_types(document, source: str) -> list[ObservationType]:
    """Observation types from a parsed YAML document (``{"types": [...]}`` or a bare list)."""
    entries = document.get("types") if isinstance(document, dict) and set(document) == {"types"} else document
    if not isinstance(entries, list) or not entries:
        raise TypeFileError(f"{source}: expected a non-empty list under 'types:', got {type(document).__name__}")
    types = [_type(e, f"{source}: types[{i}]") for i, e in enumerate(entries)]
    names = [t.name for t in types]
    if len(set(names)) != len(names):
        raise TypeFileError(f"{source}: a type is declared twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    return types


def read_types(path: str | os.PathLike) -> list[ObservationType]:
    """The observation types of a YAML file; :class:`TypeFileError` names what is wrong."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as e:
        raise TypeFileError(f"{path}: cannot be read: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise TypeFileError(f"{path}: not valid YAML: {e}") from None
    return parse_types(document, str(path))


def register_types(path: str | os.PathLike) -> list[ObservationType]:
    """Read a types file and add its types to the registry (``obs_types.get`` then knows them).

    A name already registered with a different definition (a built-in type, say) is refused.
    """
    types = read_types(path)
    for t in types:
        try:
            obs_types.register(t)
        except ValueError as e:
            raise TypeFileError(f"{path}: {e}; rename the type") from None
    return types


def types_yaml(types: Iterable[ObservationType]) -> str:
    """Types in the YAML form :func:`read_types` reads."""
    entries = []
    for t in types:
        d = t.to_dict()
        for p in d.get("products", []):  # a type's products repeat its sphere, name and units: drop them
            for key in ("sphere", "obs_type", "units"):
                p.pop(key)
        entries.append(d)
    return yaml.safe_dump({"types": entries}, sort_keys=False, default_flow_style=None, width=110)
