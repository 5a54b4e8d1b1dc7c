"""Scoring against closed forms: WB2's test cases, brute-force fair CRPS, the WB2
climatology by hand, regions as WB2 selects them, and departure statistics."""

import itertools

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from earthgraph.scoring import areas, diagnostics, ensemble, evaluation, layout, metrics, obs_space
from earthgraph.scoring.climatology import climatology_at, hourly_dayofyear_climatology, window_weights
from earthgraph.scoring.regions import WB2_REGIONS, Box, standard_regions

LAT6 = np.array([-75.0, -45.0, -15.0, 15.0, 45.0, 75.0])


def grid_field(values, lat=LAT6, lon=(0.0, 90.0, 180.0, 270.0), times=2, leads=(0,), extra=None):
    """A (time, prediction_timedelta, [extra,] latitude, longitude) field from ``values`` broadcast."""
    dims = ["time", "prediction_timedelta"] + ([extra[0]] if extra else []) + ["latitude", "longitude"]
    coords = {"time": pd.date_range("2020-01-01", periods=times, freq="12h").values,
              "prediction_timedelta": pd.to_timedelta(list(leads), unit="h").values,
              "latitude": np.asarray(lat, float), "longitude": np.asarray(lon, float)}
    if extra:
        coords[extra[0]] = extra[1]
    shape = [len(coords[d]) for d in dims]
    return xr.DataArray(np.broadcast_to(values, shape).astype(np.float64), dims=dims, coords=coords)


def test_latitude_weights_are_wb2s_closed_form_in_either_order():
    lat = xr.DataArray(LAT6, dims="latitude", coords={"latitude": LAT6})
    r3 = np.sqrt(3.0)
    expect = 3 * np.array([1 - r3 / 2, (r3 - 1) / 2, 0.5, 0.5, (r3 - 1) / 2, 1 - r3 / 2])
    np.testing.assert_allclose(areas.latitude_weights(lat).values, expect, rtol=1e-12)
    flipped = lat[::-1].assign_coords(latitude=LAT6[::-1])
    np.testing.assert_allclose(areas.latitude_weights(flipped).values, expect[::-1], rtol=1e-12)
    uneven = areas.latitude_weights(xr.DataArray([-40.0, 10.0, 30.0], dims="latitude")).values
    edges = np.radians([-90.0, -15.0, 20.0, 90.0])  # midway between neighbours, poles at the ends
    np.testing.assert_allclose(uneven, np.diff(np.sin(edges)) / np.diff(np.sin(edges)).mean(), rtol=1e-12)
    with pytest.raises(ValueError, match="distinct"):
        areas.latitude_weights(xr.DataArray([0.0, 10.0, 10.0], dims="latitude"))
    with pytest.raises(ValueError, match="within"):
        areas.latitude_weights(xr.DataArray([0.0, 95.0], dims="latitude"))


def test_healpix_cells_weigh_equally_and_regions_use_their_coordinates():
    import healpy as hp

    lon, lat = hp.pix2ang(4, np.arange(192), nest=True, lonlat=True)
    x = xr.DataArray(np.arange(192.0), dims="cell", coords={"latitude": ("cell", lat), "longitude": ("cell", lon)})
    w = areas.area_weights(x)
    np.testing.assert_array_equal(w.values, np.ones(192))
    tropics = metrics.region_weights(x, WB2_REGIONS["tropics"])
    inside = (lat >= -20) & (lat <= 20)
    assert float(metrics.spatial_average(x, tropics)) == pytest.approx(np.arange(192.0)[inside].mean())


