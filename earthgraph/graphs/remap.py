"""First-order conservative remapping between a lat-lon grid and a mesh, both ways.

Both directions come from one sparse matrix of overlap areas ``W[i, j]``: the
area (steradians) shared by grid cell ``i`` and mesh cell ``j``. A field moves as
the overlap-weighted mean, ``f_j = sum_i W_ij f_i / sum_i W_ij`` and back, so that,
with every row of W summing to its grid cell's area and every column to its
mesh cell's area, the area integral is carried over to rounding. A source
mask ``m`` (a 0..1 weight, e.g. a land-sea mask) gives ``sum_i W_ij m_i f_i /
sum_i W_ij m_i`` and the covered fraction of each destination cell, with the
masked integral kept.

Overlap areas:

* HEALPix: exact, in closed form. In the equatorial belt the pixels are unit
  squares in the chart ``(jp, jm)``, and in each quarter of a polar cap in the
  chart ``(a, b) = (tp, 1 - tp) * nside * sqrt(3 (1 - |z|))``; both charts have
  uniform area density ``pi / (3 nside**2)``, and a lat-lon cell's boundaries
  (parallels and meridians) are straight lines in them. Each piece of a grid
  cell is a convex quadrilateral whose overlap with every unit square comes
  from :func:`quadrant_areas`.
* Icosahedral: exact too. Voronoi cells are convex polygons with great-circle
  edges; each is clipped to a grid cell's longitude wedge and its area between
  the two parallels is integrated in closed form
  (:mod:`earthgraph.graphs.spherical_clip`), for every pair a point sample
  and the neighbour ring say may touch.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from earthgraph.graphs.cache import cached_arrays
from earthgraph.graphs.healpix import HealpixMesh, equatorial_pixel, polar_pixel
from earthgraph.graphs.spherical_clip import polygon_cell_overlaps

TWO_THIRDS = 2.0 / 3.0


# --------------------------------------------------------------------------- grids

def cell_edges_from_centres(centres_deg: np.ndarray, name: str, periodic: bool = False) -> np.ndarray:
    """(n+1,) cell edges (radians) midway between ascending cell centres (degrees).

    Latitude edges are clipped to the poles; with ``periodic`` (longitude) the
    centres must be evenly spaced and cover 360 degrees.
    """
    c = np.asarray(centres_deg, dtype=np.float64)
    if c.ndim != 1 or len(c) < 2:
        raise ValueError(f"remap grid: {name} must be 1-D with at least 2 values, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError(f"remap grid: {name} has non-finite values")
    step = np.diff(c)
    if np.any(step <= 0):
        raise ValueError(f"remap grid: {name} must be strictly ascending (first bad step {step[step <= 0][0]} deg)")
    if periodic:
        if np.ptp(step) > 1e-6 * step[0] or abs(step[0] * len(c) - 360.0) > 1e-6:
            raise ValueError(f"remap grid: {name} must be evenly spaced and cover 360 degrees "
                             f"({len(c)} x {step[0]} = {len(c) * step[0]} deg)")
        return np.radians(c[0] - step[0] / 2 + step[0] * np.arange(len(c) + 1))
    if c[0] < -90 or c[-1] > 90:
        raise ValueError(f"remap grid: {name} outside [-90, 90]: {c[0]}..{c[-1]}")
    mid = 0.5 * (c[1:] + c[:-1])
    edges = np.concatenate([[-90.0], mid, [90.0]])
    return np.radians(edges)


def grid_cell_areas(lat_edges: np.ndarray, lon_edges: np.ndarray) -> np.ndarray:
    """(nlat * nlon,) exact areas (steradians) of the cells, row-major (lat, lon)."""
    return np.outer(sin_difference(lat_edges[:-1], lat_edges[1:]), np.diff(lon_edges)).ravel()


def sin_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sin(b) - sin(a)`` without cancellation (thin cells at the poles keep full precision)."""
    return 2.0 * np.cos(0.5 * (a + b)) * np.sin(0.5 * (b - a))


def one_minus_sin(lat: np.ndarray) -> np.ndarray:
    """``1 - sin(|lat|)`` without cancellation near the poles."""
    return 2.0 * np.sin(0.5 * (0.5 * np.pi - np.abs(lat))) ** 2


# --------------------------------------------------------------------- polygon areas

