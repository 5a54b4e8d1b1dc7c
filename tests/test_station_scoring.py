"""Station verification against closed forms: interpolation of gridded forecasts to
points, pairing with observations, scores by hand, baselines, the paired block
bootstrap, the result files and the errors a user meets."""

import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from earthgraph.scoring import bootstrap, points, station_obs, station_results, stations
from earthgraph.scoring.points import GRAVITY, PointInterpolationError
from earthgraph.scoring.station_obs import StationDataError

LAT = np.arange(-90.0, 90.1, 2.0)
LON = np.arange(0.0, 360.0, 2.5)
INITS = pd.date_range("2021-01-01", periods=3, freq="1D").values
H = np.timedelta64(1, "h")


def grid(field: np.ndarray, name: str = "2m_temperature", lat=LAT, lon=LON, times: int = 2,
         leads=(0, 24)) -> xr.Dataset:
    """A WB2-layout forecast with ``field`` (latitude, longitude) at every time and lead."""
    shape = (times, len(leads), len(lat), len(lon))
    dims = ("time", "prediction_timedelta", "latitude", "longitude")
    da = xr.DataArray(np.broadcast_to(field, shape).copy(), dims=dims,
                      coords={"time": INITS[:times], "prediction_timedelta": np.array(leads) * H,
                              "latitude": lat, "longitude": lon})
    return xr.Dataset({name: da})


def places(lat, lon, elevation=None, ids=None) -> pd.DataFrame:
    ids = ids if ids is not None else [f"s{i}" for i in range(len(lat))]
    table = pd.DataFrame({"latitude": lat, "longitude": lon,
                          "elevation": np.nan if elevation is None else elevation}, index=pd.Index(ids, name="station"))
    return table


def station_data(values, ids, name="2m_temperature", leads=(24,), lat=None, lon=None) -> xr.Dataset:
    """A station forecast (time, prediction_timedelta, [realization,] station) from an array."""
    values = np.asarray(values, np.float64)
    dims = ("time", "prediction_timedelta", "station") if values.ndim == 3 else \
        ("time", "prediction_timedelta", "realization", "station")
    coords = {"time": INITS[:values.shape[0]], "prediction_timedelta": np.array(leads) * H, "station": ids}
    ds = xr.Dataset({name: (dims, values)}, coords=coords)
    n = len(ids)
    return ds.assign_coords(latitude=("station", np.full(n, 50.0) if lat is None else lat),
                            longitude=("station", np.full(n, 10.0) if lon is None else lon))


def observations(values: np.ndarray, times, ids, lat=None, lon=None, name="2m_temperature") -> xr.Dataset:
    n = len(ids)
    return xr.Dataset({name: (("time", "station"), np.asarray(values, np.float64))},
                      coords={"time": np.asarray(times, "datetime64[ns]"), "station": ids,
                              "latitude": ("station", np.full(n, 50.0) if lat is None else lat),
                              "longitude": ("station", np.full(n, 10.0) if lon is None else lon)})


# --- interpolation -----------------------------------------------------------------------------------------


def test_bilinear_reproduces_a_linear_field_exactly_and_stays_lazy_for_dask():
    field = 280.0 + 0.7 * LAT[:, None] - 0.05 * LON[None, :]
    rng = np.random.default_rng(0)
    lat = rng.uniform(-89.0, 89.0, 50)
    lon = rng.uniform(0.0, LON[-1], 50)
    lon[::3] -= 360.0  # the same places in [-360, 0): any longitude convention
    fc = grid(field).chunk({"time": 1})
    out = points.interpolate_to_stations(fc, places(lat, lon), method="bilinear")
    assert hasattr(out["2m_temperature"].data, "dask"), "a dask-backed forecast must stay lazy"
    assert out["2m_temperature"].dims == ("time", "prediction_timedelta", "station")
    expect = 280.0 + 0.7 * lat - 0.05 * np.mod(lon, 360.0)
    np.testing.assert_allclose(out["2m_temperature"].isel(time=1, prediction_timedelta=1).values, expect, atol=1e-9)
    np.testing.assert_array_equal(out.longitude.values, lon)  # the stations' own coordinates


