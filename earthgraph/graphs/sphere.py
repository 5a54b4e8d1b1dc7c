"""Geometry on the unit sphere, in numpy (static graphs) and torch (per batch).

Conventions: latitude and longitude in radians; positions are (..., 3) unit
vectors with z along the north pole; distances are great-circle radians.

Numpy/torch dual code, here and throughout earthgraph, is one function that takes
the array namespace as ``xp``: ``numpy`` (the default) or ``torch``, as in
:mod:`earthgraph.data.solar`. It computes in its inputs' dtype, on their device.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import torch


def lat_lon_to_xyz(lat, lon, xp: ModuleType = np):
    """(...) latitudes and longitudes (radians) -> (..., 3) unit vectors, in the
    inputs' dtype: numpy arrays (``xp=numpy``) or tensors (``xp=torch``)."""
    cl = xp.cos(lat)
    return xp.stack([cl * xp.cos(lon), cl * xp.sin(lon), xp.sin(lat)], axis=-1)


def lat_lon_from_xyz(xyz, xp: ModuleType = np):
    """(..., 3) unit vectors -> latitude, longitude in [-pi, pi] (radians), each (...)."""
    return xp.arcsin(xp.clip(xyz[..., 2], -1.0, 1.0)), xp.arctan2(xyz[..., 1], xyz[..., 0])


def candidate_chords2(node_xyz: torch.Tensor, candidates: torch.Tensor, points_xyz: torch.Tensor) -> torch.Tensor:
    """(n, C) squared chord distance from each point (n, 3) to its candidate nodes
    (n, C) indices into ``node_xyz``, -1 padded; padding is +inf. Differences are taken
    before squaring, so float32 resolves distances to ~1e-7 rad (a dot product would not)."""
    d2 = (node_xyz[candidates.clamp(min=0)] - points_xyz[:, None, :]).square().sum(-1)
    return torch.where(candidates >= 0, d2, torch.full_like(d2, torch.inf))


def normalise(v: np.ndarray) -> np.ndarray:
    """Scale (..., 3) vectors to unit length."""
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def great_circle_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3) unit vectors -> (...) radians, accurate for tiny and antipodal pairs
    (atan2 of the cross and dot products, not arccos of the dot)."""
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1))


def spherical_triangle_area(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Signed area (steradians) of the spherical triangles with unit-vector corners
    (..., 3): positive when a, b, c run anticlockwise seen from outside.

    Uses tan(E/2) = a.(b x c) / (1 + a.b + b.c + c.a) (Van Oosterom & Strackee),
    which keeps full relative precision for small triangles.
    """
    det = np.sum(a * np.cross(b, c), axis=-1)
    den = 1.0 + np.sum(a * b, axis=-1) + np.sum(b * c, axis=-1) + np.sum(c * a, axis=-1)
    return 2.0 * np.arctan2(det, den)


def circumcentres(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(..., 3) unit-vector circumcentres of spherical triangles (the point equidistant
    from the three corners, on the triangle's side of the sphere)."""
    n = normalise(np.cross(b - a, c - a))
    return np.where(np.sum(n * (a + b + c), axis=-1, keepdims=True) < 0, -n, n)
