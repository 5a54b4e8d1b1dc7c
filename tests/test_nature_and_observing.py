from dataclasses import fields, replace

import numpy as np
import pytest

from earthgraph.data import obs_types
from earthgraph.data.nature_physics import (
    SOIL_CAPACITY,
    T_FREEZE_SEA,
    T_MELT,
    evaporation_and_precipitation,
    runoff,
    sea_ice,
    snowmelt,
    step,
    water_total,
)
from earthgraph.data.nature_run import VARIABLES, NatureRunConfig, make_planet, run_nature, spun_up_state
from earthgraph.data.observing import OBSERVING_SYSTEMS, ObservingConfig, ObservingNetwork, clear_sky_skin
from earthgraph.data.store import ObservationStore


@pytest.fixture(scope="module")
def nature():
    return run_nature(NatureRunConfig(nlat=16, nlon=32, days=20, spinup_days=15, seed=5))


def test_nature_run_covers_four_spheres_with_physical_values(nature):
    spheres = {VARIABLES[v][0] for v in VARIABLES}
    assert spheres == {"atmosphere", "ocean", "land", "cryosphere"}
    t = nature.air_temperature.values
    assert np.isfinite(t).all() and 200 < t.min() and t.max() < 330
    sst = nature.sea_surface_temperature.values
    land = nature.land_sea_mask.values > 0.5
    assert np.isnan(sst[:, land]).all() and np.isfinite(sst[:, ~land]).all()
    assert sst[:, ~land].min() >= 271.35 - 1e-3, "the ocean never cools below freezing"
    ice = nature.sea_ice_concentration.values[:, ~land]
    assert 0 <= ice.min() and ice.max() <= 1 and ice.max() > 0.3, "sea ice exists and is a fraction"
    sm = nature.soil_moisture.values[:, land]
    assert 0 <= sm.min() and sm.max() <= 1


def test_water_budget_is_closed(nature):
    total = nature.water_total.values
    assert np.abs(total - total[0]).max() / abs(total[0]) < 1e-12


WATER = ("vapour", "soil_water", "snow", "ice_volume", "ocean_freshwater")


def test_every_step_that_moves_water_keeps_the_global_total():
    """Each named water step, on a state where it has work to do (overfull buckets, melting
    snow, a sea below freezing), moves water between components and loses none: a leak
    would name its step."""
    cfg = NatureRunConfig(nlat=16, nlon=32, days=1, spinup_days=5, seed=5)
    planet = make_planet(cfg)
    state, _ = spun_up_state(planet, cfg)
    land, ocean = planet.land, planet.ocean
    s = state.surface
    s = replace(s, soil_water=np.where(land, 1.2 * SOIL_CAPACITY, 0.0), snow=np.where(land, 30.0, 0.0),
                lst=np.where(land, T_MELT + 5.0, s.lst), sst=np.where(ocean, T_FREEZE_SEA - 0.5, s.sst))
    dt = cfg.dt_minutes * 60.0
    total = water_total(planet, s)
    for name, advance in [("sea_ice", lambda s: sea_ice(planet, s, dt)),
                          ("evaporation_and_precipitation", lambda s: evaporation_and_precipitation(planet, s, dt)),
                          ("snowmelt", lambda s: snowmelt(planet, s, dt)),
                          ("runoff", lambda s: runoff(planet, s))]:
        after = advance(s)
        moved = [k for k in WATER if not np.array_equal(getattr(after, k), getattr(s, k))]
        assert len(moved) >= 2, f"{name} moved no water between components: {moved}"
        assert abs(water_total(planet, after) - total) <= 1e-12 * total, name


def test_a_step_leaves_the_state_it_is_given_untouched():
    """Perfect-model forecasts branch from one state: a step must return a new state and
    never write into the arrays of the one it was given."""
    cfg = NatureRunConfig(nlat=16, nlon=32, days=1, spinup_days=1, seed=5)
    planet = make_planet(cfg)
    state, seconds = spun_up_state(planet, cfg)
    before = {f.name: getattr(state.surface, f.name).copy() for f in fields(state.surface)}
    vorticity = state.vorticity.copy()
    after = step(planet, state, seconds, cfg.dt_minutes * 60.0)
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(state.surface, k), v, err_msg=k)
        assert not np.array_equal(getattr(after.surface, k), v), f"{k} did not move: the test shows nothing"
    np.testing.assert_array_equal(state.vorticity, vorticity)
    assert not np.array_equal(after.vorticity, vorticity)


