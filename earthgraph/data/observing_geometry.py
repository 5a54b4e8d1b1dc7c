"""Where and when the observing platforms look: random sites, sun-synchronous swaths, geostationary discs.

Pure functions of time and a random generator. Angles are in degrees unless a
name says otherwise; longitudes come back in [-180, 180); times are seconds
since 1970.
"""

from __future__ import annotations

import math

import numpy as np

from earthgraph.data.grid import EARTH_RADIUS
from earthgraph.graphs.sphere import lat_lon_from_xyz, lat_lon_to_xyz, normalise

SIDEREAL_DAY = 86164.1  # s
YEAR_SECONDS = 365.2422 * 86400.0  # s, the tropical year
GRAVITATIONAL_PARAMETER = 3.986e14  # m3 s-2, the Earth's G M
SUN_SYNCHRONOUS_INCLINATION_DEG = 98.7
POLAR_ORBIT_ALTITUDE_KM = 830.0
# Sub-satellite longitudes of the five geostationary imagers (Meteosat, Meteosat-IODC,
# Himawari, GOES-West, GOES-East).
GEO_LONGITUDES = (0.0, 75.0, 140.0, -135.0, -75.0)


def wrap_longitude(lon_deg):
    """Longitudes into [-180, 180)."""
    return np.mod(np.asarray(lon_deg) + 180.0, 360.0) - 180.0


def random_points_on_sphere(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform in area; (lat, lon) in degrees, each (n,)."""
    z = rng.uniform(-1, 1, n)
    lon = rng.uniform(-180, 180, n)
    return np.degrees(np.arcsin(z)), lon


def unit_vectors(lat_deg, lon_deg) -> np.ndarray:
    """(..., 3) unit vectors of points at ``lat_deg``, ``lon_deg`` (degrees)."""
    return lat_lon_to_xyz(np.radians(lat_deg), np.radians(lon_deg))


def lat_lon_deg(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) vectors of any length -> latitude and longitude in [-180, 180), degrees."""
    lat, lon = lat_lon_from_xyz(normalise(xyz))
    return np.degrees(lat), wrap_longitude(np.degrees(lon))


def scan_times(t0: float, t1: float, every_s: float) -> np.ndarray:
    """(n,) the multiples of ``every_s`` seconds in [t0, t1)."""
    return np.arange(math.ceil(t0 / every_s), math.floor((t1 - 1e-6) / every_s) + 1) * every_s


def polar_orbit_swaths(t0: float, t1: float, *, crossing_hours: tuple[float, ...], swath_half_width_km: float,
                       n_scan: int, line_every_s: float, seed: int, altitude_km: float = POLAR_ORBIT_ALTITUDE_KM):
    """Scan positions of sun-synchronous polar orbiters between t0 and t1 (s).

    One satellite per entry of ``crossing_hours``: the local solar time of its
    ascending node (13.5 for a 13:30 orbit); it then sees every place at that
    local time and twelve hours later, which is what lets a constellation
    sample the diurnal cycle. Returns (n,) arrays of time (s), lat, lon (degrees)
    and scan angle from nadir (degrees), ``n_scan`` per scan line. Each orbit is a
    fixed function of time, so consecutive windows continue the same ground tracks.
    """
    inclination = math.radians(SUN_SYNCHRONOUS_INCLINATION_DEG)
    period = 2 * math.pi * math.sqrt((EARTH_RADIUS + altitude_km * 1e3) ** 3 / GRAVITATIONAL_PARAMETER)
    n_satellites = len(crossing_hours)
    # The node's Earth-fixed longitude turns back once per solar day (below), so the
    # node longitude at 00 UTC of any day is its local solar time, in degrees.
    node0 = np.radians(15.0 * np.asarray(crossing_hours, dtype=np.float64))
    phase0 = np.random.default_rng(seed).uniform(0, 2 * np.pi, n_satellites)
    t = scan_times(t0, t1, line_every_s)
    if len(t) == 0:
        return (np.zeros(0),) * 4
    central = np.linspace(-1, 1, n_scan) * swath_half_width_km * 1e3 / EARTH_RADIUS  # radians across track
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
    lat, lon = lat_lon_deg(np.concatenate(out_xyz))
    return np.concatenate(out_t), lat, lon, np.concatenate(out_scan)


def geostationary_discs(rng: np.random.Generator, t0: float, t1: float, points_per_hour: int,
                        max_zenith_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hourly points on the discs of the :data:`GEO_LONGITUDES` satellites in [t0, t1).

    Each hour, each satellite draws ``points_per_hour`` points uniform on the sphere
    and keeps those it sees at a zenith angle (the angle at the Earth's centre
    between point and sub-satellite point) below ``max_zenith_deg``. Returns (n,)
    arrays of time (s), lat, lon and zenith angle (degrees).
    """
    hours = scan_times(t0, t1, 3600.0)
    ts, las, los, zen = [], [], [], []
    for sub_lon in GEO_LONGITUDES:
        sub = unit_vectors(0.0, sub_lon)
        for h in hours:
            lat, lon = random_points_on_sphere(rng, points_per_hour)
            angle = np.degrees(np.arccos(np.clip(unit_vectors(lat, lon) @ sub, -1, 1)))
            disc = angle < max_zenith_deg
            ts.append(np.full(disc.sum(), h))
            las.append(lat[disc])
            los.append(lon[disc])
            zen.append(angle[disc])
    return tuple(map(np.concatenate, (ts, las, los, zen)))
