"""Tabular observations into the store: row checks with counted rejections, named errors, no loss."""

import gzip
import re
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from earthgraph.data.ingest import IngestError, TableSpec, ingest_tables
from earthgraph.data.store import ObservationStore
from conftest import download_from_pypi

SPEC = TableSpec(values={"sst": "temp_c"}, units={"sst": "degC"}, metadata={"buoy_id": "buoy"})


def _table(path, rows):
    pd.DataFrame(rows, columns=["time", "lat", "lon", "temp_c", "buoy"]).to_csv(path, index=False)
    return path


GOOD = [
    ("2021-03-01T00:00Z", 10.0, 20.0, 15.0, 1),
    ("2021-03-01T01:00Z", -40.0, 200.0, 12.5, 2),  # longitude normalised to -160
    ("2021-03-01T00:30Z", 0.0, -179.5, 28.0, 3),  # out of time order in the file
]
BAD = [
    ("yesterday", 0.0, 0.0, 10.0, 4),  # unparseable_time
    ("2021-03-01T02:00Z", 95.0, 0.0, 10.0, 5),  # bad_latitude
    ("2021-03-01T02:00Z", 10.0, float("nan"), 10.0, 6),  # bad_longitude
    ("2021-03-01T02:00Z", 10.0, 30.0, float("nan"), 7),  # missing_value
    ("2021-03-01T02:00Z", 10.0, 31.0, 80.0, 8),  # out_of_range (353 K)
    ("2021-03-01T00:00Z", 10.0, 20.0, 15.1, 9),  # duplicate of the first good row's time and place
]


def _read_all(path):
    store = ObservationStore(path)
    lo, hi = store.time_range
    return {n: store.read(n, lo, hi + 1) for n in store.type_names}


def test_rows_are_checked_and_every_rejection_is_counted(tmp_path):
    src = _table(tmp_path / "buoys.csv", GOOD + BAD)
    (report,) = ingest_tables(tmp_path / "s.zarr", "drifter", [(src, SPEC)])
    assert report.rows_read == 9 and report.rows_accepted == 3
    assert report.rejected == {"unparseable_time": 1, "bad_latitude": 1, "bad_longitude": 1, "missing_value": 1,
                               "out_of_range": 1, "duplicate": 1, "already_stored": 0}
    # Each reason names its column and an example, so a user can find the bad rows.
    assert report.examples["unparseable_time"] == "row 4, column 'time': 'yesterday'"
    assert report.examples["bad_latitude"] == "row 5, column 'lat': 95.0"
    got = _read_all(tmp_path / "s.zarr")["drifter"]
    np.testing.assert_allclose(got["values"][:, 0], [288.15, 301.15, 285.65], rtol=0, atol=1e-4)  # degC -> K, time order
    np.testing.assert_allclose(got["lon"], [20.0, -179.5, -160.0])
    np.testing.assert_array_equal(got["buoy_id"], [1, 3, 2])
    assert np.all(np.diff(got["time"]) >= 0)


def test_ingest_appends_without_losing_what_is_stored(tmp_path):
    store = tmp_path / "s.zarr"
    ingest_tables(store, "drifter", [(_table(tmp_path / "a.csv", GOOD), SPEC)])
    later = [("2021-03-02T00:00Z", 5.0, 5.0, 20.0, 11), ("2021-02-28T00:00Z", 6.0, 6.0, 21.0, 12)]
    ingest_tables(store, "drifter", [(_table(tmp_path / "b.csv", later), SPEC)])
    got = _read_all(store)["drifter"]
    assert len(got["time"]) == 5 and np.all(np.diff(got["time"]) >= 0)
    assert set(got["buoy_id"].tolist()) == {1, 2, 3, 11, 12}
    assert ObservationStore(store).attrs["provenance"]["ingested"] == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]


@pytest.mark.parametrize("case", ["truncated_netcdf", "truncated_classic_netcdf", "unknown_channel", "unknown_unit",
                                  "missing_column", "nothing_valid", "corrupt_parquet", "misspelt_metadata"])
