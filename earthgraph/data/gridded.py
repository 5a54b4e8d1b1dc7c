"""Gridded fields from users' files (WeatherBench2/ERA5 zarr, CF netCDF) in earthgraph's layout.

:func:`open_gridded` returns a dataset with dimensions ``(time, [level,]
latitude, longitude)``, latitude ascending in degrees, longitude in [0, 360),
and variables renamed from ERA5 short names or WB2 long names to earthgraph's
names where they mean the same quantity (:data:`ERA5_NAMES`), converted to
earthgraph's units. Such a dataset can serve as gridded truth for scoring, or
be sampled into observations by the observing systems like the nature run.

Problems get a :class:`GriddedError` naming the file and the field: a file
that cannot be opened, missing coordinates, latitudes outside [-90, 90],
non-finite coordinates, an unknown requested variable, units that cannot be
converted.
"""

from __future__ import annotations

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


def _standard_coords(ds: xr.Dataset, file: str) -> xr.Dataset:
    renames = {}
    for std, names in _COORD_NAMES.items():
        found = [n for n in names if n in ds.dims or n in ds.coords]
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


def _convert(da: xr.DataArray, to_units: str, file: str, name: str) -> xr.DataArray:
    # A variable without a units attribute is taken to be in earthgraph's units already.
    try:
        out = convert_units(da, str(da.attrs.get("units", to_units)).strip(), to_units, f"{file}, variable {name!r}")
    except UnitsError as e:
        raise GriddedError(str(e)) from e
    return out.assign_attrs(da.attrs).assign_attrs(units=to_units)


def open_gridded(path: str | os.PathLike, variables: list[str] | None = None) -> xr.Dataset:
    """Open a WB2/ERA5-style zarr store or CF netCDF file in earthgraph's layout.

    ``variables``: earthgraph (or original) names to keep; default every data
    variable. Variables with an earthgraph name are converted to its units
    (for example SST in degC to K, snow depth in m of water to kg m-2).
    """
    file = str(path)
    ds = _standard_coords(_open(path), file)
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
