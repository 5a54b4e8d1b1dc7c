"""The forecaster and what it is built from.

``config``: its options (:class:`ForecasterConfig`); ``features``: forcing from the sun;
``statics``: the surface under nodes and points; ``state``: what it carries between
windows (:class:`ModelState`); ``forecaster``: :class:`GraphDOPForecaster` itself.
"""

from earthgraph.models.config import ForecasterConfig
from earthgraph.models.forecaster import GraphDOPForecaster
from earthgraph.models.state import ModelState

__all__ = ["ForecasterConfig", "GraphDOPForecaster", "ModelState"]
