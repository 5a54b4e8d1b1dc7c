import numpy as np
import pytest

from earthgraph.data.store import ObservationStore
from earthgraph.data.windows import (
    WindowDataset,
    collate_windows,
    init_times_between,
    observation_schema,
    resolve_dropout,
)


@pytest.fixture(scope="module")
def store(small_osse):
    return ObservationStore(small_osse[0] / "obs.zarr").load()


def test_windows_hold_the_right_observations_in_window_units(store):
    schema = observation_schema(store)
    times = init_times_between(np.datetime64("2020-03-03"), np.datetime64("2020-03-06"), 12, 2, 12, store.time_range, 2)
    # 03-03T00 .. 03-05T00: the last one's two target windows end at 03-06T00, the period's end.
    assert len(times) == 5 and np.all(times % 43200 == 0)
    ds = WindowDataset(store, times, schema, 12, rollout=2, input_windows=2)
    item = ds[0]
    t0 = int(times[0])
    raw_in = store.read("synop", t0 - 2 * 43200, t0)
    raw_t2 = store.read("synop", t0 + 43200, t0 + 2 * 43200)
    assert len(item["inputs"]["synop"]) == len(raw_in["time"])
    assert len(item["targets"][1]["synop"]) == len(raw_t2["time"])
    assert -2.0 <= item["inputs"]["synop"].time.min() and item["inputs"]["synop"].time.max() < 0.0
    assert 0.0 <= item["targets"][1]["synop"].time.min() and item["targets"][1]["synop"].time.max() < 1.0
    spec = schema["synop"]
    back = item["targets"][1]["synop"].values.numpy()[:, 0] * spec.std[0] + spec.mean[0]
    np.testing.assert_allclose(back, raw_t2["values"][:, 0], rtol=1e-5)


def test_dropout_and_target_cap_are_reproducible_and_leave_evaluation_inputs_whole(store):
    schema = observation_schema(store)
    times = init_times_between(np.datetime64("2020-03-03"), np.datetime64("2020-03-05"), 12, 1, 12, store.time_range)
    ds = WindowDataset(store, times, schema, 12, rollout=1, dropout={"geo_ir": 0.5}, max_targets_per_type=20, seed=1)
    a, b = ds[1], ds[1]
    full = len(store.read("geo_ir", int(times[1]) - 43200, int(times[1]))["time"])
    assert 0.35 * full < len(a["inputs"]["geo_ir"]) < 0.65 * full
    np.testing.assert_array_equal(a["inputs"]["geo_ir"].lat.numpy(), b["inputs"]["geo_ir"].lat.numpy())
    assert max(len(o) for o in a["targets"][0].values()) <= 20
    assert len(ds.input_window(int(times[1]))["geo_ir"]) == full
    batch = collate_windows([ds[0], ds[1]])
    assert set(batch["inputs"]["synop"].sample.tolist()) == {0, 1}


def test_graphdop_dropout_drops_a_quarter_of_satellite_and_half_of_conventional_inputs(store):
    fractions = resolve_dropout(store, "graphdop")
    assert fractions["synop"] == fractions["drifter"] == fractions["argo"] == 0.5
    assert fractions["geo_ir"] == fractions["mw_sounder"] == fractions["amv"] == 0.25
    assert resolve_dropout(store, {"graphdop": 1, "synop": 0.1})["synop"] == 0.1
    assert resolve_dropout(store, None) == {}
    with pytest.raises(ValueError, match="dropout 'gaphdop': expected a mapping"):
        resolve_dropout(store, "gaphdop")
    with pytest.raises(ValueError, match="'radar', which store"):
        resolve_dropout(store, {"radar": 0.2})
    with pytest.raises(ValueError, match="fraction in \\[0, 1\\)"):
        resolve_dropout(store, {"synop": 1.5})
    schema = observation_schema(store)
    times = init_times_between(np.datetime64("2020-03-03"), np.datetime64("2020-03-08"), 12, 1, 12, store.time_range)
    ds = WindowDataset(store, times, schema, 12, rollout=1, dropout=fractions, seed=2)
    kept = {n: 0 for n in ("synop", "geo_ir")}
    full = dict(kept)
    for i in range(len(times)):
        item = ds[i]
        for n in kept:
            kept[n] += len(item["inputs"][n])
            full[n] += len(store.read(n, int(times[i]) - 43200, int(times[i]))["time"])
    assert abs(kept["synop"] / full["synop"] - 0.5) < 0.05
    assert abs(kept["geo_ir"] / full["geo_ir"] - 0.75) < 0.05


