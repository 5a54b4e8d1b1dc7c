"""The nature run's atmospheric dynamics: forced-dissipative barotropic vorticity on the sphere.

    d(zeta)/dt = -div(v q) + (zeta_jet - zeta) / tau_jet - nu (-laplacian)^4 zeta,
    q = zeta + f (1 + h / H)

``zeta`` is relative vorticity, ``v`` the non-divergent wind of streamfunction
``psi`` (``laplacian psi = zeta``), ``f`` the Coriolis parameter and ``h`` the
orography seen by a column of scale height ``H``. The flow is relaxed towards
seasonal mid-latitude jets; jets that are barotropically unstable, and flow over
mountains, make it chaotic with weather-like error-doubling times of a few
days. Hyperdiffusion removes the enstrophy that cascades to the truncation.

The model is spectral (``spherical_harmonics``), stepped with classic RK4 with
the hyperdiffusion applied exactly. It hands the rest of the nature run the
streamfunction at the corners of the lat-lon tracer grid, from which the
tracer fluxes are exactly non-divergent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from earthgraph.data.grid import EARTH_RADIUS, LatLonGrid
from earthgraph.data.spherical_harmonics import (
    GaussianGrid,
    legendre_derivative_table,
    legendre_table,
    synthesis_table,
)

OMEGA = 7.292e-5  # s-1, Earth's rotation rate
# Largest Courant number (see BarotropicModel.courant_number) of one RK4 step; the
# spin-up's strongest winds reach about 6 at dt = 1 h, and seeds blew up above 5.8.
COURANT_LIMIT = 4.0


@dataclass(frozen=True)
class JetForcing:
    """Zonal jets the flow is relaxed towards, one per hemisphere.

    The winter jet is stronger and nearer the equator, as on Earth; ``season``
    is +1 at the June solstice and -1 at the December solstice.
    """

    speed_m_per_s: float = 40.0
    latitude_deg: float = 40.0
    width_deg: float = 9.0
    seasonal_speed_fraction: float = 0.3
    seasonal_shift_deg: float = 6.0

    def zonal_wind(self, lat: np.ndarray, season: float) -> np.ndarray:
        """Eastward wind of the jets, m s-1, at latitudes ``lat`` (radians)."""
        deg = np.degrees(lat)
        north = self.speed_m_per_s * (1 - self.seasonal_speed_fraction * season)
        south = self.speed_m_per_s * (1 + self.seasonal_speed_fraction * season)
        lat_n = self.latitude_deg + self.seasonal_shift_deg * season
        lat_s = -self.latitude_deg + self.seasonal_shift_deg * season
        return (north * np.exp(-(((deg - lat_n) / self.width_deg) ** 2))
                + south * np.exp(-(((deg - lat_s) / self.width_deg) ** 2)))


@dataclass(frozen=True)
class BarotropicModel:
    """Spectral barotropic vorticity model coupled to a lat-lon tracer grid.

    gaussian: the spectral model's own grid and truncation.
    tracers: the lat-lon grid whose cell corners receive the streamfunction.
    orography_m: (gaussian.nlat, gaussian.nlon) surface height on the Gaussian grid, m.
    """

    gaussian: GaussianGrid
    tracers: LatLonGrid
    orography_m: np.ndarray
    jets: JetForcing = JetForcing()
    scale_height_m: float = 10_000.0
    relaxation_days: float = 12.0
    diffusion_hours: float = 3.0  # e-folding time of the smallest resolved scale

    @cached_property
    def coriolis(self) -> np.ndarray:
        """(nlat, 1) Coriolis parameter on the Gaussian grid, s-1."""
        return (2 * OMEGA * self.gaussian.mu)[:, None]

    @cached_property
    def background_q(self) -> np.ndarray:
        """(nlat, nlon) planetary plus topographic vorticity ``f (1 + h/H)``, s-1."""
        return self.coriolis * (1.0 + self.orography_m / self.scale_height_m)

    @cached_property
    def inverse_laplacian(self) -> np.ndarray:
        eig = self.gaussian.laplacian_eigenvalues(EARTH_RADIUS)
        inv = np.zeros_like(eig)
        inv[eig != 0] = 1.0 / eig[eig != 0]
        return inv * self.gaussian.valid

    def diffusion_factor(self, dt: float) -> np.ndarray:
        """(T+1, T+1) exact damping of one step by hyperdiffusion of order 8."""
        t = self.gaussian.truncation
        l = self.gaussian.degree
        rate = (l * (l + 1) / (t * (t + 1.0))) ** 4 / (self.diffusion_hours * 3600.0)
        return np.exp(-rate * dt) * self.gaussian.valid

    def jet_vorticity(self, season: float) -> np.ndarray:
        """(T+1, T+1) spectral vorticity of the forcing jets."""
        g = self.gaussian
        u = self.jets.zonal_wind(g.lat, season)[:, None] * np.ones((1, g.nlon))
        cos_lat = np.sqrt(1 - g.mu**2)[:, None]
        return g.vorticity(u * cos_lat, np.zeros_like(u), EARTH_RADIUS)

    def streamfunction(self, zeta: np.ndarray) -> np.ndarray:
        return zeta * self.inverse_laplacian

    def tendency(self, zeta: np.ndarray, zeta_jet: np.ndarray) -> np.ndarray:
        """d(zeta)/dt without hyperdiffusion, (T+1, T+1) spectral, s-2."""
        g = self.gaussian
        u_cos, v_cos = g.winds_from_streamfunction(self.streamfunction(zeta), EARTH_RADIUS)
        q = g.synthesise(zeta) + self.background_q
        advection = g.divergence(u_cos * q, v_cos * q, EARTH_RADIUS)
        return -advection + (zeta_jet - zeta) / (self.relaxation_days * 86400.0)

    def courant_number(self, zeta: np.ndarray, dt: float) -> float:
        """``max|v| dt sqrt(T (T+1)) / a``: the largest advective frequency the truncation
        resolves, times ``dt`` (classic RK4 is stable for it up to about 2.8 on a pure
        advection mode; the flow's winds are not uniform, so the usable limit is higher)."""
        g = self.gaussian
        u_cos, v_cos = g.winds_from_streamfunction(self.streamfunction(zeta), EARTH_RADIUS)
        cos_lat = np.sqrt(1 - g.mu**2)[:, None]
        speed = float((np.sqrt(u_cos**2 + v_cos**2) / cos_lat).max(initial=0.0))
        return speed * dt * math.sqrt(g.truncation * (g.truncation + 1)) / EARTH_RADIUS

    def step(self, zeta: np.ndarray, zeta_jet: np.ndarray, dt: float) -> np.ndarray:
        """Advance ``dt`` seconds: RK4 steps, then exact hyperdiffusion, sub-stepped so that
        each sub-step's Courant number is at most ``COURANT_LIMIT``. Without sub-steps the
        strong winds of a spin-up blow the model up for some seeds (4 and 5 among 0-7, at
        dt = 1 h); with them every seed tried runs."""
        courant = self.courant_number(zeta, dt)
        if not math.isfinite(courant):
            raise FloatingPointError("vorticity model: the flow is not finite (it blew up before this step)")
        n = max(1, math.ceil(courant / COURANT_LIMIT))
        for _ in range(n):
            zeta = self._rk4_step(zeta, zeta_jet, dt / n)
        return zeta

    def _rk4_step(self, zeta: np.ndarray, zeta_jet: np.ndarray, dt: float) -> np.ndarray:
        """One RK4 step of ``dt`` seconds, then exact hyperdiffusion."""
        k1 = self.tendency(zeta, zeta_jet)
        k2 = self.tendency(zeta + 0.5 * dt * k1, zeta_jet)
        k3 = self.tendency(zeta + 0.5 * dt * k2, zeta_jet)
        k4 = self.tendency(zeta + dt * k3, zeta_jet)
        zeta = zeta + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        zeta[0, 0] = 0.0  # the global mean of vorticity is zero on a sphere
        return zeta * self.diffusion_factor(dt)

    @cached_property
    def _corner_legendre(self) -> np.ndarray:
        return synthesis_table(legendre_table(np.sin(self.tracers.lat_edges), self.gaussian.truncation))

    def corner_streamfunction(self, zeta: np.ndarray) -> np.ndarray:
        """(nlat+1, nlon) streamfunction at the tracer grid's cell corners, m2 s-1.

        Corners sit at latitude edges and at the east edge of each column; the
        pole rows are made exactly constant so that nothing flows through a pole.
        """
        grid = self.tracers
        psi = self.gaussian.synthesise_on(self.streamfunction(zeta), self._corner_legendre, grid.nlon,
                                          lon_shift=grid.dlon / 2)
        psi[0, :] = psi[0].mean()
        psi[-1, :] = psi[-1].mean()
        return psi

    def grid_winds(self, zeta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(nlat, nlon) eastward and northward wind at the tracer grid's cell centres, m s-1."""
        grid = self.tracers
        psi = self.streamfunction(zeta)
        p_table, h_table = self._centre_tables
        cos_lat = np.cos(grid.lat)[:, None]
        u = -self.gaussian.synthesise_on(psi, h_table, grid.nlon) / (EARTH_RADIUS * cos_lat)
        v = self.gaussian.synthesise_on(1j * self.gaussian.order * psi, p_table, grid.nlon) / (EARTH_RADIUS * cos_lat)
        return u, v

    @cached_property
    def _centre_tables(self) -> tuple[np.ndarray, np.ndarray]:
        mu = np.sin(self.tracers.lat)
        t = self.gaussian.truncation
        return synthesis_table(legendre_table(mu, t)), synthesis_table(legendre_derivative_table(mu, t))


def spin_up_noise(model: BarotropicModel, seed: int, amplitude: float) -> np.ndarray:
    """Seeded small-scale vorticity noise (s-1 rms on the grid) that breaks the jets' symmetry."""
    rng = np.random.default_rng(seed + 31337)
    g = model.gaussian
    field = rng.standard_normal((g.nlat, g.nlon))
    return scaled_to_grid_rms(g, g.analyse(field), amplitude)


def grid_rms(gaussian: GaussianGrid, coeffs: np.ndarray) -> float:
    """Root-mean-square over the Gaussian grid's points of the field with spectral ``coeffs``."""
    return math.sqrt(float(np.mean(gaussian.synthesise(coeffs) ** 2)))


def scaled_to_grid_rms(gaussian: GaussianGrid, coeffs: np.ndarray, rms: float) -> np.ndarray:
    """``coeffs`` rescaled so that their field's grid RMS is ``rms``."""
    return coeffs * (rms / grid_rms(gaussian, coeffs))
