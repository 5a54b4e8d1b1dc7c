from earthgraph.processors.interaction import InteractionNetworkProcessor

__all__ = ["InteractionNetworkProcessor"]