def quadrant_areas(poly: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Area of each polygon inside the quadrants ``{x <= X, y <= Y}``.

    poly: (M, V, 2) anticlockwise polygons (repeat a vertex for fewer corners);
    xs: (M, A), ys: (M, B) quadrant corners. Returns (M, A, B).

    Green's theorem on the boundary clamped into the quadrant: the map
    ``(x, y) -> (min(x, X), min(y, Y))`` leaves winding numbers about points
    inside the quadrant unchanged and sends everything else onto its edge, so
    the integral of ``x dy`` along the clamped boundary is the area inside. On
    each edge the clamped coordinates are linear between the parameters where
    the edge crosses ``x = X`` or ``y = Y``, where the trapezoid rule is exact.
    """
    X, Y = xs[:, :, None], ys[:, None, :]
    total = np.zeros((poly.shape[0], xs.shape[1], ys.shape[1]))
    for v in range(poly.shape[1]):
        p0, p1 = poly[:, v], poly[:, (v + 1) % poly.shape[1]]
        (x0, y0), (dx, dy) = (p0[:, 0, None, None], p0[:, 1, None, None]), ((p1 - p0)[:, 0, None, None], (p1 - p0)[:, 1, None, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            tx = np.where(dx != 0, (X - x0) / dx, 0.0)
            ty = np.where(dy != 0, (Y - y0) / dy, 0.0)
        tx, ty = np.clip(tx, 0.0, 1.0) + 0 * Y, np.clip(ty, 0.0, 1.0) + 0 * X
        t = np.sort(np.stack([np.zeros_like(tx), tx, ty, np.ones_like(tx)]), axis=0)
        cx = np.minimum(x0 + t * dx, X)
        cy = np.minimum(y0 + t * dy, Y)
        total += (0.5 * (cx[1:] + cx[:-1]) * (cy[1:] - cy[:-1])).sum(axis=0)
    return total


def square_overlaps(poly: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Overlap of convex polygons with the unit squares ``[i, i+1] x [j, j+1]``.

    poly: (M, V, 2) anticlockwise. Returns (polygon, i, j, area) for every
    square in each polygon's bounding box (zero areas included).
    """
    lo = np.floor(poly.min(axis=1)).astype(np.int64)
    hi = np.ceil(poly.max(axis=1)).astype(np.int64)
    size = np.maximum(hi - lo, 1)
    out = []
    # Group polygons by bounding-box size so each group is one vectorised call.
    keys = size[:, 0] * 100003 + size[:, 1]
    for key in np.unique(keys):
        g = np.flatnonzero(keys == key)
        nx, ny = size[g[0]]
        xs = lo[g, 0, None] + np.arange(nx + 1)
        ys = lo[g, 1, None] + np.arange(ny + 1)
        # Shifted to the box's corner: small coordinates keep the differences of
        # quadrant areas below precise (chart coordinates reach 5 nside).
        local = poly[g] - lo[g, None, :]
        steps = np.arange(nx + 1, dtype=np.float64), np.arange(ny + 1, dtype=np.float64)
        q = quadrant_areas(local, np.broadcast_to(steps[0], (len(g), nx + 1)), np.broadcast_to(steps[1], (len(g), ny + 1)))
        area = q[:, 1:, 1:] - q[:, :-1, 1:] - q[:, 1:, :-1] + q[:, :-1, :-1]   # (m, nx, ny)
        ii = np.broadcast_to(xs[:, :-1, None], area.shape)
        jj = np.broadcast_to(ys[:, None, :-1], area.shape)
        out.append((np.broadcast_to(g[:, None, None], area.shape).ravel(), ii.ravel(), jj.ravel(), area.ravel()))
    return tuple(np.concatenate([o[k] for o in out]) for k in range(4))


def _anticlockwise(poly: np.ndarray) -> np.ndarray:
    x, y = poly[..., 0], poly[..., 1]
    signed = np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1)
    return np.where(signed[:, None, None] < 0, poly[:, ::-1], poly)


# ------------------------------------------------------------------ HEALPix, exact

