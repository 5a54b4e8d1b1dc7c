"""Gridded fields from users' files (WeatherBench2/ERA5 zarr, CF netCDF) in earthgraph's layout.

:func:`open_gridded` returns a dataset with dimensions ``(time, [level,]
latitude, longitude)``, latitude ascending in degrees, longitude in [0, 360),
and variables renamed from ERA5 short names or WB2 long names to earthgraph's
names where they mean the same quantity (:data:`ERA5_NAMES`), converted to
earthgraph's units. Such a dataset can serve as gridded truth for scoring, or
be sampled into observations by the observing systems like the nature run.

Opening stays lazy: zarr stores come dask-backed in their own chunks, and
netCDF variables are chunked along time (:data:`CHUNK_BYTES` per chunk), so
that a units conversion or a time slice reads only the steps asked for. The
observing systems stream such a dataset a chunk of time at a time
(:class:`earthgraph.data.sampler.TruthSampler`).

Problems get a :class:`GriddedError` naming the file and the field: a file
that cannot be opened, missing coordinates, latitudes outside [-90, 90],
non-finite coordinates, an unknown requested variable, units that cannot be
converted, a period outside the file.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from earthgraph.data.nature_run import VARIABLES
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


class GriddedError(ValueError):
    """A gridded file that cannot be used; the message names the file and the field."""


def _open(path: str | os.PathLike) -> xr.Dataset:
    p = str(path)
    if "://" not in p and not Path(p).exists():
        raise GriddedError(f"{p}: no such file or store")
    try:
        if p.rstrip("/").endswith(".zarr"):
            with warnings.catch_warnings():  # stores with and without consolidated metadata are both fine
                warnings.filterwarnings("ignore", message="Failed to open Zarr store with consolidated")
                return xr.open_zarr(p, consolidated=None)
        return xr.open_dataset(p)
    except Exception as e:  # the engines raise many types for damaged files
        raise GriddedError(f"{p}: cannot be opened as a gridded dataset: {type(e).__name__}: {e}") from e


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
    lat = ds["latitude"].values.astype(np.float64)
    lon = ds["longitude"].values.astype(np.float64)
    for name, values in (("latitude", lat), ("longitude", lon)):
        if not np.all(np.isfinite(values)):
            raise GriddedError(f"{file}: coordinate {name} has non-finite values")
    if np.abs(lat).max() > 90.0:
        raise GriddedError(f"{file}: coordinate latitude has value {lat[np.argmax(np.abs(lat))]} outside [-90, 90]")
    ds = ds.assign_coords(longitude=np.mod(lon, 360.0))
    ds = ds.sortby(["latitude", "longitude"])
    if "longitude" in ds.dims and len(np.unique(ds["longitude"].values)) != ds.sizes["longitude"]:
        raise GriddedError(f"{file}: coordinate longitude has duplicate values after wrapping to [0, 360)")
    return ds


def _chunk_in_time(ds: xr.Dataset) -> xr.Dataset:
    """Dask-chunk along time the variables that are only lazily indexed (netCDF): the first
    arithmetic on such a variable (a units conversion) would otherwise read all of it."""
    chunked = {}
    for name, da in ds.data_vars.items():
        if "time" in da.dims and da.chunks is None:
            step_bytes = da.dtype.itemsize * math.prod(n for d, n in da.sizes.items() if d != "time")
            chunked[name] = da.chunk({"time": max(1, CHUNK_BYTES // max(step_bytes, 1))})
    return ds.assign(chunked)


def _convert(da: xr.DataArray, to_units: str, file: str, name: str) -> xr.DataArray:
    # A variable without a units attribute is taken to be in earthgraph's units already.
    try:
        out = convert_units(da, str(da.attrs.get("units", to_units)).strip(), to_units, f"{file}, variable {name!r}")
    except UnitsError as e:
        raise GriddedError(str(e)) from e
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
    ds = _chunk_in_time(_standard_coords(ds.rename(rename or {}), file))
    renames = {v: ERA5_NAMES[v] for v in ds.data_vars if v in ERA5_NAMES and ERA5_NAMES[v] not in ds.data_vars}
    ds = ds.rename(renames)
    if variables is not None:
        missing = [v for v in variables if v not in ds.data_vars]
        if missing:
            raise GriddedError(f"{file}: unknown variable(s) {missing}; it has {sorted(map(str, ds.data_vars))}")
        ds = ds[variables]
    for name in list(ds.data_vars):
        if name in VARIABLES:
            ds[name] = _convert(ds[name], VARIABLES[name][1], file, name)
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
    :func:`earthgraph.data.statics.store_statics`) regridded onto its grid by nearest neighbour."""
    mask = regrid_nearest(statics["land_sea_mask"], statics["latitude"], statics["longitude"],
                          truth.latitude.values, truth.longitude.values)
    return truth.assign(land_sea_mask=(("latitude", "longitude"), mask.astype(np.float32),
                                       {"units": "1", "comment": "nearest neighbour from the static fields"}))
