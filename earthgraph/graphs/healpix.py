"""HEALPix mesh in nested ordering: node positions, neighbours, areas, and a
torch point-to-pixel lookup that runs on any device.

Static geometry comes from healpy (float64, CPU) once per mesh; the per-batch
lookup :func:`ang2pix_nested` is pure torch so that observation graphs are
built where the batch lives.
"""

from __future__ import annotations

import math
from functools import cached_property

import healpy
import numpy as np
import torch


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

    # Equatorial belt, |z| <= 2/3.
    temp1 = ns * (0.5 + tt)
    temp2 = ns * (z * 0.75)
    jp = (temp1 - temp2).long()  # ascending edge line
    jm = (temp1 + temp2).long()  # descending edge line
    ifp = jp // ns
    ifm = jm // ns
    face_eq = torch.where(ifp == ifm, ifp | 4, torch.where(ifp < ifm, ifp, ifm + 8))
    ix_eq = jm & (ns - 1)
    iy_eq = ns - (jp & (ns - 1)) - 1

    # Polar caps, |z| > 2/3.
    ntt = torch.clamp(tt.long(), max=3)
    tp = tt - ntt
    tmp = ns * torch.sqrt(3.0 * (1.0 - za))
    jp_p = torch.clamp((tp * tmp).long(), max=ns - 1)
    jm_p = torch.clamp(((1.0 - tp) * tmp).long(), max=ns - 1)
    north = z > 0
    face_po = torch.where(north, ntt, ntt + 8)
    ix_po = torch.where(north, ns - jm_p - 1, jp_p)
    iy_po = torch.where(north, ns - jp_p - 1, jm_p)

    polar = za > 2.0 / 3.0
    face = torch.where(polar, face_po, face_eq)
    ix = torch.where(polar, ix_po, ix_eq)
    iy = torch.where(polar, iy_po, iy_eq)
    return face * (ns * ns) + _spread_bits(ix) + (_spread_bits(iy) << 1)


class HealpixMesh:
    """A HEALPix mesh of ``12 * nside**2`` equal-area cells in nested ordering."""

    def __init__(self, nside: int):
        _check_nside(nside)
        self.nside = nside
        self.npix = 12 * nside * nside

    @cached_property
    def xyz(self) -> np.ndarray:
        """(npix, 3) unit vectors of cell centres, float64."""
        return np.stack(healpy.pix2vec(self.nside, np.arange(self.npix), nest=True), axis=1)

    @cached_property
    def lat(self) -> np.ndarray:
        """(npix,) cell-centre latitude, radians."""
        return np.arcsin(np.clip(self.xyz[:, 2], -1.0, 1.0))

    @cached_property
    def lon(self) -> np.ndarray:
        """(npix,) cell-centre longitude, radians in [-pi, pi]."""
        return np.arctan2(self.xyz[:, 1], self.xyz[:, 0])

    @property
    def cell_area(self) -> float:
        """Area of every cell, steradians (HEALPix cells are exactly equal-area)."""
        return 4.0 * math.pi / self.npix

    @property
    def spacing(self) -> float:
        """Typical distance between neighbouring centres, radians."""
        return math.sqrt(self.cell_area)

    @cached_property
    def neighbours(self) -> np.ndarray:
        """(npix, 8) nested indices of the 8 (or 7) neighbours; -1 where absent."""
        if self.nside == 1:
            # healpy's neighbour table is degenerate for nside 1: use geometry.
            d = self.xyz @ self.xyz.T
            order = np.argsort(-d, axis=1)[:, 1:9]
            return order.astype(np.int64)
        return healpy.get_all_neighbours(self.nside, np.arange(self.npix), nest=True).T.astype(np.int64)

    @cached_property
    def undirected_edges(self) -> np.ndarray:
        """(E, 2) neighbour pairs ``i < j``, each stored once, sorted."""
        src = np.repeat(np.arange(self.npix), 8)
        dst = self.neighbours.reshape(-1)
        ok = (dst >= 0) & (dst != src)
        pairs = np.stack([np.minimum(src[ok], dst[ok]), np.maximum(src[ok], dst[ok])], axis=1)
        return np.unique(pairs, axis=0)

    def directed_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(senders, receivers), both directions of every pair, sorted by receiver."""
        e = self.undirected_edges
        senders = np.concatenate([e[:, 0], e[:, 1]])
        receivers = np.concatenate([e[:, 1], e[:, 0]])
        order = np.lexsort((senders, receivers))
        return senders[order], receivers[order]