def test_an_empty_period_is_a_clear_error(store):
    schema = observation_schema(store)
    times = init_times_between(np.datetime64("2030-01-01"), np.datetime64("2030-02-01"), 12, 1, 12, store.time_range)
    with pytest.raises(ValueError, match="no initialisation times"):
        WindowDataset(store, times, schema)


def test_targets_never_leave_their_period_and_inputs_may_precede_it(store):
    end = np.datetime64("2020-03-06")
    for rollout in (1, 2, 3):
        times = init_times_between(np.datetime64("2020-03-03"), end, 12, rollout, 3, store.time_range, 2)
        last_target_end = times.max() + rollout * 43200
        assert last_target_end == int(end.astype("datetime64[s]").astype(np.int64))
        assert times.min() == int(np.datetime64("2020-03-03", "s").astype(np.int64))


def test_normalisation_statistics_come_from_the_stats_period_only(store):
    period = ("2020-03-01", "2020-03-05")
    schema = observation_schema(store, period)
    t0, t1 = (int(np.datetime64(t, "s").astype(np.int64)) for t in period)
    for name in ("synop", "geo_ir"):
        values = store.read(name, t0, t1)["values"].astype(np.float64)
        np.testing.assert_allclose(schema[name].mean, np.nanmean(values, axis=0), rtol=1e-9)
        np.testing.assert_allclose(schema[name].std, np.nanstd(values, axis=0, ddof=1), rtol=1e-7)
        # The whole store's statistics (test period included) differ.
        assert not np.allclose(schema[name].mean, store.stats(name)["mean"], rtol=1e-6)


def test_overlapping_periods_are_refused_by_name(small_osse):
    from earthgraph.training.datamodule import ObservationDataModule

    with pytest.raises(ValueError, match=r"data.val_period .* overlaps data.test_period"):
        ObservationDataModule(str(small_osse[0] / "obs.zarr"), ("2020-03-01", "2020-03-08"),
                              ("2020-03-08", "2020-03-10"), ("2020-03-09", "2020-03-11"))
    with pytest.raises(ValueError, match=r"data.train_period: start 2020-03-08 is not before end 2020-03-01"):
        ObservationDataModule(str(small_osse[0] / "obs.zarr"), ("2020-03-08", "2020-03-01"),
                              ("2020-03-08", "2020-03-10"))


def test_a_type_with_a_history_brings_its_older_observations_into_the_inputs(store):
    """Soil moisture retrieved to 0.05 and changing by 0.002 a day is estimated from days of
    retrievals: with ``history_windows`` its inputs reach back that far, the others' do not."""
    schema = observation_schema(store)
    times = init_times_between(np.datetime64("2020-03-06"), np.datetime64("2020-03-08"), 12, 1, 12,
                               store.time_range, 6)
    ds = WindowDataset(store, times, schema, 12, input_windows=2, history_windows={"soil_moisture": 6})
    assert ds.windows_before == 6
    t0 = int(times[0])
    for item in (ds[0]["inputs"], ds.input_window(t0)):
        soil, synop = item["soil_moisture"], item["synop"]
        assert len(soil) == len(store.read("soil_moisture", t0 - 6 * 43200, t0)["time"])
        assert len(soil) > len(store.read("soil_moisture", t0 - 2 * 43200, t0)["time"]) > 0
        assert -6.0 <= float(soil.time.min()) < -4.0 and float(soil.time.max()) < 0.0
        assert len(synop) == len(store.read("synop", t0 - 2 * 43200, t0)["time"])
        assert float(synop.time.min()) >= -2.0
    # A history no longer than the input windows changes nothing; bad ones are named.
    assert WindowDataset(store, times, schema, 12, input_windows=2, history_windows={"synop": 2}).history == {}
    with pytest.raises(ValueError, match="'soil_moisure'"):
        WindowDataset(store, times, schema, 12, history_windows={"soil_moisure": 6})
    with pytest.raises(ValueError, match="whole number"):
        WindowDataset(store, times, schema, 12, history_windows={"soil_moisture": 2.5})
    with pytest.raises(ValueError, match="exclude each other"):
        WindowDataset(store, times, schema, 12, history_windows={"soil_moisture": 6}, cycle_windows=2)
