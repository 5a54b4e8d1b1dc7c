"""The nature run: a coupled four-sphere toy Earth on a lat-lon grid.

It is the known truth of earthgraph's observing-system simulation experiment
(OSSE). Deliberately simple, but every sphere is coupled to the ones it
touches and the water budget is closed:

- atmosphere: air temperature and column water vapour, advected by a
  non-divergent flow (solid-body westerlies plus travelling planetary waves),
  relaxed to a seasonal radiative equilibrium and to the surface, with
  evaporation and condensation into precipitation (rain or snow);
- ocean: a mixed layer (SST) heated by the sun, exchanging heat with the air,
  advected by gyres, and a freshwater reservoir;
- land: a soil-water bucket with runoff to the ocean, land-surface
  temperature with a diurnal cycle, snow that accumulates and melts;
- cryosphere: sea-ice volume and concentration with freezing, melting and an
  ice-albedo feedback.

Water moves only between the components
``vapour + soil water + snow + sea ice + ocean freshwater``, so their global
integral stays constant up to rounding.

Units: K, kg m-2 (water), m (ice volume per area), W m-2, seconds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.data import solar
from earthgraph.data.advection import advect, face_fluxes
from earthgraph.data.grid import EARTH_RADIUS, LatLonGrid

T_MELT = 273.15  # K
T_FREEZE_SEA = 271.35  # K
LATENT_VAPOUR = 2.5e6  # J kg-1
LATENT_FUSION = 3.34e5  # J kg-1
RHO_ICE = 917.0  # kg m-3
AIR_COLUMN_HEAT_CAPACITY = 1.0e7  # J m-2 K-1 (cp * ps / g)
WATER_HEAT_CAPACITY = 4.2e6  # J m-3 K-1
SOIL_CAPACITY = 150.0  # kg m-2, bucket size
NEW_ICE_THICKNESS = 0.05  # m: frazil spreads over open water at this thickness

# Names of the gridded truth variables, with their sphere and units.
VARIABLES = {
    "air_temperature": ("atmosphere", "K"),
    "total_column_water_vapour": ("atmosphere", "kg m-2"),
    "sea_surface_temperature": ("ocean", "K"),
    "land_surface_temperature": ("land", "K"),
    "soil_moisture": ("land", "1"),
    "snow_water_equivalent": ("land", "kg m-2"),
    "sea_ice_concentration": ("cryosphere", "1"),
    "sea_ice_thickness": ("cryosphere", "m"),
}


@dataclass
class NatureRunConfig:
    """Settings of a nature run. Defaults give the quickstart's 32x64 grid."""

    nlat: int = 32
    nlon: int = 64
    start: str = "2020-01-01T00:00"
    days: float = 120.0
    dt_minutes: float = 60.0
    output_hours: float = 3.0
    spinup_days: float = 60.0
    seed: int = 0
    mixed_layer_depth_m: float = 2.5
    westerly_m_per_s: float = 12.0
    n_waves: int = 5
    wave_speed_m_per_s: float = 9.0
    ocean_current_m_per_s: float = 0.8
    land_fraction: float = 0.3
    ice_drift_fraction: float = 0.05
    # Kelvin: seeded noise added to the air temperature after spin-up, to measure
    # how fast two nearby trajectories separate (the error-doubling time).
    perturbation_K: float = 0.0
    # Truth variables are written as float32 (as WeatherBench2 stores them); float64
    # resolves differences far below a float32 step near 300 K (2e-5 K).
    output_dtype: str = "float32"

    def __post_init__(self):
        if self.days <= 0 or self.dt_minutes <= 0 or self.output_hours <= 0:
            raise ValueError(
                f"NatureRunConfig: days, dt_minutes and output_hours must be positive, got "
                f"{self.days}, {self.dt_minutes}, {self.output_hours}"
            )
        steps_per_output = self.output_hours * 60.0 / self.dt_minutes
        if abs(steps_per_output - round(steps_per_output)) > 1e-9:
            raise ValueError(
                f"NatureRunConfig: output_hours={self.output_hours} is not a multiple of "
                f"dt_minutes={self.dt_minutes}"
            )


