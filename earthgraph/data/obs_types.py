"""Observation types: what an instrument measures, in which sphere, in which units.

An :class:`ObservationType` is pure metadata; the store, the observing
systems, the model's per-type embeddings and heads and the scoring all key on
its ``name``. New types are added with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from earthgraph import SPHERES

if TYPE_CHECKING:
    from earthgraph.data.schema import TypeSchema


@dataclass(frozen=True)
class Channel:
    """One measured quantity of an observation type."""

    name: str
    units: str
    valid_min: float
    valid_max: float
    error: float  # default observation-error standard deviation, in ``units``


@dataclass(frozen=True)
class ObservationType:
    """An instrument or observing network.

    ``metadata`` names per-observation fields stored beside the values (for
    example ``scan_angle`` in degrees, or ``station_id``); they are floats.
    ``conventional`` marks in-situ networks (stations, ships, buoys, floats) as
    opposed to satellite instruments; GraphDOP-style dropout treats them apart.
    """

    name: str
    sphere: str
    channels: tuple[Channel, ...]
    metadata: tuple[str, ...] = ()
    description: str = ""
    conventional: bool = False
    products: tuple["Product", ...] = ()

    def __post_init__(self):
        if self.sphere not in SPHERES:
            raise ValueError(f"observation type {self.name!r}: sphere {self.sphere!r} is not one of {SPHERES}")
        if not self.channels:
            raise ValueError(f"observation type {self.name!r} declares no channels")
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError(f"observation type {self.name!r}: duplicate channel names {names}")
        if len(set(self.metadata)) != len(self.metadata):
            raise ValueError(f"observation type {self.name!r}: duplicate metadata names {list(self.metadata)}")
        for p in self.products:
            if p.obs_type != self.name or p.channel not in names:
                raise ValueError(f"observation type {self.name!r}: product {p.variable!r} names "
                                 f"{p.obs_type}.{p.channel}, which is not one of its channels {names}")

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c in self.channels]

    def channel(self, name: str) -> Channel:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(f"observation type {self.name!r} has no channel {name!r}; it has {self.channel_names}")

    def to_dict(self) -> dict:
        d = asdict(self)
        if not self.products:  # stores of types without declared products keep their old attributes
            del d["products"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ObservationType":
        return cls(
            name=d["name"], sphere=d["sphere"],
            channels=tuple(Channel(**c) for c in d["channels"]),
            metadata=tuple(d.get("metadata", ())), description=d.get("description", ""),
            conventional=bool(d.get("conventional", False)),
            products=tuple(Product(**p) for p in d.get("products", ())),
        )


def is_identifier(metadata: str) -> bool:
    """Identifiers (station, buoy, float) are the metadata named ``*_id``: stored, and kept
    as text where a file has text, but never model features."""
    return metadata.endswith("_id")


_REGISTRY: dict[str, ObservationType] = {}


def register(obs_type: ObservationType, *, replace: bool = False) -> ObservationType:
    """Add a type to the registry; refuses to silently redefine a name."""
    if obs_type.name in _REGISTRY and not replace and _REGISTRY[obs_type.name] != obs_type:
        raise ValueError(f"observation type {obs_type.name!r} is already registered with a different definition")
    _REGISTRY[obs_type.name] = obs_type
    return obs_type


def get(name: str) -> ObservationType:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown observation type {name!r}; registered: {sorted(_REGISTRY)}") from None


def registered() -> dict[str, ObservationType]:
    return dict(_REGISTRY)


# --- the built-in types of the nature-run observing systems -------------------
SYNOP = register(ObservationType(
    "synop", "atmosphere",
    (Channel("t2m", "K", 180.0, 340.0, 1.0),),
    metadata=("station_id",),
    description="land stations and ships reporting near-surface air temperature every 3 h",
    conventional=True,
))
MW_SOUNDER = register(ObservationType(
    "mw_sounder", "atmosphere",
    (Channel("tb_temperature", "K", 150.0, 330.0, 0.7), Channel("tcwv", "kg m-2", 0.0, 100.0, 2.5)),
    metadata=("scan_angle",),
    description="microwave sounders on sun-synchronous polar orbits (swaths)",
))
AMV = register(ObservationType(
    "amv", "atmosphere",
    (Channel("u", "m s-1", -150.0, 150.0, 3.0), Channel("v", "m s-1", -150.0, 150.0, 3.0)),
    metadata=("satellite_zenith",),
    description="atmospheric motion vectors: winds from tracking cloud features in geostationary imagery, "
                "hourly on five discs",
))
GEO_IR = register(ObservationType(
    "geo_ir", "land",
    (Channel("skin_temperature", "K", 180.0, 350.0, 1.2),),
    metadata=("satellite_zenith",),
    description="geostationary infrared imagers: clear-sky skin temperature on five discs",
))
LEO_IR = register(ObservationType(
    "leo_ir", "land",
    (Channel("skin_temperature", "K", 180.0, 350.0, 1.2),),
    metadata=("scan_angle",),
    description="polar-orbiting infrared imagers: clear-sky skin temperature, global twice a day",
))
MW_IMAGER = register(ObservationType(
    "mw_imager", "land",
    (Channel("lst", "K", 180.0, 350.0, 2.0), Channel("sst", "K", 269.0, 310.0, 0.6)),
    metadata=("scan_angle",),
    description="passive-microwave imagers (AMSR2-, SSMIS-like): all-weather land-surface temperature over "
                "land, sea-surface temperature over ice-free sea; the other channel is missing (NaN)",
))
DRIFTER = register(ObservationType(
    "drifter", "ocean",
    (Channel("sst", "K", 269.0, 310.0, 0.25),),
    metadata=("buoy_id",),
    description="drifting buoys reporting sea-surface temperature hourly",
    conventional=True,
))
ARGO = register(ObservationType(
    "argo", "ocean",
    (Channel("t_surface", "K", 269.0, 310.0, 0.02), Channel("t_thermocline", "K", 269.0, 310.0, 0.02),
     Channel("ohc", "J m-2", -1.0e9, 2.0e10, 1.0e7)),
    metadata=("float_id",),
    description="Argo-like profiling floats: near-surface temperature, mean temperature of the thermocline "
                "layer (to 100 m under the mixed layer) and upper-ocean heat content relative to 0 degC; "
                "each float surfaces every 10 days, never under sea ice",
    conventional=True,
))
SEAICE_CONC = register(ObservationType(
    "seaice_conc", "cryosphere",
    (Channel("siconc", "1", 0.0, 1.0, 0.06),),
    metadata=("scan_angle",),
    description="passive-microwave sea-ice concentration retrievals (polar swaths)",
))
SNOW = register(ObservationType(
    "snow", "land",
    (Channel("swe", "kg m-2", 0.0, 2000.0, 4.0),),
    metadata=("scan_angle",),
    description="snow water equivalent retrievals over land",
))
SOIL_MOISTURE = register(ObservationType(
    "soil_moisture", "land",
    (Channel("sm", "1", 0.0, 1.0, 0.05),),
    metadata=("scan_angle",),
    description="soil-moisture retrievals (fraction of bucket capacity) over snow-free land",
))


@dataclass(frozen=True)
class Product:
    """A gridded variable the model forecasts through one head and channel.

    ``mask`` restricts where the variable exists: ``all``, ``land`` or ``ocean``.
    """

    variable: str
    sphere: str
    obs_type: str
    channel: str
    units: str
    mask: Literal["all", "land", "ocean"] = "all"
    headline: bool = False

    def __post_init__(self):
        if self.mask not in PRODUCT_MASKS:
            raise ValueError(f"product {self.variable!r}: mask {self.mask!r} is not one of {PRODUCT_MASKS}")
        if self.sphere not in SPHERES:
            raise ValueError(f"product {self.variable!r}: sphere {self.sphere!r} is not one of {SPHERES}")


PRODUCT_MASKS = ("all", "land", "ocean")


DEFAULT_PRODUCTS: tuple[Product, ...] = (
    Product("air_temperature", "atmosphere", "synop", "t2m", "K", "all", headline=True),
    Product("total_column_water_vapour", "atmosphere", "mw_sounder", "tcwv", "kg m-2", "all"),
    Product("sea_surface_temperature", "ocean", "drifter", "sst", "K", "ocean", headline=True),
    # All-sky LST comes from the microwave imagers: clear-sky infrared LST is
    # biased cold wherever clear skies are cold ones (polar night, dry highs).
    Product("land_surface_temperature", "land", "mw_imager", "lst", "K", "land", headline=True),
    Product("soil_moisture", "land", "soil_moisture", "sm", "1", "land"),
    Product("sea_ice_concentration", "cryosphere", "seaice_conc", "siconc", "1", "ocean", headline=True),
    # Winds from the AMVs (last, so that the products of stores without them keep their order).
    Product("u_component_of_wind", "atmosphere", "amv", "u", "m s-1"),
    Product("v_component_of_wind", "atmosphere", "amv", "v", "m s-1"),
)

BUILTIN_TYPES = frozenset(_REGISTRY)
"""The names of the nature run's types; a user's own types are everything else."""


def products_for(schema: Mapping[str, "TypeSchema"]) -> tuple[Product, ...]:
    """The gridded (or station) variables a model with this schema forecasts.

    ``schema``: an :class:`~earthgraph.data.schema.ObservationSchema`, which a
    checkpoint keeps. Built-in types give :data:`DEFAULT_PRODUCTS` (in that order,
    first); a type that declares products gives those; any other type of the
    user's gives one product per channel, named ``<type>_<channel>``, so that a
    model trained on custom types never writes a forecast without variables.
    """
    return _products({name: (s.sphere, s.channels, s.units, s.products) for name, s in schema.items()})


def type_products(types: Iterable[ObservationType]) -> tuple[Product, ...]:
    """:func:`products_for` of observation types themselves (a store's, say), without the
    normalisation statistics a model's schema carries."""
    return _products({t.name: (t.sphere, t.channel_names, [c.units for c in t.channels], t.products) for t in types})


def _products(types: Mapping[str, tuple[str, Sequence[str], Sequence[str], tuple[Product, ...]]]
              ) -> tuple[Product, ...]:
    """:func:`products_for` of ``{type: (sphere, channels, units, declared products)}``."""
    out = [p for p in DEFAULT_PRODUCTS if p.obs_type in types and not types[p.obs_type][3]]
    for name, (sphere, channels, units, declared) in types.items():
        if declared:
            out += declared
        elif name not in BUILTIN_TYPES:
            out += [Product(f"{name}_{c}", sphere, name, c, u) for c, u in zip(channels, units)]
    return tuple(out)
