"""The nature run: a coupled four-sphere toy Earth on a lat-lon grid, and its truth.

It is the known truth of earthgraph's observing-system simulation experiment
(OSSE). Deliberately simple, but every sphere is coupled to the ones it
touches and the water budget is closed:

- atmosphere: near-surface air temperature and column water vapour, carried by
  the air flow, relaxed to a seasonal radiative equilibrium (colder over high
  ground) and to the surface, with evaporation and condensation into
  precipitation (rain or snow). The flow, and so the weather, comes from
  ``NatureRunConfig.atmosphere``: ``vorticity`` (the default) is a chaotic
  barotropic vorticity model (seasonal jets, flow over orography, stirring;
  :mod:`~earthgraph.data.vorticity`) whose weather has error-doubling times of a
  few days; ``waves`` (the quickstart's) is prescribed westerlies plus travelling
  planetary waves (:mod:`~earthgraph.data.travelling_waves`), smooth in time and
  not chaotic, which small CPU models learn in minutes;
- ocean: a mixed layer (SST) heated by the sun, exchanging heat with the air
  and with a thermocline layer beneath it, both advected by gyres; their heat
  content is the ocean heat content that Argo-like floats profile; and a
  freshwater reservoir;
- land: a soil-water bucket with runoff to the ocean, land-surface
  temperature with a diurnal cycle, snow that accumulates and melts, on the
  real land-sea mask and orography where available (``statics``);
- cryosphere: sea-ice volume and concentration with freezing, melting and an
  ice-albedo feedback.

The equations, one named step each, are in :mod:`~earthgraph.data.nature_physics`.
This module builds the planet from a :class:`NatureRunConfig`, spins the state
up, integrates it and writes the truth (:func:`run_nature`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, get_args

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.data.grid import LatLonGrid
from earthgraph.data.nature_physics import (
    SOIL_CAPACITY,
    T_FREEZE_SEA,
    NatureState,
    Planet,
    SurfaceState,
    air_equilibrium,
    ocean_equilibrium,
    ocean_heat_content,
    saturation_vapour,
    step,
    water_total,
)
from earthgraph.data.spherical_harmonics import GaussianGrid
from earthgraph.data.statics import GRAVITY, load_statics
from earthgraph.data.travelling_waves import TravellingWaves, centre_winds
from earthgraph.data.vorticity import BarotropicModel, JetForcing, grid_rms, scaled_to_grid_rms, spin_up_noise
from earthgraph.progress import progress

Atmosphere = Literal["vorticity", "waves"]
ATMOSPHERES: tuple[str, ...] = get_args(Atmosphere)

# The state the spin-up starts from: air at its equilibrium, the jets at rest.
INITIAL_RELATIVE_HUMIDITY = 0.6  # 1, column vapour as a fraction of saturation
INITIAL_SOIL_WETNESS = 0.5  # 1, soil water as a fraction of the bucket
INITIAL_ICE_EDGE_DEG = 65.0  # degrees latitude: sea ice poleward of it
INITIAL_ICE_VOLUME = 0.5  # m of ice per cell area
INITIAL_ICE_CONCENTRATION = 0.9  # 1
INITIAL_VORTICITY_NOISE = 1e-6  # s-1, grid RMS of the seeded noise that picks the weather

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
    # What drives the weather: "vorticity", the chaotic barotropic vorticity model; "waves",
    # the prescribed, non-chaotic westerlies plus travelling waves (``travelling_waves``).
    atmosphere: Atmosphere = "vorticity"
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
    # Ignored by ``atmosphere="waves"``, whose flow is prescribed.
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
        if self.atmosphere not in ATMOSPHERES:
            raise ValueError(f"NatureRunConfig: atmosphere={self.atmosphere!r}; expected 'vorticity' or 'waves'")
        lo, hi = self.stirring_wavenumbers
        if not 1 <= lo <= hi <= self.truncation:
            raise ValueError(f"NatureRunConfig: stirring_wavenumbers={self.stirring_wavenumbers} must lie in "
                             f"[1, truncation={self.truncation}]")


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
    """The static fields, dynamics and forcings of ``config``'s run."""
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
        mixed_layer_depth_m=config.mixed_layer_depth_m, coast_free_corner=ocean_corner,
    )


