"""The nature run's atmosphere: spectral transforms, the barotropic vorticity model, chaos."""

import numpy as np
import pytest

from earthgraph.data.advection import advect, face_fluxes, taper_polar_streamfunction
from earthgraph.data.grid import EARTH_RADIUS, LatLonGrid
from earthgraph.data.nature_run import NatureRunConfig, dynamics_grid, run_nature
from earthgraph.data.spherical_harmonics import GaussianGrid, legendre_table, synthesis_table
from earthgraph.data.travelling_waves import centre_winds
from earthgraph.data.vorticity import OMEGA, BarotropicModel, JetForcing

A = EARTH_RADIUS


@pytest.fixture(scope="module")
def t21():
    return GaussianGrid(32, 64, 21)


def test_transforms_round_trip_and_differentiate(t21):
    g = t21
    lat, lon = g.lat[:, None], g.lon[None, :]
    field = np.cos(lat) ** 3 * np.sin(3 * lon) * np.sin(lat) + np.sin(lat) ** 2
    np.testing.assert_allclose(g.synthesise(g.analyse(field)), field, atol=1e-12)

    # Solid-body rotation at 10 m/s: psi = -a U sin(lat) gives u = U cos(lat), v = 0.
    psi = g.analyse(-A * 10.0 * np.sin(lat) * np.ones_like(lon))
    u_cos, v_cos = g.winds_from_streamfunction(psi, A)
    np.testing.assert_allclose(u_cos, 10.0 * np.cos(lat) ** 2 * np.ones_like(lon), atol=1e-9)
    np.testing.assert_allclose(v_cos, 0.0, atol=1e-9)

    # The curl of a streamfunction's winds is its Laplacian; their divergence vanishes.
    psi = g.analyse(1e7 * np.cos(lat) ** 2 * np.cos(2 * lon) * np.sin(lat) + 1e6 * np.sin(lat) ** 3)
    u_cos, v_cos = g.winds_from_streamfunction(psi, A)
    laplacian = psi * g.laplacian_eigenvalues(A)
    scale = np.abs(laplacian).max()
    assert np.abs(g.vorticity(u_cos, v_cos, A) - laplacian).max() < 1e-12 * scale
    assert np.abs(g.divergence(u_cos, v_cos, A)).max() < 1e-12 * scale

    # Synthesis at other points (cell corners of a lat-lon grid) matches the formula.
    corners = LatLonGrid(16, 32)
    table = synthesis_table(legendre_table(np.sin(corners.lat_edges), g.truncation))
    coeffs = g.analyse(np.cos(lat) ** 2 * np.cos(2 * lon) * np.sin(lat))
    values = g.synthesise_on(coeffs, table, 32, lon_shift=corners.dlon / 2)
    lat_c = corners.lat_edges[:, None]
    lon_c = corners.lon[None, :] + corners.dlon / 2
    np.testing.assert_allclose(values, np.cos(lat_c) ** 2 * np.cos(2 * lon_c) * np.sin(lat_c), atol=1e-12)


def test_rossby_haurwitz_wave_travels_at_the_analytic_speed(t21):
    """A single spherical harmonic solves the unforced barotropic vorticity equation
    exactly and drifts westward at 2 Omega / (n (n + 1)) radians per second."""
    g = t21
    m, n = 4, 6
    model = BarotropicModel(gaussian=g, tracers=LatLonGrid(16, 32), orography_m=np.zeros((g.nlat, g.nlon)),
                            jets=JetForcing(speed_m_per_s=0.0), relaxation_days=1e12, diffusion_hours=1e12)
    zeta = np.zeros((g.truncation + 1,) * 2, dtype=complex)
    zeta[m, n] = 2e-5
    target = np.zeros_like(zeta)
    dt, steps = 1800.0, 96  # two days
    for _ in range(steps):
        zeta = model.step(zeta, target, dt)
    expected_shift = -2 * OMEGA / (n * (n + 1)) * dt * steps  # radians of longitude
    phase = np.angle(zeta[m, n] / 2e-5) / -m
    assert abs(phase - expected_shift) < 1e-4 * abs(expected_shift) + 1e-9
    assert abs(abs(zeta[m, n]) - 2e-5) < 1e-9, "the wave keeps its amplitude"
    others = zeta.copy()
    others[m, n] = 0
    assert np.abs(others).max() < 1e-12


