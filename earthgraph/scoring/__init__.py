"""WeatherBench2-style scoring: metrics, regions, climatology, baselines,
observation-space verification, physical diagnostics and scorecards.

Reads forecasts and truth as xarray objects (from files) and observation
stores; never imports a model.
"""

from earthgraph.scoring.areas import area_weights, latitude_weights
from earthgraph.scoring.evaluation import score_forecast
from earthgraph.scoring.regions import WB2_REGIONS, standard_regions

__all__ = ["WB2_REGIONS", "area_weights", "latitude_weights", "score_forecast", "standard_regions"]