def test_nearest_picks_the_nearest_grid_point():
    field = np.arange(LAT.size * LON.size, dtype=np.float64).reshape(LAT.size, LON.size)
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-90, 90, 200), rng.uniform(-180, 180, 200)
    out = points.interpolate_to_stations(grid(field), places(lat, lon), method="nearest")
    dlon = np.abs((LON[None, :] - lon[:, None] + 180.0) % 360.0 - 180.0)  # periodic distance in degrees
    j = np.argmin(np.abs(LAT[None, :] - lat[:, None]), axis=1)
    i = np.argmin(dlon, axis=1)
    np.testing.assert_array_equal(out["2m_temperature"].isel(time=0, prediction_timedelta=0).values, field[j, i])


def test_longitude_wraps_around_the_globe():
    field = np.full((LAT.size, LON.size), 50.0)
    field[:, 0], field[:, -1] = 10.0, 20.0  # the 0 deg and 357.5 deg columns
    stations_ = places([0.0, 0.0], [359.9, -0.1])
    bilinear = points.interpolate_to_stations(grid(field), stations_, "bilinear")["2m_temperature"]
    nearest = points.interpolate_to_stations(grid(field), stations_, "nearest")["2m_temperature"]
    # 2.4 deg past the 357.5 column of a 2.5 deg grid: weight 0.96 on the 0 deg column.
    np.testing.assert_allclose(bilinear.isel(time=0, prediction_timedelta=0).values, [10.4, 10.4], atol=1e-9)
    np.testing.assert_array_equal(nearest.isel(time=0, prediction_timedelta=0).values, [10.0, 10.0])


def test_coastal_sst_uses_the_sea_corners_and_is_nan_over_land():
    lat, lon = np.array([0.0, 1.0]), np.arange(0.0, 360.0, 1.0)
    sst = np.full((2, lon.size), 300.0)
    sst[1, :] = 302.0
    sst[1, 1] = np.nan  # land at (1N, 1E)
    coast = places([0.3, 0.8], [0.6, 0.9])  # nearest corner: sea (0N, 1E); land (1N, 1E)
    out = points.interpolate_to_stations(grid(sst, "sea_surface_temperature", lat, lon), coast)
    got = out["sea_surface_temperature"].isel(time=0, prediction_timedelta=0).values
    w = np.array([0.7 * 0.4, 0.7 * 0.6, 0.3 * 0.4])  # the three sea corners: (0,0), (0,1), (1,0)
    np.testing.assert_allclose(got[0], (w * [300.0, 300.0, 302.0]).sum() / w.sum(), atol=1e-9)
    assert np.isnan(got[1])


def test_altitude_adjustment_cools_a_high_station_and_speeds_up_its_wind():
    fc = grid(np.full((LAT.size, LON.size), 280.0))
    fc["air_temperature"] = fc["2m_temperature"]
    fc["10m_wind_speed"] = fc["2m_temperature"] * 0 + 5.0
    fc["10m_u_component_of_wind"] = fc["2m_temperature"] * 0 + 5.0
    static = xr.Dataset({"geopotential_at_surface": (("latitude", "longitude"),
                                                     np.full((LAT.size, LON.size), 500.0 * GRAVITY))},
                        coords={"latitude": LAT, "longitude": LON})
    where = places([45.0, 45.0, 45.0, 45.0], [7.0, 8.0, 9.0, 10.0], elevation=[1500.0, 500.0, np.nan, 2500.0])
    out = points.interpolate_to_stations(fc, where, height=points.surface_height(static)).isel(
        time=0, prediction_timedelta=0)
    # 1000 m above the model surface: 6.5 K colder; level: unchanged; unknown elevation or a 2000 m
    # difference (beyond 1500 m: a unit error, not terrain): unadjusted.
    np.testing.assert_allclose(out["2m_temperature"].values, [273.5, 280.0, 280.0, 280.0], atol=1e-9)
    np.testing.assert_allclose(out["air_temperature"].values, [273.5, 280.0, 280.0, 280.0], atol=1e-9)
    np.testing.assert_allclose(out["10m_wind_speed"].values, [5.0 * 2.8, 5.0, 5.0, 5.0], atol=1e-9)
    np.testing.assert_allclose(out["10m_u_component_of_wind"].values, 5.0)  # components: never
    np.testing.assert_allclose(out.model_surface_height.values, 500.0)


