"""Land-sea mask and orography: real ones from climt's files, and the synthetic fallback."""

import numpy as np
import pytest

from earthgraph.data.grid import LatLonGrid, regrid_conservative
from earthgraph.data.statics import (
    StaticsError,
    fetch_climt_statics,
    find_climt_data,
    load_statics,
    synthetic_statics,
)


@pytest.fixture(scope="module")
def climt_dir(tmp_path_factory):
    """climt's static files: an existing copy, else downloaded from PyPI (skip when neither works)."""
    found = find_climt_data()
    if found is not None:
        return found
    try:
        return fetch_climt_statics(tmp_path_factory.mktemp("statics"))
    except StaticsError as err:
        pytest.skip(f"climt's static files are not installed and PyPI cannot be reached: {err}")


def test_conservative_regridding_keeps_area_integrals():
    src_lat = np.arange(-89.0, 90.0, 2.0)
    src_lon = np.arange(1.0, 360.0, 2.0)
    rng = np.random.default_rng(0)
    values = rng.uniform(size=(90, 180))
    weights = np.cos(np.radians(src_lat))[:, None] * np.ones((1, 180))
    for grid in (LatLonGrid(64, 128), LatLonGrid(32, 64), LatLonGrid(7, 13)):
        out = regrid_conservative(values, src_lat, src_lon, grid)
        np.testing.assert_allclose((out * grid.area).sum() / grid.area.sum(),
                                   (values * weights).sum() / weights.sum(), rtol=1e-12)
        assert values.min() <= out.min() and out.max() <= values.max()


def test_real_land_mask_and_orography_put_continents_where_they_are(climt_dir):
    grid = LatLonGrid(64, 128)
    statics = load_statics(grid, str(climt_dir))
    assert statics.source.startswith("climt")
    land_fraction = (statics.land * grid.area).sum() / grid.area.sum()
    assert 0.26 < land_fraction < 0.32, land_fraction  # Earth: 29% land

    def at(lat, lon):
        j, i = grid.cell_index(np.radians([lat]), np.radians([lon]))
        return bool(statics.land[j[0], i[0]]), float(statics.orography_m[j[0], i[0]])

    assert at(23.0, 12.0)[0], "Sahara is land"
    assert at(72.0, 320.0)[0], "Greenland is land"
    assert not at(0.0, 180.0)[0] and at(0.0, 180.0)[1] == 0.0, "the equatorial Pacific is sea"
    assert not at(35.0, 320.0)[0], "the North Atlantic is sea"
    assert at(33.0, 88.0)[1] > 3000.0, "the Tibetan plateau is high"
    assert at(-80.0, 60.0)[1] > 2000.0, "the Antarctic plateau is high"
    assert statics.orography_m.max() < 6500.0


def test_missing_statics_fall_back_or_fail_clearly(tmp_path):
    grid = LatLonGrid(32, 64)
    with pytest.raises(StaticsError, match=str(tmp_path)):
        load_statics(grid, str(tmp_path))
    fallback = synthetic_statics(grid, land_fraction=0.3, seed=0)
    lat, _ = grid.mesh()
    assert fallback.land[lat < np.radians(-70)].all(), "an Antarctic cap"
    assert not fallback.land[lat > np.radians(72)].any(), "an open Arctic ocean for sea ice"
    band = np.abs(lat) < np.radians(70)
    assert abs(fallback.land[band].mean() - 0.3) < 0.03
    assert (fallback.orography_m[~fallback.land] == 0).all() and fallback.orography_m.max() > 1500
    same = synthetic_statics(grid, land_fraction=0.3, seed=0)
    np.testing.assert_array_equal(same.land, fallback.land)
