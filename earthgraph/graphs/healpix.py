"""HEALPix mesh in nested ordering: node positions, neighbours, areas, and a
torch point-to-pixel lookup that runs on any device.

Static geometry comes from healpy (float64, CPU) once per mesh; the per-batch
lookup :func:`ang2pix_nested` is pure torch so that observation graphs are
built where the batch lives. The chart-to-pixel maps it shares with the
conservative remapping (numpy) take the array namespace as ``xp``, as all
numpy/torch dual code does (:mod:`earthgraph.graphs.sphere`).
"""

from __future__ import annotations

import math
from functools import cached_property
from types import ModuleType

import healpy
import numpy as np
import torch

from earthgraph.graphs.topology import canonical_pairs


def _check_nside(nside: int) -> None:
    if nside < 1 or nside & (nside - 1) or nside > 1 << 13:
        raise ValueError(f"HEALPix nside must be a power of two in [1, 8192], got {nside}")


def _spread_bits(v: torch.Tensor) -> torch.Tensor:
    """Interleave zeros between the low 16 bits of ``v``: b3b2b1b0 -> 0b30b20b10b0."""
    v = v & 0xFFFF
    v = (v | (v << 8)) & 0x00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F
    v = (v | (v << 2)) & 0x33333333
    v = (v | (v << 1)) & 0x55555555
    return v


