"""The nature run's equations: one time step of the coupled toy Earth, as named physical steps.

:func:`step` advances a :class:`NatureState` by ``dt`` seconds, explicit and
operator split, in this order:

1. :func:`air_flow`: the air's motion during the step. What drives the weather
   depends on ``NatureRunConfig.atmosphere``:

   - ``"vorticity"`` (the default): the chaotic barotropic vorticity model
     (:mod:`~earthgraph.data.vorticity`), relaxed towards seasonal jets, stirred,
     and deflected by orography. Its flow is the mid-troposphere's; the
     near-surface air moves with ``surface_wind_fraction`` of it. The vorticity
     is advanced by ``dt`` here.
   - ``"waves"`` (the quickstart's): prescribed westerlies plus travelling
     planetary waves (:mod:`~earthgraph.data.travelling_waves`), a smooth,
     non-chaotic function of time that moves the near-surface air at full speed.

   Either way, weather is this flow carrying air temperature and vapour across
   the gradients that the surface and the seasonal equilibrium keep making.
2. :func:`transport`: air temperature and vapour by the near-surface wind, the
   ocean's mixed layer and thermocline by the gyres, sea ice by a fraction of the wind.
3. :func:`land_surface_energy`: land-surface temperature (diurnal heating, snow).
4. :func:`ocean_mixed_layer`: sea-surface and thermocline temperatures.
5. :func:`sea_ice`: freezing, growth and melt, with the ice-albedo feedback.
6. :func:`evaporation_and_precipitation`: the atmosphere's water budget.
7. :func:`snowmelt` and 8. :func:`runoff`: the land's water budget.
9. :func:`air_temperature_relaxation`: towards the seasonal radiative
   equilibrium (colder over high ground) and towards the surface.

Every step takes a state and returns a new one; no array is written in place.
Water moves only between ``vapour + soil water + snow + sea ice + ocean
freshwater``, so :func:`water_total` stays constant up to rounding.

Fields are (nlat, nlon) float64 on the lat-lon grid. Units: K, kg m-2 (water),
m (ice volume per area), W m-2, J m-2 K-1 (heat capacity per area), seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from earthgraph.data import solar
from earthgraph.data.advection import advect, face_fluxes, taper_polar_streamfunction
from earthgraph.data.grid import EARTH_RADIUS, LatLonGrid
from earthgraph.data.travelling_waves import TravellingWaves
from earthgraph.data.vorticity import BarotropicModel

# --- physical constants -------------------------------------------------------
T_MELT = 273.15  # K, fresh water and snow
T_FREEZE_SEA = 271.35  # K, sea water
LATENT_VAPOUR = 2.5e6  # J kg-1
LATENT_FUSION = 3.34e5  # J kg-1
RHO_ICE = 917.0  # kg m-3
AIR_COLUMN_HEAT_CAPACITY = 1.0e7  # J m-2 K-1 (cp * ps / g)
WATER_HEAT_CAPACITY = 4.2e6  # J m-3 K-1
LAND_HEAT_CAPACITY = 3.0e5  # J m-2 K-1, a thin soil layer
SOIL_CAPACITY = 150.0  # kg m-2, bucket size
THERMOCLINE_DEPTH = 100.0  # m, the ocean layer under the mixed layer
# Column water vapour at saturation: SATURATION_VAPOUR_AT_MELT * exp(rate * (T - T_MELT)).
SATURATION_VAPOUR_AT_MELT = 12.0  # kg m-2
SATURATION_VAPOUR_RATE = 0.065  # K-1, about 7 % per K (Clausius-Clapeyron)

# --- surface energy -------------------------------------------------------------
SURFACE_SOLAR_FRACTION = 0.5  # 1, of the top-of-atmosphere insolation reaching the surface
SENSIBLE_EXCHANGE = 20.0  # W m-2 K-1, surface-air sensible heat exchange
SNOW_COVER_DEPTH = 20.0  # kg m-2 of snow water that covers a cell entirely
SNOW_REFLECTED_FRACTION = 0.6  # 1, of the diurnal heating that full snow cover reflects
SNOW_COOLING = 15.0  # W m-2, extra longwave loss of a fully snow-covered surface
OPEN_WATER_COALBEDO = 0.94  # 1, the sunlight open water absorbs (sea ice absorbs none here)
# The part of the absorbed daily-mean sunlight left to warm the mixed layer: the rest
# balances losses that the air's seasonal equilibrium already stands for (a tuning).
MIXED_LAYER_SOLAR_FRACTION = 0.15  # 1
THERMOCLINE_MIXING_SECONDS = 30 * 86400.0  # s, mixed layer <-> thermocline
DEEP_OCEAN_RELAXATION_SECONDS = 60 * 86400.0  # s, thermocline -> its seasonal equilibrium

# --- sea ice ----------------------------------------------------------------------
NEW_ICE_THICKNESS = 0.05  # m: frazil spreads over open water at this thickness
ICE_GROWTH_RATE = 0.006 / 86400.0  # m s-1 K-1 of air below freezing, for ice of no volume
ICE_SURFACE_MELT_RATE = 0.02 / 86400.0  # m s-1 K-1 of air above melting
ICE_BOTTOM_MELT_SECONDS = 86400.0  # s: the mixed layer's heat above freezing melts ice this fast
ICE_FREE_VOLUME = 1e-9  # m: less ice than this per cell area is open water

# --- water cycle ------------------------------------------------------------------
EVAPORATION_SECONDS = 2.0 * 86400.0  # s, time for evaporation to close the vapour deficit
EVAPORATION_HUMIDITY = 0.8  # 1, evaporation fills the column to this fraction of saturation
CONDENSATION_HUMIDITY = 0.75  # 1, vapour above this fraction of saturation precipitates...
PRECIPITATION_SECONDS = 6 * 3600.0  # s, ...within this time
SNOWMELT_RATE = 5.0 / 86400.0  # kg m-2 s-1 K-1 of land surface above melting

# --- air temperature --------------------------------------------------------------
AIR_EQUILIBRIUM_SECONDS = 6 * 86400.0  # s, relaxation to the seasonal radiative equilibrium
AIR_SURFACE_SECONDS = 4 * 86400.0  # s, relaxation to the surface temperature
# Seasonal equilibria: EQUATOR - POLE_CONTRAST sin^2(lat) + SEASONAL season sin(lat), K.
AIR_EQUILIBRIUM_K = (300.0, 48.0, 14.0)  # the air's (as in Held-Suarez)
DEEP_OCEAN_EQUILIBRIUM_K = (302.0, 36.0, 4.0)  # the thermocline's, standing in for the deep ocean

# --- ocean currents ---------------------------------------------------------------
EDDY_CIRCUIT_SECONDS = 40 * solar.SECONDS_PER_DAY  # s, for the ocean eddies to drift once around


@dataclass(frozen=True)
class SurfaceState:
    """Prognostic fields on the lat-lon grid, each (nlat, nlon) float64: the near-surface
    air, the ocean, the land and the sea ice."""

    air_temperature: np.ndarray  # K
    vapour: np.ndarray  # kg m-2, column water vapour
    sst: np.ndarray  # K, mixed-layer temperature (held at T_FREEZE_SEA over land)
    thermocline: np.ndarray  # K, mean temperature of the layer under the mixed layer
    lst: np.ndarray  # K, land-surface temperature (the air's over sea)
    soil_water: np.ndarray  # kg m-2
    snow: np.ndarray  # kg m-2, snow water equivalent
    ice_volume: np.ndarray  # m of ice per unit cell area (the budget variable)
    ice_concentration: np.ndarray  # fraction of the cell covered; thickness = volume / concentration
    ocean_freshwater: np.ndarray  # kg m-2, anomaly of the ocean's fresh water


@dataclass(frozen=True)
class NatureState:
    """The whole prognostic state: the grid fields, and the vorticity model's spectral
    relative vorticity ((T+1, T+1) complex, s-1), None when the flow is prescribed (``waves``)."""

    surface: SurfaceState
    vorticity: np.ndarray | None


@dataclass
class Planet:
    """Static fields, the atmosphere's dynamics and the forcings of one nature run."""

    grid: LatLonGrid
    land: np.ndarray  # (nlat, nlon) bool
    orography_m: np.ndarray  # (nlat, nlon) surface height, m (0 over sea)
    statics_source: str
    atmosphere: BarotropicModel
    stirring: np.ndarray  # (T+1, T+1) spectral vorticity forcing, s-2
    relaxation_seconds: float  # s, the vorticity's relaxation towards the jets
    surface_wind_fraction: float  # of the vorticity model's flow that moves the near-surface air
    altitude_cooling_K: np.ndarray  # (nlat, nlon) lapse rate times orography
    waves: TravellingWaves | None  # set when the flow is prescribed instead of the vorticity model's
    ocean_current: float  # m s-1, peak speed of gyres and eddies
    ice_drift: float  # fraction of the air flow that moves sea ice
    mixed_layer_depth_m: float  # m
    coast_free_corner: np.ndarray = field(repr=False)  # (nlat+1, nlon) corners touching no land

    @property
    def ocean(self) -> np.ndarray:
        return ~self.land

    @property
    def mixed_layer_heat_capacity(self) -> float:
        """J m-2 K-1."""
        return WATER_HEAT_CAPACITY * self.mixed_layer_depth_m

    def vorticity_target(self, seconds: float) -> np.ndarray:
        """Spectral vorticity the flow relaxes towards: seasonal jets plus the stirring's
        equilibrium (a steady forcing F relaxing with time tau acts as a target F tau)."""
        return self.atmosphere.jet_vorticity(season(seconds)) + self.stirring * self.relaxation_seconds


