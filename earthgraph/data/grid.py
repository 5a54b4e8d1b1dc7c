"""Regular latitude-longitude grids: cell centres, edges and areas.

The nature run and gridded products live on such a grid; the model's mesh is a
different one (HEALPix), so that the OSSE does not commit the inverse crime.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

EARTH_RADIUS = 6.371e6  # m


def regular_grid_degrees(spacing_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre latitudes (south to north, half a cell from the poles) and longitudes
    (from 0, east) of a regular ``spacing_deg`` grid, in degrees: (nlat,), (nlon,)."""
    return np.arange(-90 + spacing_deg / 2, 90, spacing_deg), np.arange(0, 360, spacing_deg)


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


def interval_overlaps(src_edges: np.ndarray, dst_edges: np.ndarray, period: float | None = None) -> np.ndarray:
    """(n_dst, n_src) lengths of the overlap of each destination and source interval.

    Edges are increasing, (n+1,). With ``period`` the axis is periodic (longitude):
    source intervals are also matched one period either side.
    """
    shifts = (0.0,) if period is None else (-period, 0.0, period)
    out = np.zeros((len(dst_edges) - 1, len(src_edges) - 1))
    for shift in shifts:
        lo = np.maximum(dst_edges[:-1, None], src_edges[None, :-1] + shift)
        hi = np.minimum(dst_edges[1:, None], src_edges[None, 1:] + shift)
        out += np.clip(hi - lo, 0.0, None)
    return out


def regrid_conservative(values: np.ndarray, src_lat_deg: np.ndarray, src_lon_deg: np.ndarray,
                        grid: LatLonGrid) -> np.ndarray:
    """Area-weighted mean of a global regular lat-lon field over each cell of ``grid``.

    values: (n_lat, n_lon) on cell centres ``src_lat_deg`` (ascending) and
        ``src_lon_deg`` (ascending, evenly spaced, covering 360 degrees).
    Returns (grid.nlat, grid.nlon). First-order conservative: the area integral
    is preserved, and a field of 0s and 1s becomes the covered fraction.
    """
    def edges(centres: np.ndarray) -> np.ndarray:
        mid = 0.5 * (centres[1:] + centres[:-1])
        return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])

    lat_e = np.radians(np.clip(edges(np.asarray(src_lat_deg, float)), -90.0, 90.0))
    lon_e = np.radians(edges(np.asarray(src_lon_deg, float)))
    w_lat = interval_overlaps(np.sin(lat_e), np.sin(grid.lat_edges))
    w_lon = interval_overlaps(lon_e, grid.lon_edges, period=2 * np.pi)
    total = w_lat @ np.asarray(values, float) @ w_lon.T
    return total / (w_lat.sum(axis=1)[:, None] * w_lon.sum(axis=1)[None, :])
