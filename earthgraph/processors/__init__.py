from earthgraph.processors.interaction import InteractionNetworkProcessor
from earthgraph.processors.transformer import GraphTransformerProcessor

PROCESSORS = {"interaction": InteractionNetworkProcessor, "transformer": GraphTransformerProcessor}

__all__ = ["GraphTransformerProcessor", "InteractionNetworkProcessor", "PROCESSORS"]