def test_bad_files_get_named_errors_and_leave_the_store_intact(tmp_path, case):
    store = tmp_path / "s.zarr"
    ingest_tables(store, "drifter", [(_table(tmp_path / "a.csv", GOOD), SPEC)])
    before = _read_all(store)
    spec, src, match = SPEC, _table(tmp_path / "b.csv", GOOD), None
    if case == "truncated_netcdf":
        pd.DataFrame(GOOD, columns=["time", "lat", "lon", "temp_c", "buoy"]).to_xarray().to_netcdf(tmp_path / "b.nc")
        data = (tmp_path / "b.nc").read_bytes()
        (tmp_path / "b.nc").write_bytes(data[: len(data) // 2])
        src, match = tmp_path / "b.nc", r"b\.nc: cannot be read as a table"
    elif case == "truncated_classic_netcdf":
        # netCDF-C reads the missing tail of a classic file as zeros; the header tells the size it needs.
        frame = pd.DataFrame(GOOD * 300, columns=["time", "lat", "lon", "temp_c", "buoy"])
        frame.assign(lat=np.linspace(-60, 60, len(frame))).to_xarray().to_netcdf(tmp_path / "b.nc",
                                                                                  format="NETCDF3_CLASSIC")
        data = (tmp_path / "b.nc").read_bytes()
        (tmp_path / "b.nc").write_bytes(data[: len(data) - 100])
        src, match = tmp_path / "b.nc", r"b\.nc: cannot be read as a table: truncated: the file has \d+ bytes, but its header puts the data of variable 'index' up to byte \d+"
    elif case == "misspelt_metadata":
        spec, match = TableSpec(values={"sst": "temp_c"}, units={"sst": "degC"}, metadata={"bouy_id": "buoy"}), \
            r"b\.csv: observation type 'drifter' has no metadata \['bouy_id'\]; it declares \['buoy_id'\]"
    elif case == "corrupt_parquet":
        (tmp_path / "b.parquet").write_bytes(b"PAR1 this is not parquet")
        src, match = tmp_path / "b.parquet", r"b\.parquet"
    elif case == "unknown_channel":
        spec, match = TableSpec(values={"salinity": "temp_c"}), r"b\.csv: observation type 'drifter' has no channel\(s\) \['salinity'\]"
    elif case == "unknown_unit":
        spec, match = TableSpec(values={"sst": "temp_c"}, units={"sst": "bananas"}), r"b\.csv, column 'temp_c': unknown units 'bananas'"
    elif case == "missing_column":
        spec, match = TableSpec(values={"sst": "temperature"}, units={"sst": "degC"}), r"b\.csv: no column 'temperature'"
    elif case == "nothing_valid":
        src, match = _table(tmp_path / "b.csv", BAD[:5]), r"no valid rows.*unparseable_time 1"
    with pytest.raises(IngestError, match=match):
        ingest_tables(store, "drifter", [(src, spec)])
    after = _read_all(store)
    for k in before["drifter"]:
        np.testing.assert_array_equal(after["drifter"][k], before["drifter"][k])
    assert not any(p.name.startswith("s.zarr.") for p in tmp_path.iterdir()), "no temporary store left behind"


@pytest.fixture(scope="module")
def buoy_csv(tmp_path_factory):
    """NERACOOS buoy B01's sea temperature, from the bokeh-sampledata wheel on PyPI."""
    d = tmp_path_factory.mktemp("bokeh")
    wheel = download_from_pypi("bokeh-sampledata", d, "bokeh_sampledata-*.whl", "bokeh-sampledata (a real buoy)")
    raw = zipfile.ZipFile(wheel).read("bokeh_sampledata/_data/sea_surface_temperature.csv.gz")
    path = d / "b01_sst.csv"
    path.write_bytes(gzip.decompress(raw))
    return path


def test_a_real_buoy_record_goes_into_the_store(tmp_path, buoy_csv):
    # Station B01, Western Maine Shelf (43.18 N, 70.43 W): no coordinate columns, degrees Celsius.
    spec = TableSpec(values={"sst": "temperature (celsius)"}, time="time (UTC)", lat=None, lon=None,
                     units={"sst": "celsius"}, fixed_lat=43.18, fixed_lon=-70.43, metadata={"buoy_id": 1.0})
    (report,) = ingest_tables(tmp_path / "s.zarr", "drifter", [(buoy_csv, spec)])
    assert report.rows_read > 19000
    assert report.rows_accepted + sum(report.rejected.values()) == report.rows_read
    assert report.rows_accepted > 0.95 * report.rows_read
    got = _read_all(tmp_path / "s.zarr")["drifter"]
    sst = got["values"][:, 0]
    assert 271.0 < sst.min() and sst.max() < 300.0, "Gulf of Maine water in kelvin"
    assert pd.Timestamp(int(got["time"][0]), unit="s") == pd.Timestamp("2016-02-15T00:00")


def test_duplicates_are_judged_among_the_rows_that_pass_every_other_check(tmp_path):
    # A report without a value comes first; the valid report at the same time and place is kept.
    rows = [("2021-03-01T00:00Z", 10.0, 20.0, float("nan"), 1), ("2021-03-01T00:00Z", 10.0, 20.0, 15.0, 1)]
    (report,) = ingest_tables(tmp_path / "s.zarr", "drifter", [(_table(tmp_path / "a.csv", rows), SPEC)])
    assert report.rows_accepted == 1 and report.rejected["missing_value"] == 1 and report.rejected["duplicate"] == 0
    np.testing.assert_allclose(_read_all(tmp_path / "s.zarr")["drifter"]["values"][:, 0], [288.15], atol=1e-4)


def test_ingesting_the_same_file_twice_adds_nothing(tmp_path):
    store, src = tmp_path / "s.zarr", _table(tmp_path / "a.csv", GOOD)
    ingest_tables(store, "drifter", [(src, SPEC)])
    before, stats = _read_all(store), ObservationStore(store).stats("drifter")
    (report,) = ingest_tables(store, "drifter", [(src, SPEC)])
    assert report.rows_accepted == 0 and report.rejected["already_stored"] == 3
    after = _read_all(store)["drifter"]
    for k, v in before["drifter"].items():
        np.testing.assert_array_equal(after[k], v)
    assert ObservationStore(store).stats("drifter") == stats, "the statistics count each observation once"
    # A file with one new row among the stored ones adds that row only.
    (report,) = ingest_tables(store, "drifter", [(_table(tmp_path / "b.csv", GOOD + [
        ("2021-03-05T00:00Z", 1.0, 2.0, 20.0, 4)]), SPEC)])
    assert report.rows_accepted == 1 and report.rejected["already_stored"] == 3
    assert ObservationStore(store).rows("drifter") == 4


def test_text_station_ids_are_stored_as_codes_with_their_text(tmp_path):
    store = tmp_path / "s.zarr"
    spec = TableSpec(values={"t2m": "t"}, units={"t2m": "degC"}, metadata={"station_id": "wmo"})
    pd.DataFrame({"time": ["2021-01-01T00:00Z", "2021-01-01T00:00Z", "2021-01-01T06:00Z"],
                  "lat": [52.1, 51.5, 52.1], "lon": [5.2, -0.1, 5.2], "t": [3.0, 6.0, 4.0],
                  "wmo": ["06260", "EGLL", "06260"]}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"time": ["2021-01-02T00:00Z", "2021-01-02T00:00Z"], "lat": [48.0, 52.1], "lon": [11.0, 5.2],
                  "t": [1.0, 2.0], "wmo": ["10865", "06260"]}).to_csv(tmp_path / "b.csv", index=False)
    ingest_tables(store, "synop", [(tmp_path / "a.csv", spec)])
    ingest_tables(store, "synop", [(tmp_path / "b.csv", spec)])
    s = ObservationStore(store)
    texts = s.codes("synop")["station_id"]
    got = s.read("synop", *s.time_range[:1], s.time_range[1] + 1)
    # Codes keep their meaning across ingests, and "06260" keeps its leading zero.
    assert [texts[int(c)] for c in got["station_id"]] == ["06260", "EGLL", "06260", "10865", "06260"]
    # Text in a metadata field the model reads as a number is refused by name.
    pd.DataFrame({"time": ["2021-01-03T00:00Z"], "lat": [1.0], "lon": [1.0], "t": [1.0], "angle": ["steep"]}
                 ).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(IngestError, match=r"c\.csv, column 'angle': metadata 'scan_angle' is a number .* 'steep'"):
        ingest_tables(tmp_path / "t.zarr", "mw_sounder", [(tmp_path / "c.csv", TableSpec(
            values={"tcwv": "t"}, metadata={"scan_angle": "angle"}))])


TYPES_YAML = """
types:
  - name: station_wind
    sphere: atmosphere
    description: 10 m wind at land stations
    conventional: true
    channels:
      - {name: speed, units: m s-1, valid_min: 0, valid_max: 75, error: 1.5}
      - {name: mslp, units: hPa, valid_min: 850, valid_max: 1090, error: 1}
    metadata: [station_id]
    products:
      - {variable: 10m_wind_speed, channel: speed}
"""


def test_a_type_declared_in_yaml_takes_real_units_and_is_carried_by_the_store(tmp_path):
    from earthgraph.data.obs_types import products_for
    from earthgraph.data.type_files import read_types
    from earthgraph.data.windows import observation_schema

    (tmp_path / "types.yaml").write_text(TYPES_YAML)
    types = read_types(tmp_path / "types.yaml")
    pd.DataFrame({"time": ["2021-01-01T00:00Z", "2021-01-01T01:00Z"], "lat": [52.0, 52.0], "lon": [5.0, 5.0],
                  "ff": [10.0, 20.0], "p": [101325.0, 99000.0], "id": ["A", "B"]}).to_csv(tmp_path / "w.csv", index=False)
    spec = TableSpec(values={"speed": "ff", "mslp": "p"}, units={"speed": "knots", "mslp": "Pa"},
                     metadata={"station_id": "id"})
    ingest_tables(tmp_path / "s.zarr", "station_wind", [(tmp_path / "w.csv", spec)], types=types)
    store = ObservationStore(tmp_path / "s.zarr")
    assert store.obs_type("station_wind") == types[0], "the store carries the declared schema"
    got = store.read("station_wind", *store.time_range[:1], store.time_range[1] + 1)
    np.testing.assert_allclose(got["values"], [[5.144444, 1013.25], [10.288889, 990.0]], rtol=1e-6)
    # Appending needs no types file again: the store knows the type.
    pd.DataFrame({"time": ["2021-01-01T02:00Z"], "lat": [52.0], "lon": [5.0], "ff": [5.0], "p": [100000.0],
                  "id": ["A"]}).to_csv(tmp_path / "w2.csv", index=False)
    ingest_tables(tmp_path / "s.zarr", "station_wind", [(tmp_path / "w2.csv", spec)])
    assert ObservationStore(tmp_path / "s.zarr").rows("station_wind") == 3
    # Its declared product is what a model trained on it forecasts.
    (product,) = products_for(observation_schema(ObservationStore(tmp_path / "s.zarr")))
    assert (product.variable, product.obs_type, product.channel, product.units) == (
        "10m_wind_speed", "station_wind", "speed", "m s-1")


@pytest.mark.parametrize("change, match", [
    (("channels:", "chanels:"), r"types\[0\]: unknown key\(s\) \['chanels'\]"),
    (("units: hPa", "units: hectobananas"), r"types\[0\] \('station_wind'\), channels\[1\] \('mslp'\), key 'units': unknown units 'hectobananas'"),
    (("valid_min: 850", "valid_min: 1200"), r"channels\[1\] \('mslp'\): valid_min 1200 is not below valid_max 1090"),
    (("error: 1.5", "error: -1"), r"key 'error': an observation error must be positive"),
    (("sphere: atmosphere", "sphere: stratosphere"), r"key 'sphere': 'stratosphere' is not one of"),
    (("channel: speed", "channel: gust"), r"products\[0\], key 'channel': 'gust' is not one of its channels"),
    (("valid_max: 75", "valid_max: lots"), r"key 'valid_max': expected float, got 'lots'"),
])
def test_a_bad_types_file_is_refused_naming_the_file_type_and_key(tmp_path, change, match):
    from earthgraph.data.type_files import TypeFileError, read_types

    (tmp_path / "types.yaml").write_text(TYPES_YAML.replace(*change, 1))
    with pytest.raises(TypeFileError) as err:
        read_types(tmp_path / "types.yaml")
    assert str(err.value).startswith(f"{tmp_path / 'types.yaml'}: types[0]"), "the file and the type come first"
    assert re.search(match, str(err.value)), str(err.value)


def test_the_builtin_types_print_as_yaml_that_reads_back(tmp_path):
    from earthgraph.data import obs_types
    from earthgraph.data.type_files import read_types

    proc = subprocess.run([sys.executable, "-m", "earthgraph.data", "types"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "t.yaml").write_text(proc.stdout)
    back = {t.name: t for t in read_types(tmp_path / "t.yaml")}
    assert set(back) == set(obs_types.BUILTIN_TYPES)
    synop = back["synop"]
    assert synop.channels == obs_types.get("synop").channels and synop.metadata == ("station_id",)
    assert [p.variable for p in synop.products] == ["air_temperature"]


def test_real_file_quirks_times_in_bytes_numbers_and_cf_units_extra_dimensions(tmp_path):
    import xarray as xr

    # A netCDF of surface reports as real archives write them: times as character arrays,
    # cloud cover per layer.
    n = 3
    ds = xr.Dataset({
        "time": (("obs",), np.array([b"1995 03 17 23:45 UTC", b"1995 03 18 00:45 UTC", b"1995 03 18 01:45 UTC"])),
        "lat": (("obs",), [52.0, 52.0, 53.0]), "lon": (("obs",), [4.0, 4.0, 5.0]),
        "tt": (("obs",), [5.0, 4.0, 3.0], {"units": "degC"}),
        "cloud": (("obs", "layer"), np.ones((n, 4))),
    })
    ds.to_netcdf(tmp_path / "reports.nc", format="NETCDF3_CLASSIC")
    spec = TableSpec(values={"t2m": "tt"}, units={"t2m": "degC"})
    (report,) = ingest_tables(tmp_path / "s.zarr", "synop", [(tmp_path / "reports.nc", spec)])
    assert report.rows_accepted == 3
    got = ObservationStore(tmp_path / "s.zarr").read("synop", 0, 2**40)
    assert str(np.datetime64(int(got["time"][0]), "s")) == "1995-03-17T23:45:00"

    # A variable with a further dimension would multiply the rows: refused by name, or one index selected.
    two = TableSpec(values={"t2m": "tt"}, units={"t2m": "degC"}, metadata={"station_id": "cloud"})
    with pytest.raises(IngestError, match=r"reports\.nc, variable 'cloud': .*layer \(4 entries\).*--select layer=INDEX"):
        ingest_tables(tmp_path / "x.zarr", "synop", [(tmp_path / "reports.nc", two)])
    two.select = {"layer": 1}
    (report,) = ingest_tables(tmp_path / "x.zarr", "synop", [(tmp_path / "reports.nc", two)])
    assert report.rows_read == 3

    # Epoch seconds: refused without units, read with them.
    pd.DataFrame({"t_epoch": [795484800, 795488400], "lat": [1.0, 2.0], "lon": [3.0, 4.0], "v": [280.0, 281.0]}
                 ).to_csv(tmp_path / "epoch.csv", index=False)
    spec = TableSpec(values={"t2m": "v"}, time="t_epoch")
    with pytest.raises(IngestError, match=r"epoch\.csv, column 't_epoch': times are numbers \(e\.g\. 795484800\) "
                                          r"without units; give them with --time-units"):
        ingest_tables(tmp_path / "e.zarr", "synop", [(tmp_path / "epoch.csv", spec)])
    spec.time_units = "seconds since 1970-01-01"
    ingest_tables(tmp_path / "e.zarr", "synop", [(tmp_path / "epoch.csv", spec)])
    got = ObservationStore(tmp_path / "e.zarr").read("synop", 0, 2**40)
    assert got["time"].tolist() == [795484800, 795488400]
    # CF times in a netCDF file are decoded (hours since 1900).
    xr.Dataset({"time": (("obs",), pd.to_datetime(["2001-06-01T12:00", "2001-06-01T13:00"]).values),
                "lat": (("obs",), [0.0, 1.0]), "lon": (("obs",), [0.0, 1.0]), "v": (("obs",), [300.0, 301.0])}
               ).to_netcdf(tmp_path / "cf.nc", encoding={"time": {"units": "hours since 1900-01-01 00:00:00"}})
    ingest_tables(tmp_path / "cf.zarr", "synop", [(tmp_path / "cf.nc", TableSpec(values={"t2m": "v"}))])
    got = ObservationStore(tmp_path / "cf.zarr").read("synop", 0, 2**40)
    assert [str(np.datetime64(int(t), "s")) for t in got["time"]] == ["2001-06-01T12:00:00", "2001-06-01T13:00:00"]


def test_ingest_writes_the_static_fields_asked_for(tmp_path):
    from earthgraph.data.store_statics import store_statics

    ingest_tables(tmp_path / "s.zarr", "drifter", [(_table(tmp_path / "a.csv", GOOD), SPEC)],
                  static=store_statics("synthetic"))
    static = ObservationStore(tmp_path / "s.zarr").static()
    assert static["land_sea_mask"].shape == (90, 180) and 0.2 < static["land_sea_mask"].mean() < 0.5
    # An append without statics keeps the store's own.
    ingest_tables(tmp_path / "s.zarr", "drifter", [(_table(tmp_path / "b.csv", [
        ("2021-03-09T00:00Z", 1.0, 1.0, 10.0, 9)]), SPEC)])
    np.testing.assert_array_equal(ObservationStore(tmp_path / "s.zarr").static()["land_sea_mask"],
                                  static["land_sea_mask"])
