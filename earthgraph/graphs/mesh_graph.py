"""The mesh as torch buffers: what a processor, encoder or decoder needs of it on the device.

:class:`MeshGraph` holds a mesh's nodes, its processor edges (directed, grouped by
receiver and by sender), the undirected pairs conservative fluxes run along, and
the point locator, as non-trainable buffers, so that they move with
``.to(device)`` and per-batch graphs are built where the batch is. It has no
parameters: it is the graph, not a model. The geometry itself is built (and
cached) by :func:`earthgraph.graphs.mesh.mesh_graph`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from earthgraph.graphs.edges import edge_features
from earthgraph.graphs.healpix import ang2pix_nested
from earthgraph.graphs.locate import nearest_in_buckets
from earthgraph.graphs.mesh import mesh_graph
from earthgraph.graphs.remap import ConservativeRemap, grid_remap
from earthgraph.graphs.topology import csr_grouping
from earthgraph.kernels import HalfEdges, Segments


class MeshGraph(nn.Module):
    """A mesh, its processor edges and its point locator as (non-trainable) buffers,
    so that they move with ``.to(device)`` and per-batch graphs are built there.

    kind: 'healpix' (``resolution`` = nside) or 'icosahedral' (refinement level);
    multiscale_levels: 1 for neighbour edges only, L to add L-1 coarser levels.
    """

    def __init__(self, kind: str = "healpix", resolution: int = 8, multiscale_levels: int = 1,
                 cache_dir: str | None = "default"):
        super().__init__()
        data = mesh_graph(kind, resolution, multiscale_levels, cache_dir)
        self.cache_dir = data.cache_path.parent if data.cache_path else None
        self.kind, self.resolution = kind, resolution
        self.npix = data.num_nodes
        self.spacing = data.spacing
        self.lookup_nside = data.lookup_nside
        d = data.directed()
        xyz = torch.from_numpy(data.xyz)
        buffers = {
            "xyz": xyz.float(), "lat": torch.from_numpy(data.lat).float(), "lon": torch.from_numpy(data.lon).float(),
            "areas": torch.from_numpy(data.areas), "neighbours": torch.from_numpy(data.neighbours),
            "senders": torch.from_numpy(d.senders), "receivers": torch.from_numpy(d.receivers),
            "receiver_ptr": torch.from_numpy(d.receiver_ptr), "by_sender": torch.from_numpy(d.by_sender),
            "sender_ptr": torch.from_numpy(d.sender_ptr), "reverse": torch.from_numpy(d.reverse),
            "lookup": torch.from_numpy(data.lookup),
            "edge_features": edge_features(xyz[d.senders], xyz[d.receivers], data.spacing).float(),
            # The undirected pairs (i < j) that conservative fluxes run along, with the
            # features of i -> j and of j -> i.
            "pair_i": torch.from_numpy(data.pairs[:, 0].copy()), "pair_j": torch.from_numpy(data.pairs[:, 1].copy()),
            "pair_features": edge_features(xyz[data.pairs[:, 0]], xyz[data.pairs[:, 1]], data.spacing).float(),
            "pair_features_reverse": edge_features(xyz[data.pairs[:, 1]], xyz[data.pairs[:, 0]], data.spacing).float(),
        }
        # CSR views of the pairs' ends, for the deterministic kernels.
        for end in ("i", "j"):
            ptr, order = csr_grouping(data.pairs[:, 0 if end == "i" else 1], data.num_nodes)
            buffers[f"pair_{end}_ptr"] = torch.from_numpy(ptr)
            buffers[f"pair_{end}_order"] = torch.from_numpy(order) if order is not None else None
        buffers["half_edge_pair"] = torch.from_numpy(d.pair)
        buffers["half_edge_sign"] = torch.from_numpy(d.sign).float()
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)
        self.geometry = data

    # The groupings the message-passing ops take (cheap views of the buffers, built on
    # access so that they follow the buffers to any device).
    @property
    def receiver_segments(self) -> Segments:
        """The directed edges grouped by receiver (they are sorted so)."""
        return Segments(self.receivers, self.npix, ptr=self.receiver_ptr)

    @property
    def sender_segments(self) -> Segments:
        """The directed edges grouped by sender."""
        return Segments(self.senders, self.npix, ptr=self.sender_ptr, order=self.by_sender)

    @property
    def pair_i_segments(self) -> Segments:
        return Segments(self.pair_i, self.npix, ptr=self.pair_i_ptr, order=self.pair_i_order)

    @property
    def pair_j_segments(self) -> Segments:
        return Segments(self.pair_j, self.npix, ptr=self.pair_j_ptr, order=self.pair_j_order)

    @property
    def half_edges(self) -> HalfEdges:
        """The conservative flux graph: each pair's flux enters ``pair_j`` and leaves ``pair_i``."""
        return HalfEdges(self.pair_i, self.pair_j, self.npix, self.receiver_ptr, self.half_edge_pair,
                         self.half_edge_sign)

    def locate(self, lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
        """(n,) radians -> (n,) index of the mesh cell containing each point, on their device."""
        if self.kind == "healpix":
            return ang2pix_nested(self.resolution, lat, lon)
        return nearest_in_buckets(self.xyz, self.lookup, self.lookup_nside, lat, lon)

    def remap_from_grid(self, lat_deg: np.ndarray, lon_deg: np.ndarray) -> ConservativeRemap:
        """Conservative remapping from a global lat-lon grid (cell centres in degrees)."""
        return grid_remap(self.geometry.mesh(), lat_deg, lon_deg, self.locate, self.cache_dir)