# --- forcings and equilibria ------------------------------------------------------
def season(seconds) -> float:
    """+1 at the June solstice, -1 at the December solstice."""
    return solar.declination(seconds) / solar.OBLIQUITY


def _seasonal_equilibrium(coefficients: tuple[float, float, float], lat: np.ndarray, seconds: float) -> np.ndarray:
    equator, pole_contrast, seasonal = coefficients
    return equator - pole_contrast * np.sin(lat) ** 2 + seasonal * season(seconds) * np.sin(lat)


def air_equilibrium(lat: np.ndarray, seconds: float, cooling_K: np.ndarray | float = 0.0) -> np.ndarray:
    """Seasonal equilibrium air temperature (K) that the air relaxes towards, less ``cooling_K``
    (the lapse-rate cooling of high ground). ``lat``: radians."""
    return _seasonal_equilibrium(AIR_EQUILIBRIUM_K, lat, seconds) - cooling_K


def ocean_equilibrium(lat: np.ndarray, seconds: float) -> np.ndarray:
    """Seasonal equilibrium of the deep ocean under the mixed layer (K). ``lat``: radians."""
    return _seasonal_equilibrium(DEEP_OCEAN_EQUILIBRIUM_K, lat, seconds)


def saturation_vapour(temperature: np.ndarray) -> np.ndarray:
    """Column water vapour at saturation (kg m-2) of air at ``temperature`` (K), Clausius-Clapeyron-like."""
    return SATURATION_VAPOUR_AT_MELT * np.exp(SATURATION_VAPOUR_RATE * (temperature - T_MELT))


