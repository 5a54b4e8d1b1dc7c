"""Station lists: the points a model forecasts at for products (``train.py predict --stations``).

A station list is a CSV or parquet table with columns ``id``, ``lat`` and ``lon``
(degrees) and optionally ``elevation`` (m above sea level; the model does not use
it, it is carried into the outputs). Ids may be integers or strings: if every id
is an integer (as written, without leading zeros) they stay integers, otherwise
all of them are kept as strings, so that ``"03772"`` keeps its zero.

Longitudes may come in any range; they are wrapped to [0, 360), the convention of
the gridded forecasts (``forecast.zarr``) and of WeatherBench2, so that a station
at a grid point has exactly that grid point's coordinates.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("id", "lat", "lon")
OPTIONAL_COLUMNS = ("elevation",)
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_INTEGER = re.compile(r"[+-]?(0|[1-9][0-9]*)")


def _show(value) -> str:
    """A cell's value for a message: text quoted, numbers plain (not ``np.float64(95.5)``)."""
    return repr(value) if isinstance(value, str) else str(value)


class StationListError(ValueError):
    """A station list that cannot be used; the message names the file, column and value."""


@dataclass(frozen=True)
class StationList:
    """Stations as columns of equal length n.

    ids: (n,) int64, or object of str; unique
    lat: (n,) float64 degrees in [-90, 90]
    lon: (n,) float64 degrees in [0, 360)
    elevation: (n,) float64 m, NaN where unknown; None when the list has none
    source: where the list came from (for messages and provenance)
    """

    ids: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    elevation: np.ndarray | None = None
    source: str = "<arrays>"

    def __len__(self) -> int:
        return len(self.ids)


def wrap_longitude(lon_deg: np.ndarray) -> np.ndarray:
    """Degrees in any range -> [0, 360) (float64)."""
    out = np.mod(np.asarray(lon_deg, np.float64), 360.0)
    out[out >= 360.0] = 0.0  # np.mod(-1e-20, 360) rounds to 360
    return out


def _ids(values: pd.Series, source: str) -> np.ndarray:
    """Integer ids as int64 when every one is an integer, else every id as a string."""
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise StationListError(f"station list {source}, column 'id': row {row} has no id")
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.to_numpy(np.int64)
    if pd.api.types.is_float_dtype(values.dtype):
        v = values.to_numpy(np.float64)
        bad = ~np.isfinite(v) | (v != np.round(v))
        if bad.any():
            raise StationListError(f"station list {source}, column 'id': value {_show(v[bad][0])} is not an integer "
                                   "or a string id")
        return v.astype(np.int64)
    text = [str(x).strip() for x in values]
    if all(_INTEGER.fullmatch(t) for t in text):
        return np.array([int(t) for t in text], np.int64)
    return np.array(text, dtype=object)


def _coordinate(frame: pd.DataFrame, column: str, source: str, allow_missing: bool = False) -> np.ndarray:
    """A numeric column as float64, refusing text, infinities and (unless ``allow_missing``:
    NaN then) empty cells."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)
    missing = raw.isna().to_numpy()
    bad = (np.isnan(values) & ~missing) | np.isinf(values) | (missing & (not allow_missing))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise StationListError(f"station list {source}, column {column!r}: value {_show(raw.iloc[row])} (station "
                               f"{_show(frame['id'].iloc[row])}) is not a finite number")
    return values


def station_list(frame: pd.DataFrame, source: str = "<table>") -> StationList:
    """Check a table of stations (columns ``id, lat, lon[, elevation]``) and return it as a
    :class:`StationList`, longitudes wrapped to [0, 360). Raises :class:`StationListError`."""
    frame = frame.rename(columns=lambda c: str(c).strip())  # "id, lat, lon" headers have spaces
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise StationListError(f"station list {source}: missing column(s) {missing}; it has {list(frame.columns)} "
                               f"(needed: {list(REQUIRED_COLUMNS)}, optional: {list(OPTIONAL_COLUMNS)})")
    if len(frame) == 0:
        raise StationListError(f"station list {source}: no stations")
    frame = frame.reset_index(drop=True)
    ids = _ids(frame["id"], source)
    unique, counts = np.unique(ids.astype(str), return_counts=True)
    if (counts > 1).any():
        raise StationListError(f"station list {source}, column 'id': duplicate id(s) {unique[counts > 1][:5].tolist()}")
    lat = _coordinate(frame, "lat", source)
    outside = (lat < -90.0) | (lat > 90.0)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise StationListError(f"station list {source}, column 'lat': value {_show(lat[row])} "
                               f"(station {_show(ids[row])}) is outside [-90, 90]")
    lon = wrap_longitude(_coordinate(frame, "lon", source))
    elevation = _coordinate(frame, "elevation", source, allow_missing=True) if "elevation" in frame.columns else None
    return StationList(ids, lat, lon, elevation, source)


def read_stations(path: str | os.PathLike) -> StationList:
    """Read a station list from a ``.csv`` or ``.parquet`` (``.pq``) file (module docstring).

    Raises FileNotFoundError for a missing file and :class:`StationListError` for an
    unknown format or a list that fails :func:`station_list`'s checks."""
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise StationListError(f"station list {path}: unknown format {path.suffix!r}; expected one of "
                               f"{sorted(FORMATS)}")
    if not path.exists():
        raise FileNotFoundError(f"station list {path} does not exist")
    try:
        # ids as text: pandas would otherwise turn "03772" into 3772 (see _ids)
        frame = pd.read_csv(path, dtype={"id": str}) if kind == "csv" else pd.read_parquet(path)
    except (ValueError, OSError) as e:
        raise StationListError(f"station list {path}: cannot be read as {kind}: {e}") from e
    return station_list(frame, str(path))