def _split(lo: np.ndarray, hi: np.ndarray, cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split intervals [lo, hi] at the given cut values: (owner, lo, hi) of the pieces."""
    bounds = np.sort(np.concatenate([lo[:, None], hi[:, None], np.clip(np.broadcast_to(cuts, (len(lo), len(cuts))),
                                                                     lo[:, None], hi[:, None])], axis=1), axis=1)
    a, b = bounds[:, :-1], bounds[:, 1:]
    owner = np.broadcast_to(np.arange(len(lo))[:, None], a.shape)
    keep = b > a
    return owner[keep], a[keep], b[keep]


def healpix_overlaps(nside: int, lat_edges: np.ndarray, lon_edges: np.ndarray) -> sp.csr_matrix:
    """Exact (nlat * nlon, npix) overlap areas (steradians) of lat-lon cells with the
    nested HEALPix pixels. lat_edges, lon_edges: ascending cell edges, radians."""
    ns = nside
    nlat, nlon = len(lat_edges) - 1, len(lon_edges) - 1
    lat0 = np.repeat(lat_edges[:-1], nlon)
    lat1 = np.repeat(lat_edges[1:], nlon)
    t_start = np.mod(lon_edges[:-1], 2 * np.pi) * (2 / np.pi)
    t0 = np.tile(t_start, nlat)
    t1 = t0 + np.tile(np.diff(lon_edges), nlat) * (2 / np.pi)
    # Pieces: by polar region (cut at |z| = 2/3), then by longitude quarter (tt cut at
    # integers). Latitudes, not z, are carried so that 1 - |z| stays precise at the poles.
    cap = math.asin(TWO_THIRDS)
    own_z, la, lb = _split(lat0, lat1, np.array([-cap, cap]))
    own_t, ta, tb = _split(t0[own_z], t1[own_z], np.arange(1.0, 9.0))
    owner = own_z[own_t]
    la, lb = la[own_t], lb[own_t]
    quarter = np.floor(0.5 * (ta + tb)).astype(np.int64)
    ta, tb = ta - 4 * (quarter // 4), tb - 4 * (quarter // 4)
    quarter %= 4
    lmid = 0.5 * (la + lb)
    region = np.where(lmid > cap, 1, np.where(lmid < -cap, -1, 0))
    # Equatorial pieces use the exact chart boundary, |z| <= 2/3.
    za = np.where(la <= -cap, -TWO_THIRDS, np.sin(la))
    zb = np.where(lb >= cap, TWO_THIRDS, np.sin(lb))

    rows, cols, vals = [], [], []
    # Equatorial belt: (jp, jm) = ns (1/2 + tt -+ 3 z / 4).
    e = region == 0
    if e.any():
        T = np.stack([ta[e], tb[e], tb[e], ta[e]], axis=1)
        Z = np.stack([za[e], za[e], zb[e], zb[e]], axis=1)
        poly = np.stack([ns * (0.5 + T - 0.75 * Z), ns * (0.5 + T + 0.75 * Z)], axis=-1)
        k, i, j, area = square_overlaps(_anticlockwise(poly))
        rows.append(owner[e][k]); cols.append(equatorial_pixel(ns, i, j)); vals.append(area)
    # Polar caps: (a, b) = (tp, 1 - tp) * sigma, sigma = ns sqrt(3 (1 - |z|)).
    for sign in (1, -1):
        c = region == sign
        if not c.any():
            continue
        tp_a, tp_b = ta[c] - quarter[c], tb[c] - quarter[c]
        near, far = (la[c], lb[c]) if sign > 0 else (lb[c], la[c])  # nearer the equator, the pole
        s_near = ns * np.sqrt(np.minimum(3.0 * one_minus_sin(near), 1.0))  # the cap's edge is sigma = ns
        s_far = ns * np.sqrt(3.0 * one_minus_sin(far))
        TP = np.stack([tp_a, tp_b, tp_b, tp_a], axis=1)
        S = np.stack([s_near, s_near, s_far, s_far], axis=1)
        poly = np.stack([TP * S, (1.0 - TP) * S], axis=-1)
        k, i, j, area = square_overlaps(_anticlockwise(poly))
        ok = (i + j) <= ns - 1  # beyond it the square lies outside the cap: zero overlap
        k, i, j, area = k[ok], i[ok], j[ok], area[ok]
        rows.append(owner[c][k]); cols.append(polar_pixel(ns, quarter[c][k], i, j, sign > 0)); vals.append(area)
    rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals) * (math.pi / (3.0 * ns * ns))
    keep = vals > 0
    return sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(nlat * nlon, 12 * ns * ns))


# ---------------------------------------------------------- icosahedral, exact

def candidate_pairs(locate, neighbours: np.ndarray, lat_edges: np.ndarray, lon_edges: np.ndarray,
                    spacing: float, max_samples: int = 20_000_000) -> tuple[np.ndarray, np.ndarray]:
    """(cell, node) pairs that may overlap: the cells holding samples of each grid cell
    (a lattice no coarser than a quarter of the node spacing) and their neighbours,
    which catches the slivers the samples miss. Cells are row-major (lat, lon)."""
    nlat, nlon = len(lat_edges) - 1, len(lon_edges) - 1
    widest = max(np.diff(lat_edges).max(), np.diff(lon_edges).max())
    s = max(2, math.ceil(widest / (spacing / 4)))
    s = max(2, min(s, int(math.sqrt(max_samples / (nlat * nlon)))))
    frac = (np.arange(s) + 0.5) / s
    lat_c = lat_edges[:-1, None] + np.diff(lat_edges)[:, None] * frac            # (nlat, s)
    lon_c = lon_edges[:-1, None] + np.diff(lon_edges)[:, None] * frac            # (nlon, s)
    lat = np.broadcast_to(lat_c[:, None, :, None], (nlat, nlon, s, s)).ravel()
    lon = np.broadcast_to(lon_c[None, :, None, :], (nlat, nlon, s, s)).ravel()
    node = locate(torch.from_numpy(lat.copy()), torch.from_numpy(lon.copy())).cpu().numpy()
    cell = np.repeat(np.arange(nlat * nlon), s * s)
    hit = np.unique(cell * len(neighbours) + node)
    cell, node = hit // len(neighbours), hit % len(neighbours)
    ring = np.concatenate([node[:, None], neighbours[node]], axis=1)
    cells = np.broadcast_to(cell[:, None], ring.shape)
    ok = ring >= 0
    both = np.unique(cells[ok] * len(neighbours) + ring[ok])
    return both // len(neighbours), both % len(neighbours)


def voronoi_overlaps(polygons: np.ndarray, counts: np.ndarray, cell_areas: np.ndarray, locate,
                     neighbours: np.ndarray, lat_edges: np.ndarray, lon_edges: np.ndarray, spacing: float,
                     chunk: int = 200_000) -> sp.csr_matrix:
    """Exact (nlat * nlon, N) overlap areas of lat-lon cells with the convex spherical
    polygons (N, V, 3) of a mesh's cells (anticlockwise, ``counts`` corners each),
    by :func:`earthgraph.graphs.spherical_clip.polygon_cell_overlaps` over the
    :func:`candidate_pairs`. Raises if the areas do not add up to the cells'.
    """
    nlat, nlon = len(lat_edges) - 1, len(lon_edges) - 1
    if np.diff(lon_edges).max() >= np.pi:
        raise ValueError("conservative remap: grid cells must be narrower than 180 degrees of longitude")
    cell, node = candidate_pairs(locate, neighbours, lat_edges, lon_edges, spacing)
    area = np.empty(len(cell))
    for a in range(0, len(cell), chunk):
        c, n = cell[a:a + chunk], node[a:a + chunk]
        i, j = c // nlon, c % nlon
        area[a:a + chunk] = polygon_cell_overlaps(polygons[n], counts[n], lat_edges[i], lat_edges[i + 1],
                                                  lon_edges[j], lon_edges[j + 1])
    keep = area > 0
    w = sp.csr_matrix((area[keep], (cell[keep], node[keep])), shape=(nlat * nlon, len(cell_areas)))
    rows, cols = np.asarray(w.sum(axis=1)).ravel(), np.asarray(w.sum(axis=0)).ravel()
    grid_areas = grid_cell_areas(lat_edges, lon_edges)
    # Each overlap is good to a few 1e-16 sr in absolute terms (differences of O(1)
    # antiderivatives), so tiny polar grid cells are held to an absolute tolerance.
    miss = np.concatenate([np.abs(rows - grid_areas) - 1e-9 * grid_areas, np.abs(cols - cell_areas) - 1e-9 * cell_areas])
    if miss.max() > 1e-13:
        raise ValueError(f"conservative remap: overlap areas miss {miss.max():.2e} sr of a cell; "
                         "the candidate search missed an overlap (please report this grid and mesh)")
    return w


# ------------------------------------------------------------------------ remapper

@dataclass
class ConservativeRemap:
    """Sparse overlap matrix between a lat-lon grid (rows, row-major (lat, lon))
    and a mesh (columns), and the remapping in both directions."""

    overlaps: sp.csr_matrix
    grid_shape: tuple[int, int]

    @property
    def grid_areas(self) -> np.ndarray:
        return np.asarray(self.overlaps.sum(axis=1)).ravel()

    @property
    def mesh_areas(self) -> np.ndarray:
        return np.asarray(self.overlaps.sum(axis=0)).ravel()

    def to_mesh(self, field: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(nlat, nlon) or (..., nlat, nlon) grid values -> ((..., N) mesh values, (N,) covered fraction).

        Where a mesh cell overlaps no unmasked grid cell its value is NaN.
        """
        return self._apply(self.overlaps.T.tocsr(), field, mask, self.grid_shape, "grid")

    def to_grid(self, field: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(N,) or (..., N) mesh values -> ((..., nlat, nlon) grid values, (nlat, nlon) covered fraction)."""
        values, frac = self._apply(self.overlaps, field, mask, (self.overlaps.shape[1],), "mesh")
        return values.reshape(*values.shape[:-1], *self.grid_shape), frac.reshape(self.grid_shape)

    @staticmethod
    def _apply(w: sp.csr_matrix, field: np.ndarray, mask, src_shape: tuple, src_name: str):
        f = np.asarray(field, dtype=np.float64)
        if f.shape[-len(src_shape):] != tuple(src_shape):
            raise ValueError(f"conservative remap: {src_name} field has shape {f.shape}, expected (..., {', '.join(map(str, src_shape))})")
        lead = f.shape[:-len(src_shape)]
        f = f.reshape(-1, int(np.prod(src_shape))).T                              # (src, k)
        m = np.ones(f.shape[0]) if mask is None else np.asarray(mask, np.float64).reshape(-1)
        if len(m) != f.shape[0] or np.any(~np.isfinite(m)) or m.min() < 0 or m.max() > 1:
            raise ValueError(f"conservative remap: {src_name} mask must be {src_shape} with values in [0, 1]")
        if not np.all(np.isfinite(f[m > 0])):
            raise ValueError(f"conservative remap: {src_name} field has NaN or inf where the mask is not 0")
        covered = w @ m
        full = np.asarray(w.sum(axis=1)).ravel()
        with np.errstate(invalid="ignore", divide="ignore"):
            values = (w @ (np.where(m[:, None] > 0, f, 0.0) * m[:, None])) / covered[:, None]
        values[covered <= 0] = np.nan
        return values.T.reshape(*lead, -1), covered / full


def grid_remap(mesh, lat_deg: np.ndarray, lon_deg: np.ndarray, locate=None,
               cache_dir: str | Path | None = None) -> ConservativeRemap:
    """Conservative remapping between the lat-lon grid with these cell centres
    (degrees, ascending; longitudes covering 360) and ``mesh``.

    HEALPix overlaps need nothing more; an icosahedral mesh needs ``locate``, its
    torch point locator, to find which cells may overlap. With ``cache_dir`` the
    overlap matrix is cached under a key of the mesh and the grid's coordinates.
    """
    lat_e = cell_edges_from_centres(lat_deg, "latitude")
    lon_e = cell_edges_from_centres(lon_deg, "longitude", periodic=True)
    if not isinstance(mesh, HealpixMesh) and locate is None:
        raise ValueError(f"conservative remap: a {type(mesh).__name__} needs its point locator")

    def build() -> dict[str, np.ndarray]:
        if isinstance(mesh, HealpixMesh):
            w = healpix_overlaps(mesh.nside, lat_e, lon_e)
        else:
            polygons, counts = mesh.voronoi_polygons()
            w = voronoi_overlaps(polygons, counts, mesh.areas, locate, mesh.neighbours, lat_e, lon_e, mesh.spacing)
        return {"data": w.data, "indices": w.indices, "indptr": w.indptr}

    resolution = mesh.nside if isinstance(mesh, HealpixMesh) else mesh.level
    grid_hash = hashlib.sha256(np.concatenate([lat_e, lon_e]).tobytes()).hexdigest()[:16]
    config = {"name": f"remap-{mesh.kind}{resolution}-{len(lat_e) - 1}x{len(lon_e) - 1}", "kind": mesh.kind,
              "resolution": int(resolution), "grid": grid_hash}
    arrays, _ = cached_arrays(config, build, cache_dir)
    shape = ((len(lat_e) - 1) * (len(lon_e) - 1), mesh.num_nodes)
    w = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
    return ConservativeRemap(w, (len(lat_e) - 1, len(lon_e) - 1))


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
