"""The nature run: a coupled four-sphere toy Earth on a lat-lon grid.

It is the known truth of earthgraph's observing-system simulation experiment
(OSSE). Deliberately simple, but every sphere is coupled to the ones it
touches and the water budget is closed:

- atmosphere: a chaotic barotropic vorticity model (``vorticity``: seasonal
  jets, flow over real orography, stirring) whose winds carry air temperature
  and column water vapour, relaxed to a seasonal radiative equilibrium (colder
  over high ground) and to the surface, with evaporation and condensation
  into precipitation (rain or snow);
- ocean: a mixed layer (SST) heated by the sun, exchanging heat with the air
  and with a thermocline layer beneath it, both advected by gyres; their heat
  content is the ocean heat content that Argo-like floats profile; and a
  freshwater reservoir;
- land: a soil-water bucket with runoff to the ocean, land-surface
  temperature with a diurnal cycle, snow that accumulates and melts, on the
  real land-sea mask and orography where available (``statics``);
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
from earthgraph.data.advection import advect, face_fluxes, taper_polar_streamfunction
from earthgraph.data.grid import EARTH_RADIUS, LatLonGrid
from earthgraph.data.spherical_harmonics import GaussianGrid
from earthgraph.data.statics import GRAVITY, load_statics
from earthgraph.data.travelling_waves import TravellingWaves, centre_winds
from earthgraph.data.vorticity import BarotropicModel, JetForcing, grid_rms, scaled_to_grid_rms, spin_up_noise
from earthgraph.progress import progress

T_MELT = 273.15  # K
T_FREEZE_SEA = 271.35  # K
LATENT_VAPOUR = 2.5e6  # J kg-1
LATENT_FUSION = 3.34e5  # J kg-1
RHO_ICE = 917.0  # kg m-3
AIR_COLUMN_HEAT_CAPACITY = 1.0e7  # J m-2 K-1 (cp * ps / g)
WATER_HEAT_CAPACITY = 4.2e6  # J m-3 K-1
SOIL_CAPACITY = 150.0  # kg m-2, bucket size
THERMOCLINE_DEPTH = 100.0  # m, the ocean layer under the mixed layer
NEW_ICE_THICKNESS = 0.05  # m: frazil spreads over open water at this thickness

# Names of the gridded truth variables, with their sphere and units.
VARIABLES = {
    "air_temperature": ("atmosphere", "K"),
    "total_column_water_vapour": ("atmosphere", "kg m-2"),
    "sea_surface_temperature": ("ocean", "K"),
    "thermocline_temperature": ("ocean", "K"),
    "ocean_heat_content": ("ocean", "J m-2"),
    "land_surface_temperature": ("land", "K"),
    "soil_moisture": ("land", "1"),
    "snow_water_equivalent": ("land", "kg m-2"),
    "sea_ice_concentration": ("cryosphere", "1"),
    "sea_ice_thickness": ("cryosphere", "m"),
    "u_component_of_wind": ("atmosphere", "m s-1"),
    "v_component_of_wind": ("atmosphere", "m s-1"),
}


@dataclass
class NatureRunConfig:
    """Settings of a nature run. The default grid is 64x128 (about 2.8 degrees)."""

    nlat: int = 64
    nlon: int = 128
    start: str = "2020-01-01T00:00"
    days: float = 120.0
    dt_minutes: float = 60.0
    output_hours: float = 3.0
    spinup_days: float = 60.0
    seed: int = 0
    # "synthetic" (the default: the same planet on every machine), "climt" (the real land mask
    # and orography, fetched from PyPI when absent), or a directory holding climt's static
    # files. ("auto", climt's if found else synthetic, is read in old runs' configs only: its
    # output depended on what a machine had cached.)
    statics: str = "synthetic"
    land_fraction: float = 0.3  # of the synthetic planet only
    mixed_layer_depth_m: float = 2.5
    # High ground has a colder equilibrium air temperature, by this much per km of orography.
    lapse_rate_K_per_km: float = 6.5
    # "vorticity": the chaotic barotropic vorticity model; "waves": the prescribed,
    # non-chaotic westerlies plus travelling waves (``travelling_waves``).
    atmosphere: str = "vorticity"
    # Atmosphere: spectral truncation of the vorticity model, independent of the
    # output grid, so that every output grid sees the same weather.
    truncation: int = 42
    jet_speed_m_per_s: float = 35.0
    jet_width_deg: float = 8.0
    relaxation_days: float = 20.0
    diffusion_hours: float = 24.0
    # Stirring: a fixed seeded vorticity forcing in total wavenumbers [lo, hi],
    # standing in for the baroclinic eddies a one-layer model cannot make.
    stirring_s2: float = 1.0e-10
    stirring_wavenumbers: tuple[int, int] = (10, 20)
    orography_scale_height_m: float = 10_000.0
    # The vorticity model's wind is a mid-tropospheric (equivalent-barotropic) one;
    # near-surface air, which carries the air temperature and vapour, moves slower.
    surface_wind_fraction: float = 0.5
    ocean_current_m_per_s: float = 0.8
    ice_drift_fraction: float = 0.05
    # Relative size of seeded noise added to the vorticity after spin-up: twin
    # runs that differ by one part in ``1/perturbation`` measure error growth.
    perturbation: float = 0.0
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
        if self.atmosphere not in ("vorticity", "waves"):
            raise ValueError(f"NatureRunConfig: atmosphere={self.atmosphere!r}; expected 'vorticity' or 'waves'")
        lo, hi = self.stirring_wavenumbers
        if not 1 <= lo <= hi <= self.truncation:
            raise ValueError(f"NatureRunConfig: stirring_wavenumbers={self.stirring_wavenumbers} must lie in "
                             f"[1, truncation={self.truncation}]")


@dataclass
class SurfaceState:
    """Prognostic fields: surface ones (nlat, nlon) float64, vorticity spectral."""

    air_temperature: np.ndarray
    vapour: np.ndarray
    sst: np.ndarray
    thermocline: np.ndarray  # K, mean temperature of the layer under the mixed layer
    lst: np.ndarray
    soil_water: np.ndarray
    snow: np.ndarray
    ice_volume: np.ndarray  # m of ice per unit cell area (the budget variable)
    ice_concentration: np.ndarray  # fraction of the cell covered; thickness = volume / concentration
    ocean_freshwater: np.ndarray
    vorticity: np.ndarray  # (T+1, T+1) complex spectral relative vorticity, s-1

    def copy(self) -> "SurfaceState":
        return SurfaceState(**{k: v.copy() for k, v in self.__dict__.items()})


@dataclass
class Planet:
    """Static fields, the atmosphere's dynamics and the forcings of one nature run."""

    grid: LatLonGrid
    land: np.ndarray  # (nlat, nlon) bool
    orography_m: np.ndarray  # (nlat, nlon) surface height, m (0 over sea)
    statics_source: str
    atmosphere: BarotropicModel
    stirring: np.ndarray  # (T+1, T+1) spectral vorticity forcing, s-2
    relaxation_seconds: float
    surface_wind_fraction: float
    altitude_cooling_K: np.ndarray  # (nlat, nlon) lapse rate times orography
    waves: TravellingWaves | None  # set when the flow is prescribed instead of the vorticity model's
    ocean_current: float  # m s-1, peak speed of gyres and eddies
    ice_drift: float  # fraction of the air flow that moves sea ice
    coast_free_corner: np.ndarray = field(repr=False)  # (nlat+1, nlon) corners touching no land

    @property
    def ocean(self) -> np.ndarray:
        return ~self.land

    def vorticity_target(self, seconds: float) -> np.ndarray:
        """Spectral vorticity the flow relaxes towards: seasonal jets plus the stirring's
        equilibrium (a steady forcing F relaxing with time tau acts as a target F tau)."""
        return self.atmosphere.jet_vorticity(season(seconds)) + self.stirring * self.relaxation_seconds


