"""Gridded readers: ERA5/WB2 names and layouts into earthgraph's, with named errors."""

import tarfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conftest import download_from_pypi
from earthgraph.data.gridded import GriddedError, open_gridded


def _era5_like(lat=None):
    """ERA5 conventions: short names, latitude descending, longitudes -180..180, SST in degC."""
    lat = np.arange(90.0, -90.1, -30.0) if lat is None else lat
    lon = np.arange(-180.0, 180.0, 60.0)
    time = pd.date_range("2021-01-01", periods=3, freq="6h")
    rng = np.random.default_rng(0)
    shape = (3, len(lat), len(lon))
    return xr.Dataset(
        {
            "t2m": (("valid_time", "lat", "lon"), 280 + rng.normal(size=shape), {"units": "K"}),
            "sst": (("valid_time", "lat", "lon"), 15 + rng.normal(size=shape), {"units": "degC"}),
            "siconc": (("valid_time", "lat", "lon"), rng.uniform(size=shape), {"units": "(0-1)"}),
        },
        coords={"valid_time": time, "lat": lat, "lon": lon},
    )


def test_era5_netcdf_comes_out_in_earthgraph_layout_and_units(tmp_path):
    src = _era5_like()
    src.to_netcdf(tmp_path / "era5.nc")
    ds = open_gridded(tmp_path / "era5.nc")
    assert set(ds.data_vars) == {"air_temperature", "sea_surface_temperature", "sea_ice_concentration"}
    assert ds["air_temperature"].dims == ("time", "latitude", "longitude")
    assert np.all(np.diff(ds.latitude) > 0) and np.all(np.diff(ds.longitude) > 0)
    assert ds.longitude.min() >= 0 and ds.longitude.max() < 360
    # The same point before and after: 30 S, 120 W (= 240 E), second time.
    before = src["sst"].isel(valid_time=1).sel(lat=-30.0, lon=-120.0).item()
    # Variables come dask-backed (lazy, as a zarr store's do), so float() rather than .item().
    after = float(ds["sea_surface_temperature"].isel(time=1).sel(latitude=-30.0, longitude=240.0))
    assert after == pytest.approx(before + 273.15)
    assert ds["sea_surface_temperature"].attrs["units"] == "K"
    assert open_gridded(tmp_path / "era5.nc", ["air_temperature"]).data_vars.keys() == {"air_temperature"}


def test_netcdf_variables_stay_lazy_through_the_units_conversion(tmp_path):
    """netCDF variables are only lazily indexed: converting units (SST degC -> K) would read one
    whole unless open_gridded makes it a dask array, chunked in time, first."""
    _era5_like().to_netcdf(tmp_path / "era5.nc")
    sst = open_gridded(tmp_path / "era5.nc")["sea_surface_temperature"]
    assert sst.chunks is not None and not sst.variable._in_memory


def test_zarr_store_reads_the_same_as_netcdf(tmp_path):
    _era5_like().to_netcdf(tmp_path / "a.nc")
    _era5_like().to_zarr(tmp_path / "a.zarr", zarr_format=3, consolidated=False)
    xr.testing.assert_allclose(open_gridded(tmp_path / "a.nc").drop_attrs(), open_gridded(tmp_path / "a.zarr").drop_attrs())


