"""Moving gridded fields onto the mesh.

First version: the mean of the grid cells whose centres fall in each mesh
cell, with nearest-cell fill for mesh cells that contain no grid centre.
(The conservative, overlap-area remapping replaces it in the graphs issue.)
"""

from __future__ import annotations

import numpy as np
import torch

from earthgraph.graphs.healpix import HealpixMesh, ang2pix_nested


def grid_to_healpix_mean(mesh: HealpixMesh, lat_deg: np.ndarray, lon_deg: np.ndarray, field: np.ndarray) -> np.ndarray:
    """(nlat, nlon) field on a lat-lon grid -> (npix,) values on the mesh."""
    lat2, lon2 = np.meshgrid(np.radians(lat_deg), np.radians(lon_deg), indexing="ij")
    pix = ang2pix_nested(mesh.nside, torch.from_numpy(lat2.ravel()), torch.from_numpy(lon2.ravel())).numpy()
    w = np.cos(lat2.ravel())
    total = np.bincount(pix, weights=w * field.ravel(), minlength=mesh.npix)
    weight = np.bincount(pix, weights=w, minlength=mesh.npix)
    out = np.where(weight > 0, total / np.maximum(weight, 1e-300), np.nan)
    empty = np.flatnonzero(weight == 0)
    if len(empty):
        grid_xyz = np.stack([np.cos(lat2) * np.cos(lon2), np.cos(lat2) * np.sin(lon2), np.sin(lat2)], -1).reshape(-1, 3)
        nearest = np.argmax(mesh.xyz[empty] @ grid_xyz.T, axis=1)
        out[empty] = field.ravel()[nearest]
    return out


def regular_grid_spacing(coord_deg: np.ndarray, name: str) -> float:
    """Spacing (degrees) of an ascending, evenly spaced 1-D coordinate; raises otherwise."""
    coord = np.asarray(coord_deg, dtype=np.float64)
    if coord.ndim != 1 or len(coord) < 2:
        raise ValueError(f"regular grid: {name} must be 1-D with at least 2 values, got shape {coord.shape}")
    step = np.diff(coord)
    if np.any(step <= 0) or np.ptp(step) > 1e-6 * abs(step[0]):
        raise ValueError(f"regular grid: {name} is not ascending and evenly spaced (steps {step.min()}..{step.max()} deg)")
    return float(step[0])


def nearest_grid_cell(lat: torch.Tensor, lon: torch.Tensor, lat0_deg: float, dlat_deg: float, nlat: int,
                      lon0_deg: float, dlon_deg: float, nlon: int) -> torch.Tensor:
    """Flat index (row * nlon + column) of the regular lat-lon grid cell nearest to
    each point. lat, lon: (n,) radians; grid given by its first centre and spacing
    in degrees, longitudes periodic. Returns (n,) int64 on the points' device."""
    i = torch.round((torch.rad2deg(lat.double()) - lat0_deg) / dlat_deg).long().clamp(0, nlat - 1)
    j = torch.round((torch.rad2deg(lon.double()) - lon0_deg) / dlon_deg).long().remainder(nlon)
    return i * nlon + j
