"""Truth sampling for the observing systems, streamed from lazily opened gridded fields.

:class:`TruthSampler` interpolates gridded truth bilinearly in space and
linearly in time at observation points. It never reads a whole field: it keeps
in memory only the time steps of one *held window* (the steps that the times of
the chunk being observed need, the step after the chunk's last one included,
for the interpolation in time), read from the (dask-backed or lazily indexed)
dataset field by field on first use and released when the window moves on. So
observing a long record costs memory in proportion to one chunk, not to the
record.

Time steps may be irregular (monthly means, a gap in a record): they are
located with a binary search. On a regular axis the step index comes from one
division, the arithmetic the nature-run OSSEs have always used, so their
observations stay bit-identical.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from earthgraph.data.gridded import GriddedError, check_time

FIELD_DIMS = ("time", "latitude", "longitude")


def time_weights(seconds: np.ndarray, t: np.ndarray, regular: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bracketing time steps of each time and the weight of the later one.

    seconds: (nt,) float64, the truth's steps (seconds since 1970, strictly increasing);
    t: (n,) float64 seconds. Returns k0, k1 (n,) int64 step indices and wt (n,)
    float64 in [0, 1], so that truth(t) = (1 - wt) * truth[k0] + wt * truth[k1].
    Times outside the steps take the first or last step.
    """
    t = np.asarray(t, np.float64)
    n = len(seconds)
    if n == 1:
        zero = np.zeros(t.shape, np.int64)
        return zero, zero, np.zeros(t.shape)
    if regular:
        # Kept exactly as the nature run's sampler always computed it (bit-identical stores).
        s = np.clip((t - seconds[0]) / (seconds[1] - seconds[0]), 0.0, n - 1.000001)
        k0 = np.floor(s).astype(np.int64)
        return k0, np.minimum(k0 + 1, n - 1), s - k0
    tc = np.clip(t, seconds[0], seconds[-1])
    k0 = np.clip(np.searchsorted(seconds, tc, side="right") - 1, 0, n - 2).astype(np.int64)
    wt = (tc - seconds[k0]) / (seconds[k0 + 1] - seconds[k0])
    return k0, k0 + 1, wt


def _check_regular_spacing(values: np.ndarray, name: str, file: str) -> None:
    """The bilinear stencil assumes equal spacing (a Gaussian grid would be sampled wrongly)."""
    if len(values) < 2:
        raise GriddedError(f"{file}: coordinate {name} has {len(values)} value(s); sampling needs at least 2")
    step = np.diff(values)
    if not np.allclose(step, step[0], rtol=1e-3, atol=0.0):
        raise GriddedError(f"{file}: coordinate {name} is not equally spaced (steps {step.min():g} .. "
                           f"{step.max():g} degrees); the observing systems sample regular latitude-longitude grids")


def _time_axis(truth: xr.Dataset, file: str) -> np.ndarray:
    """(nt,) float64 seconds since 1970 of the truth's steps; GriddedError unless they are dates
    (no NaT), strictly increasing."""
    check_time(truth, file)
    seconds = truth.time.values.astype("datetime64[s]").astype(np.int64).astype(np.float64)
    bad = np.nonzero(np.diff(seconds) <= 0)[0]
    if len(bad):
        at = truth.time.values[bad[0] + 1]
        raise GriddedError(f"{file}: coordinate time is not strictly increasing (at {at}); "
                           "sort the file by time and drop duplicate steps")
    return seconds


def land_mask(truth: xr.Dataset) -> np.ndarray:
    """(nlat, nlon) bool, land where the land fraction exceeds one half (first time step,
    if the mask has a time dimension, as ERA5's ``lsm`` does). GriddedError for a fraction
    outside [0, 1] or NaN, which would otherwise pass silently as sea."""
    da = truth["land_sea_mask"]
    if "time" in da.dims:
        da = da.isel(time=0)
    fraction = da.transpose("latitude", "longitude").values
    bad = ~((fraction >= 0.0) & (fraction <= 1.0))
    if bad.any():
        j, i = np.argwhere(bad)[0]
        file = truth.attrs.get("source_file", "the gridded truth")
        raise GriddedError(f"{file}, variable 'land_sea_mask': value {fraction[j, i]:g} at latitude "
                           f"{float(truth.latitude[j]):g}, longitude {float(truth.longitude[i]):g}; a land fraction "
                           "lies in [0, 1]")
    return fraction > 0.5


