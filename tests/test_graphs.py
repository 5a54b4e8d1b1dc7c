import healpy
import numpy as np
import pytest
import torch

from earthgraph.graphs.edges import edge_features, lat_lon_to_xyz, mesh_to_points, points_to_mesh
from earthgraph.graphs.healpix import HealpixMesh, ang2pix_nested


@pytest.mark.parametrize("nside", [1, 2, 8, 64, 1024])
def test_ang2pix_matches_healpy_including_poles_and_dateline(nside):
    rng = np.random.default_rng(nside)
    z = rng.uniform(-1, 1, 50_000)
    lon = rng.uniform(-np.pi, 3 * np.pi, 50_000)
    special_lat = np.radians([90, -90, 41.8103149, -41.8103149, 0, 89.999999, -89.99999])
    special_lon = np.radians([0, 180, -180, 180, 359.9999999, -0.0, 360.0])
    lat = np.concatenate([np.arcsin(z), special_lat])
    lon = np.concatenate([lon, special_lon])
    expect = healpy.ang2pix(nside, np.pi / 2 - lat, lon, nest=True)
    got = ang2pix_nested(nside, torch.from_numpy(lat), torch.from_numpy(lon)).numpy()
    np.testing.assert_array_equal(got, expect)


def test_mesh_geometry_and_processor_edges():
    mesh = HealpixMesh(8)
    assert mesh.npix == 768
    np.testing.assert_allclose(mesh.cell_area * mesh.npix, 4 * np.pi)
    np.testing.assert_allclose(np.linalg.norm(mesh.xyz, axis=1), 1.0)
    e = mesh.undirected_edges
    assert np.all(e[:, 0] < e[:, 1]), "each pair once, no self-loops"
    assert len(np.unique(e, axis=0)) == len(e)
    s, r = mesh.directed_edges()
    assert np.all(np.diff(r) >= 0), "sorted by receiver"
    assert set(zip(s.tolist(), r.tolist())) == set(zip(r.tolist(), s.tolist())), "symmetric"
    degree = np.bincount(r, minlength=mesh.npix)
    assert degree.min() >= 7 and degree.max() == 8


def test_every_observation_reaches_its_own_cell_and_neighbours():
    mesh = HealpixMesh(16)
    nb = torch.from_numpy(mesh.neighbours)
    rng = np.random.default_rng(0)
    lat = np.concatenate([np.arcsin(rng.uniform(-1, 1, 20_000)), np.radians([90.0, -90.0, 0.0])])
    lon = np.concatenate([rng.uniform(-np.pi, np.pi, 20_000), np.radians([0.0, 180.0, -180.0])])
    point, node = points_to_mesh(16, nb, torch.from_numpy(lat), torch.from_numpy(lon))
    counts = np.bincount(point.numpy(), minlength=len(lat))
    assert counts.min() >= 8, "every observation is connected (cell + at least 7 neighbours)"
    own = healpy.ang2pix(16, np.pi / 2 - lat, lon, nest=True)
    first = np.r_[0, np.cumsum(counts)[:-1]]
    np.testing.assert_array_equal(node.numpy()[first], own)
    # All edges are local: at most three cell widths (diagonal neighbours of corner points).
    d = np.arccos(np.clip(np.sum(mesh.xyz[node.numpy()] * lat_lon_to_xyz(torch.from_numpy(lat), torch.from_numpy(lon)).numpy()[point.numpy()], 1), -1, 1))
    assert d.max() < 3.0 * mesh.spacing


def test_decoder_edges_are_the_k_nearest_nodes():
    mesh = HealpixMesh(8)
    rng = np.random.default_rng(1)
    lat = np.arcsin(rng.uniform(-1, 1, 3000))
    lon = rng.uniform(-np.pi, np.pi, 3000)
    node, point = mesh_to_points(8, torch.from_numpy(mesh.neighbours), torch.from_numpy(mesh.xyz),
                                 torch.from_numpy(lat), torch.from_numpy(lon), k=4)
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], 1)
    brute = np.argsort(-(xyz @ mesh.xyz.T), axis=1)[:, :4]
    got = node.numpy().reshape(-1, 4)
    assert np.mean([set(a) == set(b) for a, b in zip(got, brute)]) > 0.995


def test_edge_features_are_local_east_north_displacements():
    recv = lat_lon_to_xyz(torch.tensor([0.0]), torch.tensor([0.0]))
    east = lat_lon_to_xyz(torch.tensor([0.0]), torch.tensor([0.01]))
    north = lat_lon_to_xyz(torch.tensor([0.01]), torch.tensor([0.0]))
    fe = edge_features(east, recv, 0.01)[0]
    fn = edge_features(north, recv, 0.01)[0]
    torch.testing.assert_close(fe, torch.tensor([1.0, 1.0, 0.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(fn, torch.tensor([1.0, 0.0, 1.0]), atol=1e-4, rtol=0)
