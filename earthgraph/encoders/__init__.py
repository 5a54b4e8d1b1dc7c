from earthgraph.encoders.obs_encoder import ObservationEncoder

__all__ = ["ObservationEncoder"]
