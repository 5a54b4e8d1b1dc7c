"""Static fields for an observation store, from a ``--statics`` choice: the synthetic
planet, the real one (climt's files, :mod:`earthgraph.data.statics`), or a user's
gridded file (read by :mod:`earthgraph.data.gridded`).

Kept apart from :mod:`earthgraph.data.statics`, which the nature run builds on:
the gridded reader names its variables after the nature run's, so reading a
user's file sits above both.
"""

from __future__ import annotations

import numpy as np

from earthgraph.data.grid import LatLonGrid
from earthgraph.data.gridded import GriddedError, open_gridded
from earthgraph.data.statics import (GRAVITY, StaticsError, fetch_climt_statics, find_climt_data, read_climt_statics,
                                     synthetic_statics)

STORE_STATICS_GRID = LatLonGrid(90, 180)
"""The grid of a store's static fields from ``climt`` or ``synthetic``: 2 degrees, climt's own."""
_OROGRAPHY_NAMES = ("geopotential_at_surface", "geopotential", "orography", "surface_altitude", "elevation")


def store_statics(source: str, seed: int = 0) -> dict[str, np.ndarray] | None:
    """Static fields to write into an observation store, from a ``--statics`` choice.

    source: ``"none"`` (no static fields: returns None), ``"synthetic"`` (the
        synthetic planet), ``"climt"`` (the real 2-degree land-sea mask and
        orography, fetched from PyPI when not yet on this machine), or the path
        or URL of a user's gridded file (zarr, netCDF) holding ``land_sea_mask``
        (ERA5's ``lsm``) and, optionally, ``geopotential_at_surface`` (m2 s-2;
        also taken as ``geopotential`` without levels, or as ``orography``,
        ``surface_altitude`` or ``elevation`` in m).

    Returns ``{"latitude": (nlat,), "longitude": (nlon,) degrees, "land_sea_mask":
    (nlat, nlon) land fraction in [0, 1], "geopotential_at_surface": (nlat, nlon)
    m2 s-2}``, the layout :meth:`~earthgraph.data.store_writer.StoreWriter.add_static` takes.
    """
    if source == "none":
        return None
    if source in ("synthetic", "climt"):
        grid = STORE_STATICS_GRID
        planet = (synthetic_statics(grid, 0.3, seed) if source == "synthetic"
                  else read_climt_statics(grid, find_climt_data() or fetch_climt_statics()))
        return {"latitude": grid.lat_deg, "longitude": grid.lon_deg,
                "land_sea_mask": planet.land.astype(np.float32),
                "geopotential_at_surface": (planet.orography_m * GRAVITY).astype(np.float32)}
    return _statics_from_file(source)


def _statics_from_file(path: str) -> dict[str, np.ndarray]:
    """A user's land-sea mask and orography (first time step, if they have one)."""
    ds = open_gridded(path)
    if "land_sea_mask" not in ds:
        raise StaticsError(f"{path}: no land_sea_mask variable (nor ERA5's lsm) for --statics; "
                           f"it has {sorted(map(str, ds.data_vars))}")

    def field(name: str) -> np.ndarray:
        da = ds[name]
        extra = [d for d in da.dims if d not in ("time", "latitude", "longitude")]
        if extra:
            raise GriddedError(f"{path}, variable {name!r}: dims {list(da.dims)}; a static field has only "
                               "latitude and longitude (and at most a time, of which the first is used)")
        if "time" in da.dims:
            da = da.isel(time=0)
        values = da.transpose("latitude", "longitude").values.astype(np.float64)
        if not np.all(np.isfinite(values)):
            bad = np.argwhere(~np.isfinite(values))[0]
            raise GriddedError(f"{path}, variable {name!r}: non-finite value at latitude "
                               f"{float(ds.latitude[bad[0]])}, longitude {float(ds.longitude[bad[1]])}")
        return values

    mask = field("land_sea_mask")
    if mask.min() < 0.0 or mask.max() > 1.0:
        raise GriddedError(f"{path}, variable 'land_sea_mask': values span {mask.min():g} .. {mask.max():g}; "
                           "a land fraction lies in [0, 1]")
    out = {"latitude": ds.latitude.values.astype(np.float64), "longitude": ds.longitude.values.astype(np.float64),
           "land_sea_mask": mask.astype(np.float32)}
    found = next((n for n in _OROGRAPHY_NAMES if n in ds), None)
    if found is not None:
        height = field(found)
        geopotential = height if found.startswith("geopotential") else height * GRAVITY
        out["geopotential_at_surface"] = geopotential.astype(np.float32)
    return out
