"""Conservative, positivity-preserving advection on a lat-lon grid.

Velocities come from a streamfunction given at cell corners, so the discrete
flow is exactly non-divergent: the face fluxes of every cell telescope to zero.
Tracers move with first-order upwind fluxes in flux form, so the area integral
of a tracer changes only by rounding, and a tracer that starts non-negative
stays non-negative while the Courant number of each cell's outflow is below one.
"""

from __future__ import annotations

import math

import numpy as np

from earthgraph.data.grid import LatLonGrid


def face_fluxes(psi_corner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area fluxes through cell faces from a corner streamfunction.

    psi_corner: (nlat+1, nlon) streamfunction in m^2 s^-1 at latitude edge ``jj``
        and longitude edge ``i + 1/2`` (east edge of column ``i``). It must be
        constant along each pole (rows 0 and nlat) for no flux through the poles.
    Returns:
        fx: (nlat, nlon) eastward flux through the east face of cell (j, i): the
            integral of u along the face, in m^2 s^-1.
        fy: (nlat+1, nlon) northward flux through latitude edge ``jj`` of column i,
            same units.
    A tracer q (per unit area) changes in a cell by ``-dt / area * sum(outward flux * q)``.
    """
    fx = -(psi_corner[1:, :] - psi_corner[:-1, :])
    fy = psi_corner - np.roll(psi_corner, 1, axis=1)
    return fx, fy


def max_courant(grid: LatLonGrid, fx: np.ndarray, fy: np.ndarray, dt: float) -> float:
    """Largest fraction of a cell's content that upwind fluxes move out in ``dt``."""
    out = (
        np.maximum(fx, 0.0)
        + np.maximum(-np.roll(fx, 1, axis=1), 0.0)
        + np.maximum(fy[1:], 0.0)
        + np.maximum(-fy[:-1], 0.0)
    )
    return float(np.max(out * dt / grid.area))


def advect(grid: LatLonGrid, q: np.ndarray, fx: np.ndarray, fy: np.ndarray, dt: float) -> np.ndarray:
    """One upwind flux-form step of tracer ``q`` (per unit area), (nlat, nlon).

    Sub-steps so that every sub-step's Courant number stays at most 0.9.
    """
    n_sub = max(1, math.ceil(max_courant(grid, fx, fy, dt) / 0.9))
    h = dt / n_sub
    scale = h / grid.area
    for _ in range(n_sub):
        q_east = np.roll(q, -1, axis=1)
        flux_x = np.where(fx > 0, fx * q, fx * q_east)  # through east faces
        flux_y_inner = np.where(fy[1:-1] > 0, fy[1:-1] * q[:-1], fy[1:-1] * q[1:])
        flux_y = np.zeros_like(fy)
        flux_y[1:-1] = flux_y_inner
        div = flux_x - np.roll(flux_x, 1, axis=1) + flux_y[1:] - flux_y[:-1]
        q = q - scale * div
    return q
