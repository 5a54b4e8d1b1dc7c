"""Top-of-atmosphere insolation: pure functions shared by the nature run and the
model's forcing features.

They take the array namespace as ``xp`` (``numpy``, the default, or ``torch``), as all
numpy/torch dual code in earthgraph does (:mod:`earthgraph.graphs.sphere`), so that the
same formula runs on grid arrays in float64 and on device tensors.
Angles are in radians unless a name says ``_deg``; times in seconds since
1970-01-01T00:00 UTC.
"""

from __future__ import annotations

import math

import numpy as np

SOLAR_CONSTANT = 1361.0  # W m-2
SECONDS_PER_DAY = 86400.0
DAYS_PER_YEAR = 365.2422
OBLIQUITY = math.radians(23.44)
# Day of year (0-based) of the March equinox, when the declination crosses zero.
MARCH_EQUINOX_DOY = 79.0


def day_of_year(seconds, xp=np):
    """Fractional day of year in [0, 365.24) for times in seconds since 1970."""
    days = seconds / SECONDS_PER_DAY
    # 1970-01-01 is day 0; the tropical year keeps the seasons from drifting.
    return xp.remainder(days, DAYS_PER_YEAR)


def declination(seconds, xp=np):
    """Solar declination (radians) for times in seconds since 1970."""
    phase = 2.0 * math.pi * (day_of_year(seconds, xp) - MARCH_EQUINOX_DOY) / DAYS_PER_YEAR
    return OBLIQUITY * xp.sin(phase)


def cos_zenith(lat, lon, seconds, xp=np):
    """Cosine of the solar zenith angle (may be negative at night).

    lat, lon: radians, broadcastable against ``seconds``.
    """
    hours_utc = xp.remainder(seconds, SECONDS_PER_DAY) / 3600.0
    hour_angle = 2.0 * math.pi * hours_utc / 24.0 + lon - math.pi
    dec = declination(seconds, xp)
    return xp.sin(lat) * xp.sin(dec) + xp.cos(lat) * xp.cos(dec) * xp.cos(hour_angle)


def insolation(lat, lon, seconds, xp=np):
    """Instantaneous top-of-atmosphere insolation, W m-2 (zero at night)."""
    return SOLAR_CONSTANT * xp.clip(cos_zenith(lat, lon, seconds, xp), 0.0, None)


def daily_mean_insolation(lat, seconds, xp=np):
    """Daily-mean top-of-atmosphere insolation (W m-2) at latitude ``lat``."""
    dec = declination(seconds, xp)
    tan_product = xp.clip(-xp.tan(lat) * xp.tan(dec), -1.0, 1.0)
    h0 = xp.arccos(tan_product)  # half-length of daylight, radians
    return (SOLAR_CONSTANT / math.pi) * (
        h0 * xp.sin(lat) * xp.sin(dec) + xp.cos(lat) * xp.cos(dec) * xp.sin(h0)
    )


def local_solar_time_angle(lon, seconds, xp=np):
    """Local solar time as an angle in [0, 2*pi): 0 at local midnight."""
    hours_utc = xp.remainder(seconds, SECONDS_PER_DAY) / 3600.0
    return xp.remainder(2.0 * math.pi * hours_utc / 24.0 + lon, 2.0 * math.pi)
