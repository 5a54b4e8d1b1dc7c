"""Regular latitude-longitude grids: cell centres, edges and areas.

The nature run and gridded products live on such a grid; the model's mesh is a
different one (HEALPix), so that the OSSE does not commit the inverse crime.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

EARTH_RADIUS = 6.371e6  # m


@dataclass(frozen=True)
class LatLonGrid:
    """Equiangular grid with cell centres offset half a cell from the poles.

    Latitudes run south to north (as WeatherBench2's 'with poles excluded'
    grids do when sorted ascending); longitudes start at 0 and run east.
    """

    nlat: int
    nlon: int

    def __post_init__(self):
        if self.nlat < 2 or self.nlon < 4:
            raise ValueError(f"LatLonGrid needs nlat >= 2 and nlon >= 4, got {self.nlat}x{self.nlon}")

    @cached_property
    def lat_edges(self) -> np.ndarray:
        """(nlat+1,) latitude of cell edges, radians, from -pi/2 to pi/2."""
        return np.linspace(-np.pi / 2, np.pi / 2, self.nlat + 1)

    @cached_property
    def lon_edges(self) -> np.ndarray:
        """(nlon+1,) longitude of cell edges, radians, from -dlon/2."""
        dlon = 2 * np.pi / self.nlon
        return np.arange(self.nlon + 1) * dlon - dlon / 2

    @cached_property
    def lat(self) -> np.ndarray:
        """(nlat,) cell-centre latitude, radians."""
        return 0.5 * (self.lat_edges[1:] + self.lat_edges[:-1])

    @cached_property
    def lon(self) -> np.ndarray:
        """(nlon,) cell-centre longitude, radians, in [0, 2*pi)."""
        return np.arange(self.nlon) * (2 * np.pi / self.nlon)

    @property
    def lat_deg(self) -> np.ndarray:
        return np.degrees(self.lat)

    @property
    def lon_deg(self) -> np.ndarray:
        return np.degrees(self.lon)

    @cached_property
    def area(self) -> np.ndarray:
        """(nlat, nlon) cell areas in m^2; they sum to 4*pi*R^2."""
        band = np.diff(np.sin(self.lat_edges)) * (2 * np.pi / self.nlon)
        return np.repeat(band[:, None], self.nlon, axis=1) * EARTH_RADIUS**2

    @property
    def dlat(self) -> float:
        return np.pi / self.nlat

    @property
    def dlon(self) -> float:
        return 2 * np.pi / self.nlon

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """(nlat, nlon) latitude and longitude of cell centres, radians."""
        return np.meshgrid(self.lat, self.lon, indexing="ij")

    def cell_index(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of the cells containing points (radians)."""
        j = np.clip(((lat + np.pi / 2) / self.dlat).astype(np.int64), 0, self.nlat - 1)
        i = np.floor((np.mod(lon + self.dlon / 2, 2 * np.pi)) / self.dlon).astype(np.int64) % self.nlon
        return j, i
