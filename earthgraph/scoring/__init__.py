"""WeatherBench2-style scoring of gridded forecasts against gridded truth.

Reads forecasts and truth as xarray objects (from files); never imports a model.
"""

from earthgraph.scoring.metrics import latitude_weights, rmse, spatial_mean

__all__ = ["latitude_weights", "rmse", "spatial_mean"]
