"""A prescribed, non-chaotic air flow: solid-body westerlies plus travelling planetary waves.

The nature run's first atmosphere, kept as ``NatureRunConfig.atmosphere = "waves"``:
its weather is a smooth function of time, which small CPU models learn in minutes.
The default atmosphere is the chaotic vorticity model (``vorticity``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from earthgraph.data.grid import EARTH_RADIUS, LatLonGrid

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class TravellingWaves:
    """Westerlies of ``westerly`` m s-1 at the equator plus seeded waves peaking at 45 degrees."""

    westerly: float
    m: np.ndarray  # zonal wavenumbers
    amplitude: np.ndarray  # streamfunction amplitude, m2 s-1
    omega: np.ndarray  # rad s-1
    phase: np.ndarray
    modulation_freq: np.ndarray  # rad s-1 of the amplitude modulation
    modulation_phase: np.ndarray

    @classmethod
    def from_seed(cls, seed: int, westerly_m_per_s: float = 12.0, n_waves: int = 5,
                  wave_speed_m_per_s: float = 9.0) -> "TravellingWaves":
        rng = np.random.default_rng(seed)
        m = rng.integers(2, 7, size=n_waves).astype(float)
        # Amplitude so that the meridional wind peaks near ``wave_speed_m_per_s``.
        amplitude = wave_speed_m_per_s * EARTH_RADIUS / m * rng.uniform(0.6, 1.0, size=n_waves)
        deg_per_day = rng.uniform(-4.0, 10.0, size=n_waves)  # phase speed relative to the ground
        return cls(
            westerly=westerly_m_per_s, m=m, amplitude=amplitude,
            omega=m * np.radians(deg_per_day) / SECONDS_PER_DAY,
            phase=rng.uniform(0, 2 * np.pi, size=n_waves),
            modulation_freq=2 * np.pi / (rng.uniform(4.0, 12.0, size=n_waves) * SECONDS_PER_DAY),
            modulation_phase=rng.uniform(0, 2 * np.pi, size=n_waves),
        )

    def corner_streamfunction(self, grid: LatLonGrid, seconds: float) -> np.ndarray:
        """(nlat+1, nlon) streamfunction at the grid's cell corners at time ``seconds``, m2 s-1."""
        lat_c = grid.lat_edges[:, None]
        lon_c = (grid.lon + grid.dlon / 2)[None, :]
        psi = -self.westerly * EARTH_RADIUS * np.sin(lat_c) * np.ones_like(lon_c)
        envelope = np.cos(lat_c) ** 2 * np.sin(lat_c) ** 2 * 4.0
        for m, a, w, p, mf, mp in zip(self.m, self.amplitude, self.omega, self.phase,
                                      self.modulation_freq, self.modulation_phase):
            amp = a * (0.65 + 0.35 * math.sin(mf * seconds + mp))
            psi = psi + amp * envelope * np.cos(m * lon_c - w * seconds + p)
        psi[0, :] = psi[0, 0]
        psi[-1, :] = psi[-1, 0]
        return psi


def centre_winds(grid: LatLonGrid, psi_corner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nlat, nlon) eastward and northward wind at cell centres (m s-1) from a corner streamfunction.

    Face-mean winds from the face fluxes, averaged over each cell's two opposite faces.
    """
    u_face = -(psi_corner[1:, :] - psi_corner[:-1, :]) / (EARTH_RADIUS * grid.dlat)  # east faces
    u = 0.5 * (u_face + np.roll(u_face, 1, axis=1))
    dpsi = psi_corner - np.roll(psi_corner, 1, axis=1)  # along latitude edges, per column
    edge = 0.5 * (dpsi[1:] + dpsi[:-1])
    v = edge / (EARTH_RADIUS * np.cos(grid.lat)[:, None] * grid.dlon)
    return u, v
