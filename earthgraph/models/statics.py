"""Static features: where a mesh node or a point is, and the surface under it.

A store's static fields (``earthgraph.data.statics``) come on a regular lat-lon grid:
``{"latitude", "longitude", "land_sea_mask"}`` and optionally ``geopotential_at_surface``
(m2 s-2). They reach the model twice: remapped conservatively onto the mesh once, as
node features (:func:`node_static_features`), and looked up at every observation and
query point (:class:`PointStatics`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from earthgraph.data.statics import GRAVITY
from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.graphs.remap import nearest_grid_cell, regular_grid_spacing
from earthgraph.models.features import node_position_features

# Static fields a point or mesh node carries: land-sea mask (fraction) and surface
# height in km (from ``geopotential_at_surface``; zero when the store has none).
STATIC_FIELDS = ("land_sea_mask", "orography_km")
POINT_STATIC_DIM = len(STATIC_FIELDS)


def static_feature_grids(static: dict | None) -> np.ndarray | None:
    """(len(STATIC_FIELDS), nlat, nlon) float32 feature grids from a store's static fields, or None."""
    if not static or "land_sea_mask" not in static:
        return None
    mask = np.asarray(static["land_sea_mask"], np.float32)
    height = np.zeros_like(mask)
    if "geopotential_at_surface" in static:
        height = np.asarray(static["geopotential_at_surface"], np.float32) / (GRAVITY * 1000.0)
    return np.stack([mask, height])


def node_static_features(mesh: MeshGraph, static: dict | None) -> torch.Tensor:
    """(N, 7 + len(STATIC_FIELDS)) float32: each mesh node's position features, then its cell's
    land fraction and mean surface height (km), remapped conservatively (zeros without static fields)."""
    node_fields = np.zeros((mesh.npix, len(STATIC_FIELDS)))
    grids = static_feature_grids(static)
    if grids is not None:
        remap = mesh.remap_from_grid(np.asarray(static["latitude"]), np.asarray(static["longitude"]))
        node_fields = remap.to_mesh(grids.astype(np.float64))[0].T
    return torch.cat([node_position_features(mesh.xyz, mesh.lat, mesh.lon), torch.from_numpy(node_fields).float()],
                     dim=1)


class PointStatics(nn.Module):
    """Static fields on a regular lat-lon grid, looked up at any points (nearest cell).

    Observations and decoder queries carry the surface under them: a skin
    temperature at a coastal point is a land or a sea temperature, which a
    mesh node's land fraction cannot tell. Without static fields every point
    gets zeros.
    """

    def __init__(self, static: dict | None):
        super().__init__()
        grids = static_feature_grids(static)
        if grids is not None:
            lat, lon = np.asarray(static["latitude"], np.float64), np.asarray(static["longitude"], np.float64)
            self.grid = (float(lat[0]), regular_grid_spacing(lat, "latitude"), len(lat),
                         float(lon[0]), regular_grid_spacing(lon, "longitude"), len(lon))
            table = grids.reshape(len(STATIC_FIELDS), -1).T.copy()  # (cells, fields)
        else:
            self.grid, table = None, np.zeros((0, POINT_STATIC_DIM), np.float32)
        self.register_buffer("table", torch.from_numpy(table), persistent=False)

    def forward(self, lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
        """(n,) radians -> (n, POINT_STATIC_DIM)."""
        if self.grid is None:
            return lat.new_zeros((len(lat), POINT_STATIC_DIM), dtype=torch.float32)
        cell = nearest_grid_cell(lat, lon, *self.grid)
        return self.table[cell]
