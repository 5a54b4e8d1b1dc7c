"""The perfect-model bound: forecasts of the nature run by its own model from perturbed true states."""

import numpy as np
import pytest
import xarray as xr

from earthgraph.data.nature_physics import T_FREEZE_SEA
from earthgraph.data.nature_run import VARIABLES, NatureRunConfig, make_planet, run_nature, spun_up_state
from earthgraph.data.perfect_model import (
    TEMPERATURE_SCALE_K,
    nature_config_from_truth,
    perfect_model_forecast,
    perturb_state,
)

TINY = dict(nlat=8, nlon=16, days=4, spinup_days=2, seed=1, statics="synthetic")
H = np.timedelta64(1, "h")


@pytest.fixture(scope="module", params=["vorticity", "waves"])
def run(request):
    cfg = NatureRunConfig(atmosphere=request.param, **TINY)
    return cfg, run_nature(cfg)


def truth_at(truth, var, inits, lead):
    return truth[var].sel(time=inits + lead).values


def rmse(forecast, truth, var, inits):
    return np.array([np.sqrt(np.nanmean((forecast[var].values[:, j] - truth_at(truth, var, inits, lead)) ** 2))
                     for j, lead in enumerate(forecast.prediction_timedelta.values)])


def test_zero_perturbation_reproduces_the_truth_bit_for_bit(run):
    cfg, truth = run
    # Out of order, including the start and an init whose last lead is the run's last time.
    inits = truth.time.values[[8, 0, 16]]
    leads = [48, 0, 3, 24]
    f = perfect_model_forecast(cfg, inits, leads, perturbation=0.0)
    assert dict(f.sizes) == {"time": 3, "prediction_timedelta": 4, "latitude": 8, "longitude": 16}
    assert list(f.data_vars) == list(VARIABLES)
    np.testing.assert_array_equal(f.time.values, inits)
    np.testing.assert_array_equal(f.prediction_timedelta.values, np.array(leads) * H)
    np.testing.assert_array_equal(f.latitude.values, truth.latitude.values)
    np.testing.assert_array_equal(f.longitude.values, truth.longitude.values)
    for v in VARIABLES:
        assert f[v].dtype == np.float32 and f[v].attrs["units"] == truth[v].attrs["units"]
        for j, lead in enumerate(f.prediction_timedelta.values):
            assert f[v].values[:, j].tobytes() == truth_at(truth, v, inits, lead).tobytes(), (v, lead)


def test_perturbed_forecast_has_finite_error_and_the_truths_masks(run):
    cfg, truth = run
    inits = truth.time.values[[0, 8]]
    f = perfect_model_forecast(cfg, inits, [0, 6, 24, 48], perturbation=0.01,
                               variables=["air_temperature", "sea_surface_temperature", "land_surface_temperature",
                                          "total_column_water_vapour", "sea_ice_concentration", "soil_moisture",
                                          "u_component_of_wind"])
    for v in f.data_vars:
        for j, lead in enumerate(f.prediction_timedelta.values):
            np.testing.assert_array_equal(np.isnan(f[v].values[:, j]), np.isnan(truth_at(truth, v, inits, lead)),
                                          err_msg=f"{v} mask at lead {lead}")
    for v in ("air_temperature", "sea_surface_temperature", "land_surface_temperature", "total_column_water_vapour"):
        err = rmse(f, truth, v, inits)
        assert np.isfinite(err).all() and (err > 0).all(), (v, err)
    # At lead 0 the temperatures carry noise of p * TEMPERATURE_SCALE_K = 0.1 K; soil water is not perturbed.
    assert 0.06 < rmse(f, truth, "air_temperature", inits)[0] < 0.14
    assert rmse(f, truth, "soil_moisture", inits)[0] == 0
    assert np.nanmin(f.sea_ice_concentration.values) >= 0 and np.nanmax(f.sea_ice_concentration.values) <= 1
    assert np.nanmin(f.total_column_water_vapour.values) >= 0
    assert np.nanmin(f.sea_surface_temperature.values) >= T_FREEZE_SEA - 1e-3
    wind = rmse(f, truth, "u_component_of_wind", inits)
    if cfg.atmosphere == "waves":
        assert (wind == 0).all(), "the prescribed flow is not perturbed"
    else:
        assert (wind > 0).all()


def test_chaotic_perfect_model_error_grows_with_lead():
    cfg = NatureRunConfig(**{**TINY, "days": 5})
    truth = run_nature(cfg)
    inits = truth.time.values[[0, 4, 8]]
    f = perfect_model_forecast(cfg, inits, [6, 24, 48, 72, 96], perturbation=0.01,
                               variables=["u_component_of_wind", "v_component_of_wind"])
    for v in f.data_vars:
        err = rmse(f, truth, v, inits)
        assert np.isfinite(err).all() and (np.diff(err) > 0).all(), (v, err)
        assert err[-1] > 5 * err[0], (v, err)