# --- pairing, scores, baselines ----------------------------------------------------------------------------


def test_scores_equal_hand_computed_values_on_paired_samples():
    ids = ["A", "B"]
    truth = np.array([[10.0, 20.0], [11.0, 21.0], [12.0, np.nan]])  # B missing at the last valid time
    valid = INITS + 24 * H
    obs = observations(truth, valid, ids)
    err_a = np.array([[1.0, 2.0], [-1.0, 0.0], [3.0, 5.0]])  # (init, station) errors of forecast a
    err_b = np.array([[0.0, 1.0], [np.nan, 1.0], [1.0, 1.0]])  # b has no value at (init 1, A)
    fa = station_data((truth + err_a)[:, None, :], ids)
    fb = station_data((truth + err_b)[:, None, :], ids)
    result = stations.score_stations({"a": fa, "b": fb}, obs, regions={"global": stations.WB2_REGIONS["global"]})
    per_station = result.per_station()["2m_temperature"].isel(prediction_timedelta=0)
    per_region = result.per_region()["2m_temperature"].isel(prediction_timedelta=0)
    # Paired samples: A at inits 0, 2 (b missing at 1); B at inits 0, 1 (no observation at 2).
    a_a, a_b = np.array([1.0, 3.0]), np.array([2.0, 0.0])
    np.testing.assert_allclose(per_station["count"].sel(forecast="a").values, [2, 2])
    np.testing.assert_allclose(per_station["rmse"].sel(forecast="a").values,
                               [np.sqrt(np.mean(a_a ** 2)), np.sqrt(np.mean(a_b ** 2))])
    pooled = np.concatenate([a_a, a_b])
    got = per_region.sel(forecast="a", region="global")
    assert float(got["rmse"]) == pytest.approx(np.sqrt(np.mean(pooled ** 2)))  # the root after the mean
    assert float(got["rmse"]) != pytest.approx(np.mean(np.abs(pooled)))
    assert float(got["bias"]) == pytest.approx(pooled.mean())
    assert float(got["mae"]) == pytest.approx(np.abs(pooled).mean())
    assert float(got["count"]) == 4
    assert float(per_region["nonfinite"].sel(forecast="b", region="global")) == 1
    assert float(per_region["rmse"].sel(forecast="b", region="global")) == pytest.approx(
        np.sqrt(np.mean(np.array([0.0, 1.0, 1.0, 1.0]) ** 2)))


def test_ensemble_gets_the_fair_crps_and_scores_of_its_mean():
    ids = [7]
    obs = observations(np.zeros((2, 1)), INITS[:2] + 24 * H, ids)
    members = np.array([[0.0, 1.0, 3.0], [-2.0, 2.0, 6.0]])  # (init, member)
    ens = station_data(members[:, None, :, None], ids)
    det = station_data(np.array([1.0, -1.0])[:, None, None], ids)
    result = stations.score_stations({"ens": ens, "det": det}, obs, regions={"global": stations.WB2_REGIONS["global"]})
    got = result.per_station()["2m_temperature"].isel(prediction_timedelta=0, station=0)

    def fair_crps(x, y):
        m = len(x)
        return np.abs(x - y).mean() - np.abs(x[:, None] - x[None, :]).sum() / (2 * m * (m - 1))

    assert float(got["crps"].sel(forecast="ens")) == pytest.approx(np.mean([fair_crps(m, 0.0) for m in members]))
    assert float(got["crps"].sel(forecast="det")) == pytest.approx(1.0)  # a point forecast: its absolute error
    assert float(got["rmse"].sel(forecast="ens")) == pytest.approx(np.sqrt(np.mean(members.mean(1) ** 2)))
    spread = np.sqrt(np.mean(members.var(axis=1, ddof=1)))
    assert float(got["spread"].sel(forecast="ens")) == pytest.approx(spread)
    assert np.isnan(float(got["spread"].sel(forecast="det")))