def test_corner_streamfunction_gives_conservative_transport():
    grid = LatLonGrid(16, 32)
    g = dynamics_grid(21)
    model = BarotropicModel(gaussian=g, tracers=grid, orography_m=np.zeros((g.nlat, g.nlon)))
    rng = np.random.default_rng(0)
    zeta = model.jet_vorticity(0.5) + g.analyse(1e-5 * rng.standard_normal((g.nlat, g.nlon))) * g.valid
    psi = taper_polar_streamfunction(model.corner_streamfunction(zeta), grid.lat_edges)
    assert np.ptp(psi[0]) == 0 and np.ptp(psi[-1]) == 0, "nothing flows through a pole"
    fx, fy = face_fluxes(psi)
    q = rng.uniform(0.0, 50.0, size=(2, grid.nlat, grid.nlon))
    out = advect(grid, q, fx, fy, 3600.0)
    totals = (out * grid.area).sum(axis=(1, 2))
    np.testing.assert_allclose(totals, (q * grid.area).sum(axis=(1, 2)), rtol=1e-13)
    assert out.min() >= 0.0, "upwind transport keeps tracers non-negative"
    uniform = advect(grid, np.full((grid.nlat, grid.nlon), 7.0), fx, fy, 3600.0)
    np.testing.assert_allclose(uniform, 7.0, rtol=1e-12, err_msg="a non-divergent flow keeps a uniform tracer uniform")


def test_twin_runs_diverge_exponentially():
    """Chaos: a one-in-a-million vorticity perturbation grows by orders of magnitude in weeks."""
    base = dict(nlat=16, nlon=32, days=30, spinup_days=30, output_hours=24, output_dtype="float64",
                statics="synthetic")
    a = run_nature(NatureRunConfig(**base))
    b = run_nature(NatureRunConfig(perturbation=1e-6, **base))
    diff = np.sqrt(((a.u_component_of_wind - b.u_component_of_wind) ** 2).mean(("latitude", "longitude"))).values
    assert 0 < diff[0] < 1e-3
    assert diff[-1] > 100 * diff[0], f"wind difference grew only from {diff[0]:.2e} to {diff[-1]:.2e} m/s"
    wind = float(np.sqrt((a.u_component_of_wind ** 2).mean()))
    assert 5 < wind < 40, f"RMS wind {wind:.1f} m/s is not weather-like"


def test_prescribed_wave_atmosphere_has_winds_and_no_chaos():
    grid = LatLonGrid(16, 32)
    psi = -10.0 * A * np.sin(grid.lat_edges)[:, None] * np.ones((1, grid.nlon))
    u, v = centre_winds(grid, psi)
    np.testing.assert_allclose(u, 10.0 * np.cos(grid.lat)[:, None] * np.ones((1, grid.nlon)), rtol=2e-3)
    np.testing.assert_allclose(v, 0.0, atol=1e-12)
    base = dict(nlat=16, nlon=32, days=6, spinup_days=4, output_hours=24, output_dtype="float64",
                statics="synthetic", atmosphere="waves")
    a = run_nature(NatureRunConfig(**base))
    b = run_nature(NatureRunConfig(perturbation=1e-6, **base))
    np.testing.assert_array_equal(a.u_component_of_wind.values, b.u_component_of_wind.values)
    assert 5 < float(np.abs(a.v_component_of_wind).max()) < 40
    with pytest.raises(ValueError, match="atmosphere='jet'"):
        NatureRunConfig(atmosphere="jet")