def test_a_healpix_forecast_is_scored_with_equal_weights_and_masks():
    import healpy as hp

    lon, lat = hp.pix2ang(2, np.arange(48), nest=True, lonlat=True)
    rng = np.random.default_rng(6)
    coords = {"time": pd.date_range("2020-01-01", periods=3, freq="12h").values,
              "prediction_timedelta": pd.to_timedelta([12], unit="h").values,
              "latitude": ("cell", lat), "longitude": ("cell", lon)}
    err = rng.normal(size=(3, 1, 48))
    truth = xr.Dataset({"x": (("time", "prediction_timedelta", "cell"), rng.normal(size=(3, 1, 48)))}, coords=coords)
    truth["land_sea_mask"] = ("cell", (lat > 0).astype(float))
    fc = truth[["x"]] + xr.DataArray(err, dims=("time", "prediction_timedelta", "cell"))
    regions = standard_regions(truth, names=["global", "land", "tropics"])
    res = evaluation.score_forecast(fc, truth, regions)["x"].sel(metric="rmse").isel(lead_time=0)
    assert res.sel(region="global").item() == pytest.approx(np.sqrt((err ** 2).mean()))
    assert res.sel(region="land").item() == pytest.approx(np.sqrt((err[..., lat > 0] ** 2).mean()))
    tropics = (lat >= -20) & (lat <= 20)
    assert res.sel(region="tropics").item() == pytest.approx(np.sqrt((err[..., tropics] ** 2).mean()))


def test_wind_vector_rmse_is_wb2s_example():
    levels = ("level", [500, 700, 850])
    f = lambda v: grid_field(np.array(v, float)[:, None, None], lat=[-45.0, 0.0, 45.0], extra=levels)  # noqa: E731
    uf, vf, ut, vt = f([0, 3, np.nan]), f([0, -4, 1]), f([0, -3, np.nan]), f([0, 4, 1])
    got = metrics.wind_vector_rmse(uf, vf, ut, vt, metrics.region_weights(uf))
    np.testing.assert_array_equal(got.sel(prediction_timedelta=np.timedelta64(0, "h")).values, [0.0, 10.0, np.nan])


def test_nan_outside_a_region_never_reaches_it_and_inside_it_counts_unless_skipped():
    """WB2's test_rmse_over_invalid_region: a bad latitude band, forecast = truth + 1."""
    truth = grid_field(np.array([0.0, np.nan, 0.0])[:, None], lat=[-45.0, 0.0, 45.0])
    fc = truth + 1.0
    glob = metrics.region_weights(truth)
    extra = metrics.region_weights(truth, WB2_REGIONS["extra-tropics"])
    assert np.isnan(metrics.rmse(fc, truth, glob).item())
    assert metrics.rmse(fc, truth, extra).item() == pytest.approx(1.0)
    assert metrics.rmse(fc, truth, glob, skipna=True).item() == pytest.approx(1.0)
    for bad in (np.inf, -np.inf):
        t = truth.fillna(bad)
        assert metrics.rmse(t + 1.0, t, extra).item() == pytest.approx(1.0)


def test_a_nan_forecast_where_the_truth_exists_is_never_skipped():
    rng = np.random.default_rng(4)
    truth = xr.Dataset({"sst": grid_field(rng.normal(size=(2, 1, 6, 4)))})
    truth["sst"][:, :, 0, 0] = np.nan  # "land": no truth there
    fc = truth + 1.0
    regions = {"global": WB2_REGIONS["global"]}
    ok = evaluation.score_forecast(fc.fillna(1e9), truth, regions)  # any value where the truth is missing
    assert ok["sst"].sel(metric="rmse").item() == pytest.approx(1.0)
    broken = fc.copy(deep=True)
    broken["sst"][1, 0, 3, 2] = np.nan  # the forecast failed where the truth exists
    assert np.isnan(evaluation.score_forecast(broken, truth, regions)["sst"].sel(metric="rmse").item())
    strict = evaluation.score_forecast(fc, truth, regions, skip_missing_truth=False)  # WB2's skipna=False
    assert np.isnan(strict["sst"].sel(metric="rmse").item())