def test_persistence_is_the_observation_at_init_and_tolerance_pairs_near_times():
    obs_times = pd.DatetimeIndex(["2021-01-01T00:00", "2021-01-02T00:20", "2021-01-03T00:00"]).values
    obs = observations(np.array([[1.0, 5.0], [2.0, 6.0], [3.0, np.nan]]), obs_times, ["A", "B"])
    leads = np.array([0, 24, 48]) * H
    pers = stations.persistence_forecast(obs, INITS, leads)["2m_temperature"]
    assert pers.dims == ("time", "prediction_timedelta", "station")
    np.testing.assert_array_equal(pers.sel(station="A").values[:, 2], [1.0, np.nan, 3.0])  # no report at 1 Jan 00
    np.testing.assert_array_equal(pers.sel(station="B").values[:, 0], [5.0, np.nan, np.nan])
    near = stations.persistence_forecast(obs, INITS, leads, tolerance=pd.Timedelta("30min"))["2m_temperature"]
    np.testing.assert_array_equal(near.sel(station="A").values[:, 1], [1.0, 2.0, 3.0])
    exact = stations.align_observations(obs, INITS[:1], leads)["2m_temperature"].sel(station="A").values
    np.testing.assert_array_equal(exact[0], [1.0, np.nan, 3.0])


def test_persistence_with_a_max_age_is_the_latest_report_before_the_initialisation():
    # A station reporting once a day at 12 UTC persists into the next 00 UTC initialisation, not
    # into one a day later; a gap leaves the latest finite report.
    obs_times = pd.DatetimeIndex(["2021-01-01T12:00", "2021-01-02T12:00", "2021-01-03T12:00"]).values
    obs = observations(np.array([[1.0, 5.0], [np.nan, 6.0], [3.0, 7.0]]), obs_times, ["A", "B"])
    inits = pd.DatetimeIndex(["2021-01-02T00:00", "2021-01-03T00:00", "2021-01-04T00:00", "2021-01-06T00:00"]).values
    pers = stations.persistence_forecast(obs, inits, np.array([12]) * H, max_age=pd.Timedelta(hours=36))
    got = pers["2m_temperature"].isel(prediction_timedelta=0)
    np.testing.assert_array_equal(got.sel(station="A").values, [1.0, 1.0, 3.0, np.nan])  # 2 Jan missing: 1 Jan's
    np.testing.assert_array_equal(got.sel(station="B").values, [5.0, 6.0, 7.0, np.nan])  # 6 Jan: 60 h old, too old
    exact = stations.persistence_forecast(obs, inits, np.array([12]) * H)["2m_temperature"]
    assert np.isnan(exact.values).all(), "without max_age only a report at the initialisation counts"


def test_climatology_baseline_recovers_a_known_seasonal_cycle():
    times = pd.date_range("2016-01-01T12:00", "2019-12-31T12:00", freq="1D")
    doy = np.asarray(times.day_of_year)
    cycle = 10.0 * np.cos(2 * np.pi * (doy - 15) / 365.25)
    rng = np.random.default_rng(2)
    values = np.stack([280.0 + cycle, 300.0 - cycle], axis=1) + rng.normal(0.0, 0.3, (len(times), 2))
    values[(times.year == 2017) & (times.month == 3), 0] = np.nan  # a month without data: skipped
    obs = observations(values, times.values, [1, 2])
    clim = stations.station_climatology(obs, ("2016-01-01", "2019-12-31"))
    assert clim["2m_temperature"].dims == ("dayofyear", "station")  # one report a day: daily
    # The 61-day triangular window damps the annual harmonic by (sin(a)/a)^2, a = 30 pi / 365.25.
    a = 30 * np.pi / 365.25
    expect = 10.0 * (np.sin(a) / a) ** 2 * np.cos(2 * np.pi * (np.arange(1, 367) - 15) / 365.25)
    # Within 0.3 K: the missing March tilts the window towards April by up to 0.25 K (the noise: 0.03 K).
    np.testing.assert_allclose(clim["2m_temperature"].sel(station=1).values - 280.0, expect, atol=0.3)
    np.testing.assert_allclose(clim["2m_temperature"].sel(station=2).values - 300.0, -expect, atol=0.1)
    fc = stations.climatology_forecast(clim, pd.DatetimeIndex(["2020-07-01T12:00"]).values, np.array([0, 24]) * H)
    assert float(fc["2m_temperature"].sel(station=1).isel(time=0, prediction_timedelta=1)) == pytest.approx(
        280.0 + expect[183 - 1], abs=0.25)  # valid 2 July 2020, day 184 of a leap year; the cycle is smooth
    # Two reports a day, 2 K warmer at 12 UTC than at 00 UTC: an hourly climatology keeps the diurnal difference.
    twice = xr.concat([obs, (obs - 2.0).assign_coords(time=obs.time.values - 12 * H)], "time").sortby("time")
    hourly = stations.station_climatology(twice, ("2016-01-01", "2020-12-31"))["2m_temperature"]
    assert hourly.sizes["hour"] == 24
    np.testing.assert_allclose((hourly.sel(hour=12) - hourly.sel(hour=0)).values, 2.0, atol=1e-4)  # float32
    assert np.isnan(hourly.sel(hour=6)).all()


