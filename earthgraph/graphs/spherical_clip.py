"""Exact overlap areas of convex spherical polygons (great-circle edges) with
latitude-longitude cells, vectorised over many (polygon, cell) pairs.

A lat-lon cell is a longitude wedge (two meridian half-spaces, each bounded by
a great circle) cut by two parallels. The polygon is first clipped to the
wedge (Sutherland-Hodgman with great circles, exact up to rounding); the area
of what remains between the parallels is ``G(z_top) - G(z_bottom)``, where
``G(c)`` is its area south of the parallel ``z = sin(lat) = c``.

``G`` comes from Green's theorem in the equal-area chart ``(lon, z)``:
``G(c) = -(closed integral of min(z, c) dlon)`` around the boundary. Along a
great circle with unit normal ``n`` the integral of ``z dlon`` has the closed
form ``-sign(n_z) asin(r sin u)``, ``u = lon - lon_n`` (``r``, ``lon_n``: length
and angle of ``(n_x, n_y)``), evaluated as ``atan2(r sin u, hypot(n_z, r cos u))``, and the arc meets the parallel where
``cos(lon - lon_n) = -c n_z / (r sqrt(1 - c^2))``, so every piece is exact.
A polygon that held a pole has it as a vertex after the wedge clip; in the
chart the pole is the segment ``z = +-1`` between the two meridians.
"""

from __future__ import annotations

import numpy as np

from earthgraph.graphs.sphere import normalise

POLE_EPS = 1e-12  # |x|, |y| below this: the vertex is a pole


