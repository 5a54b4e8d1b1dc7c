from earthgraph.processors.interaction import InteractionNetworkProcessor
from earthgraph.processors.registry import CustomProcessor, ProcessorChoice, build_processor
from earthgraph.processors.transformer import GraphTransformerProcessor

__all__ = ["CustomProcessor", "GraphTransformerProcessor", "InteractionNetworkProcessor", "ProcessorChoice",
           "build_processor"]
