"""Refined icosahedral mesh (GraphCast's multi-mesh), with spherical-Voronoi cells.

Level 0 is the icosahedron (12 nodes, 20 triangles); each refinement splits
every triangle into four through its edge midpoints, pushed out onto the
sphere, so level ``r`` has ``10 * 4**r + 2`` nodes, ``30 * 4**r`` edges and
``20 * 4**r`` triangles. Nodes are numbered coarse to fine: the first
``10 * 4**l + 2`` nodes of any level are the nodes of level ``l``, which is what
makes the multi-scale edge set a plain union of every level's edges.

A node's cell is its spherical Voronoi cell, the region closer to it than to
any other node; its corners are the circumcentres of the triangles around
the node, because the refined icosahedron is a Delaunay triangulation.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from earthgraph.graphs.sphere import circumcentres, great_circle_distance, normalise, spherical_triangle_area

MAX_LEVEL = 10  # 10.5 million nodes


def node_count(level: int) -> int:
    """Nodes of the icosahedron refined ``level`` times (Euler: V - E + F = 2)."""
    return 10 * 4**level + 2


def icosahedron() -> tuple[np.ndarray, np.ndarray]:
    """The regular icosahedron: (12, 3) unit vertices and (20, 3) triangles, each
    listed anticlockwise seen from outside the sphere."""
    phi = (1.0 + math.sqrt(5.0)) / 2.0
    v = np.array([[-1, phi, 0], [1, phi, 0], [-1, -phi, 0], [1, -phi, 0],
                  [0, -1, phi], [0, 1, phi], [0, -1, -phi], [0, 1, -phi],
                  [phi, 0, -1], [phi, 0, 1], [-phi, 0, -1], [-phi, 0, 1]], dtype=np.float64)
    faces = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11],
                      [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
                      [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
                      [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.int64)
    return normalise(v), faces


def triangle_edges(faces: np.ndarray) -> np.ndarray:
    """(F, 3) triangles -> (E, 2) sorted unique undirected edges ``i < j``."""
    e = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    return np.unique(np.sort(e, axis=1), axis=0)


def refine(xyz: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split every triangle into four. Returns the old nodes followed by one new node
    per edge (its normalised midpoint), and the (4F, 3) new triangles, same orientation."""
    e = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 3, 2)
    edges, inverse = np.unique(np.sort(e.reshape(-1, 2), axis=1), axis=0, return_inverse=True)
    mid = len(xyz) + inverse.reshape(-1, 3)  # mid[:, 0] on a-b, 1 on b-c, 2 on c-a
    new_xyz = np.concatenate([xyz, normalise(xyz[edges[:, 0]] + xyz[edges[:, 1]])])
    a, b, c = faces.T
    ab, bc, ca = mid.T
    new_faces = np.concatenate([np.stack(t, axis=1) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])
    return new_xyz, new_faces


