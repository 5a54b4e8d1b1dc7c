"""Gridded fields from users' files (WeatherBench2/ERA5 zarr, CF netCDF) in earthgraph's layout.

:func:`open_gridded` returns a dataset with dimensions ``(time, [level,]
latitude, longitude)``, latitude ascending in degrees, longitude in [0, 360),
and variables renamed from ERA5 short names or WB2 long names to earthgraph's
names where they mean the same quantity (:data:`ERA5_NAMES`), converted to
earthgraph's units. Such a dataset can serve as gridded truth for scoring, or
be sampled into observations by the observing systems like the nature run.

Opening stays lazy: variables come dask-backed, zarr stores' in their own
chunks and netCDF variables chunked along time (:data:`CHUNK_BYTES` per
chunk), so that a units conversion or a time slice reads only the steps asked
for. The observing systems stream such a dataset a chunk of time at a time
(:class:`earthgraph.data.sampler.TruthSampler`).

Problems get a :class:`GriddedError` naming the file and the field: a file
that cannot be opened or is shorter than its header says, missing, empty,
non-numeric, non-finite, duplicate or out-of-range coordinates (latitudes
outside [-90, 90]), times that are no dates or have gaps (NaT), an unknown
requested variable, units that cannot be converted, a period outside the
file. Reading happens later, in dask tasks: a damaged chunk then raises a
GriddedError naming the file, the variable and the part read, and a value
outside its variable's plausible range (:data:`PLAUSIBLE_RANGE`: an unmasked
fill value, wrong units, inf) one naming the value and where it is. NaN is a
missing value (SST over land), never an error.
"""

from __future__ import annotations

import math
import os
import uuid
import warnings
from pathlib import Path

import dask.array
import numpy as np
import xarray as xr

from earthgraph.data.nature_run import VARIABLES
from earthgraph.data.netcdf_classic import check_not_truncated
from earthgraph.data.units import UnitsError, convert_units