def test_rmse_takes_the_root_after_the_time_mean_and_bias_mae_are_weighted_means():
    lat = np.array([-45.0, 0.0, 45.0])
    w = np.array([np.sin(np.pi / 2) - np.sin(np.pi / 8), 2 * np.sin(np.pi / 8), 0.0])
    w[2] = w[0]
    err = np.array([[1.0, 2.0, 3.0], [3.0, -1.0, 0.0]])  # (time, latitude)
    truth = grid_field(0.0, lat=lat)
    fc = truth + xr.DataArray(err, dims=("time", "latitude"), coords={"time": truth.time, "latitude": lat})
    wts = metrics.region_weights(truth)
    per_time_mse = (err ** 2 * w).sum(1) / w.sum()
    assert metrics.rmse(fc, truth, wts).item() == pytest.approx(np.sqrt(per_time_mse.mean()))
    assert metrics.rmse(fc, truth, wts).item() != pytest.approx(np.sqrt(per_time_mse).mean())
    assert metrics.bias(fc, truth, wts).item() == pytest.approx(((err * w).sum(1) / w.sum()).mean())
    assert metrics.mae(fc, truth, wts).item() == pytest.approx(((abs(err) * w).sum(1) / w.sum()).mean())


def test_acc_is_uncentred_and_per_forecast():
    rng = np.random.default_rng(0)
    clim = grid_field(280.0)
    anom = grid_field(rng.normal(size=(2, 1, 6, 4)))
    truth = clim + anom
    w = metrics.region_weights(truth)
    assert metrics.acc(clim + 0.3 * anom, truth, clim, w).item() == pytest.approx(1.0)
    assert metrics.acc(clim - 2.0 * anom, truth, clim, w).item() == pytest.approx(-1.0)
    fc = clim + anom + 0.5  # a constant offset: a centred correlation would still be 1
    wv = w.values[None, None]
    per_time = [(np.sum(wv * (a + 0.5) * a) / np.sqrt(np.sum(wv * (a + 0.5) ** 2) * np.sum(wv * a ** 2)))
                for a in anom.values]
    assert metrics.acc(fc, truth, clim, w).item() == pytest.approx(np.mean(per_time))
    assert metrics.acc(fc, truth, clim, w).item() < 0.99


def _brute_force_fair_crps(members: np.ndarray, obs: np.ndarray) -> np.ndarray:
    m = len(members)
    skill = np.mean([abs(x - obs) for x in members], axis=0)
    if m == 1:
        return skill
    spread = sum(abs(members[i] - members[j]) for i, j in itertools.product(range(m), repeat=2)) / (m * (m - 1))
    return skill - 0.5 * spread


@pytest.mark.parametrize("members", [1, 2, 3, 5])
def test_crps_equals_brute_force_fair_crps(members):
    rng = np.random.default_rng(members)
    truth = grid_field(rng.normal(size=(3, 1, 6, 4)), times=3)
    fc = xr.concat([truth + rng.normal(scale=1.0 + 0.2 * k, size=truth.shape) for k in range(members)],
                   dim="realization").transpose("time", "prediction_timedelta", "realization", ...)
    w = metrics.region_weights(truth)
    per_point = _brute_force_fair_crps(fc.transpose("realization", ...).values, truth.values)
    wv = w.values
    expect = np.mean([np.sum(wv * p[0]) / wv.sum() for p in per_point])
    assert ensemble.crps(fc, truth, w, "realization").item() == pytest.approx(expect, rel=1e-12)
    # A NaN member makes that point NaN (WB2), or is left out of the mean with skipna.
    bad = fc.copy()
    bad[0, 0, 0, 0, 0] = np.nan
    assert np.isnan(ensemble.crps(bad, truth, w, "realization").item())
    assert np.isfinite(ensemble.crps(bad, truth, w, "realization", skipna=True).item())


def test_spread_skill_ratio_of_a_known_ensemble():
    truth = grid_field(0.0, times=2)
    offsets = xr.DataArray([-1.0, 1.0, 2.0], dims="realization")  # mean 2/3, var (ddof 1) 7/3
    fc = (truth + offsets).transpose("time", "prediction_timedelta", "realization", ...)
    w = metrics.region_weights(truth)
    assert ensemble.ensemble_spread(fc, w, "realization").item() == pytest.approx(np.sqrt(7 / 3))
    assert ensemble.ensemble_mean_rmse(fc, truth, w, "realization").item() == pytest.approx(2 / 3)
    scored = evaluation.score_forecast(xr.Dataset({"x": fc}), xr.Dataset({"x": truth}),
                                       {"global": WB2_REGIONS["global"]})
    assert scored["x"].sel(metric="spread_skill_ratio").item() == pytest.approx(np.sqrt(7 / 3) * 1.5)
    assert scored["x"].sel(metric="crps").item() > 0
    one = fc.isel(realization=[0])
    assert ensemble.ensemble_spread(one, w, "realization").item() == 0.0


