"""earthgraph: graph neural networks that forecast the Earth system from observations.

Subpackages (see ARCHITECTURE.md for the layering rules):

- ``data``       observation types and store, the nature run, observing systems
- ``graphs``     meshes and observation<->mesh graphs
- ``encoders`` / ``processors`` / ``decoders``  plain ``torch.nn.Module`` parts
- ``models``     the forecaster built from them, its options, features and state
- ``kernels``    aggregation ops (segment sums) and their backends
- ``scoring``    WeatherBench2-style metrics and scorecards (never imports a model)
- ``training``   Lightning wiring: module, data module, CLI
"""

__version__ = "0.1.0"

SPHERES = ("atmosphere", "ocean", "land", "cryosphere")
