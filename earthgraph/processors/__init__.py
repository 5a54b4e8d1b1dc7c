from earthgraph.processors.interaction import InteractionNetworkProcessor
from earthgraph.processors.pyg import PyGProcessor
from earthgraph.processors.registry import CustomProcessor, ProcessorChoice, build_processor
from earthgraph.processors.transformer import GraphTransformerProcessor

__all__ = ["CustomProcessor", "GraphTransformerProcessor", "InteractionNetworkProcessor", "ProcessorChoice",
           "PyGProcessor", "build_processor"]
