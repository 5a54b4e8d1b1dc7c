"""Forcing features: what the sun does at each mesh node and at each point, computed, never learned.

Times are seconds since 1970 (float64 inside, since float32 cannot resolve seconds of a
year); latitudes and longitudes are radians; insolations are divided by 500 W m-2 so that
every feature is of order one.
"""

from __future__ import annotations

import math

import torch

from earthgraph.data import solar
from earthgraph.data.batch import ObsSet

FORCING_DIM = 6
"""Features of :func:`window_forcing`, per mesh node."""
POINT_FORCING_DIM = 6
"""Features of :func:`point_forcing`, per point."""
INSOLATION_HISTORY_HOURS = (3.0, 6.0)  # surface temperatures answer sunlight with a lag of hours
INSOLATION_SCALE = 500.0
"""W m-2 that one unit of an insolation feature stands for."""


def node_position_features(xyz: torch.Tensor, lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
    """(N, 3) unit positions, (N,) lat/lon -> (N, 7): unit position, then sin and cos of latitude and of longitude."""
    return torch.cat([xyz, torch.stack([torch.sin(lat), torch.cos(lat), torch.sin(lon), torch.cos(lon)], dim=1)], dim=1)


def window_forcing(lat: torch.Tensor, lon: torch.Tensor, window_start: torch.Tensor, window_seconds: float) -> torch.Tensor:
    """(B,) window starts (s since 1970), (N,) node lat/lon -> (B, N, FORCING_DIM):
    cosine of the solar zenith angle at the window's start, middle and end,
    daily-mean insolation (/ 500 W m-2), and the day of year as sin/cos."""
    t = window_start.double()[:, None]
    la, lo = lat.double()[None, :], lon.double()[None, :]
    feats = [solar.cos_zenith(la, lo, t + f * window_seconds, xp=torch) for f in (0.0, 0.5, 1.0)]
    feats.append(solar.daily_mean_insolation(la, t + 0.5 * window_seconds, xp=torch) / INSOLATION_SCALE + 0 * lo)
    doy = 2 * math.pi * solar.day_of_year(t, xp=torch) / solar.DAYS_PER_YEAR
    feats += [torch.sin(doy).expand_as(feats[0]), torch.cos(doy).expand_as(feats[0])]
    return torch.stack(feats, dim=-1).float()


def mean_insolation(lat: torch.Tensor, lon: torch.Tensor, t: torch.Tensor, hours: float, samples: int = 4) -> torch.Tensor:
    """Top-of-atmosphere insolation (W m-2) averaged over the ``hours`` before ``t``
    (s since 1970), by the midpoint rule; like GraphCast's accumulated TOA flux."""
    step = hours * 3600.0 / samples
    acc = torch.zeros_like(t)
    for k in range(samples):
        acc = acc + solar.insolation(lat, lon, t - (k + 0.5) * step, xp=torch)
    return acc / samples


def point_forcing(o: ObsSet, window_start: torch.Tensor, window_seconds: float) -> torch.Tensor:
    """(n, POINT_FORCING_DIM) at each point's own time: cosine of the solar zenith
    angle, daily-mean insolation, local solar time as sin/cos (which tells morning
    from afternoon, unlike the zenith angle), and the insolation averaged over the
    past ``INSOLATION_HISTORY_HOURS`` (insolations / 500 W m-2). ``window_start``: (B,)
    s since 1970, indexed by each point's sample."""
    t = window_start.double()[o.sample] + o.time.double() * window_seconds
    lat, lon = o.lat.double(), o.lon.double()
    lst = solar.local_solar_time_angle(lon, t, xp=torch)
    history = [mean_insolation(lat, lon, t, h) / INSOLATION_SCALE for h in INSOLATION_HISTORY_HOURS]
    return torch.stack([
        solar.cos_zenith(lat, lon, t, xp=torch),
        solar.daily_mean_insolation(lat, t, xp=torch) / INSOLATION_SCALE,
        torch.sin(lst), torch.cos(lst), *history,
    ], dim=-1).float()
