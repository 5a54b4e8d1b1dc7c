"""The batch format: packed, ragged observation sets, one per observation type.

A batch of B samples holds, for each type, every observation of every sample
in one flat set with a ``sample`` column saying which sample a row belongs to
(as PyG batches graphs). Values and errors are normalised by the store's
per-channel statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from earthgraph.data.obs_types import is_identifier


@dataclass
class ObsSet:
    """Observations of one type, packed over a batch.

    values: (n, C) float32, normalised ``(value - mean) / std``
    error:  (n, C) float32, observation error divided by ``std``
    lat, lon: (n,) float32 radians
    time: (n,) float32 time in units of the window length: for targets the position
        in their window, [0, 1); for inputs the offset from initialisation, [-n, 0)
    meta: (n, M) float32 metadata features (angles / ``METADATA_SCALE_DEGREES``)
    sample: (n,) int64 index of the sample in the batch
    """

    values: torch.Tensor
    error: torch.Tensor
    lat: torch.Tensor
    lon: torch.Tensor
    time: torch.Tensor
    meta: torch.Tensor
    sample: torch.Tensor

    def __len__(self) -> int:
        return self.values.shape[0]

    def to(self, device) -> "ObsSet":
        return ObsSet(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @staticmethod
    def cat(parts: list["ObsSet"]) -> "ObsSet":
        return ObsSet(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(ObsSet)})


# The model sees metadata angles (scan, zenith) divided by this: about [-1, 1].
METADATA_SCALE_DEGREES = 90.0


def metadata_features(obs_type_metadata: tuple[str, ...]) -> list[str]:
    """Metadata fields the model sees: angles, not identifiers (``*_id``)."""
    return [m for m in obs_type_metadata if not is_identifier(m)]


def denormalise_and_clip(values: np.ndarray, mean, std, valid_min, valid_max) -> np.ndarray:
    """Normalised ``values`` back in physical units, ``values * std + mean`` (the inverse of
    :func:`columns_to_obsset`'s normalisation), clipped to ``[valid_min, valid_max]``.

    values: (..., C) with per-channel (C,) statistics and bounds, or one channel's (...)
    with scalars. Computed in ``values``' dtype (float32 or float64).
    """
    dtype = values.dtype
    physical = values * np.asarray(std, dtype) + np.asarray(mean, dtype)
    return np.clip(physical, np.asarray(valid_min, dtype), np.asarray(valid_max, dtype))


def columns_to_obsset(cols: dict[str, np.ndarray], meta_names: list[str], mean: np.ndarray, std: np.ndarray,
                      t0: int, window_seconds: int, sample: int) -> ObsSet:
    """Turn store columns into a normalised :class:`ObsSet`, times relative to ``t0`` in windows."""
    n = len(cols["time"])
    values = (cols["values"].astype(np.float32) - mean) / std
    error = cols["error"].astype(np.float32) / std
    meta = (np.stack([cols[m] for m in meta_names], axis=1) / METADATA_SCALE_DEGREES if meta_names
            else np.zeros((n, 0), np.float32)).astype(np.float32)
    return ObsSet(
        values=torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)),
        error=torch.from_numpy(np.ascontiguousarray(error, dtype=np.float32)),
        lat=torch.from_numpy(np.radians(cols["lat"]).astype(np.float32)),
        lon=torch.from_numpy(np.radians(cols["lon"]).astype(np.float32)),
        time=torch.from_numpy(((cols["time"] - t0) / window_seconds).astype(np.float32)),
        meta=torch.from_numpy(meta),
        sample=torch.full((n,), sample, dtype=torch.int64),
    )
