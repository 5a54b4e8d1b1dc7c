"""Point location on a mesh, in torch on the points' device.

For a HEALPix mesh the containing cell is :func:`ang2pix_nested` itself. For
any other mesh (the icosahedral one) the containing cell of a point is its
nearest node (cells are Voronoi cells), found through a bucket index: a
coarse HEALPix grid whose every pixel lists the mesh nodes that can be
nearest to some point inside it. A query is one ``ang2pix`` plus a fixed-width
gather and argmin, with no data-dependent loops, so it runs unchanged on a
GPU; the table is built once on the CPU (and cached with the mesh).

Why the candidate list is exact: a point p in lookup pixel P lies within
``r_P`` (the pixel radius) of P's centre c, and within ``R`` (the largest Voronoi
cell radius) of its nearest node n, so ``d(c, n) <= r_P + R``. Listing every
node within that distance of c cannot miss n.
"""

from __future__ import annotations

import healpy
import numpy as np
import torch
from scipy.spatial import cKDTree

from earthgraph.graphs.healpix import HealpixMesh, ang2pix_nested
from earthgraph.graphs.sphere import candidate_chords2, lat_lon_to_xyz

DEFAULT_CHUNK = 1 << 20  # points per pass: bounds the (chunk, candidates, 3) gather


def lookup_nside_for(cell_radius: float) -> int:
    """Smallest power-of-two nside whose pixels are no wider than the mesh cells
    (pixel radius <= ``cell_radius``, radians): about 6 to 12 candidates per pixel."""
    nside = 1
    while healpy.max_pixrad(nside) > cell_radius and nside < 8192:
        nside *= 2
    return nside


def bucket_table(node_xyz: np.ndarray, cell_radius: float, lookup_nside: int | None = None) -> tuple[np.ndarray, int]:
    """For each pixel of a HEALPix lookup grid, the nodes that may be nearest to a point in it.

    node_xyz: (N, 3) unit vectors; cell_radius: largest distance (radians) from a
    node to a corner of its Voronoi cell. Returns ((npix, C) int64 candidates,
    -1 padded, and the lookup nside).
    """
    nside = lookup_nside or lookup_nside_for(cell_radius)
    lookup = HealpixMesh(nside)
    reach = healpy.max_pixrad(nside) + cell_radius + 1e-9
    chord = 2.0 * np.sin(min(reach, np.pi) / 2.0)
    tree, width = cKDTree(node_xyz), 8
    while True:  # a fixed-k query is vectorised; widen until no pixel is left out
        _, idx = tree.query(lookup.xyz, k=min(width, len(node_xyz)), distance_upper_bound=chord)
        idx = idx.reshape(lookup.npix, -1)
        if width >= len(node_xyz) or np.all(idx[:, -1] == len(node_xyz)):
            break
        width *= 2
    used = int((idx < len(node_xyz)).sum(axis=1).max())
    table = np.where(idx[:, :used] < len(node_xyz), idx[:, :used], -1).astype(np.int64)
    return table, nside


def nearest_in_buckets(node_xyz: torch.Tensor, table: torch.Tensor, lookup_nside: int,
                       lat: torch.Tensor, lon: torch.Tensor, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """(n,) index of the nearest node to each point (radians), via :func:`bucket_table`.

    node_xyz: (N, 3) on the points' device (float32 is enough: distances are
    compared as squared chords of float32 differences, good to ~1e-7 rad).
    Ties go to the lower candidate slot. Returns int64 on the points' device.
    """
    out = torch.empty(len(lat), dtype=torch.int64, device=lat.device)
    for s in range(0, len(lat), chunk):
        la, lo = lat[s:s + chunk], lon[s:s + chunk]
        cand = table[ang2pix_nested(lookup_nside, la, lo)]                       # (m, C)
        p = lat_lon_to_xyz(la.double(), lo.double(), xp=torch).to(node_xyz.dtype)          # (m, 3)
        d2 = candidate_chords2(node_xyz, cand, p)                                 # (m, C)
        out[s:s + chunk] = torch.gather(cand, 1, d2.argmin(dim=1, keepdim=True)).squeeze(1)
    return out