def ocean_streamfunction(planet: Planet, seconds: float) -> np.ndarray:
    """(nlat+1, nlon) corner streamfunction of the ocean currents, m2 s-1.

    Gyres plus a westward-drifting eddy pattern of zonal wavenumber 5,
    ``A cos^2(lat) sin(3 lat) + A cos^3(lat) cos(2 lat) cos(5 (lon + w t))`` with
    ``A = ocean_current * a / 3`` and ``w`` one circuit per EDDY_CIRCUIT_SECONDS;
    zero on every corner that touches land, so nothing crosses a coast.
    """
    grid = planet.grid
    lat_c = grid.lat_edges[:, None]
    lon_c = (grid.lon + grid.dlon / 2)[None, :]
    amp = planet.ocean_current * EARTH_RADIUS / 3.0
    psi = amp * np.cos(lat_c) ** 2 * np.sin(3 * lat_c) * np.ones_like(lon_c)
    drift = 2 * np.pi / EDDY_CIRCUIT_SECONDS  # rad s-1
    psi = psi + amp * np.cos(lat_c) ** 3 * np.cos(5 * (lon_c + drift * seconds)) * np.cos(2 * lat_c)
    return np.where(planet.coast_free_corner, psi, 0.0)


def ice_streamfunction(planet: Planet, air_psi: np.ndarray) -> np.ndarray:
    """(nlat+1, nlon) corner streamfunction, m2 s-1: sea ice drifts with a fraction of the
    air flow ``air_psi``, never across a coast."""
    psi = planet.ice_drift * (air_psi - air_psi[0, 0])
    return np.where(planet.coast_free_corner, psi, 0.0)


