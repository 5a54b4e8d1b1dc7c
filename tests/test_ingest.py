"""Tabular observations into the store: row checks with counted rejections, named errors, no loss."""

import gzip
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from earthgraph.data.ingest import IngestError, TableSpec, ingest_tables
from earthgraph.data.store import ObservationStore

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
                               "out_of_range": 1, "duplicate": 1}
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


@pytest.mark.parametrize("case", ["truncated_netcdf", "unknown_channel", "unknown_unit", "missing_column",
                                  "nothing_valid", "corrupt_parquet"])
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
    elif case == "corrupt_parquet":
        (tmp_path / "b.parquet").write_bytes(b"PAR1 this is not parquet")
        src, match = tmp_path / "b.parquet", r"b\.parquet"
    elif case == "unknown_channel":
        spec, match = TableSpec(values={"salinity": "temp_c"}), r"b\.csv: observation type 'drifter' has no channel\(s\) \['salinity'\]"
    elif case == "unknown_unit":
        spec, match = TableSpec(values={"sst": "temp_c"}, units={"sst": "degF"}), r"b\.csv, column 'temp_c': cannot convert units 'degF' to 'K'"
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
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "bokeh-sampledata", "-d", str(d)],
                       check=True, capture_output=True, timeout=120)
        wheel = next(d.glob("bokeh_sampledata-*.whl"))
    except (subprocess.SubprocessError, StopIteration, OSError) as e:
        pytest.skip(f"bokeh-sampledata could not be downloaded from PyPI ({type(e).__name__}); real-buoy test skipped")
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