class TruthSampler:
    """Bilinear-in-space, linear-in-time interpolation of gridded truth, streamed.

    truth: fields ``(time, latitude, longitude)`` (any order of those dims), latitude
    ascending and longitude ascending in degrees, both equally spaced, and a
    ``land_sea_mask``. Fields may be dask-backed: only the held window's steps are read.

    Fields that exist on one surface only (SST, sea ice over the ocean; skin
    temperature, soil moisture over land) are NaN on the other. A point is
    interpolated from the corners of its stencil that have a value, with the
    bilinear weights renormalised over them, and is NaN when its nearest
    corner has none (the surface under it is the other one; see ``is_land``):
    a retrieval next to a coast sees the surface under it, as real coastal
    products do, and every grid cell of a surface is observed.
    """

    def __init__(self, truth: xr.Dataset):
        self.file = str(truth.attrs.get("source_file", "the gridded truth"))
        for name in ("latitude", "longitude"):
            _check_regular_spacing(truth[name].values.astype(np.float64), name, self.file)
        lon = truth.longitude.values.astype(np.float64)
        if abs(len(lon) * (lon[1] - lon[0]) - 360.0) > 1e-3 * (lon[1] - lon[0]):
            # The stencil wraps around the dateline: a regional grid would be sampled wrongly.
            raise GriddedError(f"{self.file}: coordinate longitude spans {len(lon)} x {lon[1] - lon[0]:g} degrees, "
                               "not the whole circle; the observing systems sample global grids")
        self.lat = np.radians(truth.latitude.values.astype(np.float64))
        self.lon = np.radians(truth.longitude.values.astype(np.float64))
        self.seconds = _time_axis(truth, self.file)
        step = np.diff(self.seconds)
        self.regular = bool(len(step) == 0 or np.all(step == step[0]))
        self.truth = truth
        self.land = land_mask(truth)
        self._held: tuple[int, int] | None = None  # first and last step in memory
        self._blocks: dict[str, np.ndarray] = {}  # field -> (steps of the held window, nlat, nlon)
        self.steps_read = 0  # (field, step) pairs read so far: what streaming costs in reads
        # Per field, the points sampled where it has no value (NaN: the other surface, missing
        # data): they give no observation (in that channel), and are counted, not dropped unseen.
        self.missing: dict[str, int] = {}

    @property
    def t_start(self) -> float:
        return float(self.seconds[0])

    @property
    def t_end(self) -> float:
        return float(self.seconds[-1])

    def hold(self, t0: float, t1: float) -> tuple[int, int]:
        """Keep in memory only the steps that times in [t0, t1) (seconds) interpolate from,
        read on first use; release every other step. Returns the held steps (first, last)."""
        k0, _, _ = time_weights(self.seconds, np.array([t0]), self.regular)
        # The largest time below t1 bounds every time of the chunk (the arithmetic is monotone).
        _, k1, _ = time_weights(self.seconds, np.array([np.nextafter(t1, -np.inf)]), self.regular)
        self._hold_steps(int(k0[0]), int(max(k1[0], k0[0])))
        return self._held

    def release(self) -> None:
        """Drop every held step."""
        self._held, self._blocks = None, {}

    def _hold_steps(self, first: int, last: int) -> None:
        if self._held != (first, last):
            self._held, self._blocks = (first, last), {}

    def _read(self, name: str, first: int, last: int) -> np.ndarray:
        """Steps first..last of field ``name``: (last - first + 1, nlat, nlon), read from the dataset."""
        if name not in self.truth:
            raise KeyError(f"truth has no variable {name!r}; it has {sorted(self.truth.data_vars)}")
        da = self.truth[name]
        if set(da.dims) != set(FIELD_DIMS):
            raise GriddedError(f"{self.file}, variable {name!r}: dims {list(da.dims)}; the observing systems "
                               f"sample fields with dims {list(FIELD_DIMS)} (select a level or member first)")
        self.steps_read += last - first + 1
        return da.isel(time=slice(first, last + 1)).transpose(*FIELD_DIMS).values

    def _steps(self, name: str, first: int, last: int) -> tuple[np.ndarray, int]:
        """The held block of ``name`` covering steps first..last, and the index of its first step.

        A request outside the held window (random access, as tests make) moves the window to it."""
        if self._held is None or first < self._held[0] or last > self._held[1]:
            self._hold_steps(first, last)
        if name not in self._blocks:
            self._blocks[name] = self._read(name, *self._held)
        return self._blocks[name], self._held[0]

    def _weights(self, lat, lon):
        nlat, nlon = len(self.lat), len(self.lon)
        dlat = self.lat[1] - self.lat[0]
        dlon = self.lon[1] - self.lon[0]
        y = np.clip((lat - self.lat[0]) / dlat, 0.0, nlat - 1.000001)
        j0 = np.floor(y).astype(np.int64)
        wy = y - j0
        x = np.mod(lon - self.lon[0], 2 * np.pi) / dlon
        i0 = np.floor(x).astype(np.int64) % nlon
        wx = x - np.floor(x)
        return j0, np.minimum(j0 + 1, nlat - 1), wy, i0, (i0 + 1) % nlon, wx

    def sample(self, name: str, seconds, lat_deg, lon_deg) -> np.ndarray:
        """Truth of ``name`` at points (degrees) and times (seconds since 1970): (n,) float64."""
        seconds = np.asarray(seconds, np.float64)
        if seconds.size == 0:
            return np.zeros(0)
        k0, k1, wt = time_weights(self.seconds, seconds, self.regular)
        f, first = self._steps(name, int(k0.min()), int(k1.max()))
        j0, j1, wy, i0, i1, wx = self._weights(np.radians(lat_deg), np.radians(lon_deg))

        corners = [(j0, i0, (1 - wy) * (1 - wx)), (j0, i1, (1 - wy) * wx), (j1, i0, wy * (1 - wx)), (j1, i1, wy * wx)]
        nearest = _nearest_corner(j0, j1, wy, i0, i1, wx)

        def at(k):
            k = k - first
            values = [f[k, j, i].astype(np.float64) for j, i, _ in corners]
            weights = [np.where(np.isfinite(v), w, 0.0) for v, (_, _, w) in zip(values, corners)]
            total = sum(weights)
            acc = sum(w * np.where(w > 0, v, 0.0) for v, w in zip(values, weights))
            return np.where(np.isfinite(f[(k, *nearest)]), acc / np.where(total > 0, total, 1.0), np.nan)

        out = (1 - wt) * at(k0) + wt * at(k1)
        self.missing[name] = self.missing.get(name, 0) + int(np.count_nonzero(np.isnan(out)))
        return out

    def is_land(self, lat_deg, lon_deg) -> np.ndarray:
        return self.land[_nearest_corner(*self._weights(np.radians(lat_deg), np.radians(lon_deg)))]


def _nearest_corner(j0, j1, wy, i0, i1, wx) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the grid point nearest each point, from ``TruthSampler._weights``."""
    return np.where(wy < 0.5, j0, j1), np.where(wx < 0.5, i0, i1)