@dataclass
class SurfaceState:
    """Prognostic fields, each (nlat, nlon) float64."""

    air_temperature: np.ndarray
    vapour: np.ndarray
    sst: np.ndarray
    lst: np.ndarray
    soil_water: np.ndarray
    snow: np.ndarray
    ice_volume: np.ndarray  # m of ice per unit cell area (the budget variable)
    ice_concentration: np.ndarray  # fraction of the cell covered; thickness = volume / concentration
    ocean_freshwater: np.ndarray

    def copy(self) -> "SurfaceState":
        return SurfaceState(**{k: v.copy() for k, v in self.__dict__.items()})


@dataclass
class Planet:
    """Static fields and the prescribed flows of one nature run."""

    grid: LatLonGrid
    land: np.ndarray  # (nlat, nlon) bool
    wave_m: np.ndarray  # zonal wavenumbers of the travelling waves
    wave_amp: np.ndarray  # streamfunction amplitude, m2 s-1
    wave_omega: np.ndarray  # rad s-1
    wave_phase: np.ndarray
    wave_mod_freq: np.ndarray  # amplitude modulation frequency, rad s-1
    wave_mod_phase: np.ndarray
    westerly: float
    ocean_current: float  # m s-1, peak speed of gyres and eddies
    ice_drift: float  # fraction of the air flow that moves sea ice
    coast_free_corner: np.ndarray = field(repr=False)  # (nlat+1, nlon) corners touching no land

    @property
    def ocean(self) -> np.ndarray:
        return ~self.land


def synthetic_land_mask(grid: LatLonGrid, land_fraction: float, seed: int) -> np.ndarray:
    """A deterministic Earth-like land mask: smooth random continents plus an
    Antarctic cap, with the Arctic kept as ocean so that sea ice can form.

    The real-mask reader (climt's 2-degree land mask) replaces this when the
    data issue lands; this fallback needs no file.
    """
    rng = np.random.default_rng(seed + 7919)
    lat, lon = grid.mesh()
    x = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    field_ = np.zeros_like(lat)
    for _ in range(24):
        k = rng.normal(size=3)
        k *= rng.uniform(1.0, 3.5) / np.linalg.norm(k)
        field_ += np.cos(np.tensordot(k, x, axes=1) + rng.uniform(0, 2 * np.pi)) / np.linalg.norm(k)
    band = np.abs(lat) < np.radians(70)
    threshold = np.quantile(field_[band], 1.0 - land_fraction)
    land = (field_ > threshold) & band
    land |= lat < np.radians(-68)
    return land


def make_planet(config: NatureRunConfig) -> Planet:
    grid = LatLonGrid(config.nlat, config.nlon)
    rng = np.random.default_rng(config.seed)
    land = synthetic_land_mask(grid, config.land_fraction, config.seed)
    n = config.n_waves
    wave_m = rng.integers(2, 7, size=n).astype(float)
    # Amplitude so that the meridional wind peaks near ``wave_speed_m_per_s``.
    wave_amp = config.wave_speed_m_per_s * EARTH_RADIUS / wave_m * rng.uniform(0.6, 1.0, size=n)
    deg_per_day = rng.uniform(-4.0, 10.0, size=n)  # phase speed relative to the ground
    wave_omega = wave_m * np.radians(deg_per_day) / solar.SECONDS_PER_DAY
    wave_phase = rng.uniform(0, 2 * np.pi, size=n)
    wave_mod_freq = 2 * np.pi / (rng.uniform(4.0, 12.0, size=n) * solar.SECONDS_PER_DAY)
    wave_mod_phase = rng.uniform(0, 2 * np.pi, size=n)

    # Corners whose four cells are all ocean: currents and ice drift vanish
    # elsewhere, so nothing crosses a coast.
    ocean_corner = np.ones((grid.nlat + 1, grid.nlon), dtype=bool)
    ocean_cell = ~land
    for dj in (-1, 0):
        for di in (0, 1):
            rows = np.clip(np.arange(grid.nlat + 1) + dj, 0, grid.nlat - 1)
            ocean_corner &= np.roll(ocean_cell[rows], -di, axis=1)
    return Planet(
        grid=grid, land=land, wave_m=wave_m, wave_amp=wave_amp, wave_omega=wave_omega,
        wave_phase=wave_phase, wave_mod_freq=wave_mod_freq, wave_mod_phase=wave_mod_phase,
        westerly=config.westerly_m_per_s, ocean_current=config.ocean_current_m_per_s,
        ice_drift=config.ice_drift_fraction, coast_free_corner=ocean_corner,
    )