def initial_state(planet: Planet, seconds: float, seed: int) -> NatureState:
    """The state the spin-up starts from at ``seconds`` (since 1970): air at its seasonal
    equilibrium, sea at the deep ocean's, polar sea ice, and (under the vorticity model)
    the jets at rest plus seeded noise, whose seed picks the weather."""
    grid = planet.grid
    lat, _ = grid.mesh()
    t_air = air_equilibrium(lat, seconds, planet.altitude_cooling_K)
    vorticity = None
    if planet.waves is None:
        vorticity = planet.vorticity_target(seconds) + spin_up_noise(planet.atmosphere, seed, INITIAL_VORTICITY_NOISE)
    sst = np.maximum(ocean_equilibrium(lat, seconds), T_FREEZE_SEA)
    no_ice = planet.land | (np.abs(lat) < np.radians(INITIAL_ICE_EDGE_DEG))
    surface = SurfaceState(
        air_temperature=t_air,
        vapour=INITIAL_RELATIVE_HUMIDITY * saturation_vapour(t_air),
        sst=np.where(planet.land, T_FREEZE_SEA, sst),
        thermocline=np.where(planet.land, T_FREEZE_SEA, sst),
        lst=t_air.copy(),
        soil_water=np.where(planet.land, INITIAL_SOIL_WETNESS * SOIL_CAPACITY, 0.0),
        snow=np.zeros_like(t_air),
        ice_volume=np.where(no_ice, 0.0, INITIAL_ICE_VOLUME),
        ice_concentration=np.where(no_ice, 0.0, INITIAL_ICE_CONCENTRATION),
        ocean_freshwater=np.zeros_like(t_air),
    )
    return NatureState(surface, vorticity)


def winds(planet: Planet, state: NatureState, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(nlat, nlon) eastward and northward wind at cell centres at ``seconds``, m s-1: the
    vorticity model's (the flow aloft), or the travelling waves'."""
    if planet.waves is None:
        return planet.atmosphere.grid_winds(state.vorticity)
    return centre_winds(planet.grid, planet.waves.corner_streamfunction(planet.grid, seconds))


def diagnose(planet: Planet, state: NatureState, seconds: float) -> dict[str, np.ndarray]:
    """The :data:`VARIABLES` of a state at time ``seconds``: (nlat, nlon) each, in their units,
    NaN where a variable does not exist (sea fields over land and the reverse)."""
    land, ocean = planet.land, planet.ocean
    s = state.surface
    u, v = winds(planet, state, seconds)
    nan = np.nan
    return {
        "air_temperature": s.air_temperature,
        "total_column_water_vapour": s.vapour,
        "sea_surface_temperature": np.where(ocean, s.sst, nan),
        "thermocline_temperature": np.where(ocean, s.thermocline, nan),
        "ocean_heat_content": np.where(ocean, ocean_heat_content(s.sst, s.thermocline, planet.mixed_layer_depth_m),
                                       nan),
        "land_surface_temperature": np.where(land, s.lst, nan),
        "soil_moisture": np.where(land, s.soil_water / SOIL_CAPACITY, nan),
        "snow_water_equivalent": np.where(land, s.snow, nan),
        "sea_ice_concentration": np.where(ocean, s.ice_concentration, nan),
        "sea_ice_thickness": np.where(ocean, s.ice_volume / np.maximum(s.ice_concentration, 1e-6), nan),
        "u_component_of_wind": u,
        "v_component_of_wind": v,
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


def integrate(planet: Planet, state: NatureState, seconds: float, n_steps: int,
              config: NatureRunConfig) -> tuple[NatureState, float]:
    """Advance ``state`` (valid at ``seconds`` since 1970) by ``n_steps`` steps of ``config.dt_minutes``.

    Returns the new state and its clock. The clock is accumulated step by step, as
    every caller must do for its trajectory to match the truth bit for bit.
    """
    dt = config.dt_minutes * 60.0
    for _ in range(n_steps):
        state = step(planet, state, seconds, dt)
        seconds += dt
    return state, seconds


def spun_up_state(planet: Planet, config: NatureRunConfig) -> tuple[NatureState, float]:
    """The state at ``config.start`` (after ``spinup_days`` of spin-up and the twin-run
    ``perturbation`` of the vorticity model's vorticity, if any) and its clock in seconds since 1970."""
    dt = config.dt_minutes * 60.0
    start = pd.Timestamp(config.start)
    t0 = (start - pd.Timestamp("1970-01-01")).total_seconds()
    seconds = t0 - config.spinup_days * 86400.0
    state = initial_state(planet, seconds, config.seed)
    n_spin = int(round(config.spinup_days * 86400.0 / dt))
    state, seconds = integrate(planet, state, seconds, n_spin, config)

    if config.perturbation and state.vorticity is not None:
        rms = grid_rms(planet.atmosphere.gaussian, state.vorticity)
        noise = spin_up_noise(planet.atmosphere, config.seed + 104729, config.perturbation * rms)
        state = NatureState(state.surface, state.vorticity + noise)
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
        for k, v in diagnose(planet, state, seconds).items():
            out[k][n] = v
        totals[n] = water_total(planet, state.surface)

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
