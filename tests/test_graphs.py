"""Meshes, processor edges, per-batch point graphs, conservative remapping, the cache."""

import json
import subprocess
import sys

import healpy
import numpy as np
import pytest
import torch
from scipy.spatial import SphericalVoronoi, cKDTree

from earthgraph.graphs.edges import edge_features, mesh_to_points, points_to_mesh
from earthgraph.graphs.healpix import HealpixMesh, ang2pix_nested
from earthgraph.graphs.icosahedral import IcosahedralMesh, node_count
from earthgraph.graphs.locate import bucket_table, nearest_in_buckets
from earthgraph.graphs.mesh import mesh_graph
from earthgraph.graphs.remap import cell_edges_from_centres, grid_cell_areas, grid_remap, healpix_overlaps
from earthgraph.graphs.sphere import lat_lon_from_xyz, lat_lon_to_xyz, spherical_triangle_area
from earthgraph.graphs.spherical_clip import polygon_cell_overlaps
from earthgraph.graphs.topology import check_processor_edges, component_count, directed_views

# Points that break naive code: both poles, the date line from both sides, lon 360.
SPECIAL_LAT = np.radians([90, -90, 41.8103149, -41.8103149, 0, 89.999999, -89.99999, 0.0, 45.0])
SPECIAL_LON = np.radians([0, 180, -180, 180, 359.9999999, -0.0, 360.0, -179.9999999, 180.0])


def _random_points(n, seed):
    rng = np.random.default_rng(seed)
    lat = np.concatenate([np.arcsin(rng.uniform(-1, 1, n)), SPECIAL_LAT])
    lon = np.concatenate([rng.uniform(-np.pi, 3 * np.pi, n), SPECIAL_LON])
    return lat, lon


# ------------------------------------------------------------------- HEALPix mesh

@pytest.mark.parametrize("nside", [1, 2, 8, 64, 1024])
def test_ang2pix_matches_healpy_including_poles_and_dateline(nside):
    lat, lon = _random_points(50_000, nside)
    expect = healpy.ang2pix(nside, np.pi / 2 - lat, lon, nest=True)
    got = ang2pix_nested(nside, torch.from_numpy(lat), torch.from_numpy(lon)).numpy()
    np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("nside", [1, 4, 32, 1024])
def test_healpix_pixel_count_centres_and_areas_match_healpy(nside):
    mesh = HealpixMesh(nside)
    assert mesh.npix == healpy.nside2npix(nside)
    theta, phi = healpy.pix2ang(nside, np.arange(mesh.npix), nest=True)
    lat, lon = lat_lon_from_xyz(mesh.xyz)
    np.testing.assert_allclose(lat, np.pi / 2 - theta, atol=1e-12)
    np.testing.assert_allclose(np.cos(lon - phi), 1.0, atol=1e-12)
    # The torch lookup puts every centre in its own pixel (a sample of them at nside 1024).
    pix = np.arange(mesh.npix) if nside < 1024 else np.random.default_rng(0).choice(mesh.npix, 300_000, replace=False)
    back = ang2pix_nested(nside, torch.from_numpy(lat[pix]), torch.from_numpy(lon[pix])).numpy()
    np.testing.assert_array_equal(back, pix)
    np.testing.assert_allclose(mesh.areas, healpy.nside2pixarea(nside), rtol=1e-14)
    assert abs(mesh.areas.sum() - 4 * np.pi) < 1e-10


