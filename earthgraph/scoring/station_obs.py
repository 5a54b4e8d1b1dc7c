"""Station (point) observations from parquet or CSV tables, as one dataset.

Two table layouts are read:

- long: one row per observation, columns ``station, time, variable, value``;
- wide: one row per station and time, one column per variable (``variables``
  maps variable names to columns; default: every column that is not a key).

Each station's position (``lat``, ``lon`` in degrees, optional ``elevation``
in m) comes either from every row or from a separate station table
(``stations=``). ``columns`` renames the key columns, e.g.
``{"station": "wmo_id", "lat": "latitude"}``; without it ``id``/``station_id``,
``latitude``, ``longitude`` and ``altitude`` are recognised too.

The result is an ``xr.Dataset`` with one float64 variable per observed
variable, dims ``(time, station)``, NaN where a station did not report; coords
``time`` (UTC, tz-naive ``datetime64[ns]``, sorted), ``station`` (the ids, int64
when every id is a canonical integer, else str: ``"06260"`` stays a string),
``latitude(station)``, ``longitude(station)`` (degrees, as given) and
``elevation(station)`` (m, NaN where unknown; absent when no elevation is
given). This is the station-dataset layout the station scoring pairs against.

Bad input raises :class:`StationDataError` (a ``ValueError``) naming the file,
the column and the offending value. Missing values are not errors: they are
left out (NaN).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

Layout = Literal["long", "wide"]
KEYS = ("station", "time", "variable", "value", "lat", "lon", "elevation")
ALIASES = {"station": ("station", "id", "station_id"), "lat": ("lat", "latitude"), "lon": ("lon", "longitude"), "elevation": ("elevation", "altitude", "elev")}
POSITION_TOLERANCE = 1e-6  # degrees or m: a station's rows may repeat its position, not move it
_INTEGER = re.compile(r"-?[1-9][0-9]*|0")


class StationDataError(ValueError):
    """A station table that cannot be read; the message names the file, the column and the value."""


def read_station_observations(path: str | Path, *, layout: Layout = "long", variables: Mapping[str, str] | None = None,
                              columns: Mapping[str, str] | None = None,
                              stations: str | Path | pd.DataFrame | None = None) -> xr.Dataset:
    """A parquet (``.parquet``, ``.pq``) or CSV (``.csv``, ``.csv.gz``) point table as a
    station dataset (see the module docstring); ``stations``: a table (path or
    DataFrame) of positions per station, used instead of positions on the rows."""
    table = _read(path, columns)
    station_table = None
    if stations is not None:
        station_table = stations if isinstance(stations, pd.DataFrame) else _read(stations, columns)
    return observations_from_table(table, str(path), layout=layout, variables=variables, columns=columns,
                                   stations=station_table,
                                   stations_source=str(stations) if not isinstance(stations, pd.DataFrame)
                                   else "stations table")


def observations_from_table(table: pd.DataFrame, source: str = "table", *, layout: Layout = "long",
                            variables: Mapping[str, str] | None = None, columns: Mapping[str, str] | None = None,
                            stations: pd.DataFrame | None = None, stations_source: str = "stations table"
                            ) -> xr.Dataset:
    """:func:`read_station_observations` for a DataFrame already in memory; ``source``
    names it in errors."""
    if layout not in ("long", "wide"):
        raise StationDataError(f"{source}: layout must be 'long' or 'wide', got {layout!r}")
    names = _column_names(table, columns)
    if stations is None:
        positions = _positions(table, source, names)
    else:
        positions = _positions(stations, stations_source, _column_names(stations, columns))
    long = _long_rows(table, source, layout, variables, names)
    if stations is not None:
        unknown = pd.Index(long.station.unique()).difference(positions.index)
        if len(unknown):
            raise StationDataError(f"{stations_source}: no position for station(s) {list(unknown[:5])} "
                                   f"of {source}")
    return _to_dataset(long, positions, source)


def station_table(stations: xr.Dataset | xr.DataArray | pd.DataFrame | object) -> pd.DataFrame:
    """Station positions as a DataFrame indexed by station id, columns ``latitude``,
    ``longitude`` (degrees) and ``elevation`` (m, NaN where unknown), from a station
    dataset (coords on a ``station`` dim) or a table with ``station`` (or an index)
    and ``lat``/``latitude``, ``lon``/``longitude`` [, ``elevation``] columns, or an
    ``earthgraph.data.stations.StationList`` (anything with ``ids``, ``lat``, ``lon``)."""
    if all(hasattr(stations, a) for a in ("ids", "lat", "lon")):
        elevation = getattr(stations, "elevation", None)
        return pd.DataFrame({"latitude": np.asarray(stations.lat, np.float64),
                             "longitude": np.asarray(stations.lon, np.float64),
                             "elevation": np.nan if elevation is None else np.asarray(elevation, np.float64)},
                            index=pd.Index(stations.ids, name="station"))
    if isinstance(stations, (xr.Dataset, xr.DataArray)):
        if "station" not in stations.dims:
            raise StationDataError(f"stations: no 'station' dim; dims are {tuple(stations.dims)}")
        for c in ("latitude", "longitude"):
            if c not in stations.coords:
                raise StationDataError(f"stations: no {c!r} coordinate on the station dim")
        elevation = stations["elevation"].values if "elevation" in stations.coords else np.nan
        return pd.DataFrame({"latitude": stations.latitude.values.astype(np.float64),
                             "longitude": stations.longitude.values.astype(np.float64),
                             "elevation": np.asarray(elevation, np.float64)},
                            index=pd.Index(stations.station.values, name="station"))
    names = _column_names(stations, None)
    table = stations if names["station"] in stations.columns else stations.rename_axis("station").reset_index()
    positions = _positions(table, "stations table", _column_names(table, None))
    return positions.rename(columns={"lat": "latitude", "lon": "longitude"})


def _read(path: str | Path, columns: Mapping[str, str] | None) -> pd.DataFrame:
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise StationDataError(f"{path}: no such file")
    station_columns = {*ALIASES["station"], (columns or {}).get("station", "station")}
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".csv", ".csv.gz")):
            # Read ids as text: "06260" must not become 6260 (see _station_ids).
            return pd.read_csv(path, dtype={c: str for c in station_columns})
    except Exception as err:  # pandas and pyarrow raise many types for a damaged file
        raise StationDataError(f"{path}: cannot be read as a table: {type(err).__name__}: {err}") from err
    raise StationDataError(f"{path}: unknown table format (expected .parquet, .pq, .csv or .csv.gz)")


def _column_names(table: pd.DataFrame, columns: Mapping[str, str] | None) -> dict[str, str | None]:
    """Key -> column of ``table`` (None for an optional key it lacks)."""
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(KEYS))
    if unknown:
        raise StationDataError(f"columns: unknown key(s) {unknown}; the keys are {list(KEYS)}")
    names: dict[str, str | None] = {}
    for key in KEYS:
        if key in columns:
            names[key] = columns[key]
        else:
            names[key] = next((a for a in ALIASES.get(key, (key,)) if a in table.columns), ALIASES.get(key, (key,))[0])
    if names["elevation"] not in table.columns:
        names["elevation"] = None
    return names


def _require(table: pd.DataFrame, source: str, column: str, role: str) -> pd.Series:
    if column not in table.columns:
        raise StationDataError(f"{source}: no column {column!r} ({role}); columns are {list(table.columns)}")
    return table[column]


def _station_ids(raw: pd.Series, source: str, column: str) -> np.ndarray:
    """int64 ids when every id is a canonical integer (no leading zeros), else str."""
    missing = raw.isna().to_numpy()
    if missing.any():
        raise StationDataError(f"{source}: column {column!r}: missing station id at row {int(np.argmax(missing))}")
    if pd.api.types.is_integer_dtype(raw):
        return raw.to_numpy(np.int64)
    text = raw.astype(str).str.strip()
    if text.map(lambda s: bool(_INTEGER.fullmatch(s))).all():
        return text.astype(np.int64).to_numpy()
    return text.to_numpy(dtype=object)


def _parse_times(raw: pd.Series, source: str, column: str) -> np.ndarray:
    """UTC times as tz-naive datetime64[ns]; naive input is taken as UTC."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        times = pd.to_datetime(raw, utc=True)
    else:
        times = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
        retry = times.isna() & raw.notna()
        if retry.any():  # not ISO 8601: parse those one by one
            times[retry] = pd.to_datetime(raw[retry], errors="coerce", utc=True, format="mixed")
    bad = times.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise StationDataError(f"{source}: column {column!r}: cannot parse time {raw.iloc[i]!r} (row {i})")
    return times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ns]")


