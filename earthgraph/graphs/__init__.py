"""Meshes and the graphs between observations, mesh nodes and targets.

Knows nothing of models: functions take and return tensors and arrays.
"""

from earthgraph.graphs.healpix import HealpixMesh, ang2pix_nested

__all__ = ["HealpixMesh", "ang2pix_nested"]
