from earthgraph.decoders.obs_decoder import ObservationDecoder

__all__ = ["ObservationDecoder"]