# --- the steps --------------------------------------------------------------------
def air_flow(planet: Planet, vorticity: np.ndarray | None, seconds: float,
             dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The air's motion from ``seconds`` to ``seconds + dt``, and the vorticity at the end.

    Returns ``(air_psi, near_surface_psi, vorticity)``: corner streamfunctions
    (nlat+1, nlon), m2 s-1, of the air flow (which drifts the sea ice) and of the
    near-surface flow (which carries air temperature and vapour), and the advanced
    spectral vorticity (None under ``waves``). The vorticity model's flow is the one
    at the step's start, calmed near the poles (a polar filter for the transport).
    """
    if planet.waves is not None:
        psi = planet.waves.corner_streamfunction(planet.grid, seconds)
        return psi, psi, None
    psi = taper_polar_streamfunction(planet.atmosphere.corner_streamfunction(vorticity), planet.grid.lat_edges)
    vorticity = planet.atmosphere.step(vorticity, planet.vorticity_target(seconds), dt)
    return psi, planet.surface_wind_fraction * psi, vorticity


def transport(planet: Planet, s: SurfaceState, air_psi: np.ndarray, near_surface_psi: np.ndarray,
              seconds: float, dt: float) -> SurfaceState:
    """Conservative advection over ``dt``: air temperature and vapour by the near-surface
    wind, the mixed layer and thermocline by the ocean currents, sea ice by its drift."""
    grid = planet.grid
    fx, fy = face_fluxes(near_surface_psi)
    air_temperature, vapour = advect(grid, np.stack([s.air_temperature, s.vapour]), fx, fy, dt)
    fx, fy = face_fluxes(ocean_streamfunction(planet, seconds))
    sst, thermocline = advect(grid, np.stack([s.sst, s.thermocline]), fx, fy, dt)
    fx, fy = face_fluxes(ice_streamfunction(planet, air_psi))
    ice_volume, concentration = advect(grid, np.stack([s.ice_volume, s.ice_concentration]), fx, fy, dt)
    return replace(s, air_temperature=air_temperature, vapour=vapour, sst=sst, thermocline=thermocline,
                   ice_volume=ice_volume, ice_concentration=np.minimum(concentration, 1.0))


def land_surface_energy(planet: Planet, s: SurfaceState, diurnal: np.ndarray, dt: float) -> SurfaceState:
    """Land-surface temperature: heated by ``diurnal`` (W m-2, less what snow reflects),
    exchanging sensible heat with the air, cooled by snow. Over sea it is the air's."""
    snow_cover = np.minimum(1.0, s.snow / SNOW_COVER_DEPTH)
    flux = ((1 - SNOW_REFLECTED_FRACTION * snow_cover) * diurnal - SENSIBLE_EXCHANGE * (s.lst - s.air_temperature)
            - SNOW_COOLING * snow_cover)  # W m-2
    return replace(s, lst=np.where(planet.land, s.lst + dt * flux / LAND_HEAT_CAPACITY, s.air_temperature))


def ocean_mixed_layer(planet: Planet, s: SurfaceState, diurnal: np.ndarray, mean_insolation: np.ndarray,
                      lat: np.ndarray, seconds: float, dt: float) -> SurfaceState:
    """Mixed-layer (SST) and thermocline temperatures over the ocean.

    The mixed layer is heated by ``diurnal`` (W m-2) and by the daily-mean sunlight
    ``mean_insolation`` (W m-2 at the top of the atmosphere) that open water absorbs
    and ice would reflect (the ice-albedo feedback); it exchanges heat with the air
    and mixes with the thermocline, which relaxes to a seasonal equilibrium. The SST
    may fall below freezing here: :func:`sea_ice` turns that into ice.
    """
    ocean = planet.ocean
    conc = np.where(ocean, s.ice_concentration, 0.0)
    c_ocean = planet.mixed_layer_heat_capacity
    absorbed = (1 - conc) * OPEN_WATER_COALBEDO * SURFACE_SOLAR_FRACTION * mean_insolation * MIXED_LAYER_SOLAR_FRACTION
    mixing = c_ocean * (s.thermocline - s.sst) / THERMOCLINE_MIXING_SECONDS  # W m-2 into the mixed layer
    flux = diurnal - SENSIBLE_EXCHANGE * (s.sst - s.air_temperature) + absorbed + mixing
    sst = s.sst + dt * flux / c_ocean
    c_thermo = WATER_HEAT_CAPACITY * THERMOCLINE_DEPTH
    deep = np.maximum(ocean_equilibrium(lat, seconds), T_FREEZE_SEA)
    thermocline = s.thermocline + dt * (-mixing / c_thermo + (deep - s.thermocline) / DEEP_OCEAN_RELAXATION_SECONDS)
    return replace(s, sst=np.where(ocean, sst, s.sst), thermocline=np.where(ocean, thermocline, s.thermocline))


def sea_ice(planet: Planet, s: SurfaceState, dt: float) -> SurfaceState:
    """Frazil on open water, growth in cold air, melt in warm air and warm water.

    Frazil (the mixed layer's heat below freezing) spreads as thin new ice, raising
    the concentration; melt removes thickness and area alike (lateral melt); growth
    thickens in place. Ice formed or melted is fresh water taken from or given to the
    ocean, and the SST is left at or above the sea's freezing point.
    """
    ocean = planet.ocean
    conc = np.where(ocean, s.ice_concentration, 0.0)
    c_ocean = planet.mixed_layer_heat_capacity
    t_air = s.air_temperature
    frazil = np.maximum(T_FREEZE_SEA - s.sst, 0.0) * c_ocean / (RHO_ICE * LATENT_FUSION) * (1 - conc)  # m
    sst = np.maximum(s.sst, T_FREEZE_SEA)
    has_ice = s.ice_volume > 0
    growth = ICE_GROWTH_RATE * np.maximum(T_FREEZE_SEA - t_air, 0.0) / (1.0 + s.ice_volume)  # m s-1
    surface_melt = ICE_SURFACE_MELT_RATE * np.maximum(t_air - T_MELT, 0.0)  # m s-1
    bottom_heat = np.where(has_ice, (sst - T_FREEZE_SEA) * c_ocean * min(1.0, dt / ICE_BOTTOM_MELT_SECONDS), 0.0)
    sst = sst - bottom_heat / c_ocean
    melt = np.where(has_ice, surface_melt * dt * conc + bottom_heat / (RHO_ICE * LATENT_FUSION), 0.0)
    melt = np.minimum(melt, s.ice_volume)  # m
    d_ice = np.where(ocean, frazil + np.where(has_ice, growth * dt * conc, 0.0) - melt, 0.0)
    lost_fraction = np.where(has_ice, melt / np.maximum(s.ice_volume, 1e-12), 0.0)
    conc = conc * (1.0 - lost_fraction) + frazil / NEW_ICE_THICKNESS
    ice_volume = np.maximum(s.ice_volume + d_ice, 0.0)
    return replace(s, ice_volume=ice_volume,
                   ice_concentration=np.where(ocean & (ice_volume > ICE_FREE_VOLUME), np.clip(conc, 0.0, 1.0), 0.0),
                   ocean_freshwater=s.ocean_freshwater - RHO_ICE * d_ice, sst=np.where(ocean, sst, s.sst))


def evaporation(planet: Planet, s: SurfaceState, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(nlat, nlon) water evaporated in ``dt`` from ice-free sea and from wet soil, kg m-2 each:
    a fraction of the column's deficit below ``EVAPORATION_HUMIDITY`` of the surface's saturation."""
    uptake = min(1.0, dt / EVAPORATION_SECONDS)
    deficit_sea = np.maximum(EVAPORATION_HUMIDITY * saturation_vapour(s.sst) - s.vapour, 0.0)
    from_sea = np.where(planet.ocean, (1 - s.ice_concentration) * deficit_sea, 0.0) * uptake
    wetness = np.clip(s.soil_water / SOIL_CAPACITY, 0.0, 1.0)
    deficit_land = np.maximum(EVAPORATION_HUMIDITY * saturation_vapour(s.lst) - s.vapour, 0.0)
    from_land = np.minimum(np.where(planet.land, wetness * deficit_land, 0.0) * uptake, s.soil_water)
    return from_sea, from_land


def evaporation_and_precipitation(planet: Planet, s: SurfaceState, dt: float) -> SurfaceState:
    """The atmosphere's water budget over ``dt``: evaporation into the column; vapour above
    ``CONDENSATION_HUMIDITY`` of saturation precipitates, warming the air by its latent heat,
    as snow where that air is below freezing. Precipitation over land wets the soil or the
    snowpack; over sea it freshens the ocean."""
    land, ocean = planet.land, planet.ocean
    from_sea, from_land = evaporation(planet, s, dt)
    excess = s.vapour + from_sea + from_land - CONDENSATION_HUMIDITY * saturation_vapour(s.air_temperature)
    precip = np.maximum(excess, 0.0) * min(1.0, dt / PRECIPITATION_SECONDS)  # kg m-2
    t_air = s.air_temperature + precip * LATENT_VAPOUR / AIR_COLUMN_HEAT_CAPACITY
    snowfall = np.where(t_air < T_MELT, precip, 0.0)
    rain = precip - snowfall
    return replace(s, air_temperature=t_air, vapour=s.vapour + from_sea + from_land - precip,
                   soil_water=s.soil_water - from_land + np.where(land, rain, 0.0),
                   snow=s.snow + np.where(land, snowfall, 0.0),
                   ocean_freshwater=s.ocean_freshwater - from_sea + np.where(ocean, precip, 0.0))


def snowmelt(planet: Planet, s: SurfaceState, dt: float) -> SurfaceState:
    """Snow on land above melting melts into the soil, taking its latent heat from the land surface."""
    melt = np.where(planet.land, np.minimum(s.snow, SNOWMELT_RATE * np.maximum(s.lst - T_MELT, 0.0) * dt), 0.0)
    return replace(s, snow=s.snow - melt, soil_water=s.soil_water + melt,
                   lst=s.lst - melt * LATENT_FUSION / LAND_HEAT_CAPACITY)


def runoff(planet: Planet, s: SurfaceState) -> SurfaceState:
    """Soil water above the bucket's capacity runs off, spread evenly over the ocean."""
    grid, ocean = planet.grid, planet.ocean
    overflow = np.maximum(s.soil_water - SOIL_CAPACITY, 0.0)  # kg m-2
    to_ocean = np.sum(overflow * grid.area) / np.sum(grid.area[ocean])  # kg m-2 over every ocean cell
    return replace(s, soil_water=s.soil_water - overflow,
                   ocean_freshwater=s.ocean_freshwater + np.where(ocean, to_ocean, 0.0))


def air_temperature_relaxation(planet: Planet, s: SurfaceState, lat: np.ndarray, seconds: float,
                               dt: float) -> SurfaceState:
    """The air relaxes towards its seasonal equilibrium (colder over high ground) and
    towards the surface: land, open water, and ice (at most at melting) by area."""
    conc, t_air = s.ice_concentration, s.air_temperature
    t_surface = np.where(planet.land, s.lst, (1 - conc) * s.sst + conc * np.minimum(t_air, T_MELT))
    t_eq = air_equilibrium(lat, seconds, planet.altitude_cooling_K)
    return replace(s, air_temperature=t_air + dt * ((t_eq - t_air) / AIR_EQUILIBRIUM_SECONDS
                                                    + (t_surface - t_air) / AIR_SURFACE_SECONDS))


def step(planet: Planet, state: NatureState, seconds: float, dt: float) -> NatureState:
    """Advance the coupled state from ``seconds`` (since 1970) by ``dt`` seconds (see the module docstring)."""
    lat, lon = planet.grid.mesh()
    air_psi, near_surface_psi, vorticity = air_flow(planet, state.vorticity, seconds, dt)
    s = transport(planet, state.surface, air_psi, near_surface_psi, seconds, dt)
    # Only the departure of insolation from its daily mean heats the surface directly (the
    # diurnal cycle); the daily mean acts through the air's seasonal equilibrium.
    mean_insolation = solar.daily_mean_insolation(lat, seconds)
    diurnal = SURFACE_SOLAR_FRACTION * (solar.insolation(lat, lon, seconds) - mean_insolation)
    s = land_surface_energy(planet, s, diurnal, dt)
    s = ocean_mixed_layer(planet, s, diurnal, mean_insolation, lat, seconds, dt)
    s = sea_ice(planet, s, dt)
    s = evaporation_and_precipitation(planet, s, dt)
    s = snowmelt(planet, s, dt)
    s = runoff(planet, s)
    s = air_temperature_relaxation(planet, s, lat, seconds, dt)
    return NatureState(s, vorticity)


# --- budgets ----------------------------------------------------------------------
def water_total(planet: Planet, s: SurfaceState) -> float:
    """Global water of the closed budget, kg (ocean freshwater as an anomaly)."""
    per_area = s.vapour + s.soil_water + s.snow + RHO_ICE * s.ice_volume + s.ocean_freshwater
    return float(np.sum(per_area * planet.grid.area))


def ocean_heat_content(sst: np.ndarray, thermocline: np.ndarray, mixed_layer_depth: float) -> np.ndarray:
    """Heat content of the mixed layer and thermocline relative to 0 degC, J m-2."""
    return WATER_HEAT_CAPACITY * (mixed_layer_depth * (sst - T_MELT) + THERMOCLINE_DEPTH * (thermocline - T_MELT))
