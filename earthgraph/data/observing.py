"""Observing systems: observation operators with realistic geometry, errors and gaps.

Each system samples the nature run's truth (bilinear in space, linear in time)
along its own geometry: fixed stations, drifting buoys, swaths of
sun-synchronous polar orbiters, discs of geostationary imagers. It adds
Gaussian errors with the channel's declared standard deviation, drops
observations where the measured quantity does not exist (SST over land,
clouds for infrared imagers) and loses a few at random (gaps).

Output of every system: a dict of columns ``time`` (int64 seconds since
1970), ``lat``/``lon`` (float64 degrees, lon in [-180, 180)), ``values`` and
``error`` (float32, (n, C)) and one float32 column per metadata field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from earthgraph.data import obs_types
from earthgraph.data.grid import EARTH_RADIUS
from earthgraph.data.sampler import TruthSampler  # lived here before it streamed: still importable from here

SIDEREAL_DAY = 86164.1
YEAR_SECONDS = 365.2422 * 86400.0


def _unit_vectors(lat_deg, lon_deg):
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def _to_latlon(xyz):
    xyz = xyz / np.linalg.norm(xyz, axis=-1, keepdims=True)
    lat = np.degrees(np.arcsin(np.clip(xyz[..., 2], -1, 1)))
    lon = np.degrees(np.arctan2(xyz[..., 1], xyz[..., 0]))
    return lat, wrap_longitude(lon)


def wrap_longitude(lon_deg):
    """Longitudes into [-180, 180)."""
    return np.mod(np.asarray(lon_deg) + 180.0, 360.0) - 180.0


def random_points_on_sphere(rng: np.random.Generator, n: int):
    """n points uniform in area; (lat, lon) in degrees."""
    z = rng.uniform(-1, 1, n)
    lon = rng.uniform(-180, 180, n)
    return np.degrees(np.arcsin(z)), lon


def polar_orbit_swaths(t0: float, t1: float, *, crossing_hours: tuple[float, ...], swath_half_width_km: float,
                       n_scan: int, line_every_s: float, seed: int, altitude_km: float = 830.0):
    """Scan positions of sun-synchronous polar orbiters between t0 and t1 (s).

    One satellite per entry of ``crossing_hours``: the local solar time of its
    ascending node (13.5 for a 13:30 orbit); it then sees every place at that
    local time and twelve hours later, which is what lets a constellation
    sample the diurnal cycle. Returns time (s), lat, lon (degrees) and scan
    angle from nadir (degrees). Each orbit is a fixed function of time, so
    consecutive windows continue the same ground tracks.
    """
    inclination = math.radians(98.7)
    period = 2 * math.pi * math.sqrt((EARTH_RADIUS + altitude_km * 1e3) ** 3 / 3.986e14)
    n_satellites = len(crossing_hours)
    # The node's Earth-fixed longitude turns back once per solar day (below), so the
    # node longitude at 00 UTC of any day is its local solar time, in degrees.
    node0 = np.radians(15.0 * np.asarray(crossing_hours, dtype=np.float64))
    phase0 = np.random.default_rng(seed).uniform(0, 2 * np.pi, n_satellites)
    first = math.ceil(t0 / line_every_s)
    t = np.arange(first, math.floor((t1 - 1e-6) / line_every_s) + 1) * line_every_s
    if len(t) == 0:
        return (np.zeros(0),) * 4
    central = np.linspace(-1, 1, n_scan) * swath_half_width_km * 1e3 / EARTH_RADIUS
    out_t, out_xyz, out_scan = [], [], []
    for k in range(n_satellites):
        u = phase0[k] + 2 * np.pi * t / period
        node = node0[k] + 2 * np.pi * t / YEAR_SECONDS - 2 * np.pi * t / SIDEREAL_DAY
        orbit = np.stack([np.cos(u), np.sin(u) * math.cos(inclination), np.sin(u) * math.sin(inclination)], -1)
        velocity = np.stack([-np.sin(u), np.cos(u) * math.cos(inclination), np.cos(u) * math.sin(inclination)], -1)
        c, s = np.cos(node), np.sin(node)

        def rot(v):
            return np.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1], v[:, 2]], -1)

        r, v = rot(orbit), rot(velocity)
        cross = np.cross(r, v)
        pts = np.cos(central)[None, :, None] * r[:, None, :] + np.sin(central)[None, :, None] * cross[:, None, :]
        out_xyz.append(pts.reshape(-1, 3))
        out_t.append(np.repeat(t, n_scan))
        scan = np.degrees(np.arctan2(EARTH_RADIUS * np.sin(np.abs(central)),
                                     EARTH_RADIUS + altitude_km * 1e3 - EARTH_RADIUS * np.cos(central)))
        out_scan.append(np.tile(np.sign(central) * scan, len(t)))
    lat, lon = _to_latlon(np.concatenate(out_xyz))
    return np.concatenate(out_t), lat, lon, np.concatenate(out_scan)


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


class ObservingNetwork:
    """All built-in observing systems over one nature run."""

    GEO_LONGITUDES = (0.0, 75.0, 140.0, -135.0, -75.0)

    def __init__(self, truth: xr.Dataset, config: ObservingConfig | None = None):
        if "land_sea_mask" not in truth:
            raise KeyError(f"gridded truth {truth.attrs.get('source_file', '')!r} has no land_sea_mask variable; "
                           "every observing system needs it to tell land from sea")
        self.config = config or ObservingConfig()
        self.sampler = TruthSampler(truth)
        rng = np.random.default_rng(self.config.seed)
        lat, lon = random_points_on_sphere(rng, 40 * self.config.n(self.config.synop_land_stations))
        on_land = self.sampler.is_land(lat, lon)
        n_land = self.config.n(self.config.synop_land_stations)
        self.station_lat, self.station_lon = lat[on_land][:n_land], lon[on_land][:n_land]
        self.ship_lat, self.ship_lon = lat[~on_land][: self.config.n(self.config.synop_ships)], lon[~on_land][: self.config.n(self.config.synop_ships)]
        self.buoy_lat, self.buoy_lon = lat[~on_land][-self.config.n(self.config.drifters):], lon[~on_land][-self.config.n(self.config.drifters):]
        # Argo floats: their own draw, so adding them leaves the other networks as they were.
        float_rng = np.random.default_rng([self.config.seed, 2000])
        lat, lon = random_points_on_sphere(float_rng, 3 * self.config.n(self.config.argo_floats))
        wet = ~self.sampler.is_land(lat, lon) & (np.abs(lat) < 70.0)
        n_floats = self.config.n(self.config.argo_floats)
        self.float_lat, self.float_lon = lat[wet][:n_floats], lon[wet][:n_floats]
        self.float_phase = float_rng.uniform(0.0, self.config.argo_cycle_days * 86400.0, size=len(self.float_lat))

    # -- helpers ----------------------------------------------------------
    def _finish(self, name: str, t, lat, lon, truth_values: list[np.ndarray], meta: dict, rng,
                exact_zero: bool = False) -> dict:
        """Add errors, clip to the valid range, drop random gaps and rows with no
        value in any channel, sort by time. A channel the scene does not allow
        stays NaN (missing) in a row that has other channels.

        ``exact_zero``: where the truth is zero the retrieval reports exactly zero
        (open water for sea ice, bare ground for snow), as such products flag them.
        """
        ot = obs_types.get(name)
        values = np.stack(truth_values, axis=-1)
        err = np.array([c.error for c in ot.channels])
        noise = rng.normal(size=values.shape) * err
        if exact_zero:
            noise = np.where(values <= 0.0, 0.0, noise)
        values = values + noise
        lo = np.array([c.valid_min for c in ot.channels])
        hi = np.array([c.valid_max for c in ot.channels])
        values = np.clip(values, lo, hi)
        keep = np.any(np.isfinite(values), axis=1) & (rng.uniform(size=len(t)) >= self.config.gap_fraction)
        order = np.argsort(t[keep], kind="stable")
        cols = {
            "time": np.round(t[keep][order]).astype(np.int64),
            "lat": lat[keep][order].astype(np.float64),
            "lon": wrap_longitude(lon[keep][order]).astype(np.float64),
            "values": values[keep][order].astype(np.float32),
            "error": np.broadcast_to(err, values.shape)[keep][order].astype(np.float32),
        }
        for k in ot.metadata:
            cols[k] = np.asarray(meta[k])[keep][order].astype(np.float32)
        return cols

    def _rng(self, name: str, t0: float) -> np.random.Generator:
        # Each (system, window) has its own stream, so windows can be made in any order.
        key = [self.config.seed, int(t0) // 60, sum(ord(c) * 31**i for i, c in enumerate(name)) % (2**31)]
        return np.random.default_rng(key)

    # -- systems ------------------------------------------------------------
    def synop(self, t0: float, t1: float) -> dict:
        rng = self._rng("synop", t0)
        hours = np.arange(math.ceil(t0 / 10800), math.floor((t1 - 1e-6) / 10800) + 1) * 10800.0
        lat = np.concatenate([self.station_lat, self.ship_lat])
        lon = np.concatenate([self.station_lon, self.ship_lon])
        # Ships wander a few degrees around their route over days.
        n_st = len(self.station_lat)
        t = np.repeat(hours, len(lat))
        la = np.tile(lat, len(hours))
        lo = np.tile(lon, len(hours)).astype(np.float64).copy()
        ship = np.tile(np.arange(len(lat)) >= n_st, len(hours))
        lo[ship] += 3.0 * np.sin(2 * np.pi * t[ship] / (9 * 86400.0) + np.tile(np.arange(len(lat)), len(hours))[ship])
        sid = np.tile(np.arange(len(lat)), len(hours)).astype(np.float32)
        ok = self.sampler.is_land(la, lo) | ship
        t, la, lo, sid = t[ok], la[ok], lo[ok], sid[ok]
        return self._finish("synop", t, la, lo, [self.sampler.sample("air_temperature", t, la, lo)], {"station_id": sid}, rng)

    def mw_sounder(self, t0: float, t1: float) -> dict:
        rng = self._rng("mw_sounder", t0)
        t, lat, lon, scan = polar_orbit_swaths(
            t0, t1, crossing_hours=self.config.sounder_crossing_hours, swath_half_width_km=1100.0, n_scan=9,
            line_every_s=self.config.sounder_line_every_s / self.config.scale, seed=self.config.seed + 1)
        temp = self.sampler.sample("air_temperature", t, lat, lon)
        tcwv = self.sampler.sample("total_column_water_vapour", t, lat, lon)
        # The temperature channel sees the column: a weighted mix of the near-surface
        # temperature and a lapse-rate-shifted layer above it; limb cooling with scan angle.
        tb = 0.55 * temp + 0.45 * (temp - 25.0) - 0.002 * scan**2
        return self._finish("mw_sounder", t, lat, lon, [tb, tcwv], {"scan_angle": scan}, rng)

    def _clear_sky_skin(self, t, lat, lon) -> np.ndarray:
        """Skin temperature where an infrared imager sees it: LST over land, SST over
        ice-free ocean, NaN under cloud (column relative humidity above 0.775)."""
        land = self.sampler.is_land(lat, lon)
        lst = self.sampler.sample("land_surface_temperature", t, lat, lon)
        sst = self.sampler.sample("sea_surface_temperature", t, lat, lon)
        ice = self.sampler.sample("sea_ice_concentration", t, lat, lon)
        skin = np.where(land, lst, np.where(ice > 0.15, np.nan, sst))
        tcwv = self.sampler.sample("total_column_water_vapour", t, lat, lon)
        tair = self.sampler.sample("air_temperature", t, lat, lon)
        rh = tcwv / (12.0 * np.exp(0.065 * (tair - 273.15)))
        return np.where(rh > 0.775, np.nan, skin)

    def _imager_swaths(self, t0: float, t1: float, crossing_hours: tuple[float, ...], line_every_s: float,
                       seed_offset: int):
        """Scan positions of polar-orbiting imagers/radiometers with a 1400 km half-swath."""
        return polar_orbit_swaths(
            t0, t1, crossing_hours=crossing_hours, swath_half_width_km=1400.0, n_scan=11,
            line_every_s=line_every_s / self.config.scale, seed=self.config.seed + seed_offset)

    def leo_ir(self, t0: float, t1: float) -> dict:
        rng = self._rng("leo_ir", t0)
        hours = self.config.ir_imager_crossing_hours
        t, lat, lon, scan = self._imager_swaths(t0, t1, hours, len(hours) * self.config.retrieval_line_every_s, 14)
        return self._finish("leo_ir", t, lat, lon, [self._clear_sky_skin(t, lat, lon)], {"scan_angle": scan}, rng)

    def _geo_discs(self, rng, t0: float, t1: float, points_per_hour: int, max_zenith_deg: float):
        """Hourly points on the discs of the five geostationary satellites: (t, lat, lon, zenith angle)."""
        hours = np.arange(math.ceil(t0 / 3600), math.floor((t1 - 1e-6) / 3600) + 1) * 3600.0
        ts, las, los, zen = [], [], [], []
        for sub_lon in self.GEO_LONGITUDES:
            sub = _unit_vectors(0.0, sub_lon)
            for h in hours:
                lat, lon = random_points_on_sphere(rng, points_per_hour)
                angle = np.degrees(np.arccos(np.clip(_unit_vectors(lat, lon) @ sub, -1, 1)))
                disc = angle < max_zenith_deg
                ts.append(np.full(disc.sum(), h)); las.append(lat[disc]); los.append(lon[disc]); zen.append(angle[disc])
        return tuple(map(np.concatenate, (ts, las, los, zen)))

    def geo_ir(self, t0: float, t1: float) -> dict:
        rng = self._rng("geo_ir", t0)
        t, lat, lon, zen = self._geo_discs(rng, t0, t1, self.config.n(self.config.geo_points_per_hour) * 8, 65.0)
        return self._finish("geo_ir", t, lat, lon, [self._clear_sky_skin(t, lat, lon)], {"satellite_zenith": zen}, rng)

    def amv(self, t0: float, t1: float) -> dict:
        """Winds tracked from cloud motion, where the discs are not too oblique (zenith < 60 degrees)."""
        rng = self._rng("amv", t0)
        t, lat, lon, zen = self._geo_discs(rng, t0, t1, self.config.n(self.config.amv_points_per_hour), 60.0)
        u = self.sampler.sample("u_component_of_wind", t, lat, lon)
        v = self.sampler.sample("v_component_of_wind", t, lat, lon)
        return self._finish("amv", t, lat, lon, [u, v], {"satellite_zenith": zen}, rng)

    def mw_imager(self, t0: float, t1: float) -> dict:
        """Conically scanning microwave imagers see the surface through cloud: land-surface
        temperature over land, sea-surface temperature over ice-free sea."""
        rng = self._rng("mw_imager", t0)
        t, lat, lon, scan = polar_orbit_swaths(
            t0, t1, crossing_hours=self.config.mw_imager_crossing_hours, swath_half_width_km=725.0, n_scan=7,
            line_every_s=self.config.mw_imager_line_every_s / self.config.scale, seed=self.config.seed + 15)
        land = self.sampler.is_land(lat, lon)
        lst = self.sampler.sample("land_surface_temperature", t, lat, lon)
        sst = self.sampler.sample("sea_surface_temperature", t, lat, lon)
        ice = self.sampler.sample("sea_ice_concentration", t, lat, lon)
        lst = np.where(land, lst, np.nan)
        sst = np.where(land | (ice > 0.15), np.nan, sst)
        return self._finish("mw_imager", t, lat, lon, [lst, sst], {"scan_angle": scan}, rng)

    def drifter(self, t0: float, t1: float) -> dict:
        rng = self._rng("drifter", t0)
        hours = np.arange(math.ceil(t0 / 3600), math.floor((t1 - 1e-6) / 3600) + 1) * 3600.0
        n = len(self.buoy_lat)
        # Smooth, deterministic wandering (about 30 km per day) around each deployment.
        ids = np.arange(n)
        t = np.repeat(hours, n)
        phase = np.tile(ids, len(hours)) * 0.37
        lat = np.tile(self.buoy_lat, len(hours)) + 1.5 * np.sin(2 * np.pi * t / (23 * 86400.0) + phase)
        lon = np.tile(self.buoy_lon, len(hours)) + 2.5 * np.sin(2 * np.pi * t / (31 * 86400.0) + 2 * phase)
        lat = np.clip(lat, -89.0, 89.0)
        # Ice-tethered buoys keep reporting the water temperature under the ice.
        sst = self.sampler.sample("sea_surface_temperature", t, lat, lon)
        return self._finish("drifter", t, lat, lon, [sst], {"buoy_id": np.tile(ids, len(hours)).astype(float)}, rng)

    def argo(self, t0: float, t1: float) -> dict:
        rng = self._rng("argo", t0)
        cycle = self.config.argo_cycle_days * 86400.0
        # Float i surfaces at phase_i + k * cycle: at most one profile per float per window.
        k = np.ceil((t0 - self.float_phase) / cycle)
        t = self.float_phase + k * cycle
        ids = np.nonzero(t < t1)[0]
        t = t[ids]
        # Floats drift slowly at their parking depth: a few degrees over months.
        lat = np.clip(self.float_lat[ids] + 2.0 * np.sin(2 * np.pi * t / (97 * 86400.0) + ids), -89.0, 89.0)
        lon = self.float_lon[ids] + 3.0 * np.sin(2 * np.pi * t / (131 * 86400.0) + 0.5 * ids)
        ice = self.sampler.sample("sea_ice_concentration", t, lat, lon)
        wet = ~self.sampler.is_land(lat, lon) & ~(ice > 0.15)  # a float under ice cannot surface
        t, lat, lon, ids = t[wet], lat[wet], lon[wet], ids[wet]
        values = [self.sampler.sample(v, t, lat, lon) for v in
                  ("sea_surface_temperature", "thermocline_temperature", "ocean_heat_content")]
        return self._finish("argo", t, lat, lon, values, {"float_id": ids.astype(float)}, rng)

    def _retrieval(self, name: str, variable: str, t0: float, t1: float, where, seed_offset: int,
                   exact_zero: bool = False) -> dict:
        rng = self._rng(name, t0)
        t, lat, lon, scan = self._imager_swaths(t0, t1, self.config.retrieval_crossing_hours,
                                                self.config.retrieval_line_every_s, seed_offset)
        keep = where(lat, lon)
        t, lat, lon, scan = t[keep], lat[keep], lon[keep], scan[keep]
        return self._finish(name, t, lat, lon, [self.sampler.sample(variable, t, lat, lon)], {"scan_angle": scan}, rng,
                            exact_zero=exact_zero)

    def seaice_conc(self, t0: float, t1: float) -> dict:
        # Passive-microwave products cover the whole ocean (zero where ice-free).
        return self._retrieval("seaice_conc", "sea_ice_concentration", t0, t1,
                               lambda la, lo: ~self.sampler.is_land(la, lo), 11, exact_zero=True)

    def snow(self, t0: float, t1: float) -> dict:
        return self._retrieval("snow", "snow_water_equivalent", t0, t1,
                               lambda la, lo: (np.abs(la) > 25.0) & self.sampler.is_land(la, lo), 12, exact_zero=True)

    def soil_moisture(self, t0: float, t1: float) -> dict:
        return self._retrieval("soil_moisture", "soil_moisture", t0, t1,
                               lambda la, lo: self.sampler.is_land(la, lo), 13)

    SYSTEMS = ("synop", "mw_sounder", "amv", "geo_ir", "leo_ir", "mw_imager", "drifter", "argo", "seaice_conc", "snow",
               "soil_moisture")
    _SKIN = ("land_surface_temperature", "sea_surface_temperature", "sea_ice_concentration")
    # The gridded variables each system's observation operator reads (all also need land_sea_mask).
    REQUIRES = {
        "synop": ("air_temperature",),
        "mw_sounder": ("air_temperature", "total_column_water_vapour"),
        "amv": ("u_component_of_wind", "v_component_of_wind"),
        "geo_ir": _SKIN + ("air_temperature", "total_column_water_vapour"),
        "leo_ir": _SKIN + ("air_temperature", "total_column_water_vapour"),
        "mw_imager": _SKIN,
        "drifter": ("sea_surface_temperature",),
        "argo": ("sea_surface_temperature", "thermocline_temperature", "ocean_heat_content", "sea_ice_concentration"),
        "seaice_conc": ("sea_ice_concentration",),
        "snow": ("snow_water_equivalent",),
        "soil_moisture": ("soil_moisture",),
    }

    @classmethod
    def systems_for(cls, truth: xr.Dataset) -> tuple[str, ...]:
        """The systems whose every required variable ``truth`` holds."""
        return tuple(n for n in cls.SYSTEMS if all(v in truth.data_vars for v in cls.REQUIRES[n]))

    def observe(self, name: str, t0: float, t1: float) -> dict:
        """Observations of system ``name`` with times in [t0, t1)."""
        if name not in self.SYSTEMS:
            raise KeyError(f"no observing system {name!r}; known: {self.SYSTEMS}")
        return getattr(self, name)(t0, t1)
