"""Meshes and the graphs between observations, mesh nodes and targets.

Knows nothing of models: functions take and return numpy arrays and tensors.
``mesh_graph`` builds (or loads from the cache) everything a model needs for
one mesh; ``grid_remap`` moves fields between lat-lon grids and meshes.
"""

from earthgraph.graphs.healpix import HealpixMesh, ang2pix_nested
from earthgraph.graphs.icosahedral import IcosahedralMesh
from earthgraph.graphs.mesh import MeshGraphData, make_mesh, mesh_graph
from earthgraph.graphs.remap import ConservativeRemap, grid_remap

__all__ = ["ConservativeRemap", "HealpixMesh", "IcosahedralMesh", "MeshGraphData", "ang2pix_nested",
           "grid_remap", "make_mesh", "mesh_graph"]
