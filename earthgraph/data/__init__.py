"""Observations and truth: types, the zarr store, the nature run and its observing systems.

Knows nothing of models.
"""
