"""Scoring entry point: ``earthgraph-evaluate`` (also ``python -m earthgraph.evaluate`` and
``python evaluate.py``), scoring a checkpoint's or any WB2-layout forecast the
WeatherBench2 way against the gridded truth, the observations and stations.

- :mod:`~earthgraph.evaluate.cli`: the command line, parsed once into typed options; ``main``.
- :mod:`~earthgraph.evaluate.options`: those options, grouped by the step that reads them.
- :mod:`~earthgraph.evaluate.errors`: :class:`EvaluationError`, the one error of a refused run.
- :mod:`~earthgraph.evaluate.run`: the steps in order (:func:`~earthgraph.evaluate.run.evaluate`).
- :mod:`~earthgraph.evaluate.inputs`: forecast, truth, climatology and stores, opened and checked.
- :mod:`~earthgraph.evaluate.checkpoint`: a checkpoint's forecasts (``training.model_forecasts``).
- :mod:`~earthgraph.evaluate.scoring`: baselines, scores, notes on non-finite values.
- :mod:`~earthgraph.evaluate.stations`: verification at point observations.
- :mod:`~earthgraph.evaluate.report`: pictures, printed scorecards, the summary line.

The metrics themselves live in :mod:`earthgraph.scoring`, which never imports a model;
running a model is :mod:`earthgraph.training`'s.
"""

from earthgraph.evaluate.errors import EvaluationError

__all__ = ["EvaluationError"]