def test_bad_gridded_inputs_get_named_errors(tmp_path):
    _era5_like(lat=np.array([95.0, 0.0, -90.0])).to_netcdf(tmp_path / "lat.nc")
    with pytest.raises(GriddedError, match=r"lat\.nc: coordinate latitude has value 95.0 outside \[-90, 90\]"):
        open_gridded(tmp_path / "lat.nc")
    _era5_like().to_netcdf(tmp_path / "ok.nc")
    with pytest.raises(GriddedError, match=r"ok\.nc: unknown variable\(s\) \['precipitation'\]"):
        open_gridded(tmp_path / "ok.nc", ["precipitation"])
    bad_units = _era5_like()
    bad_units["sst"].attrs["units"] = "m s-1"  # a speed is no temperature (degF would convert)
    bad_units.to_netcdf(tmp_path / "units.nc")
    with pytest.raises(GriddedError, match=r"units\.nc, variable 'sea_surface_temperature': cannot convert units 'm s-1' to 'K'"):
        open_gridded(tmp_path / "units.nc")
    data = (tmp_path / "ok.nc").read_bytes()
    (tmp_path / "cut.nc").write_bytes(data[: len(data) // 3])
    with pytest.raises(GriddedError, match=r"cut\.nc: cannot be opened"):
        open_gridded(tmp_path / "cut.nc")
    with pytest.raises(GriddedError, match=r"nowhere\.nc: no such file"):
        open_gridded(tmp_path / "nowhere.nc")


@pytest.fixture(scope="module")
def era5_sample(tmp_path_factory):
    """ECMWF's ERA5 pressure-level sample (10 members, t and z at 850/500 hPa, 3 degrees),
    from the cfgrib source distribution on PyPI."""
    d = tmp_path_factory.mktemp("cfgrib")
    sdist = download_from_pypi("cfgrib", d, "cfgrib-*.tar.gz", "the cfgrib sdist (ERA5 sample)", source=True)
    try:
        with tarfile.open(sdist) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("sample-data/era5-levels-members.nc"))
            tar.extractall(d, members=[member], filter="data")
        return d / member.name
    except (StopIteration, OSError, tarfile.TarError) as e:
        pytest.skip(f"the cfgrib sdist holds no readable ERA5 sample ({type(e).__name__})")


def test_a_real_era5_file_goes_through_the_reader(era5_sample):
    ds = open_gridded(era5_sample)
    assert {"temperature", "geopotential"} <= set(ds.data_vars)
    t = ds["temperature"]
    assert t.dims == ("number", "time", "level", "latitude", "longitude")
    assert list(ds.level.values) == [850.0, 500.0]
    assert ds.latitude.values[0] == -90.0 and ds.latitude.values[-1] == 90.0
    # Mid-winter 850 hPa temperatures are colder at the North Pole than at the equator.
    t850 = t.sel(level=850.0).mean(["number", "time"])
    assert 180 < float(t.min()) and float(t.max()) < 320
    assert float(t850.sel(latitude=90.0).mean()) < float(t850.sel(latitude=0.0).mean()) - 20


def test_a_users_gridded_fields_are_observed_by_the_same_operators(tmp_path):
    from earthgraph.data.generate import observe_gridded
    from earthgraph.data.observing import ObservingConfig
    from earthgraph.data.store import ObservationStore

    lat = np.arange(-88.5, 90, 3.0)
    lon = np.arange(-180.0, 180.0, 3.0)
    time = pd.date_range("2021-06-01", periods=9, freq="3h")
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    land = ((np.abs(la) < 50) & (np.abs(lo) < 40)).astype(np.float32)
    t2m = 300 - 40 * np.sin(np.radians(la)) ** 2
    sst_c = np.where(land > 0, np.nan, 27 - 30 * np.sin(np.radians(la)) ** 2)
    ice = np.where(land > 0, np.nan, np.clip((np.abs(la) - 60) / 20, 0, 1))
    rep = lambda f: np.repeat(f[None], len(time), 0)  # noqa: E731
    xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), rep(t2m), {"units": "K"}),
         "sst": (("time", "latitude", "longitude"), rep(sst_c), {"units": "degC"}),
         "siconc": (("time", "latitude", "longitude"), rep(ice), {"units": "(0-1)"}),
         "lsm": (("latitude", "longitude"), land, {"units": "(0-1)"})},
        coords={"time": time, "latitude": lat, "longitude": lon},
    ).to_netcdf(tmp_path / "fields.nc")

    truth = open_gridded(tmp_path / "fields.nc")
    summary = observe_gridded(truth, tmp_path / "obs.zarr", ObservingConfig(scale=0.5))
    assert set(summary["counts"]) == {"synop", "drifter", "seaice_conc"}, "only systems whose variables exist"
    store = ObservationStore(tmp_path / "obs.zarr")
    d = store.read("drifter", *store.time_range)
    expect = 273.15 + 27 - 30 * np.sin(np.radians(d["lat"])) ** 2
    dep = d["values"][:, 0] - expect
    assert len(dep) > 100 and abs(dep.mean()) < 0.1 and dep.std() < 0.5
    with pytest.raises(KeyError, match=r"missing variables \{'snow': \['snow_water_equivalent'\]\}"):
        observe_gridded(truth, tmp_path / "more.zarr", ObservingConfig(), systems=("synop", "snow"))
    assert not (tmp_path / "more.zarr").exists()


def test_coordinates_are_found_by_their_cf_attributes_and_variables_renamed(tmp_path):
    # A file as ferret writes them: its own coordinate names, longitudes past 360, "M/S".
    lat, lon = np.arange(-90.0, 90.1, 30.0), np.arange(20.0, 380.0, 60.0)
    times = pd.date_range("1982-01-16", periods=3, freq="MS")
    ds = xr.Dataset({"UWND": (("TIME", "FNOCY", "FNOCX"), np.ones((3, len(lat), len(lon)), np.float32),
                              {"units": "M/S"})},
                    coords={"TIME": times, "FNOCY": ("FNOCY", lat, {"units": "degrees_north"}),
                            "FNOCX": ("FNOCX", lon, {"units": "degrees_east"})})
    ds.to_netcdf(tmp_path / "winds.cdf")
    got = open_gridded(tmp_path / "winds.cdf", rename={"UWND": "u_component_of_wind"})
    assert got["u_component_of_wind"].dims == ("time", "latitude", "longitude")
    np.testing.assert_array_equal(got.longitude.values, [20.0, 80.0, 140.0, 200.0, 260.0, 320.0])
    assert got["u_component_of_wind"].attrs["units"] == "m s-1"
    with pytest.raises(GriddedError, match=r"winds\.cdf: cannot rename \['VWND'\]: no such variable"):
        open_gridded(tmp_path / "winds.cdf", rename={"VWND": "v_component_of_wind"})