def test_window_weights_are_wb2s_triangle():
    w = window_weights(61)
    assert len(w) == 61 and w[0] == 0.0 and w[-1] == 0.0 and w.mean() == pytest.approx(1.0)
    assert w[30] == pytest.approx(1.0 / np.mean(1 - np.abs(np.arange(-30, 31)) / 30))
    np.testing.assert_allclose(w[30 + 10] / w[30], 1 - 10 / 30)
    with pytest.raises(ValueError):
        window_weights(60)


def test_climatology_by_hand_with_gaps_and_wraparound():
    times = pd.date_range("2020-01-01", "2021-12-31 12:00", freq="12h")
    doy = np.asarray(times.dayofyear, float)
    values = doy + 1000.0 * np.asarray(times.hour == 12) + 0.5 * (times.year == 2021)
    values[(times.month == 2) & (times.year == 2021)] = np.nan  # a gap, skipped
    field = np.broadcast_to(values[:, None, None], (len(times), 2, 3))
    truth = xr.Dataset({"t": (("time", "latitude", "longitude"), field)},
                       coords={"time": times.values, "latitude": [-10.0, 10.0], "longitude": [0.0, 120.0, 240.0]})
    clim = hourly_dayofyear_climatology(truth, ("2020-01-01", "2021-12-31"))
    assert clim["t"].dims == ("hour", "dayofyear", "latitude", "longitude")
    assert list(clim.hour.values) == [0, 12]

    def by_hand(day: int, hour: int) -> float:
        w = 1 - np.abs(np.arange(-30, 31)) / 30
        num = den = 0.0
        for year in (2020, 2021):
            sel = (times.year == year) & (times.hour == hour)
            series = np.full(366, np.nan)
            series[np.asarray(times[sel].dayofyear) - 1] = values[sel]
            if year == 2021:
                series[365] = series[364]  # a non-leap year's day 366 is its day 365
            for k, wk in zip(range(-30, 31), w):
                v = series[(day - 1 + k) % 366]  # periodic within the year
                if np.isfinite(v):
                    num, den = num + wk * v, den + wk
        return num / den

    for day, hour in ((1, 0), (45, 12), (200, 0), (366, 12)):
        assert clim["t"].sel(dayofyear=day, hour=hour).values[0, 0] == pytest.approx(by_hand(day, hour), rel=1e-6)
    valid = xr.DataArray(np.array([["2022-02-14T12:00"]], dtype="datetime64[ns]"),
                         dims=("time", "prediction_timedelta"))
    assert climatology_at(clim, valid)["t"].values[0, 0, 0, 0] == pytest.approx(by_hand(45, 12), rel=1e-6)
    with pytest.raises(ValueError, match="hour"):
        climatology_at(clim, valid + np.timedelta64(3, "h"))


