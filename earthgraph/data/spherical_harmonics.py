"""Spherical-harmonic transforms on a Gaussian grid, in plain numpy.

The nature run's atmosphere is a spectral model; this module holds the
transforms it needs and nothing about the model. Conventions:

- ``mu = sin(latitude)``; Gaussian latitudes are the roots of the Legendre
  polynomial of degree ``nlat``, south to north; longitudes ``2 pi i / nlon``.
- Triangular truncation ``T``: coefficients ``c[m, l]`` for ``0 <= m <= l <= T``,
  stored as a complex ``(T+1, T+1)`` array that is zero where ``l < m``.
- A real field is ``f(lon, mu) = sum_{m=-T..T} sum_l c[m, l] P[l, m](mu) exp(i m lon)``
  with ``c[-m] = conj(c[m])``; ``P`` is normalised so that the integral of ``P**2``
  over ``mu`` in [-1, 1] is 1.
- ``(1 - mu**2) dP/dmu`` is called ``H``; it gives the meridional derivatives
  that winds and divergences need, without dividing by ``cos(latitude)`` at
  the poles.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


def legendre_table(mu: np.ndarray, lmax: int) -> np.ndarray:
    """Normalised associated Legendre functions ``P[j, m, l]`` at points ``mu``.

    mu: (n,) values of sin(latitude) in [-1, 1].
    Returns (n, lmax+1, lmax+1) float64, zero where ``l < m``; the integral of
    ``P[:, m, l] ** 2`` over ``mu`` in [-1, 1] is 1 (no Condon-Shortley phase).
    """
    mu = np.asarray(mu, dtype=np.float64)
    sin_colat = np.sqrt(np.clip(1.0 - mu**2, 0.0, None))
    p = np.zeros((mu.size, lmax + 1, lmax + 1))
    p[:, 0, 0] = np.sqrt(0.5)
    for m in range(1, lmax + 1):
        p[:, m, m] = np.sqrt((2 * m + 1) / (2.0 * m)) * sin_colat * p[:, m - 1, m - 1]
    for m in range(lmax + 1):
        if m + 1 <= lmax:
            p[:, m, m + 1] = np.sqrt(2 * m + 3.0) * mu * p[:, m, m]
        for l in range(m + 2, lmax + 1):
            a = np.sqrt((4.0 * l * l - 1) / (l * l - m * m))
            b = np.sqrt(((l - 1.0) ** 2 - m * m) / (4.0 * (l - 1) ** 2 - 1))
            p[:, m, l] = a * (mu * p[:, m, l - 1] - b * p[:, m, l - 2])
    return p


def legendre_derivative_table(mu: np.ndarray, lmax: int) -> np.ndarray:
    """``H[j, m, l] = (1 - mu**2) dP[l, m]/dmu`` at points ``mu``, (n, lmax+1, lmax+1)."""
    p = legendre_table(mu, lmax + 1)
    m = np.arange(lmax + 2)[:, None]
    l = np.arange(lmax + 2)[None, :]
    eps = np.sqrt(np.clip((l * l - m * m) / (4.0 * l * l - 1), 0.0, None))  # eps[m, l]
    h = np.zeros((mu.size, lmax + 1, lmax + 1))
    for ll in range(lmax + 1):
        h[:, :, ll] = -ll * eps[None, : lmax + 1, ll + 1] * p[:, : lmax + 1, ll + 1]
        if ll >= 1:
            h[:, :, ll] += (ll + 1) * eps[None, : lmax + 1, ll] * p[:, : lmax + 1, ll - 1]
    lower = np.arange(lmax + 1)[:, None] > np.arange(lmax + 1)[None, :]
    h[:, lower] = 0.0
    return h


def synthesis_table(table: np.ndarray) -> np.ndarray:
    """A ``(n, m, l)`` Legendre table rearranged to ``(m, l, n)`` for :func:`legendre_series`."""
    return np.ascontiguousarray(table.transpose(1, 2, 0))


def legendre_series(table_mln: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """``sum_l coeffs[m, l] table[m, l, j]``: (T+1, T+1) complex -> (n, T+1) complex."""
    parts = np.stack([coeffs.real, coeffs.imag], axis=1)  # (m, 2, l)
    out = np.matmul(parts, table_mln)  # (m, 2, n)
    return (out[:, 0] + 1j * out[:, 1]).T


def legendre_sum(table_mjl: np.ndarray, fourier: np.ndarray) -> np.ndarray:
    """``sum_j fourier[j, m] table[m, j, l]``: (n, T+1) complex -> (T+1, T+1) complex."""
    parts = np.stack([fourier.real.T, fourier.imag.T], axis=1)  # (m, 2, n)
    out = np.matmul(parts, table_mjl)  # (m, 2, l)
    return out[:, 0] + 1j * out[:, 1]


@dataclass(frozen=True)
class GaussianGrid:
    """A Gaussian grid and triangular truncation with its transforms.

    ``nlat`` Gaussian latitudes, ``nlon`` longitudes and truncation ``T``
    (``nlon >= 3T + 1`` and ``nlat >= (3T + 1) / 2`` keep products of two fields
    free of aliasing).
    """

    nlat: int
    nlon: int
    truncation: int

    def __post_init__(self):
        t = self.truncation
        if t < 1 or self.nlon < 2 * t + 1 or self.nlat < t + 1:
            raise ValueError(
                f"GaussianGrid: truncation T{t} needs nlon >= 2T+1 and nlat >= T+1, got {self.nlat}x{self.nlon}"
            )

    @cached_property
    def mu_weights(self) -> tuple[np.ndarray, np.ndarray]:
        return np.polynomial.legendre.leggauss(self.nlat)

    @property
    def mu(self) -> np.ndarray:
        """(nlat,) sin(latitude) of the Gaussian latitudes, south to north."""
        return self.mu_weights[0]

    @property
    def weights(self) -> np.ndarray:
        """(nlat,) Gaussian weights; they sum to 2."""
        return self.mu_weights[1]

    @property
    def lat(self) -> np.ndarray:
        """(nlat,) latitude in radians."""
        return np.arcsin(self.mu)

    @property
    def lon(self) -> np.ndarray:
        return np.arange(self.nlon) * (2 * np.pi / self.nlon)

    @cached_property
    def p(self) -> np.ndarray:
        """(nlat, T+1, T+1) ``P[j, m, l]`` at the Gaussian latitudes."""
        return legendre_table(self.mu, self.truncation)

    @cached_property
    def h(self) -> np.ndarray:
        """(nlat, T+1, T+1) ``H[j, m, l]`` at the Gaussian latitudes."""
        return legendre_derivative_table(self.mu, self.truncation)

    # Tables laid out for batched matrix products over m, which numpy runs about
    # ten times faster than the equivalent einsum at these sizes.
    @cached_property
    def _p_analysis(self) -> np.ndarray:
        return np.ascontiguousarray(self.p.transpose(1, 0, 2))  # (m, j, l)

    @cached_property
    def _h_analysis(self) -> np.ndarray:
        return np.ascontiguousarray(self.h.transpose(1, 0, 2))

    @cached_property
    def _p_synthesis(self) -> np.ndarray:
        return synthesis_table(self.p)

    @cached_property
    def _h_synthesis(self) -> np.ndarray:
        return synthesis_table(self.h)

    @cached_property
    def degree(self) -> np.ndarray:
        """(T+1, T+1) total wavenumber ``l`` of each coefficient ``[m, l]``."""
        return np.broadcast_to(np.arange(self.truncation + 1)[None, :], (self.truncation + 1,) * 2).copy()

    @cached_property
    def order(self) -> np.ndarray:
        """(T+1, T+1) zonal wavenumber ``m`` of each coefficient ``[m, l]``."""
        return self.degree.T.copy()

    @cached_property
    def valid(self) -> np.ndarray:
        """(T+1, T+1) True where ``l >= m``."""
        return self.degree >= self.order

    # --- Fourier -------------------------------------------------------------
    def to_fourier(self, field: np.ndarray) -> np.ndarray:
        """(..., nlat, nlon) real grid values -> (..., nlat, T+1) Fourier coefficients."""
        return np.fft.rfft(field, axis=-1)[..., : self.truncation + 1] / self.nlon

    def from_fourier(self, coeffs: np.ndarray, nlon: int | None = None) -> np.ndarray:
        """(..., n, T+1) Fourier coefficients -> (..., n, nlon) real values.

        On fewer longitudes than the truncation resolves, wavenumbers from
        ``nlon / 2`` up are dropped (a smoothed field rather than an aliased one).
        """
        nlon = nlon or self.nlon
        keep = min(self.truncation + 1, (nlon + 1) // 2)
        full = np.zeros(coeffs.shape[:-1] + (nlon // 2 + 1,), dtype=np.complex128)
        full[..., :keep] = coeffs[..., :keep]
        return np.fft.irfft(full * nlon, n=nlon, axis=-1)

    # --- Legendre ------------------------------------------------------------
    def analyse(self, field: np.ndarray) -> np.ndarray:
        """(nlat, nlon) grid values -> (T+1, T+1) spectral coefficients ``[m, l]``."""
        fm = self.to_fourier(field)
        return legendre_sum(self._p_analysis, fm * self.weights[:, None])

    def synthesise(self, coeffs: np.ndarray) -> np.ndarray:
        """(T+1, T+1) coefficients -> (nlat, nlon) grid values."""
        return self.from_fourier(legendre_series(self._p_synthesis, coeffs))

    def laplacian_eigenvalues(self, radius: float) -> np.ndarray:
        """(T+1, T+1) eigenvalues ``-l(l+1)/radius**2`` of the Laplacian."""
        l = self.degree
        return -l * (l + 1) / radius**2

    def winds_from_streamfunction(self, psi: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """``(u cos(lat), v cos(lat))`` on the grid, m s-1, from spectral streamfunction (m2 s-1).

        ``u = -(1/a) dpsi/dlat`` and ``v = (1/(a cos lat)) dpsi/dlon``.
        """
        m = self.order
        u_cos = -self.from_fourier(legendre_series(self._h_synthesis, psi)) / radius
        v_cos = self.from_fourier(legendre_series(self._p_synthesis, 1j * m * psi)) / radius
        return u_cos, v_cos

    def divergence(self, a_cos: np.ndarray, b_cos: np.ndarray, radius: float) -> np.ndarray:
        """Spectral divergence of a vector field given as ``(A cos(lat), B cos(lat))`` on the grid.

        a_cos, b_cos: (nlat, nlon) eastward and northward components times cos(lat).
        Returns (T+1, T+1) coefficients of ``div (A, B)``, in the vector's units per metre.
        The meridional derivative is integrated by parts, so nothing is divided by
        cos(lat) at a pole.
        """
        am = self.to_fourier(a_cos)
        bm = self.to_fourier(b_cos)
        scale = (self.weights / (1.0 - self.mu**2))[:, None] / radius
        m = np.arange(self.truncation + 1)[None, :]
        zonal = legendre_sum(self._p_analysis, 1j * m * am * scale)
        meridional = legendre_sum(self._h_analysis, bm * scale)
        return zonal - meridional

    def vorticity(self, u_cos: np.ndarray, v_cos: np.ndarray, radius: float) -> np.ndarray:
        """Spectral curl (vertical component) of ``(u cos(lat), v cos(lat))`` given on the grid.

        Returns (T+1, T+1) coefficients of ``k . curl (u, v)``, s-1 for winds in m s-1.
        """
        um = self.to_fourier(u_cos)
        vm = self.to_fourier(v_cos)
        scale = (self.weights / (1.0 - self.mu**2))[:, None] / radius
        m = np.arange(self.truncation + 1)[None, :]
        return legendre_sum(self._p_analysis, 1j * m * vm * scale) + legendre_sum(self._h_analysis, um * scale)

    def synthesise_on(self, coeffs: np.ndarray, p_table: np.ndarray, nlon: int, lon_shift: float = 0.0) -> np.ndarray:
        """Grid values of spectral ``coeffs`` at other latitudes and longitudes.

        p_table: ``synthesis_table(legendre_table(mu, T))`` of the target latitudes.
        Returns (n, nlon) values at longitudes ``lon_shift + 2 pi i / nlon``.
        """
        m = np.arange(self.truncation + 1)
        shifted = legendre_series(p_table, coeffs) * np.exp(1j * m * lon_shift)[None, :]
        return self.from_fourier(shifted, nlon)