def ang2pix_nested(nside: int, lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
    """Nested HEALPix pixel index of points, computed in torch.

    lat, lon: (n,) radians (any float dtype; computed in float64), on any device.
    Returns (n,) int64 pixel indices in [0, 12 * nside**2); equal to
    ``healpy.ang2pix(nside, pi/2 - lat, lon, nest=True)``.
    Follows the z/phi algorithm of Gorski et al. (2005), HEALPix's loc2pix.
    """
    _check_nside(nside)
    z = torch.sin(lat.double())
    za = z.abs()
    tt = torch.remainder(lon.double(), 2 * math.pi) * (2.0 / math.pi)  # in [0, 4)
    tt = torch.where(tt >= 4.0, tt - 4.0, tt)
    ns = nside

    # Equatorial belt, |z| <= 2/3: (jp, jm) are the chart coordinates in which the
    # pixels are unit squares (see ``equatorial_pixel``; the remapping uses the same charts).
    jp = (ns * (0.5 + tt - 0.75 * z)).long()  # ascending edge line
    jm = (ns * (0.5 + tt + 0.75 * z)).long()  # descending edge line
    pix_eq = equatorial_pixel(ns, jp, jm, xp=torch)

    # Polar caps, |z| > 2/3: (a, b) = (tp, 1 - tp) * ns * sqrt(3 (1 - |z|)).
    ntt = torch.clamp(tt.long(), max=3)
    tp = tt - ntt
    tmp = ns * torch.sqrt(3.0 * (1.0 - za))
    pix_po = polar_pixel(ns, ntt, (tp * tmp).long(), ((1.0 - tp) * tmp).long(), z > 0, xp=torch)
    return torch.where(za > 2.0 / 3.0, pix_po, pix_eq)


def equatorial_pixel(nside: int, jp, jm, xp: ModuleType = np):
    """Nested index of the equatorial-chart unit square ``(floor jp, floor jm)``.

    jp, jm: int64 numpy arrays (``xp=numpy``) or tensors (``xp=torch``), with
    ``jp = ns (1/2 + tt - 3z/4)`` and ``jm = ns (1/2 + tt + 3z/4)``, ``tt = 2 phi / pi`` in [0, 4).
    """
    ns = nside
    ifp, ifm = jp // ns, jm // ns
    face = xp.where(ifp == ifm, ifp | 4, xp.where(ifp < ifm, ifp, ifm + 8))
    ix = jm & (ns - 1)
    iy = ns - (jp & (ns - 1)) - 1
    return face * (ns * ns) + _spread_bits(ix) + (_spread_bits(iy) << 1)


def polar_pixel(nside: int, quadrant, ja, jb, north, xp: ModuleType = np):
    """Nested index of the polar-cap chart unit square ``(floor a, floor b)`` in
    ``quadrant`` (0..3, by longitude) of the north (``north`` true) or south cap;
    int64 numpy arrays (``xp=numpy``) or tensors (``xp=torch``)."""
    ns = nside
    ja = xp.clip(ja, None, ns - 1)
    jb = xp.clip(jb, None, ns - 1)
    face = xp.where(north, quadrant, quadrant + 8)
    ix = xp.where(north, ns - jb - 1, ja)
    iy = xp.where(north, ns - ja - 1, jb)
    return face * (ns * ns) + _spread_bits(ix) + (_spread_bits(iy) << 1)


class HealpixMesh:
    """A HEALPix mesh of ``12 * nside**2`` equal-area cells in nested ordering."""

    kind = "healpix"

    def __init__(self, nside: int):
        _check_nside(nside)
        self.nside = nside
        self.npix = 12 * nside * nside
        self.num_nodes = self.npix

    @cached_property
    def xyz(self) -> np.ndarray:
        """(npix, 3) unit vectors of cell centres, float64."""
        return np.stack(healpy.pix2vec(self.nside, np.arange(self.npix), nest=True), axis=1)

    @property
    def cell_area(self) -> float:
        """Area of every cell, steradians (HEALPix cells are exactly equal-area)."""
        return 4.0 * math.pi / self.npix

    @property
    def areas(self) -> np.ndarray:
        """(npix,) cell areas, steradians: all ``4 pi / npix``."""
        return np.full(self.npix, self.cell_area)

    @property
    def spacing(self) -> float:
        """Typical distance between neighbouring centres, radians."""
        return math.sqrt(self.cell_area)

    @property
    def cell_radius(self) -> float:
        """Largest distance from a pixel centre to a corner of its pixel, radians."""
        return float(healpy.max_pixrad(self.nside))

    @cached_property
    def neighbours(self) -> np.ndarray:
        """(npix, 8) nested indices of the 8 (or 7) neighbours; -1 where absent."""
        return healpix_neighbours(self.nside)

    @cached_property
    def undirected_edges(self) -> np.ndarray:
        """(E, 2) neighbour pairs ``i < j``, each stored once, sorted."""
        return neighbour_pairs(self.neighbours)

    def representatives(self, coarsening: int) -> np.ndarray:
        """(npix / 4**coarsening,) for each pixel of the mesh ``coarsening`` levels coarser,
        the pixel of this mesh nearest its centre.

        In nested ordering the children of coarse pixel P are ``P * 4**k ..
        (P + 1) * 4**k - 1``, so this is an argmax over contiguous blocks.
        """
        k = 4**coarsening
        coarse = HealpixMesh(self.nside >> coarsening)
        children = self.xyz.reshape(coarse.npix, k, 3)
        best = np.argmax(np.einsum("pkc,pc->pk", children, coarse.xyz), axis=1)
        return np.arange(coarse.npix) * k + best

    def multiscale_edges(self, levels: int) -> np.ndarray:
        """(E, 2) neighbour pairs of this mesh plus, for each of the ``levels - 1``
        coarser nested meshes (down to nside 1), the pairs of representatives of
        neighbouring coarse pixels: long edges through the nested hierarchy, as
        GraphCast's multi-mesh. Each pair once, ``i < j``."""
        if levels < 1:
            raise ValueError(f"multiscale levels must be >= 1, got {levels}")
        parts = [self.undirected_edges]
        for k in range(1, levels):
            if self.nside >> k < 1:
                break
            rep = self.representatives(k)
            coarse_pairs = neighbour_pairs(healpix_neighbours(self.nside >> k))
            parts.append(rep[coarse_pairs])
        return canonical_pairs(np.concatenate(parts), self.npix, f"HEALPix nside {self.nside} multiscale edges")


def healpix_neighbours(nside: int) -> np.ndarray:
    """(npix, 8) nested neighbour table (healpy's order: SW, W, NW, N, NE, E, SE, S); -1 where absent."""
    npix = 12 * nside * nside
    if nside == 1:
        # healpy's table for nside 1 repeats pixels: take the 8 nearest centres instead.
        xyz = np.stack(healpy.pix2vec(1, np.arange(npix), nest=True), axis=1)
        return np.argsort(-(xyz @ xyz.T), axis=1)[:, 1:9].astype(np.int64)
    return healpy.get_all_neighbours(nside, np.arange(npix), nest=True).T.astype(np.int64)


def neighbour_pairs(neighbours: np.ndarray) -> np.ndarray:
    """(N, K) neighbour table (-1 pads) -> (E, 2) unique pairs ``i < j``."""
    n, k = neighbours.shape
    src = np.repeat(np.arange(n), k)
    dst = neighbours.reshape(-1)
    ok = dst >= 0
    return canonical_pairs(np.stack([src[ok], dst[ok]], axis=1), n)