def clip_by_great_circle(poly: np.ndarray, count: np.ndarray, normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the part of each convex polygon where ``normal . x >= 0``.

    poly: (M, V, 3) unit vertices, anticlockwise from outside, padded past
    ``count`` (M,); normal: (M, 3). Returns ((M, 2V, 3), (M,)) in the same form.
    """
    m, v, _ = poly.shape
    slot = np.arange(v)
    valid = slot[None, :] < count[:, None]
    nxt = (slot[None, :] + 1) % np.maximum(count, 1)[:, None]
    side = np.einsum("mvc,mc->mv", poly, normal)
    side_next = np.take_along_axis(side, nxt, axis=1)
    b = np.take_along_axis(poly, nxt[:, :, None], axis=1)
    inside, inside_next = side >= 0, side_next >= 0
    emit_v = valid & inside
    emit_x = valid & (inside != inside_next)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = side / (side - side_next)
    with np.errstate(invalid="ignore", divide="ignore"):  # padding slots are all zeros
        cross = normalise(poly + np.where(emit_x, t, 0.0)[:, :, None] * (b - poly))
    n_emit = emit_v.astype(np.int64) + emit_x
    pos = np.cumsum(n_emit, axis=1) - n_emit
    out = np.zeros((m, 2 * v, 3))
    rows = np.broadcast_to(np.arange(m)[:, None], (m, v))
    out[rows[emit_v], pos[emit_v]] = poly[emit_v]
    out[rows[emit_x], (pos + emit_v)[emit_x]] = cross[emit_x]
    return out, n_emit.sum(axis=1)


def _wrap(a: np.ndarray) -> np.ndarray:
    """Angles to (-pi, pi]."""
    return np.pi - np.mod(np.pi - a, 2 * np.pi)


def _edge_terms(poly: np.ndarray, nxt: np.ndarray, valid: np.ndarray, a: np.ndarray, b: np.ndarray,
                cc: np.ndarray) -> np.ndarray:
    """(M, V) the great-circle edges' part of :func:`area_south_of`: minus the integral of
    min(z, c) dlon along each edge from longitude ``a`` to ``b`` (M, V), split where the edge
    crosses the parallel ``z = cc`` (M, 1); zero for pole points and degenerate edges."""
    pb = np.take_along_axis(poly, nxt[:, :, None], axis=1)
    n = np.cross(poly, pb)
    n_norm = np.linalg.norm(n, axis=-1)
    edge = valid & (n_norm > 0) & (b != a)
    n = n / np.where(n_norm > 0, n_norm, 1.0)[..., None]
    r = np.hypot(n[..., 0], n[..., 1])
    lon_n = np.arctan2(n[..., 1], n[..., 0])
    sgn = np.where(n[..., 2] >= 0, 1.0, -1.0)

    # 1 - r^2 sin^2 u = n_z^2 + r^2 cos^2 u without cancellation: asin(x) as atan2 keeps
    # full precision on near-meridian arcs, where x is close to +-1.
    def integral_z(lon_v):  # antiderivative of z dlon along the edge's great circle
        u = lon_v - lon_n
        return -sgn * np.arctan2(r * np.sin(u), np.hypot(n[..., 2], r * np.cos(u)))

    def z_at(lon_v):
        u = lon_v - lon_n
        return -sgn * r * np.cos(u) / np.maximum(np.hypot(n[..., 2], r * np.cos(u)), 1e-300)

    with np.errstate(invalid="ignore", divide="ignore"):
        q = -cc * n[..., 2] / (r * np.sqrt(np.maximum(1.0 - cc * cc, 0.0)))
    has = np.isfinite(q) & (np.abs(q) <= 1.0)
    root = np.arccos(np.clip(q, -1.0, 1.0))
    span = b - a
    cuts = [a]
    for sign in (1.0, -1.0):
        t = _wrap(sign * root - (a - lon_n))                  # from a to the crossing, signed
        inside = has & (t * span > 0) & (np.abs(t) < np.abs(span))
        cuts.append(np.where(inside, a + t, a))
    cuts.append(b)
    pts = np.stack(cuts)                                      # (4, M, V), sorted along the edge
    order = np.argsort((pts - a) * np.where(span >= 0, 1.0, -1.0), axis=0)
    pts = np.take_along_axis(pts, order, axis=0)
    lo, hi = pts[:-1], pts[1:]
    mid = 0.5 * (lo + hi)
    below = z_at(mid) < cc
    piece = np.where(below, integral_z(hi) - integral_z(lo), cc * (hi - lo))
    return np.where(edge, -piece.sum(axis=0), 0.0)


def area_south_of(poly: np.ndarray, count: np.ndarray, lon_mid: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(M,) area (sr) of each polygon south of the parallel ``z = c``.

    poly, count: convex polygons inside a longitude wedge of less than pi
    centred on ``lon_mid`` (M,) (anticlockwise, as from :func:`clip_by_great_circle`).
    """
    m, v, _ = poly.shape
    slot = np.arange(v)
    valid = slot[None, :] < count[:, None]
    nxt = (slot[None, :] + 1) % np.maximum(count, 1)[:, None]
    prv = (slot[None, :] - 1) % np.maximum(count, 1)[:, None]
    x, y, z = poly[..., 0], poly[..., 1], poly[..., 2]
    pole = (np.abs(x) < POLE_EPS) & (np.abs(y) < POLE_EPS) & valid
    lon = lon_mid[:, None] + _wrap(np.arctan2(y, x) - lon_mid[:, None])  # continuous inside the wedge
    # A pole takes the longitude of its neighbour along each of its two meridian edges.
    lon_next = np.take_along_axis(lon, nxt, axis=1)
    lon_prev = np.take_along_axis(lon, prv, axis=1)
    a = np.where(pole, lon_next, lon)                         # edge start, seen from this edge
    b_pole = np.take_along_axis(pole, nxt, axis=1)
    b = np.where(b_pole, a, lon_next)                         # edge end
    cc = c[:, None]
    total = np.zeros((m, v))
    # Pole segments: z = +-1 from the incoming to the outgoing meridian.
    total += np.where(pole, -np.minimum(np.sign(z), cc) * (lon_next - lon_prev), 0.0)
    total += _edge_terms(poly, nxt, valid, a, b, cc)
    return total.sum(axis=1)


def wedge_normals(lon0: np.ndarray, lon1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normals of the half-spaces ``lon >= lon0`` and ``lon <= lon1`` (a wedge narrower than pi)."""
    zero = np.zeros_like(lon0)
    return (np.stack([-np.sin(lon0), np.cos(lon0), zero], axis=-1),
            np.stack([np.sin(lon1), -np.cos(lon1), zero], axis=-1))


def polygon_cell_overlaps(poly: np.ndarray, count: np.ndarray, lat0: np.ndarray, lat1: np.ndarray,
                          lon0: np.ndarray, lon1: np.ndarray) -> np.ndarray:
    """(M,) exact area (sr) shared by each convex spherical polygon and its lat-lon cell.

    poly: (M, V, 3) anticlockwise unit vertices (padded past ``count``); the cells
    are ``[lat0, lat1] x [lon0, lon1]`` in radians with ``lon1 - lon0 < pi``.
    """
    n0, n1 = wedge_normals(lon0, lon1)
    p, k = clip_by_great_circle(poly, count, n0)
    p, k = clip_by_great_circle(p, k, n1)
    width = max(int(k.max()) if len(k) else 0, 1)
    p = p[:, :width]
    mid = 0.5 * (lon0 + lon1)
    south = lambda lat: area_south_of(p, k, mid, np.sin(lat))  # noqa: E731
    area = south(lat1) - south(lat0)
    return np.where(k >= 3, area, 0.0)
