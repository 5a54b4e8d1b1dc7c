"""The observation schema: what a model knows of each observation type it reads and predicts.

Built from a store by :func:`earthgraph.data.windows.observation_schema` (channels,
metadata features and the training period's normalisation statistics), carried by the
forecaster, and saved in checkpoints and forecast stores as plain data
(:meth:`ObservationSchema.to_dict`, read back by :meth:`ObservationSchema.from_dict`),
so that a checkpoint alone can make forecasts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass

from earthgraph.data.obs_types import ObservationType, Product


@dataclass(frozen=True)
class TypeSchema:
    """One observation type as the model sees it; per-channel tuples in channel order.

    sphere: 'atmosphere', 'ocean', 'land' or 'cryosphere'.
    channels, units, valid_min, valid_max: each channel's name, unit and valid range (in that unit).
    metadata: the metadata fields the model reads (angles, not identifiers).
    mean, std: each channel's normalisation statistics (std > 0), in its unit.
    products: the gridded variables the type declares (empty: the defaults, ``obs_types.products_for``).
    """

    sphere: str
    channels: tuple[str, ...]
    units: tuple[str, ...]
    valid_min: tuple[float, ...]
    valid_max: tuple[float, ...]
    metadata: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    products: tuple[Product, ...] = ()

    @classmethod
    def of(cls, obs_type: ObservationType, metadata: tuple[str, ...], mean, std) -> TypeSchema:
        """An observation type's schema with the given metadata features and statistics."""
        return cls(obs_type.sphere, tuple(obs_type.channel_names), tuple(c.units for c in obs_type.channels),
                   tuple(c.valid_min for c in obs_type.channels), tuple(c.valid_max for c in obs_type.channels),
                   tuple(metadata), tuple(float(m) for m in mean), tuple(float(s) for s in std),
                   tuple(obs_type.products))

    def to_dict(self) -> dict:
        """Plain data (lists, strings, floats); ``products`` only when the type declares some."""
        out = {"sphere": self.sphere, "channels": list(self.channels), "units": list(self.units),
               "valid_min": list(self.valid_min), "valid_max": list(self.valid_max), "metadata": list(self.metadata),
               "mean": list(self.mean), "std": list(self.std)}
        if self.products:
            out["products"] = [asdict(p) for p in self.products]
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> TypeSchema:
        """The inverse of :meth:`to_dict`."""
        return cls(str(d["sphere"]), *(tuple(d[k]) for k in ("channels", "units", "valid_min", "valid_max",
                                                            "metadata", "mean", "std")),
                   products=tuple(Product(**p) for p in d.get("products", ())))


class ObservationSchema(Mapping[str, TypeSchema]):
    """Observation type name -> :class:`TypeSchema`, in the store's order. Immutable."""

    def __init__(self, types: Mapping[str, TypeSchema]):
        self._types = dict(types)

    def __getitem__(self, name: str) -> TypeSchema:
        return self._types[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def __repr__(self) -> str:
        return f"ObservationSchema({list(self._types)})"

    @property
    def spheres(self) -> list[str]:
        """The spheres the types observe, sorted."""
        return sorted({t.sphere for t in self._types.values()})

    def to_dict(self) -> dict[str, dict]:
        """Plain data, as checkpoints (``hyper_parameters["schema"]``) keep it."""
        return {name: t.to_dict() for name, t in self._types.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping]) -> ObservationSchema:
        """The inverse of :meth:`to_dict`."""
        return cls({str(name): TypeSchema.from_dict(t) for name, t in d.items()})

    @classmethod
    def coerce(cls, schema: ObservationSchema | Mapping[str, Mapping]) -> ObservationSchema:
        """``schema`` itself, or read from its plain data (a checkpoint's)."""
        return schema if isinstance(schema, cls) else cls.from_dict(schema)