def test_nature_run_is_deterministic_and_seed_dependent():
    cfg = dict(nlat=8, nlon=16, days=2, spinup_days=2)
    a = run_nature(NatureRunConfig(seed=1, **cfg)).air_temperature.values
    b = run_nature(NatureRunConfig(seed=1, **cfg)).air_temperature.values
    c = run_nature(NatureRunConfig(seed=2, **cfg)).air_temperature.values
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1


def test_bad_nature_config_is_rejected():
    with pytest.raises(ValueError, match="output_hours=1.5 is not a multiple of dt_minutes=60"):
        NatureRunConfig(output_hours=1.5)


def test_observing_systems_sample_truth_with_declared_errors(nature):
    net = ObservingNetwork(nature, ObservingConfig(seed=0, scale=0.5))
    t0 = net.sampler.t_start + 86400
    for name in OBSERVING_SYSTEMS:
        cols = net.observe(name, t0, t0 + 43200)
        ot = obs_types.get(name)
        n = len(cols["time"])
        assert n > 0, name
        assert np.all(np.diff(cols["time"]) >= 0) and cols["time"].min() >= t0 and cols["time"].max() < t0 + 43200
        assert np.all(np.abs(cols["lat"]) <= 90) and np.all((-180 <= cols["lon"]) & (cols["lon"] < 180))
        lo = np.array([c.valid_min for c in ot.channels])
        hi = np.array([c.valid_max for c in ot.channels])
        v = cols["values"]
        assert np.all(np.isnan(v) | ((v >= lo) & (v <= hi))), name
        assert np.isfinite(v).any(axis=1).all(), f"{name}: a row with no value at all"
        for m in ot.metadata:
            assert len(cols[m]) == n
    # Drifter SST departures from the truth have about the declared error.
    cols = net.observe("drifter", t0, t0 + 43200)
    truth = net.sampler.sample("sea_surface_temperature", cols["time"].astype(float), cols["lat"], cols["lon"])
    dep = cols["values"][:, 0] - truth
    assert abs(dep.std() - obs_types.DRIFTER.channels[0].error) < 0.05
    assert abs(dep.mean()) < 0.05


def test_each_system_needs_no_variable_but_those_it_requires(nature):
    """A system's ``requires`` is what decides whether it can observe a user's file: on a
    truth holding only those variables (and the land-sea mask) it observes, and its type is
    the registered one of its name."""
    for name, system in OBSERVING_SYSTEMS.items():
        assert obs_types.get(name) is system.obs_type
        truth = nature[[*system.requires, "land_sea_mask"]]
        net = ObservingNetwork(truth, ObservingConfig(seed=0, scale=0.3))
        t0 = net.sampler.t_start + 86400
        assert len(net.observe(name, t0, t0 + 21600)["time"]) > 0, name


def test_a_surface_field_is_sampled_from_its_own_surface_right_up_to_the_coast(nature):
    """SST next to a coast is interpolated from the stencil's ocean corners (weights
    renormalised), so every ocean grid cell has observations near it; a point whose
    nearest grid cell is land gets none."""
    from earthgraph.data.observing import TruthSampler

    s = TruthSampler(nature)
    lat, lon = nature.latitude.values, nature.longitude.values
    land = nature.land_sea_mask.values > 0.5
    sst = nature.sea_surface_temperature.values[3]
    t = np.full(1, s.seconds[3])
    coastal = [(j, i) for j in range(1, len(lat) - 2) for i in range(len(lon))
               if not land[j, i] and land[j:j + 2, [i, (i + 1) % len(lon)]].any()]
    assert len(coastal) > 5, "the test planet has coasts"
    dlat, dlon = lat[1] - lat[0], lon[1] - lon[0]
    for j, i in coastal:
        # A quarter of the way into the cell's (j, i) -> (j+1, i+1) stencil: nearest to (j, i).
        la, lo = lat[j] + 0.25 * dlat, lon[i] + 0.25 * dlon
        got = s.sample("sea_surface_temperature", t, np.array([la]), np.array([lo]))[0]
        corners = [(j, i, 0.5625), (j, (i + 1) % len(lon), 0.1875), (j + 1, i, 0.1875), (j + 1, (i + 1) % len(lon), 0.0625)]
        ocean = [(sst[a, b], w) for a, b, w in corners if not land[a, b]]
        expected = sum(v * w for v, w in ocean) / sum(w for _, w in ocean)
        assert abs(got - expected) < 1e-4, (j, i, got, expected)  # K; the truth is float32
    # Points nearest a land cell have no SST, wherever their stencil's other corners are.
    jl, il = np.argwhere(land[1:-2])[0] + [1, 0]
    assert np.isnan(s.sample("sea_surface_temperature", t, np.array([lat[jl] + 0.1 * dlat]), np.array([lon[il] + 0.1 * dlon]))[0])