def atmosphere_streamfunction(planet: Planet, seconds: float) -> np.ndarray:
    """(nlat+1, nlon) corner streamfunction of the air flow at time ``seconds``, m2 s-1."""
    grid = planet.grid
    lat_c = grid.lat_edges[:, None]
    lon_c = (grid.lon + grid.dlon / 2)[None, :]
    psi = -planet.westerly * EARTH_RADIUS * np.sin(lat_c) * np.ones_like(lon_c)
    for m, a, w, p, mf, mp in zip(
        planet.wave_m, planet.wave_amp, planet.wave_omega, planet.wave_phase,
        planet.wave_mod_freq, planet.wave_mod_phase,
    ):
        envelope = np.cos(lat_c) ** 2 * np.sin(lat_c) ** 2 * 4.0  # peaks at 45 degrees
        amplitude = a * (0.65 + 0.35 * math.sin(mf * seconds + mp))
        psi = psi + amplitude * envelope * np.cos(m * lon_c - w * seconds + p)
    psi[0, :] = psi[0, 0]
    psi[-1, :] = psi[-1, 0]
    return psi


def ocean_streamfunction(planet: Planet, seconds: float) -> np.ndarray:
    """(nlat+1, nlon) corner streamfunction of the ocean currents, m2 s-1.

    Gyres plus a westward-drifting eddy pattern; zero on every corner that
    touches land, so nothing crosses a coast.
    """
    grid = planet.grid
    lat_c = grid.lat_edges[:, None]
    lon_c = (grid.lon + grid.dlon / 2)[None, :]
    amp = planet.ocean_current * EARTH_RADIUS / 3.0
    psi = amp * np.cos(lat_c) ** 2 * np.sin(3 * lat_c) * np.ones_like(lon_c)
    drift = 2 * np.pi / (40 * solar.SECONDS_PER_DAY)  # eddies circle the globe in 40 days
    psi = psi + amp * np.cos(lat_c) ** 3 * np.cos(5 * (lon_c + drift * seconds)) * np.cos(2 * lat_c)
    return np.where(planet.coast_free_corner, psi, 0.0)


def ice_streamfunction(planet: Planet, seconds: float) -> np.ndarray:
    """Sea ice drifts with a fraction of the wind, never across a coast."""
    psi = planet.ice_drift * atmosphere_streamfunction(planet, seconds)
    psi = psi - psi[0, 0]
    return np.where(planet.coast_free_corner, psi, 0.0)


def saturation_vapour(temperature: np.ndarray) -> np.ndarray:
    """Column water vapour at saturation (kg m-2), Clausius-Clapeyron-like."""
    return 12.0 * np.exp(0.065 * (temperature - T_MELT))


def season(seconds) -> float:
    """+1 at the June solstice, -1 at the December solstice."""
    return solar.declination(seconds) / solar.OBLIQUITY


def air_equilibrium(lat: np.ndarray, seconds: float) -> np.ndarray:
    """Seasonal equilibrium air temperature (K) that the air relaxes towards."""
    return 300.0 - 48.0 * np.sin(lat) ** 2 + 14.0 * season(seconds) * np.sin(lat)


def ocean_equilibrium(lat: np.ndarray, seconds: float) -> np.ndarray:
    """Seasonal equilibrium of the deep ocean under the mixed layer (K)."""
    return 302.0 - 36.0 * np.sin(lat) ** 2 + 4.0 * season(seconds) * np.sin(lat)