def stirring_pattern(gaussian: GaussianGrid, wavenumbers: tuple[int, int], rms_s2: float, seed: int) -> np.ndarray:
    """Seeded random spectral forcing in total wavenumbers ``[lo, hi]`` with grid RMS ``rms_s2``."""
    rng = np.random.default_rng(seed + 4099)
    shape = (gaussian.truncation + 1,) * 2
    coeffs = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * gaussian.valid
    lo, hi = wavenumbers
    coeffs = coeffs * ((gaussian.degree >= lo) & (gaussian.degree <= hi))
    coeffs[0] = coeffs[0].real  # m = 0 coefficients of a real field are real
    return scaled_to_grid_rms(gaussian, coeffs, rms_s2)


def dynamics_grid(truncation: int) -> GaussianGrid:
    """The smallest even Gaussian grid free of quadratic aliasing at ``truncation``."""
    nlon = 3 * truncation + 1
    nlon += nlon % 2
    return GaussianGrid(nlon // 2, nlon, truncation)


def make_planet(config: NatureRunConfig) -> Planet:
    grid = LatLonGrid(config.nlat, config.nlon)
    statics = load_statics(grid, config.statics, config.land_fraction, config.seed)
    land = statics.land

    # The dynamics sees orography on its own grid: the same static fields on a
    # regular grid of its size, interpolated to the Gaussian latitudes.
    gaussian = dynamics_grid(config.truncation)
    regular = LatLonGrid(gaussian.nlat, gaussian.nlon)
    oro = load_statics(regular, config.statics, config.land_fraction, config.seed).orography_m
    oro_gauss = np.stack([np.interp(gaussian.lat, regular.lat, oro[:, i]) for i in range(gaussian.nlon)], axis=1)
    atmosphere = BarotropicModel(
        gaussian=gaussian, tracers=grid, orography_m=oro_gauss,
        jets=JetForcing(speed_m_per_s=config.jet_speed_m_per_s, width_deg=config.jet_width_deg),
        scale_height_m=config.orography_scale_height_m, relaxation_days=config.relaxation_days,
        diffusion_hours=config.diffusion_hours,
    )
    stirring = stirring_pattern(gaussian, config.stirring_wavenumbers, config.stirring_s2, config.seed)

    # Corners whose four cells are all ocean: currents and ice drift vanish
    # elsewhere, so nothing crosses a coast.
    ocean_corner = np.ones((grid.nlat + 1, grid.nlon), dtype=bool)
    ocean_cell = ~land
    for dj in (-1, 0):
        for di in (0, 1):
            rows = np.clip(np.arange(grid.nlat + 1) + dj, 0, grid.nlat - 1)
            ocean_corner &= np.roll(ocean_cell[rows], -di, axis=1)
    return Planet(
        grid=grid, land=land, orography_m=statics.orography_m, statics_source=statics.source,
        atmosphere=atmosphere, stirring=stirring, relaxation_seconds=config.relaxation_days * 86400.0,
        surface_wind_fraction=config.surface_wind_fraction,
        altitude_cooling_K=config.lapse_rate_K_per_km * statics.orography_m / 1000.0,
        waves=TravellingWaves.from_seed(config.seed) if config.atmosphere == "waves" else None,
        ocean_current=config.ocean_current_m_per_s, ice_drift=config.ice_drift_fraction,
        coast_free_corner=ocean_corner,
    )


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


def ice_streamfunction(planet: Planet, air_psi: np.ndarray) -> np.ndarray:
    """Sea ice drifts with a fraction of the wind, never across a coast."""
    psi = planet.ice_drift * (air_psi - air_psi[0, 0])
    return np.where(planet.coast_free_corner, psi, 0.0)


def saturation_vapour(temperature: np.ndarray) -> np.ndarray:
    """Column water vapour at saturation (kg m-2), Clausius-Clapeyron-like."""
    return 12.0 * np.exp(0.065 * (temperature - T_MELT))


def season(seconds) -> float:
    """+1 at the June solstice, -1 at the December solstice."""
    return solar.declination(seconds) / solar.OBLIQUITY


def air_equilibrium(lat: np.ndarray, seconds: float, cooling_K: np.ndarray | float = 0.0) -> np.ndarray:
    """Seasonal equilibrium air temperature (K) that the air relaxes towards, less ``cooling_K``
    (the lapse-rate cooling of high ground)."""
    return 300.0 - 48.0 * np.sin(lat) ** 2 + 14.0 * season(seconds) * np.sin(lat) - cooling_K


def ocean_equilibrium(lat: np.ndarray, seconds: float) -> np.ndarray:
    """Seasonal equilibrium of the deep ocean under the mixed layer (K)."""
    return 302.0 - 36.0 * np.sin(lat) ** 2 + 4.0 * season(seconds) * np.sin(lat)


def initial_state(planet: Planet, seconds: float, seed: int) -> SurfaceState:
    grid = planet.grid
    lat, _ = grid.mesh()
    t_air = air_equilibrium(lat, seconds, planet.altitude_cooling_K)
    # The jets at rest plus seeded noise: the seed picks the weather.
    vorticity = planet.vorticity_target(seconds) + spin_up_noise(planet.atmosphere, seed, 1e-6)
    sst = np.maximum(ocean_equilibrium(lat, seconds), T_FREEZE_SEA)
    return SurfaceState(
        air_temperature=t_air,
        vapour=0.6 * saturation_vapour(t_air),
        sst=np.where(planet.land, T_FREEZE_SEA, sst),
        thermocline=np.where(planet.land, T_FREEZE_SEA, sst),
        lst=t_air.copy(),
        soil_water=np.where(planet.land, 0.5 * SOIL_CAPACITY, 0.0),
        snow=np.zeros_like(t_air),
        ice_volume=np.where(planet.land | (np.abs(lat) < np.radians(65)), 0.0, 0.5),
        ice_concentration=np.where(planet.land | (np.abs(lat) < np.radians(65)), 0.0, 0.9),
        ocean_freshwater=np.zeros_like(t_air),
        vorticity=vorticity,
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

    # --- dynamics and transport ---------------------------------------------
    if planet.waves is None:
        air_psi = taper_polar_streamfunction(planet.atmosphere.corner_streamfunction(s.vorticity), grid.lat_edges)
        s.vorticity = planet.atmosphere.step(s.vorticity, planet.vorticity_target(seconds), dt)
        fx, fy = face_fluxes(planet.surface_wind_fraction * air_psi)
    else:
        air_psi = planet.waves.corner_streamfunction(grid, seconds)
        fx, fy = face_fluxes(air_psi)
    s.air_temperature, s.vapour = advect(grid, np.stack([s.air_temperature, s.vapour]), fx, fy, dt)
    ofx, ofy = face_fluxes(ocean_streamfunction(planet, seconds))
    s.sst, s.thermocline = advect(grid, np.stack([s.sst, s.thermocline]), ofx, ofy, dt)
    ifx, ify = face_fluxes(ice_streamfunction(planet, air_psi))
    s.ice_volume, conc = advect(grid, np.stack([s.ice_volume, s.ice_concentration]), ifx, ify, dt)
    s.ice_concentration = np.minimum(conc, 1.0)

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
    # The mixed layer mixes with the thermocline (30 days); the thermocline is
    # relaxed to a seasonal equilibrium (60 days), standing in for the deep ocean.
    mixing = c_ocean * (s.thermocline - s.sst) / (30 * 86400.0)  # W m-2 into the mixed layer
    sst_flux = diurnal - exchange * (s.sst - t_air) + absorbed + mixing
    sst_new = s.sst + dt * sst_flux / c_ocean
    c_thermo = WATER_HEAT_CAPACITY * THERMOCLINE_DEPTH
    s.thermocline = np.where(ocean, s.thermocline + dt * (
        -mixing / c_thermo
        + (np.maximum(ocean_equilibrium(lat, seconds), T_FREEZE_SEA) - s.thermocline) / (60 * 86400.0)), s.thermocline)

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
    t_eq = air_equilibrium(lat, seconds, planet.altitude_cooling_K)
    t_air = t_air + dt * ((t_eq - t_air) / (6 * 86400.0) + (t_surface - t_air) / (4 * 86400.0))
    s.air_temperature = t_air
    return s


def ocean_heat_content(sst: np.ndarray, thermocline: np.ndarray, mixed_layer_depth: float) -> np.ndarray:
    """Heat content of the mixed layer and thermocline relative to 0 degC, J m-2."""
    return WATER_HEAT_CAPACITY * (mixed_layer_depth * (sst - T_MELT) + THERMOCLINE_DEPTH * (thermocline - T_MELT))


def diagnose(planet: Planet, s: SurfaceState, mixed_layer_depth: float, seconds: float) -> dict[str, np.ndarray]:
    """Observable fields of a state at time ``seconds``, NaN where a variable does not exist."""
    land, ocean = planet.land, planet.ocean
    if planet.waves is None:
        winds = planet.atmosphere.grid_winds(s.vorticity)
    else:
        winds = centre_winds(planet.grid, planet.waves.corner_streamfunction(planet.grid, seconds))
    nan = np.nan
    return {
        "air_temperature": s.air_temperature,
        "total_column_water_vapour": s.vapour,
        "sea_surface_temperature": np.where(ocean, s.sst, nan),
        "thermocline_temperature": np.where(ocean, s.thermocline, nan),
        "ocean_heat_content": np.where(ocean, ocean_heat_content(s.sst, s.thermocline, mixed_layer_depth), nan),
        "land_surface_temperature": np.where(land, s.lst, nan),
        "soil_moisture": np.where(land, s.soil_water / SOIL_CAPACITY, nan),
        "snow_water_equivalent": np.where(land, s.snow, nan),
        "sea_ice_concentration": np.where(ocean, s.ice_concentration, nan),
        "sea_ice_thickness": np.where(ocean, s.ice_volume / np.maximum(s.ice_concentration, 1e-6), nan),
        "u_component_of_wind": winds[0],
        "v_component_of_wind": winds[1],
    }


def steps_per_output(config: NatureRunConfig) -> int:
    """Model steps of ``dt_minutes`` between two outputs ``output_hours`` apart."""
    return int(round(config.output_hours * 3600.0 / (config.dt_minutes * 60.0)))


def output_count(config: NatureRunConfig) -> int:
    """Number of output times: ``start`` and every ``output_hours`` up to ``days`` after it."""
    return int(math.floor(config.days * 24.0 / config.output_hours)) + 1


def output_times(config: NatureRunConfig) -> np.ndarray:
    """(n_out,) datetime64[ns] times of the truth: ``start`` and every ``output_hours`` after it."""
    start = pd.Timestamp(config.start)
    return (start + pd.to_timedelta(np.arange(output_count(config)) * config.output_hours, unit="h")).values


def integrate(planet: Planet, state: SurfaceState, seconds: float, n_steps: int,
              config: NatureRunConfig) -> tuple[SurfaceState, float]:
    """Advance ``state`` (valid at ``seconds`` since 1970) by ``n_steps`` steps of ``config.dt_minutes``.

    Returns the new state and its clock. The clock is accumulated step by step, as
    every caller must do for its trajectory to match the truth bit for bit.
    """
    dt = config.dt_minutes * 60.0
    for _ in range(n_steps):
        state = step(planet, state, seconds, dt, config.mixed_layer_depth_m)
        seconds += dt
    return state, seconds


def spun_up_state(planet: Planet, config: NatureRunConfig) -> tuple[SurfaceState, float]:
    """The state at ``config.start`` (after ``spinup_days`` of spin-up and the twin-run
    ``perturbation`` of the vorticity, if any) and its clock in seconds since 1970."""
    dt = config.dt_minutes * 60.0
    start = pd.Timestamp(config.start)
    t0 = (start - pd.Timestamp("1970-01-01")).total_seconds()
    seconds = t0 - config.spinup_days * 86400.0
    state = initial_state(planet, seconds, config.seed)
    n_spin = int(round(config.spinup_days * 86400.0 / dt))
    state, seconds = integrate(planet, state, seconds, n_spin, config)

    if config.perturbation:
        rms = grid_rms(planet.atmosphere.gaussian, state.vorticity)
        state.vorticity = state.vorticity + spin_up_noise(planet.atmosphere, config.seed + 104729,
                                                          config.perturbation * rms)
    return state, seconds


def run_nature(config: NatureRunConfig, show_progress: bool = False) -> xr.Dataset:
    """Integrate the nature run and return its truth as a WB2-layout dataset.

    Dimensions ``(time, latitude, longitude)``, latitude ascending in degrees,
    longitude in [0, 360). Static fields ``land_sea_mask``, ``geopotential_at_surface`` and ``cell_area`` and
    the diagnostic ``water_total`` (kg, per output time) are included.
    The run first spins up for ``spinup_days`` before ``start``. ``show_progress``: a
    progress bar over the output times (:mod:`earthgraph.progress`).
    """
    planet = make_planet(config)
    state, seconds = spun_up_state(planet, config)
    every = steps_per_output(config)
    n_out = output_count(config)
    out = {k: np.empty((n_out, config.nlat, config.nlon)) for k in VARIABLES}
    totals = np.empty(n_out)
    for n in progress(range(n_out), desc="nature run", unit="step", enabled=show_progress):
        if n > 0:
            state, seconds = integrate(planet, state, seconds, every, config)
        for k, v in diagnose(planet, state, config.mixed_layer_depth_m, seconds).items():
            out[k][n] = v
        totals[n] = water_total(planet, state)

    grid = planet.grid
    coords = {"time": output_times(config), "latitude": grid.lat_deg, "longitude": grid.lon_deg}
    dims = ("time", "latitude", "longitude")
    ds = xr.Dataset(
        {k: (dims, v.astype(config.output_dtype), {"units": VARIABLES[k][1], "sphere": VARIABLES[k][0]})
         for k, v in out.items()},
        coords=coords,
    )
    ds["land_sea_mask"] = (("latitude", "longitude"), planet.land.astype(np.float32), {"units": "1"})
    ds["geopotential_at_surface"] = (("latitude", "longitude"), (planet.orography_m * GRAVITY).astype(np.float32),
                                     {"units": "m2 s-2", "source": planet.statics_source})
    ds["cell_area"] = (("latitude", "longitude"), grid.area, {"units": "m2"})
    ds["water_total"] = (("time",), totals, {"units": "kg", "long_name": "global water of the closed budget"})
    ds.attrs.update({"title": "earthgraph nature run", "config": repr(asdict(config)),
                     "statics": planet.statics_source})
    return ds
