"""A training config is checked when it is parsed: wrong choices by their Literal, and what one
field cannot know alone (types, channels, spheres and periods against the store; windows and
counts) before any data is read or model built, each error naming the key and the value."""

import subprocess
import sys
from pathlib import Path

import pytest

from earthgraph.training.cli import main as train_cli
from earthgraph.training.config_checks import ConfigError
from test_training import _resume_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("override, match", [
    (["--model.type_weights", "{seaice: 2.0}"],
     r"model\.type_weights: observation type\(s\) \['seaice'\] are not in the store, which holds \['synop'"),
    (["--model.sphere_weights", "{oceans: 2.0}"], r"model\.sphere_weights: sphere\(s\) \['oceans'\]"),
    (["--model.budgets", "{water: {atmosphere: [mw_sounder.tcvw], soil: []}}"],
     r"model\.budgets\.water\.atmosphere: 'mw_sounder\.tcvw': type 'mw_sounder' has no channel 'tcvw'"),
    (["--data.history_windows", "{soil: 4}"], r"data\.history_windows: observation type\(s\) \['soil'\]"),
    (["--data.dropout", "{synopp: 0.5}"], r"data\.dropout: observation type\(s\) \['synopp'\]"),
    (["--data.val_period", "[2021-01-01, 2021-02-01]"],
     r"data\.val_period: \['2021-01-01', '2021-02-01'\] is not inside the store's observations, 2020-03-01"),
    (["--data.stride_hours", "0"], r"data\.stride_hours: 0\.0 must be a positive number of hours"),
    (["--data.rollout", "0"], r"data\.rollout: 0 must be at least 1"),
])
def test_cross_field_mistakes_are_named_before_anything_is_built(small_osse, tmp_path, override, match):
    out, _ = small_osse
    with pytest.raises(ConfigError, match=match):
        train_cli(["fit", "--config", str(_resume_config(tmp_path, out, "run")), *override])
    assert not (tmp_path / "run").exists(), "nothing was written: no trainer ran"


def test_a_wrong_choice_is_refused_when_parsed_naming_the_choices(tmp_path):
    proc = subprocess.run([sys.executable, "train.py", "fit", "--config", "configs/quickstart.yaml",
                           "--model.processor", "interacton", "--print_config"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "model.processor" in proc.stderr and "Literal['interaction', 'transformer']" in proc.stderr
    assert "Got value: interacton" in proc.stderr


def test_a_weight_on_a_type_unobserved_in_the_training_period_is_warned_of():
    import warnings

    from earthgraph.data.store import ObservationStore
    from earthgraph.training.config_checks import check_weighted_types_observed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture is a schema-1 store, read through its migration
        store = ObservationStore(REPO / "tests" / "fixtures" / "store-schema-1")
    # synop reports 2020-03-01T00:00 .. 03-04T02:30, amv 2020-03-01T00:00 .. 03-03T18:20
    weights = {"synop": 2.0, "amv": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_weighted_types_observed(weights, {"train_period": ["2020-03-04", "2020-03-05"]}, store)
    with pytest.warns(UserWarning, match=r"model\.type_weights\.synop: 2\.0, but the store has no 'synop' observation "
                                         r"in data\.train_period \['2020-03-04T03:00', '2020-03-05'\] \(it has "
                                         r"2020-03-01T00:00:00 \.\. 2020-03-04T02:30:00\)") as caught:
        check_weighted_types_observed(weights, {"train_period": ["2020-03-04T03:00", "2020-03-05"]}, store)
    assert len(caught) == 1, "a zero weight is no mistake"
