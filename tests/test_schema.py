"""The observation schema is a typed object that travels as plain data: what a checkpoint keeps
reads back as the same schema, and a type's declared products survive the trip."""

import pickle

import pytest

from earthgraph.data.obs_types import Channel, ObservationType, Product, products_for
from earthgraph.data.schema import ObservationSchema, TypeSchema

WIND = ObservationType("station_wind", "atmosphere", (Channel("u", "m s-1", -60.0, 60.0, 1.5),
                                                      Channel("v", "m s-1", -60.0, 60.0, 1.5)),
                       metadata=("station_id",), conventional=True,
                       products=(Product("wind_u", "atmosphere", "station_wind", "u", "m s-1"),))


def test_a_schema_reads_back_from_its_plain_data_and_keeps_its_products():
    schema = ObservationSchema({"station_wind": TypeSchema.of(WIND, (), [1.0, -2.0], [3.0, 4.0])})
    plain = schema.to_dict()
    assert plain["station_wind"]["channels"] == ["u", "v"] and plain["station_wind"]["mean"] == [1.0, -2.0]
    assert pickle.loads(pickle.dumps(plain)) == plain, "plain data: no earthgraph class inside"
    back = ObservationSchema.from_dict(plain)
    assert back == schema and back["station_wind"].products == WIND.products
    assert ObservationSchema.coerce(plain)["station_wind"].std == (3.0, 4.0)
    assert [p.variable for p in products_for(back)] == ["wind_u"]
    assert back.spheres == ["atmosphere"] and list(back) == ["station_wind"]


def test_a_schema_cannot_be_changed_in_place():
    t = TypeSchema.of(WIND, (), [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(AttributeError):
        t.mean = (5.0, 5.0)
    with pytest.raises(TypeError):
        ObservationSchema({"station_wind": t})["synop"] = t
