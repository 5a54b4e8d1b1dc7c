"""Observing systems: observation operators with realistic geometry, errors and gaps.

Each system samples gridded truth (the nature run's, or a user's reanalysis;
bilinear in space, linear in time) along its own geometry: fixed stations,
drifting buoys and floats, swaths of sun-synchronous polar orbiters, discs of
geostationary imagers (:mod:`~earthgraph.data.observing_geometry`). It adds
Gaussian errors with the channel's declared standard deviation, drops
observations where the measured quantity does not exist (SST over land,
clouds for infrared imagers) and loses a few at random (gaps).

The systems are one registry, :data:`OBSERVING_SYSTEMS`: for each, an
:class:`ObservingSystem` record names its observation type (from
:mod:`~earthgraph.data.obs_types`), the gridded variables it reads and its
sampling function. :class:`ObservingNetwork` places the platforms over one
truth and runs any system by name.

Output of every system: a dict of columns ``time`` (int64 seconds since
1970), ``lat``/``lon`` (float64 degrees, lon in [-180, 180)), ``values`` and
``error`` (float32, (n, C)) and one float32 column per metadata field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import xarray as xr

from earthgraph.data import obs_types
from earthgraph.data.nature_physics import saturation_vapour
from earthgraph.data.observing_geometry import (
    geostationary_discs,
    polar_orbit_swaths,
    random_points_on_sphere,
    scan_times,
    wrap_longitude,
)
from earthgraph.data.sampler import TruthSampler  # lived here before it streamed: still importable from here

# Clear sky for the infrared imagers: column vapour at most this fraction of saturation.
CLOUD_RELATIVE_HUMIDITY = 0.775  # 1
# Sea-ice concentration above which no sea-surface retrieval is made and no float surfaces.
ICE_COVERED = 0.15  # 1


@dataclass
class ObservingConfig:
    """Sizes of the observing systems; ``scale`` multiplies every count."""

    seed: int = 0
    scale: float = 1.0
    synop_land_stations: int = 500
    synop_ships: int = 400
    # Polar orbiters are given by the local solar times of their ascending nodes.
    sounder_crossing_hours: tuple[float, ...] = (21.5, 13.5)  # Metop, NOAA-20
    sounder_line_every_s: float = 160.0
    geo_points_per_hour: int = 60
    amv_points_per_hour: int = 120  # drawn over the sphere per satellite; about a quarter fall on its disc
    drifters: int = 300
    argo_floats: int = 3800
    argo_cycle_days: float = 10.0
    retrieval_line_every_s: float = 150.0
    retrieval_crossing_hours: tuple[float, ...] = (13.5, 18.0)  # GCOM-W, SMAP
    # Infrared imagers on several platforms with different equator-crossing times
    # sample the diurnal cycle; together they scan as many lines as one retrieval platform.
    ir_imager_crossing_hours: tuple[float, ...] = (13.5, 21.5, 22.5, 17.5)  # Aqua, Metop, Terra, NOAA
    # Microwave imagers at three crossing times (AMSR2, SSMIS, MWRI-like).
    mw_imager_crossing_hours: tuple[float, ...] = (13.5, 17.7, 10.0)
    mw_imager_line_every_s: float = 300.0  # per satellite
    gap_fraction: float = 0.03

    def n(self, count: int) -> int:
        return max(1, int(round(count * self.scale)))


@dataclass(frozen=True)
class Sampled:
    """What a system's platforms saw in a window, before errors and gaps: (n,) arrays of
    time (s since 1970), lat, lon (degrees), one of truth per channel of the observation
    type (in its order and units; NaN where the channel does not exist), and one per
    metadata field."""

    t: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    values: list[np.ndarray]
    metadata: dict[str, np.ndarray]


@dataclass(frozen=True)
class ObservingSystem:
    """A built-in observing system.

    ``obs_type``: the observation type it makes (its name is the system's).
    ``requires``: the gridded variables its observation operator reads (every system
    also needs ``land_sea_mask``). ``sample(network, t0, t1, rng)``: where and what the
    platforms of ``network`` see in [t0, t1); ``rng`` is the system's stream for the
    window, which then draws the errors and gaps. ``exact_zero``: where the truth is
    zero the retrieval reports exactly zero (open water for sea ice, bare ground for
    snow), as such products flag them.
    """

    obs_type: obs_types.ObservationType
    requires: tuple[str, ...]
    sample: Callable[[ObservingNetwork, float, float, np.random.Generator], Sampled]
    exact_zero: bool = False

    @property
    def name(self) -> str:
        return self.obs_type.name


class ObservingNetwork:
    """The platforms of every built-in observing system over one gridded truth.

    truth: gridded fields on a regular lat-lon grid with a ``land_sea_mask``
    (:class:`~earthgraph.data.sampler.TruthSampler`). Stations, ships, drifting buoys
    and Argo floats are placed once, from ``config.seed``.
    """

    def __init__(self, truth: xr.Dataset, config: ObservingConfig | None = None):
        if "land_sea_mask" not in truth:
            raise KeyError(f"gridded truth {truth.attrs.get('source_file', '')!r} has no land_sea_mask variable; "
                           "every observing system needs it to tell land from sea")
        self.config = cfg = config or ObservingConfig()
        self.sampler = TruthSampler(truth)
        n_stations, n_ships, n_buoys = cfg.n(cfg.synop_land_stations), cfg.n(cfg.synop_ships), cfg.n(cfg.drifters)
        lat, lon = random_points_on_sphere(np.random.default_rng(cfg.seed), 40 * n_stations)
        on_land = self.sampler.is_land(lat, lon)
        self.station_lat, self.station_lon = lat[on_land][:n_stations], lon[on_land][:n_stations]
        sea_lat, sea_lon = lat[~on_land], lon[~on_land]
        self.ship_lat, self.ship_lon = sea_lat[:n_ships], sea_lon[:n_ships]
        self.buoy_lat, self.buoy_lon = sea_lat[-n_buoys:], sea_lon[-n_buoys:]
        # Argo floats: their own draw, so adding them left the other networks as they were.
        float_rng = np.random.default_rng([cfg.seed, 2000])
        n_floats = cfg.n(cfg.argo_floats)
        lat, lon = random_points_on_sphere(float_rng, 3 * n_floats)
        wet = ~self.sampler.is_land(lat, lon) & (np.abs(lat) < 70.0)
        self.float_lat, self.float_lon = lat[wet][:n_floats], lon[wet][:n_floats]
        self.float_phase = float_rng.uniform(0.0, cfg.argo_cycle_days * 86400.0, size=len(self.float_lat))

    def _rng(self, name: str, t0: float) -> np.random.Generator:
        # Each (system, window) has its own stream, so windows can be made in any order.
        key = [self.config.seed, int(t0) // 60, sum(ord(c) * 31**i for i, c in enumerate(name)) % (2**31)]
        return np.random.default_rng(key)

    def observe(self, name: str, t0: float, t1: float) -> dict[str, np.ndarray]:
        """Observations of system ``name`` with times in [t0, t1), as columns (module docstring)."""
        system = observing_system(name)
        rng = self._rng(name, t0)
        sampled = system.sample(self, t0, t1, rng)
        return with_errors_and_gaps(system, sampled, rng, self.config.gap_fraction)


def with_errors_and_gaps(system: ObservingSystem, sampled: Sampled, rng: np.random.Generator,
                         gap_fraction: float) -> dict[str, np.ndarray]:
    """Add errors, clip to the valid range, drop a random ``gap_fraction`` and rows with no
    value in any channel, sort by time. A channel the scene does not allow stays NaN
    (missing) in a row that has other channels. Returns the columns (module docstring)."""
    ot = system.obs_type
    t, lat, lon = sampled.t, sampled.lat, sampled.lon
    values = np.stack(sampled.values, axis=-1)
    err = np.array([c.error for c in ot.channels])
    noise = rng.normal(size=values.shape) * err
    if system.exact_zero:
        noise = np.where(values <= 0.0, 0.0, noise)
    values = values + noise
    lo = np.array([c.valid_min for c in ot.channels])
    hi = np.array([c.valid_max for c in ot.channels])
    values = np.clip(values, lo, hi)
    keep = np.any(np.isfinite(values), axis=1) & (rng.uniform(size=len(t)) >= gap_fraction)
    order = np.argsort(t[keep], kind="stable")
    cols = {
        "time": np.round(t[keep][order]).astype(np.int64),
        "lat": lat[keep][order].astype(np.float64),
        "lon": wrap_longitude(lon[keep][order]).astype(np.float64),
        "values": values[keep][order].astype(np.float32),
        "error": np.broadcast_to(err, values.shape)[keep][order].astype(np.float32),
    }
    for k in ot.metadata:
        cols[k] = np.asarray(sampled.metadata[k])[keep][order].astype(np.float32)
    return cols


# --- the sampling functions ----------------------------------------------------------
def clear_sky_skin(sampler: TruthSampler, t, lat, lon) -> np.ndarray:
    """(n,) skin temperature (K) where an infrared imager sees it: LST over land, SST over
    ice-free ocean, NaN under cloud (column vapour above CLOUD_RELATIVE_HUMIDITY of saturation)."""
    land = sampler.is_land(lat, lon)
    lst = sampler.sample("land_surface_temperature", t, lat, lon)
    sst = sampler.sample("sea_surface_temperature", t, lat, lon)
    ice = sampler.sample("sea_ice_concentration", t, lat, lon)
    skin = np.where(land, lst, np.where(ice > ICE_COVERED, np.nan, sst))
    tcwv = sampler.sample("total_column_water_vapour", t, lat, lon)
    tair = sampler.sample("air_temperature", t, lat, lon)
    return np.where(tcwv / saturation_vapour(tair) > CLOUD_RELATIVE_HUMIDITY, np.nan, skin)


def sample_synop(net: ObservingNetwork, t0: float, t1: float, rng: np.random.Generator) -> Sampled:
    """Land stations and ships every 3 h; ships wander a few degrees around their route over days."""
    hours = scan_times(t0, t1, 10800.0)
    lat = np.concatenate([net.station_lat, net.ship_lat])
    lon = np.concatenate([net.station_lon, net.ship_lon])
    ids = np.tile(np.arange(len(lat)), len(hours))
    t = np.repeat(hours, len(lat))
    la = np.tile(lat, len(hours))
    lo = np.tile(lon, len(hours)).astype(np.float64).copy()
    ship = ids >= len(net.station_lat)
    lo[ship] += 3.0 * np.sin(2 * np.pi * t[ship] / (9 * 86400.0) + ids[ship])
    ok = net.sampler.is_land(la, lo) | ship
    t, la, lo, sid = t[ok], la[ok], lo[ok], ids[ok].astype(np.float32)
    return Sampled(t, la, lo, [net.sampler.sample("air_temperature", t, la, lo)], {"station_id": sid})


def sample_mw_sounder(net: ObservingNetwork, t0: float, t1: float, rng: np.random.Generator) -> Sampled:
    """Microwave sounders: a column temperature channel and column water vapour along swaths."""
    cfg = net.config
    t, lat, lon, scan = polar_orbit_swaths(
        t0, t1, crossing_hours=cfg.sounder_crossing_hours, swath_half_width_km=1100.0, n_scan=9,
        line_every_s=cfg.sounder_line_every_s / cfg.scale, seed=cfg.seed + 1)
    temp = net.sampler.sample("air_temperature", t, lat, lon)
    tcwv = net.sampler.sample("total_column_water_vapour", t, lat, lon)
    # The temperature channel sees the column: a weighted mix of the near-surface
    # temperature and a lapse-rate-shifted layer above it; limb cooling with scan angle.
    tb = 0.55 * temp + 0.45 * (temp - 25.0) - 0.002 * scan**2
    return Sampled(t, lat, lon, [tb, tcwv], {"scan_angle": scan})


def _imager_swaths(net: ObservingNetwork, t0: float, t1: float, crossing_hours: tuple[float, ...],
                   line_every_s: float, seed_offset: int):
    """Scan positions of polar-orbiting imagers/radiometers with a 1400 km half-swath."""
    return polar_orbit_swaths(t0, t1, crossing_hours=crossing_hours, swath_half_width_km=1400.0, n_scan=11,
                              line_every_s=line_every_s / net.config.scale, seed=net.config.seed + seed_offset)


def sample_leo_ir(net: ObservingNetwork, t0: float, t1: float, rng: np.random.Generator) -> Sampled:
    """Polar-orbiting infrared imagers: clear-sky skin temperature."""
    hours = net.config.ir_imager_crossing_hours
    t, lat, lon, scan = _imager_swaths(net, t0, t1, hours, len(hours) * net.config.retrieval_line_every_s, 14)
    return Sampled(t, lat, lon, [clear_sky_skin(net.sampler, t, lat, lon)], {"scan_angle": scan})


def sample_geo_ir(net: ObservingNetwork, t0: float, t1: float, rng: np.random.Generator) -> Sampled:
    """Geostationary infrared imagers: clear-sky skin temperature, hourly, out to 65 degrees zenith."""
    t, lat, lon, zen = geostationary_discs(rng, t0, t1, net.config.n(net.config.geo_points_per_hour) * 8, 65.0)
    return Sampled(t, lat, lon, [clear_sky_skin(net.sampler, t, lat, lon)], {"satellite_zenith": zen})


def sample_amv(net: ObservingNetwork, t0: float, t1: float, rng: np.random.Generator) -> Sampled:
    """Winds tracked from cloud motion, where the discs are not too oblique (zenith < 60 degrees)."""
    t, lat, lon, zen = geostationary_discs(rng, t0, t1, net.config.n(net.config.amv_points_per_hour), 60.0)
    u = net.sampler.sample("u_component_of_wind", t, lat, lon)
    v = net.sampler.sample("v_component_of_wind", t, lat, lon)
    return Sampled(t, lat, lon, [u, v], {"satellite_zenith": zen})


def sample_mw_imager(net: ObservingNetwork, t0: float, t1: float, rng: np.random.Generator) -> Sampled:
    """Conically scanning microwave imagers see the surface through cloud: land-surface
    temperature over land, sea-surface temperature over ice-free sea."""
    cfg = net.config
    t, lat, lon, scan = polar_orbit_swaths(
        t0, t1, crossing_hours=cfg.mw_imager_crossing_hours, swath_half_width_km=725.0, n_scan=7,
        line_every_s=cfg.mw_imager_line_every_s / cfg.scale, seed=cfg.seed + 15)
    land = net.sampler.is_land(lat, lon)
    lst = net.sampler.sample("land_surface_temperature", t, lat, lon)
    sst = net.sampler.sample("sea_surface_temperature", t, lat, lon)
    ice = net.sampler.sample("sea_ice_concentration", t, lat, lon)
    lst = np.where(land, lst, np.nan)
    sst = np.where(land | (ice > ICE_COVERED), np.nan, sst)
    return Sampled(t, lat, lon, [lst, sst], {"scan_angle": scan})


def sample_drifter(net: ObservingNetwork, t0: float, t1: float, rng: np.random.Generator) -> Sampled:
    """Drifting buoys report SST hourly, wandering smoothly (about 30 km a day) around their
    deployment; ice-tethered ones keep reporting the water under the ice."""
    hours = scan_times(t0, t1, 3600.0)
    ids = np.arange(len(net.buoy_lat))
    t = np.repeat(hours, len(ids))
    phase = np.tile(ids, len(hours)) * 0.37
    lat = np.tile(net.buoy_lat, len(hours)) + 1.5 * np.sin(2 * np.pi * t / (23 * 86400.0) + phase)
    lon = np.tile(net.buoy_lon, len(hours)) + 2.5 * np.sin(2 * np.pi * t / (31 * 86400.0) + 2 * phase)
    lat = np.clip(lat, -89.0, 89.0)
    sst = net.sampler.sample("sea_surface_temperature", t, lat, lon)
    return Sampled(t, lat, lon, [sst], {"buoy_id": np.tile(ids, len(hours)).astype(float)})


def sample_argo(net: ObservingNetwork, t0: float, t1: float, rng: np.random.Generator) -> Sampled:
    """Argo floats profile where they surface, every ``argo_cycle_days``, never under sea ice."""
    cycle = net.config.argo_cycle_days * 86400.0
    # Float i surfaces at phase_i + k * cycle: at most one profile per float per window.
    k = np.ceil((t0 - net.float_phase) / cycle)
    t = net.float_phase + k * cycle
    ids = np.nonzero(t < t1)[0]
    t = t[ids]
    # Floats drift slowly at their parking depth: a few degrees over months.
    lat = np.clip(net.float_lat[ids] + 2.0 * np.sin(2 * np.pi * t / (97 * 86400.0) + ids), -89.0, 89.0)
    lon = net.float_lon[ids] + 3.0 * np.sin(2 * np.pi * t / (131 * 86400.0) + 0.5 * ids)
    ice = net.sampler.sample("sea_ice_concentration", t, lat, lon)
    wet = ~net.sampler.is_land(lat, lon) & ~(ice > ICE_COVERED)
    t, lat, lon, ids = t[wet], lat[wet], lon[wet], ids[wet]
    values = [net.sampler.sample(v, t, lat, lon) for v in
              ("sea_surface_temperature", "thermocline_temperature", "ocean_heat_content")]
    return Sampled(t, lat, lon, values, {"float_id": ids.astype(float)})


def _retrieval(net: ObservingNetwork, t0: float, t1: float, variable: str,
               where: Callable[[np.ndarray, np.ndarray], np.ndarray], seed_offset: int) -> Sampled:
    """A one-channel retrieval of ``variable`` along the retrieval platforms' swaths, kept
    where ``where(lat, lon)`` holds."""
    t, lat, lon, scan = _imager_swaths(net, t0, t1, net.config.retrieval_crossing_hours,
                                       net.config.retrieval_line_every_s, seed_offset)
    keep = where(lat, lon)
    t, lat, lon, scan = t[keep], lat[keep], lon[keep], scan[keep]
    return Sampled(t, lat, lon, [net.sampler.sample(variable, t, lat, lon)], {"scan_angle": scan})


def sample_seaice_conc(net: ObservingNetwork, t0: float, t1: float, rng: np.random.Generator) -> Sampled:
    """Passive-microwave sea-ice concentration over the whole ocean (zero where ice-free)."""
    return _retrieval(net, t0, t1, "sea_ice_concentration", lambda la, lo: ~net.sampler.is_land(la, lo), 11)


def sample_snow(net: ObservingNetwork, t0: float, t1: float, rng: np.random.Generator) -> Sampled:
    """Snow water equivalent over land poleward of 25 degrees."""
    return _retrieval(net, t0, t1, "snow_water_equivalent",
                      lambda la, lo: (np.abs(la) > 25.0) & net.sampler.is_land(la, lo), 12)


def sample_soil_moisture(net: ObservingNetwork, t0: float, t1: float, rng: np.random.Generator) -> Sampled:
    """Soil moisture over land."""
    return _retrieval(net, t0, t1, "soil_moisture", lambda la, lo: net.sampler.is_land(la, lo), 13)


# --- the registry ----------------------------------------------------------------------
_SKIN = ("land_surface_temperature", "sea_surface_temperature", "sea_ice_concentration")
_CLEAR_SKY_SKIN = _SKIN + ("air_temperature", "total_column_water_vapour")

# Read-only, in the order a store lists them when every system runs.
OBSERVING_SYSTEMS: Mapping[str, ObservingSystem] = MappingProxyType({s.name: s for s in (
    ObservingSystem(obs_types.SYNOP, ("air_temperature",), sample_synop),
    ObservingSystem(obs_types.MW_SOUNDER, ("air_temperature", "total_column_water_vapour"), sample_mw_sounder),
    ObservingSystem(obs_types.AMV, ("u_component_of_wind", "v_component_of_wind"), sample_amv),
    ObservingSystem(obs_types.GEO_IR, _CLEAR_SKY_SKIN, sample_geo_ir),
    ObservingSystem(obs_types.LEO_IR, _CLEAR_SKY_SKIN, sample_leo_ir),
    ObservingSystem(obs_types.MW_IMAGER, _SKIN, sample_mw_imager),
    ObservingSystem(obs_types.DRIFTER, ("sea_surface_temperature",), sample_drifter),
    ObservingSystem(obs_types.ARGO, ("sea_surface_temperature", "thermocline_temperature", "ocean_heat_content",
                                     "sea_ice_concentration"), sample_argo),
    ObservingSystem(obs_types.SEAICE_CONC, ("sea_ice_concentration",), sample_seaice_conc, exact_zero=True),
    ObservingSystem(obs_types.SNOW, ("snow_water_equivalent",), sample_snow, exact_zero=True),
    ObservingSystem(obs_types.SOIL_MOISTURE, ("soil_moisture",), sample_soil_moisture),
)})


def observing_system(name: str) -> ObservingSystem:
    """The built-in system ``name``; KeyError naming the known ones."""
    try:
        return OBSERVING_SYSTEMS[name]
    except KeyError:
        raise KeyError(f"no observing system {name!r}; known: {tuple(OBSERVING_SYSTEMS)}") from None


def systems_for(truth: xr.Dataset) -> tuple[str, ...]:
    """The systems whose every required variable ``truth`` holds, in registry order."""
    return tuple(name for name, system in OBSERVING_SYSTEMS.items()
                 if all(v in truth.data_vars for v in system.requires))