def _numbers(raw: pd.Series, source: str, column: str) -> np.ndarray:
    """float64 values; NaN where empty; a value that is not a number raises."""
    values = pd.to_numeric(raw, errors="coerce")
    bad = (values.isna() & raw.notna()).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise StationDataError(f"{source}: column {column!r}: {raw.iloc[i]!r} (row {i}) is not a number")
    return values.to_numpy(np.float64)


def _long_rows(table: pd.DataFrame, source: str, layout: Layout, variables: Mapping[str, str] | None,
               names: dict[str, str | None]) -> pd.DataFrame:
    """Rows (station, time, variable, value) with a finite value; conflicting repeats raise."""
    station = _station_ids(_require(table, source, names["station"], "station id"), source, names["station"])
    time = _parse_times(_require(table, source, names["time"], "time"), source, names["time"])
    if layout == "long":
        variable = _require(table, source, names["variable"], "variable name").astype(str).to_numpy()
        value = _numbers(_require(table, source, names["value"], "value"), source, names["value"])
        rows = pd.DataFrame({"station": station, "time": time, "variable": variable, "value": value})
    else:
        keys = {names[k] for k in ("station", "time", "lat", "lon", "elevation")}
        mapping = dict(variables) if variables is not None else {c: c for c in table.columns if c not in keys}
        if not mapping:
            raise StationDataError(f"{source}: no variable column (columns are {list(table.columns)})")
        rows = pd.concat([pd.DataFrame({"station": station, "time": time, "variable": var,
                                        "value": _numbers(_require(table, source, col, f"variable {var!r}"),
                                                          source, col)})
                          for var, col in mapping.items()], ignore_index=True)
    rows = rows[np.isfinite(rows.value.to_numpy())]
    key = ["station", "time", "variable"]
    repeated = rows[rows.duplicated(key, keep=False)]
    conflicts = repeated.groupby(key, sort=False).value.nunique()
    if (conflicts > 1).any():
        s, t, v = conflicts[conflicts > 1].index[0]
        values = repeated.set_index(key).loc[(s, t, v), "value"].tolist()
        raise StationDataError(f"{source}: station {s!r} has values {values} for {v!r} at {pd.Timestamp(t)}")
    return rows.drop_duplicates(key)