def test_perturbation_is_physically_valid_and_only_where_fields_exist():
    cfg = NatureRunConfig(atmosphere="waves", **TINY)
    planet = make_planet(cfg)
    whole, _ = spun_up_state(planet, cfg)
    assert whole.vorticity is None, "the waves' flow is prescribed: no vorticity to perturb"
    state = whole.surface
    big = perturb_state(planet, whole, 0.5, np.random.default_rng(0)).surface  # 5 K noise: clipping must act
    assert (big.vapour >= 0).all() and (big.vapour == 0).any()
    assert (big.sst[planet.ocean] >= T_FREEZE_SEA).all()
    np.testing.assert_array_equal(big.sst[planet.land], state.sst[planet.land])
    np.testing.assert_array_equal(big.lst[planet.ocean], state.lst[planet.ocean])
    assert (big.lst[planet.land] != state.lst[planet.land]).all()
    for k in ("thermocline", "soil_water", "snow", "ice_volume", "ice_concentration", "ocean_freshwater"):
        np.testing.assert_array_equal(getattr(big, k), getattr(state, k), err_msg=k)
    small = perturb_state(planet, whole, 0.01, np.random.default_rng(0)).surface
    assert abs(np.std(small.air_temperature - state.air_temperature) - 0.01 * TEMPERATURE_SCALE_K) < 0.03
    np.testing.assert_array_equal(perturb_state(planet, whole, 0.0, None).surface.air_temperature,
                                  state.air_temperature)

    chaotic = NatureRunConfig(**TINY)
    planet = make_planet(chaotic)
    state, _ = spun_up_state(planet, chaotic)
    p = perturb_state(planet, state, 0.01, np.random.default_rng(0))
    np.testing.assert_array_equal(p.surface.thermocline, state.surface.thermocline)
    g = planet.atmosphere.gaussian
    rel = np.sqrt(np.mean(g.synthesise(p.vorticity - state.vorticity) ** 2)
                  / np.mean(g.synthesise(state.vorticity) ** 2))
    assert abs(rel - 0.01) < 1e-9


def test_config_round_trip_through_the_truths_attrs(tmp_path):
    cfg = NatureRunConfig(atmosphere="waves", perturbation=1e-4, stirring_wavenumbers=(8, 12), **TINY)
    truth = run_nature(cfg)
    assert nature_config_from_truth(truth) == cfg
    truth.to_zarr(tmp_path / "truth.zarr", zarr_format=3, consolidated=False)
    assert nature_config_from_truth(xr.open_zarr(tmp_path / "truth.zarr", consolidated=False)) == cfg


def test_clear_errors_for_a_truth_that_is_not_a_nature_run_and_bad_times(run):
    cfg, truth = run
    era5 = xr.Dataset({"2m_temperature": (("time",), np.zeros(2))}, attrs={"title": "ERA5"})
    with pytest.raises(ValueError, match=r"ERA5 has no attrs\['config'\].*not an earthgraph nature run"):
        nature_config_from_truth(era5)
    for bad in ("__import__('os')", "{'nlat': 8", "[1, 2]", "{'grid_size': 3}"):
        with pytest.raises(ValueError, match=r"attrs\['config'\]"):
            nature_config_from_truth(truth.assign_attrs(config=bad))

    start = truth.time.values[0]
    with pytest.raises(ValueError, match="init time 2020-01-01T01:00:00.000000000 is not on the truth's time axis"):
        perfect_model_forecast(cfg, np.array([start, start + H]), [6])
    with pytest.raises(ValueError, match="init time 2019-12-31T21:00:00.000000000 is not on the truth's time axis"):
        perfect_model_forecast(cfg, np.array([start - 3 * H]), [6])
    # Leads may reach past the end of the run: the nature run's model carries on.
    past = perfect_model_forecast(cfg, np.array([start + 72 * H]), [3, 27], variables=["air_temperature"])
    assert np.isfinite(past.air_temperature.values).all()
    np.testing.assert_array_equal(past.air_temperature.isel(prediction_timedelta=0).values,
                                  perfect_model_forecast(cfg, np.array([start + 72 * H]), [3],
                                                         variables=["air_temperature"]).air_temperature
                                  .isel(prediction_timedelta=0).values)
    with pytest.raises(ValueError, match="lead 0.5 h is not a non-negative multiple of the model step"):
        perfect_model_forecast(cfg, np.array([start]), [0.5])
    with pytest.raises(ValueError, match="unknown variables"):
        perfect_model_forecast(cfg, np.array([start]), [3], variables=["2m_temperature"])


def test_perturbations_are_seeded():
    cfg = NatureRunConfig(**TINY)
    start = np.datetime64(cfg.start, "ns")
    inits = np.array([start, start + 24 * H])
    kw = dict(leads_hours=[0, 12], perturbation=0.01, variables=["air_temperature", "u_component_of_wind"])
    a = perfect_model_forecast(cfg, inits, seed=7, **kw)
    b = perfect_model_forecast(cfg, inits, seed=7, **kw)
    c = perfect_model_forecast(cfg, inits, seed=8, **kw)
    assert a.identical(b)
    assert np.abs(a.air_temperature.values - c.air_temperature.values).max() > 1e-3
    # An init time's perturbation does not depend on the other init times asked for.
    alone = perfect_model_forecast(cfg, inits[1:], seed=7, **kw)
    assert alone.isel(time=0).identical(a.isel(time=1))
