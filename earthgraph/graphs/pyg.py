"""The model's graphs as a ``torch_geometric.data.HeteroData``, named as anemoi-graphs names them.

A PyG or anemoi user can inspect, plot or train on exactly the graphs the forecaster
runs: the mesh (``hidden`` nodes) with its processor edges, and for each named point
set (``data`` by default; an observation type, a target grid) the encoder edges
point -> mesh and the decoder edges mesh -> point, built by the model's own builders
(:mod:`earthgraph.graphs.point_sets`), so the edges are the model's, edge for edge.

Layout, following anemoi-graphs' recipes:

* node sets ``hidden`` (the mesh) and one per point set; each holds ``x``: (n, 2)
  float32 latitude and longitude in radians. ``hidden`` also holds ``area_weight``:
  (N, 1) each cell's area divided by the largest (anemoi's ``unit-max``).
* edge sets ``(points, "to", "hidden")`` (encoder), ``("hidden", "to", "hidden")``
  (processor: every directed edge of every scale) and ``("hidden", "to", points)``
  (decoder), each with
  - ``edge_index``: (2, E) int64, row 0 the senders, row 1 the receivers (PyG's
    ``source_to_target`` flow);
  - ``edge_length``: (E, 1) great-circle length in radians (not normalised);
  - ``edge_dirs``: (E, 2) unit direction of the sender seen from the receiver, as
    (east, north) in the receiver's tangent frame (anemoi's frame is the receiver
    rotated to the pole; the two differ by a rotation per receiver); zero where
    the ends coincide;
  - ``edge_attr``: (E, EDGE) the features the model's layers read
    (:func:`earthgraph.graphs.edges.edge_features`: length and displacement divided by
    the mesh spacing), PyG's default name for edge features.

torch_geometric is imported on first use only (it takes seconds to import).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.graphs.point_sets import PointGraph, decoder_graph, encoder_graph, graphs_per_set

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData

MESH_NODES = "hidden"
LatLon = tuple[torch.Tensor, torch.Tensor]


def import_torch_geometric():
    """The ``torch_geometric`` module, or an ImportError that says how to install it."""
    try:
        import torch_geometric
    except ImportError as e:
        raise ImportError("earthgraph's PyG export and processors need torch_geometric (a dependency of "
                          "earthgraph: pip install 'torch_geometric>=2.5'); it could not be imported") from e
    return torch_geometric


def edge_attributes(features: torch.Tensor, spacing: float) -> dict[str, torch.Tensor]:
    """anemoi's edge attributes and PyG's ``edge_attr`` from the model's (E, 3) edge features
    (length and east/north displacement of the sender, divided by ``spacing`` radians)."""
    displacement = features[:, 1:3]
    norm = displacement.norm(dim=1, keepdim=True)
    direction = torch.where(norm > 0, displacement / norm.clamp(min=torch.finfo(norm.dtype).tiny), 0.0)
    return {"edge_length": features[:, :1] * spacing, "edge_dirs": direction, "edge_attr": features}


def _add_edges(data: HeteroData, key: tuple[str, str, str], senders: torch.Tensor, receivers: torch.Tensor,
               features: torch.Tensor, spacing: float) -> None:
    store = data[key]
    store.edge_index = torch.stack([senders, receivers])
    for name, value in edge_attributes(features, spacing).items():
        store[name] = value


def _point_graphs(points: Mapping[str, LatLon], build) -> dict[str, PointGraph]:
    """Each set's graph, its points numbered from 0, built in one joined pass as the model does."""
    return graphs_per_set({name: lat for name, (lat, _) in points.items()},
                          {name: lon for name, (_, lon) in points.items()}, build)


def _check_points(encode: Mapping[str, LatLon], decode: Mapping[str, LatLon]) -> dict[str, LatLon]:
    """The node sets of both mappings; a name in both must name the same points."""
    nodes = dict(encode)
    for name, (lat, lon) in decode.items():
        if name in nodes and not (torch.equal(nodes[name][0], lat) and torch.equal(nodes[name][1], lon)):
            raise ValueError(f"point set {name!r} is given to encode and to decode with different points; "
                             "give one of them another name")
        nodes[name] = (lat, lon)
    if MESH_NODES in nodes:
        raise ValueError(f"point set name {MESH_NODES!r} is the mesh's; name the points otherwise")
    for name, (lat, lon) in nodes.items():
        if lat.shape != lon.shape or lat.dim() != 1:
            raise ValueError(f"point set {name!r}: latitude and longitude must be (n,) tensors of one shape, "
                             f"got {tuple(lat.shape)} and {tuple(lon.shape)}")
    return nodes


def to_hetero_data(mesh: MeshGraph, encode: Mapping[str, LatLon] | None = None,
                   decode: Mapping[str, LatLon] | None = None, *, encoder_neighbours: bool = True,
                   decoder_k: int = 4) -> HeteroData:
    """The mesh, and the encoder and decoder graphs of the given points, as a ``HeteroData``.

    mesh: the model's mesh (``model.mesh``); encode: name -> (lat, lon), each (n,) radians,
    the points whose encoder edges (point -> mesh) to export; decode: the same for decoder
    edges (mesh -> point). A name in both is one node set with both edge sets, as
    anemoi's ``data`` nodes. encoder_neighbours, decoder_k: the model's
    ``encoder_neighbours`` and ``decoder_k``. Points are moved to the mesh's device.
    """
    pyg = import_torch_geometric()
    device = mesh.xyz.device
    encode = {name: (lat.to(device), lon.to(device)) for name, (lat, lon) in (encode or {}).items()}
    decode = {name: (lat.to(device), lon.to(device)) for name, (lat, lon) in (decode or {}).items()}
    data = pyg.data.HeteroData()
    data[MESH_NODES].x = torch.stack([mesh.lat, mesh.lon], dim=1)
    data[MESH_NODES].area_weight = (mesh.areas / mesh.areas.max()).float().unsqueeze(1)
    for name, (lat, lon) in _check_points(encode, decode).items():
        data[name].x = torch.stack([lat, lon], dim=1).float()
    _add_edges(data, (MESH_NODES, "to", MESH_NODES), mesh.senders, mesh.receivers, mesh.edge_features, mesh.spacing)
    build = functools.partial(encoder_graph, mesh=mesh, include_neighbours=encoder_neighbours)
    for name, graph in _point_graphs(encode, build).items():
        _add_edges(data, (name, "to", MESH_NODES), graph.point, graph.node, graph.features, mesh.spacing)
    build = functools.partial(decoder_graph, mesh=mesh, k=decoder_k)
    for name, graph in _point_graphs(decode, build).items():
        _add_edges(data, (MESH_NODES, "to", name), graph.node, graph.point, graph.features, mesh.spacing)
    return data