def initial_state(planet: Planet, seconds: float) -> SurfaceState:
    grid = planet.grid
    lat, _ = grid.mesh()
    t_air = air_equilibrium(lat, seconds)
    sst = np.maximum(ocean_equilibrium(lat, seconds), T_FREEZE_SEA)
    return SurfaceState(
        air_temperature=t_air,
        vapour=0.6 * saturation_vapour(t_air),
        sst=np.where(planet.land, T_FREEZE_SEA, sst),
        lst=t_air.copy(),
        soil_water=np.where(planet.land, 0.5 * SOIL_CAPACITY, 0.0),
        snow=np.zeros_like(t_air),
        ice_volume=np.where(planet.land | (np.abs(lat) < np.radians(65)), 0.0, 0.5),
        ice_concentration=np.where(planet.land | (np.abs(lat) < np.radians(65)), 0.0, 0.9),
        ocean_freshwater=np.zeros_like(t_air),
    )


def water_total(planet: Planet, s: SurfaceState) -> float:
    """Global water of the closed budget, kg (ocean freshwater as an anomaly)."""
    per_area = s.vapour + s.soil_water + s.snow + RHO_ICE * s.ice_volume + s.ocean_freshwater
    return float(np.sum(per_area * planet.grid.area))


def step(planet: Planet, s: SurfaceState, seconds: float, dt: float, mixed_layer_depth: float) -> SurfaceState:
    """Advance the coupled state by ``dt`` seconds (explicit, operator split).

    Surface temperatures relax towards the air and follow the diurnal cycle of
    insolation; the air relaxes towards a seasonal equilibrium (as in
    Held-Suarez) and towards the surface. Weather comes from the advection of
    these gradients by the travelling waves.
    """
    grid = planet.grid
    land, ocean = planet.land, planet.ocean
    lat, lon = grid.mesh()
    s = s.copy()

    # --- transport -------------------------------------------------------
    fx, fy = face_fluxes(atmosphere_streamfunction(planet, seconds))
    s.air_temperature = advect(grid, s.air_temperature, fx, fy, dt)
    s.vapour = advect(grid, s.vapour, fx, fy, dt)
    ofx, ofy = face_fluxes(ocean_streamfunction(planet, seconds))
    s.sst = advect(grid, s.sst, ofx, ofy, dt)
    ifx, ify = face_fluxes(ice_streamfunction(planet, seconds))
    s.ice_volume = advect(grid, s.ice_volume, ifx, ify, dt)
    s.ice_concentration = np.minimum(advect(grid, s.ice_concentration, ifx, ify, dt), 1.0)

    # --- surface temperatures ----------------------------------------------
    # Only the departure of insolation from its daily mean heats the surface
    # directly (the diurnal cycle); the daily mean acts through the air's
    # seasonal equilibrium.
    diurnal = 0.5 * (solar.insolation(lat, lon, seconds) - solar.daily_mean_insolation(lat, seconds))
    t_air = s.air_temperature
    conc = np.where(ocean, s.ice_concentration, 0.0)
    c_ocean = WATER_HEAT_CAPACITY * mixed_layer_depth
    c_land = 3.0e5  # J m-2 K-1, a thin soil layer
    exchange = 20.0  # W m-2 K-1, surface-air sensible exchange
    snow_cover = np.minimum(1.0, s.snow / 20.0)

    lst_flux = (1 - 0.6 * snow_cover) * diurnal - exchange * (s.lst - t_air) - 15.0 * snow_cover
    s.lst = np.where(land, s.lst + dt * lst_flux / c_land, t_air)

    # Open water absorbs sunlight that ice would reflect: the ice-albedo feedback.
    absorbed = (1 - conc) * 0.94 * 0.5 * solar.daily_mean_insolation(lat, seconds) * 0.15
    sst_flux = (
        diurnal - exchange * (s.sst - t_air) + absorbed
        + c_ocean * (ocean_equilibrium(lat, seconds) - s.sst) / (30 * 86400.0)
    )
    sst_new = s.sst + dt * sst_flux / c_ocean

    # --- sea ice: frazil on open water, growth in cold air, melt in warm air and
    # warm water. Frazil spreads as thin new ice (raising concentration); melt
    # removes thickness and area alike (lateral melt); growth thickens in place.
    frazil = np.maximum(T_FREEZE_SEA - sst_new, 0.0) * c_ocean / (RHO_ICE * LATENT_FUSION) * (1 - conc)
    sst_new = np.maximum(sst_new, T_FREEZE_SEA)
    has_ice = s.ice_volume > 0
    growth = 0.006 / 86400.0 * np.maximum(T_FREEZE_SEA - t_air, 0.0) / (1.0 + s.ice_volume)
    surface_melt = 0.02 / 86400.0 * np.maximum(t_air - T_MELT, 0.0)
    bottom_heat = np.where(has_ice, (sst_new - T_FREEZE_SEA) * c_ocean * min(1.0, dt / 86400.0), 0.0)
    sst_new = sst_new - bottom_heat / c_ocean
    melt = np.where(has_ice, surface_melt * dt * conc + bottom_heat / (RHO_ICE * LATENT_FUSION), 0.0)
    melt = np.minimum(melt, s.ice_volume)
    d_ice = np.where(ocean, frazil + np.where(has_ice, growth * dt * conc, 0.0) - melt, 0.0)
    lost_fraction = np.where(has_ice, melt / np.maximum(s.ice_volume, 1e-12), 0.0)
    conc = conc * (1.0 - lost_fraction) + frazil / NEW_ICE_THICKNESS
    s.ice_volume = np.maximum(s.ice_volume + d_ice, 0.0)
    s.ice_concentration = np.where(ocean & (s.ice_volume > 1e-9), np.clip(conc, 0.0, 1.0), 0.0)
    s.ocean_freshwater = s.ocean_freshwater - RHO_ICE * d_ice
    s.sst = np.where(ocean, sst_new, s.sst)

    # --- water cycle -----------------------------------------------------
    conc = s.ice_concentration
    tau_e = 2.0 * 86400.0
    evap_ocean = np.where(ocean, (1 - conc) * np.maximum(0.8 * saturation_vapour(s.sst) - s.vapour, 0.0), 0.0)
    evap_ocean = evap_ocean * min(1.0, dt / tau_e)  # kg m-2 this step
    beta = np.clip(s.soil_water / SOIL_CAPACITY, 0.0, 1.0)
    evap_land = np.where(land, beta * np.maximum(0.8 * saturation_vapour(s.lst) - s.vapour, 0.0), 0.0)
    evap_land = np.minimum(evap_land * min(1.0, dt / tau_e), s.soil_water)
    excess = s.vapour + evap_ocean + evap_land - 0.75 * saturation_vapour(t_air)
    precip = np.maximum(excess, 0.0) * min(1.0, dt / (6 * 3600.0))
    s.vapour = s.vapour + evap_ocean + evap_land - precip
    s.soil_water = s.soil_water - evap_land
    s.ocean_freshwater = s.ocean_freshwater - evap_ocean
    t_air = t_air + precip * LATENT_VAPOUR / AIR_COLUMN_HEAT_CAPACITY

    snowfall = np.where(t_air < T_MELT, precip, 0.0)
    rain = precip - snowfall
    s.snow = s.snow + np.where(land, snowfall, 0.0)
    s.soil_water = s.soil_water + np.where(land, rain, 0.0)
    s.ocean_freshwater = s.ocean_freshwater + np.where(ocean, precip, 0.0)

    melt = np.where(land, np.minimum(s.snow, 5.0 / 86400.0 * np.maximum(s.lst - T_MELT, 0.0) * dt), 0.0)
    s.snow = s.snow - melt
    s.soil_water = s.soil_water + melt
    s.lst = s.lst - melt * LATENT_FUSION / c_land

    runoff = np.maximum(s.soil_water - SOIL_CAPACITY, 0.0)
    s.soil_water = s.soil_water - runoff
    ocean_area = np.sum(grid.area[ocean])
    s.ocean_freshwater = s.ocean_freshwater + np.where(ocean, np.sum(runoff * grid.area) / ocean_area, 0.0)

    # --- air temperature: relaxation to equilibrium and to the surface -------
    t_surface = np.where(land, s.lst, (1 - conc) * s.sst + conc * np.minimum(t_air, T_MELT))
    t_eq = air_equilibrium(lat, seconds)
    t_air = t_air + dt * ((t_eq - t_air) / (6 * 86400.0) + (t_surface - t_air) / (4 * 86400.0))
    s.air_temperature = t_air
    return s