# ERA5 short name or WB2 long name -> earthgraph name (units from nature_run.VARIABLES).
ERA5_NAMES = {
    "t2m": "air_temperature", "2m_temperature": "air_temperature",
    "tcwv": "total_column_water_vapour", "total_column_water_vapour": "total_column_water_vapour",
    "sst": "sea_surface_temperature", "sea_surface_temperature": "sea_surface_temperature",
    "skt": "land_surface_temperature", "skin_temperature": "land_surface_temperature",
    "siconc": "sea_ice_concentration", "ci": "sea_ice_concentration", "sea_ice_cover": "sea_ice_concentration",
    "icec": "sea_ice_concentration",
    "sd": "snow_water_equivalent", "snow_depth": "snow_water_equivalent",
    "lsm": "land_sea_mask", "land_sea_mask": "land_sea_mask",
    "t": "temperature", "z": "geopotential", "q": "specific_humidity",
}
_COORD_NAMES = {
    "time": ("time", "valid_time"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon"),
    "level": ("level", "isobaricInhPa", "pressure_level", "plev"),
}
CHUNK_BYTES = 32 * 2**20  # per dask chunk of a netCDF variable: a few steps of a 0.25-degree field
COARSE_STEP_S = 6 * 3600  # coarser time steps than this lose the diurnal cycle
# Bounds of each earthgraph variable in its units, far beyond Earth's records: a value outside
# them is no measurement but an unmasked fill value (9.97e36, -32767), an overflow (inf), or
# values in other units than the units attribute says (SST in degC labelled K). The observing
# systems would otherwise clip it silently into their channel's valid range.
PLAUSIBLE_RANGE = {
    "air_temperature": (100.0, 400.0), "land_surface_temperature": (100.0, 400.0),
    "sea_surface_temperature": (100.0, 400.0), "thermocline_temperature": (100.0, 400.0),
    "total_column_water_vapour": (-1.0, 200.0), "ocean_heat_content": (-1.0e14, 1.0e14),
    "soil_moisture": (-0.05, 1.05), "snow_water_equivalent": (-1.0, 1.0e5),
    "sea_ice_concentration": (-0.05, 1.05), "sea_ice_thickness": (-0.1, 100.0),
    "u_component_of_wind": (-300.0, 300.0), "v_component_of_wind": (-300.0, 300.0),
}
SAME_DEGREES = 1e-6  # coordinates closer than this (0.1 m) are one grid line
LONGITUDE_RANGE = (-360.0, 720.0)  # one turn beyond [-180, 180) or [0, 360) at most (ferret's 20..380)


class GriddedError(ValueError):
    """A gridded file that cannot be used; the message names the file and the field."""


def _is_zarr(path: str) -> bool:
    return path.rstrip("/").endswith(".zarr")


def _open(path: str | os.PathLike) -> xr.Dataset:
    """The file's dataset, its variables lazily indexed (not yet dask, not cached: see _named_reads)."""
    p = str(path)
    if "://" not in p and not Path(p).exists():
        raise GriddedError(f"{p}: no such file or store")
    try:
        if _is_zarr(p):
            with warnings.catch_warnings():  # stores with and without consolidated metadata are both fine
                warnings.filterwarnings("ignore", message="Failed to open Zarr store with consolidated")
                return xr.open_dataset(p, engine="zarr", consolidated=None, chunks=None, cache=False)
        ds = xr.open_dataset(p, cache=False)
    except Exception as e:  # the engines raise many types for damaged files
        raise GriddedError(f"{p}: cannot be opened as a gridded dataset: {type(e).__name__}: {e}") from e
    if "://" not in p:
        _check_classic_length(p)
    return ds


def _check_classic_length(path: str) -> None:
    """GriddedError when a classic netCDF file ends before its data does. The netCDF library
    reads the missing bytes as zeros or fill values, so a truncated download would otherwise
    pass as data (HDF5-based netCDF-4 and zarr detect truncation themselves)."""
    try:
        check_not_truncated(path)
    except EOFError as e:
        raise GriddedError(f"{path}: {e} (an interrupted download or copy?)") from None
    except (OSError, IndexError):
        return  # a header the netCDF library read but this parser cannot: the library's word stands


_CF_UNITS = {"latitude": ("degrees_north", "degree_north", "degrees_n", "degree_n", "degreesn", "degreen"),
             "longitude": ("degrees_east", "degree_east", "degrees_e", "degree_e", "degreese", "degreee")}
_CF_AXIS = {"time": "T", "latitude": "Y", "longitude": "X"}


def _cf_coordinate(ds: xr.Dataset, std: str) -> str | None:
    """The dimension coordinate that CF attributes mark as ``std`` (time, latitude or
    longitude) under another name (ferret's ``FNOCY``, ``TIME``): by its standard_name, its
    axis, its units (degrees_north / degrees_east), or for time a datetime dtype."""
    for name in ds.dims:
        if name not in ds.coords:
            continue
        attrs = {k: str(v).strip().lower() for k, v in ds[name].attrs.items()}
        units = attrs.get("units", "").replace(" ", "")
        if (attrs.get("standard_name") == std or attrs.get("axis", "").upper() == _CF_AXIS[std]
                or units in _CF_UNITS.get(std, ())
                or (std == "time" and np.issubdtype(ds[name].dtype, np.datetime64))):
            return str(name)
    return None


def _standard_coords(ds: xr.Dataset, file: str) -> xr.Dataset:
    renames = {}
    for std, names in _COORD_NAMES.items():
        found = [n for n in names if n in ds.dims or n in ds.coords]
        if not found and std != "level":
            found = [c] if (c := _cf_coordinate(ds, std)) is not None else []
        if found and found[0] != std:
            renames[found[0]] = std
        if not found and std in ("latitude", "longitude"):
            raise GriddedError(f"{file}: no {std} coordinate (looked for {list(names)}); it has {list(ds.coords)}")
    ds = ds.rename(renames)
    lat = _degrees(ds, "latitude", file)
    lon = _degrees(ds, "longitude", file)
    if np.abs(lat).max() > 90.0:
        raise GriddedError(f"{file}: coordinate latitude has value {lat[np.argmax(np.abs(lat))]} outside [-90, 90]")
    outside = (lon < LONGITUDE_RANGE[0]) | (lon > LONGITUDE_RANGE[1])
    if outside.any():
        raise GriddedError(f"{file}: coordinate longitude has value {lon[np.argmax(outside)]} outside "
                           f"[{LONGITUDE_RANGE[0]:g}, {LONGITUDE_RANGE[1]:g}] degrees")
    check_time(ds, file)
    ds = ds.assign_coords(longitude=np.mod(lon, 360.0))
    ds = ds.sortby(["latitude", "longitude"])
    for name, what in (("latitude", ""), ("longitude", " after wrapping to [0, 360)")):
        values = ds[name].values
        # Nearer than SAME_DEGREES is the same line: 392.7 wraps to 32.700000000000045, not 32.7.
        twice = np.nonzero(np.diff(values) <= SAME_DEGREES)[0]
        if len(twice):
            raise GriddedError(f"{file}: coordinate {name} has duplicate values{what} ({values[twice[0]]:.9g} "
                               f"and {values[twice[0] + 1]:.9g})")
    return ds


def _degrees(ds: xr.Dataset, name: str, file: str) -> np.ndarray:
    """The 1-D axis ``name`` (latitude or longitude) as float64 degrees; GriddedError unless it is
    a coordinate of finite numbers (a dimension without one would read as 0, 1, 2 ... degrees)."""
    if name not in ds.coords:
        raise GriddedError(f"{file}: dimension {name} has no coordinate values")
    da = ds[name]
    if da.ndim != 1:
        raise GriddedError(f"{file}: coordinate {name} has dims {list(da.dims)}; earthgraph reads regular grids "
                           f"with a 1-D {name} axis")
    if da.size == 0:
        raise GriddedError(f"{file}: coordinate {name} has no values")
    if da.dtype.kind not in "iuf":  # text ("10.5", "10N"), dates, booleans, objects
        raise GriddedError(f"{file}: coordinate {name} holds {da.dtype} values ({str(da.values[0])!r}, ...), not "
                           "numbers of degrees")
    values = da.values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise GriddedError(f"{file}: coordinate {name} has non-finite value {values[~np.isfinite(values)][0]}")
    return values


def check_time(ds: xr.Dataset, file: str) -> None:
    """GriddedError unless the time coordinate, where there is one, holds dates without gaps:
    numbers would be read as seconds since 1970, and a NaT step as a time before the Big Bang."""
    if "time" not in ds.dims and "time" not in ds.coords:
        return  # a static file (a land-sea mask)
    if "time" not in ds.coords:
        raise GriddedError(f"{file}: dimension time has no coordinate values")
    time = ds["time"]
    if not np.issubdtype(time.dtype, np.datetime64):
        calendar = time.encoding.get("calendar") or time.attrs.get("calendar")
        hint = (f"calendar {calendar!r}: earthgraph reads the standard calendar (convert it with "
                "ds.convert_calendar('standard'))" if time.dtype == object and calendar else
                f"units {time.attrs.get('units')!r}: it needs CF units such as 'hours since 2021-01-01'")
        raise GriddedError(f"{file}: coordinate time holds {time.dtype} values, not dates ({hint})")
    if time.size == 0:
        raise GriddedError(f"{file}: coordinate time has no steps")
    missing = np.isnat(np.atleast_1d(time.values))
    if missing.any():
        raise GriddedError(f"{file}: coordinate time has {int(missing.sum())} missing value(s) (NaT), the first at "
                           f"step {int(np.argmax(missing))}")


class _NamedReads:
    """A variable's lazily indexed data (a netCDF or zarr variable) whose reads raise GriddedError
    naming the file, the variable and the part read when they fail. The reads happen late, in
    dask tasks far from open_gridded, and the engines' errors ("NetCDF: HDF error", a codec's
    decompression error) name neither file nor variable."""

    def __init__(self, variable: xr.Variable, file: str, name: str):
        self.variable, self.file, self.name = variable, file, name
        self.shape, self.dtype, self.ndim = variable.shape, variable.dtype, variable.ndim

    def __getitem__(self, key: tuple) -> np.ndarray:
        try:
            return np.asarray(self.variable[key].values)
        except MemoryError:
            raise
        except Exception as e:  # the engines and codecs raise many types for damaged data
            part = ", ".join(f"{d} {k.start}:{k.stop}" if isinstance(k, slice) else f"{d} {k}"
                             for d, k in zip(self.variable.dims, key))
            raise GriddedError(f"{self.file}, variable {self.name!r}: reading {part} failed: "
                               f"{type(e).__name__}: {e}") from e


def _chunks(da: xr.DataArray, zarr: bool) -> tuple[int, ...]:
    """A variable's dask chunks: a zarr store's own; a netCDF variable's along time only,
    :data:`CHUNK_BYTES` per chunk (one chunk without a time dimension)."""
    preferred = da.encoding.get("preferred_chunks", {}) if zarr else {}
    if "time" in da.dims and not preferred:
        step_bytes = da.dtype.itemsize * math.prod(n for d, n in da.sizes.items() if d != "time")
        preferred = {"time": max(1, CHUNK_BYTES // max(step_bytes, 1))}
    return tuple(max(1, min(preferred.get(d, n), n)) for d, n in da.sizes.items())


def _named_reads(ds: xr.Dataset, file: str) -> xr.Dataset:
    """Every data variable dask-backed through :class:`_NamedReads`: lazy (a units conversion or
    a time slice reads only the chunks it needs) and named when a read fails."""
    zarr = _is_zarr(file)
    wrapped = {}
    for name, da in ds.data_vars.items():
        data = dask.array.from_array(_NamedReads(da.variable, file, str(name)), chunks=_chunks(da, zarr),
                                     name=f"{name}-{uuid.uuid4().hex}", meta=np.empty((0,) * da.ndim, da.dtype))
        wrapped[name] = da.copy(data=data)
    return ds.assign(wrapped)


def _plausible(block: np.ndarray, bounds: tuple[float, float], where: str, units: str,
               coords: dict[str, np.ndarray | None], block_info=None) -> np.ndarray:
    """``block`` itself; GriddedError naming the value and where it is when one lies outside
    ``bounds`` (NaN, a missing value, compares false and passes)."""
    lo, hi = bounds
    with np.errstate(invalid="ignore"):
        bad = (block < lo) | (block > hi)
    if bad.any():
        at = np.unravel_index(np.argmax(bad), block.shape)
        origin = [start for start, _ in block_info[0]["array-location"]] if block_info else [0] * block.ndim
        place = ", ".join(f"{d} {_label(c[o + i]) if c is not None else o + i}"
                          for (d, c), o, i in zip(coords.items(), origin, at))
        raise GriddedError(f"{where}: value {block[at]:g} {units} at {place} is outside [{lo:g}, {hi:g}] {units}, "
                           "the variable's plausible range: a fill value not marked as missing (_FillValue, "
                           "missing_value), values in other units than its units attribute says, or a damaged file")
    return block


def _label(value) -> str:
    return str(np.datetime64(value, "s")) if isinstance(value, np.datetime64) else f"{value:g}"


def _checked(da: xr.DataArray, file: str, name: str) -> xr.DataArray:
    """``da`` whose chunks are checked against :data:`PLAUSIBLE_RANGE` when they are read."""
    if name not in PLAUSIBLE_RANGE or da.chunks is None or da.dtype.kind != "f":
        return da
    coords = {d: (da[d].values if d in da.coords else None) for d in da.dims}
    data = da.data.map_blocks(_plausible, bounds=PLAUSIBLE_RANGE[name], where=f"{file}, variable {name!r}",
                              units=da.attrs.get("units", ""), coords=coords, dtype=da.dtype)
    return da.copy(data=data)


def _convert(da: xr.DataArray, to_units: str, file: str, name: str) -> xr.DataArray:
    if da.dtype.kind not in "iuf":  # units "hours since ..." make xarray decode values to dates
        units = da.attrs.get("units", da.encoding.get("units"))
        raise GriddedError(f"{file}, variable {name!r}: holds {da.dtype} values (units {units!r}), not numbers "
                           f"in {to_units}")
    # A variable without a units attribute is taken to be in earthgraph's units already.
    units = str(da.attrs.get("units", to_units)).strip()
    try:
        out = convert_units(da, units, to_units, f"{file}, variable {name!r}")
    except UnitsError as e:
        raise GriddedError(str(e)) from e
    except Exception as e:  # pint's parser raises more than UnitsError wraps: TokenError for "(K"
        raise GriddedError(f"{file}, variable {name!r}: unknown units {units!r} ({type(e).__name__}: {e})") from e
    return out.assign_attrs(da.attrs).assign_attrs(units=to_units)


def open_gridded(path: str | os.PathLike, variables: list[str] | None = None,
                 rename: dict[str, str] | None = None) -> xr.Dataset:
    """Open a WB2/ERA5-style zarr store or CF netCDF file in earthgraph's layout.

    ``variables``: earthgraph (or original) names to keep; default every data
    variable. Variables with an earthgraph name are converted to its units
    (for example SST in degC to K, snow depth in m of water to kg m-2).
    ``rename``: the file's names to earthgraph's, first (``{"UWND":
    "u_component_of_wind"}``); coordinates are also found by their CF attributes.
    """
    file = str(path)
    ds = _open(path)
    unknown = sorted(set(rename or {}) - set(ds.variables))
    if unknown:
        raise GriddedError(f"{file}: cannot rename {unknown}: no such variable; it has {sorted(map(str, ds.variables))}")
    ds = _named_reads(_standard_coords(ds.rename(rename or {}), file), file)
    renames = {v: ERA5_NAMES[v] for v in ds.data_vars if v in ERA5_NAMES and ERA5_NAMES[v] not in ds.data_vars}
    ds = ds.rename(renames)
    if variables is not None:
        missing = [v for v in variables if v not in ds.data_vars]
        if missing:
            raise GriddedError(f"{file}: unknown variable(s) {missing}; it has {sorted(map(str, ds.data_vars))}")
        ds = ds[variables]
    for name in list(ds.data_vars):
        if name in VARIABLES:
            ds[name] = _checked(_convert(ds[name], VARIABLES[name][1], file, name), file, name)
    ds.attrs["source_file"] = file
    return ds


def _iso(seconds: float) -> str:
    return str(np.datetime64(int(seconds), "s"))


def _period_seconds(value: str | np.datetime64, file: str) -> float:
    try:
        return float(np.datetime64(value, "s").astype(np.int64))
    except ValueError as e:
        raise GriddedError(f"{file}: period bound {value!r} is not an ISO date or time") from e


def observing_period(seconds: np.ndarray, period: tuple[str, str] | None, file: str) -> tuple[float, float]:
    """The times [t0, t1) (seconds since 1970) to observe.

    seconds: (nt,) the file's time steps. Without ``period`` it is the file's
    [first step, last step); with ``period`` = (START, END), ISO dates or times,
    that span cut to [START, END). GriddedError when nothing is left.
    """
    first, last = float(seconds[0]), float(seconds[-1])
    start, end = (first, last) if period is None else (_period_seconds(v, file) for v in period)
    t0, t1 = max(start, first), min(end, last)
    if not t0 < t1:
        asked = f"period [{period[0]}, {period[1]})" if period is not None else "the file's time span"
        raise GriddedError(f"{file}: {asked} holds no time to observe; its time steps run from "
                           f"{_iso(first)} to {_iso(last)} ({len(seconds)} step(s))")
    return t0, t1


def _duration(seconds: float) -> str:
    return f"{seconds / 86400:g} days" if seconds >= 2 * 86400 else f"{seconds / 3600:g} h"


def time_step_warning(seconds: np.ndarray, file: str) -> str | None:
    """A warning line when the file's time steps (seconds since 1970, (nt,)) are longer than
    6 h: observations between steps are interpolated, so they lack sub-step variability."""
    step = np.diff(np.asarray(seconds, np.float64))
    if len(step) == 0 or step.max() <= COARSE_STEP_S:
        return None
    size = f"time step {_duration(step[0])}" if np.all(step == step[0]) else \
        f"time steps {_duration(step.min())} to {_duration(step.max())}"
    return (f"warning: {file}: {size}, longer than 6 h: observations between steps are interpolated linearly "
            "in time, and variability within a step (the diurnal cycle) is absent from them")


def regrid_nearest(values: np.ndarray, src_lat: np.ndarray, src_lon: np.ndarray, dst_lat: np.ndarray,
                   dst_lon: np.ndarray) -> np.ndarray:
    """A static field (nlat_src, nlon_src) on another grid (nlat_dst, nlon_dst): each target
    point takes the source point nearest to it in latitude and, around the circle, in
    longitude (degrees). Nearest neighbour keeps a land-sea mask a mask."""
    j = np.argmin(np.abs(np.asarray(dst_lat)[:, None] - np.asarray(src_lat)[None, :]), axis=1)
    dlon = np.abs(np.mod(np.asarray(dst_lon)[:, None] - np.asarray(src_lon)[None, :] + 180.0, 360.0) - 180.0)
    return np.asarray(values)[np.ix_(j, np.argmin(dlon, axis=1))]


def with_land_sea_mask(truth: xr.Dataset, statics: dict[str, np.ndarray]) -> xr.Dataset:
    """``truth`` with the ``land_sea_mask`` of ``statics`` (the layout of
    :func:`earthgraph.data.store_statics.store_statics`) regridded onto its grid by nearest neighbour."""
    mask = regrid_nearest(statics["land_sea_mask"], statics["latitude"], statics["longitude"],
                          truth.latitude.values, truth.longitude.values)
    return truth.assign(land_sea_mask=(("latitude", "longitude"), mask.astype(np.float32),
                                       {"units": "1", "comment": "nearest neighbour from the static fields"}))