class IcosahedralMesh:
    """The icosahedron refined ``level`` times, with Voronoi cell areas."""

    kind = "icosahedral"

    def __init__(self, level: int):
        if not isinstance(level, (int, np.integer)) or not 0 <= level <= MAX_LEVEL:
            raise ValueError(f"icosahedral mesh level must be an integer in [0, {MAX_LEVEL}], got {level!r}")
        self.level = int(level)
        self.num_nodes = node_count(self.level)

    @cached_property
    def _levels(self) -> list[np.ndarray]:
        """Triangles of every level 0..level (node indices into ``xyz``)."""
        xyz, faces = icosahedron()
        out = [faces]
        for _ in range(self.level):
            xyz, faces = refine(xyz, faces)
            out.append(faces)
        self._xyz = xyz
        return out

    @property
    def xyz(self) -> np.ndarray:
        """(N, 3) float64 unit vectors of the nodes, coarse levels first."""
        self._levels
        return self._xyz

    @property
    def faces(self) -> np.ndarray:
        """(20 * 4**level, 3) triangles of the finest level, anticlockwise from outside."""
        return self._levels[-1]

    def level_edges(self, level: int) -> np.ndarray:
        """(30 * 4**level, 2) undirected edges ``i < j`` of refinement ``level``."""
        if not 0 <= level <= self.level:
            raise ValueError(f"level {level} is not in [0, {self.level}]")
        return triangle_edges(self._levels[level])

    @cached_property
    def undirected_edges(self) -> np.ndarray:
        """(E, 2) nearest-neighbour edges of the finest level, ``i < j``."""
        return self.level_edges(self.level)

    @cached_property
    def neighbours(self) -> np.ndarray:
        """(N, 6) the 6 (at the 12 icosahedron vertices, 5) neighbours of each node; -1 pads."""
        e = self.undirected_edges
        src = np.concatenate([e[:, 0], e[:, 1]])
        dst = np.concatenate([e[:, 1], e[:, 0]])
        order = np.lexsort((dst, src))
        src, dst = src[order], dst[order]
        start = np.searchsorted(src, np.arange(self.num_nodes))
        slot = np.arange(len(src)) - start[src]
        out = np.full((self.num_nodes, 6), -1, dtype=np.int64)
        out[src, slot] = dst
        return out

    def multiscale_edges(self, levels: int) -> np.ndarray:
        """(E, 2) union of the edges of the finest ``levels`` refinements (all when
        ``levels`` exceeds them), each pair once, ``i < j``: GraphCast's multi-mesh."""
        if levels < 1:
            raise ValueError(f"multiscale levels must be >= 1, got {levels}")
        lo = max(0, self.level - levels + 1)
        return np.unique(np.concatenate([self.level_edges(k) for k in range(lo, self.level + 1)]), axis=0)

    @cached_property
    def _voronoi(self) -> tuple[np.ndarray, np.ndarray]:
        """(N,) cell areas (steradians) and (N,) cell radii: the largest distance from a
        node to a corner of its cell (radians)."""
        faces, xyz = self.faces, self.xyz
        a, b, c = (xyz[faces[:, k]] for k in range(3))
        centre = circumcentres(a, b, c)
        area = np.zeros(self.num_nodes)
        radius = np.zeros(self.num_nodes)
        # Each triangle splits into three kites, one per corner: corner, the midpoints
        # of its two edges and the circumcentre. Signed areas keep the sum exact even
        # where a circumcentre falls outside its (nearly right-angled) triangle.
        for k in range(3):
            v, w, u = faces[:, k], faces[:, (k + 1) % 3], faces[:, (k + 2) % 3]
            p = xyz[v]
            m_vw, m_uv = normalise(p + xyz[w]), normalise(p + xyz[u])
            kite = spherical_triangle_area(p, m_vw, centre) + spherical_triangle_area(p, centre, m_uv)
            np.add.at(area, v, kite)
            np.maximum.at(radius, v, great_circle_distance(p, centre))
        return area, radius

    def voronoi_polygons(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, 6, 3) corners of every Voronoi cell, anticlockwise seen from outside
        (the circumcentres of the node's triangles), and (N,) their counts (5 or 6;
        the sixth slot of a pentagon repeats nothing and must be ignored)."""
        faces, xyz = self.faces, self.xyz
        centre = circumcentres(*(xyz[faces[:, k]] for k in range(3)))
        node = faces.ravel()
        face = np.repeat(np.arange(len(faces)), 3)
        order = np.argsort(node, kind="stable")
        node, face = node[order], face[order]
        count = np.bincount(node, minlength=self.num_nodes)
        slot = np.arange(len(node)) - np.repeat(np.cumsum(count) - count, count)
        # Sort each node's corners by angle in its tangent plane (e1, e2, p right-handed).
        p = xyz[node]
        ref = np.where(np.abs(p[:, 2:3]) > 0.9, [[1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]])
        e1 = normalise(np.cross(ref, p))
        e2 = np.cross(p, e1)
        c = centre[face]
        angle = np.arctan2(np.sum(c * e2, axis=1), np.sum(c * e1, axis=1))
        order = np.lexsort((angle, node))
        polys = np.zeros((self.num_nodes, 6, 3))
        polys[node, slot] = c[order]
        return polys, count

    @property
    def areas(self) -> np.ndarray:
        """(N,) spherical-Voronoi cell areas, steradians; they sum to 4 pi."""
        return self._voronoi[0]

    @property
    def cell_radius(self) -> float:
        """Largest distance from any node to a corner of its cell, radians."""
        return float(self._voronoi[1].max())

    @cached_property
    def spacing(self) -> float:
        """Mean distance between neighbouring nodes, radians."""
        e = self.undirected_edges
        return float(great_circle_distance(self.xyz[e[:, 0]], self.xyz[e[:, 1]]).mean())