def test_regions_score_as_wb2_selects_them():
    rng = np.random.default_rng(1)
    lat, lon = np.arange(-87.5, 90, 5.0), np.arange(0, 360, 5.0)
    truth = grid_field(rng.normal(size=(2, 1, len(lat), len(lon))), lat=lat, lon=lon)
    fc = truth + grid_field(rng.normal(size=(2, 1, len(lat), len(lon))), lat=lat, lon=lon)
    for name, lat_sl, lon_sls in (("europe", slice(35, 75), [slice(347.5, 360), slice(0, 42.5)]),
                                  ("north-pacific", slice(25, 60), [slice(145, 230)]),
                                  ("tropics", slice(-20, 20), [slice(None, None)])):
        # WB2's selection: latitude weights from the whole grid, then the points in the slices.
        w_full = areas.latitude_weights(truth.latitude)
        lons = np.concatenate([truth.longitude.sel(longitude=s).values for s in lon_sls])
        sel = dict(latitude=lat_sl, longitude=lons)
        err2 = ((fc - truth) ** 2).sel(**sel)
        w = w_full.sel(latitude=lat_sl).broadcast_like(err2.isel(time=0, prediction_timedelta=0))
        per_time = (err2 * w).sum(("latitude", "longitude")) / w.sum()
        expect = float(np.sqrt(per_time.mean("time")).item())
        got = metrics.rmse(fc, truth, metrics.region_weights(truth, WB2_REGIONS[name])).item()
        assert got == pytest.approx(expect, rel=1e-12), name
    box = Box("x", latitude=(0, 10), longitudes=((350.0, 360.0), (0.0, 5.0)))
    assert box.contains(np.array([5.0, 5.0, 5.0, 5.0]), np.array([-5.0, 355.0, 3.0, 20.0])).tolist() == [
        True, True, True, False]


