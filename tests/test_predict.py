"""Forecasts on a grid: what ``forecast_on_grid`` writes is the model's own decode at every grid point."""

import numpy as np
import torch

from earthgraph.data.obs_types import DEFAULT_PRODUCTS
from earthgraph.data.store import ObservationStore
from earthgraph.data.windows import WindowDataset, collate_windows, init_times_between, observation_schema
from earthgraph.models import ForecasterConfig, GraphDOPForecaster
from earthgraph.training.predict import forecast_on_grid, grid_targets

LAT = np.linspace(-80.0, 80.0, 9)
LON = np.arange(0.0, 360.0, 30.0)


def test_grid_forecasts_are_the_decode_of_every_product_at_every_lead(small_osse):
    """Three initialisations in batches of two (the last batch is smaller: the decoder graphs
    built for the first batch must not be reused for it), two leads in different windows, and
    products of several observation types decoded together. Each value must be what decoding
    that one product alone gives, denormalised and clipped."""
    store = ObservationStore(small_osse[0] / "obs.zarr").load()
    schema = observation_schema(store)
    torch.manual_seed(0)
    model = GraphDOPForecaster(schema, static=store.static(), config=ForecasterConfig(graph_cache_dir=None, nside=4,
                                                                                      latent_dim=16, hidden_dim=16,
                                                                                      processor_layers=1)).eval()
    products = tuple(p for p in DEFAULT_PRODUCTS if p.obs_type in schema)
    assert len({p.obs_type for p in products}) >= 3
    times = init_times_between(np.datetime64("2020-03-05"), np.datetime64("2020-03-07"), 12, 2, 12,
                               store.time_range, 2)[:3]
    dataset = WindowDataset(store, times, schema, 12, 2, input_windows=2)
    leads = [6.0, 18.0]
    fc = forecast_on_grid(model, dataset, times, leads, LAT, LON, products, batch_size=2)

    with torch.no_grad():
        for i, t in enumerate(times):
            init = torch.tensor([float(t)], dtype=torch.float64)
            inputs = collate_windows([{"init_time": int(t), "inputs": dataset.input_window(int(t)), "targets": []}])
            state = model.encode(inputs["inputs"], init, 2)
            for k, lead in enumerate(leads):
                state = model.step(state, init + k * model.window_seconds)
                for p in products:
                    spec = schema[p.obs_type]
                    c = spec.channels.index(p.channel)
                    tgt = grid_targets(LAT, LON, 1, lead / 12.0 - k, len(spec.metadata))
                    pred = model.decode(state, {p.obs_type: tgt}, init + k * model.window_seconds)[p.obs_type]
                    pred = pred[:, c].numpy()
                    want = np.clip(pred * spec.std[c] + spec.mean[c], spec.valid_min[c], spec.valid_max[c])
                    got = fc[p.variable].values[i, k].ravel()
                    where = np.isfinite(got)  # land or ocean only products are NaN elsewhere
                    assert where.any()
                    np.testing.assert_allclose(got[where], want.reshape(-1)[where], rtol=1e-5, atol=1e-5,
                                               err_msg=f"{p.variable} at +{lead} h, init {i}")