def _positions(table: pd.DataFrame, source: str, names: dict[str, str | None]) -> pd.DataFrame:
    """One row per station (index: id): lat, lon, elevation; checked."""
    station = _station_ids(_require(table, source, names["station"], "station id"), source, names["station"])
    frame = pd.DataFrame({"station": station})
    for key in ("lat", "lon", "elevation"):
        if key == "elevation" and names[key] is None:
            frame[key] = np.nan
            continue
        values = _numbers(_require(table, source, names[key], f"station {key}"), source, names[key])
        bad = ~np.isfinite(values) if key != "elevation" else np.isinf(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise StationDataError(f"{source}: column {names[key]!r}: station {station[i]!r} has position "
                                   f"{values[i]} (row {i})")
        frame[key] = values
    outside = np.abs(frame.lat.to_numpy()) > 90.0
    if outside.any():
        i = int(np.argmax(outside))
        raise StationDataError(f"{source}: column {names['lat']!r}: latitude {frame.lat.iloc[i]} of station "
                               f"{station[i]!r} (row {i}) is outside [-90, 90]")
    _check_one_position(frame, source, names)
    return frame.groupby("station", sort=False).first()


def _check_one_position(frame: pd.DataFrame, source: str, names: dict[str, str | None]) -> None:
    """Raise when a station's rows give it two positions (longitudes compared modulo 360)."""
    first = frame.groupby("station", sort=False).transform("first")
    for key in ("lat", "lon", "elevation"):
        a, b = frame[key].to_numpy(), first[key].to_numpy()
        diff = np.abs(a - b)
        if key == "lon":
            diff = np.minimum(diff % 360.0, 360.0 - diff % 360.0)
        moved = (diff > POSITION_TOLERANCE) | (np.isnan(a) != np.isnan(b))
        if moved.any():
            i = int(np.argmax(moved))
            raise StationDataError(f"{source}: column {names[key]!r}: station {frame.station.iloc[i]!r} has two "
                                   f"positions, {key} {b[i]} and {a[i]} (row {i})")


def _to_dataset(long: pd.DataFrame, positions: pd.DataFrame, source: str) -> xr.Dataset:
    """(station, time, variable, value) rows -> dims (time, station), one variable each."""
    if long.empty:
        raise StationDataError(f"{source}: no observation with a value")
    times = np.unique(long.time.to_numpy())
    ids = positions.index.intersection(pd.Index(long.station.unique()))
    ids = pd.Index(sorted(ids), dtype=positions.index.dtype)
    t = np.searchsorted(times, long.time.to_numpy())
    s = ids.get_indexer(long.station.to_numpy())
    data = {}
    for name, rows in long.groupby("variable", sort=True).indices.items():
        values = np.full((len(times), len(ids)), np.nan)
        values[t[rows], s[rows]] = long.value.to_numpy()[rows]
        data[str(name)] = (("time", "station"), values)
    pos = positions.loc[ids]
    coords = {"time": times, "station": ids.to_numpy(),
              "latitude": ("station", pos.lat.to_numpy(np.float64)),
              "longitude": ("station", pos.lon.to_numpy(np.float64))}
    if np.isfinite(pos.elevation.to_numpy(np.float64)).any():
        coords["elevation"] = ("station", pos.elevation.to_numpy(np.float64))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs["source"] = source
    return ds


def observations_from_store(store, products, period: tuple[str, str] | None = None) -> xr.Dataset:
    """Station observations from an observation store (``earthgraph.data.store.ObservationStore``).

    products: the variables to read, each an ``earthgraph.data.obs_types.Product``
        (its ``variable`` names the result, its ``obs_type``/``channel`` the column read).
    period: ``[start, end)`` of observation times to read (ISO dates); default all.

    A station is a type's identifier (its first ``*_id`` metadata field; the text of a
    coded id where the store keeps it), or its position where the type has none. Moving
    platforms (ships, drifters: an identifier seen at two positions) are not stations:
    they are left out, and the dataset's ``moving_platforms_left_out`` attribute counts
    them. Values are in the type's units.
    """
    lo, hi = store.time_range
    t0, t1 = (lo, hi + 1) if period is None else (int(np.datetime64(p, "s").astype(np.int64)) for p in period)
    frames = []
    for obs_type in dict.fromkeys(p.obs_type for p in products):
        t = store.obs_type(obs_type)
        cols = store.read(obs_type, t0, t1)
        ids = _store_ids(cols, t.metadata, store.codes(obs_type))
        frame = pd.DataFrame({"station": ids, "time": pd.to_datetime(cols["time"], unit="s"),
                              "lat": cols["lat"], "lon": cols["lon"]})
        for p in products:
            if p.obs_type == obs_type:
                frame[p.variable] = cols["values"][:, t.channel_names.index(p.channel)].astype(np.float64)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table, moving = _fixed_stations(table)
    if table.empty:
        raise StationDataError(f"{store.path}: no fixed station among {[p.obs_type for p in products]}'s "
                               f"observations ({moving} moving platforms)")
    ds = observations_from_table(table, f"{store.path}", layout="wide",
                                 variables={p.variable: p.variable for p in products})
    for p in products:
        if p.variable in ds:
            ds[p.variable].attrs["units"] = p.units
    ds.attrs["moving_platforms_left_out"] = moving
    return ds


def _fixed_stations(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The rows of stations that stay at one position, and how many moving ids were left out."""
    grouped = table.groupby("station", sort=False)
    lat_span = grouped["lat"].transform("max") - grouped["lat"].transform("min")
    lon = table["lon"] % 360.0  # a station at the date line may appear as -180 and 180
    by_station = lon.groupby(table["station"], sort=False)
    lon_span = by_station.transform("max") - by_station.transform("min")
    moving = (lat_span > POSITION_TOLERANCE) | (np.minimum(lon_span, 360.0 - lon_span) > POSITION_TOLERANCE)
    return table[~moving], int(table.loc[moving, "station"].nunique())


def _store_ids(cols: dict[str, np.ndarray], metadata: tuple[str, ...], codes: dict[str, list[str]]) -> np.ndarray:
    """Each row's station: its identifier's text (or number), else its position as text."""
    field = next((m for m in metadata if m.endswith("_id")), None)
    position = np.array([f"{la:.5f},{lo:.5f}" for la, lo in zip(cols["lat"], cols["lon"])], dtype=object)
    if field is None:
        return position
    raw = cols[field]
    known = np.isfinite(raw)
    if field in codes:
        texts = np.asarray(codes[field], dtype=object)
        ids = np.where(known, texts[np.where(known, raw, 0).astype(np.int64)], position)
    else:
        ids = np.where(known, np.array([str(int(v)) if float(v).is_integer() else str(v) for v in raw],
                                       dtype=object), position)
    return ids