def diagnose(planet: Planet, s: SurfaceState) -> dict[str, np.ndarray]:
    """Observable fields of a state, NaN where a variable does not exist."""
    land, ocean = planet.land, planet.ocean
    nan = np.nan
    return {
        "air_temperature": s.air_temperature,
        "total_column_water_vapour": s.vapour,
        "sea_surface_temperature": np.where(ocean, s.sst, nan),
        "land_surface_temperature": np.where(land, s.lst, nan),
        "soil_moisture": np.where(land, s.soil_water / SOIL_CAPACITY, nan),
        "snow_water_equivalent": np.where(land, s.snow, nan),
        "sea_ice_concentration": np.where(ocean, s.ice_concentration, nan),
        "sea_ice_thickness": np.where(ocean, s.ice_volume / np.maximum(s.ice_concentration, 1e-6), nan),
    }


def run_nature(config: NatureRunConfig) -> xr.Dataset:
    """Integrate the nature run and return its truth as a WB2-layout dataset.

    Dimensions ``(time, latitude, longitude)``, latitude ascending in degrees,
    longitude in [0, 360). Static fields ``land_sea_mask`` and ``cell_area`` and
    the diagnostic ``water_total`` (kg, per output time) are included.
    The run first spins up for ``spinup_days`` before ``start``.
    """
    planet = make_planet(config)
    dt = config.dt_minutes * 60.0
    start = pd.Timestamp(config.start)
    t0 = (start - pd.Timestamp("1970-01-01")).total_seconds()
    seconds = t0 - config.spinup_days * 86400.0
    state = initial_state(planet, seconds)
    n_spin = int(round(config.spinup_days * 86400.0 / dt))
    for _ in range(n_spin):
        state = step(planet, state, seconds, dt, config.mixed_layer_depth_m)
        seconds += dt

    if config.perturbation_K:
        noise = np.random.default_rng(config.seed + 104729).standard_normal(state.air_temperature.shape)
        state.air_temperature = state.air_temperature + config.perturbation_K * noise
    every = int(round(config.output_hours * 3600.0 / dt))
    n_out = int(math.floor(config.days * 24.0 / config.output_hours)) + 1
    out = {k: np.empty((n_out, config.nlat, config.nlon)) for k in VARIABLES}
    totals = np.empty(n_out)
    for n in range(n_out):
        if n > 0:
            for _ in range(every):
                state = step(planet, state, seconds, dt, config.mixed_layer_depth_m)
                seconds += dt
        for k, v in diagnose(planet, state).items():
            out[k][n] = v
        totals[n] = water_total(planet, state)

    grid = planet.grid
    times = start + pd.to_timedelta(np.arange(n_out) * config.output_hours, unit="h")
    coords = {"time": times.values, "latitude": grid.lat_deg, "longitude": grid.lon_deg}
    dims = ("time", "latitude", "longitude")
    ds = xr.Dataset(
        {k: (dims, v.astype(config.output_dtype), {"units": VARIABLES[k][1], "sphere": VARIABLES[k][0]})
         for k, v in out.items()},
        coords=coords,
    )
    ds["land_sea_mask"] = (("latitude", "longitude"), planet.land.astype(np.float32), {"units": "1"})
    ds["cell_area"] = (("latitude", "longitude"), grid.area, {"units": "m2"})
    ds["water_total"] = (("time",), totals, {"units": "kg", "long_name": "global water of the closed budget"})
    ds.attrs.update({"title": "earthgraph nature run", "config": repr(asdict(config))})
    return ds