# --- bootstrap ---------------------------------------------------------------------------------------------


def sums_of(errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-init sums of squared errors and counts from errors (time, samples, groups)."""
    return (errors ** 2).sum(axis=1), np.full((errors.shape[0], errors.shape[2]), float(errors.shape[1]))


def test_bootstrap_is_seeded_and_separates_better_from_equal_forecasts():
    rng = np.random.default_rng(3)
    shape = (200, 5, 20)  # inits, stations, independent replicate experiments (groups)
    good, _ = sums_of(rng.normal(0.0, 1.0, shape))
    bad, count = sums_of(rng.normal(0.0, 1.5, shape))
    twin, _ = sums_of(rng.normal(0.0, 1.0, shape))
    better = bootstrap.paired_bootstrap(good, bad, count, "rmse", seed=1)
    assert (better["upper"] < 0).all() and better["significant"].all()
    again = bootstrap.paired_bootstrap(good, bad, count, "rmse", seed=1)
    other = bootstrap.paired_bootstrap(good, bad, count, "rmse", seed=2)
    np.testing.assert_array_equal(again["lower"], better["lower"])
    assert not np.array_equal(other["lower"], better["lower"])
    # Negative control: two forecasts equally good; a 95% interval covers 0 in about 19 of 20 experiments.
    equal = bootstrap.paired_bootstrap(good, twin, count, "rmse", seed=1)
    assert ((equal["lower"] <= 0) & (equal["upper"] >= 0)).sum() >= 17
    assert set(equal) >= set(bootstrap.BOOTSTRAP_COLUMNS)


def test_autocorrelated_errors_need_longer_blocks():
    rng = np.random.default_rng(4)
    n, groups = 300, 10
    ar = np.zeros((n, groups))
    for t in range(1, n):  # an AR(1) difference of per-init errors, r = 0.9
        ar[t] = 0.9 * ar[t - 1] + np.sqrt(1 - 0.81) * rng.normal(size=groups)
    base = np.full((n, groups), 10.0)
    forecast, reference, count = base + ar, base.copy(), np.ones((n, groups))
    width = {}
    for length in (1, 20):
        out = bootstrap.paired_bootstrap(forecast, reference, count, "mae", block_length=length)
        width[length] = out["upper"] - out["lower"]
        assert (out["block_length"] == length).all()
    assert (width[20] > 1.8 * width[1]).all()
    auto = bootstrap.paired_bootstrap(forecast, reference, count, "mae")["block_length"]
    noise = base + rng.normal(size=(n, groups))
    white = bootstrap.paired_bootstrap(noise, reference, count, "mae")["block_length"]
    assert (auto >= 15).all() and (white <= 3).all()
    # Blocks are runs of consecutive inits: on independent errors long blocks change little.
    plain = [bootstrap.paired_bootstrap(noise, reference, count, "mae", block_length=length) for length in (1, 20)]
    ratio = (plain[1]["upper"] - plain[1]["lower"]) / (plain[0]["upper"] - plain[0]["lower"])
    assert np.median(ratio) < 1.3


def test_bootstrap_of_a_few_hundred_inits_and_groups_takes_well_under_a_second():
    rng = np.random.default_rng(5)
    f, count = sums_of(rng.normal(0.0, 1.0, (300, 4, 300)))
    r, _ = sums_of(rng.normal(0.0, 1.2, (300, 4, 300)))
    start = time.perf_counter()
    out = bootstrap.paired_bootstrap(f, r, count, "rmse", n_resamples=1000)
    elapsed = time.perf_counter() - start
    assert out["lower"].shape == (300,) and np.isfinite(out["lower"]).all()
    assert elapsed < 1.0, f"{elapsed:.2f} s"


# --- files, tables, readers and errors ---------------------------------------------------------------------


def test_pipeline_writes_documented_tables_netcdf_and_a_map(tmp_path):
    rng = np.random.default_rng(6)
    times = pd.date_range("2020-01-01", "2021-03-31", freq="12h")
    ids = ["06260", "10385", "72530"]
    lat, lon, elev = [52.1, 52.4, 41.98], [5.2, 13.5, -87.9], [2.0, 48.0, 205.0]
    rows = pd.DataFrame({"station": np.repeat(ids, len(times)), "time": np.tile(times.strftime("%Y-%m-%dT%H:%MZ"), 3),
                         "t2m": 280.0 + rng.normal(0.0, 3.0, 3 * len(times)),
                         "lat": np.repeat(lat, len(times)), "lon": np.repeat(lon, len(times)),
                         "elevation": np.repeat(elev, len(times))})
    rows.to_csv(tmp_path / "obs.csv", index=False)
    obs = station_obs.read_station_observations(tmp_path / "obs.csv", layout="wide",
                                                variables={"2m_temperature": "t2m"})
    assert list(obs.station.values) == ids  # leading zeros kept: ids stay text
    init = pd.date_range("2021-01-01", "2021-03-20", freq="1D").values
    truth = stations.align_observations(obs, init, np.array([0, 24, 48]) * H)
    model = truth + 0.5 * rng.normal(size=truth["2m_temperature"].shape)
    forecasts = {"model": model, **stations.reference_forecasts(obs, model, ("2020-01-01", "2020-12-31"))}
    result = stations.score_stations(forecasts, obs)
    diffs = pd.concat([station_results.compare_to_reference(result, "persistence", n_resamples=200),
                       station_results.compare_to_reference(result, "persistence", n_resamples=200, per_station=True)])
    paths = station_results.write_station_results(result, tmp_path / "out", diffs)
    for table in (pd.read_csv(paths["csv"], dtype={"station": str}), pd.read_parquet(paths["parquet"])):
        assert list(table.columns) == station_results.TABLE_COLUMNS
        compared = table[(table.reference == "persistence") & (table.metric == "rmse") & (table.region == "global")]
        assert set(compared.forecast) == {"model", "climatology"}
        assert compared.loc[compared.forecast == "model", "significant"].all()  # 0.5 K noise beats persistence
        assert set(table.station.dropna().astype(str)) == set(ids)
        scored = table[table.reference.isna() & (table.metric == "rmse") & (table.forecast == "model")]
        for where in ("region", "station"):  # a comparison row carries the forecast's own score
            rows = table[(table.reference == "persistence") & table[where].notna() & (table.metric == "rmse")
                         & (table.forecast == "model")]
            merged = rows.merge(scored, on=[where, "lead_hours"], suffixes=("", "_score"))
            assert len(merged) and np.allclose(merged.value, merged.value_score)
    regional = xr.open_dataset(paths["model"])
    assert regional["2m_temperature"].dims == ("metric", "region", "lead_time")
    assert {"global", "europe", "north-america"} <= set(regional.region.values)
    per_station = xr.open_dataset(paths["model_stations"])
    assert per_station["2m_temperature"].dims == ("metric", "station", "lead_time")
    np.testing.assert_allclose(per_station.latitude.values, lat)
    assert float(regional["2m_temperature"].sel(metric="rmse", region="global").isel(lead_time=1)) == pytest.approx(
        0.5, rel=0.15)
    png = station_results.plot_station_skill(result, "model", "2m_temperature", 24 * H, tmp_path / "skill.png")
    assert png.stat().st_size > 5000


def test_long_and_wide_tables_give_the_same_dataset(tmp_path):
    long = pd.DataFrame({"station": [3, 3, 4, 4], "variable": ["t", "u", "t", "t"], "value": [1.0, 2.0, 3.0, 4.0],
                         "time": ["2021-01-01T01:00+01:00", "2021-01-01T00:00Z", "2021-01-01T00:00Z",
                                  "2021-01-01T06:00Z"], "latitude": [1.0, 1.0, 2.0, 2.0],
                         "longitude": [-5.0, 355.0, 3.0, 3.0]})
    long.to_parquet(tmp_path / "long.parquet")
    a = station_obs.read_station_observations(tmp_path / "long.parquet")
    wide = pd.DataFrame({"id": [3, 4, 4], "time": pd.to_datetime(["2021-01-01T00:00", "2021-01-01T00:00",
                                                                  "2021-01-01T06:00"]),
                         "T": [1.0, 3.0, 4.0], "U": [2.0, np.nan, np.nan]})
    pos = pd.DataFrame({"id": [3, 4], "lat": [1.0, 2.0], "lon": [-5.0, 3.0]})
    b = station_obs.observations_from_table(wide, layout="wide", variables={"t": "T", "u": "U"},
                                            columns={"station": "id"}, stations=pos)
    assert a.station.dtype == np.int64 and a.time.dtype == np.dtype("datetime64[ns]")
    xr.testing.assert_equal(a.drop_attrs(), b.drop_attrs().assign_coords(longitude=a.longitude))
    assert np.isnan(a["u"].sel(station=4)).all() and float(a["t"].sel(station=3).isel(time=0)) == 1.0


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns="value"), r"obs\.csv: no column 'value'"),
    (lambda t: t.assign(lat=[10.0, 95.0]), r"obs\.csv: column 'lat': latitude 95\.0 of station 'B'"),
    (lambda t: t.assign(station=["A", "A"]), r"column 'lat': station 'A' has two positions"),
    (lambda t: t.assign(time=["2021-01-01", "yesterday"]), r"column 'time': cannot parse time 'yesterday'"),
    (lambda t: t.assign(lon=[1.0, np.nan]), r"column 'lon': station 'B' has position nan"),
    (lambda t: t.assign(value=["1.5", "warm"]), r"column 'value': 'warm'"),
])
def test_bad_station_tables_raise_errors_naming_file_column_and_value(tmp_path, change, message):
    table = pd.DataFrame({"station": ["A", "B"], "time": ["2021-01-01", "2021-01-01"], "variable": ["t", "t"],
                          "value": [1.0, 2.0], "lat": [10.0, 20.0], "lon": [1.0, 2.0]})
    change(table).to_csv(tmp_path / "obs.csv", index=False)
    with pytest.raises(StationDataError, match=message):
        station_obs.read_station_observations(tmp_path / "obs.csv")


def test_bad_arguments_raise_named_errors():
    with pytest.raises(PointInterpolationError, match="'nearest' or 'bilinear'"):
        points.interpolate_to_stations(grid(np.zeros((LAT.size, LON.size))), places([0.0], [0.0]), "cubic")
    with pytest.raises(PointInterpolationError, match="normalise_grid"):
        points.interpolate_to_stations(grid(np.zeros((LAT.size, LON.size)))[{"latitude": slice(None, None, -1)}],
                                       places([0.0], [0.0]))
    flat = xr.DataArray(np.zeros((LAT.size, LON.size)), dims=("latitude", "longitude"),
                        coords={"latitude": LAT, "longitude": LON})
    with pytest.raises(PointInterpolationError, match="elevations"):
        points.interpolate_to_stations(grid(np.zeros((LAT.size, LON.size))), places([0.0], [0.0]), height=flat)
    ones = np.ones((10, 2))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap.paired_bootstrap(ones, ones, ones, "rmse", confidence=95)
    with pytest.raises(ValueError, match="block_length"):
        bootstrap.paired_bootstrap(ones, ones, ones, "rmse", block_length="long")
    obs = observations(np.zeros((1, 1)), INITS[:1], ["A"])
    moved = station_data(np.zeros((1, 1, 1)), ["A"], lat=[51.0])
    with pytest.raises(StationDataError, match="station 'A' is at latitude 51"):
        stations.score_stations({"f": moved}, obs)
