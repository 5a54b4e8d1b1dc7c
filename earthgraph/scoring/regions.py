"""Regions to score over: WeatherBench2's boxes plus land, ocean and sea-ice masks.

A region is a factor on the area weights, over the spatial dims: 1 inside, 0
outside (a fraction for fractional masks). Scoring a region is then the
weighted mean with ``area_weights * region``; on a lat-lon grid this gives the
same numbers as WB2's selection by latitude and longitude slices (bounds
inclusive), and it works unchanged on HEALPix cells and on observation points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from earthgraph.scoring.areas import point_coordinates, spatial_dims


@dataclass(frozen=True)
class Box:
    """A latitude band, optionally cut to longitude ranges, optionally with the band
    ``|lat| < min_abs_latitude`` removed (WB2's extra-tropics).

    latitude: (south, north) degrees, inclusive.
    longitudes: ((west, east), ...) degrees in [0, 360], inclusive; a range that
        crosses the meridian is given as two ranges. Empty: all longitudes.
    """

    name: str
    latitude: tuple[float, float] = (-90.0, 90.0)
    longitudes: tuple[tuple[float, float], ...] = ()
    min_abs_latitude: float = 0.0

    def contains(self, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
        """Boolean mask of the points (degrees; any longitude convention) inside."""
        lat = np.asarray(lat_deg, dtype=np.float64)
        lon = np.asarray(lon_deg, dtype=np.float64) % 360.0
        inside = (lat >= self.latitude[0]) & (lat <= self.latitude[1]) & (np.abs(lat) >= self.min_abs_latitude)
        if self.longitudes:
            inside &= np.any([(lon >= w) & (lon <= e) for w, e in self.longitudes], axis=0)
        return inside

    def weights(self, x: xr.DataArray | xr.Dataset) -> xr.DataArray:
        """0/1 factor over the spatial dims of ``x``."""
        lat, lon = point_coordinates(x)
        return xr.DataArray(self.contains(lat.values, lon.values).astype(np.float64), dims=lat.dims,
                            coords=lat.coords)


@dataclass(frozen=True)
class Mask:
    """A region given by a field over the spatial dims (land, ocean, sea ice), values
    in [0, 1]; fractional values weight points partly, as WB2's land region does."""

    name: str
    field: xr.DataArray

    def weights(self, x: xr.DataArray | xr.Dataset) -> xr.DataArray:
        dims = spatial_dims(x)
        if tuple(self.field.dims) != dims:
            raise ValueError(f"region {self.name!r}: its mask has dims {tuple(self.field.dims)}, the data {dims}")
        for d in dims:
            if d in self.field.coords and d in x.coords and not np.allclose(self.field[d].values, x[d].values):
                raise ValueError(f"region {self.name!r}: its mask's {d} coordinate differs from the data's")
        return self.field.astype(np.float64).drop_vars([c for c in self.field.coords if c not in dims])


Region = Box | Mask

# WeatherBench2's standard regions (weatherbench2/regions.py and its evaluation
# scripts); longitudes in [0, 360).
WB2_REGIONS: dict[str, Box] = {r.name: r for r in (
    Box("global"),
    Box("tropics", latitude=(-20.0, 20.0)),
    Box("extra-tropics", min_abs_latitude=20.0),
    Box("northern-hemisphere", latitude=(20.0, 90.0)),
    Box("southern-hemisphere", latitude=(-90.0, -20.0)),
    Box("europe", latitude=(35.0, 75.0), longitudes=((347.5, 360.0), (0.0, 42.5))),
    Box("north-america", latitude=(25.0, 60.0), longitudes=((240.0, 285.0),)),
    Box("north-atlantic", latitude=(25.0, 65.0), longitudes=((290.0, 350.0),)),
    Box("north-pacific", latitude=(25.0, 60.0), longitudes=((145.0, 230.0),)),
    Box("east-asia", latitude=(25.0, 60.0), longitudes=((102.5, 150.0),)),
    Box("ausnz", latitude=(-45.0, -12.5), longitudes=((120.0, 175.0),)),
    Box("arctic", latitude=(60.0, 90.0)),
    Box("antarctic", latitude=(-90.0, -60.0)),
)}

SEA_ICE_EDGE = 0.15  # the conventional ice-edge concentration


def surface_masks(truth: xr.Dataset, climatology_period: tuple[str, str] | None = None,
                  sea_ice_variable: str = "sea_ice_concentration") -> dict[str, Mask]:
    """Land, ocean and sea-ice regions from a truth dataset.

    land: ``land_sea_mask`` (fraction of land, as in ERA5); ocean: ``1 - land``;
    sea-ice: ocean points whose concentration reaches :data:`SEA_ICE_EDGE` at some
    time of ``climatology_period`` (all times if None): where ice can be, so
    that open-water seasons count too. Masks the truth cannot give are left out.
    """
    masks: dict[str, Mask] = {}
    if "land_sea_mask" in truth:
        land = truth["land_sea_mask"].clip(0.0, 1.0).astype(np.float64)
        if not np.all(np.isfinite(land.values)):
            raise ValueError("surface_masks: truth's land_sea_mask has non-finite values")
        masks["land"] = Mask("land", land)
        masks["ocean"] = Mask("ocean", 1.0 - land)
    if sea_ice_variable in truth and "time" in truth[sea_ice_variable].dims:
        ice = truth[sea_ice_variable]
        if climatology_period is not None:
            ice = ice.sel(time=slice(*climatology_period))
        ever = (ice.max("time", skipna=True) >= SEA_ICE_EDGE).astype(np.float64)
        masks["sea-ice"] = Mask("sea-ice", ever.drop_vars([c for c in ever.coords if c not in ever.dims]))
    return masks


def standard_regions(truth: xr.Dataset | None = None, climatology_period: tuple[str, str] | None = None,
                     names: list[str] | None = None) -> dict[str, Region]:
    """WB2's regions and, given a truth, its land/ocean/sea-ice masks; ``names``
    picks some (unknown names raise, listing the known ones)."""
    regions: dict[str, Region] = dict(WB2_REGIONS)
    if truth is not None:
        regions.update(surface_masks(truth, climatology_period))
    if names is None:
        return regions
    unknown = [n for n in names if n not in regions]
    if unknown:
        raise ValueError(f"unknown region(s) {unknown}; known: {sorted(regions)}")
    return {n: regions[n] for n in names}