def test_generated_store_holds_every_system(small_osse):
    out, summary = small_osse
    store = ObservationStore(out / "obs.zarr")
    assert set(store.type_names) == set(OBSERVING_SYSTEMS)
    for name in store.type_names:
        assert store.rows(name) == summary["counts"][name] > 0
    assert store.static()["land_sea_mask"].shape == (16, 32)
    assert store.static()["geopotential_at_surface"].shape == (16, 32)


def test_microwave_imager_sees_surface_temperature_through_cloud(nature):
    net = ObservingNetwork(nature, ObservingConfig(seed=0, scale=1.0))
    t0 = net.sampler.t_start + 86400
    cols = net.observe("mw_imager", t0, t0 + 86400)
    t, lat, lon = cols["time"].astype(float), cols["lat"], cols["lon"]
    land = net.sampler.is_land(lat, lon)
    assert land.any() and (~land).any()
    lst, sst = cols["values"][:, 0], cols["values"][:, 1]
    # One channel per surface; the other is missing, never made up.
    assert np.isfinite(lst[land]).all() and np.isnan(lst[~land]).all()
    assert np.isnan(sst[land]).all() and np.isfinite(sst[~land]).all()
    ice = net.sampler.sample("sea_ice_concentration", t, lat, lon)
    assert np.all(ice[~land] <= 0.15), "no sea-surface retrievals over sea ice"
    dep_l = lst[land] - net.sampler.sample("land_surface_temperature", t, lat, lon)[land]
    dep_s = sst[~land] - net.sampler.sample("sea_surface_temperature", t, lat, lon)[~land]
    assert abs(dep_l.std() - obs_types.MW_IMAGER.channel("lst").error) < 0.3
    assert abs(dep_s.std() - obs_types.MW_IMAGER.channel("sst").error) < 0.1
    # All-weather: it reports where the infrared imagers' clear-sky test fails.
    cloudy = np.isnan(clear_sky_skin(net.sampler, t, lat, lon))
    assert cloudy.sum() > 0.05 * len(t)


def test_sun_synchronous_orbits_cross_the_equator_at_their_local_times():
    from earthgraph.data.observing_geometry import polar_orbit_swaths

    t0 = 1_600_000_000.0
    t, lat, lon, _ = polar_orbit_swaths(t0, t0 + 5 * 86400, crossing_hours=(13.5,), swath_half_width_km=0.0,
                                        n_scan=1, line_every_s=20.0, seed=0)
    eq = np.abs(lat) < 2.0
    local = np.mod(np.mod(t[eq], 86400) / 3600 + lon[eq] / 15.0, 24.0)
    # Ascending at 13:30, descending at 01:30, within the time the track takes to cross 2 degrees.
    off = np.minimum(np.abs(local - 13.5), np.abs(local - 1.5))
    assert eq.sum() > 50 and off.max() < 0.25
    assert (np.abs(local - 13.5) < 0.25).any() and (np.abs(local - 1.5) < 0.25).any()


def test_argo_floats_profile_ice_free_ocean_once_per_window_and_amvs_measure_the_wind(nature):
    net = ObservingNetwork(nature, ObservingConfig(seed=0))
    t0 = net.sampler.t_start + 2 * 86400
    cols = net.observe("argo", t0, t0 + 43200)
    assert len(cols["time"]) > 20
    assert len(np.unique(cols["float_id"])) == len(cols["float_id"]), "one profile per float per window"
    ice = net.sampler.sample("sea_ice_concentration", cols["time"].astype(float), cols["lat"], cols["lon"])
    assert np.all(ice <= 0.15) and not net.sampler.is_land(cols["lat"], cols["lon"]).any()
    ohc = net.sampler.sample("ocean_heat_content", cols["time"].astype(float), cols["lat"], cols["lon"])
    assert np.abs(cols["values"][:, 2] - ohc).max() < 6 * obs_types.ARGO.channel("ohc").error
    amv = net.observe("amv", t0, t0 + 43200)
    u = net.sampler.sample("u_component_of_wind", amv["time"].astype(float), amv["lat"], amv["lon"])
    assert abs((amv["values"][:, 0] - u).std() - obs_types.AMV.channel("u").error) < 0.3
    assert np.all(amv["satellite_zenith"] < 60.0)