def test_surface_masks_and_unknown_region():
    truth = xr.Dataset({
        "land_sea_mask": (("latitude", "longitude"), np.array([[1.0, 0.0], [0.25, 0.0]])),
        "sea_ice_concentration": (("time", "latitude", "longitude"),
                                  np.array([[[0, 0.1], [0, 0.0]], [[0, 0.2], [0, 0.0]]])),
    }, coords={"time": pd.date_range("2020-01-01", periods=2).values, "latitude": [-45.0, 45.0],
               "longitude": [0.0, 180.0]})
    regions = standard_regions(truth)
    x = truth["sea_ice_concentration"]
    assert regions["ocean"].weights(x).values.tolist() == [[0.0, 1.0], [0.75, 1.0]]
    assert regions["sea-ice"].weights(x).values.tolist() == [[0.0, 1.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="unknown region"):
        standard_regions(truth, names=["atlantis"])


def test_score_forecast_layout_and_input_checks(tmp_path):
    rng = np.random.default_rng(2)
    lat, lon = np.arange(-87.5, 90, 5.0), np.arange(0, 360, 10.0)
    values = rng.normal(size=(2, 2, len(lat), len(lon)))
    truth = xr.Dataset({"t2m": grid_field(values, lat=lat, lon=lon, leads=(12, 24))})
    truth["t2m"].attrs.update(units="K", sphere="atmosphere")
    fc = truth + 0.1
    regions = standard_regions(names=["global", "tropics"])
    res = evaluation.score_forecast(fc, truth, regions)
    assert res["t2m"].dims == ("metric", "region", "lead_time")
    assert set(res.metric.values) == {"mse", "rmse", "bias", "mae", "variance_ratio"}
    np.testing.assert_allclose(res["t2m"].sel(metric="bias").values, 0.1, rtol=1e-9)
    # A shifted field is as varied as the truth; one damped by half has a quarter of its variance.
    np.testing.assert_allclose(res["t2m"].sel(metric="variance_ratio").values, 1.0, rtol=1e-9)
    damped = evaluation.score_forecast(0.5 * truth, truth, regions)["t2m"].sel(metric="variance_ratio")
    np.testing.assert_allclose(damped.values, 0.25, rtol=1e-9)
    paths = evaluation.write_results({"model": res}, tmp_path)
    back = xr.open_dataset(paths["model"])
    assert back["t2m"].dims == ("metric", "region", "lead_time")
    csv = pd.read_csv(paths["csv"])
    assert list(csv.columns) == evaluation.TABLE_COLUMNS and len(csv) == 5 * 2 * 2
    truth_ds = truth.isel(prediction_timedelta=0, drop=True)
    with pytest.raises(ValueError, match="other.zarr: 35 latitude values, truth.zarr has 36"):
        layout.on_truth_grid(fc.isel(latitude=slice(1, None)), truth_ds, "other.zarr", "truth.zarr")
    shifted = fc.assign_coords(longitude=fc.longitude + 0.5)
    with pytest.raises(ValueError, match="other.zarr: its longitude differs from truth.zarr's at index 0"):
        layout.on_truth_grid(shifted, truth_ds, "other.zarr", "truth.zarr")
    # Longitudes in -180..180, latitudes north to south, float32 coordinates: the same grid.
    flipped = fc.assign_coords(longitude=((fc.longitude + 180) % 360) - 180).isel(latitude=slice(None, None, -1))
    flipped = flipped.assign_coords(latitude=flipped.latitude.astype(np.float32))
    same = layout.on_truth_grid(layout.normalise_grid(flipped), truth_ds, "other.zarr", "truth.zarr")
    np.testing.assert_array_equal(evaluation.score_forecast(same, truth, regions)["t2m"].values, res["t2m"].values)
    with pytest.raises(ValueError, match="no variable 'q'"):
        layout.scored_variables(fc, truth_ds, "fc.zarr", "truth.zarr", ["q"])
    bad_units = fc.copy()
    bad_units["t2m"].attrs["units"] = "degC"
    with pytest.raises(ValueError, match="degC"):
        layout.scored_variables(bad_units, truth_ds, "fc.zarr", "truth.zarr")
    with pytest.raises(ValueError, match="prediction_timedelta"):
        layout.check_forecast_layout(truth_ds, "truth_as_forecast.zarr")


def test_pressure_levels_keep_their_dim_in_the_results(tmp_path):
    rng = np.random.default_rng(5)
    levels = ("level", [500, 850])
    truth = xr.Dataset({"t": grid_field(rng.normal(size=(2, 1, 2, 6, 4)), extra=levels)})
    fc = truth + xr.DataArray([0.5, 2.0], dims="level", coords={"level": [500, 850]})
    res = evaluation.score_forecast(fc, truth, standard_regions(names=["global", "arctic"]))
    assert res["t"].dims == ("metric", "region", "lead_time", "level")
    np.testing.assert_allclose(res["t"].sel(metric="rmse", region="global").values[0], [0.5, 2.0])
    ref = evaluation.score_forecast(truth + 4.0, truth, standard_regions(names=["global", "arctic"]))
    table = evaluation.results_table({"m": res, "ref": ref})
    assert sorted(table.level.unique()) == [500, 850]
    from earthgraph.scoring.plots import skill_table

    card = skill_table(table, "m", "ref", regions=["global"])
    assert list(card.index) == [("t 500", "global"), ("t 850", "global")]
    np.testing.assert_allclose(card.values[:, 0], [100 * (1 - 0.5 / 4), 100 * (1 - 2.0 / 4)])


def test_grid_sampling_is_exact_on_a_field_linear_in_space_and_time():
    lat, lon = np.arange(-80.0, 81.0, 10.0), np.arange(0.0, 360.0, 30.0)
    leads = np.array([6.0, 12.0, 24.0])
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    values = np.stack([0.3 * la + 0.1 * lo + 2.0 * h for h in leads])
    field = xr.DataArray(values, dims=("prediction_timedelta", "latitude", "longitude"),
                         coords={"prediction_timedelta": pd.to_timedelta(leads, unit="h").values,
                                 "latitude": lat, "longitude": lon})
    rng = np.random.default_rng(7)
    plat, plon, hours = rng.uniform(-80, 80, 50), rng.uniform(0, 330, 50), rng.uniform(6, 24, 50)
    got = obs_space.sample_grid(field, hours, plat, plon)
    np.testing.assert_allclose(got, 0.3 * plat + 0.1 * plon + 2.0 * hours, rtol=1e-12)
    # Across the date line the field wraps: halfway between 330 and 360 (= 0) degrees.
    mid = obs_space.sample_grid(field, np.array([6.0]), np.array([0.0]), np.array([345.0]))
    assert mid[0] == pytest.approx(0.5 * (0.1 * 330 + 0.1 * 0) + 12.0)
    # A NaN neighbour (a coast) is left out, the others renormalised.
    coast = field.copy()
    coast[:, 8, 1] = np.nan  # latitude 0, longitude 30
    near = obs_space.sample_grid(coast, np.array([6.0]), np.array([0.0]), np.array([15.0]))
    assert near[0] == pytest.approx(0.1 * 0 + 12.0)


def test_departure_statistics_by_hand():
    dep = pd.DataFrame({
        "obs_type": ["synop"] * 5 + ["argo"],
        "channel": ["t2m"] * 5 + ["sst"],
        "lat": [10.0, 10.0, 50.0, 50.0, 50.0, -70.0],
        "lon": [0.0, 10.0, 5.0, 20.0, 355.0, 100.0],
        "hours_since_init": [1.0, 11.9, 0.0, 13.0, 30.0, 5.0],
        "forecast": [1.0, 3.0, 0.0, 2.0, 5.0, 1.0],
        "observed": [0.0, 0.0, 1.0, 2.0, 1.0, 0.5],
    })
    stats = obs_space.departure_statistics(dep, standard_regions(names=["global", "europe", "antarctic"]), 12.0)
    row = stats[(stats.region == "global") & (stats.obs_type == "synop") & (stats.lead_hours == 12.0)].iloc[0]
    d = np.array([1.0, 3.0, -1.0])  # the three synop departures in [0, 12) h
    assert row["count"] == 3 and row.nonfinite == 0
    assert row.bias == pytest.approx(d.mean())
    assert row.rmse == pytest.approx(np.sqrt((d ** 2).mean()))
    assert row.stde == pytest.approx(d.std())
    eu = stats[(stats.region == "europe")]
    assert sorted(eu.lead_hours) == [12.0, 24.0, 36.0] and eu["count"].sum() == 3  # lat 50 at lon 5, 20, 355
    assert stats[stats.region == "antarctic"].obs_type.tolist() == ["argo"]
    with pytest.raises(ValueError, match="non-negative"):
        obs_space.lead_bins(np.array([-1.0]), 12.0)
    # A forecast that blew up at one observation leaves its bin undefined, and says so.
    broken = dep.assign(forecast=dep.forecast.where(dep.index != 0))
    bad = obs_space.departure_statistics(broken, standard_regions(names=["global"]), 12.0)
    row = bad[(bad.obs_type == "synop") & (bad.lead_hours == 12.0)].iloc[0]
    assert row["count"] == 3 and row.nonfinite == 1 and np.isnan(row.rmse)
    # A period selects departures by their valid time, or by their initialisation.
    timed = dep.assign(time=np.datetime64("2020-01-02T00") + pd.to_timedelta(dep.hours_since_init, unit="h").values)
    period = ("2020-01-02T06", "2020-01-03")
    assert obs_space.departures_in_period(timed, period, "valid").hours_since_init.tolist() == [11.9, 13.0]
    assert len(obs_space.departures_in_period(timed, period, "init")) == 0
    assert len(obs_space.departures_in_period(timed, ("2020-01-02", "2020-01-03"), "init")) == 6


def test_diagnostics_closed_forms():
    assert diagnostics.budget_drift(np.array([2.0, 2.0, 2.0 + 2e-6]))["relative_change_end"] == pytest.approx(1e-6)
    with pytest.raises(ValueError):
        diagnostics.budget_drift(np.array([0.0, 1.0]))
    a = xr.DataArray(np.array([1.0, 2.0, 3.0, np.nan]))
    assert diagnostics.anomaly_correlation(a, 2 * a + 1) == pytest.approx(1.0)
    assert diagnostics.anomaly_correlation(a, -a) == pytest.approx(-1.0)
    leads = (24 * np.arange(1, 61)).tolist()
    rng = np.random.default_rng(3)
    truth = grid_field(rng.normal(size=(1, 60, 6, 4)), times=1, leads=leads)
    s = diagnostics.stability(truth * 1.0, truth)
    assert s["finite"] and not s["blew_up"] and s["variance_ratio_end"] == pytest.approx(1.0)
    assert not s["drifted"] and not s["collapsed"]
    ramp = xr.DataArray(np.linspace(0, 5, 60), dims="prediction_timedelta",
                        coords={"prediction_timedelta": truth.prediction_timedelta})
    assert diagnostics.stability(truth + ramp, truth)["drifted"]  # +5 against a spatial spread of about 1
    assert not diagnostics.stability(truth + 0.05 * ramp, truth)["drifted"]
    flat = diagnostics.stability(truth * (1 - ramp / 5.05), truth)  # the pattern fades away
    assert flat["collapsed"] and not flat["blew_up"]
    grown = truth * xr.DataArray(np.linspace(1, 20, 60), dims="prediction_timedelta",
                                 coords={"prediction_timedelta": truth.prediction_timedelta})
    assert diagnostics.stability(grown, truth)["blew_up"]
    broken = truth.copy()
    broken[0, 40, 0, 0] = np.nan
    s = diagnostics.stability(broken, truth)
    assert not s["finite"] and s["first_nonfinite_day"] == pytest.approx(41.0) and s["blew_up"]


@pytest.mark.parametrize("skipna", [False, True])
def test_all_regions_at_once_average_as_each_region_alone(skipna):
    """The one-matrix-product route (weights with a region dim) against xarray's
    weighted mean region by region, with NaN and inf inside and outside regions."""
    rng = np.random.default_rng(11)
    x = grid_field(rng.normal(280.0, 5.0, size=(3, 2, 6, 4)), times=3, leads=(0, 12))
    x[0, 0, 0, 1] = np.nan   # in the southern band only
    x[1, 1, 5, 2] = np.inf   # in the northern band only
    x[2, 0, 5, 0] = -np.inf
    x[2, 0, 5, 3] = np.inf   # both infinities in one region: NaN
    x[2, 1, :, :] = np.nan   # a field with no data at all
    boxes = {"global": None, "south": Box("south", latitude=(-90.0, -30.0)),
             "north": Box("north", latitude=(30.0, 90.0)), "none": Box("none", latitude=(89.0, 90.0))}
    weights = [metrics.region_weights(x, box) for box in boxes.values()]
    stacked = metrics.spatial_average(x, xr.concat(weights, dim=pd.Index(list(boxes), name="region")), skipna)
    assert stacked.dims == ("time", "prediction_timedelta", "region")
    for name, w in zip(boxes, weights):
        by_hand = x.where(w > 0, 0.0).weighted(w).mean(("latitude", "longitude"), skipna=skipna)
        np.testing.assert_allclose(stacked.sel(region=name).values, by_hand.values, rtol=1e-12)
    assert np.isnan(stacked.sel(region="none")).all()  # no point of positive weight


def test_scores_with_a_moving_truth_mask_equal_a_fixed_mask_scored_region_by_region():
    """A truth whose gaps move takes the region-by-region route; where they do not,
    all regions are scored at once. Both give the same scores for the same fields."""
    rng = np.random.default_rng(12)
    truth = xr.Dataset({"sst": grid_field(rng.normal(size=(3, 1, 6, 4)), times=3)})
    truth["sst"][:, :, 0, 0] = np.nan
    fc = truth + rng.normal(0.0, 0.5, size=truth["sst"].shape)
    regions = {n: WB2_REGIONS[n] for n in ("global", "tropics", "extra-tropics")}
    fixed = evaluation.score_forecast(fc, truth, regions)
    moving_truth = truth.copy(deep=True)
    moving_truth["sst"][2, 0, 5, 3] = np.nan  # one more gap at one time only
    moving = evaluation.score_forecast(fc.where(moving_truth.sst.notnull() | truth.sst.isnull()), moving_truth,
                                       regions)
    assert set(fixed["sst"].region.values) == set(regions)
    tropics = moving["sst"].sel(region="tropics")  # the new gap lies outside the tropics
    np.testing.assert_allclose(tropics.values, fixed["sst"].sel(region="tropics").values, rtol=1e-12)
    assert not np.allclose(moving["sst"].sel(region="global", metric="rmse"),
                           fixed["sst"].sel(region="global", metric="rmse"))