def test_healpix_neighbours_match_healpy_and_make_a_clean_graph():
    mesh = HealpixMesh(16)
    ref = healpy.get_all_neighbours(16, np.arange(mesh.npix), nest=True).T
    pairs = set(map(tuple, mesh.undirected_edges.tolist()))
    for p in range(mesh.npix):
        for q in ref[p][ref[p] >= 0]:
            assert (min(p, q), max(p, q)) in pairs
    assert len(pairs) == len(mesh.undirected_edges) == 4 * mesh.npix - 12  # 8 per pixel, 7 at 24 pixels
    check_processor_edges(mesh.undirected_edges, mesh.npix, "healpix 16")
    degree = np.bincount(mesh.undirected_edges.ravel(), minlength=mesh.npix)
    assert (degree == 7).sum() == 24 and degree.max() == 8
    # Neighbours are local: no edge longer than 2.1 pixel widths (diagonals near the poles).
    e = mesh.undirected_edges
    d = np.arccos(np.clip(np.sum(mesh.xyz[e[:, 0]] * mesh.xyz[e[:, 1]], 1), -1, 1))
    assert d.max() < 2.1 * mesh.spacing


def test_healpix_multiscale_edges_follow_the_nested_hierarchy():
    mesh = HealpixMesh(32)
    single = mesh.multiscale_edges(1)
    multi = mesh.multiscale_edges(4)
    check_processor_edges(multi, mesh.npix, "healpix 32 multiscale")
    assert set(map(tuple, single.tolist())) <= set(map(tuple, multi.tolist()))
    rep = mesh.representatives(2)                     # nside 8 pixel -> one of its 16 children
    assert np.all(rep // 16 == np.arange(12 * 64))
    long_edges = np.array(sorted(set(map(tuple, multi.tolist())) - set(map(tuple, single.tolist()))))
    d = np.arccos(np.clip(np.sum(mesh.xyz[long_edges[:, 0]] * mesh.xyz[long_edges[:, 1]], 1), -1, 1))
    # From two fine spacings (nside 16 neighbours) to a diagonal of the nside-4 mesh.
    assert d.min() > 1.5 * mesh.spacing and d.max() < 2.1 * 8 * mesh.spacing


# -------------------------------------------------------------- icosahedral mesh

@pytest.mark.parametrize("level", [0, 1, 3, 5])
def test_icosahedron_counts_satisfy_euler(level):
    mesh = IcosahedralMesh(level)
    v, e, f = len(mesh.xyz), len(mesh.undirected_edges), len(mesh.faces)
    assert v == node_count(level) == 10 * 4**level + 2
    assert (e, f) == (30 * 4**level, 20 * 4**level)
    assert v - e + f == 2
    np.testing.assert_allclose(np.linalg.norm(mesh.xyz, axis=1), 1.0, atol=1e-15)
    degree = (mesh.neighbours >= 0).sum(1)
    assert (degree == 5).sum() == 12 and np.all((degree == 5) | (degree == 6))
    check_processor_edges(mesh.undirected_edges, v, f"icosahedral {level}")


@pytest.mark.parametrize("level", [0, 2, 4, 7])
def test_icosahedral_voronoi_areas_sum_to_four_pi(level):
    areas = IcosahedralMesh(level).areas
    assert abs(areas.sum() - 4 * np.pi) < 1e-10
    assert areas.min() > 0 and areas.max() / areas.min() < 1.4


def test_icosahedral_cells_are_the_spherical_voronoi_cells():
    mesh = IcosahedralMesh(3)
    sv = SphericalVoronoi(mesh.xyz)
    sv.sort_vertices_of_regions()
    np.testing.assert_allclose(mesh.areas, sv.calculate_areas(), rtol=1e-10)


def test_icosahedral_multimesh_is_graphcasts():
    mesh = IcosahedralMesh(4)
    multi = mesh.multiscale_edges(5)
    # Every level's edges are distinct, so the union has sum_l 30 * 4**l pairs.
    assert len(multi) == sum(30 * 4**k for k in range(5))
    check_processor_edges(multi, mesh.num_nodes, "multimesh")
    assert len(mesh.multiscale_edges(2)) == 30 * 4**4 + 30 * 4**3
    # Coarse nodes keep their indices: level-2 edges join the first 162 nodes.
    assert mesh.level_edges(2).max() < node_count(2)


def test_directed_views_are_consistent_csr():
    mesh = IcosahedralMesh(2)
    pairs = mesh.multiscale_edges(3)
    d = directed_views(pairs, mesh.num_nodes)
    assert d.num_edges == 2 * len(pairs)
    assert np.all(np.diff(d.receivers) >= 0)
    np.testing.assert_array_equal(np.diff(d.receiver_ptr), np.bincount(d.receivers, minlength=mesh.num_nodes))
    assert np.all(np.diff(d.senders[d.by_sender]) >= 0)
    np.testing.assert_array_equal(np.diff(d.sender_ptr), np.bincount(d.senders, minlength=mesh.num_nodes))
    np.testing.assert_array_equal(d.reverse[d.reverse], np.arange(d.num_edges))
    np.testing.assert_array_equal(d.senders[d.reverse], d.receivers)
    np.testing.assert_array_equal(d.pair[d.reverse], d.pair)
    np.testing.assert_array_equal(d.sign[d.reverse], -d.sign)
    # sign +1 runs from the pair's first node to its second.
    fwd = d.sign > 0
    np.testing.assert_array_equal(pairs[d.pair[fwd], 0], d.senders[fwd])


def test_processor_edge_checks_reject_bad_graphs():
    with pytest.raises(ValueError, match="connected components"):
        check_processor_edges(np.array([[0, 1], [2, 3]]), 4, "two islands")
    with pytest.raises(ValueError, match="once with i < j"):
        check_processor_edges(np.array([[1, 0], [1, 2]]), 3, "reversed")
    with pytest.raises(ValueError, match="duplicate"):
        check_processor_edges(np.array([[0, 1], [0, 1], [1, 2]]), 3, "dup")
    assert component_count(np.array([[0, 1], [1, 2]]), 3) == 1


# ------------------------------------------------------------ point location

@pytest.mark.parametrize("level", [0, 3, 6])
def test_icosahedral_locator_finds_the_nearest_node_everywhere(level):
    mesh = IcosahedralMesh(level)
    table, nside = bucket_table(mesh.xyz, mesh.cell_radius)
    lat, lon = _random_points(100_000, level)
    got = nearest_in_buckets(torch.from_numpy(mesh.xyz).float(), torch.from_numpy(table), nside,
                             torch.from_numpy(lat), torch.from_numpy(lon), chunk=30_000).numpy()
    p = lat_lon_to_xyz(lat, lon)
    d_ref, ref = cKDTree(mesh.xyz).query(p)
    d_got = np.linalg.norm(mesh.xyz[got] - p, axis=1)
    # Same node, or an exact tie in distance (level 0 has symmetric points).
    assert np.all((got == ref) | (np.abs(d_got - d_ref) < 1e-7))
    assert table.shape[1] <= 12, "the bucket index stays narrow"


@pytest.mark.parametrize("kind,resolution", [("healpix", 16), ("icosahedral", 4)])
def test_every_observation_reaches_its_own_cell_and_neighbours(kind, resolution, tmp_path):
    from earthgraph.graphs.mesh_graph import MeshGraph

    mesh = MeshGraph(kind, resolution, cache_dir=tmp_path)
    lat, lon = _random_points(20_000, 0)
    lat_t, lon_t = torch.from_numpy(lat), torch.from_numpy(lon)
    containing = mesh.locate(lat_t, lon_t)
    point, node = points_to_mesh(containing, mesh.neighbours)
    counts = np.bincount(point.numpy(), minlength=len(lat))
    min_edges = 8 if kind == "healpix" else 6  # the cell and its 7 (HEALPix) or 5 (icosahedral) neighbours
    assert counts.min() >= min_edges, "every observation is connected"
    first = np.r_[0, np.cumsum(counts)[:-1]]
    np.testing.assert_array_equal(node.numpy()[first], containing.numpy())
    if kind == "healpix":
        np.testing.assert_array_equal(containing.numpy(), healpy.ang2pix(resolution, np.pi / 2 - lat, lon, nest=True))
    d = np.arccos(np.clip(np.sum(mesh.geometry.xyz[node.numpy()] * lat_lon_to_xyz(lat, lon)[point.numpy()], 1), -1, 1))
    assert d.max() < 3.0 * mesh.spacing, "all encoder edges are local"
    own_only = points_to_mesh(containing, mesh.neighbours, include_neighbours=False)
    assert len(own_only[0]) == len(lat)


@pytest.mark.parametrize("kind,resolution,k", [("healpix", 8, 4), ("icosahedral", 3, 3)])
def test_decoder_edges_are_the_k_nearest_nodes(kind, resolution, k, tmp_path):
    from earthgraph.graphs.mesh_graph import MeshGraph

    mesh = MeshGraph(kind, resolution, cache_dir=tmp_path)
    lat, lon = _random_points(5000, 1)
    lat_t, lon_t = torch.from_numpy(lat), torch.from_numpy(lon)
    node, point = mesh_to_points(mesh.locate(lat_t, lon_t), mesh.neighbours, mesh.xyz, lat_t, lon_t, k=k)
    brute = np.argsort(-(lat_lon_to_xyz(lat, lon) @ mesh.geometry.xyz.T), axis=1)[:, :k]
    got = node.numpy().reshape(-1, k)
    assert np.all(point.numpy().reshape(-1, k) == np.arange(len(lat))[:, None])
    assert np.mean([set(a) == set(b) for a, b in zip(got, brute)]) > 0.995
    with pytest.raises(ValueError, match="k must be in"):
        mesh_to_points(mesh.locate(lat_t, lon_t), mesh.neighbours, mesh.xyz, lat_t, lon_t, k=9)


def test_one_conversion_each_way_runs_on_numpy_and_torch():
    lat, lon = _random_points(2000, 5)
    xyz = lat_lon_to_xyz(lat, lon)
    assert xyz.shape == (len(lat), 3) and xyz.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=-1), 1.0, rtol=1e-15)
    on_torch = lat_lon_to_xyz(torch.from_numpy(lat), torch.from_numpy(lon), xp=torch)
    assert isinstance(on_torch, torch.Tensor) and on_torch.dtype == torch.float64
    np.testing.assert_allclose(on_torch.numpy(), xyz, rtol=0, atol=1e-15)
    back_lat, back_lon = lat_lon_from_xyz(xyz)
    np.testing.assert_allclose(back_lat, lat, rtol=0, atol=1e-7)  # arcsin loses digits at the poles
    off_pole = np.abs(lat) < np.pi / 2 - 1e-6  # where longitude is defined
    dlon = np.angle(np.exp(1j * (back_lon - lon)))[off_pole]
    assert np.abs(dlon).max() < 1e-9 and back_lon.min() >= -np.pi and back_lon.max() <= np.pi
    torch_lat, torch_lon = lat_lon_from_xyz(on_torch, xp=torch)
    np.testing.assert_allclose(torch_lat.numpy(), back_lat, rtol=0, atol=1e-12)
    np.testing.assert_allclose(torch_lon.numpy(), back_lon, rtol=0, atol=1e-12)


