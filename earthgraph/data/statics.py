"""Static fields of the nature run's planet: land-sea mask and orography.

Real ones come from the 2-degree files that the ``climt`` package ships
(land mask from its land/sea/land-ice codes; orography from ETOPO 2022
surface geopotential; BSD licence). They are read in place, never copied into
this repository: from an installed ``climt``, or from a directory that
``python -m earthgraph.data fetch-statics`` fills by downloading the climt
wheel from PyPI without its dependencies and unpacking the two files.

When neither is present the nature run falls back to a documented synthetic
planet: smooth seeded continents covering ``land_fraction`` of the band within
70 degrees of the equator, an Antarctic cap, an open Arctic ocean, and seeded
mountain ranges on land. Which one a run used is recorded as ``source``.
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earthgraph.data.grid import LatLonGrid, regrid_conservative
from earthgraph.graphs.sphere import lat_lon_to_xyz

log = logging.getLogger(__name__)

CLIMT_VERSION = "0.31.0"
LAND_MASK_FILE = "land_mask/earth_landmask_2deg.nc"
OROGRAPHY_FILE = "topography/earth_topography_2deg.nc"
GRAVITY = 9.80665  # m s-2, as in the climt file's attributes


def default_statics_dir() -> Path:
    """Where ``fetch-statics`` puts the files unless told otherwise."""
    return Path.home() / ".cache" / "earthgraph" / "statics"


@dataclass(frozen=True)
class PlanetStatics:
    """land: (nlat, nlon) bool; orography_m: (nlat, nlon) surface height, m; source: provenance."""

    land: np.ndarray
    orography_m: np.ndarray
    source: str


class StaticsError(FileNotFoundError):
    """The requested static fields could not be found or read."""


def _climt_data_dirs() -> list[Path]:
    """Directories that may hold climt's ``_data`` tree, most specific first."""
    dirs = [default_statics_dir()]
    spec = importlib.util.find_spec("climt")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        dirs += [Path(p) / "_data" for p in spec.submodule_search_locations]
    return dirs


def find_climt_data(directory: str | Path | None = None) -> Path | None:
    """The directory holding climt's land-mask and topography files, or None."""
    for d in [Path(directory)] if directory is not None else _climt_data_dirs():
        if (d / LAND_MASK_FILE).is_file() and (d / OROGRAPHY_FILE).is_file():
            return d
    return None


def read_climt_statics(grid: LatLonGrid, data_dir: Path) -> PlanetStatics:
    """Regrid climt's 2-degree land mask and orography conservatively onto ``grid``.

    A cell is land when at least half its area is land or land ice on the 2-degree
    grid; its orography is the area mean of the surface height over that cell.
    """
    import xarray as xr

    mask_path, oro_path = data_dir / LAND_MASK_FILE, data_dir / OROGRAPHY_FILE
    try:
        with xr.open_dataset(mask_path) as m:
            code = m["area_type_code"].load()
        with xr.open_dataset(oro_path) as t:
            geopotential = t["surface_geopotential"].load()
    except (OSError, ValueError, KeyError) as err:
        raise StaticsError(f"cannot read climt static fields in {data_dir}: {err}") from err
    lat, lon = code["lat"].values, code["lon"].values
    land_fraction = regrid_conservative((code.values > 0).astype(float), lat, lon, grid)
    height = regrid_conservative(np.clip(geopotential.values / GRAVITY, 0.0, None), lat, lon, grid)
    land = land_fraction >= 0.5
    return PlanetStatics(land=land, orography_m=np.where(land, height, 0.0),
                         source=f"climt {CLIMT_VERSION} ({data_dir})")


def synthetic_statics(grid: LatLonGrid, land_fraction: float, seed: int) -> PlanetStatics:
    """A deterministic Earth-like planet: smooth random continents, an Antarctic cap
    (a 2.5 km plateau), the Arctic kept as ocean so that sea ice can form, and
    seeded mountain ranges up to about 3 km on land."""
    rng = np.random.default_rng(seed + 7919)
    lat, lon = grid.mesh()
    # (3, nlat, nlon), contiguous: the seeded planet depends on the order of the dot products below.
    x = np.ascontiguousarray(np.moveaxis(lat_lon_to_xyz(lat, lon), -1, 0))

    def smooth_field(n_waves: int, k_lo: float, k_hi: float) -> np.ndarray:
        out = np.zeros_like(lat)
        for _ in range(n_waves):
            k = rng.normal(size=3)
            k *= rng.uniform(k_lo, k_hi) / np.linalg.norm(k)
            out += np.cos(np.tensordot(k, x, axes=1) + rng.uniform(0, 2 * np.pi)) / np.linalg.norm(k)
        return out

    continents = smooth_field(24, 1.0, 3.5)
    band = np.abs(lat) < np.radians(70)
    threshold = np.quantile(continents[band], 1.0 - land_fraction)
    antarctica = lat < np.radians(-68)
    land = ((continents > threshold) & band) | antarctica
    ridges = smooth_field(16, 3.0, 6.0)
    ridges = np.clip((ridges - ridges.mean()) / ridges.std(), 0.0, None)
    height = 200.0 + 1200.0 * ridges
    height = np.where(antarctica, 2500.0, height)
    return PlanetStatics(land=land, orography_m=np.where(land, height, 0.0),
                         source=f"synthetic (seed {seed}, land_fraction {land_fraction})")


def load_statics(grid: LatLonGrid, source: str = "synthetic", land_fraction: float = 0.3,
                 seed: int = 0) -> PlanetStatics:
    """Static fields for a nature run on ``grid``.

    source: ``"synthetic"``, ``"climt"`` (the real fields, fetched from PyPI when
        this machine does not have them: the same fields either way), or a
        directory holding climt's ``_data`` files. ``"auto"`` (climt's if found, else
        synthetic, with a warning) is kept for the configs of old nature runs (the
        perfect-model baseline reruns them); it is no longer offered, since its
        output depended on a machine's cache.
    """
    if source == "synthetic":
        return synthetic_statics(grid, land_fraction, seed)
    if source == "climt":
        return read_climt_statics(grid, find_climt_data() or fetch_climt_statics())
    directory = None if source == "auto" else source
    found = find_climt_data(directory)
    if found is not None:
        return read_climt_statics(grid, found)
    if source == "auto":
        log.warning("climt's land mask and orography not found (run `python -m earthgraph.data fetch-statics`); "
                    "using the synthetic planet")
        return synthetic_statics(grid, land_fraction, seed)
    where = directory or " or ".join(str(d) for d in _climt_data_dirs())
    raise StaticsError(f"climt static fields ({LAND_MASK_FILE}, {OROGRAPHY_FILE}) not found in {where}; "
                       "run `python -m earthgraph.data fetch-statics`")


def fetch_climt_statics(out_dir: str | Path | None = None) -> Path:
    """Download climt's wheel from PyPI (no dependencies) and unpack its two static files.

    Returns the directory that now holds them. Needs access to PyPI; writes the
    files atomically, so an interrupted fetch leaves nothing half-written.
    """
    out = Path(out_dir) if out_dir is not None else default_statics_dir()
    if find_climt_data(out) is not None:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--only-binary", ":all:",
               "-d", tmp, f"climt=={CLIMT_VERSION}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("climt-*.whl"))
        if result.returncode != 0 or not wheels:
            raise StaticsError(f"could not download climt {CLIMT_VERSION} from PyPI: {result.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in (LAND_MASK_FILE, OROGRAPHY_FILE):
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_suffix(".partial")
                partial.write_bytes(wheel.read(f"climt/_data/{name}"))
                partial.replace(target)
    return out