def test_edge_features_are_local_east_north_displacements():
    recv = lat_lon_to_xyz(torch.tensor([0.0]), torch.tensor([0.0]), xp=torch)
    east = lat_lon_to_xyz(torch.tensor([0.0]), torch.tensor([0.01]), xp=torch)
    north = lat_lon_to_xyz(torch.tensor([0.01]), torch.tensor([0.0]), xp=torch)
    fe = edge_features(east, recv, 0.01)[0]
    fn = edge_features(north, recv, 0.01)[0]
    torch.testing.assert_close(fe, torch.tensor([1.0, 1.0, 0.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(fn, torch.tensor([1.0, 0.0, 1.0]), atol=1e-4, rtol=0)
    # Across the date line the displacement is still 0.02 rad east, not 2 pi west.
    zero = torch.zeros(1, dtype=torch.float64)
    a = lat_lon_to_xyz(zero, zero + np.pi - 0.01, xp=torch)
    b = lat_lon_to_xyz(zero, zero - np.pi + 0.01, xp=torch)
    torch.testing.assert_close(edge_features(b, a, 0.02)[0], torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64), atol=1e-4, rtol=0)
    # At a pole the features stay finite and the distance is right.
    pole = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    near_pole = lat_lon_to_xyz(torch.tensor([np.pi / 2 - 0.01]), torch.tensor([0.3]), xp=torch)
    f = edge_features(near_pole.double(), pole, 0.01)
    assert torch.isfinite(f).all() and abs(float(f[0, 0]) - 1.0) < 1e-4
    assert abs(float(f[0, 1:].norm()) - 1.0) < 1e-3


# ------------------------------------------------------- conservative remapping

def _grid(nlat, nlon, poles=False):
    lat = np.linspace(-90, 90, nlat) if poles else -90 + (np.arange(nlat) + 0.5) * 180 / nlat
    return lat, np.arange(nlon) * 360.0 / nlon


@pytest.mark.parametrize("nside,nlat,nlon,poles", [(1, 8, 16, False), (8, 32, 64, False), (16, 7, 12, False),
                                                   (32, 181, 360, True)])
def test_healpix_overlaps_are_exact(nside, nlat, nlon, poles):
    lat, lon = _grid(nlat, nlon, poles)
    lat_e, lon_e = cell_edges_from_centres(lat, "lat"), cell_edges_from_centres(lon, "lon", periodic=True)
    w = healpix_overlaps(nside, lat_e, lon_e)
    np.testing.assert_allclose(np.asarray(w.sum(1)).ravel(), grid_cell_areas(lat_e, lon_e), rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.asarray(w.sum(0)).ravel(), 4 * np.pi / (12 * nside**2), rtol=1e-12, atol=0)
    assert w.data.min() > 0


def test_healpix_overlaps_agree_with_brute_force_sampling():
    # Each grid cell sampled on a fine equal-area lattice; the sampled share of
    # each pixel must match the exact overlap (to the sampling error).
    nside, (lat, lon) = 4, _grid(6, 10)
    lat_e, lon_e = cell_edges_from_centres(lat, "lat"), cell_edges_from_centres(lon, "lon", periodic=True)
    w = healpix_overlaps(nside, lat_e, lon_e).toarray()
    s = 400
    z = np.sin(lat_e[:-1, None]) + np.diff(np.sin(lat_e))[:, None] * (np.arange(s) + 0.5) / s
    phi = lon_e[:-1, None] + np.diff(lon_e)[:, None] * (np.arange(s) + 0.5) / s
    for i in (0, 2, 5):
        for j in (0, 3, 9):
            zz, pp = np.meshgrid(z[i], phi[j], indexing="ij")
            pix = healpy.ang2pix(nside, np.arccos(zz.ravel()), pp.ravel(), nest=True)
            share = np.bincount(pix, minlength=12 * nside**2) / s**2
            exact = w[i * 10 + j] / w[i * 10 + j].sum()
            assert np.abs(share - exact).max() < 5e-3


def test_spherical_polygons_split_by_any_grid_keep_their_area_including_a_pole():
    # A square around the north pole and a Voronoi hexagon, cut by grids of wedges
    # and parallels: the pieces add up to the polygon's area; one piece matches sampling.
    square = lat_lon_to_xyz(np.radians([80.0] * 4), np.radians([10, 100, 190, 280]))[None]
    pole = np.array([0.0, 0.0, 1.0])
    square_area = sum(spherical_triangle_area(pole, square[0, i], square[0, (i + 1) % 4]) for i in range(4))
    mesh = IcosahedralMesh(2)
    polys, counts = mesh.voronoi_polygons()
    for poly, count, area in [(square, np.array([4]), square_area), (polys[[40]], counts[[40]], mesh.areas[40])]:
        total = 0.0
        for lat0, lat1 in [(-90, -10), (-10, 40), (40, 83), (83, 90)]:
            for k in range(7):
                lon0, lon1 = np.radians([k * 360 / 7, (k + 1) * 360 / 7])
                total += polygon_cell_overlaps(poly, count, np.radians([lat0]), np.radians([lat1]),
                                               np.array([lon0]), np.array([lon1]))[0]
        assert abs(total - area) < 1e-14
    # Monte Carlo: the share of the polar square inside 80-83N, 0-51.4E.
    rng = np.random.default_rng(0)
    z = rng.uniform(np.sin(np.radians(80)), np.sin(np.radians(83)), 400_000)
    lon = rng.uniform(0, np.radians(360 / 7), 400_000)
    p = lat_lon_to_xyz(np.arcsin(z), lon)
    inside = np.ones(len(p), bool)
    for i in range(4):
        inside &= np.einsum("c,nc->n", np.cross(square[0, i], square[0, (i + 1) % 4]), p) >= 0
    band = (np.sin(np.radians(83)) - np.sin(np.radians(80))) * np.radians(360 / 7)
    exact = polygon_cell_overlaps(square, np.array([4]), np.radians([80.0]), np.radians([83.0]),
                                  np.array([0.0]), np.radians([360 / 7]))[0]
    assert abs(inside.mean() * band - exact) < 4 * np.sqrt(0.25 / len(p)) * band


@pytest.mark.parametrize("kind,resolution", [("healpix", 8), ("healpix", 64), ("icosahedral", 3), ("icosahedral", 5)])
def test_remapping_preserves_the_area_integral_both_ways_also_with_masks(kind, resolution, tmp_path):
    from earthgraph.graphs.mesh_graph import MeshGraph

    mesh = MeshGraph(kind, resolution, cache_dir=tmp_path)
    lat, lon = _grid(45, 90)
    remap = mesh.remap_from_grid(lat, lon)
    lat_e, lon_e = cell_edges_from_centres(lat, "lat"), cell_edges_from_centres(lon, "lon", periodic=True)
    grid_area = grid_cell_areas(lat_e, lon_e).reshape(45, 90)
    mesh_area = mesh.geometry.areas
    np.testing.assert_allclose(remap.mesh_areas, mesh_area, rtol=1e-11)
    rng = np.random.default_rng(0)
    field = 280 + 10 * rng.normal(size=(45, 90))
    on_mesh, frac = remap.to_mesh(field)
    np.testing.assert_allclose(frac, 1.0, rtol=1e-12)
    rel = lambda a, b: abs(a / b - 1)  # noqa: E731
    assert rel((on_mesh * mesh_area).sum(), (field * grid_area).sum()) < 1e-12
    back, _ = remap.to_grid(on_mesh)
    assert rel((back * grid_area).sum(), (on_mesh * mesh_area).sum()) < 1e-12
    const, _ = remap.to_mesh(np.full((45, 90), 3.5))
    np.testing.assert_allclose(const, 3.5, rtol=1e-12)
    # A sea-surface field under a land mask: the masked integral is kept, the
    # covered fraction says how much of each cell is sea, all-land cells are NaN.
    land = (np.abs(lat[:, None] - 20) < 25) & (np.abs(lon[None, :] - 100) < 60)
    sea = (~land).astype(float)
    sst, cover = remap.to_mesh(field, mask=sea)
    ok = cover > 0
    assert rel((sst[ok] * cover[ok] * mesh_area[ok]).sum(), (field * sea * grid_area).sum()) < 1e-12
    assert np.all(np.isnan(sst[~ok])) and (cover < 1).any() and cover.max() <= 1 + 1e-12
    stacked, _ = remap.to_mesh(np.stack([field, 2 * field]))
    np.testing.assert_allclose(stacked[1], 2 * on_mesh, rtol=1e-12)
    assert remap.overlaps.data.min() > 0


def test_remap_rejects_bad_grids_and_fields():
    mesh = HealpixMesh(4)
    lat, lon = _grid(8, 16)
    with pytest.raises(ValueError, match="latitude must be strictly ascending"):
        grid_remap(mesh, lat[::-1], lon)
    with pytest.raises(ValueError, match="cover 360"):
        grid_remap(mesh, lat, lon[:-2])
    with pytest.raises(ValueError, match=r"outside \[-90, 90\]"):
        grid_remap(mesh, lat * 2, lon)
    remap = grid_remap(mesh, lat, lon)
    with pytest.raises(ValueError, match=r"grid field has shape \(8, 15\)"):
        remap.to_mesh(np.zeros((8, 15)))
    bad = np.zeros((8, 16))
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        remap.to_mesh(bad)
    mask = np.ones((8, 16))
    mask[3, 3] = 0
    values, cover = remap.to_mesh(bad, mask=mask)
    assert np.isfinite(values[cover > 0]).all(), "masked NaNs are ignored"
    assert np.isnan(values[cover == 0]).all()
    with pytest.raises(ValueError, match="mask"):
        remap.to_mesh(np.zeros((8, 16)), mask=np.full((8, 16), 2.0))


# ------------------------------------------------------------- cache and CLI

def test_graphs_are_cached_by_configuration(tmp_path, caplog):
    a = mesh_graph("icosahedral", 3, 2, cache_dir=tmp_path)
    assert a.cache_path is not None and a.cache_path.exists()
    b = mesh_graph("icosahedral", 3, 2, cache_dir=tmp_path)
    assert b.cache_path == a.cache_path
    np.testing.assert_array_equal(a.pairs, b.pairs)
    np.testing.assert_array_equal(a.lookup, b.lookup)
    c = mesh_graph("icosahedral", 3, 1, cache_dir=tmp_path)
    assert c.cache_path != a.cache_path and len(c.pairs) < len(a.pairs)
    # A truncated cache file is reported and rebuilt, not trusted.
    a.cache_path.write_bytes(a.cache_path.read_bytes()[:100])
    d = mesh_graph("icosahedral", 3, 2, cache_dir=tmp_path)
    assert "unreadable" in caplog.text and str(a.cache_path) in caplog.text
    np.testing.assert_array_equal(d.pairs, a.pairs)
    with pytest.raises(ValueError, match="unknown mesh kind 'cube'"):
        mesh_graph("cube", 3, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="nside must be a power of two"):
        mesh_graph("healpix", 12, cache_dir=tmp_path)
    assert not list(tmp_path.glob("*cube*")) and not list(tmp_path.glob(".*"))
    # Remapping matrices are cached under the mesh and the grid's coordinates.
    lat, lon = _grid(8, 16)
    first = grid_remap(HealpixMesh(4), lat, lon, cache_dir=tmp_path)
    again = grid_remap(HealpixMesh(4), lat, lon, cache_dir=tmp_path)
    assert (first.overlaps != again.overlaps).nnz == 0
    grid_remap(HealpixMesh(4), lat + 0.5, lon, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("remap-healpix4-8x16-*.npz"))) == 2


def test_describe_command_prints_graph_statistics(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "earthgraph.graphs", "describe", *a,  # noqa: E731
                                     "--cache-dir", str(tmp_path)], capture_output=True, text=True)
    out = run("--mesh", "icosahedral", "--resolution", "4", "--multiscale-levels", "5", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["nodes"] == 2562 and info["undirected_edges"] == sum(30 * 4**k for k in range(5))
    assert info["degree"]["min"] == 6 and info["degree"]["max"] > 6 and info["edge_length_km"]["max"] > 5000
    assert abs(info["area_sum_minus_4pi"]) < 1e-10
    table = run("--mesh", "healpix", "--resolution", "16")
    assert table.returncode == 0 and "nodes              3,072" in table.stdout and "degree" in table.stdout
    bad = run("--mesh", "healpix", "--resolution", "12")
    assert bad.returncode == 2 and "power of two" in bad.stderr


def test_an_unwritable_cache_folder_only_warns(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    g = mesh_graph("healpix", 2, cache_dir=blocker / "cache")
    assert g.cache_path is None and g.num_nodes == 48
    assert "cannot write graph cache" in caplog.text
